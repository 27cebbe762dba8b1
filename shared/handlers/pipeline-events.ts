import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { describeExecution, parseExecutionStatusChangeEvent, pipelineMilestone } from '#shared/events.ts';
import type { Logger } from '#shared/logger.ts';
import { executionNotification } from '#shared/notifications.ts';
import type { MilestoneEmitter, Notifier } from '#shared/ports.ts';

/** Step Functions "Execution Status Change" events of the pipeline state machine. */
export interface PipelineEventsDeps {
  notifier: Notifier;
  emitter: MilestoneEmitter;
  logger: Logger;
  /** The region of the state machine, for the console link. */
  region: string;
  /** The pipeline state machine; events of other machines are ignored. */
  stateMachineArn: string;
}

/** Emits a milestone for each status change of the pipeline, and notifies what the notify tasks do not. */
export function createPipelineEventsHandler(deps: PipelineEventsDeps) {
  const { notifier, emitter, logger, region, stateMachineArn } = deps;

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
    // Undefined for SUCCEEDED and FAILED: the state machine's notify tasks already reported those.
    const notification = executionNotification(report, region);
    await Promise.all([
      emitter.emit(pipelineMilestone(report)),
      notification ? notifier.publish(notification) : undefined,
    ]);
    logger.info('Execution status handled', {
      status: report.status,
      notified: notification !== undefined,
      pipelineInput: report.push !== null,
    });
  }

  return middy(run).use(injectLambdaContext(logger, { resetKeys: true }));
}
