import type { CommitState, CommitStatus, StatusProvider, StatusTarget } from './model.ts';

/**
 * The three forges' status APIs, each through its maintained client: Octokit for GitHub, Gitbeaker for
 * GitLab, and `fetch` for Bitbucket Cloud (which has no maintained JavaScript client). Each call makes one
 * attempt (Gitbeaker's own 429/502 retries aside, bounded by its query timeout) and throws a
 * {@link ForgeError} saying whether waiting may cure it; ./publisher.ts retries.
 *
 * - GitHub: `POST /repos/{owner}/{repo}/statuses/{sha}`, `{state, target_url, description, context}`,
 *   states error, failure, pending, success
 *   (https://docs.github.com/en/rest/commits/statuses#create-a-commit-status).
 * - GitLab: `POST /api/v4/projects/:id/statuses/:sha`, `{state, ref, name, target_url, description}`, states
 *   pending, running, success, failed, canceled, skipped; `:id` the URL-encoded project path, the token in
 *   `PRIVATE-TOKEN` (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit).
 * - Bitbucket Cloud: `POST /2.0/repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build`,
 *   `{key, state, name, url, description, refname}`, states INPROGRESS, SUCCESSFUL, FAILED, STOPPED
 *   (https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/#api-repositories-workspace-repo-slug-commit-commit-statuses-build-post).
 */

/** A status the forge did not take, and whether a later attempt may succeed. Never carries the token. */
export class ForgeError extends Error {
  /** The HTTP status, or 0 when no answer came (refused, reset, timed out). */
  readonly status: number;
  /** True for rate limits, 5xx and no answer: what waiting may cure. */
  readonly retryable: boolean;
  /** How long the forge asked to wait (Retry-After, or until the rate limit resets), when it said. */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    details: { status: number; retryable: boolean; retryAfterMs?: number | undefined },
  ) {
    super(message);
    this.name = 'ForgeError';
    this.status = details.status;
    this.retryable = details.retryable;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** Posts one status with one token; throws {@link ForgeError}. */
export type ForgeClient = (target: StatusTarget, status: CommitStatus, token: string) => Promise<void>;

/** How long one request (with Gitbeaker, its own retries too) may take. */
export const REQUEST_TIMEOUT_MS = 10_000;

const GITLAB_STATES: Record<CommitState, 'running' | 'success' | 'failed'> = {
  // A run or stage that reports is already running (GitLab's `pending` means queued).
  pending: 'running',
  success: 'success',
  failure: 'failed',
  error: 'failed',
};

const BITBUCKET_STATES: Record<CommitState, 'INPROGRESS' | 'SUCCESSFUL' | 'FAILED'> = {
  pending: 'INPROGRESS',
  success: 'SUCCESSFUL',
  failure: 'FAILED',
  error: 'FAILED',
};

/** Bitbucket's `key` is at most 40 characters and identifies the status among the commit's others. */
const BITBUCKET_KEY_MAX = 40;

/** Whether an HTTP status is worth another attempt: rate limited, or the forge failing. */
function retryableStatus(status: number): boolean {
  return status === 429 || status >= 500 || status === 0;
}

/** Retry-After (seconds or an HTTP date), in milliseconds from now. */
function retryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function splitRepository(repository: string): [string, string] {
  const slash = repository.indexOf('/');
  return [repository.slice(0, slash), repository.slice(slash + 1)];
}

/**
 * GitHub through Octokit. A 403 with `x-ratelimit-remaining: 0` is the primary rate limit (wait until
 * `x-ratelimit-reset`), a 403 or 429 with `retry-after` a secondary one
 * (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit).
 */
export const postGitHubStatus: ForgeClient = async (target, status, token) => {
  const [owner, repo] = splitRepository(target.repository);
  // Loaded when first used: a function's cold start evaluates only the client of the forge it posts to.
  // Octokit's core: one endpoint is called, so none of @octokit/rest's generated methods is bundled.
  const { Octokit } = await import('@octokit/core');
  const octokit = new Octokit({
    auth: token,
    baseUrl: target.apiUrl,
    userAgent: 'stepline',
    request: { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) },
    // Octokit's default logger writes warnings to the console; nothing of a request is logged here.
    log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
  });
  try {
    // https://docs.github.com/en/rest/commits/statuses#create-a-commit-status
    await octokit.request('POST /repos/{owner}/{repo}/statuses/{sha}', {
      owner,
      repo,
      sha: target.commit,
      state: status.state,
      target_url: status.targetUrl,
      description: status.description,
      context: status.context,
    });
  } catch (error) {
    throw gitHubError(error);
  }
};

function gitHubError(error: unknown): ForgeError {
  const { status = 0, response } = error as {
    status?: number;
    response?: { headers?: Record<string, string | undefined> };
  };
  const headers = response?.headers ?? {};
  const primaryLimit = status === 403 && headers['x-ratelimit-remaining'] === '0';
  const secondaryLimit = (status === 403 || status === 429) && headers['retry-after'] !== undefined;
  const reset = Number(headers['x-ratelimit-reset']);
  const waitMs = secondaryLimit
    ? retryAfter(headers['retry-after'])
    : primaryLimit && Number.isFinite(reset)
      ? Math.max(0, reset * 1000 - Date.now())
      : undefined;
  return new ForgeError(`GitHub answered ${status || 'nothing'}: ${firstLine(error)}`, {
    status,
    retryable: primaryLimit || secondaryLimit || retryableStatus(status),
    retryAfterMs: waitMs,
  });
}

/**
 * GitLab (gitlab.com or self-managed) through Gitbeaker. Gitbeaker retries 429 and 502 itself, within
 * {@link REQUEST_TIMEOUT_MS}; other 5xx come here. GitLab refuses to set a status to the state it is already
 * in (400 "Cannot transition status via :run from :running"), which a redelivered event asks: that status
 * is there, so it counts as posted.
 */
export const postGitLabStatus: ForgeClient = async (target, status, token) => {
  const { Commits } = await import('@gitbeaker/rest');
  const commits = new Commits({ host: target.apiUrl, token, queryTimeout: REQUEST_TIMEOUT_MS });
  try {
    await commits.editStatus(target.repository, target.commit, GITLAB_STATES[status.state], {
      ...(target.ref ? { ref: target.ref } : {}),
      name: status.context,
      targetUrl: status.targetUrl,
      description: status.description,
    });
  } catch (error) {
    const response = (error as { cause?: { response?: Response } }).cause?.response;
    const code = response?.status ?? 0;
    const message = firstLine(error);
    if (code === 400 && /cannot transition status/i.test(message)) return;
    // Gitbeaker's own retries of 429 and 502 ran out, or its timeout did: waiting more is not bounded.
    const exhausted = ['GitbeakerRetryError', 'GitbeakerTimeoutError'].includes((error as Error).name);
    throw new ForgeError(`GitLab answered ${code || 'nothing'}: ${message}`, {
      status: code,
      retryable: !exhausted && retryableStatus(code),
      retryAfterMs: retryAfter(response?.headers.get('retry-after')),
    });
  }
};

/**
 * Bitbucket Cloud through `fetch`. A token with a colon is `user:secret` for Basic authentication (an
 * API token with its Atlassian account email, or an app password with the username); any other is an access
 * token sent as `Bearer` (https://developer.atlassian.com/cloud/bitbucket/rest/intro/#authentication).
 */
export const postBitbucketStatus: ForgeClient = async (target, status, token) => {
  const [workspace, slug] = splitRepository(target.repository);
  const url =
    `${target.apiUrl}/repositories/${encodeURIComponent(workspace)}/${encodeURIComponent(slug)}` +
    `/commit/${target.commit}/statuses/build`;
  const authorization = token.includes(':')
    ? `Basic ${Buffer.from(token).toString('base64')}`
    : `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({
        key: Array.from(status.context).slice(0, BITBUCKET_KEY_MAX).join(''),
        state: BITBUCKET_STATES[status.state],
        name: status.context,
        url: status.targetUrl,
        description: status.description,
        ...(target.ref ? { refname: target.ref } : {}),
      }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    throw new ForgeError(`Bitbucket answered nothing: ${firstLine(error)}`, { status: 0, retryable: true });
  }
  if (response.ok) {
    await response.body?.cancel();
    return;
  }
  const text = (await response.text().catch(() => '')).slice(0, 300);
  throw new ForgeError(`Bitbucket answered ${response.status}: ${firstLine(text)}`, {
    status: response.status,
    retryable: retryableStatus(response.status),
    retryAfterMs: retryAfter(response.headers.get('retry-after')),
  });
};

/** The client of each forge. */
export const FORGE_CLIENTS: Record<StatusProvider, ForgeClient> = {
  github: postGitHubStatus,
  gitlab: postGitLabStatus,
  bitbucket: postBitbucketStatus,
};

/** The first line of an error's message, bounded: forges' error bodies can be long; none holds a token. */
function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error && error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${text}${cause}`.split('\n')[0]?.slice(0, 300) ?? '';
}
