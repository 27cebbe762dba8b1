import { readFileSync } from 'node:fs';
import { DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DynamoLineStore } from '#shared/aws/dynamodb.ts';
import { EventBridgeMilestoneEmitter } from '#shared/aws/eventbridge.ts';
import { SfnExecutionStopper, SfnTaskDecider } from '#shared/aws/sfn.ts';
import { SnsNotifier } from '#shared/aws/sns.ts';
import { createPipelineEventsHandler } from '#shared/handlers/pipeline-events.ts';
import { createLogger } from '#shared/logger.ts';
import type { ExecutionInput } from '#shared/pipeline.ts';
import { type LineState, lineOf } from '#shared/release.ts';
import { ReleaseLedger } from '#shared/release-ledger.ts';
import { aPush } from '../helpers/push.ts';

const EXECUTION_ARN = 'arn:aws:states:us-east-1:012345678912:execution:state-machine-name:execution-name';
const CONSOLE_LINK = `https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/${EXECUTION_ARN}`;

const { STATE_MACHINE_ARN, TOPIC_ARN, BUS_NAME } = vi.hoisted(() => {
  const settings = {
    // The fixtures' state machine.
    STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:012345678912:stateMachine:state-machine',
    TOPIC_ARN: 'arn:aws:sns:us-east-1:012345678912:stepline-test-notifications',
    BUS_NAME: 'stepline-test',
  };
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
  return settings;
});
afterAll(() => {
  vi.unstubAllEnvs();
});

const sns = mockClient(SNSClient);
const eventBridge = mockClient(EventBridgeClient);
const dynamo = mockClient(DynamoDBClient);
const sfn = mockClient(SFNClient);
const notifier = new SnsNotifier(new SNSClient({}), { notifications: TOPIC_ARN, approvals: '' });
const handler = createPipelineEventsHandler({
  notifier,
  emitter: new EventBridgeMilestoneEmitter(new EventBridgeClient({}), BUS_NAME),
  ledger: new ReleaseLedger({
    store: new DynamoLineStore(new DynamoDBClient({}), 'stepline-test-release'),
    decider: new SfnTaskDecider(new SFNClient({})),
    stopper: new SfnExecutionStopper(new SFNClient({})),
    notifier,
    logger: createLogger('pipelineEvents'),
  }),
  logger: createLogger('pipelineEvents'),
  region: 'us-east-1',
  stateMachineArn: STATE_MACHINE_ARN,
});

beforeEach(() => {
  sns.reset();
  eventBridge.reset();
  dynamo.reset();
  sfn.reset();
  dynamo.on(GetItemCommand).resolves({});
  dynamo.on(UpdateItemCommand).resolves({});
  sfn.on(SendTaskSuccessCommand).resolves({});
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] });
});

const context = {
  functionName: 'stepline-test-pipelineEvents',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:012345678912:function:stepline-test-pipelineEvents',
  memoryLimitInMB: '256',
  awsRequestId: 'request-1',
  logGroupName: '/aws/lambda/stepline-test-pipelineEvents',
  logStreamName: 'stream',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 30_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
} satisfies Context;

type Json = Record<string, unknown>;

function fixture(status: string): Json {
  const index = ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'].indexOf(status);
  const file = `awsdocs-sfn.0${index}.Step-Functions-Execution-Status-Change.${status}.json`;
  return JSON.parse(readFileSync(new URL(`../fixtures/aws-events/${file}`, import.meta.url), 'utf8'));
}

/** The fixture with its `detail` fields replaced. */
function withDetail(event: Json, fields: Json): Json {
  return { ...event, detail: { ...(event.detail as Json), ...fields } };
}

const executionInput: ExecutionInput = {
  push: aPush(),
  pullRequest: null,
  deliveryId: '72d3162e-cc78-11e3-81ab-4c9367dc0958',
  sequence: 4,
  source: {
    type: 'GITHUB',
    location: 'https://github.com/acme/shop.git',
    version: '2222222222222222222222222222222222222222',
  },
  settings: {
    environments: [
      { name: 'dev', approval: false },
      { name: 'prod', approval: true },
    ],
    buildspecs: {
      test: 'buildspecs/test.yml',
      infrastructure: 'buildspecs/infrastructure.yml',
      image: 'buildspecs/image.yml',
      deploy: 'buildspecs/deploy.yml',
    },
    test: true,
    pullRequests: { image: false },
    approvalTimeoutSeconds: 86_400,
    executionMode: 'QUEUED',
    retries: { test: 0, image: 0, infrastructure: 0, deploy: 0 },
  },
};

function milestones() {
  return eventBridge.commandCalls(PutEventsCommand).flatMap((call) =>
    (call.args[0].input.Entries ?? []).map((entry) => ({
      source: entry.Source,
      busName: entry.EventBusName,
      detailType: entry.DetailType,
      detail: JSON.parse(entry.Detail ?? 'null'),
    })),
  );
}

function published() {
  return sns.commandCalls(PublishCommand).map((call) => call.args[0].input);
}

const timings = {
  RUNNING: { startedAt: '2019-02-26T23:54:31.984Z', stoppedAt: null, duration: null },
  SUCCEEDED: { startedAt: '2019-01-10T19:34:00.101Z', stoppedAt: '2019-01-10T19:34:00.122Z', duration: 0 },
  FAILED: { startedAt: '2019-02-26T23:52:26.847Z', stoppedAt: '2019-02-26T23:52:31.881Z', duration: 5 },
  TIMED_OUT: { startedAt: '2019-02-26T23:48:46.156Z', stoppedAt: '2019-02-26T23:48:47.157Z', duration: 1 },
  ABORTED: { startedAt: '2019-02-26T23:50:14.968Z', stoppedAt: '2019-02-26T23:50:17.576Z', duration: 3 },
} as const;

describe('pipelineEvents', () => {
  it.each(Object.entries(timings))('emits a milestone for a %s execution', async (status, timing) => {
    await handler(fixture(status), context);

    expect(milestones()).toEqual([
      {
        source: 'stepline',
        busName: BUS_NAME,
        detailType: 'Pipeline Execution Status Change',
        detail: {
          executionArn: EXECUTION_ARN,
          name: 'execution-name',
          status,
          // The fixtures' input is `{}`: not a pipeline input.
          repository: null,
          ref: null,
          commit: null,
          ...timing,
          redriveCount: 0,
        },
      },
    ]);
  });

  it.each(['RUNNING', 'ABORTED', 'TIMED_OUT'])('notifies a %s execution', async (status) => {
    await handler(fixture(status), context);

    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    const [message] = published();
    expect(message?.TopicArn).toBe(TOPIC_ARN);
    expect(Array.from(message?.Subject ?? '').length).toBeLessThanOrEqual(100);
    expect(message?.Message).toContain(`Status: ${status}`);
    expect(message?.Message).toContain(`Execution: ${CONSOLE_LINK}`);
  });

  it.each(['SUCCEEDED', 'FAILED'])(
    'does not notify a %s execution, which the state machine notifies itself',
    async (status) => {
      await handler(fixture(status), context);

      expect(sns).not.toHaveReceivedCommand(PublishCommand);
      expect(eventBridge).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    },
  );

  it('announces a started run with its repository, branch, commit, message and pusher', async () => {
    const event = withDetail(fixture('RUNNING'), { input: JSON.stringify(executionInput) });

    await handler(event, context);

    const [message] = published();
    expect(message?.Subject).toBe('▶ acme/shop main started: 2222222 Fix the checkout');
    expect(message?.Message).toContain('Repository: acme/shop');
    expect(message?.Message).toContain('Branch: main');
    expect(message?.Message).toContain('Commit: 2222222 Fix the checkout');
    expect(message?.Message).toContain('Pushed by: octocat');
    expect(milestones()[0]?.detail).toMatchObject({
      repository: 'acme/shop',
      ref: 'refs/heads/main',
      commit: '2222222222222222222222222222222222222222',
    });
  });

  it.each([
    ['ABORTED', '■ acme/shop main aborted'],
    ['TIMED_OUT', '✖ acme/shop main timed out'],
  ])('reports a %s run of a push with its repository and duration', async (status, subject) => {
    const event = withDetail(fixture(status), { input: JSON.stringify(executionInput) });

    await handler(event, context);

    const [message] = published();
    expect(message?.Subject).toBe(subject);
    expect(message?.Message).toContain('Repository: acme/shop');
    expect(message?.Message).toContain('Commit: 2222222 Fix the checkout');
    expect(message?.Message).toContain(`Duration: ${timings[status as 'ABORTED' | 'TIMED_OUT'].duration}s`);
  });

  it('handles the fields newer events carry, showing the error and cause of an aborted run', async () => {
    const event = withDetail(fixture('ABORTED'), {
      input: JSON.stringify(executionInput),
      inputDetails: { included: true },
      redriveCount: 0,
      redriveDate: null,
      redriveStatus: 'NOT_REDRIVABLE',
      redriveStatusReason: 'Execution is ABORTED and cannot be redriven',
      stateMachineVersionArn: null,
      stateMachineAliasArn: null,
      error: 'Stopped',
      cause: 'Stopped by the release manager',
    });

    await handler(event, context);

    const [message] = published();
    expect(message?.Message).toContain('Error: Stopped');
    expect(message?.Message).toContain('Cause: Stopped by the release manager');
    expect(milestones()[0]?.detail).toMatchObject({ status: 'ABORTED', repository: 'acme/shop' });
  });

  it('takes a second RUNNING of the same name with a redrive count for the redrive of that run, not a new run', async () => {
    const first = withDetail(fixture('RUNNING'), { input: JSON.stringify(executionInput), redriveCount: 0 });
    // What Step Functions sends when the failed execution is redriven: same name and ARN, RUNNING again.
    const redriven = withDetail(fixture('RUNNING'), {
      input: JSON.stringify(executionInput),
      redriveCount: 1,
      redriveDate: 1551225400000,
      redriveStatus: 'REDRIVABLE',
    });

    await handler(first, context);
    await handler(redriven, context);

    expect(published().map((message) => message.Subject)).toEqual([
      '▶ acme/shop main started: 2222222 Fix the checkout',
      '↻ acme/shop main redriven: 2222222 Fix the checkout',
    ]);
    expect(milestones().map((m) => [m.detail.name, m.detail.status, m.detail.redriveCount])).toEqual([
      ['execution-name', 'RUNNING', 0],
      ['execution-name', 'RUNNING', 1],
    ]);
  });

  it.each([
    ['started by hand with another input', JSON.stringify({ hello: 'world' })],
    ['whose input is not JSON', 'not json'],
    ['whose input was too large to include', null],
  ])('still emits the milestone of an execution %s', async (_, input) => {
    const event = withDetail(fixture('TIMED_OUT'), { input });

    await handler(event, context);

    expect(milestones()[0]?.detail).toEqual({
      executionArn: EXECUTION_ARN,
      name: 'execution-name',
      status: 'TIMED_OUT',
      repository: null,
      ref: null,
      commit: null,
      ...timings.TIMED_OUT,
      redriveCount: 0,
    });
    expect(published()[0]?.Subject).toBe('✖ Pipeline run execution-name timed out');
  });

  it('ignores executions of another state machine', async () => {
    const event = withDetail(fixture('ABORTED'), {
      stateMachineArn: `${STATE_MACHINE_ARN}-other`,
      input: JSON.stringify(executionInput),
    });

    await handler(event, context);

    expect(sns).not.toHaveReceivedCommand(PublishCommand);
    expect(eventBridge).not.toHaveReceivedCommand(PutEventsCommand);
  });

  it('rejects an event that is not an execution status change, emitting nothing', async () => {
    const codeBuild = JSON.parse(
      readFileSync(
        new URL(
          '../fixtures/aws-events/functionci.CodeBuild-Build-State-Change.FAILED.json',
          import.meta.url,
        ),
        'utf8',
      ),
    );

    await expect(handler(codeBuild, context)).rejects.toThrow(/Not a Step Functions execution status change/);
    expect(eventBridge).not.toHaveReceivedCommand(PutEventsCommand);
  });
});

describe('pipelineEvents releases the holds of a run that ended', () => {
  const WAITING_ARN = EXECUTION_ARN.replace('execution-name', 'newer-run');
  const WAITING_TOKEN = 'token-of-the-run-waiting-for-prod';
  const line = lineOf(executionInput.push);
  /** The line as DynamoDB holds it: this run deploys prod, a newer one waits for it. */
  const stored: LineState = {
    line,
    runs: [
      {
        executionArn: EXECUTION_ARN,
        sequence: 4,
        commit: '2'.repeat(40),
        plan: executionInput.settings.environments,
        entered: ['dev', 'prod'],
        holding: 'prod',
        waiting: null,
      },
      {
        executionArn: WAITING_ARN,
        sequence: 5,
        commit: '3'.repeat(40),
        plan: executionInput.settings.environments,
        entered: ['dev'],
        holding: null,
        waiting: { environment: 'prod', taskToken: WAITING_TOKEN, since: '2019-02-26T23:50:00.000Z' },
      },
    ],
    environments: {
      dev: { holder: null, current: null },
      prod: {
        holder: {
          executionArn: EXECUTION_ARN,
          sequence: 4,
          commit: '2'.repeat(40),
          at: '2019-02-26T23:49:00.000Z',
        },
        current: null,
      },
    },
  };

  it.each(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'])(
    'hands prod to the run waiting next when the holder ends %s',
    async (status) => {
      dynamo.on(GetItemCommand).resolves({
        Item: { line: { S: line }, version: { N: '9' }, state: { S: JSON.stringify(stored) } },
      });

      await handler(withDetail(fixture(status), { input: JSON.stringify(executionInput) }), context);

      // One conditional write: version 9 was read, so version 9 must still be there.
      const writes = dynamo.commandCalls(UpdateItemCommand).map((call) => call.args[0].input);
      expect(writes).toHaveLength(1);
      expect(writes[0]).toMatchObject({
        TableName: 'stepline-test-release',
        Key: { line: { S: line } },
        ConditionExpression: '#version = :expected',
        ExpressionAttributeValues: expect.objectContaining({ ':expected': { N: '9' }, ':next': { N: '10' } }),
      });
      const written = JSON.parse(writes[0]?.ExpressionAttributeValues?.[':state']?.S ?? '{}') as LineState;
      expect(written.runs.map((run) => run.executionArn)).toEqual([WAITING_ARN]);
      expect(written.environments.prod?.holder?.executionArn).toBe(WAITING_ARN);
      expect(sfn).toHaveReceivedCommandWith(SendTaskSuccessCommand, { taskToken: WAITING_TOKEN });
    },
  );

  it('reads the line again when another writer came first', async () => {
    dynamo.on(GetItemCommand).resolves({
      Item: { line: { S: line }, version: { N: '9' }, state: { S: JSON.stringify(stored) } },
    });
    const { ConditionalCheckFailedException } = await import('@aws-sdk/client-dynamodb');
    dynamo
      .on(UpdateItemCommand)
      .rejectsOnce(
        new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
      )
      .resolves({});

    await handler(withDetail(fixture('ABORTED'), { input: JSON.stringify(executionInput) }), context);

    expect(dynamo).toHaveReceivedCommandTimes(GetItemCommand, 2);
    expect(dynamo).toHaveReceivedCommandTimes(UpdateItemCommand, 2);
    expect(sfn).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 1);
  });

  it('touches no line for a run that only started', async () => {
    await handler(withDetail(fixture('RUNNING'), { input: JSON.stringify(executionInput) }), context);

    expect(dynamo).toHaveReceivedCommandTimes(UpdateItemCommand, 0);
  });
});

describe('pipelineEvents on a run a newer push superseded', () => {
  const cause = 'Superseded by run-9 (push #9, commit 999999999999)';

  it('notifies which run superseded which, and says so in the milestone', async () => {
    await handler(
      withDetail(fixture('ABORTED'), {
        input: JSON.stringify(executionInput),
        error: 'Stepline.Superseded',
        cause,
      }),
      context,
    );

    const [message] = published();
    expect(message?.Subject).toContain('superseded by run-9');
    expect(message?.Message).toContain(`Cause: ${cause}`);
    expect(message?.Message).toContain('no longer decide anything');
    expect(milestones()[0]?.detail).toMatchObject({ status: 'ABORTED', supersededBy: 'run-9' });
  });

  it('keeps the plain "aborted" notification for a run stopped by hand', async () => {
    await handler(
      withDetail(fixture('ABORTED'), { error: 'Manual', cause: 'stopped from the console' }),
      context,
    );

    expect(published()[0]?.Subject).toContain('aborted');
    expect(milestones()[0]?.detail).not.toHaveProperty('supersededBy');
  });
});
