import { mkdtempSync, rmSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { uploadArtifacts } from './artifacts.ts';
import { PhasedBuild } from './build-phases.ts';
import type {
  ArtifactResult,
  BuildResult,
  BuildStatus,
  ReportSummary,
  RunBuildOptions,
} from './build-result.ts';
import { readFinalValues, resolveVariables } from './build-variables.ts';
import type { Buildspec } from './buildspec.ts';
import { summariseReports } from './reports.ts';
import { shellKind } from './shell-session.ts';

/**
 * The local build runner: runs a buildspec (version 0.2) on this machine, in a checkout of the pushed
 * commit, with the host's tools and no container. It keeps CodeBuild's semantics where they show:
 * one shell for the whole build (variables, `cd` and functions carry over), the phase transitions and
 * `on-failure`, `finally`, `CODEBUILD_BUILD_SUCCEEDING`, Parameter Store and Secrets Manager values
 * injected and masked in the log, exported variables, artifacts, reports, timeout and stop.
 * Nothing is simulated: a command whose tool is missing fails, naming the tool.
 */

export type {
  ArtifactResult,
  BuildFailure,
  BuildLogSink,
  BuildPhase,
  BuildPhaseType,
  BuildResult,
  BuildStatus,
  EnvironmentValue,
  PhaseContext,
  PhaseStatus,
  ReportSummary,
  RunBuildOptions,
} from './build-result.ts';

/** Runs one build to its end. Never throws for a failing build: the result says how it ended. */
export async function runBuild(options: RunBuildOptions): Promise<BuildResult> {
  return new LocalBuild(options).run();
}

const DEFAULT_TIMEOUT_SECONDS = 60 * 60;

/**
 * One build's life around its phases: DOWNLOAD_SOURCE (the buildspec read, variables resolved), timeout
 * and stop, the exported variables, UPLOAD_ARTIFACTS with the reports, FINALIZING and the result.
 */
class LocalBuild extends PhasedBuild {
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
      // The runner's own few small files (see ShellSession): made and removed in place, not through the
      // thread pool, where they would queue behind the store's fsyncs.
      this.stateDir = mkdtempSync(path.join(tmpdir(), 'stepline-build-'));
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
    if (this.stateDir !== undefined) rmSync(this.stateDir, { recursive: true, force: true });

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
    // The parser (and the yaml library under it) loads with the first build, not with stepline's start.
    const { BuildspecError, parseBuildspec } = await import('./buildspec.ts');
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
    const resolved = resolveVariables({
      spec,
      options: this.options,
      buildId: this.buildId,
      startTime: this.startTime,
      workDir: this.workDir,
      mask: this.mask,
      notExported: this.notExported,
      log: (message) => this.logContainer(message),
    });
    if ('missing' in resolved) return fail('Decrypted Variables Error', resolved.missing.join('; '));
    this.shellEnv = resolved.env;
    this.finishPhase('DOWNLOAD_SOURCE', start, { status: 'SUCCEEDED' });
    return true;
  }

  /** After POST_BUILD: the exported variables' values and the artifacts' names, read by the build's shell. */
  private async captureFinalValues(): Promise<{
    exportedVariables: { name: string; value: string }[];
    artifactNames: (string | undefined)[];
  }> {
    return readFinalValues({
      spec: this.spec as Buildspec,
      stateDir: this.stateDir as string,
      notExported: this.notExported,
      runQuietly: async (script) => {
        const shell = await this.ensureShell();
        await shell?.run(script, { quiet: true });
        return shell !== undefined;
      },
      log: (message) => this.logContainer(message),
    });
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

    const { artifacts, problem } = await uploadArtifacts({
      spec: this.spec,
      workDir: this.workDir,
      artifactsDir: this.options.artifactsDir,
      artifactNames,
      log: (message) => this.logContainer(message),
    });
    if (problem !== undefined) {
      const { message, identifier } = problem;
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
    this.finishPhase(
      'UPLOAD_ARTIFACTS',
      start,
      this.stopReason ? { status: this.stopReason } : { status: 'SUCCEEDED' },
    );
    return { artifacts, reports };
  }
}
