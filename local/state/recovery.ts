import type { ExecutionRecord, ExecutionStatus } from '#local/state/records.ts';
import type { HistoryEvent, HistoryEventOf } from '#local/stepfunctions/history.ts';
import { SUPERSEDED_ERROR } from '#shared/release.ts';

/**
 * What a run's history proves about it, for the recovery of a store after a crash: the record a lost
 * execution.json is rebuilt with, how a run left RUNNING ended, and where a run in flight was.
 */

const TERMINAL: Record<string, Exclude<ExecutionStatus, 'RUNNING'>> = {
  ExecutionSucceeded: 'SUCCEEDED',
  ExecutionFailed: 'FAILED',
  ExecutionTimeout: 'TIMED_OUT',
  ExecutionTimedOut: 'TIMED_OUT',
  ExecutionAborted: 'ABORTED',
  ExecutionInterrupted: 'INTERRUPTED',
};

/** The fields of a record a terminal event proves. */
export type Outcome = Pick<ExecutionRecord, 'status' | 'stopDate' | 'output' | 'error' | 'cause'>;

/**
 * The outcome the history proves, or undefined while it shows none (the run was in flight). An
 * `ExecutionInterrupted` wins over an `ExecutionAborted`: the local engine stops a run by aborting it, and
 * earlier versions stored the engine's abort beside (even after) the interruption.
 */
export function outcomeFromHistory(history: HistoryEvent[]): Outcome | undefined {
  // A redriven run's earlier ends are not its outcome: only what follows its last ExecutionRedriven is.
  const events = sinceLastRedrive(history);
  const end =
    events.findLast((event) => event.type === 'ExecutionInterrupted') ??
    events.findLast((event) => event.type in TERMINAL);
  const status = end && TERMINAL[end.type];
  if (!end || !status) return undefined;
  // A run retired by a newer one is stopped with Stepline.Superseded: SUPERSEDED, as it was recorded.
  const retired = status === 'ABORTED' && end.error === SUPERSEDED_ERROR;
  const outcome: Outcome = { status: retired ? 'SUPERSEDED' : status, stopDate: end.timestamp };
  const legacy = legacyDetails(end);
  const output = 'output' in end ? end.output : undefined;
  if (output !== undefined) outcome.output = output;
  const error = end.error ?? text(legacy.error);
  if (error !== undefined) outcome.error = error;
  const cause = end.cause ?? text(legacy.cause);
  if (cause !== undefined) outcome.cause = cause;
  return outcome;
}

/**
 * The record of a run whose execution.json is lost, from its history: the ExecutionStarted event names the
 * state machine, the ARN, the input and the run restarted; the outcome is what the history proves, else
 * RUNNING (the caller settles it). Histories from before the event named its state machine give `unknown`.
 */
export function recordFromHistory(name: string, events: HistoryEvent[], now: string): ExecutionRecord {
  const started = events.find(
    (event): event is HistoryEventOf<'ExecutionStarted'> => event.type === 'ExecutionStarted',
  );
  const legacy = started ? legacyDetails(started) : {};
  const legacyRestart = (started as { redriveOf?: unknown } | undefined)?.redriveOf;
  const stateMachineArn = text(legacy.stateMachineArn);
  const stateMachine = started?.stateMachine ?? 'unknown';
  const arnParts = stateMachineArn?.match(/^(arn:[^:]+:states:[^:]*:[^:]*:)stateMachine:(.+)$/);
  const executionArn =
    started?.executionArn ??
    (arnParts
      ? `${arnParts[1]}execution:${arnParts[2]}:${name}`
      : `arn:aws:states:local:000000000000:execution:${stateMachine}:${name}`);
  const record: ExecutionRecord = {
    executionArn,
    name,
    stateMachine,
    status: 'RUNNING',
    input: started?.input ?? null,
    startDate: started?.timestamp ?? events[0]?.timestamp ?? now,
    ...(started?.restartOf !== undefined
      ? { restartOf: started.restartOf }
      : typeof legacyRestart === 'string'
        ? { restartOf: legacyRestart }
        : {}),
    ...redriveFields(events),
  };
  const outcome = outcomeFromHistory(events);
  return outcome ? { ...record, ...outcome } : record;
}

/** The events of the run's current attempt: all of them, or those after its last ExecutionRedriven. */
function sinceLastRedrive(history: HistoryEvent[]): HistoryEvent[] {
  const redriven = history.findLastIndex((event) => event.type === 'ExecutionRedriven');
  return redriven === -1 ? history : history.slice(redriven + 1);
}

/** The redrive count and date the history's ExecutionRedriven events prove. */
function redriveFields(events: HistoryEvent[]): Pick<ExecutionRecord, 'redriveCount' | 'redriveDate'> {
  const last = events.findLast((event) => event.type === 'ExecutionRedriven');
  if (!last) return {};
  const count = events.filter((event) => event.type === 'ExecutionRedriven').length;
  return { redriveCount: count, redriveDate: last.timestamp };
}

/** The states entered and not exited when the history stops, else the last entered, else "the start". */
export function whereInFlight(history: HistoryEvent[]): string {
  const events = sinceLastRedrive(history);
  const inFlight: string[] = [];
  let lastEntered: string | undefined;
  for (const event of events) {
    if (event.type === 'StateEntered') {
      inFlight.push(event.state);
      lastEntered = event.state;
    } else if (event.type === 'StateExited') {
      const index = inFlight.lastIndexOf(event.state);
      if (index !== -1) inFlight.splice(index, 1);
    }
  }
  if (inFlight.length > 0) return inFlight.join(', ');
  return lastEntered ?? 'the start';
}

/** The Step Functions-style `…EventDetails` object earlier versions stored some fields in. */
function legacyDetails(event: HistoryEvent): Record<string, unknown> {
  const key = `${event.type.charAt(0).toLowerCase()}${event.type.slice(1)}EventDetails`;
  const value = (event as Record<string, unknown>)[key];
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

function text(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? value : JSON.stringify(value);
}
