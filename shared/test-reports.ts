import { type TestOutcome, TestOutcomeSchema } from './pipeline.ts';

/** One failed test case, as people read it. */
export interface FailedTest {
  /** The test's name, with its suite or prefix when the report gives one (`server.test.mjs › answers 200`). */
  name: string;
  message?: string;
}

/**
 * The Test stage's outcome in numbers: passed, failed (FAILED and ERROR test cases), skipped, and the failed
 * tests the reports name. `skipped: true` when the stage did not run; `reports: 0` when the build named no
 * test reports.
 */
export type TestSummary =
  | { ran: false }
  | { ran: true; reports: number; passed: number; failed: number; skipped: number; failures: FailedTest[] };

/** How many failed tests a summary names at most (DescribeTestCases is asked for as many per report). */
export const MAX_FAILED_TESTS = 20;

/**
 * Sums the Test stage's reports (CodeBuild's TestSummary.StatusCounts: SUCCEEDED, FAILED, ERROR, SKIPPED)
 * and lists the failed test cases they name.
 *
 * @example
 * ```ts
 * summariseTests({
 *   reports: [{ Arn: 'arn:…', Read: { Reports: [{ TestSummary: { StatusCounts: { SUCCEEDED: 12, FAILED: 1 } } }] }, Failed: {} }],
 * });
 * // { ran: true, reports: 1, passed: 12, failed: 1, skipped: 0, failures: [] }
 * ```
 */
export function summariseTests(test: TestOutcome): TestSummary {
  if ('skipped' in test) return { ran: false };
  const summary = {
    ran: true as const,
    reports: 0,
    passed: 0,
    failed: 0,
    skipped: 0,
    failures: [] as FailedTest[],
  };
  for (const read of test.reports) {
    summary.reports += 1;
    const counts = read.Read.Reports?.[0]?.TestSummary?.StatusCounts ?? {};
    summary.passed += counts.SUCCEEDED ?? 0;
    summary.failed += (counts.FAILED ?? 0) + (counts.ERROR ?? 0);
    summary.skipped += counts.SKIPPED ?? 0;
    for (const testCase of read.Failed.TestCases ?? []) {
      if (summary.failures.length >= MAX_FAILED_TESTS) break;
      const where = testCase.TestSuiteName ?? testCase.Prefix ?? '';
      const name = [where, testCase.Name ?? 'unnamed test'].filter((part) => part !== '').join(' › ');
      summary.failures.push({ name, ...(testCase.Message ? { message: testCase.Message } : {}) });
    }
  }
  return summary;
}

/**
 * The summary in a few words, as a notification subject or a commit status description says it.
 *
 * @example
 * ```ts
 * testCounts({ ran: true, reports: 1, passed: 12, failed: 1, skipped: 0, failures: [] }); // '12 passed, 1 failed'
 * ```
 */
export function testCounts(summary: TestSummary): string {
  if (!summary.ran) return 'tests skipped';
  if (summary.reports === 0) return 'no test reports';
  return [
    `${summary.passed} passed`,
    ...(summary.failed > 0 ? [`${summary.failed} failed`] : []),
    ...(summary.skipped > 0 ? [`${summary.skipped} skipped`] : []),
  ].join(', ');
}

/**
 * The state every push or pull-request run enters right after its Test stage (run or skipped): its input
 * holds the Test outcome at `test`, so a run's history says there how its tests fared.
 */
export const AFTER_TEST_STATE = 'Pull request run?';

/** The Test outcome a state's input holds at `test`; undefined when there is none or it is not one. */
export function testOutcomeIn(stateData: unknown): TestOutcome | undefined {
  if (stateData === null || typeof stateData !== 'object' || !('test' in stateData)) return undefined;
  const parsed = TestOutcomeSchema.safeParse(stateData.test);
  return parsed.success ? parsed.data : undefined;
}

/**
 * What passed before an approval, with the Test stage at its head when it ran (a run reaches an approval
 * only once its tests passed), its counts when its reports say them.
 *
 * @example
 * ```ts
 * passedWithTest(['Image', 'dev: Infrastructure', 'dev: Deploy'], outcome);
 * // ['Test (12 passed, 1 skipped)', 'Image', 'dev: Infrastructure', 'dev: Deploy']
 * ```
 */
export function passedWithTest(passed: string[], test: TestOutcome | undefined): string[] {
  if (test === undefined || passed.some((stage) => stage === 'Test' || stage.startsWith('Test ('))) {
    return passed;
  }
  const summary = summariseTests(test);
  if (!summary.ran) return passed;
  return [summary.reports > 0 ? `Test (${testCounts(summary)})` : 'Test', ...passed];
}
