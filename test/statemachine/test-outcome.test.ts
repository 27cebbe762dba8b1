import { describe, expect, it } from 'vitest';
import { AFTER_TEST_STATE, summariseTests, testOutcomeIn } from '#shared/test-reports.ts';
import {
  anExecutionInput,
  type LocalRun,
  loadProjectStateMachine,
  passingHandlers,
  runStateMachine,
} from '../helpers/asl-harness.ts';

const pipeline = loadProjectStateMachine('pipeline');

/**
 * The approval request reads a run's Test outcome from its history (GetExecutionHistory on AWS, the local
 * history locally): the input of the state entered right after the Test stage. The real ASL, run locally,
 * must put it there, whether the stage ran or was skipped.
 */
function enteredAfterTest(run: LocalRun): unknown[] {
  return run.events.flatMap((event) => {
    const e = event as { type: string; state?: { name: string; input?: unknown }; parentState?: unknown };
    return e.type === 'StateEntered' && e.state?.name === AFTER_TEST_STATE && e.parentState === undefined
      ? [e.state.input]
      : [];
  });
}

describe('the Test outcome in a run’s history', () => {
  it('is the input of the state entered right after the Test stage, with the reports’ counts', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), { handlers: passingHandlers() });

    expect(run.status).toBe('SUCCEEDED');
    const inputs = enteredAfterTest(run);
    expect(inputs).toHaveLength(1);
    const outcome = testOutcomeIn(inputs[0]);
    expect(outcome && summariseTests(outcome)).toMatchObject({
      ran: true,
      reports: 1,
      passed: 12,
      failed: 0,
    });
  });

  it('says the tests were skipped when settings.test is false', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput({ test: false }), {
      handlers: passingHandlers(),
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(enteredAfterTest(run).map(testOutcomeIn)).toEqual([{ skipped: true }]);
  });
});
