import { createHash } from 'node:crypto';
import type { PullRequest } from './pull-request.ts';
import type { Push } from './push.ts';

/** Step Functions allows at most 80 characters in an execution name. */
export const EXECUTION_NAME_MAX_LENGTH = 80;

/** Lower-case ASCII letters, digits and dashes: safe in execution names, CloudWatch Logs and URLs. */
function slug(text: string, max: number): string {
  return text
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, max)
    .replace(/-+$/g, '');
}

/**
 * The execution name for a push: the same for every delivery of the same push (so a redelivery starts
 * nothing new), different for any other provider, repository, ref, commit or commit before the push. The
 * commit before is part of the identity so that a push back to a commit that already ran (a force-push
 * back, a reset to a tagged commit) is a new push, not a redelivery: it moved the ref from somewhere else.
 * A readable prefix (repository, ref, short commit) is followed by a hash of the exact identity, so names
 * stay unique when the readable part is cut or when names differ only in characters Step Functions does not
 * allow (unicode, slashes).
 *
 * @example
 * ```ts
 * executionName(push); // 'octo-app-main-6113728-4f1c2a9be07d3e15'
 * ```
 */
export function executionName(
  push: Pick<Push, 'provider' | 'repository' | 'ref' | 'after' | 'before'>,
): string {
  const identity = [
    push.provider,
    push.repository.fullName,
    push.ref,
    push.after ?? '',
    push.before ?? '',
  ].join('\n');
  const hash = createHash('sha256').update(identity).digest('hex').slice(0, 16);
  const commit = (push.after ?? 'none').slice(0, 7);
  const budget = EXECUTION_NAME_MAX_LENGTH - hash.length - commit.length - 3;
  const repository = slug(push.repository.fullName.split('/').pop() ?? '', Math.ceil(budget / 2));
  const ref = slug(push.ref.replace(/^refs\/(heads|tags)\//, ''), budget - repository.length);
  return [repository, ref, commit, hash].filter((part) => part !== '').join('-');
}

/**
 * The execution name of a pull request's run at its head commit, and the prefix every run of that request
 * shares (so a newer run can find and stop the older ones). The same for every delivery of the same head
 * (a redelivery starts nothing new); never the name of a push's run (`-pr<number>-` and the hashes differ).
 *
 * @example
 * ```ts
 * pullRequestExecutionName(pr); // { prefix: 'app-pr12-9c1f03aa-', name: 'app-pr12-9c1f03aa-6113728-4f1c2a9be07d' }
 * ```
 */
export function pullRequestExecutionName(pr: Pick<PullRequest, 'provider' | 'number' | 'head' | 'target'>): {
  name: string;
  prefix: string;
} {
  const request = [pr.provider, pr.target.repository, String(pr.number)].join('\n');
  const requestHash = createHash('sha256').update(request).digest('hex').slice(0, 8);
  const hash = createHash('sha256').update(`${request}\n${pr.head}`).digest('hex').slice(0, 12);
  const commit = pr.head.slice(0, 7);
  const number = `pr${pr.number}`;
  const budget =
    EXECUTION_NAME_MAX_LENGTH - number.length - requestHash.length - commit.length - hash.length - 4;
  const repository = slug(pr.target.repository.split('/').pop() ?? '', budget);
  const prefix = `${[repository, number, requestHash].filter((part) => part !== '').join('-')}-`;
  return { prefix, name: `${prefix}${commit}-${hash}` };
}
