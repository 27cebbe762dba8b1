import type { WebhookProvider } from '../push.ts';
import { normalizeBitbucketWebhook } from './bitbucket.ts';
import { normalizeGitHubWebhook } from './github.ts';
import { normalizeGitLabWebhook } from './gitlab.ts';
import type { WebhookOutcome } from './payload.ts';

/**
 * Normalizes a webhook delivery to {@link Push} values. Call it after the signature has been verified
 * over the raw body, with the parsed JSON body. Header names are matched whatever their case.
 *
 * Throws `InvalidInputError` (400) when the event header is missing, when a push payload lacks a field a
 * push needs (the message names the field path), when the ref is neither a branch nor a tag, when the
 * pushed commit is not a full commit id, or when the clone URL does not belong to the repository the
 * payload names (the message names both fields).
 *
 * @example
 * ```ts
 * const outcome = normalizeWebhook('github', event.headers, JSON.parse(rawBody));
 * if (outcome.kind === 'ignored') return { statusCode: 202, body: outcome.reason };
 * ```
 */
export function normalizeWebhook(
  provider: WebhookProvider,
  headers: Record<string, string | undefined>,
  body: unknown,
): WebhookOutcome {
  switch (provider) {
    case 'github':
      return normalizeGitHubWebhook(headers, body);
    case 'gitlab':
      return normalizeGitLabWebhook(headers, body);
    case 'bitbucket':
      return normalizeBitbucketWebhook(headers, body);
  }
}

export { normalizeCodeCommitEvent } from './codecommit.ts';
export type { WebhookOutcome } from './payload.ts';
