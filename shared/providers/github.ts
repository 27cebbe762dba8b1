import * as z from '#shared/zod.ts';
import { InvalidInputError } from '../errors.ts';
import { type PullRequest, type PullRequestEvent, pullRequestHead } from '../pull-request.ts';
import type { Push } from '../push.ts';
import { findHeader } from '../signatures.ts';
import {
  type CommitFiles,
  changedFilesOf,
  commitOrNull,
  headCommit,
  lacksFileLists,
  PushedCommitSchema,
  parsePayload,
  pushedCommit,
  refParts,
  repositoryCloneUrl,
  type WebhookOutcome,
} from './payload.ts';

/**
 * GitHub's webhook docs: "The array includes a maximum of 2048 commits" (push event, `commits`).
 * A push listing that many may have had more.
 */
export const GITHUB_MAX_COMMITS = 2048;

/** GitHub's webhook docs: "A maximum of 3000 changed files will be reported per commit". */
export const GITHUB_MAX_FILES_PER_COMMIT = 3000;

/** The fields of a GitHub `push` delivery that a {@link Push} needs; every other field is accepted and ignored. */
export const GitHubPushPayloadSchema = z.looseObject({
  ref: z.string().check(z.minLength(1)),
  before: z.string().check(z.minLength(1)),
  after: z.string().check(z.minLength(1)),
  created: z.nullish(z.boolean()),
  deleted: z.nullish(z.boolean()),
  forced: z.nullish(z.boolean()),
  commits: z.nullish(z.array(PushedCommitSchema)),
  head_commit: z.nullish(z.looseObject({ message: z.nullish(z.string()) })),
  repository: z.looseObject({
    full_name: z.string().check(z.minLength(1)),
    clone_url: z.string().check(z.minLength(1)),
    /** The repository's web address: the clone URL must be on its host, at its path. */
    html_url: z.nullish(z.string()),
    default_branch: z.nullish(z.string()),
    master_branch: z.nullish(z.string()),
  }),
  pusher: z.nullish(z.looseObject({ name: z.nullish(z.string()) })),
});
export type GitHubPushPayload = z.infer<typeof GitHubPushPayloadSchema>;

const WHAT = 'GitHub push payload';

/** A commit whose file lists are absent, or reached GitHub's per-commit cap and may have been cut. */
function fileListsIncomplete(commit: CommitFiles): boolean {
  const listed = (commit.added?.length ?? 0) + (commit.modified?.length ?? 0) + (commit.removed?.length ?? 0);
  return lacksFileLists(commit) || listed >= GITHUB_MAX_FILES_PER_COMMIT;
}

/**
 * Turns a validated GitHub push payload into a {@link Push}.
 *
 * commitsTruncated is true when the commit list may be incomplete: it reached GitHub's cap
 * ({@link GITHUB_MAX_COMMITS}), a commit carries no file lists or reached the per-commit file cap, or a
 * created or forced push of a ref that still exists lists no commits (GitHub lists none for a new ref
 * that adds no commit, and the files that differ are then unknown).
 */
export function gitHubPush(payload: GitHubPushPayload): Push {
  const { refType, refName } = refParts(payload.ref, WHAT);
  const before = commitOrNull(payload.before);
  const after = pushedCommit(payload.after, 'after', WHAT);
  const created = payload.created ?? before === null;
  const deleted = payload.deleted ?? after === null;
  const forced = payload.forced ?? false;
  const commits = payload.commits ?? [];
  const commitsTruncated =
    !deleted &&
    (payload.commits == null ||
      commits.length >= GITHUB_MAX_COMMITS ||
      commits.some(fileListsIncomplete) ||
      (commits.length === 0 && (created || forced)));
  const defaultBranch = payload.repository.default_branch ?? payload.repository.master_branch ?? undefined;
  const pusher = payload.pusher?.name ?? undefined;
  const headCommitMessage = payload.head_commit?.message ?? undefined;
  return {
    provider: 'github',
    repository: {
      fullName: payload.repository.full_name,
      cloneUrl: repositoryCloneUrl(
        payload.repository.clone_url,
        payload.repository.html_url,
        payload.repository.full_name,
        {
          what: WHAT,
          cloneField: 'repository.clone_url',
          webField: 'repository.html_url',
          fullNameField: 'repository.full_name',
        },
      ),
      ...(defaultBranch ? { defaultBranch } : {}),
    },
    ref: payload.ref,
    refType,
    refName,
    before,
    after,
    created,
    deleted,
    forced,
    ...(pusher ? { pusher } : {}),
    ...(headCommitMessage !== undefined ? { headCommitMessage } : {}),
    changedFiles: changedFilesOf(commits),
    commitsTruncated,
  };
}

/**
 * Normalizes a GitHub webhook delivery: `X-GitHub-Event: push` gives one push; `ping` and every other
 * event are ignored with a reason. The delivery id is `X-GitHub-Delivery`.
 */
export function normalizeGitHubWebhook(
  headers: Record<string, string | undefined>,
  body: unknown,
): WebhookOutcome {
  const event = findHeader(headers, 'X-GitHub-Event');
  if (event === undefined) {
    throw new InvalidInputError('Missing X-GitHub-Event header');
  }
  if (event === 'ping') {
    return { kind: 'ignored', reason: 'ping' };
  }
  const deliveryId = findHeader(headers, 'X-GitHub-Delivery');
  if (event === 'pull_request') {
    return gitHubPullRequest(body, deliveryId);
  }
  if (event !== 'push') {
    return { kind: 'ignored', reason: `GitHub event "${event}" is neither a push nor a pull request` };
  }
  const push = gitHubPush(parsePayload(GitHubPushPayloadSchema, body, WHAT));
  return { kind: 'pushes', pushes: [push], ...(deliveryId ? { deliveryId } : {}) };
}

const GitHubPullRequestRepositorySchema = z.looseObject({
  full_name: z.string().check(z.minLength(1)),
  clone_url: z.string().check(z.minLength(1)),
  html_url: z.nullish(z.string()),
  default_branch: z.nullish(z.string()),
});

/** The fields of a GitHub `pull_request` delivery a pull-request run needs; every other field is ignored. */
export const GitHubPullRequestPayloadSchema = z.looseObject({
  action: z.string().check(z.minLength(1)),
  number: z.number().check(z.int(), z.nonnegative()),
  pull_request: z.looseObject({
    title: z.nullish(z.string()),
    html_url: z.nullish(z.string()),
    /** Absent in payloads from before draft pull requests (2019): not a draft. */
    draft: z.nullish(z.boolean()),
    user: z.nullish(z.looseObject({ login: z.nullish(z.string()) })),
    head: z.looseObject({
      ref: z.string().check(z.minLength(1)),
      sha: z.string().check(z.minLength(1)),
      /** null when the fork the request came from was deleted. */
      repo: z.nullish(GitHubPullRequestRepositorySchema),
    }),
    base: z.looseObject({ ref: z.string().check(z.minLength(1)), repo: GitHubPullRequestRepositorySchema }),
  }),
});

const PR_WHAT = 'GitHub pull_request payload';

/**
 * GitHub's pull_request actions that start a run, as CodePipeline's pull-request events: opened, reopened
 * and ready_for_review are OPEN, synchronize (new commits on the head branch) is UPDATED
 * (https://docs.github.com/en/webhooks/webhook-events-and-payloads#pull_request).
 */
const GITHUB_PULL_REQUEST_EVENTS: Record<string, PullRequestEvent> = {
  opened: 'OPEN',
  reopened: 'OPEN',
  ready_for_review: 'OPEN',
  synchronize: 'UPDATED',
};

/** A `pull_request` delivery: a pull request to run, or why it starts nothing (closed, another action). */
export function gitHubPullRequest(body: unknown, deliveryId: string | undefined): WebhookOutcome {
  const action =
    typeof body === 'object' && body !== null ? (body as { action?: unknown }).action : undefined;
  if (action === 'closed') {
    const number = (body as { number?: unknown }).number;
    return { kind: 'ignored', reason: `pull request #${String(number)} was closed` };
  }
  const event = typeof action === 'string' ? GITHUB_PULL_REQUEST_EVENTS[action] : undefined;
  if (event === undefined) {
    return {
      kind: 'ignored',
      reason: `GitHub pull_request action "${String(action)}" starts no run (opened, synchronize, reopened and ready_for_review do)`,
    };
  }
  const payload = parsePayload(GitHubPullRequestPayloadSchema, body, PR_WHAT);
  const { head, base } = payload.pull_request;
  if (head.repo == null) {
    return {
      kind: 'ignored',
      reason: `pull request #${payload.number} comes from a repository that no longer exists`,
    };
  }
  const source = head.repo;
  const cloneUrl = repositoryCloneUrl(source.clone_url, source.html_url, source.full_name, {
    what: PR_WHAT,
    cloneField: 'pull_request.head.repo.clone_url',
    webField: 'pull_request.head.repo.html_url',
    fullNameField: 'pull_request.head.repo.full_name',
  });
  const defaultBranch = base.repo.default_branch ?? undefined;
  const author = payload.pull_request.user?.login ?? undefined;
  const url = payload.pull_request.html_url ?? undefined;
  const pullRequest: PullRequest = {
    provider: 'github',
    number: payload.number,
    title: payload.pull_request.title ?? '',
    ...(url ? { url } : {}),
    event,
    action: payload.action,
    draft: payload.pull_request.draft ?? false,
    fork: source.full_name.toLowerCase() !== base.repo.full_name.toLowerCase(),
    ...(author ? { author } : {}),
    head: headCommit(head.sha, 'pull_request.head.sha', PR_WHAT),
    target: {
      repository: base.repo.full_name,
      branch: base.ref,
      ...(defaultBranch ? { defaultBranch } : {}),
    },
    source: { repository: source.full_name, branch: head.ref },
  };
  const sourceDefault = source.default_branch ?? undefined;
  return {
    kind: 'pull-request',
    pullRequest,
    head: pullRequestHead(pullRequest, { cloneUrl, defaultBranch: sourceDefault }),
    ...(deliveryId ? { deliveryId } : {}),
  };
}
