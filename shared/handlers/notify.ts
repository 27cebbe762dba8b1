import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { InvalidInputError } from '#shared/errors.ts';
import type { Logger } from '#shared/logger.ts';
import { pipelineNotification } from '#shared/notifications.ts';
import { NotifyRequestSchema } from '#shared/pipeline.ts';
import type { Notifier } from '#shared/ports.ts';

/** The notification task of the state machine: publishes the run's outcome to the notifications topic. */
export interface NotifyDeps {
  notifier: Notifier;
  logger: Logger;
  /** The region of the state machine, for the console link. */
  region: string;
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
    await notifier.publish(pipelineNotification(request, region));
    logger.info('Notification published', { kind: request.kind });
  }

  return middy(run).use(injectLambdaContext(logger, { resetKeys: true }));
}
