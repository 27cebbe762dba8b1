import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { NotFoundError } from '#shared/errors.ts';
import {
  type HttpEvent,
  type HttpResult,
  json,
  jsonError,
  lowerCaseHeaders,
  parseJsonBody,
  rawBody,
} from '#shared/http.ts';
import { deliveryResponse, type IngestDeps, startPipelines } from '#shared/ingest.ts';
import { normalizeWebhook } from '#shared/providers/index.ts';
import { WEBHOOK_PROVIDERS, type WebhookProvider } from '#shared/push.ts';
import { verifyWebhookSignature } from '#shared/signatures.ts';

/**
 * Bodies over 4 MiB are refused. A synchronous Lambda invocation takes at most 6 MB
 * (https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html), and API Gateway's HTTP API hands the
 * function a body that is not text base64-encoded (`isBase64Encoded`), a third larger: 4 MiB becomes
 * ~5.6 MB, which fits with the event's headers; 5 MiB (~7 MB) would not, and never reach this 413.
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** What the webhook route needs: the start path, and the secret the providers sign deliveries with. */
export interface WebhookDeps extends IngestDeps {
  webhookSecret: () => Promise<string>;
}

function webhookProvider(value: string | undefined): WebhookProvider {
  const provider = WEBHOOK_PROVIDERS.find((p) => p === value);
  if (!provider)
    throw new NotFoundError(`Unknown provider "${value ?? ''}": use ${WEBHOOK_PROVIDERS.join(', ')}`);
  return provider;
}

/** `POST /webhooks/{provider}`: verify the signature over the raw body, normalize, filter, start once. */
export function createWebhookHandler(deps: WebhookDeps) {
  const run = async (event: HttpEvent): Promise<HttpResult> => {
    try {
      const provider = webhookProvider(event.pathParameters?.provider);
      const body = rawBody(event, MAX_BODY_BYTES);
      const headers = lowerCaseHeaders(event.headers);
      verifyWebhookSignature(provider, headers, body, await deps.webhookSecret());
      const delivery = normalizeWebhook(provider, headers, parseJsonBody(body, headers['content-type']));
      if (delivery.kind === 'ignored') {
        deps.logger.info('Delivery starts no run', { provider, reason: delivery.reason });
        return json(200, {
          message: `Nothing started: ${delivery.reason}`,
          started: [],
          alreadyStarted: [],
          skipped: [],
        });
      }
      const response = deliveryResponse(await startPipelines(delivery.pushes, delivery.deliveryId, deps));
      return json(response.statusCode, response.body);
    } catch (error) {
      return jsonError(error, deps.logger);
    }
  };
  // The event's headers hold the signature, and GitLab's token is the secret itself: never log the
  // event, whatever POWERTOOLS_LOGGER_LOG_EVENT says.
  return middy(run).use(injectLambdaContext(deps.logger, { resetKeys: true, logEvent: false }));
}
