import { describe, expect, it } from 'vitest';
import type { ExecutionRecord } from '#local/state/records.ts';
import type { HistoryEvent } from '#local/stepfunctions/history.ts';
import {
  MAX_REDRIVE_HISTORY_EVENTS,
  notRedrivableReason,
  REDRIVE_PERIOD_MS,
  replayedStates,
  replayKey,
  TaskResults,
  taskInputDigest,
} from '#local/stepfunctions/redrive.ts';

const STOPPED = '2026-05-01T10:00:00.000Z';

function record(status: ExecutionRecord['status']): ExecutionRecord {
  return {
    executionArn: 'arn:aws:states:local:000000000000:execution:pipeline:run',
    name: 'run',
    stateMachine: 'pipeline',
    status,
    input: {},
    startDate: '2026-05-01T09:00:00.000Z',
    stopDate: STOPPED,
  };
}

let id = 0;
function event(type: string, fields: Record<string, unknown> = {}): HistoryEvent {
  id += 1;
  return { id, type, timestamp: STOPPED, ...fields } as HistoryEvent;
}

describe('notRedrivableReason', () => {
  const justAfter = new Date(Date.parse(STOPPED) + 1000);

  it.each(['FAILED', 'TIMED_OUT', 'ABORTED', 'INTERRUPTED'] as const)(
    'lets a %s run be redriven',
    (status) => {
      expect(notRedrivableReason(record(status), 10, justAfter)).toBeUndefined();
    },
  );

  it("gives Step Functions' reasons for a running or succeeded run", () => {
    expect(notRedrivableReason(record('RUNNING'), 10, justAfter)).toBe(
      'Execution is RUNNING and cannot be redriven.',
    );
    expect(notRedrivableReason(record('SUCCEEDED'), 10, justAfter)).toBe(
      'Execution is SUCCEEDED and cannot be redriven.',
    );
  });

  it('allows 14 days from the end of the run, not a second more', () => {
    const last = new Date(Date.parse(STOPPED) + REDRIVE_PERIOD_MS);
    expect(notRedrivableReason(record('FAILED'), 10, last)).toBeUndefined();
    expect(notRedrivableReason(record('FAILED'), 10, new Date(last.getTime() + 1000))).toBe(
      'Execution redrivable period exceeded.',
    );
  });

  it('refuses a history with no room for the redrive event', () => {
    expect(notRedrivableReason(record('FAILED'), MAX_REDRIVE_HISTORY_EVENTS, justAfter)).toBe(
      'Execution history event limit exceeded.',
    );
  });
});

describe('taskInputDigest', () => {
  it('is the same for the same input whatever task token or entered time the run made', () => {
    const first = taskInputDigest(
      { Payload: { taskToken: 'a1', enteredAt: 't1', environment: 'prod' } },
      new Set(['a1', 't1']),
    );
    const again = taskInputDigest(
      { Payload: { taskToken: 'b2', enteredAt: 't2', environment: 'prod' } },
      new Set(['b2', 't2']),
    );
    const other = taskInputDigest(
      { Payload: { taskToken: 'b2', enteredAt: 't2', environment: 'dev' } },
      new Set(['b2', 't2']),
    );
    expect(again).toBe(first);
    expect(other).not.toBe(first);
  });
});

describe('TaskResults', () => {
  it('answers each recorded result once, in order, by state and input', () => {
    const results = new TaskResults([
      event('TaskSucceeded', { state: 'Deploy', stateType: 'Task', inputDigest: 'd', output: { n: 1 } }),
      event('TaskSucceeded', { state: 'Deploy', stateType: 'Task', inputDigest: 'd', output: { n: 2 } }),
    ]);
    expect(results.take('Deploy', 'other')).toBeUndefined();
    expect(results.take('Image', 'd')).toBeUndefined();
    expect(results.take('Deploy', 'd')).toEqual({ output: { n: 1 } });
    expect(results.take('Deploy', 'd')).toEqual({ output: { n: 2 } });
    expect(results.take('Deploy', 'd')).toBeUndefined();
  });
});

describe('replayedStates', () => {
  const state = (type: string, name: string, index?: number) =>
    event(type, { state: name, stateType: 'Task', ...(index === undefined ? {} : { index }) });

  it('counts a state as done when it exited, after a retry too, but not after a caught failure', () => {
    const done = replayedStates([
      state('StateEntered', 'Image'),
      state('StateExited', 'Image'),
      state('StateEntered', 'Deploy', 0),
      state('StateFailed', 'Deploy', 0),
      state('StateRetried', 'Deploy', 0),
      state('StateExited', 'Deploy', 0),
      state('StateEntered', 'Deploy', 1),
      state('StateFailed', 'Deploy', 1),
      state('StateCaught', 'Deploy', 1),
      state('StateExited', 'Deploy', 1),
      state('StateEntered', 'Stage failed', 1),
      event('MapIterationSucceeded', { parentState: 'Environments', index: 0 }),
      event('MapIterationFailed', { parentState: 'Environments', index: 1 }),
    ]);
    const key = (type: string, name: string, index?: number) =>
      replayKey({ type, state: name, ...(index === undefined ? {} : { index }) });
    expect(done.has(key('StateEntered', 'Image') ?? '')).toBe(true);
    expect(done.has(key('StateEntered', 'Deploy', 0) ?? '')).toBe(true);
    expect(done.has(key('StateEntered', 'Deploy', 1) ?? '')).toBe(false);
    expect(done.has(key('StateEntered', 'Stage failed', 1) ?? '')).toBe(false);
    expect(
      done.has(replayKey({ type: 'MapIterationStarted', parentState: 'Environments', index: 0 }) ?? ''),
    ).toBe(true);
    expect(
      done.has(replayKey({ type: 'MapIterationStarted', parentState: 'Environments', index: 1 }) ?? ''),
    ).toBe(false);
  });
});
