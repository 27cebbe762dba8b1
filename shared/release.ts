import * as z from 'zod';

/**
 * Release control, as pure functions over one line's state: which run holds which environment, which
 * waits, which is retired, which is refused. A line is one repository and ref (`github:octo/app:refs/heads/main`);
 * lines never block each other. The ledger (shared/release-ledger.ts) reads a line, applies one of these
 * transitions and writes it back conditionally; the actions it returns are carried out only once the write
 * has landed.
 *
 * The guarantees, per line:
 * - an environment is held by at most one run, from its Infrastructure to the end of its Deploy;
 * - an environment never receives a commit older (by push order) than the one it holds;
 * - SUPERSEDED: a newer run retires every older run that holds nothing and has not yet entered an
 *   environment the newer one will enter (gates included); one holding an environment is retired when
 *   it leaves it;
 * - QUEUED: runs enter an environment in push order, except that a run waiting on a person (an approval
 *   gate still ahead of it) is not waited for: if a newer commit gets there first, the older one is refused;
 * - PARALLEL: nothing is held, waited for, retired or refused (the behaviour before release control).
 */

export const EXECUTION_MODES = ['SUPERSEDED', 'QUEUED', 'PARALLEL'] as const;
export const ExecutionModeSchema = z.enum(EXECUTION_MODES);
export type ExecutionMode = z.infer<typeof ExecutionModeSchema>;

/** The error a run refused at an environment fails with (an older commit than the environment's). */
export const BEHIND_ERROR = 'Environment.Behind';
/** The error a retired run is stopped with (StopExecution's `error`). */
export const SUPERSEDED_ERROR = 'Stepline.Superseded';

/** The line of a push: its provider, repository and full ref. */
export function lineOf(push: { provider: string; repository: { fullName: string }; ref: string }): string {
  return `${push.provider}:${push.repository.fullName}:${push.ref}`;
}

/** The run name at the end of an execution ARN (`…:execution:<machine>:<name>`). */
export function runName(executionArn: string): string {
  return executionArn.slice(executionArn.lastIndexOf(':') + 1);
}

/** The cause a retired run is stopped with: names the newer run and its commit, for people and pages. */
export function supersededCause(by: { executionArn: string; sequence: number; commit: string }): string {
  return `Superseded by ${runName(by.executionArn)} (push #${by.sequence}, commit ${by.commit.slice(0, 12)})`;
}

/** The newer run named by a {@link supersededCause}, or null for any other cause. */
export function supersedingRun(cause: string | null | undefined): string | null {
  return /^Superseded by (\S+)/.exec(cause ?? '')?.[1] ?? null;
}

const RunPointSchema = z.object({
  executionArn: z.string(),
  sequence: z.number().int(),
  commit: z.string(),
  /** ISO 8601: since when it holds, or when it was deployed. */
  at: z.string(),
});
export type RunPoint = z.infer<typeof RunPointSchema>;

const LineRunSchema = z.object({
  executionArn: z.string(),
  /** Push order in the line, from 1. */
  sequence: z.number().int().positive(),
  commit: z.string(),
  /** The environments this run will enter, in order, and whether each has an approval gate. */
  plan: z.array(z.object({ name: z.string(), approval: z.boolean() })),
  /** Environments entered (held now or left), in order. */
  entered: z.array(z.string()),
  holding: z.string().nullable(),
  /** The environment it waits to enter, and the task token that resumes it. A secret: never shown. */
  waiting: z.object({ environment: z.string(), taskToken: z.string(), since: z.string() }).nullable(),
  /** Set when it was retired: the newer run that retired it. */
  supersededBy: z.string().optional(),
});
export type LineRun = z.infer<typeof LineRunSchema>;

export const LineStateSchema = z.object({
  line: z.string(),
  runs: z.array(LineRunSchema),
  environments: z.record(
    z.string(),
    z.object({ holder: RunPointSchema.nullable(), current: RunPointSchema.nullable() }),
  ),
});
export type LineState = z.infer<typeof LineStateSchema>;

export function emptyLine(line: string): LineState {
  return { line, runs: [], environments: {} };
}

/** What the ledger does once a transition is written. */
export type ReleaseAction =
  | { kind: 'resume'; executionArn: string; taskToken: string; environment: string }
  | { kind: 'refuse'; executionArn: string; taskToken: string; environment: string; cause: string }
  | { kind: 'retire'; executionArn: string; by: string; cause: string };

export interface Transition {
  state: LineState;
  actions: ReleaseAction[];
}

/** A run as it joins its line. */
export interface JoiningRun {
  executionArn: string;
  sequence: number;
  commit: string;
  plan: { name: string; approval: boolean }[];
}

/** Registers a run in its line (again: nothing changes), then settles the line. */
export function joinLine(state: LineState, run: JoiningRun, mode: ExecutionMode): Transition {
  const next = structuredClone(state);
  if (!next.runs.some((r) => r.executionArn === run.executionArn)) {
    const { executionArn, sequence, commit, plan } = run;
    next.runs.push({ executionArn, sequence, commit, plan, entered: [], holding: null, waiting: null });
    next.runs.sort((a, b) => a.sequence - b.sequence);
  }
  return settle(next, mode);
}

/**
 * A run asks to enter an environment; it is resumed (with its task token) when it holds it, or refused
 * when the environment already runs a newer commit. A run the line does not know (it joined before
 * release control, or its line state was lost) joins first.
 */
export function enterEnvironment(
  state: LineState,
  request: JoiningRun & { environment: string; taskToken: string; now: string },
  mode: ExecutionMode,
): Transition {
  const next = joinLine(state, request, mode);
  const run = next.state.runs.find((r) => r.executionArn === request.executionArn);
  if (!run || run.supersededBy !== undefined) {
    // Retired while it was on its way here: its stop is already under way (or just decided).
    return next;
  }
  if (mode === 'PARALLEL') {
    if (!run.entered.includes(request.environment)) run.entered.push(request.environment);
    return {
      state: next.state,
      actions: [...next.actions, resume(run, request.taskToken, request.environment)],
    };
  }
  if (run.holding === request.environment) {
    // Asked again (a retried Lambda invocation): it holds it already.
    return {
      state: next.state,
      actions: [...next.actions, resume(run, request.taskToken, request.environment)],
    };
  }
  run.waiting = { environment: request.environment, taskToken: request.taskToken, since: request.now };
  const settled = settle(next.state, mode);
  return { state: settled.state, actions: [...next.actions, ...settled.actions] };
}

/** A run finished its Deploy: the environment now runs its commit, and the next run may enter. */
export function leaveEnvironment(
  state: LineState,
  request: { executionArn: string; environment: string; now: string },
  mode: ExecutionMode,
): Transition {
  const next = structuredClone(state);
  const run = next.runs.find((r) => r.executionArn === request.executionArn);
  const environment = environmentOf(next, request.environment);
  if (run) {
    const moved = environment.current === null || environment.current.sequence <= run.sequence;
    // PARALLEL records whatever deployed last; the other modes only ever move forward (guarded at entry).
    if (mode === 'PARALLEL' || moved) {
      environment.current = {
        executionArn: run.executionArn,
        sequence: run.sequence,
        commit: run.commit,
        at: request.now,
      };
    }
    if (run.holding === request.environment) run.holding = null;
  }
  if (environment.holder?.executionArn === request.executionArn) environment.holder = null;
  return settle(next, mode);
}

/** A run ended, however: whatever it held is released and it leaves the line. */
export function endRun(state: LineState, executionArn: string, mode: ExecutionMode): Transition {
  const next = structuredClone(state);
  next.runs = next.runs.filter((r) => r.executionArn !== executionArn);
  for (const environment of Object.values(next.environments)) {
    if (environment.holder?.executionArn === executionArn) environment.holder = null;
  }
  return settle(next, mode);
}

/** Retires what is superseded, refuses what is behind, and hands each free environment to the next run. */
function settle(state: LineState, mode: ExecutionMode): Transition {
  const actions: ReleaseAction[] = [];
  if (mode === 'PARALLEL') return { state, actions };
  if (mode === 'SUPERSEDED') actions.push(...retireSuperseded(state));
  const names = new Set(state.runs.flatMap((r) => (r.waiting ? [r.waiting.environment] : [])));
  for (const name of names) {
    const environment = environmentOf(state, name);
    const waiting = state.runs
      .filter((r) => r.waiting?.environment === name && r.supersededBy === undefined)
      .sort((a, b) => a.sequence - b.sequence);
    for (const run of waiting) {
      const waiter = run.waiting;
      if (!waiter) continue;
      const newest = newestOf(environment.current, environment.holder);
      if (newest && newest.sequence > run.sequence) {
        run.waiting = null;
        actions.push({
          kind: 'refuse',
          executionArn: run.executionArn,
          taskToken: waiter.taskToken,
          environment: name,
          cause:
            `${name} already runs a newer commit: ${newest.commit.slice(0, 12)} (push #${newest.sequence}, ` +
            `${runName(newest.executionArn)}), and this run's commit ${run.commit.slice(0, 12)} is push #${run.sequence}. ` +
            'An environment only moves forward; nothing was deployed.',
        });
        continue;
      }
      if (environment.holder !== null) break;
      if (olderOnTheWay(state, run, name)) break;
      environment.holder = {
        executionArn: run.executionArn,
        sequence: run.sequence,
        commit: run.commit,
        at: waiter.since,
      };
      run.holding = name;
      run.waiting = null;
      if (!run.entered.includes(name)) run.entered.push(name);
      actions.push(resume(run, waiter.taskToken, name));
      break;
    }
  }
  return { state, actions };
}

/**
 * SUPERSEDED: each run that holds nothing and has not entered an environment a newer run will enter is
 * retired, naming the newest such run. Its wait for an environment (if any) ends with it.
 */
function retireSuperseded(state: LineState): ReleaseAction[] {
  const actions: ReleaseAction[] = [];
  const live = state.runs.filter((r) => r.supersededBy === undefined);
  for (const run of live) {
    if (run.holding !== null) continue;
    const newer = live
      .filter((n) => n.sequence > run.sequence && n.plan.some((e) => !run.entered.includes(e.name)))
      .at(-1);
    if (!newer) continue;
    run.supersededBy = newer.executionArn;
    run.waiting = null;
    actions.push({
      kind: 'retire',
      executionArn: run.executionArn,
      by: newer.executionArn,
      cause: supersededCause(newer),
    });
  }
  return actions;
}

/**
 * Whether an older live run of the line will reach `environment` without anyone deciding anything (no
 * approval gate between where it is and that environment): then the newer one waits for it, keeping
 * push order. An older run that waits on a person is not waited for.
 */
function olderOnTheWay(state: LineState, run: LineRun, environment: string): boolean {
  return state.runs.some((older) => {
    if (older.sequence >= run.sequence || older.supersededBy !== undefined) return false;
    if (older.entered.includes(environment)) return false;
    const target = older.plan.findIndex((e) => e.name === environment);
    if (target < 0) return false;
    const last = older.entered.at(-1);
    const from = last === undefined ? 0 : older.plan.findIndex((e) => e.name === last) + 1;
    return older.plan.slice(from, target + 1).every((e) => !e.approval);
  });
}

function resume(run: LineRun, taskToken: string, environment: string): ReleaseAction {
  return { kind: 'resume', executionArn: run.executionArn, taskToken, environment };
}

function newestOf(a: RunPoint | null, b: RunPoint | null): RunPoint | null {
  if (a === null) return b;
  if (b === null) return a;
  return a.sequence >= b.sequence ? a : b;
}

function environmentOf(state: LineState, name: string): LineState['environments'][string] {
  state.environments[name] ??= { holder: null, current: null };
  return state.environments[name];
}

/** What people see of a line: each environment's holder, current commit and who waits (no task token). */
export interface LineView {
  line: string;
  environments: {
    name: string;
    holder: RunPoint | null;
    current: RunPoint | null;
    waiting: { executionArn: string; sequence: number; since: string }[];
  }[];
}

export function viewOf(state: LineState): LineView {
  const names = new Set([
    ...Object.keys(state.environments),
    ...state.runs.flatMap((r) => (r.waiting ? [r.waiting.environment] : [])),
  ]);
  return {
    line: state.line,
    environments: [...names].map((name) => ({
      name,
      holder: state.environments[name]?.holder ?? null,
      current: state.environments[name]?.current ?? null,
      waiting: state.runs.flatMap((r) =>
        r.waiting?.environment === name
          ? [{ executionArn: r.executionArn, sequence: r.sequence, since: r.waiting.since }]
          : [],
      ),
    })),
  };
}

/**
 * Why a run of this line may not be redriven, or null when it may. A redrive resumes inside an environment
 * without taking its hold again (as on AWS, the "Enter environment" it passed is not run again), so it is
 * refused while another run holds an environment of the line, or once a newer push has been deployed to
 * one: the redrive would move that environment back, which only a rollback may do.
 */
export function redriveRefusal(
  state: LineState,
  run: { executionArn: string; sequence: number },
  mode: ExecutionMode,
): string | null {
  if (mode === 'PARALLEL') return null;
  for (const [environment, { holder, current }] of Object.entries(state.environments)) {
    if (holder && holder.executionArn !== run.executionArn)
      return `${environment} is held by ${runName(holder.executionArn)}; redrive once it is released`;
    if (current && current.sequence > run.sequence)
      return `a newer push (${runName(current.executionArn)}) has been deployed to ${environment}, which a redrive would move back`;
  }
  return null;
}
