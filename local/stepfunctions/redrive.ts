import { createHash } from 'node:crypto';
import type { ExecutionRecord } from '#local/state/records.ts';
import type { HistoryEvent } from '#local/stepfunctions/history.ts';

/**
 * RedriveExecution's semantics for the local engine, as Step Functions documents them
 * (https://docs.aws.amazon.com/step-functions/latest/apireference/API_RedriveExecution.html and
 * https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html): an execution that failed,
 * timed out or was aborted (locally also one stepline stopped, INTERRUPTED) in the last 14 days continues
 * under the same name and ARN, with the same input and definition; the states that completed are not run
 * again, an inline Map redrives only its iterations that did not succeed, and the history continues after
 * an `ExecutionRedriven` event carrying the `redriveCount`.
 *
 * The local engine (aws-local-stepfunctions) cannot start a definition half-way, so a redrive runs the
 * definition again from the start with every Task that succeeded before answered from its recorded result
 * (`TaskSucceeded` events) instead of being called: Pass, Choice and Map states are pure functions of
 * their input, so they lead to the same place, and the first Task run for real is the one that failed.
 * What is replayed is not written to the history again (see {@link replayedStates}).
 */

/** Step Functions' redrivable period: 14 days from the end of the execution. */
export const REDRIVE_PERIOD_MS = 14 * 24 * 60 * 60 * 1000;

/** Step Functions' longest execution (one year): an execution older than that cannot be redriven. */
export const MAX_EXECUTION_MS = 365 * 24 * 60 * 60 * 1000;

/**
 * A history must leave room for ExecutionRedriven and one more event under Step Functions' 25,000-event
 * limit (RedriveExecution, "The execution event history count is less than 24,999").
 */
export const MAX_REDRIVE_HISTORY_EVENTS = 24_999;

/**
 * Why an execution cannot be redriven, in Step Functions' own words (DescribeExecution's
 * `redriveStatusReason`), or undefined when it can.
 */
export function notRedrivableReason(
  record: ExecutionRecord,
  historyLength: number,
  now: Date,
): string | undefined {
  if (record.status === 'RUNNING') return 'Execution is RUNNING and cannot be redriven.';
  if (record.status === 'SUCCEEDED') return 'Execution is SUCCEEDED and cannot be redriven.';
  const stopped = Date.parse(record.stopDate ?? record.startDate);
  if (Number.isFinite(stopped) && now.getTime() - stopped > REDRIVE_PERIOD_MS) {
    return 'Execution redrivable period exceeded.';
  }
  const started = Date.parse(record.startDate);
  if (Number.isFinite(started) && now.getTime() - started > MAX_EXECUTION_MS) {
    return 'Execution has exceeded the max execution time.';
  }
  if (historyLength >= MAX_REDRIVE_HISTORY_EVENTS) return 'Execution history event limit exceeded.';
  return undefined;
}

/** A value of `$$` that changes at every run (a task token, a state's entered time), left out of digests. */
const VOLATILE = '<volatile>';

/**
 * The digest of a Task's effective input (its Parameters, resolved), with every value the Context Object
 * made for this run alone (`$$.Task.Token`, `$$.State.EnteredTime`) replaced: the same Task with the same
 * input has the same digest in a redrive.
 */
export function taskInputDigest(input: unknown, volatile: ReadonlySet<string>): string {
  const stable = JSON.stringify(input, (_key, value: unknown) =>
    typeof value === 'string' && volatile.has(value) ? VOLATILE : value,
  );
  return createHash('sha256')
    .update(stable ?? 'null')
    .digest('hex');
}

/**
 * The results a redrive answers Tasks with: for each state and input digest, the results recorded by
 * `TaskSucceeded` events, in the order they were recorded (a state run twice with the same input is
 * answered in order).
 */
export class TaskResults {
  readonly #results = new Map<string, unknown[]>();

  constructor(history: readonly HistoryEvent[]) {
    for (const event of history) {
      if (event.type !== 'TaskSucceeded') continue;
      const { state, inputDigest } = event as { state?: string; inputDigest?: string };
      if (state === undefined || inputDigest === undefined) continue;
      const key = resultKey(state, inputDigest);
      const list = this.#results.get(key) ?? [];
      list.push((event as { output?: unknown }).output ?? null);
      this.#results.set(key, list);
    }
  }

  /** The next recorded result of this state for this input, taken; undefined when there is none. */
  take(state: string, inputDigest: string): { output: unknown } | undefined {
    const list = this.#results.get(resultKey(state, inputDigest));
    if (!list || list.length === 0) return undefined;
    return { output: structuredClone(list.shift()) };
  }
}

function resultKey(state: string, inputDigest: string): string {
  return `${state}\u0000${inputDigest}`;
}

/** Where a state or Map iteration stands in a history: its last attempt completed, or not. */
type Standing = 'entered' | 'failed' | 'done';

/**
 * The states (by name and Map iteration) and Map iterations whose last attempt completed in the history so
 * far: what a redrive replays without writing it again. A state completed when it exited without an error
 * (an error it retried away does not count; an error its Catch handled does: the state did not succeed).
 * On Step Functions these are the states with a `…StateExited` event, which a redrive does not rerun.
 */
export function replayedStates(history: readonly HistoryEvent[]): Set<string> {
  const standing = new Map<string, Standing>();
  for (const event of history) {
    if (event.type === 'ExecutionRedriven') continue;
    const key = replayKey(event);
    if (key === undefined) continue;
    switch (event.type) {
      case 'StateEntered':
      case 'StateRetried':
      case 'MapIterationStarted':
      case 'ParallelBranchStarted':
        standing.set(key, 'entered');
        break;
      case 'StateFailed':
      case 'MapIterationFailed':
      case 'ParallelBranchFailed':
        standing.set(key, 'failed');
        break;
      case 'StateExited':
      case 'MapIterationSucceeded':
      case 'ParallelBranchSucceeded':
        if (standing.get(key) !== 'failed') standing.set(key, 'done');
        break;
    }
  }
  return new Set([...standing].filter(([, status]) => status === 'done').map(([key]) => key));
}

/**
 * The key a history event (stored, or about to be) is replayed under: its state and Map iteration, or its
 * Map iteration or Parallel branch; undefined for events that are not about one (the execution's, builds').
 */
export function replayKey(event: {
  type: string;
  state?: string;
  parentState?: string;
  index?: number;
}): string | undefined {
  if (event.type.startsWith('State') && event.state !== undefined) {
    return `state\u0000${event.parentState ?? ''}\u0000${event.state}\u0000${event.index ?? ''}`;
  }
  if (
    (event.type.startsWith('MapIteration') || event.type.startsWith('ParallelBranch')) &&
    event.parentState
  ) {
    return `iteration\u0000${event.parentState}\u0000${event.index ?? ''}`;
  }
  return undefined;
}
