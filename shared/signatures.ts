import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { ConfigurationError, UnauthorizedError } from './errors.ts';
import type { WebhookProvider } from './push.ts';

/**
 * Webhook authentication, checked over the raw body bytes before anything parses them.
 *
 * Every failure throws {@link UnauthorizedError} whose message names the header and what is wrong with it
 * (missing, malformed, does not match). Messages never contain the secret or the received signature.
 * An empty secret throws {@link ConfigurationError}: an HMAC keyed with nothing authenticates nobody.
 */

/** `sha256=` followed by 64 lowercase hex digits: what GitHub and Bitbucket send. */
const SHA256_SIGNATURE = /^sha256=([0-9a-f]{64})$/;

/**
 * Looks a header up by name, ignoring case (API Gateway HTTP API lower-cases header names; Node keeps
 * them as sent). An empty value counts as absent.
 *
 * @example
 * ```ts
 * findHeader({ 'x-github-event': 'push' }, 'X-GitHub-Event'); // 'push'
 * ```
 */
export function findHeader(headers: Record<string, string | undefined>, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted && value !== undefined && value !== '') {
      return value;
    }
  }
  return undefined;
}

function requireSecret(secret: string): void {
  if (secret === '') {
    throw new ConfigurationError('The webhook secret is empty');
  }
}

function toBytes(rawBody: string | Buffer): Buffer {
  return typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody;
}

function verifyHmacSha256(
  rawBody: string | Buffer,
  header: string | undefined,
  secret: string,
  headerName: string,
): void {
  requireSecret(secret);
  if (header === undefined || header === '') {
    throw new UnauthorizedError(`Missing ${headerName} header`);
  }
  const match = SHA256_SIGNATURE.exec(header);
  if (match?.[1] === undefined) {
    throw new UnauthorizedError(
      `Malformed ${headerName} header: expected sha256= and 64 lowercase hex digits`,
    );
  }
  const received = Buffer.from(match[1], 'hex');
  const expected = createHmac('sha256', secret).update(toBytes(rawBody)).digest();
  // Both are 32 bytes here (the pattern fixes the length), as timingSafeEqual requires.
  if (!timingSafeEqual(received, expected)) {
    throw new UnauthorizedError(`${headerName} header does not match the payload`);
  }
}

/**
 * Verifies GitHub's `X-Hub-Signature-256: sha256=<hex>`, an HMAC-SHA256 of the raw body keyed with the
 * webhook secret, in constant time.
 *
 * @example
 * ```ts
 * verifyGitHubSignature(event.body, findHeader(event.headers, 'X-Hub-Signature-256'), secret);
 * ```
 */
export function verifyGitHubSignature(
  rawBody: string | Buffer,
  header: string | undefined,
  secret: string,
): void {
  verifyHmacSha256(rawBody, header, secret, 'X-Hub-Signature-256');
}

/**
 * Verifies Bitbucket's `X-Hub-Signature: sha256=<hex>` (Bitbucket Cloud and Data Center sign the same
 * way), an HMAC-SHA256 of the raw body keyed with the webhook secret, in constant time.
 */
export function verifyBitbucketSignature(
  rawBody: string | Buffer,
  header: string | undefined,
  secret: string,
): void {
  verifyHmacSha256(rawBody, header, secret, 'X-Hub-Signature');
}

/**
 * Verifies GitLab's `X-Gitlab-Token`, which carries the secret itself (GitLab does not sign the body).
 * Both sides are hashed before the constant-time comparison, so neither their content nor their length
 * shows in the timing.
 */
export function verifyGitLabToken(header: string | undefined, secret: string): void {
  requireSecret(secret);
  if (header === undefined || header === '') {
    throw new UnauthorizedError('Missing X-Gitlab-Token header');
  }
  const received = createHash('sha256').update(header, 'utf8').digest();
  const expected = createHash('sha256').update(secret, 'utf8').digest();
  if (!timingSafeEqual(received, expected)) {
    throw new UnauthorizedError('X-Gitlab-Token header does not match the webhook secret');
  }
}

/**
 * Verifies a webhook delivery the way its provider authenticates it, reading the provider's header from
 * `headers` whatever its case. `rawBody` must be the bytes as received: when API Gateway marks the body
 * `isBase64Encoded`, decode it to a Buffer first; never pass a re-serialized JSON value.
 *
 * @example
 * ```ts
 * verifyWebhookSignature('github', event.headers, event.body ?? '', secret); // throws UnauthorizedError
 * ```
 */
export function verifyWebhookSignature(
  provider: WebhookProvider,
  headers: Record<string, string | undefined>,
  rawBody: string | Buffer,
  secret: string,
): void {
  switch (provider) {
    case 'github':
      verifyGitHubSignature(rawBody, findHeader(headers, 'X-Hub-Signature-256'), secret);
      return;
    case 'bitbucket':
      verifyBitbucketSignature(rawBody, findHeader(headers, 'X-Hub-Signature'), secret);
      return;
    case 'gitlab':
      verifyGitLabToken(findHeader(headers, 'X-Gitlab-Token'), secret);
      return;
  }
}
