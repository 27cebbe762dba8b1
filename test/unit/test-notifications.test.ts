import { describe, expect, it } from 'vitest';
import { failedJUnitCases, summariseJUnitXml } from '#local/codebuild/reports.ts';
import { pipelineNotification } from '#shared/notifications.ts';
import type { NotifyRequest, TestOutcome } from '#shared/pipeline.ts';
import type { PullRequest } from '#shared/pull-request.ts';
import { summariseTests, testCounts } from '#shared/test-reports.ts';
import { aPush } from '../helpers/push.ts';

const ARN = 'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-1';

const FAILED: TestOutcome = {
  reports: [
    {
      Arn: 'arn:report:1',
      Read: {
        Reports: [
          {
            Arn: 'arn:report:1',
            TestSummary: { Total: 15, StatusCounts: { SUCCEEDED: 12, FAILED: 1, SKIPPED: 2 } },
          },
        ],
      },
      Failed: {
        TestCases: [
          {
            Name: 'answers 200 on /',
            Prefix: 'hello-service',
            Message: 'Expected values to be strictly equal:\n\n500 !== 200',
          },
        ],
      },
    },
    {
      Arn: 'arn:report:2',
      Read: {
        Reports: [
          { Arn: 'arn:report:2', TestSummary: { Total: 3, StatusCounts: { SUCCEEDED: 2, ERROR: 1 } } },
        ],
      },
      // The service leaves an empty list out of its answer.
      Failed: {},
    },
    // A report that could not be read counts for nothing.
    { Arn: 'arn:report:3', Read: {}, Failed: {} },
  ],
};

const PULL_REQUEST: PullRequest = {
  provider: 'github',
  number: 12,
  title: 'Add the thing',
  url: 'https://github.com/acme/shop/pull/12',
  event: 'UPDATED',
  action: 'synchronize',
  draft: false,
  fork: false,
  author: 'octocat',
  head: '2222222222222222222222222222222222222222',
  target: { repository: 'acme/shop', branch: 'main' },
  source: { repository: 'acme/shop', branch: 'feature/thing' },
};

describe('summariseTests', () => {
  it('sums passed, failed (and errors) and skipped over the reports, and names the failed tests', () => {
    expect(summariseTests(FAILED)).toEqual({
      ran: true,
      reports: 3,
      passed: 14,
      failed: 2,
      skipped: 2,
      failures: [
        {
          name: 'hello-service › answers 200 on /',
          message: 'Expected values to be strictly equal:\n\n500 !== 200',
        },
      ],
    });
    expect(testCounts(summariseTests(FAILED))).toBe('14 passed, 2 failed, 2 skipped');
  });

  it('says when the tests were skipped or reported nothing', () => {
    expect(testCounts(summariseTests({ skipped: true }))).toBe('tests skipped');
    expect(testCounts(summariseTests({ reports: [] }))).toBe('no test reports');
  });
});

describe('the notifications of the Test stage', () => {
  it('names the failed tests and their messages when the Test stage fails', () => {
    const request: NotifyRequest = {
      kind: 'failed',
      executionArn: ARN,
      push: aPush(),
      stage: 'Test',
      error: 'States.TaskFailed',
      test: FAILED,
    };

    const { subject, body } = pipelineNotification(request, 'eu-west-1');

    expect(subject).toBe('✖ acme/shop main failed at Test: 14 passed, 2 failed, 2 skipped');
    expect(body).toContain(
      'Tests: 14 passed, 2 failed, 2 skipped\nFailed tests:\n  ✖ hello-service › answers 200 on /: Expected values to be strictly equal: 500 !== 200\n',
    );
  });

  it('tells of a pull request that passed, with the request and its counts', () => {
    const { subject, body } = pipelineNotification(
      {
        kind: 'checked',
        executionArn: ARN,
        push: aPush({ ref: 'refs/heads/feature/thing', refName: 'feature/thing' }),
        pullRequest: PULL_REQUEST,
        test: {
          reports: [
            {
              Arn: 'arn:report:1',
              Read: { Reports: [{ TestSummary: { StatusCounts: { SUCCEEDED: 7 } } }] },
              Failed: {},
            },
          ],
        },
        imageUri: '',
      },
      'eu-west-1',
    );

    expect(subject).toBe('✔ acme/shop #12 feature/thing passed: 7 passed');
    expect(body).toContain('Pull request #12 of acme/shop passed its checks at 2222222.');
    expect(body).toContain('Pull request: #12 Add the thing\nLink: https://github.com/acme/shop/pull/12');
    expect(body).toContain('Branch: feature/thing into main');
    expect(body).not.toContain('Image:');
  });

  it('names the pull request when its Test stage fails', () => {
    const { subject, body } = pipelineNotification(
      {
        kind: 'failed',
        executionArn: ARN,
        push: aPush(),
        pullRequest: PULL_REQUEST,
        stage: 'Test',
        error: 'States.TaskFailed',
        test: FAILED,
      },
      'eu-west-1',
    );

    expect(subject).toMatch(/^✖ acme\/shop #12 feature\/thing failed at Test: /);
    expect(body).toContain('answers 200 on /');
  });

  it('says the tests were skipped in a deployed run whose settings turn them off', () => {
    const { body } = pipelineNotification(
      {
        kind: 'succeeded',
        executionArn: ARN,
        push: aPush(),
        deployed: ['dev'],
        approvals: [],
        test: { skipped: true },
      },
      'eu-west-1',
    );

    expect(body).toContain('Tests: skipped (settings.test is false)');
  });
});

describe('JUnit reports of the local build runner', () => {
  // What Node's own JUnit reporter (node --test --test-reporter=junit, Node 24) writes for a suite with one
  // passing, one failing and one skipped test: a `>` left unescaped in an attribute, messages on several lines.
  const NODE_JUNIT = `<?xml version="1.0" encoding="utf-8"?>
<testsuites>
	<testsuite name="svc" time="0.003225" disabled="0" errors="0" tests="3" failures="1" skipped="1" timestamp="2026-12-03T06:57:56.579Z" hostname="vm">
		<testcase name="ok" time="0.000850" classname="svc" file="/tmp/jt/a.test.mjs"/>
		<testcase name="bad &lt;x> &amp; y" time="0.000951" classname="svc" file="/tmp/jt/a.test.mjs" failure="Expected values to be strictly equal:&#10;&#10;500 !== 200&#10;">
			<failure type="testCodeFailure" message="Expected values to be strictly equal:&#10;&#10;500 !== 200">
Error [ERR_TEST_FAILURE]: Expected values to be strictly equal:
			</failure>
		</testcase>
		<testcase name="later" time="0.000203" classname="svc" file="/tmp/jt/a.test.mjs">
			<skipped type="skipped" message="true"/>
		</testcase>
	</testsuite>
</testsuites>`;

  it('counts the tests and names the failed one, with its suite and message', () => {
    expect(summariseJUnitXml(NODE_JUNIT)).toEqual({ tests: 3, failures: 1, errors: 0, skipped: 1 });
    expect(failedJUnitCases(NODE_JUNIT)).toEqual([
      {
        name: 'bad <x> & y',
        prefix: 'svc',
        status: 'FAILED',
        message: 'Expected values to be strictly equal:\n\n500 !== 200',
      },
    ]);
  });

  it('takes the first line of the failure text when it has no message, and reads errors as ERROR', () => {
    const xml =
      '<testsuite tests="1"><testcase name="boom" classname="math"><error>TypeError: x is not a function\n  at y</error></testcase></testsuite>';

    expect(failedJUnitCases(xml)).toEqual([
      { name: 'boom', prefix: 'math', status: 'ERROR', message: 'TypeError: x is not a function' },
    ]);
  });
});
