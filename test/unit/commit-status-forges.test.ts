import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '#shared/logger.ts';
import type { CommitStatus, StatusProvider, StatusTarget } from '#shared/status/model.ts';
import { type RetryPolicy, StatusPublisher, type StatusTokens } from '#shared/status/publisher.ts';
import { ForgeServer } from '../helpers/forge-server.ts';

/**
 * The real clients (Octokit, Gitbeaker, fetch) posting to a local stand-in of each forge's API, which checks
 * every request as the provider documents it:
 * - GitHub, "Create a commit status": `POST /repos/{owner}/{repo}/statuses/{sha}`, body `state` (error,
 *   failure, pending, success), `target_url`, `description`, `context`; the token as `Authorization`
 *   (https://docs.github.com/en/rest/commits/statuses#create-a-commit-status); rate limits as 403 with
 *   `x-ratelimit-remaining: 0`, or 403/429 with `retry-after`
 *   (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit).
 * - GitLab, "Set the pipeline status of a commit": `POST /api/v4/projects/:id/statuses/:sha`, `:id` the
 *   URL-encoded project path, body `state` (pending, running, success, failed, canceled, skipped), `name`,
 *   `target_url`, `description`; the token in `PRIVATE-TOKEN`
 *   (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit, https://docs.gitlab.com/api/rest/#personalprojectgroup-access-tokens).
 * - Bitbucket Cloud, "Create a build status for a commit":
 *   `POST /2.0/repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build`, body `key`, `state`
 *   (INPROGRESS, SUCCESSFUL, FAILED, STOPPED), `url`, `name`, `description`; `Authorization: Bearer <access token>`
 *   (https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/).
 */

const COMMIT = 'a'.repeat(40);
const GITHUB_STATES = ['error', 'failure', 'pending', 'success'];
const GITLAB_STATES = ['pending', 'running', 'success', 'failed', 'canceled', 'skipped'];
const BITBUCKET_STATES = ['INPROGRESS', 'SUCCESSFUL', 'FAILED', 'STOPPED'];

let forge: ForgeServer;
beforeAll(async () => {
  forge = await ForgeServer.start();
});
afterAll(() => forge.close());
beforeEach(() => forge.reset());

const tokens: StatusTokens = {
  tokenFor: async (provider) =>
    ({ github: 'ghp_statusToken123', gitlab: 'glpat-statusToken123', bitbucket: 'bb-access-token' })[
      provider
    ],
};

function target(provider: StatusProvider, repository: string): StatusTarget {
  const apiUrl = { github: forge.url, gitlab: forge.url, bitbucket: `${forge.url}/2.0` }[provider];
  return { provider, apiUrl, repository, commit: COMMIT };
}

function status(state: CommitStatus['state'], context = 'stepline/deploy-prod'): CommitStatus {
  return { state, context, description: 'Passed in 42 s', targetUrl: 'https://console.example/run/1' };
}

/** Tiny waits, recorded: retries are proven without slowing the suite. */
function publisher(options: { tokens?: StatusTokens; retry?: Partial<RetryPolicy> } = {}) {
  const waits: number[] = [];
  const logger = createLogger('commitStatus', 'SILENT');
  const instance = new StatusPublisher({
    tokens: options.tokens ?? tokens,
    logger,
    retry: { attempts: 4, baseDelayMs: 1, maxDelayMs: 20, budgetMs: 5000, ...options.retry },
    sleep: async (ms) => {
      waits.push(ms);
    },
  });
  return { instance, waits, logger };
}

describe('GitHub, through Octokit', () => {
  it('posts each state as GitHub documents the commit statuses API', async () => {
    const { instance } = publisher();
    for (const state of ['pending', 'success', 'failure', 'error'] as const) {
      await expect(instance.publish(target('github', 'acme/shop'), status(state))).resolves.toEqual({
        outcome: 'posted',
        attempts: 1,
      });
    }
    expect(forge.requests).toHaveLength(4);
    for (const request of forge.requests) {
      expect(request.method).toBe('POST');
      expect(request.path).toBe(`/repos/acme/shop/statuses/${COMMIT}`);
      expect(request.headers.authorization).toBe('token ghp_statusToken123');
      expect(request.headers['user-agent']).toMatch(/^stepline /);
      expect(request.body).toEqual({
        state: expect.any(String),
        target_url: 'https://console.example/run/1',
        description: 'Passed in 42 s',
        context: 'stepline/deploy-prod',
      });
      expect(GITHUB_STATES).toContain((request.body as { state: string }).state);
    }
    expect(forge.requests.map((r) => (r.body as { state: string }).state)).toEqual([
      'pending',
      'success',
      'failure',
      'error',
    ]);
  });

  it('retries a 5xx, then posts', async () => {
    forge.answer(
      { status: 502, body: { message: 'Server Error' } },
      { status: 500, body: { message: 'Oops' } },
    );
    const { instance, waits } = publisher();
    await expect(instance.publish(target('github', 'acme/shop'), status('success'))).resolves.toEqual({
      outcome: 'posted',
      attempts: 3,
    });
    expect(forge.requests).toHaveLength(3);
    expect(waits).toHaveLength(2);
  });

  it("waits for the primary rate limit's reset on 403 with x-ratelimit-remaining: 0", async () => {
    const reset = Math.ceil(Date.now() / 1000) + 3;
    forge.answer({
      status: 403,
      headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(reset) },
      body: { message: 'API rate limit exceeded' },
    });
    const { instance, waits } = publisher({ retry: { maxDelayMs: 10_000 } });
    await expect(instance.publish(target('github', 'acme/shop'), status('pending'))).resolves.toMatchObject({
      outcome: 'posted',
      attempts: 2,
    });
    // Until the reset (about 3 s from now), not the 1 ms backoff.
    expect(waits[0]).toBeGreaterThan(1000);
    expect(waits[0]).toBeLessThanOrEqual(4000);
  });

  it("waits the secondary rate limit's retry-after on 429", async () => {
    forge.answer({ status: 429, headers: { 'retry-after': '2' }, body: { message: 'secondary rate limit' } });
    const { instance, waits } = publisher({ retry: { maxDelayMs: 10_000 } });
    await expect(instance.publish(target('github', 'acme/shop'), status('pending'))).resolves.toMatchObject({
      outcome: 'posted',
    });
    expect(waits).toEqual([2000]);
  });

  it('does not retry a 403 that is not a rate limit (a token without access), and reports it', async () => {
    forge.answer({ status: 403, body: { message: 'Resource not accessible by personal access token' } });
    const { instance, waits } = publisher();
    const outcome = await instance.publish(target('github', 'acme/shop'), status('pending'));
    expect(outcome).toMatchObject({ outcome: 'failed', attempts: 1 });
    expect(outcome.outcome === 'failed' && outcome.reason).toMatch(
      /GitHub answered 403: Resource not accessible/,
    );
    expect(outcome.outcome === 'failed' && outcome.reason).not.toContain('ghp_statusToken123');
    expect(waits).toEqual([]);
  });

  it('gives up after the bounded number of attempts when the forge keeps failing', async () => {
    forge.answerAlways({ status: 503, body: { message: 'Unavailable' } });
    const { instance, waits } = publisher({ retry: { attempts: 3 } });
    const outcome = await instance.publish(target('github', 'acme/shop'), status('success'));
    expect(outcome).toMatchObject({ outcome: 'failed', attempts: 3 });
    expect(forge.requests).toHaveLength(3);
    expect(waits).toHaveLength(2);
  });

  it('does not wait past its time budget for a rate limit that resets later', async () => {
    forge.answer({ status: 429, headers: { 'retry-after': '3600' }, body: { message: 'rate limited' } });
    const { instance, waits } = publisher({ retry: { maxDelayMs: 10_000, budgetMs: 5000 } });
    // A Retry-After over the longest wait is cut to it (10 s), which is over the budget left: no retry.
    await expect(instance.publish(target('github', 'acme/shop'), status('pending'))).resolves.toMatchObject({
      outcome: 'failed',
      attempts: 1,
    });
    expect(waits).toEqual([]);
  });
});

describe('GitLab, through Gitbeaker', () => {
  it('posts to the URL-encoded project path with PRIVATE-TOKEN and GitLab states', async () => {
    const { instance } = publisher();
    for (const state of ['pending', 'success', 'failure', 'error'] as const) {
      await expect(
        instance.publish(target('gitlab', 'acme/platform/shop'), status(state, 'stepline/test')),
      ).resolves.toMatchObject({ outcome: 'posted' });
    }
    expect(forge.requests).toHaveLength(4);
    for (const request of forge.requests) {
      expect(request.method).toBe('POST');
      expect(request.path).toBe(`/api/v4/projects/acme%2Fplatform%2Fshop/statuses/${COMMIT}`);
      expect(request.headers['private-token']).toBe('glpat-statusToken123');
      expect(request.body).toEqual({
        state: expect.any(String),
        name: 'stepline/test',
        target_url: 'https://console.example/run/1',
        description: 'Passed in 42 s',
      });
      expect(GITLAB_STATES).toContain((request.body as { state: string }).state);
    }
    expect(forge.requests.map((r) => (r.body as { state: string }).state)).toEqual([
      'running',
      'success',
      'failed',
      'failed',
    ]);
  });

  it("ties the status to the run's branch with ref", async () => {
    const { instance } = publisher();
    await instance.publish({ ...target('gitlab', 'acme/shop'), ref: 'release/2.0' }, status('success'));
    expect(forge.requests[0]?.body).toMatchObject({ ref: 'release/2.0', state: 'success' });
  });

  it('retries a 500 and a 503, then posts', async () => {
    forge.answer({ status: 500, body: { message: '500 Internal Server Error' } }, { status: 503, body: {} });
    const { instance } = publisher();
    await expect(instance.publish(target('gitlab', 'acme/shop'), status('success'))).resolves.toEqual({
      outcome: 'posted',
      attempts: 3,
    });
    expect(forge.requests).toHaveLength(3);
  });

  it('rides out a 429 (Gitbeaker waits and asks again)', async () => {
    forge.answer({ status: 429, body: { message: 'Retry later' } });
    const { instance } = publisher();
    await expect(instance.publish(target('gitlab', 'acme/shop'), status('pending'))).resolves.toMatchObject({
      outcome: 'posted',
    });
    expect(forge.requests).toHaveLength(2);
  });

  it('counts a status already in that state as posted (a redelivered event)', async () => {
    forge.answer({ status: 400, body: { message: 'Cannot transition status via :run from :running' } });
    const { instance } = publisher();
    await expect(instance.publish(target('gitlab', 'acme/shop'), status('pending'))).resolves.toEqual({
      outcome: 'posted',
      attempts: 1,
    });
  });

  it('reports a 404 (no such project, or a token that cannot see it) without retrying', async () => {
    forge.answer({ status: 404, body: { message: '404 Project Not Found' } });
    const { instance } = publisher();
    const outcome = await instance.publish(target('gitlab', 'acme/shop'), status('pending'));
    expect(outcome).toMatchObject({ outcome: 'failed', attempts: 1 });
    expect(outcome.outcome === 'failed' && outcome.reason).toMatch(
      /GitLab answered 404: 404 Project Not Found/,
    );
  });
});

describe('Bitbucket Cloud, through fetch', () => {
  it('posts a build status with a Bearer access token and Bitbucket states', async () => {
    const { instance } = publisher();
    for (const state of ['pending', 'success', 'failure', 'error'] as const) {
      await expect(instance.publish(target('bitbucket', 'acme/shop'), status(state))).resolves.toMatchObject({
        outcome: 'posted',
      });
    }
    for (const request of forge.requests) {
      expect(request.method).toBe('POST');
      expect(request.path).toBe(`/2.0/repositories/acme/shop/commit/${COMMIT}/statuses/build`);
      expect(request.headers.authorization).toBe('Bearer bb-access-token');
      expect(request.headers['content-type']).toBe('application/json');
      expect(request.body).toEqual({
        key: 'stepline/deploy-prod',
        state: expect.any(String),
        name: 'stepline/deploy-prod',
        url: 'https://console.example/run/1',
        description: 'Passed in 42 s',
      });
      expect(BITBUCKET_STATES).toContain((request.body as { state: string }).state);
    }
    expect(forge.requests.map((r) => (r.body as { state: string }).state)).toEqual([
      'INPROGRESS',
      'SUCCESSFUL',
      'FAILED',
      'FAILED',
    ]);
  });

  it("ties the status to the run's branch with refname", async () => {
    const { instance } = publisher();
    await instance.publish({ ...target('bitbucket', 'acme/shop'), ref: 'main' }, status('success'));
    expect(forge.requests[0]?.body).toMatchObject({ refname: 'main', state: 'SUCCESSFUL' });
  });

  it('sends a user:secret token as Basic authentication', async () => {
    const { instance } = publisher({ tokens: { tokenFor: async () => 'ci@acme.example:ATATT3xFf' } });
    await instance.publish(target('bitbucket', 'acme/shop'), status('pending'));
    expect(forge.requests[0]?.headers.authorization).toBe(
      `Basic ${Buffer.from('ci@acme.example:ATATT3xFf').toString('base64')}`,
    );
  });

  it('keeps the key within 40 characters', async () => {
    const { instance } = publisher();
    await instance.publish(
      target('bitbucket', 'acme/shop'),
      status('pending', 'stepline/infrastructure-staging-eu-west-1'),
    );
    const body = forge.requests[0]?.body as { key: string; name: string };
    expect(body.key).toHaveLength(40);
    expect(body.name).toBe('stepline/infrastructure-staging-eu-west-1');
  });

  it('never passes on the token, even when the forge echoes it', async () => {
    forge.answer({
      status: 400,
      body: { error: { message: 'Bad token bb-access-token for this repository' } },
    });
    const { instance } = publisher();
    const outcome = await instance.publish(target('bitbucket', 'acme/shop'), status('pending'));
    expect(outcome.outcome === 'failed' && outcome.reason).toMatch(
      /^Bitbucket answered 400: .*Bad token \[token\]/,
    );
    expect(JSON.stringify(outcome)).not.toContain('bb-access-token');
  });

  it('retries 429 with its retry-after and a 502, then posts', async () => {
    forge.answer({ status: 429, headers: { 'retry-after': '1' } }, { status: 502, body: 'Bad gateway' });
    const { instance, waits } = publisher();
    await expect(instance.publish(target('bitbucket', 'acme/shop'), status('success'))).resolves.toEqual({
      outcome: 'posted',
      attempts: 3,
    });
    expect(waits[0]).toBe(20); // Retry-After (1 s), cut to this test's longest wait.
  });
});

describe('a forge that is down, or not configured', () => {
  it('reports a failure after bounded attempts when nothing answers, and never throws', async () => {
    const down = await ForgeServer.start();
    const url = down.url;
    await down.close();
    const { instance, waits } = publisher({ retry: { attempts: 3 } });
    for (const provider of ['github', 'gitlab', 'bitbucket'] as const) {
      const outcome = await instance.publish(
        {
          provider,
          apiUrl: provider === 'bitbucket' ? `${url}/2.0` : url,
          repository: 'acme/shop',
          commit: COMMIT,
        },
        status('pending'),
      );
      expect(outcome, provider).toMatchObject({ outcome: 'failed', attempts: 3 });
    }
    expect(waits).toHaveLength(6);
  });

  it('skips a provider without a token, saying so in one log line', async () => {
    const { instance, logger } = publisher({ tokens: { tokenFor: async () => undefined } });
    const info = vi.spyOn(logger, 'info');
    for (let i = 0; i < 3; i += 1) {
      await expect(instance.publish(target('gitlab', 'acme/shop'), status('pending'))).resolves.toEqual({
        outcome: 'skipped',
        reason: 'no GitLab status token is configured',
      });
    }
    expect(forge.requests).toEqual([]);
    expect(info).toHaveBeenCalledTimes(1);
    expect(info.mock.calls[0]?.[0]).toBe('Commit statuses to GitLab are skipped: no token is configured');
  });

  it('reports a token that cannot be read as a failure, not a throw', async () => {
    const { instance } = publisher({
      tokens: {
        tokenFor: async () => {
          throw new Error('ParameterNotFound');
        },
      },
    });
    await expect(instance.publish(target('github', 'acme/shop'), status('pending'))).resolves.toMatchObject({
      outcome: 'failed',
      attempts: 0,
    });
  });
});
