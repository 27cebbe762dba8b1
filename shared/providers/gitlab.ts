import * as z from '#shared/zod.ts';
import { InvalidInputError } from '../errors.ts';
import { type PullRequest, type PullRequestEvent, pullRequestHead } from '../pull-request.ts';
import type { Push } from '../push.ts';
import { findHeader } from '../signatures.ts';
import {
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
 * The fields of a GitLab push or tag push hook (project, group or system hook) that a {@link Push} needs;
 * every other field is accepted and ignored.
 */
export const GitLabPushPayloadSchema = z.looseObject({
  object_kind: z.nullish(z.string()),
  event_name: z.nullish(z.string()),
  ref: z.string().check(z.minLength(1)),
  before: z.string().check(z.minLength(1)),
  after: z.string().check(z.minLength(1)),
  /** null when the push deleted the ref. */
  checkout_sha: z.nullish(z.string()),
  user_name: z.nullish(z.string()),
  user_username: z.nullish(z.string()),
  total_commits_count: z.nullish(z.number().check(z.int(), z.nonnegative())),
  project: z.looseObject({
    path_with_namespace: z.string().check(z.minLength(1)),
    git_http_url: z.string().check(z.minLength(1)),
    /** The project's web address (`homepage` in older hooks): the clone URL must be on its host, at its path. */
    web_url: z.nullish(z.string()),
    homepage: z.nullish(z.string()),
    default_branch: z.nullish(z.string()),
  }),
  commits: z.nullish(z.array(PushedCommitSchema)),
});
export type GitLabPushPayload = z.infer<typeof GitLabPushPayloadSchema>;

const WHAT = 'GitLab push payload';

/** The object kinds (or, in system hooks, event names) that are pushes. */
const PUSH_KINDS = new Set(['push', 'tag_push']);

/**
 * Turns a validated GitLab push payload into a {@link Push}.
 *
 * GitLab does not report force pushes: forced is always false. The ref was created when `before` is the
 * zero SHA and deleted when `after` is, or when `checkout_sha` is null. GitLab lists at most 20 commits:
 * commitsTruncated is true when `total_commits_count` exceeds the commits listed, or when a commit
 * carries no file lists (system hooks send none).
 */
export function gitLabPush(payload: GitLabPushPayload): Push {
  const { refType, refName } = refParts(payload.ref, WHAT);
  const before = commitOrNull(payload.before);
  const pushedAfter = pushedCommit(payload.after, 'after', WHAT);
  const checkoutSha = pushedCommit(payload.checkout_sha, 'checkout_sha', WHAT);
  const deleted = pushedAfter === null || payload.checkout_sha === null;
  const after = deleted ? null : pushedAfter;
  const commits = payload.commits ?? [];
  const commitsTruncated =
    !deleted &&
    ((payload.total_commits_count ?? commits.length) > commits.length || commits.some(lacksFileLists));
  const headSha = checkoutSha ?? after;
  const headCommitMessage = commits.find((commit) => commit.id === headSha)?.message ?? undefined;
  const pusher = payload.user_username ?? payload.user_name ?? undefined;
  const defaultBranch = payload.project.default_branch ?? undefined;
  return {
    provider: 'gitlab',
    repository: {
      fullName: payload.project.path_with_namespace,
      cloneUrl: repositoryCloneUrl(
        payload.project.git_http_url,
        payload.project.web_url ?? payload.project.homepage,
        payload.project.path_with_namespace,
        {
          what: WHAT,
          cloneField: 'project.git_http_url',
          webField: 'project.web_url',
          fullNameField: 'project.path_with_namespace',
        },
      ),
      ...(defaultBranch ? { defaultBranch } : {}),
    },
    ref: payload.ref,
    refType,
    refName,
    before,
    after,
    created: before === null && !deleted,
    deleted,
    forced: false,
    ...(pusher ? { pusher } : {}),
    ...(headCommitMessage !== undefined ? { headCommitMessage } : {}),
    changedFiles: changedFilesOf(commits),
    commitsTruncated,
  };
}

/** A system hook's kind: `object_kind`, or `event_name` in system hooks that carry no object kind. */
function systemHookKind(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) {
    return undefined;
  }
  const { object_kind: kind, event_name: name } = body as Record<string, unknown>;
  if (typeof kind === 'string') {
    return kind;
  }
  return typeof name === 'string' ? name : undefined;
}

/**
 * Normalizes a GitLab webhook delivery: `X-Gitlab-Event: Push Hook` or `Tag Push Hook`, and a
 * `System Hook` whose object kind is push or tag_push, give one push; every other event is ignored with
 * a reason. The delivery id is `X-Gitlab-Event-UUID` (or `X-Gitlab-Webhook-UUID`).
 */
export function normalizeGitLabWebhook(
  headers: Record<string, string | undefined>,
  body: unknown,
): WebhookOutcome {
  const event = findHeader(headers, 'X-Gitlab-Event');
  if (event === undefined) {
    throw new InvalidInputError('Missing X-Gitlab-Event header');
  }
  if (event === 'Merge Request Hook') {
    const deliveryId =
      findHeader(headers, 'X-Gitlab-Event-UUID') ?? findHeader(headers, 'X-Gitlab-Webhook-UUID');
    return gitLabMergeRequest(body, deliveryId);
  }
  if (event === 'System Hook') {
    const kind = systemHookKind(body);
    if (kind === undefined || !PUSH_KINDS.has(kind)) {
      return { kind: 'ignored', reason: `GitLab system hook "${kind ?? 'unknown'}" is not a push` };
    }
  } else if (event !== 'Push Hook' && event !== 'Tag Push Hook') {
    return { kind: 'ignored', reason: `GitLab event "${event}" is neither a push nor a merge request` };
  }
  const push = gitLabPush(parsePayload(GitLabPushPayloadSchema, body, WHAT));
  const deliveryId =
    findHeader(headers, 'X-Gitlab-Event-UUID') ?? findHeader(headers, 'X-Gitlab-Webhook-UUID');
  return { kind: 'pushes', pushes: [push], ...(deliveryId ? { deliveryId } : {}) };
}

const GitLabMergeRequestProjectSchema = z.looseObject({
  path_with_namespace: z.string().check(z.minLength(1)),
  git_http_url: z.string().check(z.minLength(1)),
  web_url: z.nullish(z.string()),
  homepage: z.nullish(z.string()),
  default_branch: z.nullish(z.string()),
});

/** The fields of a GitLab `Merge Request Hook` a pull-request run needs; every other field is ignored. */
export const GitLabMergeRequestPayloadSchema = z.looseObject({
  user: z.nullish(z.looseObject({ username: z.nullish(z.string()), name: z.nullish(z.string()) })),
  object_attributes: z.looseObject({
    iid: z.number().check(z.int(), z.nonnegative()),
    action: z.string().check(z.minLength(1)),
    title: z.nullish(z.string()),
    url: z.nullish(z.string()),
    /** `draft` since GitLab 14; `work_in_progress` before (both sent for a while). */
    draft: z.nullish(z.boolean()),
    work_in_progress: z.nullish(z.boolean()),
    source_branch: z.string().check(z.minLength(1)),
    target_branch: z.string().check(z.minLength(1)),
    source_project_id: z.nullish(z.number()),
    target_project_id: z.nullish(z.number()),
    last_commit: z.looseObject({ id: z.string().check(z.minLength(1)) }),
    source: GitLabMergeRequestProjectSchema,
    target: z.catchall(
      z.pick(GitLabMergeRequestProjectSchema, { path_with_namespace: true, default_branch: true }),
      z.unknown(),
    ),
  }),
});

const MR_WHAT = 'GitLab merge request payload';

/**
 * GitLab's merge request actions that start a run: open and reopen are OPEN; update (new commits, or the
 * request changed, e.g. marked ready) is UPDATED. The same head commit starts nothing twice: a run's name
 * is derived from it. (https://docs.gitlab.com/user/project/integrations/webhook_events/#merge-request-events)
 */
const GITLAB_MERGE_REQUEST_EVENTS: Record<string, PullRequestEvent> = {
  open: 'OPEN',
  reopen: 'OPEN',
  update: 'UPDATED',
};

/** A `Merge Request Hook` delivery: a merge request to run, or why it starts nothing (closed, merged, …). */
export function gitLabMergeRequest(body: unknown, deliveryId: string | undefined): WebhookOutcome {
  const attributes =
    typeof body === 'object' && body !== null
      ? ((body as { object_attributes?: unknown }).object_attributes as Record<string, unknown> | undefined)
      : undefined;
  const action = attributes?.action;
  if (action === 'close' || action === 'merge') {
    return {
      kind: 'ignored',
      reason: `merge request !${String(attributes?.iid)} was ${action === 'close' ? 'closed' : 'merged'}`,
    };
  }
  const event = typeof action === 'string' ? GITLAB_MERGE_REQUEST_EVENTS[action] : undefined;
  if (event === undefined) {
    return {
      kind: 'ignored',
      reason: `GitLab merge request action "${String(action)}" starts no run (open, update and reopen do)`,
    };
  }
  const payload = parsePayload(GitLabMergeRequestPayloadSchema, body, MR_WHAT);
  const mr = payload.object_attributes;
  const cloneUrl = repositoryCloneUrl(
    mr.source.git_http_url,
    mr.source.web_url ?? mr.source.homepage,
    mr.source.path_with_namespace,
    {
      what: MR_WHAT,
      cloneField: 'object_attributes.source.git_http_url',
      webField: 'object_attributes.source.web_url',
      fullNameField: 'object_attributes.source.path_with_namespace',
    },
  );
  const fork =
    mr.source_project_id != null && mr.target_project_id != null
      ? mr.source_project_id !== mr.target_project_id
      : mr.source.path_with_namespace.toLowerCase() !== mr.target.path_with_namespace.toLowerCase();
  const defaultBranch = mr.target.default_branch ?? undefined;
  const author = payload.user?.username ?? payload.user?.name ?? undefined;
  const pullRequest: PullRequest = {
    provider: 'gitlab',
    number: mr.iid,
    title: mr.title ?? '',
    ...(mr.url ? { url: mr.url } : {}),
    event,
    action: mr.action,
    draft: mr.draft ?? mr.work_in_progress ?? false,
    fork,
    ...(author ? { author } : {}),
    head: headCommit(mr.last_commit.id, 'object_attributes.last_commit.id', MR_WHAT),
    target: {
      repository: mr.target.path_with_namespace,
      branch: mr.target_branch,
      ...(defaultBranch ? { defaultBranch } : {}),
    },
    source: { repository: mr.source.path_with_namespace, branch: mr.source_branch },
  };
  return {
    kind: 'pull-request',
    pullRequest,
    head: pullRequestHead(pullRequest, {
      cloneUrl,
      defaultBranch: mr.source.default_branch ?? undefined,
    }),
    ...(deliveryId ? { deliveryId } : {}),
  };
}
