import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { describeExecution, parseExecutionStatusChangeEvent, pipelineMilestone } from '#shared/events.ts';
import type { Logger } from '#shared/logger.ts';
import { executionNotification } from '#shared/notifications.ts';
import { ExecutionInputSchema } from '#shared/pipeline.ts';
import type { MilestoneEmitter, Notifier } from '#shared/ports.ts';
import { endRun, lineOf } from '#shared/release.ts';
import type { ReleaseLedger } from '#shared/release-ledger.ts';

/** Step Functions "Execution Status Change" events of the pipeline state machine. */
export interface PipelineEventsDeps {
  notifier: Notifier;
  emitter: MilestoneEmitter;
  /** Releases what an ended run held, and hands it to the run that waits next. */
  ledger: ReleaseLedger;
  logger: Logger;
  /** The region of the state machine, for the console link. */
  region: string;
  /** The pipeline state machine; events of other machines are ignored. */
  stateMachineArn: string;
}

/** Emits a milestone for each status change of the pipeline, and notifies what the notify tasks do not. */
export function createPipelineEventsHandler(deps: PipelineEventsDeps) {
  const { notifier, emitter, ledger, logger, region, stateMachineArn } = deps;

  async function run(event: unknown): Promise<void> {
    const parsed = parseExecutionStatusChangeEvent(event);
    if (parsed.detail.stateMachineArn !== stateMachineArn) {
      logger.info('Ignored an execution of another state machine', {
        stateMachineArn: parsed.detail.stateMachineArn,
      });
      return;
    }
    logger.appendKeys({ executionArn: parsed.detail.executionArn });

    const report = describeExecution(parsed);
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
    });
  }

  return middy(run).use(injectLambdaContext(logger, { resetKeys: true }));
}

const ReleaseInputSchema = ExecutionInputSchema.pick({ push: true }).extend({
  settings: ExecutionInputSchema.shape.settings.pick({ executionMode: true }),
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
