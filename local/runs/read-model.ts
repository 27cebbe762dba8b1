/**
 * The read model of a run: what the local server answers about a run, what the CLI prints and what the
 * console draws, declared once. Everything here is pure (no `node:` imports, no I/O), so the console's
 * browser bundle imports its types, and the tests exercise its functions, without the runtime.
 * local/runs/run-reader.ts builds them from the runtime and its store.
 */
import type { ApprovalRequested } from '#shared/ports.ts';
import { PushSchema } from '#shared/push.ts';
import { supersedingRun } from '#shared/release.ts';
import * as z from '#shared/zod.ts';
import { type HistoryEventLike, machineGraph, stateRuns } from '../console/model.ts';
import type { ExecutionRecord, ExecutionStatus, OutboxMessage } from '../state/store.ts';

/** The history event that records a build's state (local only: Step Functions keeps builds in CodeBuild). */
export const BUILD_HISTORY_EVENT = 'BuildStateChanged';

/**
 * The stage a build is, as people read it: the last word of its CodeBuild project, capitalised, after
 * the environment it works for. `stepline-dev-image` → `Image`; `stepline-dev-deploy` in dev →
 * `dev: Deploy`.
 */
export function stageLabel(project: string, environment?: string): string {
  const stage = project.split('-').at(-1) || project;
  const name = stage.charAt(0).toUpperCase() + stage.slice(1);
  return environment ? `${environment}: ${name}` : name;
}

/**
 * The attempt a build is of its stage, from the `STEPLINE_ATTEMPT` and `STEPLINE_ATTEMPTS` variables the
 * state machine gives it; undefined when its stage has one attempt (no retries).
 */
export function buildAttempt(
  environment: Record<string, string>,
): { number: number; of: number } | undefined {
  const number = Number(environment.STEPLINE_ATTEMPT);
  const of = Number(environment.STEPLINE_ATTEMPTS);
  return Number.isInteger(number) && Number.isInteger(of) && of > 1 ? { number, of } : undefined;
}

/** One build of a run, as it is kept in the run's history and shown by the CLI and the console. */
export const RunBuildSchema = z.object({
  id: z.string().check(z.minLength(1)),
  project: z.string(),
  /** `Image`, `dev: Deploy`: see {@link stageLabel}. */
  stage: z.string(),
  environment: z.optional(z.string()),
  /** Which attempt of its stage this build is, when `settings.retries` allows more than one. */
  attempt: z.optional(z.object({ number: z.number().check(z.int()), of: z.number().check(z.int()) })),
  /** CodeBuild's build status: IN_PROGRESS, SUCCEEDED, FAILED, FAULT, TIMED_OUT, STOPPED. */
  status: z.string(),
  startTime: z.number(),
  endTime: z.optional(z.number()),
  logPath: z.string(),
  logUrl: z.string(),
  exportedVariables: z.array(z.object({ Name: z.string(), Value: z.string() })),
  phases: z.array(
    z.object({
      PhaseType: z.string(),
      PhaseStatus: z.string(),
      StartTime: z.number(),
      EndTime: z.number(),
      DurationInSeconds: z.number(),
      Contexts: z.optional(z.array(z.object({ StatusCode: z.string(), Message: z.string() }))),
    }),
  ),
  /** Test reports (JUnit summaries) the build found when it ended. */
  reports: z.array(
    z.object({
      name: z.string(),
      fileFormat: z.string(),
      files: z.array(z.string()),
      status: z.enum(['SUCCEEDED', 'FAILED', 'INCOMPLETE']),
      tests: z.number(),
      failures: z.number(),
      errors: z.number(),
      skipped: z.number(),
      /** The failed test cases, with their names and messages (JUnit reports). */
      failedCases: z.optional(
        z.array(
          z.object({
            name: z.string(),
            prefix: z.optional(z.string()),
            status: z.enum(['FAILED', 'ERROR']),
            message: z.optional(z.string()),
          }),
        ),
      ),
      message: z.optional(z.string()),
    }),
  ),
});
export type RunBuild = z.infer<typeof RunBuildSchema>;

/** The history event that records a commit status reported to the forge. */
export const STATUS_HISTORY_EVENT = 'CommitStatusReported';

/** A commit status of a run as the CLI and the console show it (shared/handlers/commit-status.ts reports them). */
export const RunStatusSchema = z.object({
  /** `stepline`, `stepline/image`, `stepline/deploy-prod`. */
  context: z.string(),
  state: z.enum(['pending', 'success', 'failure', 'error']),
  description: z.string(),
  targetUrl: z.string(),
  provider: z.string(),
  repository: z.string(),
  commit: z.string(),
  /** Whether the forge took it: `posted`, `skipped` (no token), `failed` (after retries). */
  outcome: z.enum(['posted', 'skipped', 'failed']),
  reason: z.optional(z.string()),
});
export type RunStatus = z.infer<typeof RunStatusSchema>;

/** The latest status of each context a run's history records, in the order the contexts first appeared. */
export function statusesFromHistory(history: readonly { type: string; status?: unknown }[]): RunStatus[] {
  const statuses = new Map<string, RunStatus>();
  for (const event of history) {
    if (event.type !== STATUS_HISTORY_EVENT) continue;
    const parsed = RunStatusSchema.safeParse(event.status);
    if (parsed.success) statuses.set(parsed.data.context, parsed.data);
  }
  return [...statuses.values()];
}

/**
 * An approval waiting for a decision, with the signed approve and reject links its approval request
 * (the email) carries: what the approval gate's notification holds as data.
 */
export type PendingApproval = ApprovalRequested;

/**
 * What a run's execution input says about where it comes from. Pipeline runs carry the push; a
 * teardown run carries none. Stored runs may come from older versions, so every field is optional and
 * fields this view does not show are ignored.
 */
const RunInputSchema = z.object({
  push: z.optional(
    z.partial(
      z.extend(z.pick(PushSchema, { refName: true, after: true, headCommitMessage: true, pusher: true }), {
        repository: z.optional(z.pick(PushSchema.shape.repository, { fullName: true })),
      }),
    ),
  ),
});

/** Where a run comes from: the pushed repository, ref and commit. */
export interface RunOrigin {
  /** `owner/name`. */
  repository?: string;
  /** The branch or tag name. */
  ref?: string;
  /** The pushed commit (full SHA). */
  commit?: string;
  /** The head commit's message. */
  message?: string;
  pusher?: string;
}

/** Reads where a run comes from out of its execution input (nothing, for an input without a push). */
export function runOrigin(input: unknown): RunOrigin {
  const parsed = RunInputSchema.safeParse(input);
  const push = parsed.success ? parsed.data.push : undefined;
  if (!push) return {};
  return {
    ...(push.repository ? { repository: push.repository.fullName } : {}),
    ...(push.refName ? { ref: push.refName } : {}),
    ...(push.after ? { commit: push.after } : {}),
    ...(push.headCommitMessage !== undefined ? { message: push.headCommitMessage } : {}),
    ...(push.pusher ? { pusher: push.pusher } : {}),
  };
}

/** A run as the runs list, the CLI and `GET /api/runs` show it. */
export interface RunSummary extends RunOrigin {
  name: string;
  executionArn: string;
  /** The state machine's key, e.g. `pipeline`, `teardown`. */
  stateMachine: string;
  status: ExecutionStatus;
  /** The stage the run is at, or ended at: `dev: Deploy`, `prod: Approval`. */
  stage?: string;
  /** ISO 8601. */
  startDate: string;
  /** ISO 8601, once the run ended. */
  stopDate?: string;
  error?: string;
  cause?: string;
  /** The run (ARN or name) this one restarts. */
  restartOf?: string;
  /** How many times the run was redriven, when it was. */
  redriveCount?: number;
  /** ISO 8601: when it was last redriven. */
  redriveDate?: string;
  /** True while the run's approval gate waits for a decision. */
  waitsForApproval: boolean;
  /** The pending approval, while the gate waits and its links are known. */
  approval?: PendingApproval;
  /** Where each environment's deployed service answers, by environment. */
  deployments: Record<string, string>;
  /** The run that retired this one (status SUPERSEDED). */
  supersededBy?: string;
  /** The environment this run waits to enter, and the run that holds it (null: an older run is on its way). */
  waitingFor?: { environment: string; heldBy: string | null };
}

/** One event of a run's history, with the fields the console reads (see local/stepfunctions/engine.ts). */
export type RunHistoryEvent = HistoryEventLike & { id: number };

/** One run with everything the run page shows (`GET /api/runs/<run>`). */
export interface RunDetail extends RunSummary {
  input: unknown;
  output?: unknown;
  history: RunHistoryEvent[];
  builds: RunBuild[];
  /** The messages published for this run, oldest first as stored. */
  notifications: OutboxMessage[];
  /** The commit statuses reported for this run, the latest per context. */
  statuses: RunStatus[];
}

/** What is known about a run besides its execution record, for {@link summarizeRun}. */
export interface RunFacts {
  history: readonly HistoryEventLike[];
  builds: readonly RunBuild[];
  /** The run's state machine definition (ASL), to tell its approval gates. */
  definition: Record<string, unknown>;
  /** The approval recorded for the run, if any; shown only while the gate waits. */
  approval?: PendingApproval;
  /** The environment the run waits to enter (release control), and who holds it. */
  waitingFor?: { environment: string; heldBy: string | null };
}

/** Builds a run's summary from its execution record and the facts around it. */
export function summarizeRun(record: ExecutionRecord, facts: RunFacts): RunSummary {
  const waits = gateWaits(record.status, facts.history, approvalGates(facts.definition));
  // Links stand only while their gate waits: once decided, the run goes on and they no longer count.
  const approval = waits ? facts.approval : undefined;
  const waitingFor = record.status === 'RUNNING' ? facts.waitingFor : undefined;
  const stage = approval
    ? `${approval.environment}: Approval`
    : waitingFor
      ? `${waitingFor.environment}: waiting`
      : currentStage(facts.builds, facts.history);
  const supersededBy = record.status === 'SUPERSEDED' ? supersedingRun(record.cause) : null;
  return {
    name: record.name,
    executionArn: record.executionArn,
    stateMachine: record.stateMachine,
    status: record.status,
    ...runOrigin(record.input),
    ...(stage ? { stage } : {}),
    startDate: record.startDate,
    ...(record.stopDate ? { stopDate: record.stopDate } : {}),
    ...(record.error ? { error: record.error } : {}),
    ...(record.cause ? { cause: record.cause } : {}),
    ...(record.restartOf ? { restartOf: record.restartOf } : {}),
    ...(record.redriveCount ? { redriveCount: record.redriveCount } : {}),
    ...(record.redriveDate ? { redriveDate: record.redriveDate } : {}),
    waitsForApproval: waits,
    ...(approval ? { approval } : {}),
    deployments: deploymentsOf(facts.builds),
    ...(supersededBy ? { supersededBy } : {}),
    ...(waitingFor ? { waitingFor } : {}),
  };
}

/** The states of a definition that wait for a task token (`.waitForTaskToken`: the approval gates). */
export function approvalGates(definition: Record<string, unknown>): Set<string> {
  return new Set(
    machineGraph(definition)
      .nodes.filter((node) => node.waitsForToken && node.state)
      .map((node) => node.state as string),
  );
}

/** True while the run runs and one of its `gates` has been entered and not left. */
export function gateWaits(
  status: ExecutionStatus,
  history: readonly HistoryEventLike[],
  gates: ReadonlySet<string>,
): boolean {
  if (status !== 'RUNNING' || gates.size === 0) return false;
  const states = stateRuns(history, { running: true, waitsForToken: (state) => gates.has(state) });
  return [...states.values()].some((s) => s.status === 'waiting');
}

/** The stage a run is at (or ended at): its build that failed, else its latest build, else its latest state. */
export function currentStage(
  builds: readonly RunBuild[],
  history: readonly HistoryEventLike[],
): string | undefined {
  // A stage's latest build counts: one that failed and was built again (a redrive) no longer does.
  const latest = [...new Map(builds.map((b) => [b.stage, b])).values()];
  const build = latest.find((b) => !['IN_PROGRESS', 'SUCCEEDED'].includes(b.status)) ?? builds.at(-1);
  if (build) return build.stage;
  return history.findLast((e) => e.type === 'StateEntered' && e.state !== undefined)?.state;
}

/**
 * Where each environment's service answers: the `SERVICE_URL` its latest succeeded deploy build exported.
 */
export function deploymentsOf(builds: readonly RunBuild[]): Record<string, string> {
  const deployments: Record<string, string> = {};
  for (const build of builds) {
    if (build.status !== 'SUCCEEDED' || !build.environment) continue;
    const url = build.exportedVariables.find((v) => v.Name === 'SERVICE_URL')?.Value;
    if (url) deployments[build.environment] = url;
  }
  return deployments;
}

/**
 * The builds a run's history records, in the order they started, each at its latest state. Events that
 * do not hold a readable build are skipped.
 */
export function buildsFromHistory(history: readonly { type: string; build?: unknown }[]): RunBuild[] {
  const builds = new Map<string, RunBuild>();
  for (const event of history) {
    if (event.type !== BUILD_HISTORY_EVENT) continue;
    const parsed = RunBuildSchema.safeParse(event.build);
    if (parsed.success) builds.set(parsed.data.id, parsed.data);
  }
  return [...builds.values()];
}
