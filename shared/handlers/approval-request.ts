import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { approvalRequestNotification, mintApprovalLinks, parseApprovalRequest } from '#shared/approval.ts';
import type { Logger } from '#shared/logger.ts';
import type { ApprovalRequest } from '#shared/pipeline.ts';
import type { Notifier, SubscriberCounter, TestOutcomes } from '#shared/ports.ts';
import { passedWithTest } from '#shared/test-reports.ts';

/** What the approval gate's Lambda needs. */
export interface ApprovalRequestDeps {
  notifier: Notifier;
  /** Reads the approval key secret that encrypts the links. */
  approvalKey: () => Promise<string>;
  /** The public URL of the approval route, without the token: `https://…/approvals`. */
  baseUrl: string;
  logger: Logger;
  now: () => Date;
  /**
   * Counts the approvals topic's confirmed subscribers (AWS); absent where messages need no confirmation
   * (the local mode's outbox).
   */
  subscribers?: SubscriberCounter;
  /**
   * Reads the run's Test outcome, so the request says the tests passed (and how many) before the stages
   * the state machine lists; without it, or when it fails, the request lists those stages alone.
   */
  testOutcomes?: TestOutcomes;
}

/** How long a count of the topic's subscribers is trusted before it is asked again. */
export const SUBSCRIBER_CHECK_INTERVAL_MS = 5 * 60_000;

/**
 * The approval gate (`lambda:invoke.waitForTaskToken`): validates the request, mints the approve and
 * reject links and publishes one message with both to the approvals topic. It returns nothing: the
 * execution waits for the decision the links send. A bad payload throws, for the state machine's Catch.
 */
export function createApprovalRequestHandler(deps: ApprovalRequestDeps) {
  let checkedAt = Number.NEGATIVE_INFINITY;
  let unconfirmed = false;
  /**
   * SNS delivers nothing to an email subscription until its address clicks the confirmation link: with
   * none confirmed, the request reaches nobody and the gate expires. Counted at most once per interval per
   * container; a count that fails never fails the request.
   */
  const warnWhenNobodyListens = async (environment: string): Promise<void> => {
    const subscribers = deps.subscribers;
    if (subscribers === undefined) return;
    if (deps.now().getTime() - checkedAt >= SUBSCRIBER_CHECK_INTERVAL_MS) {
      try {
        const counts = await subscribers.count();
        unconfirmed = counts.confirmed === 0;
        checkedAt = deps.now().getTime();
        if (unconfirmed) {
          deps.logger.warn(
            'The approvals topic has no confirmed subscriber: nobody receives this request, and the gate expires unless someone decides. Confirm the subscription email SNS sent to each address in approvalEmails, or subscribe one (README, "Approvals").',
            { environment, pendingSubscriptions: counts.pending },
          );
        }
      } catch (error) {
        deps.logger.warn('Could not count the approvals topic subscribers', {
          error: (error as Error).name,
        });
      }
    } else if (unconfirmed) {
      deps.logger.warn('The approvals topic still had no confirmed subscriber at the last count', {
        environment,
      });
    }
  };

  const withTest = async (request: ApprovalRequest): Promise<ApprovalRequest> => {
    if (deps.testOutcomes === undefined) return request;
    try {
      return {
        ...request,
        passed: passedWithTest(request.passed, await deps.testOutcomes.of(request.executionArn)),
      };
    } catch (error) {
      deps.logger.warn('Could not read the Test stage of the run; the request lists the other stages', {
        error: (error as Error).name,
      });
      return request;
    }
  };

  const run = async (event: unknown): Promise<void> => {
    const request = await withTest(parseApprovalRequest(event));
    const links = mintApprovalLinks(request, await deps.approvalKey(), deps.baseUrl);
    await deps.notifier.publish(approvalRequestNotification(request, links, deps.now()));
    deps.logger.info('Approval requested', {
      executionArn: request.executionArn,
      environment: request.environment,
      commit: request.push.after,
      expiresAt: links.expiresAt.toISOString(),
    });
    await warnWhenNobodyListens(request.environment);
  };
  // The event holds the task token: never log it, whatever POWERTOOLS_LOGGER_LOG_EVENT says.
  return middy(run).use(injectLambdaContext(deps.logger, { logEvent: false }));
}
