import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalEventBus } from '#local/eventbridge/bus.ts';
import { functionConfiguration } from '#local/lambda/configuration.ts';
import { LocalLambda } from '#local/lambda/host.ts';
import { composeHandlers, type LocalPorts, registeredFunctions } from '#local/lambda/registry.ts';
import { matchRoute } from '#local/lambda/routes.ts';
import { LocalRuntime } from '#local/runtime.ts';
import type { LocalFunction, Wiring } from '#local/wiring.ts';
import { ConfigurationError, InvalidInputError } from '#shared/errors.ts';
import { createLogger } from '#shared/logger.ts';
import type { Notification } from '#shared/ports.ts';
import { aPush } from '../helpers/push.ts';
import { MemoryLineStore, recordingLedger } from '../helpers/release.ts';

function aFunction(key: string, module: string, more: Partial<LocalFunction> = {}): LocalFunction {
  return { key, name: `stepline-local-${key}`, module, environment: {}, http: [], eventBridge: [], ...more };
}

const EXECUTION_ARN = 'arn:aws:states:us-east-1:000000000000:execution:stepline-local-pipeline:run-1';

function portsPublishingTo(
  published: { notification: Notification; run: string | undefined }[],
  lambda: LocalLambda,
) {
  const ports: LocalPorts = {
    starter: { start: async () => ({ outcome: 'already-started', executionName: 'x' }) },
    runStopper: { stopRunning: async () => [] },
    lines: new MemoryLineStore(),
    releaseLedger: () => recordingLedger().ledger,
    runs: { supersededCause: async () => null, failedStage: async () => null },
    configuration: functionConfiguration([]),
    settingsFor: async () => functionConfiguration([]).settings.defaults,
    webhookSecrets: {},
    approvalKey: async () => 'approval-key-0123456789abcdef0123',
    approvalBaseUrl: 'http://127.0.0.1:4700/approvals',
    decider: { succeed: async () => undefined, fail: async () => undefined },
    notifier: {
      publish: async (notification) => {
        published.push({ notification, run: lambda.currentRun() });
      },
    },
    emitter: { emit: async () => undefined },
    logger: (key) => createLogger(key, 'SILENT'),
    now: () => new Date(),
    region: 'us-east-1',
    pipelineStateMachineArn: 'arn:aws:states:us-east-1:000000000000:stateMachine:stepline-local-pipeline',
    statusTokens: { tokenFor: async () => undefined },
    executionInputs: { describe: async () => undefined },
    runLink: (executionArn) => `http://127.0.0.1:4700/#/runs/${executionArn}`,
    statusRecorder: { record: async () => undefined },
    testReports: { countsOf: async () => undefined },
    testOutcomes: { of: async () => undefined },
  };
  return ports;
}

describe('the functions configuration, from --param', () => {
  const withEnvironment = (environment: Record<string, unknown>) => [
    aFunction('webhook', 'functions/webhook.ts', { environment }),
  ];

  it('parses the settings and triggers the functions get', () => {
    const configuration = functionConfiguration(
      withEnvironment({
        STEPLINE_SETTINGS: '{"environments":[{"name":"qa","approval":false}]}',
        STEPLINE_TRIGGERS: '{}',
      }),
    );
    expect(configuration.settings.defaults.environments).toEqual([
      expect.objectContaining({ name: 'qa', approval: false }),
    ]);
  });

  it('names the repository and the field of an override its schema refuses', () => {
    const parse = () =>
      functionConfiguration(
        withEnvironment({
          STEPLINE_SETTINGS: JSON.stringify({
            repositories: { 'acme/shop': { environments: [{ name: 'Prod' }] } },
          }),
        }),
      );
    expect(parse).toThrow(
      /^--param settings is invalid at repositories\.acme\/shop\.environments\.0\.name: lower-case/,
    );
  });

  it('names the --param and the field of a value its schema refuses', () => {
    const parse = () =>
      functionConfiguration(withEnvironment({ STEPLINE_SETTINGS: '{"environments":[{"name":""}]}' }));
    expect(parse).toThrow(ConfigurationError);
    expect(parse).toThrow(/^--param settings is invalid at environments\.0\.name: /);
    expect(parse).not.toThrow(/STEPLINE_SETTINGS/);
  });

  it('names the --param of a value that is not JSON', () => {
    expect(() => functionConfiguration(withEnvironment({ STEPLINE_TRIGGERS: '{push:' }))).toThrow(
      /^--param triggers is not valid JSON: /,
    );
  });
});

describe('the registry of local functions', () => {
  it('refuses a function it has no factory for, naming it', () => {
    expect(() =>
      registeredFunctions([
        aFunction('webhook', 'functions/webhook.ts'),
        aFunction('audit', 'functions/audit.ts'),
      ]),
    ).toThrow(
      new ConfigurationError(
        'serverless.yml declares function audit (functions/audit.ts), which the local mode cannot run: ' +
          'register its handler factory in local/lambda/registry.ts',
      ),
    );
  });

  it('refuses a function whose Lambda module is not the registered one', () => {
    expect(() => registeredFunctions([aFunction('notify', 'functions/other.ts')])).toThrow(
      /runs function notify from functions\/other\.ts, but .* registers functions\/notify\.ts/,
    );
  });
});

describe('the local Lambda host', () => {
  const notify = aFunction('notify', 'functions/notify.ts');

  function hostWith(functions: LocalFunction[]) {
    const lambda = new LocalLambda(functions);
    const published: { notification: Notification; run: string | undefined }[] = [];
    for (const [key, handler] of composeHandlers(functions, portsPublishingTo(published, lambda)))
      lambda.register(key, handler);
    return { lambda, published };
  }

  it('invokes a function by ARN and attributes what it publishes to the run of its payload', async () => {
    const { lambda, published } = hostWith([notify]);
    await lambda.invoke({
      FunctionName: `arn:aws:lambda:us-east-1:000000000000:function:${notify.name}`,
      Payload: { kind: 'succeeded', executionArn: EXECUTION_ARN, push: aPush(), deployed: ['dev'] },
    });
    expect(published).toHaveLength(1);
    expect(published[0]?.run).toBe(EXECUTION_ARN);
  });

  it("names a function's error as Step Functions does: its name, and Lambda's error JSON", async () => {
    const { lambda, published } = hostWith([notify]);
    const failure = await lambda.invoke({ FunctionName: notify.name, Payload: { kind: 'nonsense' } }).then(
      () => undefined,
      (error: Error) => error,
    );
    expect(failure?.name).toBe('InvalidInputError');
    expect(JSON.parse(failure?.message ?? '{}')).toMatchObject({ errorType: 'InvalidInputError' });
    expect(published).toEqual([]);
  });

  it('answers an unknown function with ResourceNotFoundException', async () => {
    const { lambda } = hostWith([notify]);
    await expect(lambda.invoke({ FunctionName: 'nobody' })).rejects.toMatchObject({
      name: 'Lambda.ResourceNotFoundException',
    });
  });

  it('finds the function of an HTTP route and decodes its parameters', () => {
    const approval = aFunction('approval', 'functions/approval.ts', {
      http: [{ method: 'GET', path: '/approvals/{token}' }],
    });
    const { lambda } = hostWith([approval]);
    expect(lambda.route('get', '/approvals/a%2Fb')).toMatchObject({ fn: approval, params: { token: 'a/b' } });
    expect(lambda.route('POST', '/webhooks/github')).toBeUndefined();
  });

  it('refuses malformed percent-encoding in a path parameter as the caller’s mistake', () => {
    expect(() => matchRoute('/webhooks/{provider}', '/webhooks/%E0%A4%A')).toThrow(InvalidInputError);
  });
});

describe('the local default bus', () => {
  const buildEvents = aFunction('buildEvents', 'functions/build-events.ts', {
    eventBridge: [{ source: ['aws.codebuild'] }],
  });
  const pipelineEvents = aFunction('pipelineEvents', 'functions/pipeline-events.ts', {
    eventBridge: [{ source: ['aws.states'] }],
  });

  it('delivers an event to the functions whose pattern matches, for the run it is about', async () => {
    const delivered: string[] = [];
    const bus = new LocalEventBus([buildEvents, pipelineEvents], async (fn, _event, run) => {
      delivered.push(`${fn.key}@${run}`);
    });
    await bus.putEvent({ source: 'aws.codebuild', 'detail-type': 'CodeBuild Build State Change' }, 'run-1');
    expect(delivered).toEqual(['buildEvents@run-1']);
  });

  it("reports a target's failure without failing the put or the other targets", async () => {
    const failures: string[] = [];
    const both = { ...pipelineEvents, eventBridge: [{ source: ['aws.codebuild'] }] };
    const delivered: string[] = [];
    const bus = new LocalEventBus(
      [buildEvents, both],
      async (fn) => {
        if (fn.key === 'buildEvents') throw new Error('boom');
        delivered.push(fn.key);
      },
      (fn, _event, error) => failures.push(`${fn.key}: ${error.message}`),
    );
    await bus.putEvent({ source: 'aws.codebuild' });
    expect(delivered).toEqual(['pipelineEvents']);
    expect(failures).toEqual(['buildEvents: boom']);
  });
});

describe('LocalRuntime.start', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function wiringOf(functions: LocalFunction[]): Wiring {
    return {
      service: 'stepline',
      stage: 'local',
      region: 'us-east-1',
      functions,
      machines: {},
      buildTimeouts: {},
    };
  }

  it('fails naming the --param before it opens the state folder', async () => {
    dir = await mkdtemp(join(tmpdir(), 'stepline-lambda-'));
    const start = LocalRuntime.start({
      projectDir: dir,
      stateDir: join(dir, 'state'),
      baseUrl: 'http://127.0.0.1:0',
      wiring: wiringOf([
        aFunction('webhook', 'functions/webhook.ts', {
          environment: { STEPLINE_SETTINGS: '{"environments":[]}' },
        }),
      ]),
    });
    await expect(start).rejects.toThrow(/^--param settings is invalid at environments: /);
    expect(await readdir(dir)).toEqual([]);
  });

  it('fails naming a function serverless.yml declares and the registry does not know', async () => {
    dir = await mkdtemp(join(tmpdir(), 'stepline-lambda-'));
    const start = LocalRuntime.start({
      projectDir: dir,
      stateDir: join(dir, 'state'),
      baseUrl: 'http://127.0.0.1:0',
      wiring: wiringOf([aFunction('audit', 'functions/audit.ts')]),
    });
    await expect(start).rejects.toThrow(/declares function audit \(functions\/audit\.ts\)/);
  });
});
