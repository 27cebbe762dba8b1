import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { InvalidInputError, StageFailedError } from '#shared/errors.ts';
import type { Logger } from '#shared/logger.ts';
import { pipelineNotification } from '#shared/notifications.ts';
import { type NotifyRequest, NotifyRequestSchema } from '#shared/pipeline.ts';
import type { Notifier } from '#shared/ports.ts';

/**
 * The message of the one ERROR log line the notify function writes per failed stage, which the stack's
 * PipelineStageFailed alarm counts (serverless.yml, PipelineBuildFailuresMetricFilter).
 */
export const STAGE_FAILED_LOG_MESSAGE = 'Stage failed';

/** The notification task of the state machine: publishes the run's outcome to the notifications topic. */
export interface NotifyDeps {
  notifier: Notifier;
  logger: Logger;
  /** The region of the state machine, for the console link. */
  region: string;
}

/**
 * What a notify task does with a request: `notify` (publish), `notify and fail` (publish, then end the run
 * with {@link StageFailedError}: a failed stage that carries `redrive`), or `rerun` (publish nothing: the
 * task runs again in a redrive of the run that failed at it, which goes on to rerun the stage).
 */
export function notifyStep(request: NotifyRequest): 'notify' | 'notify and fail' | 'rerun' {
  if (request.kind !== 'failed' || request.redrive === undefined) return 'notify';
  return request.redrive.current > request.redrive.failedIn ? 'rerun' : 'notify and fail';
}

/** The error a failed stage ends the run with, once notified. */
export function stageFailure(request: Extract<NotifyRequest, { kind: 'failed' }>): StageFailedError {
  return new StageFailedError(request.stage, request.error);
}

/** Publishes the run outcome a notify task passes; a malformed request fails the task. */
export function createNotifyHandler(deps: NotifyDeps) {
  const { notifier, logger, region } = deps;

  async function run(event: unknown): Promise<void> {
    const parsed = NotifyRequestSchema.safeParse(event);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      // Thrown, so the execution shows the task failed rather than a notification silently missing.
      throw new InvalidInputError(
        `Invalid notify request at ${issue?.path.join('.') || 'the root'}: ${issue?.message ?? 'invalid'}`,
        { cause: parsed.error },
      );
    }
    const request = parsed.data;
    logger.appendKeys({ executionArn: request.executionArn, commit: request.push.after });
    const step = notifyStep(request);
    if (step === 'rerun') {
      logger.info('Redriven: the failed stage runs again', {
        redrive: request.kind === 'failed' && request.redrive,
      });
      return;
    }
    if (step === 'notify' || request.kind !== 'failed') {
      await notifier.publish(pipelineNotification(request, region));
      logger.info('Notification published', { kind: request.kind });
      return;
    }
    try {
      await notifier.publish(pipelineNotification(request, region));
      logger.info('Notification published', { kind: request.kind });
    } catch (error) {
      // A lost email must not hide which stage failed: the run still ends with the stage's failure.
      logger.error('Failure notification not published', { error });
    }
    // The one line per failed stage the PipelineStageFailed alarm counts (serverless.yml).
    logger.error(STAGE_FAILED_LOG_MESSAGE, { stage: request.stage, error: request.error });
    throw stageFailure(request);
  }

  return middy(run).use(injectLambdaContext(logger, { resetKeys: true }));
}
