import * as z from 'zod';
import { InvalidInputError } from '../errors.ts';
import type { Push } from '../push.ts';
import { findHeader } from '../signatures.ts';
import {
  type CommitFiles,
  changedFilesOf,
  commitOrNull,
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
  ref: z.string().min(1),
  before: z.string().min(1),
  after: z.string().min(1),
  created: z.boolean().nullish(),
  deleted: z.boolean().nullish(),
  forced: z.boolean().nullish(),
  commits: z.array(PushedCommitSchema).nullish(),
  head_commit: z.looseObject({ message: z.string().nullish() }).nullish(),
  repository: z.looseObject({
    full_name: z.string().min(1),
    clone_url: z.string().min(1),
    /** The repository's web address: the clone URL must be on its host, at its path. */
    html_url: z.string().nullish(),
    default_branch: z.string().nullish(),
    master_branch: z.string().nullish(),
  }),
  pusher: z.looseObject({ name: z.string().nullish() }).nullish(),
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
  if (event !== 'push') {
    return { kind: 'ignored', reason: `GitHub event "${event}" is not a push` };
  }
  const push = gitHubPush(parsePayload(GitHubPushPayloadSchema, body, WHAT));
  const deliveryId = findHeader(headers, 'X-GitHub-Delivery');
  return { kind: 'pushes', pushes: [push], ...(deliveryId ? { deliveryId } : {}) };
}
