import type { CodeBuildClient } from '@aws-sdk/client-codebuild';
import type { TestReports } from '../ports.ts';
import { summariseTests } from '../test-reports.ts';

/** How many report ARNs BatchGetReports takes at once. */
const REPORTS_PER_CALL = 100;

/**
 * What a finished build's CodeBuild test reports counted: BatchGetBuilds gives the build's `reportArns`,
 * BatchGetReports each report's `testSummary.statusCounts`, summed as the notifications sum them
 * (https://docs.aws.amazon.com/codebuild/latest/APIReference/API_BatchGetBuilds.html,
 * https://docs.aws.amazon.com/codebuild/latest/APIReference/API_BatchGetReports.html,
 * https://docs.aws.amazon.com/codebuild/latest/APIReference/API_TestReportSummary.html), for builds of
 * the Test project only. The role needs codebuild:BatchGetBuilds on that project and codebuild:BatchGetReports
 * on its report groups.
 *
 * The client is loaded at the first finished build rather than at init: most events the function gets are
 * not one, and a cold start compiles only what it runs.
 */
export class CodeBuildTestReports implements TestReports {
  readonly #testProject: string;
  #client: CodeBuildClient | undefined;

  /** @param testProject the Test stage's project: the one whose builds have test reports. */
  constructor(testProject: string) {
    this.#testProject = testProject;
  }

  async countsOf(buildArn: string): Promise<{ passed: number; failed: number; skipped: number } | undefined> {
    // The event names the build by ARN (`arn:…:build/<project>:<uuid>`); BatchGetBuilds takes its ID.
    const id = buildArn.slice(buildArn.indexOf(':build/') + ':build/'.length);
    if (!id.startsWith(`${this.#testProject}:`)) return undefined;
    const { CodeBuildClient, BatchGetBuildsCommand, BatchGetReportsCommand } = await import(
      '@aws-sdk/client-codebuild'
    );
    this.#client ??= new CodeBuildClient({});
    const { builds } = await this.#client.send(new BatchGetBuildsCommand({ ids: [id] }));
    const reportArns = builds?.[0]?.reportArns ?? [];
    if (reportArns.length === 0) return undefined;
    const reports = [];
    for (let start = 0; start < reportArns.length; start += REPORTS_PER_CALL) {
      const page = await this.#client.send(
        new BatchGetReportsCommand({ reportArns: reportArns.slice(start, start + REPORTS_PER_CALL) }),
      );
      reports.push(...(page.reports ?? []));
    }
    // Only test reports count (a code coverage report has no testSummary).
    const tests = reports.filter((report) => report.testSummary);
    if (tests.length === 0) return undefined;
    const summary = summariseTests({
      reports: tests.map((report) => ({
        Arn: report.arn ?? '',
        Read: { Reports: [{ TestSummary: { StatusCounts: report.testSummary?.statusCounts ?? {} } }] },
        Failed: {},
      })),
    });
    return summary.ran
      ? { passed: summary.passed, failed: summary.failed, skipped: summary.skipped }
      : undefined;
  }
}
