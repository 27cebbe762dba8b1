import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { type IngestDeps, type PushOutcome, startPipelines } from '#shared/ingest.ts';
import { normalizeCodeCommitEvent } from '#shared/providers/index.ts';

/**
 * EventBridge "CodeCommit Repository State Change": the same Push and start path as the webhooks.
 * The event id names the delivery; EventBridge's at-least-once redelivery starts nothing new because the
 * execution name is the push's. Invalid events throw, so EventBridge's retry and DLQ policy sees them.
 */
export function createCodeCommitHandler(deps: IngestDeps) {
  const run = async (event: unknown): Promise<PushOutcome[]> => {
    const delivery = normalizeCodeCommitEvent(event);
    if (delivery.kind === 'ignored') {
      deps.logger.info('Event starts no run', { reason: delivery.reason });
      return [];
    }
    return startPipelines(delivery.pushes, delivery.deliveryId, deps);
  };
  return middy(run).use(injectLambdaContext(deps.logger, { resetKeys: true }));
}
