import { describe, expect, it } from 'vitest';
import { pipelineNotification } from '#shared/notifications.ts';
import {
  type NotifyRequest,
  NotifyRequestSchema,
  PipelineSettingsSchema,
  type Retries,
} from '#shared/pipeline.ts';
import {
  anExecutionInput,
  buildEnvironment,
  buildFailed,
  callsTo,
  countPassingRunTransitions,
  countTransitions,
  type HandlersByResource,
  type LocalRun,
  lambdaPayload,
  loadProjectStateMachine,
  passingHandlers,
  RESOURCE,
  reportsRead,
  runStateMachine,
  TEST_REPORT_ARN,
} from '../helpers/asl-harness.ts';

const pipeline = loadProjectStateMachine('pipeline');

const NO_RETRIES: Retries = { test: 0, image: 0, infrastructure: 0, deploy: 0 };

function retries(some: Partial<Retries>) {
  return { retries: { ...NO_RETRIES, ...some } };
}

function notifications(run: LocalRun): NotifyRequest[] {
  return run.calls
    .filter((call) => call.resource === RESOURCE.lambdaInvoke)
    .map((call) => NotifyRequestSchema.parse(lambdaPayload(call.input)));
}

/**
 * Passing handlers, except that the builds of `stateName` (in `environment` when given) fail their first
 * `failures` times; Infinity: always.
 */
function flakyBuild(stateName: string, failures: number, environment?: string): HandlersByResource {
  const passing = passingHandlers();
  let failed = 0;
  return {
    ...passing,
    [RESOURCE.startBuildSync]: (input, call) => {
      const matches =
        call.stateName === stateName &&
        (environment === undefined || buildEnvironment(input).STEPLINE_ENVIRONMENT === environment);
      if (matches && failed < failures) {
        failed += 1;
        throw buildFailed(input, { buildNumber: 40 + failed, reportArns: [TEST_REPORT_ARN] });
      }
      return passing[RESOURCE.startBuildSync]?.(input, call);
    },
  };
}

describe('settings.retries', () => {
  it('defaults to no retry for every stage', () => {
    expect(PipelineSettingsSchema.parse({}).retries).toEqual(NO_RETRIES);
  });

  it('rejects more than 3 retries, a negative count and a stage it does not know, naming the setting', () => {
    for (const retries of [{ deploy: 4 }, { image: -1 }, { deploy: 1.5 }, { tests: 1 }]) {
      const parsed = PipelineSettingsSchema.safeParse({ retries });
      expect(parsed.success).toBe(false);
      expect(parsed.error?.issues[0]?.path[0]).toBe('retries');
    }
  });
});

describe('an automatic retry of a failed build', () => {
  it('succeeds the Image stage on its second try and says so in the notification', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(retries({ image: 2 })), {
      handlers: flakyBuild('Image', 1),
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(callsTo(run, 'Image')).toHaveLength(2);
    // Each build knows its attempt (the console's build list shows it).
    expect(callsTo(run, 'Image').map((call) => buildEnvironment(call.input))).toMatchObject([
      { STEPLINE_ATTEMPT: '1', STEPLINE_ATTEMPTS: '3' },
      { STEPLINE_ATTEMPT: '2', STEPLINE_ATTEMPTS: '3' },
    ]);
    const [succeeded] = notifications(run);
    expect(succeeded).toMatchObject({ kind: 'succeeded', attempts: { test: 1, image: 2 } });
    expect(pipelineNotification(succeeded as NotifyRequest, 'eu-west-1').body).toContain(
      'Image succeeded on attempt 2 of 3.',
    );
  });

  it('retries dev Deploy alone (not its Infrastructure) and fails after N + 1 attempts, naming them', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(retries({ deploy: 2 })), {
      handlers: flakyBuild('Deploy', Number.POSITIVE_INFINITY, 'dev'),
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(callsTo(run, 'Deploy').map((call) => buildEnvironment(call.input).STEPLINE_ATTEMPT)).toEqual([
      '1',
      '2',
      '3',
    ]);
    expect(callsTo(run, 'Infrastructure')).toHaveLength(1);
    expect(callsTo(run, 'Approval')).toEqual([]);
    const [failed] = notifications(run);
    expect(failed).toMatchObject({ kind: 'failed', stage: 'dev: Deploy', attempt: { number: 3, of: 3 } });
    expect(JSON.parse(failed?.kind === 'failed' ? (failed.cause ?? '') : '')).toMatchObject({
      BuildNumber: 43,
    });
    expect(pipelineNotification(failed as NotifyRequest, 'eu-west-1').body).toContain(
      'Attempts: failed on attempt 3 of 3',
    );
  });

  it('gives each environment its own count: prod Infrastructure retried after dev needed none', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(retries({ infrastructure: 1 })), {
      handlers: flakyBuild('Infrastructure', 1, 'prod'),
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(
      callsTo(run, 'Infrastructure').map((call) => buildEnvironment(call.input).STEPLINE_ENVIRONMENT),
    ).toEqual(['dev', 'prod', 'prod']);
    const [succeeded] = notifications(run);
    expect(succeeded).toMatchObject({
      attempts: {
        environments: [
          { infrastructure: 1, deploy: 1 },
          { infrastructure: 2, deploy: 1 },
        ],
      },
    });
    expect(pipelineNotification(succeeded as NotifyRequest, 'eu-west-1').body).toContain(
      'prod: Infrastructure succeeded on attempt 2 of 2.',
    );
  });

  it('passes the Test stage on its second try: the first failure does not fail the stage', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(retries({ test: 1 })), {
      handlers: flakyBuild('Test', 1),
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(callsTo(run, 'Test')).toHaveLength(2);
    expect(notifications(run)).toMatchObject([{ kind: 'succeeded', attempts: { test: 2 } }]);
  });

  it('fails the Test stage after its last try with that try failed tests', async () => {
    const handlers = flakyBuild('Test', Number.POSITIVE_INFINITY);
    handlers[RESOURCE.batchGetReports] = (input) =>
      reportsRead(input.ReportArns as string[], { SUCCEEDED: 12, FAILED: 1 });
    const run = await runStateMachine(pipeline, anExecutionInput(retries({ test: 1 })), { handlers });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(callsTo(run, 'Test')).toHaveLength(2);
    expect(callsTo(run, 'Image')).toEqual([]);
    const [failed] = notifications(run);
    expect(failed).toMatchObject({ kind: 'failed', stage: 'Test', attempt: { number: 2, of: 2 } });
    expect(JSON.parse(failed?.kind === 'failed' ? (failed.cause ?? '') : '')).toMatchObject({
      BuildNumber: 42,
    });
  });

  it('with retries 0 runs a failed build once, as without the setting', async () => {
    const run = await runStateMachine(pipeline, anExecutionInput(), {
      handlers: flakyBuild('Deploy', 1, 'dev'),
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(callsTo(run, 'Deploy')).toHaveLength(1);
    expect(notifications(run)).toMatchObject([{ kind: 'failed', attempt: { number: 1, of: 1 } }]);
    expect(pipelineNotification(notifications(run)[0] as NotifyRequest, 'eu-west-1').body).not.toContain(
      'Attempts:',
    );
  });

  it('costs two transitions per retry (the Choice and the counter) besides the build', async () => {
    const passing = await countPassingRunTransitions([
      { name: 'dev', approval: false },
      { name: 'prod', approval: true },
    ]);
    const run = await runStateMachine(pipeline, anExecutionInput(retries({ image: 1 })), {
      handlers: flakyBuild('Image', 1),
    });

    expect(countTransitions(run)).toBe(passing + 3);
  });
});
