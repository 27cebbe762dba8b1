import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import {
  approvalDecision,
  decideApproval,
  decisionFormProblem,
  openApprovalLink,
  readDecisionForm,
  redactError,
} from '#shared/approval.ts';
import {
  confirmationPage,
  decisionPage,
  errorPage,
  type HtmlPage,
  noLongerWaitingPage,
  supersededPage,
} from '#shared/approval-pages.ts';
import { isClientError, TaskNoLongerWaitingError } from '#shared/errors.ts';
import { rawBody } from '#shared/http.ts';
import type { Logger } from '#shared/logger.ts';
import type { RunStatusReader, TaskDecider } from '#shared/ports.ts';

/** What the approval route needs. */
export interface ApprovalDeps {
  decider: TaskDecider;
  /** Tells whether a newer run retired the link's run: its link then decides nothing. */
  runs: RunStatusReader;
  /** Reads the approval key secret that decrypts the links. */
  approvalKey: () => Promise<string>;
  logger: Logger;
  now: () => Date;
}

/** A confirmation form is a name and a comment: anything much larger is not one. */
const MAX_BODY_BYTES = 16 * 1024;

/**
 * `GET /approvals/{token}` shows what a link decides and a confirm form; `POST` to the same URL decides.
 * The link segment and the task token inside it are never logged: the execution ARN and action are.
 */
export function createApprovalHandler(deps: ApprovalDeps) {
  const respond = async (event: APIGatewayProxyEventV2): Promise<HtmlPage> => {
    const method = event.requestContext.http.method;
    if (method !== 'GET' && method !== 'POST') {
      return errorPage(405, 'Open the link, then confirm with the button.');
    }
    const link = openApprovalLink(event.pathParameters?.token ?? '', await deps.approvalKey(), deps.now());
    const logKeys = { executionArn: link.executionArn, action: link.action };
    const superseded = await deps.runs.supersededCause(link.executionArn);
    if (superseded !== null) {
      deps.logger.info('Approval of a superseded run', logKeys);
      return supersededPage(link, superseded);
    }
    if (method === 'GET') return confirmationPage(link, deps.now());

    const form = readDecisionForm(rawBody(event, MAX_BODY_BYTES).toString('utf8'));
    const problem = decisionFormProblem(form);
    if (problem) return confirmationPage(link, deps.now(), { form, problem });

    const decision = approvalDecision(link, form, event.requestContext.http.sourceIp, deps.now());
    try {
      await decideApproval(deps.decider, link, decision);
    } catch (error) {
      if (error instanceof TaskNoLongerWaitingError) {
        deps.logger.info('Approval no longer waiting', { ...logKeys, reason: error.reason });
        return noLongerWaitingPage(link, error.reason);
      }
      // Step Functions' validation messages can quote the token they refused.
      deps.logger.error('Approval decision failed', {
        ...logKeys,
        error: redactError(error, link.taskToken),
      });
      return errorPage(500, '');
    }
    deps.logger.info('Approval decided', { ...logKeys, approver: decision.approver });
    return decisionPage(link, decision);
  };

  const run = async (event: APIGatewayProxyEventV2): Promise<HtmlPage> => {
    try {
      return await respond(event);
    } catch (error) {
      if (isClientError(error)) {
        deps.logger.info('Approval request refused', { status: error.status, reason: error.message });
        return errorPage(error.status, error.message);
      }
      deps.logger.error('Approval failed', { error });
      return errorPage(500, '');
    }
  };
  // The event's path holds the link: never log it, whatever POWERTOOLS_LOGGER_LOG_EVENT says.
  return middy(run).use(injectLambdaContext(deps.logger, { logEvent: false }));
}
