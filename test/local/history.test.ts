import { describe, expect, it } from 'vitest';
import { NewHistoryEventSchema, parseHistoryEvent } from '#local/stepfunctions/history.ts';

describe('the history schema', () => {
  it('reads each event the local engine, the runtime and recovery write', () => {
    const lines = [
      { type: 'ExecutionStarted', input: { a: 1 }, stateMachine: 'pipeline', executionArn: 'arn:x' },
      { type: 'StateEntered', state: 'Build', stateType: 'Task' },
      { type: 'StateRetried', state: 'Build', stateType: 'Task', attempt: 1 },
      { type: 'StateFailed', state: 'Build', stateType: 'Task', error: 'States.TaskFailed', cause: 'exit 2' },
      { type: 'StateCaught', state: 'Build', stateType: 'Task' },
      { type: 'StateExited', state: 'Build', stateType: 'Task', output: { ok: true } },
      { type: 'MapIterationStarted', parentState: 'Environments', index: 0 },
      { type: 'ParallelBranchFailed', parentState: 'Checks', error: 'X', cause: 'y' },
      { type: 'BuildStateChanged', build: { id: 'stepline-local-image:1', status: 'SUCCEEDED' } },
      { type: 'ExecutionSucceeded', output: { ok: true } },
      { type: 'ExecutionInterrupted', error: 'Stepline.Interrupted', cause: 'stopped' },
    ].map((fields, index) => ({ id: index + 1, timestamp: '2026-05-01T10:00:00.000Z', ...fields }));

    const parsed = lines.map(parseHistoryEvent);

    expect(parsed.map((line) => ('event' in line ? line.event : line))).toEqual(lines);
  });

  it('keeps fields it does not name, as stored', () => {
    const parsed = parseHistoryEvent({
      id: 3,
      type: 'StateEntered',
      timestamp: '2026-05-01T10:00:00.000Z',
      state: 'Build',
      stateType: 'Task',
      addedLater: { by: 'a newer stepline' },
    });

    expect(parsed).toMatchObject({ event: { state: 'Build', addedLater: { by: 'a newer stepline' } } });
  });

  it('keeps an event of an unknown type as Unrecognized, with the type it was stored with', () => {
    const parsed = parseHistoryEvent({
      id: 7,
      type: 'TaskScheduled',
      timestamp: '2026-05-01T10:00:00.000Z',
      x: 1,
    });

    expect(parsed).toEqual({
      event: {
        id: 7,
        type: 'Unrecognized',
        recordedType: 'TaskScheduled',
        timestamp: '2026-05-01T10:00:00.000Z',
        x: 1,
      },
    });
  });

  it('skips, with the reason, a line that is no event or a known event with wrong fields', () => {
    const noId = parseHistoryEvent({ type: 'StateEntered', timestamp: 't', state: 'A', stateType: 'Task' });
    const wrongState = parseHistoryEvent({
      id: 1,
      type: 'StateEntered',
      timestamp: 't',
      state: { name: 'A' },
    });

    expect(noId).toMatchObject({ skipped: expect.stringContaining('id') });
    expect(wrongState).toMatchObject({ skipped: expect.stringContaining('not a valid StateEntered event') });
  });

  it('refuses to write an event it cannot read back', () => {
    expect(NewHistoryEventSchema.safeParse({ type: 'Whatever', timestamp: 't' }).success).toBe(false);
    expect(NewHistoryEventSchema.safeParse({ type: 'StateEntered', timestamp: 't' }).success).toBe(false);
  });
});
