import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { constants as osConstants, tmpdir } from 'node:os';
import path from 'node:path';
import picomatch from 'picomatch';
import {
  type ArtifactSpec,
  BUILDSPEC_PHASES,
  type Buildspec,
  BuildspecError,
  type BuildspecPhaseName,
  type Phase,
  parseBuildspec,
  type ReportFileFormat,
} from '#local/codebuild/buildspec.ts';

/**
 * The local build runner: runs a buildspec (version 0.2) on this machine, in a checkout of the pushed
 * commit, with the host's tools and no container. It keeps CodeBuild's semantics where they show:
 * one shell for the whole build (variables, `cd` and functions carry over), the phase transitions and
 * `on-failure`, `finally`, `CODEBUILD_BUILD_SUCCEEDING`, Parameter Store and Secrets Manager values
 * injected and masked in the log, exported variables, artifacts, reports, timeout and stop.
 * Nothing is simulated: a command whose tool is missing fails, naming the tool.
 */

export type BuildStatus = 'SUCCEEDED' | 'FAILED' | 'FAULT' | 'TIMED_OUT' | 'STOPPED';
export type PhaseStatus = BuildStatus;

/** The phases a local build reports, with CodeBuild's names, in order. */
export type BuildPhaseType =
  | 'DOWNLOAD_SOURCE'
  | 'INSTALL'
  | 'PRE_BUILD'
  | 'BUILD'
  | 'POST_BUILD'
  | 'UPLOAD_ARTIFACTS'
  | 'FINALIZING';

/** CodeBuild's phase context: why a phase ended as it did. */
export interface PhaseContext {
  statusCode: string;
  message: string;
}

/** One finished phase, as CodeBuild's "Build Phase Change" event describes it. */
export interface BuildPhase {
  name: BuildPhaseType;
  status: PhaseStatus;
  start: Date;
  end: Date;
  durationSeconds: number;
  context?: PhaseContext;
}

/** A variable given to the build: plain text, or the name of a parameter / secret to read. */
export type EnvironmentValue =
  | string
  | { type: 'PLAINTEXT' | 'PARAMETER_STORE' | 'SECRETS_MANAGER'; value: string };

/** Where log lines go as they happen: a callback (one line, no newline) or a writable stream. */
export type BuildLogSink = ((line: string) => void) | { write(chunk: string): unknown };

export interface RunBuildOptions {
  /** The parsed buildspec, or its YAML text (then a YAML_FILE_ERROR fails DOWNLOAD_SOURCE, as in CodeBuild). */
  buildspec: Buildspec | string;
  /** The buildspec's file name, for the log and error messages. */
  buildspecSource?: string;
  /** The checkout of the pushed commit; becomes CODEBUILD_SRC_DIR and the shell's working directory. */
  workDir: string;
  /**
   * Variables with start-build precedence (over the buildspec's): the state machine's
   * EnvironmentVariablesOverride and the CODEBUILD_* values the caller knows (CODEBUILD_BUILD_ID,
   * CODEBUILD_SOURCE_VERSION, CODEBUILD_RESOLVED_SOURCE_VERSION, CODEBUILD_INITIATOR, …).
   */
  env?: Readonly<Record<string, EnvironmentValue>>;
  /** Stands in for Parameter Store and Secrets Manager: name (or secret id) → value. */
  parameters?: Readonly<Record<string, string>>;
  /** The build timeout; CodeBuild's default is 60 minutes. */
  timeoutSeconds?: number;
  log?: BuildLogSink;
  /** Called as each phase ends, in order, so the caller can emit "Build Phase Change" events. */
  onPhaseChange?: (phase: BuildPhase) => void;
  /** Aborting it stops the build (status STOPPED). */
  signal?: AbortSignal;
  /** Where artifacts are copied: `<artifactsDir>/primary`, `<artifactsDir>/secondary/<identifier>`. */
  artifactsDir?: string;
  /** The host environment the build starts from (PATH, HOME, …). Defaults to this process's environment. */
  hostEnv?: Readonly<Record<string, string | undefined>>;
}

export interface ArtifactResult {
  primary: boolean;
  /** The secondary artifact's identifier; absent for the primary artifact. */
  identifier?: string;
  /** `artifacts.name`, evaluated by the build's shell at the end of POST_BUILD. */
  name?: string;
  /** The folder the files were copied to; absent when no artifactsDir was given. */
  location?: string;
  /** Output paths, relative to `location`, sorted. */
  files: string[];
}

export interface ReportSummary {
  /** The report group's name or ARN, as the buildspec gives it. */
  name: string;
  fileFormat: ReportFileFormat;
  /** Matched report files, relative to the source directory, sorted. */
  files: string[];
  /** FAILED with failures or errors; INCOMPLETE when nothing could be read. */
  status: 'SUCCEEDED' | 'FAILED' | 'INCOMPLETE';
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
  message?: string;
}

export interface BuildFailure {
  phase: BuildPhaseType;
  /** The command that failed (first line), when a command did. */
  command?: string;
  message: string;
}

export interface BuildResult {
  buildId: string;
  status: BuildStatus;
  startTime: Date;
  endTime: Date;
  phases: BuildPhase[];
  exportedVariables: { name: string; value: string }[];
  artifacts: ArtifactResult[];
  reports: ReportSummary[];
  /** The first failure, naming the phase and the command. Absent when the build succeeded. */
  failure?: BuildFailure;
}

/** Runs one build to its end. Never throws for a failing build: the result says how it ended. */
export async function runBuild(options: RunBuildOptions): Promise<BuildResult> {
  return new LocalBuild(options).run();
}

const DEFAULT_TIMEOUT_SECONDS = 60 * 60;
const OUTPUT_TAIL = 64 * 1024;

const PHASE_TYPES: Record<BuildspecPhaseName, BuildPhaseType> = {
  install: 'INSTALL',
  pre_build: 'PRE_BUILD',
  build: 'BUILD',
  post_build: 'POST_BUILD',
};

interface CommandFailure {
  command: string;
  statusCode: string;
  message: string;
  output: string;
}

type PhaseOutcome = { status: PhaseStatus; context?: PhaseContext; failure?: CommandFailure };

class LocalBuild {
  private readonly options: RunBuildOptions;
  private readonly workDir: string;
  private readonly buildId: string;
  private readonly startTime = new Date();
  private readonly mask = new SecretMask();
  private readonly phases: BuildPhase[] = [];
  private readonly shells: ShellSession[] = [];
  private spec: Buildspec | undefined;
  private shellEnv: Record<string, string> = {};
  private shellKind: ShellKind = { path: 'bash', bash: true };
  private stateDir: string | undefined;
  private succeeding = true;
  private stopReason: 'TIMED_OUT' | 'STOPPED' | undefined;
  private runningCommand: string | undefined;
  private failure: BuildFailure | undefined;
  private fault = false;
  private notExported = new Set<string>();

  constructor(options: RunBuildOptions) {
    this.options = options;
    this.workDir = path.resolve(options.workDir);
    const given = options.env?.CODEBUILD_BUILD_ID;
    this.buildId = typeof given === 'string' ? given : `stepline-local:${randomUUID()}`;
  }

  async run(): Promise<BuildResult> {
    const { signal } = this.options;
    const timeoutSeconds = this.options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
    const timer = setTimeout(() => this.stop('TIMED_OUT'), timeoutSeconds * 1000);
    const onAbort = () => this.stop('STOPPED');
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) this.stop('STOPPED');

    let exportedVariables: { name: string; value: string }[] = [];
    let artifacts: ArtifactResult[] = [];
    let reports: ReportSummary[] = [];
    try {
      this.stateDir = await mkdtemp(path.join(tmpdir(), 'stepline-build-'));
      const ready = await this.downloadSource();
      if (ready && !this.stopReason) {
        const reachesUpload = await this.runBuildspecPhases();
        let artifactNames: (string | undefined)[] = [];
        if (!this.stopReason && !this.fault) {
          ({ exportedVariables, artifactNames } = await this.captureFinalValues());
        }
        if (reachesUpload && !this.stopReason && !this.fault) {
          ({ artifacts, reports } = await this.uploadArtifacts(artifactNames));
        }
      }
    } catch (error) {
      this.fault = true;
      const message = `Local build runner fault: ${error instanceof Error ? error.message : String(error)}`;
      this.logContainer(message);
      this.failure ??= { phase: this.phases.at(-1)?.name ?? 'DOWNLOAD_SOURCE', message };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      for (const shell of this.shells) shell.kill();
    }

    if (this.stopReason !== undefined && this.failure === undefined) {
      const phase = this.phases.at(-1)?.name ?? 'DOWNLOAD_SOURCE';
      this.failure = {
        phase,
        message: this.stopReason === 'TIMED_OUT' ? 'Build timed out' : 'Build was stopped',
      };
    }
    const finalizing = new Date();
    this.finishPhase('FINALIZING', finalizing, { status: 'SUCCEEDED' });
    if (this.stateDir !== undefined) await rm(this.stateDir, { recursive: true, force: true });

    const status = this.buildStatus();
    this.logContainer(`Build ${status === 'SUCCEEDED' ? 'succeeded' : `ended with status ${status}`}`);
    return {
      buildId: this.buildId,
      status,
      startTime: this.startTime,
      endTime: new Date(),
      phases: this.phases,
      exportedVariables,
      artifacts,
      reports,
      ...(this.failure === undefined ? {} : { failure: this.failure }),
    };
  }

  private buildStatus(): BuildStatus {
    if (this.stopReason) return this.stopReason;
    if (this.fault) return 'FAULT';
    return this.phases.some((phase) => phase.status !== 'SUCCEEDED') ? 'FAILED' : 'SUCCEEDED';
  }

  private stop(reason: 'TIMED_OUT' | 'STOPPED'): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.logContainer(reason === 'TIMED_OUT' ? 'Build has timed out' : 'Build was stopped');
    for (const shell of this.shells) shell.kill();
  }

  // DOWNLOAD_SOURCE: the caller made the checkout; here the buildspec is read and the variables resolved.
  private async downloadSource(): Promise<boolean> {
    const start = new Date();
    this.logContainer('Running on the stepline local build runner: host tools, no container');
    this.logContainer(`CODEBUILD_SRC_DIR=${this.workDir}`);
    const fail = (statusCode: string, message: string) => {
      this.finishPhase('DOWNLOAD_SOURCE', start, { status: 'FAILED', context: { statusCode, message } });
      this.failure ??= { phase: 'DOWNLOAD_SOURCE', message: `Phase DOWNLOAD_SOURCE failed: ${message}` };
      return false;
    };

    const workDir = await stat(this.workDir).catch(() => undefined);
    if (!workDir?.isDirectory())
      return fail('CLIENT_ERROR', `source directory ${this.workDir} does not exist`);

    if (this.options.buildspecSource !== undefined)
      this.logContainer(`YAML location is ${this.options.buildspecSource}`);
    let spec: Buildspec;
    try {
      spec =
        typeof this.options.buildspec === 'string'
          ? parseBuildspec(this.options.buildspec, this.options.buildspecSource)
          : this.options.buildspec;
    } catch (error) {
      if (error instanceof BuildspecError)
        return fail('YAML_FILE_ERROR', error.message.replace(/^YAML_FILE_ERROR: /, ''));
      throw error;
    }
    this.spec = spec;

    const shell = shellKind(spec.env.shell);
    if (shell === undefined) {
      return fail(
        'CLIENT_ERROR',
        `shell "${spec.env.shell}" is not supported by the local runner (use bash or /bin/sh)`,
      );
    }
    this.shellKind = shell;

    this.logContainer('Processing environment variables');
    const resolved = this.resolveVariables(spec);
    if ('missing' in resolved) return fail('Decrypted Variables Error', resolved.missing.join('; '));
    this.shellEnv = resolved.env;
    this.finishPhase('DOWNLOAD_SOURCE', start, { status: 'SUCCEEDED' });
    return true;
  }

  /** Host < buildspec variables < parameter-store < secrets-manager < start-build overrides < CODEBUILD_*. */
  private resolveVariables(spec: Buildspec): { env: Record<string, string> } | { missing: string[] } {
    const parameters = this.options.parameters ?? {};
    const missing: string[] = [];
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(this.options.hostEnv ?? process.env)) {
      if (value !== undefined) env[name] = value;
    }
    Object.assign(env, spec.env.variables);

    const fromParameterStore = (variable: string, parameterName: string) => {
      const value = parameters[parameterName];
      if (value === undefined) {
        missing.push(
          `parameter does not exist: ${parameterName} (for ${variable}; not among the local parameters)`,
        );
        return;
      }
      this.mask.add(value);
      this.notExported.add(variable);
      env[variable] = value;
    };
    const fromSecretsManager = (variable: string, reference: string) => {
      const secret = readSecret(reference, parameters);
      if ('problem' in secret) {
        missing.push(`${secret.problem} (for ${variable}; not among the local parameters)`);
        return;
      }
      this.mask.add(secret.value);
      this.notExported.add(variable);
      env[variable] = secret.value;
    };

    const stored = Object.entries(spec.env.parameterStore);
    if (stored.length > 0) this.logContainer('Decrypting parameter store environment variables');
    for (const [variable, parameterName] of stored) fromParameterStore(variable, parameterName);
    for (const [variable, reference] of Object.entries(spec.env.secretsManager))
      fromSecretsManager(variable, reference);
    for (const [variable, value] of Object.entries(this.options.env ?? {})) {
      if (typeof value === 'string' || value.type === 'PLAINTEXT') {
        env[variable] = typeof value === 'string' ? value : value.value;
      } else if (value.type === 'PARAMETER_STORE') {
        fromParameterStore(variable, value.value);
      } else {
        fromSecretsManager(variable, value.value);
      }
    }
    if (missing.length > 0) return { missing };

    const buildUuid = this.buildId.includes(':')
      ? this.buildId.slice(this.buildId.indexOf(':') + 1)
      : this.buildId;
    const defaults: Record<string, string> = {
      CODEBUILD_BUILD_ID: this.buildId,
      CODEBUILD_BUILD_ARN: `arn:aws:codebuild:local:000000000000:build/${this.buildId}`,
      CODEBUILD_BUILD_NUMBER: '1',
      CODEBUILD_INITIATOR: 'stepline-local',
      CODEBUILD_LOG_PATH: buildUuid,
      CODEBUILD_START_TIME: String(this.startTime.getTime()),
    };
    for (const [name, value] of Object.entries(defaults)) env[name] ??= value;
    env.CODEBUILD_SRC_DIR = this.workDir;
    env.CODEBUILD_CI = 'true';
    env.CODEBUILD_BUILD_SUCCEEDING = '1';
    return { env };
  }

  /** Runs install → pre_build → build → post_build with CodeBuild's transitions. True if UPLOAD_ARTIFACTS follows. */
  private async runBuildspecPhases(): Promise<boolean> {
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

  private async runPhase(name: BuildspecPhaseName, phase: Phase | undefined): Promise<PhaseStatus> {
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
  private async runPhaseCommands(phase: Phase): Promise<PhaseOutcome> {
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

  private async runCommand(command: string): Promise<CommandFailure | undefined> {
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

  private async setSucceeding(succeeding: boolean): Promise<void> {
    this.succeeding = succeeding;
    const shell = await this.ensureShell();
    await shell?.run(`export CODEBUILD_BUILD_SUCCEEDING=${succeeding ? 1 : 0}`, { quiet: true });
  }

  /** The build's shell; a new one, restored from the last snapshot, if a command ended the previous one. */
  private async ensureShell(): Promise<ShellSession | undefined> {
    const current = this.shells.at(-1);
    if (current?.alive) return current;
    if (this.stopReason || this.fault || current?.spawnError) return undefined;
    const stateDir = this.stateDir as string;
    const shell = new ShellSession({
      kind: this.shellKind,
      cwd: this.workDir,
      env: { ...this.shellEnv, CODEBUILD_BUILD_SUCCEEDING: this.succeeding ? '1' : '0' },
      stateDir,
      onLine: (line) => this.emit(line),
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

  /** After POST_BUILD: the exported variables' values and the artifacts' names, read by the build's shell. */
  private async captureFinalValues(): Promise<{
    exportedVariables: { name: string; value: string }[];
    artifactNames: (string | undefined)[];
  }> {
    const spec = this.spec as Buildspec;
    const stateDir = this.stateDir as string;
    const names = spec.env.exportedVariables.filter((name) => {
      const refused = name.startsWith('AWS_') || this.notExported.has(name);
      if (refused)
        this.logContainer(`Variable ${name} is not exported: secrets and AWS_ variables cannot be exported`);
      return !refused;
    });
    const artifactSpecs = this.artifactSpecs();
    if (names.length === 0 && artifactSpecs.every((artifact) => artifact.spec.name === undefined)) {
      return { exportedVariables: [], artifactNames: [] };
    }
    const script = [
      ...names.map(
        (name) =>
          `if [ -n "\${${name}+x}" ]; then printf '%s' "$${name}" > ${shellQuote(path.join(stateDir, `export.${name}`))}; fi`,
      ),
      ...artifactSpecs.flatMap(({ spec: artifact }, index) =>
        artifact.name === undefined
          ? []
          : [
              `cat > ${shellQuote(path.join(stateDir, `artifact-name.${index}`))} <<__STEPLINE_ARTIFACT_NAME__`,
              artifact.name,
              '__STEPLINE_ARTIFACT_NAME__',
            ],
      ),
    ].join('\n');
    const shell = await this.ensureShell();
    if (shell === undefined) return { exportedVariables: [], artifactNames: [] };
    await shell.run(script, { quiet: true });

    const read = (file: string) => readFile(path.join(stateDir, file), 'utf8').catch(() => undefined);
    const exportedVariables: { name: string; value: string }[] = [];
    for (const name of names) {
      const value = await read(`export.${name}`);
      if (value !== undefined) exportedVariables.push({ name, value });
    }
    const artifactNames = await Promise.all(
      artifactSpecs.map(async ({ spec: artifact }, index) => {
        if (artifact.name === undefined) return undefined;
        const evaluated = (await read(`artifact-name.${index}`))?.replace(/\n$/, '');
        return evaluated === undefined || evaluated === '' ? artifact.name : evaluated;
      }),
    );
    return { exportedVariables, artifactNames };
  }

  private artifactSpecs(): { identifier?: string; spec: ArtifactSpec }[] {
    const artifacts = this.spec?.artifacts;
    if (artifacts === undefined) return [];
    return [
      { spec: artifacts },
      ...Object.entries(artifacts.secondaryArtifacts).map(([identifier, spec]) => ({ identifier, spec })),
    ];
  }

  private async uploadArtifacts(
    artifactNames: (string | undefined)[],
  ): Promise<{ artifacts: ArtifactResult[]; reports: ReportSummary[] }> {
    const start = new Date();
    this.logContainer('Entering phase UPLOAD_ARTIFACTS');
    const reports = await summariseReports(this.spec?.reports ?? {}, this.workDir);
    for (const report of reports) {
      this.logContainer(
        `Report ${report.name}: ${report.status}, ${report.tests} tests, ${report.failures} failures, ${report.errors} errors, ${report.skipped} skipped${report.message ? ` (${report.message})` : ''}`,
      );
    }

    const artifacts: ArtifactResult[] = [];
    const { artifactsDir } = this.options;
    for (const [index, { identifier, spec }] of this.artifactSpecs().entries()) {
      const location =
        artifactsDir === undefined
          ? undefined
          : identifier === undefined
            ? path.join(artifactsDir, 'primary')
            : path.join(artifactsDir, 'secondary', identifier);
      const collected = await collectArtifact(spec, this.workDir, location);
      if ('problem' in collected) {
        const message = collected.problem;
        this.failure ??= {
          phase: 'UPLOAD_ARTIFACTS',
          message: `Phase UPLOAD_ARTIFACTS failed: ${message}${identifier ? ` (secondary artifact ${identifier})` : ''}`,
        };
        this.finishPhase('UPLOAD_ARTIFACTS', start, {
          status: 'FAILED',
          context: { statusCode: 'CLIENT_ERROR', message },
        });
        return { artifacts, reports };
      }
      const name = artifactNames[index];
      artifacts.push({
        primary: identifier === undefined,
        ...(identifier === undefined ? {} : { identifier }),
        ...(name === undefined ? {} : { name }),
        ...(location === undefined ? {} : { location }),
        files: collected.files,
      });
      this.logContainer(
        `Artifact ${identifier ?? 'primary'}: ${collected.files.length} file(s)${location ? ` in ${location}` : ''}`,
      );
    }
    this.finishPhase(
      'UPLOAD_ARTIFACTS',
      start,
      this.stopReason ? { status: this.stopReason } : { status: 'SUCCEEDED' },
    );
    return { artifacts, reports };
  }

  private finishPhase(name: BuildPhaseType, start: Date, outcome: PhaseOutcome): PhaseStatus {
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

  private logContainer(message: string): void {
    const [first = '', ...rest] = message.split('\n');
    this.emit(`[Container] ${logTime(new Date())} ${first}`);
    for (const line of rest) this.emit(line);
  }

  private emit(line: string): void {
    const masked = this.mask.apply(line);
    const sink = this.options.log;
    try {
      if (typeof sink === 'function') sink(masked);
      else sink?.write(`${masked}\n`);
    } catch {
      // A broken log sink must not break the build.
    }
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

function firstLine(command: string): string {
  const lines = command.trim().split('\n');
  const first = lines[0] ?? '';
  return lines.length > 1 ? `${first} …` : first;
}

/** `2025/07/31 05:37:55.831000`, in UTC, as CodeBuild's `[Container]` lines show time. */
function logTime(date: Date): string {
  const pad = (value: number, width = 2) => String(value).padStart(width, '0');
  return (
    `${date.getUTCFullYear()}/${pad(date.getUTCMonth() + 1)}/${pad(date.getUTCDate())} ` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}.${pad(date.getUTCMilliseconds(), 3)}000`
  );
}

/** The program the shell could not find, from its "not found" message, else the command's first word. */
function missingTool(output: string, command: string): string | undefined {
  // bash: "…: line 1: terraform: command not found"; dash: "sh: 1: …: terraform: not found".
  const reported = /:\s*([^\s:]+): (?:command )?not found\s*$/m.exec(output);
  if (reported?.[1] !== undefined) return reported[1];
  return /^\s*([^\s;&|<>()]+)/.exec(command)?.[1];
}

function readSecret(
  reference: string,
  parameters: Readonly<Record<string, string>>,
): { value: string } | { problem: string } {
  const direct = parameters[reference];
  if (direct !== undefined) return { value: direct };
  // <secret-id>:<json-key>:<version-stage>:<version-id>; an ARN secret id holds 7 colon-separated parts.
  const parts = reference.split(':');
  const idParts = reference.startsWith('arn:') ? 7 : 1;
  const secretId = parts.slice(0, idParts).join(':');
  const jsonKey = parts[idParts];
  const raw = parameters[secretId];
  if (raw === undefined) return { problem: `secret does not exist: ${secretId}` };
  if (jsonKey === undefined || jsonKey === '') return { value: raw };
  let document: unknown;
  try {
    document = JSON.parse(raw);
  } catch {
    return { problem: `secret ${secretId} is not JSON, so it has no key ${jsonKey}` };
  }
  const value =
    document !== null && typeof document === 'object'
      ? (document as Record<string, unknown>)[jsonKey]
      : undefined;
  if (value === undefined) return { problem: `secret ${secretId} has no JSON key ${jsonKey}` };
  return { value: typeof value === 'string' ? value : JSON.stringify(value) };
}

/** Replaces every secret value with `***`, as CodeBuild masks Parameter Store and Secrets Manager values. */
class SecretMask {
  private values: string[] = [];

  add(value: string): void {
    const candidates = [value, ...value.split('\n').map((line) => line.trim())].filter((item) => item !== '');
    this.values = [...new Set([...this.values, ...candidates])].sort((a, b) => b.length - a.length);
  }

  apply(text: string): string {
    let masked = text;
    for (const value of this.values) masked = masked.replaceAll(value, '***');
    // CodeBuild also hides AWS access key ids.
    return masked.replace(/\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, '***');
  }
}

interface ShellKind {
  path: string;
  /** bash snapshots all variables and functions; a POSIX sh only its exported variables. */
  bash: boolean;
}

function shellKind(shell: string | undefined): ShellKind | undefined {
  if (shell === undefined || shell === 'bash') return { path: 'bash', bash: true };
  if (/\.exe$|^cmd$/i.test(shell)) return undefined;
  return { path: shell, bash: path.basename(shell) === 'bash' };
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

interface CommandOutcome {
  exitCode: number;
  shellAlive: boolean;
  /** The command's output (stdout and stderr, last 64 KiB), for messages and retry patterns. */
  output: string;
}

/**
 * One shell process, in its own process group, fed through stdin. Each command is written to a file
 * and sourced, so it runs in this shell (variables, `cd`, functions stay) while a syntax error in it
 * cannot swallow what follows; a marker line with a random token then reports its exit status.
 * After each command the variables and directory are saved, so that a command which ends the shell
 * (`exit 1`, `set -e`) leaves a state the next shell can be restored from.
 */
class ShellSession {
  alive = true;
  spawnError: Error | undefined;
  private readonly child: ChildProcess;
  private readonly watchdog: ChildProcess | undefined;
  private readonly kind: ShellKind;
  private readonly stateDir: string;
  private readonly onLine: (line: string) => void;
  private readonly token = randomBytes(12).toString('hex');
  private readonly marker: RegExp;
  private readonly stdoutEnded: Promise<void>;
  private buffer = '';
  private sequence = 0;
  private exitStatus = 0;
  private finished = false;
  private pending:
    | { id: number; output: OutputTail; quiet: boolean; resolve: (outcome: CommandOutcome) => void }
    | undefined;

  constructor(options: {
    kind: ShellKind;
    cwd: string;
    env: Record<string, string>;
    stateDir: string;
    onLine: (line: string) => void;
  }) {
    this.kind = options.kind;
    this.stateDir = options.stateDir;
    this.onLine = options.onLine;
    this.marker = new RegExp(`\\x1e${this.token} (\\d+) (\\d+)\\x1e\\n`);
    const args = options.kind.bash ? ['--noprofile', '--norc', '-s'] : ['-s'];
    // detached: the shell leads its own process group, so a timeout can kill it with all its children.
    this.child = spawn(options.kind.path, args, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.watchdog = this.child.pid === undefined ? undefined : startWatchdog(this.child.pid);
    const { stdin, stdout, stderr } = this.child as ChildProcess & {
      stdin: NodeJS.WritableStream;
      stdout: NodeJS.ReadableStream;
      stderr: NodeJS.ReadableStream;
    };
    stdin.on('error', () => {
      // The shell has gone; its exit is reported through the 'exit' event.
    });
    stdout.setEncoding('utf8');
    stderr.setEncoding('utf8');
    this.stdoutEnded = new Promise((resolve) => stdout.once('end', () => resolve()));
    stdout.on('data', (chunk: string) => this.receive(chunk));
    let stderrRest = '';
    stderr.on('data', (chunk: string) => {
      const lines = (stderrRest + chunk).split('\n');
      stderrRest = lines.pop() ?? '';
      for (const line of lines) this.onLine(line);
    });
    this.child.on('error', (error) => {
      this.spawnError = error;
      this.alive = false;
      this.finish(-1);
    });
    this.child.on('exit', (code, signal) => {
      const status = code ?? 128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0));
      this.alive = false;
      this.exitStatus = status;
      // Output written just before the exit may still be in the pipe; wait for it briefly. Background
      // processes may hold the pipe open, so the wait is bounded.
      let timer: NodeJS.Timeout | undefined;
      const drained = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 200);
      });
      void Promise.race([this.stdoutEnded, drained]).then(() => {
        clearTimeout(timer);
        this.finish(status);
      });
    });
    // Merge stderr into stdout, so the log keeps the order in which the build wrote.
    stdin.write('exec 2>&1\n');
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Runs a script in this shell and resolves with its exit status. */
  async run(script: string, options: { quiet?: boolean } = {}): Promise<CommandOutcome> {
    if (!this.alive) return { exitCode: this.exitStatus, shellAlive: false, output: '' };
    this.sequence += 1;
    const id = this.sequence;
    const file = path.join(this.stateDir, `step-${id}.sh`);
    await writeFile(file, `${script}\n`, { mode: 0o600 });
    const vars = shellQuote(path.join(this.stateDir, 'vars.sh'));
    const cwd = shellQuote(path.join(this.stateDir, 'cwd'));
    const snapshot = this.kind.bash ? '{ declare -p; declare -f; set +o; }' : '{ export -p; set +o; }';
    const chunk = [
      `. ${shellQuote(file)} </dev/null`,
      '__stepline_status=$?',
      `${snapshot} > ${vars} 2>/dev/null || :`,
      `pwd > ${cwd} 2>/dev/null || :`,
      `printf '\\036%s %s %s\\036\\n' '${this.token}' ${id} "$__stepline_status"`,
      '',
    ].join('\n');
    return new Promise((resolve) => {
      if (!this.alive) {
        resolve({ exitCode: this.exitStatus, shellAlive: false, output: '' });
        return;
      }
      this.pending = { id, output: new OutputTail(), quiet: options.quiet ?? false, resolve };
      (this.child.stdin as NodeJS.WritableStream).write(chunk);
    });
  }

  /** Kills the shell's whole process group. */
  kill(): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    this.watchdog?.kill('SIGKILL');
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    for (let match = this.marker.exec(this.buffer); match !== null; match = this.marker.exec(this.buffer)) {
      this.emitText(this.buffer.slice(0, match.index), true);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const pending = this.pending;
      if (pending !== undefined && pending.id === Number(match[1])) {
        this.pending = undefined;
        pending.resolve({ exitCode: Number(match[2]), shellAlive: true, output: pending.output.text() });
      }
    }
    const lastNewline = this.buffer.lastIndexOf('\n');
    if (lastNewline >= 0) {
      this.emitText(this.buffer.slice(0, lastNewline + 1), false);
      this.buffer = this.buffer.slice(lastNewline + 1);
    } else if (this.buffer.length > OUTPUT_TAIL && !this.buffer.includes('\x1e')) {
      this.emitText(this.buffer, true);
      this.buffer = '';
    }
  }

  private emitText(text: string, flushPartial: boolean): void {
    if (text === '') return;
    const lines = text.split('\n');
    const last = lines.pop() ?? '';
    if (flushPartial && last !== '') lines.push(last);
    for (const raw of lines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (this.pending !== undefined) this.pending.output.add(line);
      if (!this.pending?.quiet) this.onLine(line);
    }
  }

  private finish(status: number): void {
    if (this.finished) return;
    this.finished = true;
    this.exitStatus = status;
    this.emitText(this.buffer, true);
    this.buffer = '';
    const pending = this.pending;
    this.pending = undefined;
    pending?.resolve({ exitCode: status, shellAlive: false, output: pending.output.text() });
  }
}

/**
 * Kills the process group `pgid` when this process dies, however it dies. A build's shell leads its own
 * group, so when the runtime is killed (SIGKILL, a crash, Ctrl-C on a command with no handler) nothing
 * else stops it or what it runs: a `sleep 60` would outlive stepline. The watchdog, in a group of its own
 * (a terminal's Ctrl-C does not reach it), waits on a pipe whose only writer is this process; the pipe
 * closes when this process exits, and the watchdog then kills the group. {@link ShellSession.kill} kills
 * the watchdog with the group.
 */
function startWatchdog(pgid: number): ChildProcess | undefined {
  try {
    const watchdog = spawn(
      'sh',
      ['-c', 'read _ 2>/dev/null; kill -KILL -"$1" 2>/dev/null', 'stepline-watchdog', String(pgid)],
      // Only PATH: the runtime's environment holds stepline's secrets, which builds never get either.
      {
        detached: true,
        stdio: ['pipe', 'ignore', 'ignore'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      },
    );
    watchdog.on('error', () => {
      // No sh to run it: the group is still killed when the build ends normally.
    });
    watchdog.stdin?.on('error', () => undefined);
    // It must not keep the runtime alive by itself.
    watchdog.unref();
    (watchdog.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null)?.unref?.();
    return watchdog;
  } catch {
    return undefined;
  }
}

/** The last 64 KiB of a command's output, kept line by line. */
class OutputTail {
  private lines: string[] = [];
  private length = 0;

  add(line: string): void {
    this.lines.push(line);
    this.length += line.length + 1;
    while (this.length > OUTPUT_TAIL && this.lines.length > 1) {
      this.length -= (this.lines.shift() ?? '').length + 1;
    }
  }

  text(): string {
    return this.lines.map((line) => `${line}\n`).join('');
  }
}

/** Relative paths of the files under `root` (symbolic links to files included), with `/` separators. */
async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  const files: string[] = [];
  for (const entry of entries) {
    const full = path.join(entry.parentPath, entry.name);
    const isFile =
      entry.isFile() || (entry.isSymbolicLink() && (await stat(full).catch(() => undefined))?.isFile());
    if (isFile) files.push(path.relative(root, full).split(path.sep).join('/'));
  }
  return files.sort();
}

function normalisePattern(pattern: string): string {
  return pattern
    .trim()
    .replace(/^(\.\/)+/, '')
    .replace(/\/+$/, '');
}

/** The folders `base-directory` names, relative to the source; a glob matches top-level folders. */
async function baseDirectories(
  workDir: string,
  baseDirectory: string | undefined,
): Promise<string[] | { problem: string }> {
  if (baseDirectory === undefined) return [workDir];
  const pattern = normalisePattern(baseDirectory);
  if (!picomatch.scan(pattern).isGlob) {
    const folder = path.resolve(workDir, pattern);
    if (folder !== workDir && !folder.startsWith(`${workDir}${path.sep}`)) {
      return { problem: `base-directory ${baseDirectory} is outside the source directory` };
    }
    return [folder];
  }
  const isMatch = picomatch(pattern, { dot: true });
  const entries = await readdir(workDir, { withFileTypes: true });
  return entries
    .filter((entry) => entry.isDirectory() && isMatch(entry.name))
    .map((entry) => path.join(workDir, entry.name))
    .sort();
}

/** The files a `files` / `base-directory` / `exclude-paths` selection names, with their output paths. */
async function selectFiles(
  selection: {
    files: string[];
    baseDirectory?: string | undefined;
    excludePaths?: string[];
    discardPaths: boolean;
  },
  workDir: string,
): Promise<{ source: string; output: string }[] | { problem: string }> {
  const bases = await baseDirectories(workDir, selection.baseDirectory);
  if ('problem' in bases) return bases;
  const isIncluded = picomatch(selection.files.map(normalisePattern), { dot: true });
  const excludes = (selection.excludePaths ?? []).map(normalisePattern);
  const isExcluded = excludes.length === 0 ? () => false : picomatch(excludes, { dot: true });
  const selected: { source: string; output: string }[] = [];
  for (const base of bases) {
    for (const file of await listFiles(base)) {
      if (!isIncluded(file) || isExcluded(file)) continue;
      selected.push({
        source: path.join(base, file),
        output: selection.discardPaths ? path.posix.basename(file) : file,
      });
    }
  }
  return selected;
}

async function collectArtifact(
  spec: ArtifactSpec,
  workDir: string,
  location: string | undefined,
): Promise<{ files: string[] } | { problem: string }> {
  const selected = await selectFiles(spec, workDir);
  if ('problem' in selected) return selected;
  if (selected.length === 0) return { problem: 'no matching artifact paths found' };
  for (const { source, output } of selected) {
    if (location === undefined) break;
    const target = path.join(location, output);
    await mkdir(path.dirname(target), { recursive: true });
    await copyFile(source, target);
  }
  return { files: [...new Set(selected.map(({ output }) => output))].sort() };
}

async function summariseReports(reports: Buildspec['reports'], workDir: string): Promise<ReportSummary[]> {
  const summaries: ReportSummary[] = [];
  for (const [name, group] of Object.entries(reports)) {
    const empty = { name, fileFormat: group.fileFormat, tests: 0, failures: 0, errors: 0, skipped: 0 };
    const selected = await selectFiles({ ...group, discardPaths: false }, workDir);
    if ('problem' in selected) {
      summaries.push({ ...empty, files: [], status: 'INCOMPLETE', message: selected.problem });
      continue;
    }
    const files = selected
      .map(({ source }) => path.relative(workDir, source).split(path.sep).join('/'))
      .sort();
    if (files.length === 0) {
      summaries.push({ ...empty, files, status: 'INCOMPLETE', message: 'no report files matched' });
      continue;
    }
    if (group.fileFormat !== 'JUNITXML') {
      summaries.push({
        ...empty,
        files,
        status: 'INCOMPLETE',
        message: `${group.fileFormat} reports are not summarised locally`,
      });
      continue;
    }
    const totals = { tests: 0, failures: 0, errors: 0, skipped: 0 };
    const unreadable: string[] = [];
    for (const file of files) {
      const summary = summariseJUnitXml(await readFile(path.join(workDir, file), 'utf8'));
      if (summary === undefined) {
        unreadable.push(file);
        continue;
      }
      totals.tests += summary.tests;
      totals.failures += summary.failures;
      totals.errors += summary.errors;
      totals.skipped += summary.skipped;
    }
    const status =
      totals.failures + totals.errors > 0
        ? 'FAILED'
        : unreadable.length === files.length
          ? 'INCOMPLETE'
          : 'SUCCEEDED';
    summaries.push({
      ...empty,
      ...totals,
      files,
      status,
      ...(unreadable.length === 0 ? {} : { message: `not JUnit XML: ${unreadable.join(', ')}` }),
    });
  }
  return summaries;
}

export interface JUnitSummary {
  tests: number;
  failures: number;
  errors: number;
  skipped: number;
}

/**
 * Sums the `tests`, `failures`, `errors` and `skipped` attributes of a JUnit XML file's `<testsuite>`
 * elements (or of its `<testsuites>` root, or counts `<testcase>` elements when neither carries them).
 * A scan of start tags is enough for these counts; undefined when the text holds no test suite.
 */
export function summariseJUnitXml(xml: string): JUnitSummary | undefined {
  const text = xml.replace(/<!--[\s\S]*?-->/g, '').replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '');
  const attributesOf = (tag: string) => {
    const attributes: Record<string, number> = {};
    for (const [, name, doubleQuoted, singleQuoted] of tag.matchAll(
      /([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g,
    )) {
      const value = Number(doubleQuoted ?? singleQuoted);
      if (name !== undefined && Number.isFinite(value)) attributes[name] = value;
    }
    return attributes;
  };
  const fromAttributes = (attributes: Record<string, number>): JUnitSummary => ({
    tests: attributes.tests ?? 0,
    failures: attributes.failures ?? 0,
    errors: attributes.errors ?? 0,
    skipped: attributes.skipped ?? attributes.skip ?? 0,
  });
  const suites = [...text.matchAll(/<testsuite(?=[\s>/])([^>]*)>/g)].map((match) =>
    attributesOf(match[1] ?? ''),
  );
  if (suites.length > 0 && suites.every((suite) => suite.tests !== undefined)) {
    return suites.map(fromAttributes).reduce((sum, suite) => ({
      tests: sum.tests + suite.tests,
      failures: sum.failures + suite.failures,
      errors: sum.errors + suite.errors,
      skipped: sum.skipped + suite.skipped,
    }));
  }
  const root = /<testsuites(?=[\s>/])([^>]*)>/.exec(text);
  const rootAttributes = attributesOf(root?.[1] ?? '');
  if (rootAttributes.tests !== undefined) return fromAttributes(rootAttributes);
  const testcases = text.match(/<testcase(?=[\s>/])/g)?.length ?? 0;
  if (testcases === 0 && suites.length === 0 && root === null) return undefined;
  const count = (tag: string) => text.match(new RegExp(`<${tag}(?=[\\s>/])`, 'g'))?.length ?? 0;
  return { tests: testcases, failures: count('failure'), errors: count('error'), skipped: count('skipped') };
}
