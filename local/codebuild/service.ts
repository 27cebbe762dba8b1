import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BuildPhase, type BuildResult, type ReportSummary, runBuild } from './build-runner.ts';
import { checkOutCommit, removeCheckout } from './checkout.ts';
import { ProcessOwnership, registerOwnership } from './deployed-services.ts';
import type { Sandbox } from './sandbox.ts';

/** What `codebuild:startBuild.sync` receives (the state's resolved Parameters). */
export interface StartBuildInput {
  ProjectName: string;
  SourceTypeOverride?: string;
  SourceLocationOverride?: string;
  SourceVersion?: string;
  BuildspecOverride?: string;
  EnvironmentVariablesOverride?: { Name: string; Value: string; Type?: string }[];
}

/** The `Build` of CodeBuild's BatchGetBuilds, as Step Functions returns it from `startBuild.sync`. */
export interface CodeBuildBuild {
  Id: string;
  Arn: string;
  BuildNumber: number;
  BuildStatus: BuildResult['status'];
  BuildComplete: boolean;
  CurrentPhase: string;
  ProjectName: string;
  SourceVersion: string;
  ResolvedSourceVersion: string;
  StartTime: number;
  EndTime: number;
  Phases: {
    PhaseType: string;
    PhaseStatus: string;
    StartTime: number;
    EndTime: number;
    DurationInSeconds: number;
    Contexts?: { StatusCode: string; Message: string }[];
  }[];
  Environment: { EnvironmentVariables: { Name: string; Type: string; Value: string }[] };
  ExportedEnvironmentVariables: { Name: string; Value: string }[];
  Logs: { DeepLink: string; GroupName: string; StreamName: string };
  /** The build's test reports, when its buildspec names any (CodeBuild's `reportArns`). */
  ReportArns?: string[];
}

/** A report as Step Functions' `codebuild:batchGetReports` returns it (PascalCase), as far as stepline reads it. */
export interface CodeBuildReport {
  Arn: string;
  Name: string;
  Type: 'TEST';
  Status: ReportSummary['status'];
  ReportGroupArn: string;
  ExecutionId: string;
  TestSummary: { Total: number; StatusCounts: Record<string, number> };
}

/** A local stand-in for one CodeBuild event (the "Build State Change" / "Build Phase Change" detail). */
export type BuildEvent =
  | {
      kind: 'state';
      build: CodeBuildBuild;
      status: string;
      environment: Record<string, string>;
      /** Test reports the build's `reports` found (JUnit summaries), when it ended. */
      reports?: ReportSummary[];
    }
  | { kind: 'phase'; build: CodeBuildBuild; phase: BuildPhase; environment: Record<string, string> };

export interface LocalCodeBuildOptions {
  /** `.stepline/`: checkouts go to work/, artifacts to artifacts/. */
  stateDir: string;
  region: string;
  account: string;
  /** Build timeouts by project name, from the stack's CodeBuild projects (TimeoutInMinutes). */
  timeouts: Record<string, number>;
  /** Stands in for Parameter Store and Secrets Manager. */
  parameters: () => Promise<Record<string, string>>;
  /** The host environment builds take their allowed variables from (build-variables.ts). */
  hostEnv: Record<string, string | undefined>;
  /** Variables every build gets (STEPLINE_DEPLOY_DIR). */
  extraEnv: Record<string, string>;
  /** The sandbox build shells run in (sandbox.ts). */
  sandbox?: Sandbox;
  /** Where a build's log can be read by a person (a URL of the local server). */
  logLink: (buildId: string) => string;
  appendLog: (buildId: string, text: string) => void;
  onEvent: (event: BuildEvent) => void;
}

const FAILED = 'States.TaskFailed';

/**
 * Runs `codebuild:startBuild.sync` tasks on this machine: a fresh checkout of the requested commit, the
 * buildspec at the requested path in it, run by the local build runner. Resolves with `{ Build }` like the
 * Step Functions integration; a build that does not succeed throws `States.TaskFailed` with the build
 * as JSON for cause, as Step Functions does.
 */
export class LocalCodeBuild {
  readonly #options: LocalCodeBuildOptions;
  readonly #numbers = new Map<string, number>();
  /** The reports of the builds run so far, by report ARN (CodeBuild keeps them in report groups). */
  readonly #reports = new Map<string, { report: CodeBuildReport; summary: ReportSummary }>();
  readonly #ownership = new ProcessOwnership();

  constructor(options: LocalCodeBuildOptions) {
    this.#options = options;
    registerOwnership(options.stateDir, this.#ownership);
  }

  /**
   * Runs one build to its end. It and everything it starts (a deployed service too) belong to the runtime
   * from the start: `stopDeployedServices` on the state folder stops and ends them, and should the runtime
   * die without stopping, its reaper does.
   */
  async startBuildSync(input: StartBuildInput, signal?: AbortSignal): Promise<{ Build: CodeBuildBuild }> {
    return this.#ownership.run(signal, (owned) => this.#startBuildSync(input, owned));
  }

  async #startBuildSync(input: StartBuildInput, signal: AbortSignal): Promise<{ Build: CodeBuildBuild }> {
    const o = this.#options;
    const project = input.ProjectName;
    const number = (this.#numbers.get(project) ?? 0) + 1;
    this.#numbers.set(project, number);
    const uuid = randomUUID();
    const id = `${project}:${uuid}`;
    const version = input.SourceVersion ?? 'HEAD';
    const environment = Object.fromEntries(
      (input.EnvironmentVariablesOverride ?? []).map((v) => [v.Name, v.Value]),
    );
    const start = new Date();
    const build: CodeBuildBuild = {
      Id: id,
      Arn: `arn:aws:codebuild:${o.region}:${o.account}:build/${id}`,
      BuildNumber: number,
      BuildStatus: 'SUCCEEDED',
      BuildComplete: false,
      CurrentPhase: 'SUBMITTED',
      ProjectName: project,
      SourceVersion: version,
      ResolvedSourceVersion: version,
      StartTime: start.getTime(),
      EndTime: start.getTime(),
      Phases: [],
      Environment: {
        EnvironmentVariables: (input.EnvironmentVariablesOverride ?? []).map((v) => ({
          Name: v.Name,
          Type: v.Type ?? 'PLAINTEXT',
          Value: v.Value,
        })),
      },
      ExportedEnvironmentVariables: [],
      Logs: { DeepLink: o.logLink(id), GroupName: `/aws/codebuild/${project}`, StreamName: uuid },
    };
    const log = (line: string) => o.appendLog(id, `${line}\n`);
    o.onEvent({
      kind: 'state',
      build: { ...build, BuildStatus: 'SUCCEEDED' },
      status: 'IN_PROGRESS',
      environment,
    });

    const workDir = join(o.stateDir, 'work', uuid);
    let result: BuildResult;
    // Read while the checkout runs; a failure to read still fails the build where it is awaited.
    const parameters = o.parameters();
    parameters.catch(() => undefined);
    try {
      const source = await this.#checkout(input, workDir, log);
      result = await runBuild({
        buildspec: source.buildspec,
        buildspecSource: source.buildspecPath,
        workDir,
        env: {
          ...o.extraEnv,
          CODEBUILD_BUILD_ID: id,
          CODEBUILD_BUILD_ARN: build.Arn,
          CODEBUILD_BUILD_NUMBER: String(number),
          CODEBUILD_SOURCE_VERSION: version,
          CODEBUILD_RESOLVED_SOURCE_VERSION: source.commit,
          CODEBUILD_SOURCE_REPO_URL: input.SourceLocationOverride ?? '',
          CODEBUILD_INITIATOR: 'states/stepline',
          AWS_REGION: o.region,
          AWS_DEFAULT_REGION: o.region,
          ...environment,
          ...this.#ownership.environment,
        },
        parameters: await parameters,
        timeoutSeconds: (o.timeouts[project] ?? 60) * 60,
        log,
        onPhaseChange: (phase) => o.onEvent({ kind: 'phase', build, phase, environment }),
        artifactsDir: join(o.stateDir, 'artifacts', uuid),
        hostEnv: o.hostEnv,
        ...(o.sandbox?.wrap ? { sandbox: o.sandbox.wrap } : {}),
        signal,
      });
      build.ResolvedSourceVersion = source.commit;
    } catch (error) {
      log(`[Container] ${new Date().toISOString()} ${(error as Error).message}`);
      result = sourceFailure(id, start, (error as Error).message);
    } finally {
      // The build has ended (its shells and their groups killed): the checkout goes while the state
      // machine moves on, as CodeBuild tears a container down after the build's status is known.
      this.#ownership.cleanUpAfter(() => removeCheckout(workDir));
    }

    const finished = completeBuild(build, result);
    const reportArns = result.reports.map((summary) => this.#keepReport(finished, uuid, summary));
    if (reportArns.length > 0) finished.ReportArns = reportArns;
    o.onEvent({
      kind: 'state',
      build: finished,
      status: finished.BuildStatus,
      environment,
      reports: result.reports,
    });
    if (finished.BuildStatus !== 'SUCCEEDED') {
      const error = new Error(JSON.stringify(finished));
      error.name = FAILED;
      throw error;
    }
    return { Build: finished };
  }

  /**
   * Keeps a build's report under the ARN CodeBuild would give it: in the report group
   * `<project>-<report name>` (a buildspec's report named by ARN keeps that group).
   */
  #keepReport(build: CodeBuildBuild, uuid: string, summary: ReportSummary): string {
    const o = this.#options;
    const group = summary.name.startsWith('arn:')
      ? summary.name
      : `arn:aws:codebuild:${o.region}:${o.account}:report-group/${build.ProjectName}-${summary.name}`;
    const arn = `${group.replace(':report-group/', ':report/')}:${uuid}`;
    const counts: Record<string, number> = {
      SUCCEEDED: Math.max(0, summary.tests - summary.failures - summary.errors - summary.skipped),
      FAILED: summary.failures,
      ERROR: summary.errors,
      SKIPPED: summary.skipped,
    };
    this.#reports.set(arn, {
      summary,
      report: {
        Arn: arn,
        Name: group.slice(group.indexOf(':report-group/') + ':report-group/'.length),
        Type: 'TEST',
        Status: summary.status,
        ReportGroupArn: group,
        ExecutionId: build.Arn,
        TestSummary: { Total: summary.tests, StatusCounts: counts },
      },
    });
    return arn;
  }

  /** `codebuild:batchGetReports`: the reports found, and the ARNs of those that are not. */
  batchGetReports(input: { ReportArns?: string[] }): {
    Reports: CodeBuildReport[];
    ReportsNotFound: string[];
  } {
    const arns = input.ReportArns ?? [];
    return {
      Reports: arns.flatMap((arn) => {
        const kept = this.#reports.get(arn);
        return kept ? [kept.report] : [];
      }),
      ReportsNotFound: arns.filter((arn) => !this.#reports.has(arn)),
    };
  }

  /**
   * `aws-sdk:codebuild:describeTestCases` of a report, filtered by status as the state machine asks (FAILED
   * also lists ERROR cases, which CodeBuild's JUnit import reports as errors).
   */
  describeTestCases(input: { ReportArn?: string; Filter?: { Status?: string }; MaxResults?: number }): {
    TestCases: { ReportArn: string; Name: string; Prefix?: string; Status: string; Message?: string }[];
  } {
    const kept = input.ReportArn ? this.#reports.get(input.ReportArn) : undefined;
    if (!kept || !input.ReportArn) {
      const error = new Error(`Report ${input.ReportArn ?? ''} does not exist`);
      error.name = 'CodeBuild.ResourceNotFoundException';
      throw error;
    }
    const reportArn = input.ReportArn;
    const wanted = input.Filter?.Status;
    return {
      TestCases: (kept.summary.failedCases ?? [])
        .filter((testCase) => wanted === undefined || wanted === 'FAILED' || testCase.status === wanted)
        .slice(0, input.MaxResults ?? 50)
        .map((testCase) => ({
          ReportArn: reportArn,
          Name: testCase.name,
          ...(testCase.prefix ? { Prefix: testCase.prefix } : {}),
          Status: testCase.status,
          ...(testCase.message ? { Message: testCase.message } : {}),
        })),
    };
  }

  /** A fresh checkout of the exact commit, and the buildspec read from it. */
  async #checkout(input: StartBuildInput, workDir: string, log: (line: string) => void) {
    const location = input.SourceLocationOverride;
    if (!location) throw new Error('DOWNLOAD_SOURCE: the build names no source location');
    const version = input.SourceVersion ?? 'HEAD';
    log(`[Container] ${new Date().toISOString()} Checking out ${location} at ${version}`);
    let commit: string;
    try {
      ({ commit } = await checkOutCommit({ location, version, dir: workDir }));
    } catch (error) {
      throw new Error(`CLIENT_ERROR: ${(error as Error).message}`);
    }
    const buildspecPath = input.BuildspecOverride ?? 'buildspec.yml';
    // CodeBuild takes BuildspecOverride as a path in the source, or as the buildspec itself when it is YAML.
    const inline = buildspecPath.includes('\n');
    let buildspec = buildspecPath;
    if (!inline) {
      try {
        buildspec = await readFile(join(workDir, buildspecPath), 'utf8');
      } catch {
        throw new Error(`YAML_FILE_ERROR: the buildspec ${buildspecPath} does not exist in the source`);
      }
    }
    return { commit, buildspec, buildspecPath: inline ? 'buildspec override' : buildspecPath };
  }
}

function sourceFailure(id: string, start: Date, message: string): BuildResult {
  const end = new Date();
  const [statusCode = 'CLIENT_ERROR'] = message.split(':', 1);
  return {
    buildId: id,
    status: 'FAILED',
    startTime: start,
    endTime: end,
    phases: [
      {
        name: 'DOWNLOAD_SOURCE',
        status: 'FAILED',
        start,
        end,
        durationSeconds: Math.round((end.getTime() - start.getTime()) / 1000),
        context: { statusCode, message },
      },
    ],
    exportedVariables: [],
    artifacts: [],
    reports: [],
    failure: { phase: 'DOWNLOAD_SOURCE', message },
  };
}

function completeBuild(build: CodeBuildBuild, result: BuildResult): CodeBuildBuild {
  return {
    ...build,
    BuildStatus: result.status,
    BuildComplete: true,
    CurrentPhase: 'COMPLETED',
    EndTime: result.endTime.getTime(),
    Phases: result.phases.map((phase) => ({
      PhaseType: phase.name,
      PhaseStatus: phase.status,
      StartTime: phase.start.getTime(),
      EndTime: phase.end.getTime(),
      DurationInSeconds: phase.durationSeconds,
      ...(phase.context
        ? { Contexts: [{ StatusCode: phase.context.statusCode, Message: phase.context.message }] }
        : {}),
    })),
    ExportedEnvironmentVariables: result.exportedVariables.map((v) => ({ Name: v.name, Value: v.value })),
  };
}
