import * as z from '#shared/zod.ts';

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
 *
 * A rollback is the one way back: a rollback run ({@link enterForRollback}) takes the environment's hold like
 * any run, is never refused for being behind, retires nothing and is retired by nothing, and is refused only
 * when the environment moved on since it was planned. Its leave makes the older commit the environment's
 * current one, recorded as a rollback ({@link RollbackNote}); each environment keeps its last
 * {@link DEPLOYMENTS_KEPT} deployments, which is where a rollback finds its target ({@link rollbackTarget}).
 */

export const EXECUTION_MODES = ['SUPERSEDED', 'QUEUED', 'PARALLEL'] as const;
export const ExecutionModeSchema = z.enum(EXECUTION_MODES);
export type ExecutionMode = z.infer<typeof ExecutionModeSchema>;

/** The error a run refused at an environment fails with (an older commit than the environment's). */
export const BEHIND_ERROR = 'Environment.Behind';
/** The error a rollback fails with when its environment moved on since it was asked for. */
export const ROLLBACK_REFUSED_ERROR = 'Rollback.Refused';
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

/** What a rollback records of itself, on the deployment it made. */
const RollbackNoteSchema = z.object({
  /** The run whose deployment was deployed again. */
  of: z.string(),
  /** The commit the environment ran before (or was deploying, for an automatic rollback). */
  from: z.nullable(z.string()),
  /** Started by a failed deploy (`rollbackOnFailure`), not by a person. */
  automatic: z.boolean(),
});
export type RollbackNote = z.infer<typeof RollbackNoteSchema>;

export const RunPointSchema = z.object({
  executionArn: z.string(),
  sequence: z.number().check(z.int()),
  commit: z.string(),
  /** ISO 8601: since when it holds, or when it was deployed. */
  at: z.string(),
  /** The image deployed (a deployment's; absent when the run's leave did not say). */
  imageUri: z.optional(z.string()),
  /** Set on a deployment a rollback made. */
  rollback: z.optional(RollbackNoteSchema),
});
export type RunPoint = z.infer<typeof RunPointSchema>;

/** How many deployments each environment keeps (newest first), to roll back to. */
export const DEPLOYMENTS_KEPT = 10;

const LineRunSchema = z.object({
  executionArn: z.string(),
  /** Push order in the line, from 1. */
  sequence: z.number().check(z.int(), z.positive()),
  commit: z.string(),
  /** The environments this run will enter, in order, and whether each has an approval gate. */
  plan: z.array(z.object({ name: z.string(), approval: z.boolean() })),
  /** Environments entered (held now or left), in order. */
  entered: z.array(z.string()),
  holding: z.nullable(z.string()),
  /** The environment it waits to enter, and the task token that resumes it. A secret: never shown. */
  waiting: z.nullable(z.object({ environment: z.string(), taskToken: z.string(), since: z.string() })),
  /** Set when it was retired: the newer run that retired it. */
  supersededBy: z.optional(z.string()),
  /** Set on a rollback run: what it deploys again, and the run the environment must still be on. */
  rollback: z.optional(
    z.object({
      of: z.string(),
      expected: z.nullable(z.string()),
      from: z.nullable(z.string()),
      automatic: z.boolean(),
      imageUri: z.optional(z.string()),
    }),
  ),
});
export type LineRun = z.infer<typeof LineRunSchema>;

export const LineStateSchema = z.object({
  line: z.string(),
  runs: z.array(LineRunSchema),
  environments: z.record(
    z.string(),
    z.object({
      holder: z.nullable(RunPointSchema),
      current: z.nullable(RunPointSchema),
      /** The last {@link DEPLOYMENTS_KEPT} deployments, newest first (absent in lines written before). */
      deployments: z.optional(z.array(RunPointSchema)),
    }),
  ),
});
export type LineState = z.infer<typeof LineStateSchema>;

export function emptyLine(line: string): LineState {
  return { line, runs: [], environments: {} };
}

/** What the ledger does once a transition is written. */
export type ReleaseAction =
  | { kind: 'resume'; executionArn: string; taskToken: string; environment: string }
  | {
      kind: 'refuse';
      executionArn: string;
      taskToken: string;
      environment: string;
      cause: string;
      /** The error the task fails with: {@link BEHIND_ERROR} unless said ({@link ROLLBACK_REFUSED_ERROR}). */
      error?: string;
    }
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
  request: {
    executionArn: string;
    environment: string;
    now: string;
    imageUri?: string | undefined;
    /**
     * The run's push number and commit, for a run the line no longer knows: a redriven run resumes after
     * its end released it, without entering again, and its deploy still counts.
     */
    run?: { sequence: number; commit: string };
  },
  mode: ExecutionMode,
): Transition {
  const next = structuredClone(state);
  const known = next.runs.find((r) => r.executionArn === request.executionArn);
  const run: Pick<LineRun, 'executionArn' | 'sequence' | 'commit' | 'holding' | 'rollback'> | undefined =
    known ??
    (request.run && {
      executionArn: request.executionArn,
      ...request.run,
      holding: null,
      rollback: undefined,
    });
  const environment = environmentOf(next, request.environment);
  if (run) {
    const moved = environment.current === null || environment.current.sequence <= run.sequence;
    // PARALLEL records whatever deployed last; the other modes only ever move forward (guarded at entry),
    // except a rollback, the one recorded way back.
    if (mode === 'PARALLEL' || moved || run.rollback) {
      const imageUri = request.imageUri ?? run.rollback?.imageUri;
      const deployed: RunPoint = {
        executionArn: run.executionArn,
        sequence: run.sequence,
        commit: run.commit,
        at: request.now,
        ...(imageUri ? { imageUri } : {}),
        ...(run.rollback
          ? {
              rollback: {
                of: run.rollback.of,
                from: run.rollback.from,
                automatic: run.rollback.automatic,
              },
            }
          : {}),
      };
      environment.current = deployed;
      const kept = (environment.deployments ?? []).filter((d) => d.executionArn !== deployed.executionArn);
      environment.deployments = [deployed, ...kept].slice(0, DEPLOYMENTS_KEPT);
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

/** A rollback run as it asks for its environment (the rollback state machine's `Enter environment`). */
export interface RollbackEntry {
  /** The rollback's own execution. */
  executionArn: string;
  environment: string;
  taskToken: string;
  now: string;
  /** The deployment deployed again (from {@link rollbackTarget}). */
  target: RunPoint;
  /** The run the environment ran when the rollback was planned: if it moved on since, it is refused. */
  expected: string | null;
  /** The commit it rolls back from (shown and notified). */
  from: string | null;
  automatic: boolean;
}

/**
 * A rollback asks to enter its environment: it waits for the hold like any run and is resumed once it
 * holds it, whatever the push order of its commit; it is refused if the environment's current deployment
 * is no longer `expected` when its turn comes (a newer deploy landed meanwhile). In PARALLEL mode it is
 * resumed at once. Asking again (a retried invocation) changes nothing.
 */
export function enterForRollback(state: LineState, request: RollbackEntry, mode: ExecutionMode): Transition {
  const next = structuredClone(state);
  let run = next.runs.find((r) => r.executionArn === request.executionArn);
  if (!run) {
    const { target } = request;
    run = {
      executionArn: request.executionArn,
      sequence: Math.max(1, target.sequence),
      commit: target.commit,
      plan: [{ name: request.environment, approval: false }],
      entered: [],
      holding: null,
      waiting: null,
      rollback: {
        of: target.rollback?.of ?? target.executionArn,
        expected: request.expected,
        from: request.from,
        automatic: request.automatic,
        ...(target.imageUri ? { imageUri: target.imageUri } : {}),
      },
    };
    next.runs.push(run);
    next.runs.sort((a, b) => a.sequence - b.sequence);
  }
  if (mode === 'PARALLEL' || run.holding === request.environment) {
    if (!run.entered.includes(request.environment)) run.entered.push(request.environment);
    return { state: next, actions: [resume(run, request.taskToken, request.environment)] };
  }
  run.waiting = { environment: request.environment, taskToken: request.taskToken, since: request.now };
  return settle(next, mode);
}

/** Why a rollback has nothing to go back to. */
export type NoRollbackTarget = { refused: string };

/**
 * The deployment a rollback of `environment` deploys again: with `to`, the recorded deployment of that run
 * (its name) or commit (a prefix of 7 or more digits); without, the environment's previous deployment (the
 * newest one older, by push order, than what it runs). Only deployments that recorded their image qualify:
 * a rollback never rebuilds. `automatic` (a deploy that failed): the deployment the environment records as
 * current, which the failed deploy may have half replaced.
 */
export function rollbackTarget(
  state: LineState,
  environment: string,
  to?: string,
  options: { automatic?: boolean } = {},
): { target: RunPoint; current: RunPoint | null } | NoRollbackTarget {
  const held = state.environments[environment];
  const current = held?.current ?? null;
  if (!current) return { refused: `${environment} has no deployment yet: there is nothing to roll back` };
  const deployments = (held?.deployments ?? []).filter((d) => d.imageUri);
  if (options.automatic) {
    const target = deployments.find((d) => d.executionArn === current.executionArn);
    return target
      ? { target, current }
      : { refused: `${environment}'s last deployment recorded no image to deploy again` };
  }
  if (to !== undefined) {
    const wanted = to.toLowerCase();
    const target = deployments.find(
      (d) =>
        runName(d.executionArn) === to ||
        (d.rollback && runName(d.rollback.of) === to) ||
        (wanted.length >= 7 && d.commit.toLowerCase().startsWith(wanted)),
    );
    if (!target)
      return {
        refused: `No deployment of ${environment} recorded for ${to} (its last ${DEPLOYMENTS_KEPT} deployments with their image are kept)`,
      };
    if (target.commit === current.commit)
      return { refused: `${environment} already runs ${current.commit.slice(0, 12)}` };
    return { target, current };
  }
  const target = deployments.find((d) => d.sequence < current.sequence && d.commit !== current.commit);
  if (!target)
    return { refused: `${environment} has no earlier deployment recorded with its image to roll back to` };
  return { target, current };
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
      if (run.rollback) {
        const on = environment.current?.executionArn ?? null;
        if (on !== run.rollback.expected) {
          run.waiting = null;
          actions.push({
            kind: 'refuse',
            executionArn: run.executionArn,
            taskToken: waiter.taskToken,
            environment: name,
            error: ROLLBACK_REFUSED_ERROR,
            cause:
              `${name} moved on since this rollback was asked for: it now runs ` +
              `${environment.current ? `${environment.current.commit.slice(0, 12)} (${runName(environment.current.executionArn)})` : 'nothing'}. ` +
              'Nothing was rolled back; ask again for the rollback you want from there.',
          });
          continue;
        }
      }
      const newest = newestOf(environment.current, environment.holder);
      if (!run.rollback && newest && newest.sequence > run.sequence) {
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
      if (!run.rollback && olderOnTheWay(state, run, name)) break;
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
  // A rollback is asked for by a person (or a failed deploy): it retires nothing and nothing retires it.
  const live = state.runs.filter((r) => r.supersededBy === undefined && !r.rollback);
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
    if (older.sequence >= run.sequence || older.supersededBy !== undefined || older.rollback) return false;
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
    /** The last deployments, newest first: rollbacks among them say so. */
    deployments: RunPoint[];
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
      deployments: state.environments[name]?.deployments ?? [],
      waiting: state.runs.flatMap((r) =>
        r.waiting?.environment === name
          ? [{ executionArn: r.executionArn, sequence: r.sequence, since: r.waiting.since }]
          : [],
      ),
    })),
  };
}

/**
 * The environment a run waits to enter, and the run that holds it (`heldBy` null: none holds it, an older
 * run on its way there goes first); undefined when the run waits for nothing.
 */
export function waitingFor(
  lines: readonly LineState[],
  executionArn: string,
): { environment: string; heldBy: string | null } | undefined {
  for (const line of lines) {
    const run = line.runs.find((r) => r.executionArn === executionArn);
    if (!run?.waiting) continue;
    const holder = line.environments[run.waiting.environment]?.holder;
    return { environment: run.waiting.environment, heldBy: holder ? runName(holder.executionArn) : null };
  }
  return undefined;
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
