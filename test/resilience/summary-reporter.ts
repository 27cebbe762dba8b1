import type { Reporter, TestModule } from 'vitest/node';
import { type Figures, mergeFigures } from './figures.ts';

/**
 * Prints the resilience suite's figures after the run: cases tried per door, 5xx answers, lost and
 * duplicated runs, faults survived, secrets found, IAM roles checked; then `N passed, N failed`.
 * Each test asserts its own figures, so a figure that is not what its case expects has already failed
 * that test; this only adds them up.
 */
export default class ResilienceSummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let figures: Figures = {};
    let passed = 0;
    let failed = 0;
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failed += 1;
        const own = test.meta().resilience;
        if (own) figures = mergeFigures(figures, own);
      }
    }
    process.stdout.write(`${summaryText(figures, passed, failed)}\n`);
  }
}

export function summaryText(figures: Figures, passed: number, failed: number): string {
  const doors = Object.entries(figures.cases ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const total = doors.reduce((sum, [, count]) => sum + count, 0);
  const width = Math.max(0, ...doors.map(([door]) => door.length));
  const lines = [
    '',
    'stepline resilience summary',
    `  cases tried: ${total}`,
    ...doors.map(([door, count]) => `    ${door.padEnd(width)}  ${count}`),
    `  5xx answers: ${figures.serverErrors ?? 0}`,
    `  invalid inputs that started or decided anything: ${figures.invalidEffects ?? 0}`,
    `  accepted runs lost: ${figures.lost ?? 0}`,
    `  runs or decisions duplicated: ${figures.duplicated ?? 0}`,
    `  faults survived: ${figures.faultsSurvived ?? 0} of ${figures.faultsInjected ?? 0}`,
    `  secrets found: ${figures.secretsFound ?? 0}${figures.secretPlaces?.length ? ` (${figures.secretPlaces.join(', ')})` : ''}`,
    `  IAM roles checked against their allow-list: ${figures.rolesChecked ?? 0}`,
    `  environment regressions: ${figures.environmentRegressions ?? 0}`,
    `  orphaned holds: ${figures.orphanedHolds ?? 0}`,
    `${passed} passed, ${failed} failed`,
  ];
  return lines.join('\n');
}
