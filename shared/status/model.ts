import * as z from '#shared/zod.ts';
import type { BuildReport, ExecutionReport } from '../events.ts';
import { type Push, PushSchema } from '../push.ts';

/**
 * Commit statuses: what stepline tells the forge about a commit, in one model for GitHub, GitLab and
 * Bitbucket Cloud. The run is one status (context `stepline`), each stage one more
 * (`stepline/<stage>[-<environment>]`). Pure: the clients that post them are in ./forges.ts.
 */

/** GitHub's four states, which the other forges' states are mapped from (./forges.ts). */
export type CommitState = 'pending' | 'success' | 'failure' | 'error';

/** One status of one commit. */
export interface CommitStatus {
  state: CommitState;
  /** `stepline` for the run, `stepline/image`, `stepline/deploy-prod`, … for its stages. */
  context: string;
  /** At most {@link DESCRIPTION_MAX_LENGTH} characters. */
  description: string;
  /** The run: the Step Functions console on AWS, the local console locally. */
  targetUrl: string;
}

/** The forges stepline posts statuses to. */
export const STATUS_PROVIDERS = ['github', 'gitlab', 'bitbucket'] as const;
export type StatusProvider = (typeof STATUS_PROVIDERS)[number];

/** Where a commit's statuses go: the forge's API, the repository and the commit. */
export interface StatusTarget {
  provider: StatusProvider;
  /**
   * The API's base URL: `https://api.github.com` or a GitHub Enterprise Server's `https://<host>/api/v3`;
   * a GitLab's own `https://<host>` (gitlab.com or self-managed; the client adds `/api/v4`);
   * `https://api.bitbucket.org/2.0`.
   */
  apiUrl: string;
  /** `owner/name`, GitLab's full project path (`group/subgroup/project`), Bitbucket's `workspace/slug`. */
  repository: string;
  /** The full commit id the run builds. */
  commit: string;
  /**
   * The branch or tag the run is for (`main`): GitLab's `ref` and Bitbucket's `refname` tie the status to it
   * (a commit can be on several).
   */
  ref?: string;
}

/** GitHub refuses a longer description (422); the others take it and show it cut. */
export const DESCRIPTION_MAX_LENGTH = 140;

/** The run's own context; each stage's is this plus `/<stage>`. */
export const RUN_CONTEXT = 'stepline';

const COMMIT_ID = /^([0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * Where a push's statuses go, or why they cannot go anywhere (a reason for the log). The host comes from
 * the clone URL the push names, so a GitHub Enterprise Server or a self-managed GitLab gets its statuses on
 * its own API.
 *
 * @example
 * ```ts
 * statusTargetOf(push, 'b2…'); // { provider: 'gitlab', apiUrl: 'https://git.acme.dev', repository: 'shop/app', commit: 'b2…' }
 * ```
 */
export function statusTargetOf(push: Push, commit: string): StatusTarget | { skipped: string } {
  if (push.provider === 'codecommit') return { skipped: 'CodeCommit has no commit statuses' };
  if (!COMMIT_ID.test(commit)) return { skipped: 'the run names no full commit id' };
  const url = URL.canParse(push.repository.cloneUrl) ? new URL(push.repository.cloneUrl) : undefined;
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    return { skipped: 'the repository is not on a forge (its clone URL is not an http(s) URL)' };
  }
  const repository = push.repository.fullName;
  const on = { repository, commit, ref: push.refName };
  switch (push.provider) {
    case 'github':
      return {
        provider: 'github',
        apiUrl: url.host === 'github.com' ? 'https://api.github.com' : `${url.origin}/api/v3`,
        ...on,
      };
    case 'gitlab':
      return { provider: 'gitlab', apiUrl: `${url.origin}${relativeRoot(url.pathname, repository)}`, ...on };
    case 'bitbucket':
      if (url.host !== 'bitbucket.org') {
        return { skipped: 'Bitbucket Data Center has no Bitbucket Cloud build status API' };
      }
      return { provider: 'bitbucket', apiUrl: 'https://api.bitbucket.org/2.0', ...on };
  }
}

/**
 * The path a self-managed GitLab is served under (its relative URL root, `/gitlab` for
 * `https://acme.dev/gitlab/shop/app.git`), from the clone URL's path less the project's: its API is there too
 * (https://docs.gitlab.com/install/relative_url/).
 */
function relativeRoot(clonePath: string, repository: string): string {
  const path = clonePath.replace(/\/+$/, '').replace(/\.git$/, '');
  return path.endsWith(`/${repository}`) ? path.slice(0, -repository.length - 1) : '';
}

/**
 * What a run's input says about the commit: the push and the exact commit its builds check out
 * (`source.version`, else the pushed commit). Read leniently: fields this does not use are ignored.
 */
const RunInputSchema = z.object({
  push: PushSchema,
  source: z.optional(z.partial(z.object({ version: z.string() }))),
});

/** The push and commit of a run's input, or null for an input that is not a pipeline run's (a teardown). */
export function runCommitOf(input: unknown): { push: Push; commit: string } | null {
  const parsed = RunInputSchema.safeParse(input);
  if (!parsed.success) return null;
  const commit = parsed.data.source?.version ?? parsed.data.push.after;
  return commit ? { push: parsed.data.push, commit } : null;
}

/**
 * The context of a stage's status, from its CodeBuild project and the environment it works on, by the
 * project naming every stage follows (`<service>-<stage>[-<environment>]-<stage name>`): the last word of
 * the project, then the environment. A new stage gets its context without code: `stepline-dev-test` →
 * `stepline/test`; `stepline-dev-image` → `stepline/image`; `stepline-dev-prod-deploy` in prod →
 * `stepline/deploy-prod`.
 */
export function stageContext(project: string, environment: string | null): string {
  const stage = (project.split('-').at(-1) || project).toLowerCase();
  return `${RUN_CONTEXT}/${environment ? `${stage}-${environment}` : stage}`;
}

/** The status of a run, from its execution status change. */
export function runStatus(report: ExecutionReport, targetUrl: string): CommitStatus {
  const took = report.durationSeconds === null ? '' : ` in ${formatDuration(report.durationSeconds)}`;
  const [state, description]: [CommitState, string] = (() => {
    switch (report.status) {
      case 'RUNNING':
        return ['pending', 'Running'];
      case 'SUCCEEDED':
        return ['success', `Succeeded${took}`];
      case 'FAILED':
        return ['failure', `Failed${took}${report.error ? `: ${report.error}` : ''}`];
      case 'TIMED_OUT':
        return ['error', `Timed out${took}`];
      case 'ABORTED':
        return ['error', `Stopped${took}`];
      default:
        return ['pending', report.status];
    }
  })();
  return { state, context: RUN_CONTEXT, description: bounded(description), targetUrl };
}

/** What a finished build's test reports counted, all its reports together. */
export interface TestCounts {
  passed: number;
  /** Failed or in error. */
  failed: number;
  skipped: number;
}

/**
 * The status of a stage, from its build's state change, and the counts of its test reports when it has any:
 * `12 passed, 1 failed in 1 min 3 s` rather than the failed phase's first message.
 */
export function stageStatus(report: BuildReport, targetUrl: string, tests?: TestCounts): CommitStatus {
  const took = report.durationSeconds === null ? '' : ` in ${formatDuration(report.durationSeconds)}`;
  const failed = report.failedPhase;
  const counted = tests ? testSummary(tests) : undefined;
  const [state, description]: [CommitState, string] = (() => {
    switch (report.status) {
      case 'IN_PROGRESS':
        return ['pending', 'Running'];
      case 'SUCCEEDED':
        return ['success', counted ? `${counted}${took}` : `Passed${took}`];
      case 'FAILED':
        if (counted && tests && tests.failed > 0) return ['failure', `${counted}${took}`];
        return [
          'failure',
          `Failed${failed ? ` in ${failed.type}` : ''}${took}${failed?.context[0] ? `: ${failed.context[0]}` : ''}`,
        ];
      case 'TIMED_OUT':
        return ['error', `Timed out${took}`];
      case 'STOPPED':
        return ['error', `Stopped${took}`];
      default:
        return ['error', `${report.status}${took}`];
    }
  })();
  return {
    state,
    context: stageContext(report.project, report.environment),
    description: bounded(description),
    targetUrl,
  };
}

function testSummary(tests: TestCounts): string | undefined {
  const parts = [
    `${tests.passed} passed`,
    ...(tests.failed > 0 ? [`${tests.failed} failed`] : []),
    ...(tests.skipped > 0 ? [`${tests.skipped} skipped`] : []),
  ];
  return tests.passed + tests.failed + tests.skipped === 0 ? undefined : parts.join(', ');
}

function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return seconds % 60 === 0 ? `${minutes} min` : `${minutes} min ${seconds % 60} s`;
}

/** One line, at most {@link DESCRIPTION_MAX_LENGTH} characters (an ellipsis when cut). */
function bounded(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  const points = Array.from(line);
  return points.length <= DESCRIPTION_MAX_LENGTH
    ? line
    : `${points.slice(0, DESCRIPTION_MAX_LENGTH - 1).join('')}…`;
}
