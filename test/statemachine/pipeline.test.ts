import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApprovalRequestSchema, type Environment, NotifyRequestSchema } from '#shared/pipeline.ts';
import {
  APPROVED,
  anExecutionInput,
  buildEnvironment,
  buildFailed,
  buildSucceeded,
  type CodeBuildBuild,
  callsTo,
  codeBuildBuild,
  countPassingRunTransitions,
  countTransitions,
  type HandlersByResource,
  type LocalRun,
  lambdaPayload,
  loadProjectStateMachine,
  passingHandlers,
  RESOURCE,
  runStateMachine,
  statesEntered,
  stepFunctionsError,
  type TaskCall,
  type TaskInput,
  TEST_EXECUTION_ARN,
  TEST_IMAGE_URI,
  TEST_REPORT_ARN,
} from '../helpers/asl-harness.ts';

const pipeline = loadProjectStateMachine('pipeline');
const COMMIT = '2222222222222222222222222222222222222222';

/**
 * Each stage reached, as people read it: `Test`, `Image`, `dev: Deploy`, `prod: Approval`, `Notify succeeded`.
 * The reading of the test reports is left out (see "the Test stage").
 */
function stagesReached(run: LocalRun): string[] {
  const readers: string[] = [RESOURCE.batchGetReports, RESOURCE.describeTestCases];
  return run.calls
    .filter((call) => !readers.includes(call.resource))
    .map((call: TaskCall) => {
      if (call.resource === RESOURCE.startBuildSync) {
        const environment = buildEnvironment(call.input).STEPLINE_ENVIRONMENT;
        return environment === undefined ? call.stateName : `${environment}: ${call.stateName}`;
      }
      if (call.resource === RESOURCE.lambdaInvokeWaitForTaskToken) {
        return `${lambdaPayload(call.input).environment}: ${call.stateName}`;
      }
      return call.stateName;
    });
}

/** The notifications the run sent, parsed as the notify function parses them. */
function notifications(run: LocalRun) {
  return run.calls
    .filter((call) => call.resource === RESOURCE.lambdaInvoke)
    .map((call) => NotifyRequestSchema.parse(lambdaPayload(call.input)));
}

/** Passing handlers, except builds of `project` in `environment` (undefined: any), which end FAILED. */
function failingBuild(stateName: string, environment?: string): HandlersByResource {
  const passing = passingHandlers();
  return {
    ...passing,
    [RESOURCE.startBuildSync]: (input, call) => {
      const matches =
        call.stateName === stateName &&
        (environment === undefined || buildEnvironment(input).STEPLINE_ENVIRONMENT === environment);
      if (matches) throw buildFailed(input, { buildNumber: 41 });
      return passing[RESOURCE.startBuildSync]?.(input, call);
    },
  };
}

function withApproval(handler: (input: TaskInput) => unknown): HandlersByResource {
  return { ...passingHandlers(), [RESOURCE.lambdaInvokeWaitForTaskToken]: handler };
}

describe('a passing run with the default environments', () => {
  let run: LocalRun;
  beforeAll(async () => {
    run = await runStateMachine(pipeline, anExecutionInput(), { handlers: passingHandlers() });
  });

  it('succeeds', () => {
    expect(run.error).toBeUndefined();
    expect(run.status).toBe('SUCCEEDED');
  });

  it('runs the tests, the image once, then dev, then the approval and prod, then the succeeded notification', () => {
    expect(stagesReached(run)).toEqual([
      'Test',
      'Image',
      'dev: Infrastructure',
      'dev: Deploy',
      'prod: Approval',
      'prod: Infrastructure',
      'prod: Deploy',
      'Notify succeeded',
    ]);
  });

  it('passes the image URI the image build exported to both deploys', () => {
    const deploys = callsTo(run, 'Deploy').map((call) => buildEnvironment(call.input));
    expect(deploys).toEqual([
      expect.objectContaining({ STEPLINE_ENVIRONMENT: 'dev', IMAGE_URI: TEST_IMAGE_URI }),
      expect.objectContaining({ STEPLINE_ENVIRONMENT: 'prod', IMAGE_URI: TEST_IMAGE_URI }),
    ]);
  });

  it('builds every stage from the pushed repository at the exact commit, with its buildspec and project', () => {
    const builds = run.calls.filter((call) => call.resource === RESOURCE.startBuildSync);
    expect(builds).toHaveLength(6);
    for (const { stateName, input } of builds) {
      const environment = buildEnvironment(input).STEPLINE_ENVIRONMENT;
      expect(input).toMatchObject({
        // Tests and the image run once; the other stages run in the project of the environment they work for.
        ProjectName:
          stateName === 'Image' || stateName === 'Test'
            ? `stepline-test-${stateName.toLowerCase()}`
            : `stepline-test-${environment}-${stateName.toLowerCase()}`,
        SourceTypeOverride: 'GITHUB',
        SourceLocationOverride: 'https://github.com/acme/shop.git',
        SourceVersion: COMMIT,
        BuildspecOverride: `buildspecs/${stateName.toLowerCase()}.yml`,
      });
      expect(buildEnvironment(input)).toMatchObject({
        STEPLINE_COMMIT: COMMIT,
        STEPLINE_REF: 'refs/heads/main',
        STEPLINE_REF_NAME: 'main',
        STEPLINE_REPOSITORY: 'acme/shop',
        STEPLINE_EXECUTION_ID: TEST_EXECUTION_ARN,
      });
    }
  });

  it('asks for approval with what the approval request needs, and what passed before it', () => {
    const [approval] = callsTo(run, 'Approval');
    expect(approval?.input.FunctionName).toBe('stepline-test-approvalRequest');
    const request = ApprovalRequestSchema.parse(lambdaPayload(approval?.input ?? {}));
    expect(request).toMatchObject({
      taskToken: 'task-token-2',
      executionArn: TEST_EXECUTION_ARN,
      timeoutSeconds: 24 * 3600,
      environment: 'prod',
      passed: ['Image', 'dev: Infrastructure', 'dev: Deploy'],
      imageUri: TEST_IMAGE_URI,
    });
    expect(Number.isNaN(Date.parse(request.enteredAt))).toBe(false);
  });

  it('notifies what was deployed where, the image and the approval decision', () => {
    expect(notifications(run)).toEqual([
      {
        kind: 'succeeded',
        executionArn: TEST_EXECUTION_ARN,
        push: anExecutionInput().push,
        imageUri: TEST_IMAGE_URI,
        deployed: ['dev', 'prod'],
        approvals: [APPROVED],
        attempts: {
          test: 1,
          image: 1,
          environments: [
            { infrastructure: 1, deploy: 1 },
            { infrastructure: 1, deploy: 1 },
          ],
        },
        retries: { test: 0, image: 0, infrastructure: 0, deploy: 0 },
        test: {
          reports: [
            {
              Arn: TEST_REPORT_ARN,
              Read: {
                Reports: [
                  expect.objectContaining({
                    Arn: TEST_REPORT_ARN,
                    TestSummary: { Total: 12, StatusCounts: { SUCCEEDED: 12 } },
                  }),
                ],
              },
              Failed: { TestCases: [] },
            },
          ],
        },
      },
    ]);
    expect(callsTo(run, 'Notify succeeded')[0]?.input.FunctionName).toBe('stepline-test-notify');
  });

  it('stays within 45 state transitions', () => {
    expect(countTransitions(run)).toBeLessThanOrEqual(45);
  });
});

describe('environments from the settings', () => {
  const threeEnvironments: Environment[] = [
    { name: 'dev', approval: false },
    { name: 'qa', approval: false },
    { name: 'prod', approval: true },
  ];

  it('visits dev, qa and prod in order', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput({ environments: threeEnvironments }), {
      handlers: passingHandlers(),
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(stagesReached(run)).toEqual([
      'Test',
      'Image',
      'dev: Infrastructure',
      'dev: Deploy',
      'qa: Infrastructure',
      'qa: Deploy',
      'prod: Approval',
      'prod: Infrastructure',
      'prod: Deploy',
      'Notify succeeded',
    ]);
    expect(lambdaPayload(callsTo(run, 'Approval')[0]?.input ?? {}).passed).toEqual([
      'Image',
      'dev: Infrastructure',
      'dev: Deploy',
      'qa: Infrastructure',
      'qa: Deploy',
    ]);
    expect(notifications(run)[0]).toMatchObject({ deployed: ['dev', 'qa', 'prod'], approvals: [APPROVED] });
  });

  it('gates every environment that asks for approval, the first one included', async () => {
    const environments: Environment[] = [
      { name: 'staging', approval: true },
      { name: 'prod', approval: true },
    ];

    const run = await runStateMachine(pipeline, anExecutionInput({ environments }), {
      handlers: passingHandlers(),
    });

    const requests = callsTo(run, 'Approval').map((call) => lambdaPayload(call.input));
    expect(requests).toMatchObject([
      { environment: 'staging', passed: ['Image'], taskToken: 'task-token-1' },
      {
        environment: 'prod',
        passed: ['Image', 'staging: Infrastructure', 'staging: Deploy'],
        taskToken: 'task-token-3',
      },
    ]);
    expect(notifications(run)[0]).toMatchObject({ approvals: [APPROVED, APPROVED] });
  });

  it('deploys a single environment that needs no approval, with no approvals to report', async () => {
    const run = await runStateMachine(
      pipeline,
      anExecutionInput({ environments: [{ name: 'dev', approval: false }] }),
      {
        handlers: passingHandlers(),
      },
    );

    expect(run.status).toBe('SUCCEEDED');
    expect(callsTo(run, 'Approval')).toEqual([]);
    expect(notifications(run)).toMatchObject([{ kind: 'succeeded', deployed: ['dev'], approvals: [] }]);
  });
});

describe('a failed build', () => {
  it('fails the run at dev Deploy, notifies "dev: Deploy" and never reaches the approval', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: failingBuild('Deploy', 'dev'),
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(stagesReached(run)).toEqual([
      'Test',
      'Image',
      'dev: Infrastructure',
      'dev: Deploy',
      'Notify Deploy failure',
    ]);
    expect(notifications(run)).toMatchObject([
      { kind: 'failed', executionArn: TEST_EXECUTION_ARN, stage: 'dev: Deploy', error: 'States.TaskFailed' },
    ]);
    expect(notifications(run)[0]?.push.after).toBe(COMMIT);
  });

  it('carries the build, with its log link, from the Catch into the notification', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: failingBuild('Deploy', 'dev'),
    });

    const [deploy] = callsTo(run, 'Deploy');
    const failed = codeBuildBuild(deploy?.input ?? {}, { status: 'FAILED', buildNumber: 41 });
    const [notification] = notifications(run);
    const cause = JSON.parse(
      notification?.kind === 'failed' ? (notification.cause ?? '') : '',
    ) as CodeBuildBuild;
    expect(cause).toMatchObject({ BuildStatus: 'FAILED', Id: failed.Id, Arn: failed.Arn });
    expect(cause.Logs.DeepLink).toBe(failed.Logs.DeepLink);
    expect(cause.Logs.DeepLink).toMatch(/^https:\/\/console\.aws\.amazon\.com\/cloudwatch\//);
  });

  it('names the image stage when the image build fails, and builds nothing after it', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), { handlers: failingBuild('Image') });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(stagesReached(run)).toEqual(['Test', 'Image', 'Notify Image failure']);
    expect(notifications(run)).toMatchObject([
      { kind: 'failed', stage: 'Image', error: 'States.TaskFailed' },
    ]);
  });

  it('names prod Infrastructure when it fails after the approval', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: failingBuild('Infrastructure', 'prod'),
    });

    expect(stagesReached(run).slice(-3)).toEqual([
      'prod: Approval',
      'prod: Infrastructure',
      'Notify Infrastructure failure',
    ]);
    expect(notifications(run)).toMatchObject([{ kind: 'failed', stage: 'prod: Infrastructure' }]);
  });

  it('is not retried', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: failingBuild('Deploy', 'dev'),
    });

    expect(callsTo(run, 'Deploy')).toHaveLength(1);
  });
});

describe('the approval gate', () => {
  const rejection = { ...APPROVED, approved: false, approver: 'Grace', comment: 'Not during the freeze' };

  it('on rejection, notifies the decision and fails the run with Approval.Rejected', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: withApproval(() => {
        throw stepFunctionsError('Approval.Rejected', JSON.stringify(rejection));
      }),
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Approval.Rejected' });
    expect(notifications(run)).toEqual([
      {
        kind: 'rejected',
        executionArn: TEST_EXECUTION_ARN,
        push: anExecutionInput().push,
        environment: 'prod',
        decision: rejection,
      },
    ]);
    expect(callsTo(run, 'Infrastructure')).toHaveLength(1);
  });

  describe('with nobody deciding', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    // `States.` names are Step Functions' own (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html,
    // "Error names"): the gate catches the service's States.Timeout and fails the run with a name of its own.
    it('expires after the configured timeout, notifies it and fails the run with Approval.Expired', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const asked = Promise.withResolvers<void>();
      const running = runStateMachine(pipeline, anExecutionInput({ approvalTimeoutSeconds: 120 }), {
        handlers: withApproval(() => {
          asked.resolve();
          return new Promise(() => {});
        }),
      });
      let ended = false;
      void running.then(() => {
        ended = true;
      });

      await Promise.race([asked.promise, running]);
      await vi.advanceTimersByTimeAsync(119_000);
      const endedBeforeTheTimeout = ended;
      await vi.advanceTimersByTimeAsync(1_000);
      const run = await running;

      expect(endedBeforeTheTimeout).toBe(false);
      expect(run).toMatchObject({ status: 'FAILED', error: 'Approval.Expired' });
      expect(notifications(run)).toEqual([
        {
          kind: 'expired',
          executionArn: TEST_EXECUTION_ARN,
          push: anExecutionInput().push,
          environment: 'prod',
        },
      ]);
      expect(lambdaPayload(callsTo(run, 'Approval')[0]?.input ?? {}).timeoutSeconds).toBe(120);
    });
  });

  it('when the approval request itself fails, notifies "prod: Approval" as the failed stage', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: withApproval(() => {
        throw stepFunctionsError('InvalidInputError', 'The approval request has no valid enteredAt time');
      }),
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(notifications(run)).toMatchObject([
      { kind: 'failed', stage: 'prod: Approval', error: 'InvalidInputError' },
    ]);
  });
});

describe('an image build that exports no IMAGE_URI', () => {
  /**
   * Passing handlers, except that the image build exports `exported` instead of IMAGE_URI; `null`: a build
   * whose buildspec declares no exported variables, which carries no ExportedEnvironmentVariables at all.
   */
  function imageExports(exported: Record<string, string> | null): HandlersByResource {
    const passing = passingHandlers();
    return {
      ...passing,
      [RESOURCE.startBuildSync]: (input, call) => {
        if (call.stateName !== 'Image') return passing[RESOURCE.startBuildSync]?.(input, call);
        const { Build } = buildSucceeded(input, { exported: exported ?? {} });
        if (exported === null) delete (Build as Partial<CodeBuildBuild>).ExportedEnvironmentVariables;
        return { Build };
      },
    };
  }

  it.each([
    ['no exported variables at all', null],
    ['an empty list', {}],
    ['other variables only', { IMAGE_TAG: COMMIT }],
    ['an empty IMAGE_URI', { IMAGE_URI: '' }],
  ])('fails the Image stage with a cause naming IMAGE_URI when it exports %s', async (_, exported) => {
    const run = await runStateMachine(pipeline, anExecutionInput(), { handlers: imageExports(exported) });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(stagesReached(run)).toEqual(['Test', 'Image', 'Notify Image failure']);
    const [notification] = notifications(run);
    expect(notification).toMatchObject({ kind: 'failed', stage: 'Image', error: 'Image.UriNotExported' });
    expect(notification?.kind === 'failed' ? notification.cause : '').toMatch(
      /did not export IMAGE_URI.*exported-variables/,
    );
  });

  it('picks IMAGE_URI out of several exported variables', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: imageExports({ IMAGE_TAG: COMMIT, IMAGE_URI: TEST_IMAGE_URI, DIGEST: 'sha256:0f' }),
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(callsTo(run, 'Deploy').map((call) => buildEnvironment(call.input).IMAGE_URI)).toEqual([
      TEST_IMAGE_URI,
      TEST_IMAGE_URI,
    ]);
  });
});

describe('transient errors', () => {
  it.each(['CodeBuild.AccountLimitExceededException', 'CodeBuild.ThrottlingException'])(
    'retries a StartBuild throttled once with %s, then goes on',
    async (errorName) => {
      const passing = passingHandlers();
      let throttled = false;
      const run = await runStateMachine(pipeline, anExecutionInput(), {
        handlers: {
          ...passing,
          [RESOURCE.startBuildSync]: (input) => {
            if (!throttled) {
              throttled = true;
              throw stepFunctionsError(errorName, 'Cannot have more than 1 builds in queue for the account');
            }
            return buildSucceeded(input, { exported: { IMAGE_URI: TEST_IMAGE_URI } });
          },
        },
      });

      expect(run.status).toBe('SUCCEEDED');
      expect(callsTo(run, 'Test')).toHaveLength(2);
      expect(callsTo(run, 'Test')[1]?.input).toEqual(callsTo(run, 'Test')[0]?.input);
    },
  );

  // StartBuild's own errors and CodeBuild's common errors: only a full account and throttling pass with time
  // (https://docs.aws.amazon.com/codebuild/latest/APIReference/API_StartBuild.html, Errors;
  // https://docs.aws.amazon.com/codebuild/latest/APIReference/CommonErrors.html). AWSCodeBuildException is the
  // integration's name for any other service error, AccessDenied included.
  it.each([
    ['CodeBuild.AWSCodeBuildException', 'User is not authorized to perform: codebuild:StartBuild'],
    ['CodeBuild.CodeBuildException', 'Access denied to connection arn:aws:codeconnections:…'],
    ['CodeBuild.InvalidInputException', 'Invalid source location'],
    ['CodeBuild.ResourceNotFoundException', 'Project cannot be found'],
  ])('fails the stage at once on %s, without retrying', async (errorName, message) => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: {
        ...passingHandlers(),
        [RESOURCE.startBuildSync]: () => {
          throw stepFunctionsError(errorName, message);
        },
      },
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(callsTo(run, 'Test')).toHaveLength(1);
    expect(callsTo(run, 'Image')).toHaveLength(0);
    expect(notifications(run)).toMatchObject([
      { kind: 'failed', stage: 'Test', error: errorName, test: { reports: [] } },
    ]);
  });

  it('retries a throttled notification, then succeeds', async () => {
    let attempts = 0;
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: {
        ...passingHandlers(),
        [RESOURCE.lambdaInvoke]: () => {
          attempts += 1;
          if (attempts === 1) throw stepFunctionsError('Lambda.TooManyRequestsException', 'Rate exceeded');
          return { StatusCode: 200, Payload: null };
        },
      },
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(callsTo(run, 'Notify succeeded')).toHaveLength(2);
  });
});

describe('a notification that cannot be sent', () => {
  const notifyFails: HandlersByResource = {
    ...passingHandlers(),
    [RESOURCE.lambdaInvoke]: () => {
      throw stepFunctionsError('Lambda.Unknown', 'The function returned an error');
    },
  };

  it('does not turn a deployed run into a failed one', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), { handlers: notifyFails });

    expect(run.status).toBe('SUCCEEDED');
    expect(callsTo(run, 'Deploy')).toHaveLength(2);
  });

  it('does not hide a failed stage: the run fails at its notification, which a redrive reruns', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: {
        ...failingBuild('Deploy', 'dev'),
        [RESOURCE.lambdaInvoke]: notifyFails[RESOURCE.lambdaInvoke],
      },
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Lambda.Unknown' });
    const entered = statesEntered(run);
    expect(entered.slice(entered.indexOf('Deploy'), entered.indexOf('Deploy') + 4)).toEqual([
      'Deploy',
      'Retry Deploy?',
      'Record the Deploy failure',
      'Notify Deploy failure',
    ]);
    expect(entered).not.toContain('Stage failed');
    expect(callsTo(run, 'Approval')).toEqual([]);
  });
});

describe('state transitions of a passing run', () => {
  it('count 35 for dev and prod (with approval), 47 for four environments: the attempt counters, the Test stage and its report, a line joined, each environment entered and left', async () => {
    const two = await countPassingRunTransitions([
      { name: 'dev', approval: false },
      { name: 'prod', approval: true },
    ]);
    const four = await countPassingRunTransitions([
      { name: 'dev', approval: false },
      { name: 'qa', approval: false },
      { name: 'staging', approval: false },
      { name: 'prod', approval: true },
    ]);

    expect(two).toBe(35);
    expect(four).toBe(47);
  });
});
