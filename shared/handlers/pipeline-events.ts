import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { describeExecution, parseExecutionStatusChangeEvent, pipelineMilestone } from '#shared/events.ts';
import type { Logger } from '#shared/logger.ts';
import { executionNotification } from '#shared/notifications.ts';
import { ExecutionInputSchema } from '#shared/pipeline.ts';
import type { MilestoneEmitter, Notifier, PipelineStarter, RunStatusReader } from '#shared/ports.ts';
import { SUBJECT_MAX_LENGTH } from '#shared/ports.ts';
import { endRun, lineOf, runName } from '#shared/release.ts';
import type { ReleaseLedger } from '#shared/release-ledger.ts';
import { automaticRollbackName, type RollbackInput } from '#shared/rollback.ts';
import { oneLine } from '#shared/text.ts';
import * as z from '#shared/zod.ts';

/** Step Functions "Execution Status Change" events of the pipeline state machine. */
export interface PipelineEventsDeps {
  notifier: Notifier;
  emitter: MilestoneEmitter;
  /** Releases what an ended run held, and hands it to the run that waits next. */
  ledger: ReleaseLedger;
  logger: Logger;
  /** The region of the state machine, for the console link. */
  region: string;
  /** The pipeline state machine; events of other machines (but the rollback machine's) are ignored. */
  stateMachineArn: string;
  /**
   * The rollback state machine: its executions' ends release their holds too, and a pipeline run that
   * fails while it holds an environment with `rollbackOnFailure` starts one (StartExecution).
   */
  rollback?: { stateMachineArn: string; starter: PipelineStarter; runs: RunStatusReader };
}

/** Emits a milestone for each status change of the pipeline, and notifies what the notify tasks do not. */
export function createPipelineEventsHandler(deps: PipelineEventsDeps) {
  const { notifier, emitter, ledger, logger, region, stateMachineArn, rollback } = deps;

  async function run(event: unknown): Promise<void> {
    const parsed = parseExecutionStatusChangeEvent(event);
    if (rollback && parsed.detail.stateMachineArn === rollback.stateMachineArn) {
      // A rollback's own tasks notify its success and failure; its end, however it came, releases its hold.
      const report = describeExecution(parsed);
      if (report.status === 'RUNNING') return;
      const released = await releaseRun(ledger, parsed.detail.input, report);
      const notification =
        report.status === 'SUCCEEDED' || report.status === 'FAILED'
          ? undefined
          : executionNotification(report, region);
      if (notification) await notifier.publish(notification);
      logger.info('Rollback status handled', { status: report.status, released });
      return;
    }
    if (parsed.detail.stateMachineArn !== stateMachineArn) {
      logger.info('Ignored an execution of another state machine', {
        stateMachineArn: parsed.detail.stateMachineArn,
      });
      return;
    }
    logger.appendKeys({ executionArn: parsed.detail.executionArn });

    const report = describeExecution(parsed);
    // Before its hold is released: which environment the failed run held is in the line's state.
    const rolledBack =
      report.status === 'FAILED' && rollback
        ? await startAutomaticRollback(ledger, rollback, notifier, logger, parsed.detail.input, report)
        : null;
    // However the run ended (succeeded, failed, rejected, expired, timed out, stopped from outside,
    // superseded), it holds nothing any more; a redrive that resumes it joins and enters again.
    const released = report.status === 'RUNNING' ? [] : await releaseRun(ledger, parsed.detail.input, report);
    // Undefined for SUCCEEDED and FAILED: the state machine's notify tasks already reported those.
    const notification = executionNotification(report, region);
    await Promise.all([
      emitter.emit(pipelineMilestone(report)),
      notification ? notifier.publish(notification) : undefined,
    ]);
    logger.info('Execution status handled', {
      status: report.status,
      notified: notification !== undefined,
      released,
      pipelineInput: report.push !== null,
      ...(rolledBack ? { rollback: rolledBack } : {}),
    });
  }

  return middy(run).use(injectLambdaContext(logger, { resetKeys: true }));
}

const ReleaseInputSchema = z.extend(z.pick(ExecutionInputSchema, { push: true }), {
  settings: z.pick(ExecutionInputSchema.shape.settings, { executionMode: true }),
});

/** Ends the run in its line: what it held goes to the next waiting run. Returns what that decided. */
async function releaseRun(
  ledger: ReleaseLedger,
  input: string | null | undefined,
  report: { executionArn: string },
): Promise<string[]> {
  let value: unknown;
  try {
    value = JSON.parse(input ?? '');
  } catch {
    return [];
  }
  const parsed = ReleaseInputSchema.safeParse(value);
  // A run started by hand with another input never joined a line.
  if (!parsed.success) return [];
  const mode = parsed.data.settings.executionMode;
  const actions = await ledger.apply(lineOf(parsed.data.push), mode, (state) =>
    endRun(state, report.executionArn, mode),
  );
  return actions.map((action) => `${action.kind} ${action.executionArn}`);
}

/**
 * A run whose Deploy failed in an environment whose settings ask for `rollbackOnFailure` starts the
 * automatic rollback of that environment, under a name derived from the run (a redelivered event starts
 * nothing more), and says so. The environment is the one the run held; the hold spans Infrastructure and
 * Deploy, so a failed Infrastructure (which left the previous deployment running) rolls nothing back. When
 * the failed stage cannot be read, the rollback goes ahead. Returns the rollback's name, or null.
 */
async function startAutomaticRollback(
  ledger: ReleaseLedger,
  { starter, runs }: { starter: PipelineStarter; runs: RunStatusReader },
  notifier: Notifier,
  logger: Logger,
  input: string | null | undefined,
  report: { executionArn: string },
): Promise<string | null> {
  let value: unknown;
  try {
    value = JSON.parse(input ?? '');
  } catch {
    return null;
  }
  const parsed = ExecutionInputSchema.safeParse(value);
  if (!parsed.success || parsed.data.pullRequest || !parsed.data.push.after) return null;
  const { push, source, settings } = parsed.data;
  const commit = parsed.data.push.after;
  const state = await ledger.read(lineOf(push));
  const environment = state.runs.find((r) => r.executionArn === report.executionArn)?.holding;
  if (!environment) return null;
  if (!settings.environments.find((e) => e.name === environment)?.rollbackOnFailure) return null;
  const current = state.environments[environment]?.current;
  if (!current) return null;
  const stage = await runs.failedStage(report.executionArn);
  if (stage === `${environment}: Infrastructure`) {
    logger.info('No automatic rollback: the run failed at Infrastructure, before its Deploy', { stage });
    return null;
  }
  const name = automaticRollbackName(environment, report.executionArn);
  const rollbackInput: RollbackInput = {
    environment,
    push,
    source,
    settings,
    to: null,
    infrastructure: false,
    automatic: { failedRun: report.executionArn, commit },
  };
  const started = await starter.start({ name, input: rollbackInput });
  if (started.outcome === 'started') {
    await notifier.publish({
      topic: 'notifications',
      subject: oneLine(
        `↩ ${push.repository.fullName} ${environment}: ${commit.slice(0, 7)} failed, rolling back to ${current.commit.slice(0, 7)}`,
        SUBJECT_MAX_LENGTH,
      ),
      body:
        `${runName(report.executionArn)} failed while deploying ${commit.slice(0, 12)} to ${environment}, ` +
        `which has rollbackOnFailure: ${name} deploys its last successful deployment again, ` +
        `${current.commit.slice(0, 12)} (${runName(current.executionArn)}).\n`,
    });
  }
  return name;
}
