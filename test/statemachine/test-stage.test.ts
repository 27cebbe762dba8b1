import { describe, expect, it } from 'vitest';
import { NotifyRequestSchema } from '#shared/pipeline.ts';
import {
  anExecutionInput,
  aPullRequestExecutionInput,
  buildFailed,
  buildSucceeded,
  callsTo,
  type HandlersByResource,
  type LocalRun,
  lambdaPayload,
  loadProjectStateMachine,
  passingHandlers,
  RESOURCE,
  reportsRead,
  runStateMachine,
  stepFunctionsError,
  TEST_IMAGE_URI,
  TEST_REPORT_ARN,
} from '../helpers/asl-harness.ts';

const pipeline = loadProjectStateMachine('pipeline');

/** The builds the run started, by state name, in order. */
function builds(run: LocalRun): string[] {
  return run.calls.filter((call) => call.resource === RESOURCE.startBuildSync).map((call) => call.stateName);
}

function notifications(run: LocalRun) {
  return run.calls
    .filter((call) => call.resource === RESOURCE.lambdaInvoke)
    .map((call) => NotifyRequestSchema.parse(lambdaPayload(call.input)));
}

const FAILED_CASE = {
  ReportArn: TEST_REPORT_ARN,
  Name: 'answers 200 on /',
  Prefix: 'server.test.mjs',
  Status: 'FAILED',
  Message: 'Expected values to be strictly equal: 500 !== 200',
};

/** The test build fails with one failed test among 13, which its report names. */
function failingTests(): HandlersByResource {
  const passing = passingHandlers();
  return {
    ...passing,
    [RESOURCE.startBuildSync]: (input, call) => {
      if (call.stateName === 'Test') throw buildFailed(input, { reportArns: [TEST_REPORT_ARN] });
      return passing[RESOURCE.startBuildSync]?.(input, call);
    },
    [RESOURCE.batchGetReports]: (input) =>
      reportsRead(input.ReportArns as string[], { SUCCEEDED: 12, FAILED: 1 }),
    [RESOURCE.describeTestCases]: (input) => {
      expect(input).toEqual({ ReportArn: TEST_REPORT_ARN, Filter: { Status: 'FAILED' }, MaxResults: 20 });
      return { TestCases: [FAILED_CASE] };
    },
  };
}

describe('the Test stage of a push run', () => {
  it('runs first, in the test project, with the buildspec of settings.buildspecs.test', async () => {
    const run = await runStateMachine(
      pipeline,
      anExecutionInput({ buildspecs: { test: 'ci/tests.yml' } as never }),
      {
        handlers: passingHandlers(),
      },
    );

    expect(run.status).toBe('SUCCEEDED');
    expect(builds(run)[0]).toBe('Test');
    expect(callsTo(run, 'Test')[0]?.input).toMatchObject({
      ProjectName: 'stepline-test-test',
      BuildspecOverride: 'ci/tests.yml',
      SourceVersion: '2222222222222222222222222222222222222222',
    });
    expect(callsTo(run, 'Read the report')[0]?.input).toEqual({ ReportArns: [TEST_REPORT_ARN] });
  });

  it('fails the run before the image when a test fails, naming the failed test in the notification', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), { handlers: failingTests() });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(builds(run)).toEqual(['Test']);
    expect(
      run.events.some((event) => 'state' in event && event.state?.name === 'Read the test reports'),
    ).toBe(true);
    expect(notifications(run)).toEqual([
      expect.objectContaining({
        kind: 'failed',
        stage: 'Test',
        error: 'States.TaskFailed',
        pullRequest: null,
        test: {
          reports: [
            {
              Arn: TEST_REPORT_ARN,
              Read: {
                Reports: [
                  expect.objectContaining({
                    TestSummary: { Total: 13, StatusCounts: { SUCCEEDED: 12, FAILED: 1 } },
                  }),
                ],
              },
              Failed: { TestCases: [FAILED_CASE] },
            },
          ],
        },
      }),
    ]);
  });

  it('reads no report when the test buildspec names none', async () => {
    const passing = passingHandlers();
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: {
        ...passing,
        [RESOURCE.startBuildSync]: (input, call) =>
          call.stateName === 'Test' ? buildSucceeded(input) : passing[RESOURCE.startBuildSync]?.(input, call),
      },
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(callsTo(run, 'Read the report')).toEqual([]);
    expect(notifications(run)[0]).toMatchObject({ kind: 'succeeded', test: { reports: [] } });
  });

  it('goes on without a report that cannot be read, naming it by its ARN', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: {
        ...passingHandlers(),
        [RESOURCE.batchGetReports]: () => {
          throw stepFunctionsError('CodeBuild.AccessDeniedException', 'not authorized to BatchGetReports');
        },
      },
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(notifications(run)[0]).toMatchObject({
      kind: 'succeeded',
      test: { reports: [{ Arn: TEST_REPORT_ARN, Read: {}, Failed: {} }] },
    });
  });

  it('keeps going when the service answers without the lists it leaves out when empty', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: {
        ...passingHandlers(),
        [RESOURCE.batchGetReports]: (input) => ({ ReportsNotFound: input.ReportArns }),
        [RESOURCE.describeTestCases]: () => ({}),
      },
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(notifications(run)[0]).toMatchObject({
      test: { reports: [{ Arn: TEST_REPORT_ARN, Read: { ReportsNotFound: [TEST_REPORT_ARN] }, Failed: {} }] },
    });
  });

  // A cut Cause would make States.StringToJson raise States.Runtime, which no Catch catches on AWS: the state
  // machine must not parse it at all.
  it('notifies the Test failure without reports, and parses nothing, when Step Functions cut the cause short', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: {
        ...passingHandlers(),
        [RESOURCE.startBuildSync]: () => {
          throw stepFunctionsError('States.TaskFailed', '{"Id":"stepline-test-test:cut sho');
        },
      },
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(notifications(run)).toMatchObject([{ kind: 'failed', stage: 'Test', test: { reports: [] } }]);
    expect(
      run.events.some((event) => 'state' in event && event.state?.name === 'Read the test reports'),
    ).toBe(false);
  });

  it('is skipped when settings.test is false, and the notification says so', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput({ test: false }), {
      handlers: passingHandlers(),
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(builds(run)).toEqual(['Image', 'Infrastructure', 'Deploy', 'Infrastructure', 'Deploy']);
    expect(notifications(run)).toMatchObject([{ kind: 'succeeded', test: { skipped: true } }]);
  });
});

describe('a pull-request run', () => {
  it('runs the Test stage only, and notifies the request checked with the test summary', async () => {
    const input = aPullRequestExecutionInput();
    const run = await runStateMachine(pipeline, input, { handlers: passingHandlers() });

    expect(run.status).toBe('SUCCEEDED');
    expect(builds(run)).toEqual(['Test']);
    expect(callsTo(run, 'Approval')).toEqual([]);
    expect(callsTo(run, 'Test')[0]?.input).toMatchObject({ SourceVersion: input.source.version });
    expect(notifications(run)).toEqual([
      {
        kind: 'checked',
        executionArn: expect.any(String),
        push: input.push,
        pullRequest: input.pullRequest,
        imageUri: '',
        test: { reports: [expect.objectContaining({ Arn: TEST_REPORT_ARN, Failed: { TestCases: [] } })] },
        attempts: { test: 1, image: 1 },
        retries: { test: 0, image: 0, infrastructure: 0, deploy: 0 },
      },
    ]);
  });

  it('builds the image too when settings.pullRequests.image is true, and deploys nothing', async () => {
    const run = await runStateMachine(
      pipeline,
      aPullRequestExecutionInput({}, { pullRequests: { image: true } }),
      { handlers: passingHandlers() },
    );

    expect(run.status).toBe('SUCCEEDED');
    expect(builds(run)).toEqual(['Test', 'Image']);
    expect(notifications(run)).toMatchObject([{ kind: 'checked', imageUri: TEST_IMAGE_URI }]);
  });

  it('fails at Test with the request and the failed test in the notification', async () => {
    const input = aPullRequestExecutionInput();
    const run = await runStateMachine(pipeline, input, { handlers: failingTests() });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(builds(run)).toEqual(['Test']);
    expect(notifications(run)).toMatchObject([
      {
        kind: 'failed',
        stage: 'Test',
        pullRequest: { number: 12 },
        test: { reports: [{ Failed: { TestCases: [FAILED_CASE] } }] },
      },
    ]);
  });
});
