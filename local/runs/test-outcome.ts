import type { HistoryEvent } from '#local/stepfunctions/history.ts';
import type { TestOutcome } from '#shared/pipeline.ts';
import { AFTER_TEST_STATE, testOutcomeIn } from '#shared/test-reports.ts';

/**
 * A run's Test outcome from its local history: the output of the state entered right after the Test stage
 * (a Choice passes its input on whole), which holds it at `test`. Undefined until that state has run.
 */
export function testOutcomeInHistory(history: readonly HistoryEvent[]): TestOutcome | undefined {
  for (const event of history) {
    if (
      event.type === 'StateExited' &&
      'state' in event &&
      event.state === AFTER_TEST_STATE &&
      !('parentState' in event && event.parentState)
    ) {
      return testOutcomeIn('output' in event ? event.output : undefined);
    }
  }
  return undefined;
}
