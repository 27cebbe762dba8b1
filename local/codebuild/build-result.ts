import type { Buildspec, ReportFileFormat } from './buildspec.ts';
import type { SandboxWrap } from './sandbox.ts';

/** What a local build is given and what it reports, with CodeBuild's names and statuses. */

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
  /**
   * The host environment the build takes its allowed variables from (PATH, HOME, …; see
   * build-variables.ts). Defaults to this process's environment.
   */
  hostEnv?: Readonly<Record<string, string | undefined>>;
  /** Wraps the build's shell in a sandbox (sandbox.ts); absent, the shell runs on the host as it is. */
  sandbox?: SandboxWrap;
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

/** A failed test case, with CodeBuild's names for it (a TestCase of DescribeTestCases). */
export interface FailedTestCase {
  name: string;
  /** The class name or suite the case belongs to. */
  prefix?: string;
  status: 'FAILED' | 'ERROR';
  message?: string;
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
  /** The failed test cases (at most 20), for JUnit reports. */
  failedCases?: FailedTestCase[];
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
