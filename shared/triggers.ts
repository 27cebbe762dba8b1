import picomatch from 'picomatch';
import * as z from '#shared/zod.ts';
import type { PullRequest } from './pull-request.ts';
import type { Push } from './push.ts';

const PatternsSchema = z.array(z.string().check(z.minLength(1))).check(z.minLength(1), z.maxLength(8));
const CriteriaSchema = z
  .object({ includes: z.optional(PatternsSchema), excludes: z.optional(PatternsSchema) })
  .check(
    z.refine((c) => c.includes !== undefined || c.excludes !== undefined, 'give includes, excludes or both'),
  );

/**
 * One push filter, as in CodePipeline V2's `gitConfiguration.push[]`: either branches (optionally narrowed by
 * file paths) or tags.
 */
export const PushFilterSchema = z
  .object({
    branches: z.optional(CriteriaSchema),
    tags: z.optional(CriteriaSchema),
    filePaths: z.optional(CriteriaSchema),
  })
  .check(
    z.refine(
      (f) => (f.branches === undefined) !== (f.tags === undefined),
      'a push filter names either branches or tags',
    ),
    z.refine(
      (f) => f.filePaths === undefined || f.branches !== undefined,
      'filePaths narrow a branches filter only',
    ),
  );
export type PushFilter = z.infer<typeof PushFilterSchema>;

/**
 * One pull-request filter, as CodePipeline V2's `gitConfiguration.pullRequest[]`
 * (https://docs.aws.amazon.com/codepipeline/latest/APIReference/API_GitPullRequestFilter.html): which events
 * (default OPEN and UPDATED; CLOSED never starts a run), the target `branches`, the `sourceBranches`, and
 * `filePaths`. Beyond CodePipeline: `drafts` and `forks` (both false by default) let draft requests and
 * requests from forks start runs.
 */
export const PullRequestFilterSchema = z.object({
  events: z._default(z.array(z.enum(['OPEN', 'UPDATED'])).check(z.minLength(1)), ['OPEN', 'UPDATED']),
  branches: z.optional(CriteriaSchema),
  sourceBranches: z.optional(CriteriaSchema),
  filePaths: z.optional(CriteriaSchema),
  drafts: z._default(z.boolean(), false),
  forks: z._default(z.boolean(), false),
});
export type PullRequestFilter = z.infer<typeof PullRequestFilterSchema>;

/**
 * Which pushes start a run (`STEPLINE_TRIGGERS`). With no push filters, a push to the repository's default branch
 * starts a run (main or master when the payload does not name the default branch); tags and other branches do not.
 * With `repositories`, only those repositories (full names, case-insensitive) are accepted.
 *
 * @example
 * ```json
 * {"repositories": ["acme/shop"], "push": [{"branches": {"includes": ["main", "release/**"]},
 *   "filePaths": {"excludes": ["docs/**", "**\/*.md"]}}, {"tags": {"includes": ["v*"]}}]}
 * ```
 */
export const TriggersSchema = z.object({
  repositories: z.optional(z.array(z.string().check(z.minLength(1)))),
  push: z._default(z.array(PushFilterSchema).check(z.maxLength(3)), []),
  pullRequest: z._default(z.array(PullRequestFilterSchema).check(z.maxLength(3)), []),
});
export type Triggers = z.infer<typeof TriggersSchema>;

export type TriggerDecision = { matches: true; reason: string } | { matches: false; reason: string };

// CodePipeline's globs: `*` within one path segment, `**` across segments, `?`, `[…]`, `{a,b}`; dot files match.
const matcher = (patterns: string[]) => picomatch(patterns, { dot: true });

/** CodePipeline V2's include/exclude rule: excludes take priority; absent includes include everything. */
function criteriaMatch(criteria: { includes?: string[]; excludes?: string[] }, value: string): boolean {
  if (criteria.excludes && matcher(criteria.excludes)(value)) return false;
  return criteria.includes === undefined || matcher(criteria.includes)(value);
}

function filePathsMatch(criteria: { includes?: string[]; excludes?: string[] }, push: Push): TriggerDecision {
  if (push.commitsTruncated || push.changedFiles === undefined) {
    return {
      matches: true,
      reason:
        'the provider listed only some of the pushed commits, so the file path filter cannot rule this push out',
    };
  }
  const matching = push.changedFiles.find((file) => criteriaMatch(criteria, file));
  return matching === undefined
    ? { matches: false, reason: 'no changed file matches the file path filter' }
    : { matches: true, reason: `changed file ${matching} matches the file path filter` };
}

function filterMatches(filter: PushFilter, push: Push): TriggerDecision {
  if (push.refType === 'tag') {
    return filter.tags && criteriaMatch(filter.tags, push.refName)
      ? { matches: true, reason: `tag ${push.refName} matches the tag filter` }
      : { matches: false, reason: `tag ${push.refName} matches no tag filter` };
  }
  if (!filter.branches || !criteriaMatch(filter.branches, push.refName)) {
    return { matches: false, reason: `branch ${push.refName} matches no branch filter` };
  }
  return filter.filePaths
    ? filePathsMatch(filter.filePaths, push)
    : { matches: true, reason: `branch ${push.refName} matches the branch filter` };
}

/**
 * Decides whether a push starts a run, with a reason a person can read. Deleted refs never start one.
 *
 * @example
 * ```ts
 * matchTriggers({ push: [{ tags: { includes: ['v*'] } }] }, push); // { matches: true, reason: 'tag v1.0 matches …' }
 * ```
 */
export function matchTriggers(triggers: Triggers, push: Push): TriggerDecision {
  if (push.deleted || push.after === null) {
    return { matches: false, reason: `${push.refType} ${push.refName} was deleted` };
  }
  if (triggers.repositories) {
    const name = push.repository.fullName.toLowerCase();
    if (!triggers.repositories.some((allowed) => allowed.toLowerCase() === name)) {
      return {
        matches: false,
        reason: `repository ${push.repository.fullName} is not in the configured repositories`,
      };
    }
  }
  if (triggers.push.length === 0) {
    const defaults = push.repository.defaultBranch ? [push.repository.defaultBranch] : ['main', 'master'];
    return push.refType === 'branch' && defaults.includes(push.refName)
      ? { matches: true, reason: `push to the default branch ${push.refName}` }
      : {
          matches: false,
          reason: `no trigger filters are configured and ${push.refType} ${push.refName} is not the default branch (${defaults.join(' or ')})`,
        };
  }
  return firstMatching(triggers.push, (filter) => filterMatches(filter, push), 'push filter');
}

/**
 * The first filter that matches, as CodePipeline V2 reads a list of filters (any one starts the run); else
 * the reason the last one gave (alone, when there is only one filter).
 */
function firstMatching<F>(
  filters: F[],
  match: (filter: F) => TriggerDecision,
  kind: string,
): TriggerDecision {
  let last: TriggerDecision = { matches: false, reason: `no ${kind} matches` };
  for (const filter of filters) {
    const decision = match(filter);
    if (decision.matches) return decision;
    last = decision;
  }
  return filters.length === 1 ? last : { matches: false, reason: `no ${kind} matches (${last.reason})` };
}

function repositoryAllowed(triggers: Triggers, fullName: string): TriggerDecision | undefined {
  if (!triggers.repositories) return undefined;
  const name = fullName.toLowerCase();
  return triggers.repositories.some((allowed) => allowed.toLowerCase() === name)
    ? undefined
    : { matches: false, reason: `repository ${fullName} is not in the configured repositories` };
}

function pullRequestFilterMatches(filter: PullRequestFilter, pr: PullRequest): TriggerDecision {
  const which = `pull request #${pr.number}`;
  if (pr.event === 'CLOSED' || !filter.events.includes(pr.event)) {
    return { matches: false, reason: `${which} was ${pr.event.toLowerCase()}, an event no filter names` };
  }
  if (filter.branches && !criteriaMatch(filter.branches, pr.target.branch)) {
    return { matches: false, reason: `${which} targets ${pr.target.branch}, which matches no branch filter` };
  }
  if (filter.sourceBranches && !criteriaMatch(filter.sourceBranches, pr.source.branch)) {
    return {
      matches: false,
      reason: `${which} comes from ${pr.source.branch}, which matches no source branch filter`,
    };
  }
  if (pr.draft && !filter.drafts) {
    return { matches: false, reason: `${which} is a draft (a filter with "drafts": true runs drafts)` };
  }
  if (pr.fork && !filter.forks) {
    return {
      matches: false,
      reason: `${which} comes from the fork ${pr.source.repository} (a filter with "forks": true runs forks)`,
    };
  }
  return filter.filePaths
    ? {
        matches: true,
        reason: `${which} matches a filter; its changed files are not in the payload, so the file path filter cannot rule it out`,
      }
    : { matches: true, reason: `${which} targets ${pr.target.branch} and matches a pull request filter` };
}

/**
 * Decides whether a pull request starts a CI run, with a reason a person can read. Closed requests never do.
 * With no pull-request filters, a request targeting the repository's default branch (main or master when
 * the payload does not name it) does, unless it is a draft or comes from a fork.
 *
 * @example
 * ```ts
 * matchPullRequestTriggers({ push: [], pullRequest: [] }, pr); // { matches: true, reason: 'pull request #3 targets main …' }
 * ```
 */
export function matchPullRequestTriggers(triggers: Triggers, pr: PullRequest): TriggerDecision {
  if (pr.event === 'CLOSED') return { matches: false, reason: `pull request #${pr.number} was closed` };
  const refused = repositoryAllowed(triggers, pr.target.repository);
  if (refused) return refused;
  if (triggers.pullRequest.length === 0) {
    const defaults = pr.target.defaultBranch ? [pr.target.defaultBranch] : ['main', 'master'];
    if (!defaults.includes(pr.target.branch)) {
      return {
        matches: false,
        reason: `no pull request filters are configured and pull request #${pr.number} targets ${pr.target.branch}, not the default branch (${defaults.join(' or ')})`,
      };
    }
    return pullRequestFilterMatches(PullRequestFilterSchema.parse({}), pr);
  }
  return firstMatching(
    triggers.pullRequest,
    (filter) => pullRequestFilterMatches(filter, pr),
    'pull request filter',
  );
}
