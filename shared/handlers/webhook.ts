import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { InvalidInputError, NotFoundError, UnauthorizedError } from '#shared/errors.ts';
import {
  type HttpEvent,
  type HttpResult,
  json,
  jsonError,
  lowerCaseHeaders,
  parseJsonBody,
  rawBody,
} from '#shared/http.ts';
import { deliveryResponse, type IngestDeps, startPipelines, startPullRequestRun } from '#shared/ingest.ts';
import type { RunStopper } from '#shared/ports.ts';
import { normalizeWebhook } from '#shared/providers/index.ts';
import { type Push, WEBHOOK_PROVIDERS, type WebhookProvider } from '#shared/push.ts';
import { type RotatingSecret, type WebhookSecrets, webhookSecretVariable } from '#shared/secrets.ts';
import { verifyWebhookSignature } from '#shared/signatures.ts';

/**
 * Bodies over 4 MiB are refused. A synchronous Lambda invocation takes at most 6 MB
 * (https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html), and API Gateway's HTTP API hands the
 * function a body that is not text base64-encoded (`isBase64Encoded`), a third larger: 4 MiB becomes
 * ~5.6 MB, which fits with the event's headers; 5 MiB (~7 MB) would not, and never reach this 413.
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * What the webhook route needs: the start path, the secret of each provider (a provider without one has no
 * route), and what runs the builds. CodeBuild (`'codebuild'`, on AWS) clones only an HTTPS repository of a
 * provider it has a source type for: Bitbucket Data Center / Server has none
 * (https://docs.aws.amazon.com/codebuild/latest/APIReference/API_ProjectSource.html, `type`), and a path on a
 * laptop is not a repository it can reach. The local build runner (`'local'`) clones by itself.
 */
export interface WebhookDeps extends IngestDeps {
  webhookSecrets: WebhookSecrets;
  builds: 'codebuild' | 'local';
  /** Stops a pull request's older runs when a newer head starts one. */
  runStopper: RunStopper;
}

function webhookProvider(value: string | undefined): WebhookProvider {
  const provider = WEBHOOK_PROVIDERS.find((p) => p === value);
  if (!provider)
    throw new NotFoundError(`Unknown provider "${value ?? ''}": use ${WEBHOOK_PROVIDERS.join(', ')}`);
  return provider;
}

function providerSecret(provider: WebhookProvider, secrets: WebhookSecrets): RotatingSecret {
  const secret = secrets[provider];
  if (secret === undefined) {
    throw new NotFoundError(
      `No webhook secret is configured for ${provider}, so ${provider} deliveries are not accepted: ` +
        `list ${provider} in the webhookProviders parameter (or set ${webhookSecretVariable(provider)})`,
    );
  }
  return secret;
}

/**
 * Verifies with the cached secret and, when that fails, once more with a freshly read one: the secret may
 * have been rotated since this Lambda instance read it.
 */
async function verifyDelivery(
  provider: WebhookProvider,
  headers: Record<string, string | undefined>,
  body: string | Buffer,
  secret: RotatingSecret,
): Promise<void> {
  const current = await secret.current();
  try {
    verifyWebhookSignature(provider, headers, body, current);
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    const fresh = await secret.fetchAgain();
    if (fresh === current) throw error;
    verifyWebhookSignature(provider, headers, body, fresh);
  }
}

/** On CodeBuild, a clone URL that is not an https URL (a path on the machine that pushed) cannot be built. */
function requireCodeBuildSource(push: Push): void {
  if (!push.repository.cloneUrl.startsWith('https://') && !push.repository.cloneUrl.startsWith('http://')) {
    throw new InvalidInputError(
      `The clone URL of ${push.repository.fullName} is not an http(s) URL: CodeBuild cannot clone it`,
    );
  }
}

/** `POST /webhooks/{provider}`: verify the signature over the raw body, normalize, filter, start once. */
export function createWebhookHandler(deps: WebhookDeps) {
  const run = async (event: HttpEvent): Promise<HttpResult> => {
    try {
      const provider = webhookProvider(event.pathParameters?.provider);
      const body = rawBody(event, MAX_BODY_BYTES);
      const headers = lowerCaseHeaders(event.headers);
      await verifyDelivery(provider, headers, body, providerSecret(provider, deps.webhookSecrets));
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
      if (delivery.kind === 'pull-request') {
        if (deps.builds === 'codebuild') requireCodeBuildSource(delivery.head);
        const outcome = await startPullRequestRun(
          delivery.pullRequest,
          delivery.head,
          delivery.deliveryId,
          deps,
        );
        const response = deliveryResponse([outcome]);
        return json(response.statusCode, response.body);
      }
      if (deps.builds === 'codebuild' && delivery.edition === 'bitbucket-data-center') {
        deps.logger.info('Delivery starts no run', { provider, reason: 'Bitbucket Data Center on AWS' });
        return json(200, {
          message:
            'Nothing started: Bitbucket Data Center / Server pushes are not supported on AWS yet ' +
            '(CodeBuild has no source type for it); the local mode builds them',
          started: [],
          alreadyStarted: [],
          skipped: delivery.pushes.map((push) => ({
            ref: push.ref,
            reason: 'Bitbucket Data Center / Server is not supported on AWS yet',
          })),
        });
      }
      if (deps.builds === 'codebuild') delivery.pushes.forEach(requireCodeBuildSource);
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
