import * as z from '#shared/zod.ts';
import { InvalidInputError } from './errors.ts';

/** Where a push came from. Bitbucket Cloud and Bitbucket Data Center both arrive as `bitbucket`. */
export const ProviderSchema = z.enum(['github', 'gitlab', 'bitbucket', 'codecommit']);
export type Provider = z.infer<typeof ProviderSchema>;

/** Webhook providers: the ones with a `POST /webhooks/{provider}` route. */
export const WEBHOOK_PROVIDERS = ['github', 'gitlab', 'bitbucket'] as const satisfies readonly Provider[];
export type WebhookProvider = (typeof WEBHOOK_PROVIDERS)[number];

/**
 * One push of one ref, whatever provider it came from: the only shape the rest of stepline sees.
 *
 * @example
 * ```ts
 * const push: Push = {
 *   provider: 'github',
 *   repository: { fullName: 'octo/app', cloneUrl: 'https://github.com/octo/app.git', defaultBranch: 'main' },
 *   ref: 'refs/heads/main', refType: 'branch', refName: 'main',
 *   before: 'a1…', after: 'b2…', created: false, deleted: false, forced: false,
 *   pusher: 'octocat', headCommitMessage: 'Fix the thing', changedFiles: ['src/app.ts'], commitsTruncated: false,
 * };
 * ```
 */
export const PushSchema = z.object({
  provider: ProviderSchema,
  repository: z.object({
    /** `owner/name` (GitHub, GitLab path with namespace, Bitbucket workspace/slug, CodeCommit name). */
    fullName: z.string().check(z.minLength(1)),
    /** The URL a build clones from (HTTPS). */
    cloneUrl: z.string().check(z.minLength(1)),
    /** The default branch when the payload names it. */
    defaultBranch: z.optional(z.string().check(z.minLength(1))),
  }),
  /** The full ref, `refs/heads/…` or `refs/tags/…`. */
  ref: z.string().check(z.minLength(1)),
  refType: z.enum(['branch', 'tag']),
  /** The ref without its `refs/heads/` or `refs/tags/` prefix. */
  refName: z.string().check(z.minLength(1)),
  /** The commit before the push; null when the ref was created. */
  before: z.nullable(z.string()),
  /** The commit after the push; null when the ref was deleted. */
  after: z.nullable(z.string()),
  created: z.boolean(),
  deleted: z.boolean(),
  forced: z.boolean(),
  /** Who pushed, as the provider names them. */
  pusher: z.optional(z.string()),
  headCommitMessage: z.optional(z.string()),
  /**
   * Files added, modified or removed by the pushed commits, as far as the payload lists them. Read by the
   * trigger filters before a run starts, and left out of the execution input (see {@link executionPush}):
   * a push of 10,000 files would not fit Step Functions' 256 KiB.
   */
  changedFiles: z.optional(z.array(z.string())),
  /** True when the provider listed only some of the pushed commits, so changedFiles may be incomplete. */
  commitsTruncated: z.boolean(),
});
export type Push = z.infer<typeof PushSchema>;

/** A 40-zero SHA: how GitHub, GitLab and Bitbucket DC say "no commit" (created or deleted ref). */
export const ZERO_SHA = '0000000000000000000000000000000000000000';

/** Splits a full ref into its type and short name, or returns undefined for refs that are neither. */
export function parseRef(ref: string): { refType: 'branch' | 'tag'; refName: string } | undefined {
  if (ref.startsWith('refs/heads/') && ref.length > 'refs/heads/'.length) {
    return { refType: 'branch', refName: ref.slice('refs/heads/'.length) };
  }
  if (ref.startsWith('refs/tags/') && ref.length > 'refs/tags/'.length) {
    return { refType: 'tag', refName: ref.slice('refs/tags/'.length) };
  }
  return undefined;
}

/**
 * Step Functions refuses an execution input, and fails a state whose input or output, over 256 KiB of UTF-8
 * (States.DataLimitExceeded): https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
 * ("Maximum input or output size for a task, state, or execution").
 */
export const STEP_FUNCTIONS_MAX_STATE_BYTES = 256 * 1024;

/** How long each free-text field of a push may be in the execution input, in characters (code points). */
export const PUSH_TEXT_LIMITS = { headCommitMessage: 1000, pusher: 100 } as const;

/**
 * The longest identifier a push may carry, in characters: a repository full name, ref, clone URL or default
 * branch longer than this is refused rather than cut (a cut identifier would name something else).
 */
export const PUSH_IDENTIFIER_LIMIT = 1024;

/** Cuts `text` to at most `limit` code points, the last one an ellipsis when anything was cut. */
export function boundText(text: string, limit: number): string {
  const points = Array.from(text);
  return points.length <= limit ? text : `${points.slice(0, limit - 1).join('')}…`;
}

/**
 * The push as the execution carries it: without its changed files (the trigger filters have used them),
 * and with its free text bounded ({@link PUSH_TEXT_LIMITS}), so that every execution input stays far under
 * {@link STEP_FUNCTIONS_MAX_STATE_BYTES}. Throws `InvalidInputError` (400) naming an identifier over
 * {@link PUSH_IDENTIFIER_LIMIT}.
 */
export function executionPush(push: Push): Push {
  const { changedFiles: _files, headCommitMessage, pusher, ...rest } = push;
  for (const [field, value] of [
    ['repository.fullName', push.repository.fullName],
    ['repository.cloneUrl', push.repository.cloneUrl],
    ['repository.defaultBranch', push.repository.defaultBranch ?? ''],
    ['ref', push.ref],
  ] as const) {
    if (Array.from(value).length > PUSH_IDENTIFIER_LIMIT) {
      throw new InvalidInputError(`The push's ${field} is over ${PUSH_IDENTIFIER_LIMIT} characters`);
    }
  }
  return {
    ...rest,
    ...(pusher === undefined ? {} : { pusher: boundText(pusher, PUSH_TEXT_LIMITS.pusher) }),
    ...(headCommitMessage === undefined
      ? {}
      : { headCommitMessage: boundText(headCommitMessage, PUSH_TEXT_LIMITS.headCommitMessage) }),
  };
}
