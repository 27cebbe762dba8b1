import * as z from 'zod';

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
    fullName: z.string().min(1),
    /** The URL a build clones from (HTTPS). */
    cloneUrl: z.string().min(1),
    /** The default branch when the payload names it. */
    defaultBranch: z.string().min(1).optional(),
  }),
  /** The full ref, `refs/heads/…` or `refs/tags/…`. */
  ref: z.string().min(1),
  refType: z.enum(['branch', 'tag']),
  /** The ref without its `refs/heads/` or `refs/tags/` prefix. */
  refName: z.string().min(1),
  /** The commit before the push; null when the ref was created. */
  before: z.string().nullable(),
  /** The commit after the push; null when the ref was deleted. */
  after: z.string().nullable(),
  created: z.boolean(),
  deleted: z.boolean(),
  forced: z.boolean(),
  /** Who pushed, as the provider names them. */
  pusher: z.string().optional(),
  headCommitMessage: z.string().optional(),
  /** Files added, modified or removed by the pushed commits, as far as the payload lists them. */
  changedFiles: z.array(z.string()),
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
