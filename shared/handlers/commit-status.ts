import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { InvalidInputError } from '../errors.ts';
import {
  describeBuild,
  describeExecution,
  parseCodeBuildEvent,
  parseExecutionStatusChangeEvent,
  plainBuildVariable,
} from '../events.ts';
import type { Logger } from '../logger.ts';
import { commitStatusNotification } from '../notifications.ts';
import type { ExecutionInputs, Notifier, TestReports } from '../ports.ts';
import {
  type CommitStatus,
  runCommitOf,
  runStatus,
  type StatusTarget,
  stageStatus,
  statusTargetOf,
} from '../status/model.ts';
import type { PostOutcome, StatusPublisher } from '../status/publisher.ts';

/** One status as it was reported, with what became of it (the local runs show these). */
export type ReportedStatus = CommitStatus &
  Pick<StatusTarget, 'provider' | 'repository' | 'commit'> & {
    outcome: PostOutcome['outcome'];
    reason?: string;
  };

/** Where reported statuses are kept beside their run (locally; on AWS the log line is the record). */
export interface StatusRecorder {
  record(executionArn: string, status: ReportedStatus): Promise<void>;
}

export interface CommitStatusDeps {
  publisher: Pick<StatusPublisher, 'publish'>;
  /** A build event names its run; the run's input names the repository and commit. */
  executions: ExecutionInputs;
  notifier: Notifier;
  logger: Logger;
  /** The page of a run: the Step Functions console on AWS, the local console locally. */
  runLink: (executionArn: string) => string;
  /** The pipeline state machine; executions of others (teardown) have no commit to report on. */
  stateMachineArn: string;
  recorder?: StatusRecorder;
  /**
   * Test counts for a finished stage's description: locally from the build runner's JUnit summaries, on AWS
   * from the build's CodeBuild reports (BatchGetBuilds, BatchGetReports).
   */
  testReports?: TestReports;
}

const EXECUTION_VARIABLE = 'STEPLINE_EXECUTION_ID';

/** How many runs an instance remembers having notified about: enough for a day of runs, bounded. */
const NOTIFIED_RUNS_KEPT = 1000;

/**
 * Posts a commit status for every Step Functions "Execution Status Change" of the pipeline (the run: pending,
 * then success, failure or error) and every CodeBuild "Build State Change" of its builds (one status per
 * stage). A status the forge does not take is logged and notified, never thrown: the run goes on as if
 * nothing happened, and EventBridge does not deliver the event again.
 */
export function createCommitStatusHandler(deps: CommitStatusDeps) {
  const { publisher, executions, notifier, logger, runLink, stateMachineArn, recorder, testReports } = deps;
  // `arn:…:stateMachine:<name>` → `arn:…:execution:<name>:`: the prefix of this machine's executions.
  const executionPrefix = `${stateMachineArn.replace(':stateMachine:', ':execution:')}:`;
  // A forge that is down refuses every status of a run: people hear of it once per run and forge (per
  // instance), and every refusal is logged.
  const notified = new Set<string>();

  async function statusOf(
    event: unknown,
  ): Promise<{ executionArn: string; status: CommitStatus; input: unknown } | string> {
    const detailType = (event as { 'detail-type'?: unknown } | null)?.['detail-type'];
    if (detailType === 'Step Functions Execution Status Change') {
      const parsed = parseExecutionStatusChangeEvent(event);
      const report = describeExecution(parsed);
      if (!report.executionArn.startsWith(executionPrefix)) return 'an execution of another state machine';
      // EventBridge does not guarantee the order of events (https://repost.aws/questions/QUDxAa0fS4TNus4mLxZpUjEw):
      // a start that arrives after the run ended is not posted over its outcome.
      const now =
        report.status === 'RUNNING' || !parsed.detail.input
          ? await executions.describe(report.executionArn)
          : undefined;
      if (report.status === 'RUNNING' && now && now.status !== 'RUNNING') {
        return `a late start: the run is ${now.status} already`;
      }
      // The event carries the input unless it was too large; then the execution gives it.
      const input = parsed.detail.input ? parseJson(parsed.detail.input) : now?.input;
      return {
        executionArn: report.executionArn,
        status: runStatus(report, runLink(report.executionArn)),
        input,
      };
    }
    if (detailType === 'CodeBuild Build State Change') {
      const parsed = parseCodeBuildEvent(event);
      if (parsed['detail-type'] !== 'CodeBuild Build State Change') return 'not a build state change';
      const executionArn = plainBuildVariable(parsed.detail, EXECUTION_VARIABLE);
      if (!executionArn) return `a build without ${EXECUTION_VARIABLE} (not started by the pipeline)`;
      if (!executionArn.startsWith(executionPrefix)) return 'a build of another state machine';
      const report = describeBuild(parsed, '');
      const now = await executions.describe(executionArn);
      if (!report.terminal && now && now.status !== 'RUNNING') {
        return `a late build start: the run is ${now.status} already`;
      }
      const tests = report.terminal ? await testReports?.countsOf(report.buildId, executionArn) : undefined;
      return { executionArn, status: stageStatus(report, runLink(executionArn), tests), input: now?.input };
    }
    throw new InvalidInputError(
      `Not an execution status change or a build state change: detail-type ${JSON.stringify(detailType)}`,
    );
  }

  async function run(event: unknown): Promise<void> {
    const found = await statusOf(event);
    if (typeof found === 'string') {
      logger.info('No commit status for this event', { reason: found });
      return;
    }
    const { executionArn, status, input } = found;
    logger.appendKeys({ executionArn, context: status.context });
    const runCommit = runCommitOf(input);
    if (!runCommit) {
      logger.info('No commit status for this event', { reason: 'the run names no pushed commit' });
      return;
    }
    const target = statusTargetOf(runCommit.push, runCommit.commit);
    if ('skipped' in target) {
      logger.info('No commit status for this event', { reason: target.skipped });
      return;
    }
    const result = await publisher.publish(target, status);
    const reported: ReportedStatus = {
      ...status,
      provider: target.provider,
      repository: target.repository,
      commit: target.commit,
      outcome: result.outcome,
      ...('reason' in result ? { reason: result.reason } : {}),
    };
    const facts = {
      provider: target.provider,
      repository: target.repository,
      commit: target.commit,
      state: status.state,
    };
    if (result.outcome === 'posted')
      logger.info('Commit status posted', { ...facts, attempts: result.attempts });
    if (result.outcome === 'failed') {
      logger.error('Commit status not posted', {
        ...facts,
        reason: result.reason,
        attempts: result.attempts,
      });
      const key = `${executionArn} ${target.provider}`;
      if (!notified.has(key)) {
        if (notified.size >= NOTIFIED_RUNS_KEPT) notified.clear();
        notified.add(key);
        await notifier
          .publish(commitStatusNotification(target, status, result.reason))
          .catch((error: Error) =>
            logger.error('Could not notify the unposted status', { error: error.message }),
          );
      }
    }
    await recorder
      ?.record(executionArn, reported)
      .catch((error: Error) => logger.error('Could not record the status', { error: error.message }));
  }

  return middy(run).use(injectLambdaContext(logger, { resetKeys: true }));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
