import * as z from '#shared/zod.ts';
import type { BuildReport, ExecutionReport } from './events.ts';
import type { ApprovalDecision, NotifyRequest, Retries, RunAttempts, TestOutcome } from './pipeline.ts';
import { type Notification, SUBJECT_MAX_LENGTH } from './ports.ts';
import type { PullRequest } from './pull-request.ts';
import type { Push } from './push.ts';
import { SUPERSEDED_ERROR, supersedingRun } from './release.ts';
import type { CommitStatus, StatusTarget } from './status/model.ts';
import { summariseTests, testCounts } from './test-reports.ts';
import { formatDuration, oneLine, shortSha } from './text.ts';

/**
 * The words of every notification stepline sends: subjects and bodies for the pipeline's outcome (the
 * notify task), for finished builds and for executions the state machine cannot report itself. Pure, so
 * the local mode and AWS send the same text.
 *
 * Subjects put what happened and to what first (SNS email cuts at 100 characters). Bodies are built field
 * by field from what the inputs say; an input is never dumped, so a field added to an input later cannot
 * leak into an email.
 */

export { SUBJECT_MAX_LENGTH } from './ports.ts';

const MARKS = {
  succeeded: '✔',
  failed: '✖',
  started: '▶',
  stopped: '■',
  redriven: '↻',
  rolledBack: '↩',
} as const;

/**
 * The link to an execution in the Step Functions console.
 *
 * @example
 * ```ts
 * executionLink('eu-west-1', 'arn:aws:states:eu-west-1:123456789012:execution:pipeline:run-1');
 * // https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn:aws:states:…
 * ```
 */
export function executionLink(region: string, executionArn: string): string {
  return `https://${region}.console.aws.amazon.com/states/home?region=${region}#/v2/executions/details/${executionArn}`;
}

/**
 * The notification of a pipeline outcome, from the notify task's request: deployed, failed at a stage,
 * rejected at an approval gate, or expired waiting for one.
 *
 * @example
 * ```ts
 * pipelineNotification({ kind: 'succeeded', deployed: ['dev', 'prod'], … }, 'eu-west-1').subject;
 * // ✔ acme/shop main deployed to dev, prod
 * ```
 */
export function pipelineNotification(request: NotifyRequest, region: string): Notification {
  const { push } = request;
  const pullRequest = request.kind === 'checked' || request.kind === 'failed' ? request.pullRequest : null;
  const what = pullRequest
    ? `${oneLine(pullRequest.target.repository, 40)} #${pullRequest.number} ${oneLine(pullRequest.source.branch, 30)}`
    : `${oneLine(push.repository.fullName, 40)} ${oneLine(refLabel(push), 30)}`;
  const link = `Execution: ${executionLink(region, request.executionArn)}`;
  switch (request.kind) {
    case 'checked': {
      const counts = testCounts(summariseTests(request.test));
      return notification(`${MARKS.succeeded} ${what} passed: ${counts}`, [
        `${pullRequestLabel(request.pullRequest)} passed its checks at ${shortSha(request.pullRequest.head)}.`,
        '',
        ...pullRequestLines(request.pullRequest),
        'Status: succeeded',
        '',
        ...testLines(request.test),
        ...(request.imageUri ? [`Image: ${request.imageUri}`, ''] : []),
        ...retriedLines(request.attempts, request.retries, []),
        link,
      ]);
    }
    case 'succeeded': {
      const where = request.deployed.length > 0 ? `deployed to ${request.deployed.join(', ')}` : 'succeeded';
      return notification(`${MARKS.succeeded} ${what} ${where}`, [
        `${repoAndRef(push)} ${where}.`,
        '',
        ...pushLines(push),
        'Status: succeeded',
        '',
        ...(request.test ? testLines(request.test) : []),
        ...deployedLines(request.deployed, request.imageUri),
        ...approvalLines(request.approvals),
        ...retriedLines(request.attempts, request.retries, request.deployed),
        link,
      ]);
    }
    case 'failed': {
      const counts = request.test ? `: ${testCounts(summariseTests(request.test))}` : '';
      return notification(`${MARKS.failed} ${what} failed at ${oneLine(request.stage, 40)}${counts}`, [
        `${pullRequest ? pullRequestLabel(pullRequest) : repoAndRef(push)} failed at ${request.stage}.`,
        '',
        ...(pullRequest ? pullRequestLines(pullRequest) : pushLines(push)),
        `Stage: ${request.stage}`,
        'Status: failed',
        ...(request.attempt && request.attempt.of > 1
          ? [`Attempts: failed on attempt ${request.attempt.number} of ${request.attempt.of}`]
          : []),
        '',
        ...(request.test ? testLines(request.test) : []),
        `Error: ${oneLine(request.error, 200)}`,
        ...(request.cause ? readableCause(request.cause) : []),
        '',
        link,
      ]);
    }
    case 'rolled-back': {
      const how = request.automatic ? 'automatically rolled back' : 'rolled back';
      const from = request.from ? ` from ${shortSha(request.from)}` : '';
      return notification(
        `${MARKS.rolledBack} ${what} ${request.environment} ${how} to ${shortSha(push.after)}${from}`,
        [
          `${request.environment} of ${repoAndRef(push)} was ${how}${from} to ${push.after} (${request.run}'s deployment), from its recorded image: nothing was rebuilt.`,
          '',
          `Environment: ${request.environment}`,
          `Commit: ${push.after}`,
          ...(request.from ? [`Rolled back from: ${request.from}`] : []),
          `Image: ${request.imageUri}`,
          'Status: rolled back',
          '',
          link,
        ],
      );
    }
    case 'rejected': {
      const by = request.decision?.approver ? ` by ${oneLine(request.decision.approver, 30)}` : '';
      return notification(`Rejected: ${what} for ${request.environment}${by}`, [
        `The deployment of ${repoAndRef(push)} to ${request.environment} was rejected; the run stopped.`,
        '',
        ...pushLines(push),
        `Environment: ${request.environment}`,
        'Status: rejected',
        ...(request.decision ? ['', 'Decision:', `  ${decisionLine(request.decision)}`] : []),
        '',
        link,
      ]);
    }
    case 'expired':
      return notification(`Approval expired: ${what} for ${request.environment}`, [
        `No one decided on deploying ${repoAndRef(push)} to ${request.environment} in time; the run stopped and ${request.environment} was not deployed.`,
        '',
        ...pushLines(push),
        `Environment: ${request.environment}`,
        'Status: approval expired',
        ...(request.decision ? ['', 'Decision:', `  ${decisionLine(request.decision)}`] : []),
        '',
        link,
      ]);
  }
}

/**
 * The stages that succeeded only after a retry (`settings.retries`), one line each:
 * `Image succeeded on attempt 2 of 3.` Nothing when no stage was retried.
 */
export function retriedLines(
  attempts: RunAttempts | undefined,
  retries: Retries | undefined,
  deployed: readonly string[],
): string[] {
  if (!attempts || !retries) return [];
  const retried: string[] = [];
  const line = (stage: string, attempt: number, allowed: number) => {
    if (attempt > 1) retried.push(`${stage} succeeded on attempt ${attempt} of ${allowed + 1}.`);
  };
  line('Test', attempts.test, retries.test);
  line('Image', attempts.image, retries.image);
  (attempts.environments ?? []).forEach((environment, index) => {
    const name = deployed[index] ?? `environment ${index + 1}`;
    line(`${name}: Infrastructure`, environment.infrastructure, retries.infrastructure);
    line(`${name}: Deploy`, environment.deploy, retries.deploy);
  });
  return retried.length > 0 ? ['Retried:', ...retried.map((entry) => `  ${entry}`), ''] : [];
}

const BUILD_OUTCOMES: Record<string, { mark: string; words: string }> = {
  SUCCEEDED: { mark: MARKS.succeeded, words: 'succeeded' },
  FAILED: { mark: MARKS.failed, words: 'failed' },
  FAULT: { mark: MARKS.failed, words: 'failed (CodeBuild fault)' },
  TIMED_OUT: { mark: MARKS.failed, words: 'timed out' },
  STOPPED: { mark: MARKS.stopped, words: 'stopped' },
};

/**
 * The notification of a finished build: project, status, environment and commit in the subject; the
 * build, duration, failed phase with its messages and the build log in the body.
 */
export function buildNotification(report: BuildReport): Notification {
  const outcome = BUILD_OUTCOMES[report.status] ?? { mark: MARKS.failed, words: report.status.toLowerCase() };
  const environment = report.environment ? ` (${report.environment})` : '';
  const commit = report.commit && isSha(report.commit) ? ` ${shortSha(report.commit)}` : '';
  const number = report.buildNumber !== null ? ` #${report.buildNumber}` : '';
  return notification(
    `${outcome.mark} Build ${outcome.words}: ${oneLine(report.project, 60)}${environment}${commit}`,
    [
      `The build of ${report.project} ${outcome.words}.`,
      '',
      `Project: ${report.project}`,
      `Build: ${buildName(report.buildId)}${number}`,
      `Status: ${report.status}`,
      ...(report.environment ? [`Environment: ${report.environment}`] : []),
      `Commit: ${report.commit ?? 'not named in the event'}`,
      ...(report.durationSeconds !== null
        ? [`Duration: ${formatDuration(report.durationSeconds * 1000)}`]
        : []),
      ...(report.failedPhase
        ? phaseLines(report.failedPhase.type, report.failedPhase.status, report.failedPhase.context)
        : []),
      '',
      `Build log: ${report.logLink ?? 'not available in the event'}`,
    ],
  );
}

/**
 * The notification of an execution status change, for the statuses the state machine cannot report
 * itself; undefined for the others.
 *
 * - RUNNING: a run started, or (with a redrive count) a failed run was redriven and goes on.
 * - ABORTED, TIMED_OUT: the execution was stopped from outside or hit its own timeout; no Catch in the state
 *   machine runs then, so no notify task reports it.
 * - SUCCEEDED, FAILED: not notified here. The state machine's own notify tasks already sent the outcome with
 *   more to say (what was deployed, the failed stage and its build log); a second email would repeat it.
 */
export function executionNotification(report: ExecutionReport, region: string): Notification | undefined {
  const { push } = report;
  const what = push
    ? `${oneLine(push.repository.fullName, 40)} ${oneLine(refLabel(push), 30)}`
    : `Pipeline run ${oneLine(report.name, 60)}`;
  const about = push ? repoAndRef(push) : `pipeline run ${report.name}`;
  const facts = [
    ...(push ? pushLines(push) : [`Execution name: ${report.name}`]),
    `Status: ${report.status}`,
    ...(report.startedAt ? [`Started: ${report.startedAt}`] : []),
    ...(report.stoppedAt ? [`Stopped: ${report.stoppedAt}`] : []),
    ...(report.durationSeconds !== null
      ? [`Duration: ${formatDuration(report.durationSeconds * 1000)}`]
      : []),
  ];
  const failure = [
    ...(report.error ? [`Error: ${oneLine(report.error, 200)}`] : []),
    ...(report.cause ? readableCause(report.cause) : []),
  ];
  const link = `Execution: ${executionLink(region, report.executionArn)}`;
  switch (report.status) {
    case 'RUNNING': {
      const commit = push?.after
        ? `: ${shortSha(push.after)} ${firstLine(push.headCommitMessage ?? '')}`
        : '';
      if (report.redriveCount > 0) {
        // The same run going on from the state that failed, under its name: not a second run of the push.
        return notification(`${MARKS.redriven} ${what} redriven${commit}`, [
          `The pipeline run for ${about} was redriven (redrive ${report.redriveCount}): it goes on from the state that failed, under the same name; the stages that succeeded are not run again.`,
          '',
          ...facts,
          `Redrive: ${report.redriveCount}`,
          '',
          link,
        ]);
      }
      return notification(`${MARKS.started} ${what} started${commit}`, [
        `A pipeline run started for ${about}.`,
        '',
        ...facts,
        '',
        link,
      ]);
    }
    case 'ABORTED':
      // StopExecution's error and cause stay with the aborted execution (ExecutionAbortedEventDetails:
      // https://docs.aws.amazon.com/step-functions/latest/apireference/API_ExecutionAbortedEventDetails.html).
      if (report.error === SUPERSEDED_ERROR) {
        return notification(
          `${MARKS.stopped} ${what} superseded by ${oneLine(supersedingRun(report.cause) ?? 'a newer run', 60)}`,
          [
            `The pipeline run for ${about} was retired: a newer push of the same branch goes through the environments in its place.`,
            'Its approval links, if it waited at a gate, no longer decide anything.',
            '',
            ...facts,
            ...(report.cause ? [`Cause: ${oneLine(report.cause, 300)}`] : []),
            '',
            link,
          ],
        );
      }
      return notification(`${MARKS.stopped} ${what} aborted`, [
        `The pipeline run for ${about} was stopped before it finished; the stage it was in did not complete.`,
        '',
        ...facts,
        ...(failure.length > 0 ? ['', ...failure] : []),
        '',
        link,
      ]);
    case 'TIMED_OUT':
      return notification(`${MARKS.failed} ${what} timed out`, [
        `The pipeline run for ${about} went over its time limit and was stopped.`,
        '',
        ...facts,
        ...(failure.length > 0 ? ['', ...failure] : []),
        '',
        link,
      ]);
    default:
      return undefined;
  }
}

// The build JSON Step Functions puts in the cause when a `codebuild:startBuild.sync` task fails. Only the
// fields read here are declared; the rest (environment variables among them) is never shown.
const BuildCauseSchema = z.object({
  Id: z.nullish(z.string()),
  Arn: z.nullish(z.string()),
  ProjectName: z.nullish(z.string()),
  BuildStatus: z.string(),
  Logs: z.nullish(z.object({ DeepLink: z.nullish(z.string()) })),
  Phases: z.nullish(
    z.array(
      z.object({
        PhaseType: z.string(),
        PhaseStatus: z.nullish(z.string()),
        Contexts: z.nullish(
          z.array(z.object({ StatusCode: z.nullish(z.string()), Message: z.nullish(z.string()) })),
        ),
      }),
    ),
  ),
});

const LambdaErrorCauseSchema = z.object({ errorType: z.optional(z.string()), errorMessage: z.string() });

/**
 * A readable account of a Step Functions error cause, as body lines. A CodeBuild build JSON becomes its
 * status, failed phase with its messages and the build log link; a Lambda error its type and message;
 * other text is shown shortened. Other JSON is not shown: it may hold anything.
 */
export function readableCause(cause: string): string[] {
  const text = cause.trim();
  if (!text.startsWith('{')) return [`Cause: ${oneLine(text, 1000)}`];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return truncatedBuildCause(text);
  }
  const build = BuildCauseSchema.safeParse(value);
  if (build.success) {
    const { data } = build;
    const failed = data.Phases?.find((phase) => phase.PhaseStatus && phase.PhaseStatus !== 'SUCCEEDED');
    const id = data.Id ?? (data.Arn ? buildName(data.Arn) : data.ProjectName);
    return [
      `Build: ${id ?? 'unnamed'} ${data.BuildStatus}`,
      ...(failed
        ? phaseLines(
            failed.PhaseType,
            failed.PhaseStatus ?? 'UNKNOWN',
            (failed.Contexts ?? []).map((c) => [c.StatusCode, c.Message].filter(Boolean).join(': ')),
          )
        : []),
      ...(data.Logs?.DeepLink ? [`Build log: ${data.Logs.DeepLink}`] : []),
    ];
  }
  const lambda = LambdaErrorCauseSchema.safeParse(value);
  if (lambda.success) {
    const type = lambda.data.errorType ? `${lambda.data.errorType}: ` : '';
    return [`Cause: ${oneLine(`${type}${lambda.data.errorMessage}`, 1000)}`];
  }
  return ['Cause: structured detail, shown in the execution'];
}

// Step Functions cuts long causes, which leaves a build JSON that does not parse. Its status and log link
// are still worth showing; the rest is not shown.
function truncatedBuildCause(text: string): string[] {
  const status = /"BuildStatus"\s*:\s*"([A-Z_]+)"/.exec(text)?.[1];
  const link = /"DeepLink"\s*:\s*"(https:\/\/[^"\s]+)"/.exec(text)?.[1];
  if (!status && !link) return ['Cause: structured detail, shown in the execution'];
  return [...(status ? [`Build status: ${status}`] : []), ...(link ? [`Build log: ${link}`] : [])];
}

function phaseLines(type: string, status: string, context: readonly string[]): string[] {
  return [
    `Failed phase: ${type} (${status})`,
    ...context.filter((message) => message.trim() !== '').map((message) => `  ${oneLine(message, 500)}`),
  ];
}

/** The Test stage's outcome: counts, then each failed test with its message. */
function testLines(test: TestOutcome): string[] {
  const summary = summariseTests(test);
  if (!summary.ran) return ['Tests: skipped (settings.test is false)', ''];
  if (summary.reports === 0) {
    return ['Tests: no test reports (the test buildspec names no JUnit reports under `reports`)', ''];
  }
  return [
    `Tests: ${testCounts(summary)}`,
    ...(summary.failures.length > 0
      ? [
          'Failed tests:',
          ...summary.failures.map(
            (failure) =>
              `  ✖ ${oneLine(failure.name, 200)}${failure.message ? `: ${oneLine(failure.message, 300)}` : ''}`,
          ),
        ]
      : []),
    '',
  ];
}

function pullRequestLabel(pullRequest: PullRequest): string {
  return `Pull request #${pullRequest.number} of ${pullRequest.target.repository}`;
}

function pullRequestLines(pullRequest: PullRequest): string[] {
  return [
    `Pull request: #${pullRequest.number} ${oneLine(pullRequest.title, 200)}`,
    ...(pullRequest.url ? [`Link: ${pullRequest.url}`] : []),
    `Repository: ${pullRequest.target.repository}`,
    `Branch: ${pullRequest.source.branch}${pullRequest.fork ? ` (fork ${pullRequest.source.repository})` : ''} into ${pullRequest.target.branch}`,
    `Commit: ${shortSha(pullRequest.head)}`,
    ...(pullRequest.author ? [`Opened by: ${pullRequest.author}`] : []),
  ];
}

function deployedLines(deployed: readonly string[], imageUri: string | undefined): string[] {
  if (deployed.length === 0) return [];
  return [
    'Deployed:',
    ...deployed.map((environment) => `  ${environment}${imageUri ? `: ${imageUri}` : ''}`),
    '',
  ];
}

function approvalLines(approvals: readonly ApprovalDecision[]): string[] {
  if (approvals.length === 0) return [];
  return ['Approvals:', ...approvals.map((decision) => `  ${decisionLine(decision)}`), ''];
}

function decisionLine(decision: ApprovalDecision): string {
  const verdict = decision.approved ? 'approved' : 'rejected';
  const who = decision.approver ? ` by ${oneLine(decision.approver, 200)}` : ' (no name given)';
  const comment = decision.comment ? `: "${oneLine(decision.comment, 500)}"` : '';
  return `${verdict}${who} at ${decision.decidedAt}${comment}`;
}

function pushLines(push: Push): string[] {
  const message = push.headCommitMessage ? ` ${firstLine(push.headCommitMessage)}` : '';
  return [
    `Repository: ${push.repository.fullName}`,
    `${push.refType === 'tag' ? 'Tag' : 'Branch'}: ${push.refName}`,
    ...(push.after ? [`Commit: ${shortSha(push.after)}${message}`] : []),
    ...(push.pusher ? [`Pushed by: ${push.pusher}`] : []),
  ];
}

function repoAndRef(push: Push): string {
  return `${push.repository.fullName} ${refLabel(push)}`;
}

/** A ref as people name it: the branch name, or `tag v1.2.0`. */
export function refLabel(push: Pick<Push, 'refType' | 'refName'>): string {
  return push.refType === 'tag' ? `tag ${push.refName}` : push.refName;
}

function firstLine(message: string): string {
  return oneLine(message.split(/\r?\n/, 1)[0] ?? '', 120);
}

function isSha(text: string): boolean {
  return /^[0-9a-f]{40}$/i.test(text);
}

// `arn:aws:codebuild:…:build/project:uuid` → `project:uuid`, the id the CodeBuild console shows.
function buildName(buildId: string): string {
  const at = buildId.indexOf(':build/');
  return at >= 0 ? buildId.slice(at + ':build/'.length) : buildId;
}

const FORGE_NAMES: Record<StatusTarget['provider'], string> = {
  github: 'GitHub',
  gitlab: 'GitLab',
  bitbucket: 'Bitbucket',
};

/**
 * The notification of a commit status the forge did not take (after its retries): which forge, repository,
 * commit and status, and why. The run is not affected; the commit status function sends one per run and
 * forge.
 */
export function commitStatusNotification(
  target: StatusTarget,
  status: CommitStatus,
  reason: string,
): Notification {
  const forge = FORGE_NAMES[target.provider];
  return notification(
    `${MARKS.failed} ${forge} did not take the commit status ${oneLine(status.context, 40)} of ${oneLine(target.repository, 30)}`,
    [
      `stepline could not post a commit status to ${forge}. The run is not affected; further statuses of this`,
      `run that ${forge} refuses are logged, not notified again.`,
      '',
      `Repository: ${target.repository}`,
      `Commit: ${target.commit}`,
      `Status: ${status.context} ${status.state} (${status.description})`,
      `Why: ${oneLine(reason, 300)}`,
      '',
      `Run: ${status.targetUrl}`,
    ],
  );
}

function notification(subject: string, lines: readonly string[]): Notification {
  const body = lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  return { topic: 'notifications', subject: oneLine(subject, SUBJECT_MAX_LENGTH), body: `${body}\n` };
}
