import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { BuildLog, firstLine } from './build-log.ts';
import type {
  BuildFailure,
  BuildPhase,
  BuildPhaseType,
  PhaseContext,
  PhaseStatus,
  RunBuildOptions,
} from './build-result.ts';
import { SecretMask } from './build-variables.ts';
import type { Buildspec, Phase } from './buildspec.ts';
import { BUILDSPEC_PHASES, type BuildspecPhaseName } from './buildspec-phases.ts';
import { shellQuote } from './shell-quote.ts';
import { missingTool, type ShellKind, ShellSession } from './shell-session.ts';

const PHASE_TYPES: Record<BuildspecPhaseName, BuildPhaseType> = {
  install: 'INSTALL',
  pre_build: 'PRE_BUILD',
  build: 'BUILD',
  post_build: 'POST_BUILD',
};

export interface CommandFailure {
  command: string;
  statusCode: string;
  message: string;
  output: string;
}

export type PhaseOutcome = { status: PhaseStatus; context?: PhaseContext; failure?: CommandFailure };

/**
 * A build's state and its buildspec phases, install → pre_build → build → post_build, with CodeBuild's
 * transitions, `on-failure` (ABORT, CONTINUE, RETRY), `finally`, CODEBUILD_BUILD_SUCCEEDING, and the one
 * shell the commands run in (a new one, restored, if a command ends it). {@link LocalBuild} adds the rest
 * of a build's life around them.
 */
export class PhasedBuild {
  protected readonly options: RunBuildOptions;
  protected readonly workDir: string;
  protected readonly buildId: string;
  protected readonly startTime = new Date();
  protected readonly mask = new SecretMask();
  protected readonly log: BuildLog;
  protected readonly phases: BuildPhase[] = [];
  protected readonly shells: ShellSession[] = [];
  protected spec: Buildspec | undefined;
  protected shellEnv: Record<string, string> = {};
  protected shellKind: ShellKind = { path: 'bash', bash: true };
  protected stateDir: string | undefined;
  protected succeeding = true;
  protected stopReason: 'TIMED_OUT' | 'STOPPED' | undefined;
  protected runningCommand: string | undefined;
  protected failure: BuildFailure | undefined;
  protected fault = false;
  protected notExported = new Set<string>();

  constructor(options: RunBuildOptions) {
    this.options = options;
    this.workDir = path.resolve(options.workDir);
    const given = options.env?.CODEBUILD_BUILD_ID;
    this.buildId = typeof given === 'string' ? given : `stepline-local:${randomUUID()}`;
    this.log = new BuildLog(options.log, this.mask);
  }

  /** Runs install → pre_build → build → post_build with CodeBuild's transitions. True if UPLOAD_ARTIFACTS follows. */
  protected async runBuildspecPhases(): Promise<boolean> {
    const spec = this.spec as Buildspec;
    let index = 0;
    while (index < BUILDSPEC_PHASES.length) {
      const name = BUILDSPEC_PHASES[index] as BuildspecPhaseName;
      const phase = spec.phases[name];
      const status = await this.runPhase(name, phase);
      if (this.stopReason || this.fault) return false;
      if (status === 'SUCCEEDED') {
        index += 1;
        continue;
      }
      const action = phase?.onFailure?.action;
      if (action === 'CONTINUE') {
        index += 1;
      } else if (action === 'ABORT') {
        this.logContainer(`on-failure ABORT in ${PHASE_TYPES[name]}: the remaining phases are skipped`);
        return false;
      } else if (name === 'build') {
        // Default transitions: POST_BUILD still runs after a failed BUILD, and UPLOAD_ARTIFACTS is
        // attempted after a failed POST_BUILD; a failed INSTALL or PRE_BUILD goes to FINALIZING.
        index = BUILDSPEC_PHASES.indexOf('post_build');
      } else if (name === 'post_build') {
        return true;
      } else {
        return false;
      }
    }
    return true;
  }

  protected async runPhase(name: BuildspecPhaseName, phase: Phase | undefined): Promise<PhaseStatus> {
    const type = PHASE_TYPES[name];
    const start = new Date();
    this.logContainer(`Entering phase ${type}`);
    if (phase === undefined) return this.finishPhase(type, start, { status: 'SUCCEEDED' });

    const runtimes = Object.entries(phase.runtimeVersions);
    if (runtimes.length > 0) {
      const list = runtimes.map(([runtime, version]) => `${runtime} ${version}`).join(', ');
      this.logContainer(`runtime-versions are not installed locally; the host's tools are used (${list})`);
    }
    const runAs = phase.runAs ?? this.spec?.runAs;
    if (runAs !== undefined)
      this.logContainer(`run-as ${runAs} is ignored locally; commands run as the current user`);

    const retry = phase.onFailure?.action === 'RETRY' ? phase.onFailure : undefined;
    const failedBefore = !this.succeeding;
    let outcome: PhaseOutcome;
    for (let attempt = 0; ; attempt += 1) {
      outcome = await this.runPhaseCommands(phase);
      const failure = outcome.failure;
      if (
        outcome.status !== 'FAILED' ||
        failure === undefined ||
        retry === undefined ||
        attempt >= retry.count
      )
        break;
      if (!new RegExp(retry.pattern).test(`${failure.message}\n${failure.output}`)) break;
      this.logContainer(
        `on-failure RETRY: running phase ${type} again (retry ${attempt + 1} of ${retry.count})`,
      );
      if (!failedBefore) await this.setSucceeding(true);
    }

    if (outcome.failure !== undefined) {
      const { command, message } = outcome.failure;
      this.failure ??= {
        phase: type,
        command: firstLine(command),
        message: `Phase ${type} failed: ${message}`,
      };
    } else if (this.stopReason !== undefined) {
      const command = this.runningCommand;
      const what = this.stopReason === 'TIMED_OUT' ? 'timed out' : 'was stopped';
      this.failure ??= {
        phase: type,
        ...(command === undefined ? {} : { command: firstLine(command) }),
        message: `Build ${what} in phase ${type}${command === undefined ? '' : ` (command: ${firstLine(command)})`}`,
      };
    }
    return this.finishPhase(type, start, outcome);
  }

  /** The phase's commands, stopping at the first failure, then its `finally` block whatever happened. */
  protected async runPhaseCommands(phase: Phase): Promise<PhaseOutcome> {
    let failure: CommandFailure | undefined;
    for (const command of phase.commands) {
      failure = await this.runCommand(command);
      if (failure !== undefined || this.stopReason || this.fault) break;
    }
    if (!this.stopReason && !this.fault) {
      for (const command of phase.finally) {
        const finallyFailure = await this.runCommand(command);
        failure ??= finallyFailure;
        if (finallyFailure !== undefined || this.stopReason || this.fault) break;
      }
    }
    if (this.stopReason === 'TIMED_OUT') {
      return {
        status: 'TIMED_OUT',
        context: { statusCode: 'BUILD_TIMED_OUT', message: 'Build has timed out. ' },
      };
    }
    if (this.stopReason === 'STOPPED') {
      return { status: 'STOPPED', context: { statusCode: 'BUILD_STOPPED', message: 'Build was stopped' } };
    }
    if (this.fault) {
      return { status: 'FAULT', context: { statusCode: 'FAULT', message: this.failure?.message ?? 'fault' } };
    }
    if (failure !== undefined) {
      return {
        status: 'FAILED',
        context: { statusCode: failure.statusCode, message: failure.message },
        failure,
      };
    }
    return { status: 'SUCCEEDED' };
  }

  protected async runCommand(command: string): Promise<CommandFailure | undefined> {
    const shell = await this.ensureShell();
    if (shell === undefined) return undefined;
    this.logContainer(`Running command ${command}`);
    this.runningCommand = command;
    const outcome = await shell.run(command);
    this.runningCommand = this.stopReason ? command : undefined;
    if (shell.spawnError !== undefined) {
      this.fault = true;
      const message = `could not start the shell "${this.shellKind.path}": ${shell.spawnError.message}`;
      this.logContainer(message);
      this.failure ??= { phase: this.phases.length > 0 ? nextPhase(this.phases) : 'INSTALL', message };
      return undefined;
    }
    if (this.stopReason || outcome.exitCode === 0) return undefined;

    const reason = `exit status ${outcome.exitCode}`;
    this.logContainer(`Command did not exit successfully ${command} ${reason}`);
    if (!outcome.shellAlive)
      this.logContainer(
        'The shell exited; the next command runs in a new shell with the same variables and directory',
      );
    await this.setSucceeding(false);
    const tool = outcome.exitCode === 127 ? missingTool(outcome.output, command) : undefined;
    const message =
      tool === undefined
        ? `Error while executing command: ${firstLine(command)}. Reason: ${reason}`
        : `Build tool "${tool}" is not installed on this machine (command: ${firstLine(command)})`;
    if (tool !== undefined) this.logContainer(message);
    return {
      command,
      statusCode: 'COMMAND_EXECUTION_ERROR',
      message: this.mask.apply(message),
      output: outcome.output,
    };
  }

  protected async setSucceeding(succeeding: boolean): Promise<void> {
    this.succeeding = succeeding;
    const shell = await this.ensureShell();
    await shell?.run(`export CODEBUILD_BUILD_SUCCEEDING=${succeeding ? 1 : 0}`, { quiet: true });
  }

  /** The build's shell; a new one, restored from the last snapshot, if a command ended the previous one. */
  protected async ensureShell(): Promise<ShellSession | undefined> {
    const current = this.shells.at(-1);
    if (current?.alive) return current;
    if (this.stopReason || this.fault || current?.spawnError) return undefined;
    const stateDir = this.stateDir as string;
    const { sandbox } = this.options;
    const shell = new ShellSession({
      kind: this.shellKind,
      cwd: this.workDir,
      env: { ...this.shellEnv, CODEBUILD_BUILD_SUCCEEDING: this.succeeding ? '1' : '0' },
      stateDir,
      onLine: (line) => this.log.line(line),
      ...(sandbox
        ? {
            wrap: (command: string, args: string[]) =>
              sandbox(command, args, { workDir: this.workDir, runnerDir: stateDir }),
          }
        : {}),
    });
    this.shells.push(shell);
    if (current !== undefined) {
      const restore = [
        `. ${shellQuote(path.join(stateDir, 'vars.sh'))} 2>/dev/null`,
        `cd ${shellQuote((await readFile(path.join(stateDir, 'cwd'), 'utf8').catch(() => this.workDir)).replace(/\n$/, ''))} 2>/dev/null || :`,
        `export CODEBUILD_BUILD_SUCCEEDING=${this.succeeding ? 1 : 0}`,
      ].join('\n');
      await shell.run(restore, { quiet: true });
    }
    return shell;
  }

  protected finishPhase(name: BuildPhaseType, start: Date, outcome: PhaseOutcome): PhaseStatus {
    const end = new Date();
    const context =
      outcome.context === undefined
        ? undefined
        : { ...outcome.context, message: this.mask.apply(outcome.context.message) };
    const phase: BuildPhase = {
      name,
      status: outcome.status,
      start,
      end,
      durationSeconds: Math.round((end.getTime() - start.getTime()) / 1000),
      ...(context === undefined ? {} : { context }),
    };
    this.phases.push(phase);
    this.logContainer(`Phase complete: ${name} State: ${phase.status}`);
    this.logContainer(
      `Phase context status code: ${context?.statusCode ?? ''} Message: ${context?.message ?? ''}`,
    );
    try {
      this.options.onPhaseChange?.(phase);
    } catch {
      // A listener's failure must not change how the build ends.
    }
    return phase.status;
  }

  protected logContainer(message: string): void {
    this.log.container(message);
  }
}

function nextPhase(phases: readonly BuildPhase[]): BuildPhaseType {
  const order: BuildPhaseType[] = [
    'DOWNLOAD_SOURCE',
    'INSTALL',
    'PRE_BUILD',
    'BUILD',
    'POST_BUILD',
    'UPLOAD_ARTIFACTS',
  ];
  const last = phases.at(-1)?.name ?? 'DOWNLOAD_SOURCE';
  return order[order.indexOf(last) + 1] ?? 'FINALIZING';
}
