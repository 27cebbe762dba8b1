import * as z from '#shared/zod.ts';
import { boundText, type Push } from './push.ts';

/**
 * What happened to a pull request, in CodePipeline V2's words for its pull-request triggers
 * (https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_GitPullRequestFilter.html, `events`):
 * OPEN (opened, reopened, or marked ready for review), UPDATED (a new head commit), CLOSED (closed or merged).
 */
export const PullRequestEventSchema = z.enum(['OPEN', 'UPDATED', 'CLOSED']);
export type PullRequestEvent = z.infer<typeof PullRequestEventSchema>;

/**
 * One pull request (GitHub), merge request (GitLab) or pull request (Bitbucket Cloud) at one head commit,
 * whatever provider it came from. A pull-request run builds `head` from `source`; `target` is where the
 * request would merge.
 *
 * @example
 * ```ts
 * const pr: PullRequest = {
 *   provider: 'github', number: 12, title: 'Add the thing', event: 'UPDATED', action: 'synchronize',
 *   draft: false, fork: false, head: '6113728f27ae82c7b1a177c8d03f9e96e0adf246',
 *   target: { repository: 'octo/app', branch: 'main', defaultBranch: 'main' },
 *   source: { repository: 'octo/app', branch: 'feature/thing' },
 * };
 * ```
 */
export const PullRequestSchema = z.object({
  provider: z.enum(['github', 'gitlab', 'bitbucket']),
  /** The request's number in its target repository (GitLab's `iid`). */
  number: z.number().check(z.int(), z.nonnegative()),
  title: z.string(),
  /** Its page, when the payload names it. */
  url: z.optional(z.string()),
  event: PullRequestEventSchema,
  /** The provider's own word for what happened (`synchronize`, `update`, `pullrequest:updated`). */
  action: z.string(),
  draft: z.boolean(),
  /** True when the head commit lives in another repository than the target (a fork). */
  fork: z.boolean(),
  author: z.optional(z.string()),
  /** The commit a run builds: the request's head. */
  head: z.string().check(z.minLength(1)),
  target: z.object({
    repository: z.string().check(z.minLength(1)),
    branch: z.string().check(z.minLength(1)),
    defaultBranch: z.optional(z.string().check(z.minLength(1))),
  }),
  source: z.object({
    repository: z.string().check(z.minLength(1)),
    branch: z.string().check(z.minLength(1)),
  }),
});
export type PullRequest = z.infer<typeof PullRequestSchema>;

/** How long a pull request's title may be in the execution input, in characters. */
export const PULL_REQUEST_TITLE_LIMIT = 300;

/** The pull request as the execution carries it: its title bounded, like a push's commit message. */
export function executionPullRequest(pullRequest: PullRequest): PullRequest {
  return { ...pullRequest, title: boundText(pullRequest.title, PULL_REQUEST_TITLE_LIMIT) };
}

/**
 * The head of a pull request as a {@link Push} of its source branch, which every stage reads
 * (`STEPLINE_REF`, `STEPLINE_COMMIT`, the notifications' repository, branch and commit). Its file list is
 * unknown (no provider's pull-request payload lists files): `commitsTruncated` is true, so a file path
 * filter never rules a request out.
 */
export function pullRequestHead(
  pullRequest: PullRequest,
  source: { cloneUrl: string; defaultBranch?: string | undefined },
): Push {
  return {
    provider: pullRequest.provider,
    repository: {
      fullName: pullRequest.source.repository,
      cloneUrl: source.cloneUrl,
      ...(source.defaultBranch ? { defaultBranch: source.defaultBranch } : {}),
    },
    ref: `refs/heads/${pullRequest.source.branch}`,
    refType: 'branch',
    refName: pullRequest.source.branch,
    before: null,
    after: pullRequest.head,
    created: false,
    deleted: false,
    forced: false,
    ...(pullRequest.author ? { pusher: pullRequest.author } : {}),
    changedFiles: [],
    commitsTruncated: true,
  };
}
