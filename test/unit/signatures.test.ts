import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigurationError, UnauthorizedError } from '#shared/errors.ts';
import {
  findHeader,
  verifyBitbucketSignature,
  verifyGitHubSignature,
  verifyGitLabToken,
  verifyWebhookSignature,
} from '#shared/signatures.ts';

const fixtures = new URL('../fixtures/', import.meta.url);

const githubVector = JSON.parse(
  readFileSync(new URL('signatures/github-docs-hmac-vector.json', fixtures), 'utf8'),
) as { secret: string; payload: string; signature: string; 'X-Hub-Signature-256': string };

const bitbucketVector = JSON.parse(
  readFileSync(new URL('signatures/bitbucket-cloud-jenkins-vector.json', fixtures), 'utf8'),
) as { secret: string; 'X-Hub-Signature_valid': string; 'X-Hub-Signature_invalid_last_nibble': string };

/** The raw bytes of the signed Bitbucket Cloud delivery, exactly as sent (never re-serialized). */
const bitbucketBody = readFileSync(new URL('bitbucket/jenkins-cloud-signed_payload.json', fixtures));

/** Runs a verification that must refuse, and returns the UnauthorizedError it threw. */
function refusal(verify: () => void): UnauthorizedError {
  try {
    verify();
  } catch (error) {
    expect(error).toBeInstanceOf(UnauthorizedError);
    return error as UnauthorizedError;
  }
  throw new Error('expected the verification to refuse');
}

/** Asserts the message names the header and leaks neither the secret nor the received value. */
function expectSafeMessage(error: Error, header: string, secret: string, received?: string): void {
  expect(error.message).toContain(header);
  expect(error.message).not.toContain(secret);
  const digest = received?.replace(/^\s*\w+=/, '');
  if (digest) {
    expect(error.message).not.toContain(digest);
  }
}

describe('verifyGitHubSignature', () => {
  const { secret, payload } = githubVector;
  const header = githubVector['X-Hub-Signature-256'];

  it("accepts GitHub's published vector, as a string and as bytes", () => {
    expect(() => verifyGitHubSignature(payload, header, secret)).not.toThrow();
    expect(() => verifyGitHubSignature(Buffer.from(payload, 'utf8'), header, secret)).not.toThrow();
  });

  it('refuses the vector with another secret', () => {
    const error = refusal(() => verifyGitHubSignature(payload, header, 'not the secret'));

    expect(error.message).toBe('X-Hub-Signature-256 header does not match the payload');
    expectSafeMessage(error, 'X-Hub-Signature-256', 'not the secret', header);
  });

  it('refuses the vector when one byte of the body changed', () => {
    const error = refusal(() => verifyGitHubSignature('Hello, World?', header, secret));

    expect(error.message).toBe('X-Hub-Signature-256 header does not match the payload');
  });

  it('refuses a missing header', () => {
    const error = refusal(() => verifyGitHubSignature(payload, undefined, secret));

    expect(error.message).toBe('Missing X-Hub-Signature-256 header');
    expectSafeMessage(error, 'X-Hub-Signature-256', secret);
  });

  it.each([
    ['truncated by one digit', header.slice(0, -1)],
    ['an uppercase digest', `sha256=${githubVector.signature.toUpperCase()}`],
    ['the sha1= prefix', `sha1=${githubVector.signature}`],
    ['no prefix', githubVector.signature],
    ['a leading space', ` ${header}`],
    ['two digits too many', `${header}00`],
    ['an empty digest', 'sha256='],
  ])('refuses a malformed header: %s', (_, received) => {
    const error = refusal(() => verifyGitHubSignature(payload, received, secret));

    expect(error.message).toBe(
      'Malformed X-Hub-Signature-256 header: expected sha256= and 64 lowercase hex digits',
    );
    expectSafeMessage(error, 'X-Hub-Signature-256', secret, received);
  });

  it('refuses to verify with an empty secret', () => {
    const emptyKeyHeader = `sha256=${createHmac('sha256', '').update(payload).digest('hex')}`;

    expect(() => verifyGitHubSignature(payload, emptyKeyHeader, '')).toThrow(ConfigurationError);
  });
});

describe('verifyBitbucketSignature', () => {
  const { secret } = bitbucketVector;
  const valid = bitbucketVector['X-Hub-Signature_valid'];
  const invalid = bitbucketVector['X-Hub-Signature_invalid_last_nibble'];

  it('accepts the signed Bitbucket Cloud delivery with its valid header, over the raw bytes', () => {
    expect(bitbucketBody.length).toBe(14515);
    expect(() => verifyBitbucketSignature(bitbucketBody, valid, secret)).not.toThrow();
    expect(() => verifyBitbucketSignature(bitbucketBody.toString('utf8'), valid, secret)).not.toThrow();
  });

  it('refuses the header whose last hex digit is wrong', () => {
    const error = refusal(() => verifyBitbucketSignature(bitbucketBody, invalid, secret));

    expect(error.message).toBe('X-Hub-Signature header does not match the payload');
    expectSafeMessage(error, 'X-Hub-Signature', secret, invalid);
  });

  it('refuses the same delivery once its JSON is re-serialized', () => {
    const reserialized = JSON.stringify(JSON.parse(bitbucketBody.toString('utf8')), null, 2);

    refusal(() => verifyBitbucketSignature(reserialized, valid, secret));
  });

  it('refuses the valid header with another secret', () => {
    const error = refusal(() => verifyBitbucketSignature(bitbucketBody, valid, 'Gkvl$k$wyNpQAF43'));

    expectSafeMessage(error, 'X-Hub-Signature', 'Gkvl$k$wyNpQAF43', valid);
  });

  it.each([
    ['missing', undefined, 'Missing X-Hub-Signature header'],
    [
      'truncated',
      valid.slice(0, 40),
      'Malformed X-Hub-Signature header: expected sha256= and 64 lowercase hex digits',
    ],
    [
      'uppercase',
      `sha256=${valid.slice('sha256='.length).toUpperCase()}`,
      'Malformed X-Hub-Signature header: expected sha256= and 64 lowercase hex digits',
    ],
    [
      'sha1-prefixed',
      valid.replace('sha256=', 'sha1='),
      'Malformed X-Hub-Signature header: expected sha256= and 64 lowercase hex digits',
    ],
  ])('refuses a %s X-Hub-Signature header', (_, received, message) => {
    const error = refusal(() => verifyBitbucketSignature(bitbucketBody, received, secret));

    expect(error.message).toBe(message);
    expectSafeMessage(error, 'X-Hub-Signature', secret, received);
  });
});

describe('verifyGitLabToken', () => {
  const secret = 'gl-webhook-secret-7f3a';

  it('accepts the token that equals the secret', () => {
    expect(() => verifyGitLabToken(secret, secret)).not.toThrow();
  });

  it.each([
    ['a wrong token', 'gl-webhook-secret-7f3b'],
    ['a prefix of the secret', secret.slice(0, -1)],
    ['the secret with more after it', `${secret}x`],
  ])('refuses %s', (_, token) => {
    const error = refusal(() => verifyGitLabToken(token, secret));

    expect(error.message).toBe('X-Gitlab-Token header does not match the webhook secret');
    expectSafeMessage(error, 'X-Gitlab-Token', secret, token);
  });

  it('refuses a missing token', () => {
    expect(refusal(() => verifyGitLabToken(undefined, secret)).message).toBe('Missing X-Gitlab-Token header');
    expect(refusal(() => verifyGitLabToken('', secret)).message).toBe('Missing X-Gitlab-Token header');
  });

  it('refuses to compare with an empty secret', () => {
    expect(() => verifyGitLabToken('', '')).toThrow(ConfigurationError);
  });
});

describe('verifyWebhookSignature', () => {
  it('reads the GitHub header whatever its case (API Gateway lower-cases it)', () => {
    const { secret, payload } = githubVector;
    const header = githubVector['X-Hub-Signature-256'];

    expect(() =>
      verifyWebhookSignature('github', { 'x-hub-signature-256': header }, payload, secret),
    ).not.toThrow();
    expect(() =>
      verifyWebhookSignature('github', { 'X-Hub-Signature-256': header }, payload, secret),
    ).not.toThrow();
  });

  it('does not take the legacy SHA-1 X-Hub-Signature header for GitHub', () => {
    const { secret, payload } = githubVector;
    const sha1 = `sha1=${createHmac('sha1', secret).update(payload).digest('hex')}`;

    const error = refusal(() =>
      verifyWebhookSignature('github', { 'x-hub-signature': sha1 }, payload, secret),
    );

    expect(error.message).toBe('Missing X-Hub-Signature-256 header');
  });

  it('verifies Bitbucket with X-Hub-Signature', () => {
    const headers = {
      'x-hub-signature': bitbucketVector['X-Hub-Signature_valid'],
      'x-event-key': 'repo:push',
    };

    expect(() =>
      verifyWebhookSignature('bitbucket', headers, bitbucketBody, bitbucketVector.secret),
    ).not.toThrow();
    refusal(() =>
      verifyWebhookSignature(
        'bitbucket',
        { 'x-hub-signature': bitbucketVector['X-Hub-Signature_invalid_last_nibble'] },
        bitbucketBody,
        bitbucketVector.secret,
      ),
    );
  });

  it('verifies GitLab with X-Gitlab-Token and refuses a wrong or missing one', () => {
    expect(() =>
      verifyWebhookSignature('gitlab', { 'x-gitlab-token': 's3cret' }, '{}', 's3cret'),
    ).not.toThrow();
    expect(
      refusal(() => verifyWebhookSignature('gitlab', { 'x-gitlab-token': 'guess' }, '{}', 's3cret')).message,
    ).toBe('X-Gitlab-Token header does not match the webhook secret');
    expect(refusal(() => verifyWebhookSignature('gitlab', {}, '{}', 's3cret')).message).toBe(
      'Missing X-Gitlab-Token header',
    );
  });
});

describe('findHeader', () => {
  it('finds a header whatever its case and treats an empty value as absent', () => {
    const headers = { 'X-GitHub-Event': 'push', 'x-empty': '', 'x-undefined': undefined };

    expect(findHeader(headers, 'x-github-event')).toBe('push');
    expect(findHeader(headers, 'X-Empty')).toBeUndefined();
    expect(findHeader(headers, 'X-Undefined')).toBeUndefined();
    expect(findHeader(headers, 'X-Missing')).toBeUndefined();
  });
});
