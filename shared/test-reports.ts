import type { TestOutcome } from './pipeline.ts';

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
