import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { approvalRequestNotification, mintApprovalLinks, parseApprovalRequest } from '#shared/approval.ts';
import type { Logger } from '#shared/logger.ts';
import type { Notifier } from '#shared/ports.ts';

/** What the approval gate's Lambda needs. */
export interface ApprovalRequestDeps {
  notifier: Notifier;
  /** Reads the approval key secret that encrypts the links. */
  approvalKey: () => Promise<string>;
  /** The public URL of the approval route, without the token: `https://…/approvals`. */
  baseUrl: string;
  logger: Logger;
  now: () => Date;
}

/**
 * The approval gate (`lambda:invoke.waitForTaskToken`): validates the request, mints the approve and
 * reject links and publishes one message with both to the approvals topic. It returns nothing: the
 * execution waits for the decision the links send. A bad payload throws, for the state machine's Catch.
 */
export function createApprovalRequestHandler(deps: ApprovalRequestDeps) {
  const run = async (event: unknown): Promise<void> => {
    const request = parseApprovalRequest(event);
    const links = mintApprovalLinks(request, await deps.approvalKey(), deps.baseUrl);
    await deps.notifier.publish(approvalRequestNotification(request, links, deps.now()));
    deps.logger.info('Approval requested', {
      executionArn: request.executionArn,
      environment: request.environment,
      commit: request.push.after,
      expiresAt: links.expiresAt.toISOString(),
    });
  };
  // The event holds the task token: never log it, whatever POWERTOOLS_LOGGER_LOG_EVENT says.
  return middy(run).use(injectLambdaContext(deps.logger, { logEvent: false }));
}
