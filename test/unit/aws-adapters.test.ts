import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  SendTaskSuccessCommand,
  SFNClient,
  StartExecutionCommand,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { EventBridgeMilestoneEmitter } from '#shared/aws/eventbridge.ts';
import { SfnExecutionInputs, SfnPipelineStarter, SfnTaskDecider, SfnTestOutcomes } from '#shared/aws/sfn.ts';
import { SnsNotifier, snsSubject } from '#shared/aws/sns.ts';
import { SECRET_MIN_REFETCH_MS, SsmSecretReader } from '#shared/aws/ssm.ts';
import { TaskNoLongerWaitingError } from '#shared/errors.ts';
import type { PipelineInput } from '#shared/ports.ts';

const sfn = mockClient(SFNClient);
const ssm = mockClient(SSMClient);
const sns = mockClient(SNSClient);
const events = mockClient(EventBridgeClient);

beforeEach(() => {
  sfn.reset();
  ssm.reset();
  sns.reset();
  events.reset();
});

const input = { push: { provider: 'github' } } as unknown as PipelineInput;

describe('SfnPipelineStarter', () => {
  it('starts an execution with the given name and the input as JSON', async () => {
    sfn.on(StartExecutionCommand).resolves({ executionArn: 'arn:aws:states:eu-west-1:1:execution:p:n1' });
    const result = await new SfnPipelineStarter(new SFNClient({}), 'arn:sm').start({ name: 'n1', input });
    expect(result).toEqual({
      outcome: 'started',
      executionName: 'n1',
      executionArn: 'arn:aws:states:eu-west-1:1:execution:p:n1',
    });
    expect(sfn).toHaveReceivedCommandWith(StartExecutionCommand, {
      stateMachineArn: 'arn:sm',
      name: 'n1',
      input: JSON.stringify(input),
    });
  });

  it('reports an existing execution name as already started', async () => {
    sfn.on(StartExecutionCommand).rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    const result = await new SfnPipelineStarter(new SFNClient({}), 'arn:sm').start({ name: 'n1', input });
    expect(result).toEqual({ outcome: 'already-started', executionName: 'n1' });
  });

  it('lets other failures through', async () => {
    sfn.on(StartExecutionCommand).rejects(new Error('throttled'));
    await expect(
      new SfnPipelineStarter(new SFNClient({}), 'arn:sm').start({ name: 'n1', input }),
    ).rejects.toThrow('throttled');
  });
});

describe('SfnTaskDecider', () => {
  it('sends the output as JSON', async () => {
    sfn.on(SendTaskSuccessCommand).resolves({});
    await new SfnTaskDecider(new SFNClient({})).succeed('tok', { approved: true });
    expect(sfn).toHaveReceivedCommandWith(SendTaskSuccessCommand, {
      taskToken: 'tok',
      output: '{"approved":true}',
    });
  });

  it('names an expired or already decided token', async () => {
    sfn
      .on(SendTaskSuccessCommand)
      .rejectsOnce(new TaskTimedOut({ message: 'x', $metadata: {} }))
      .rejectsOnce(new TaskDoesNotExist({ message: 'x', $metadata: {} }));
    const decider = new SfnTaskDecider(new SFNClient({}));
    await expect(decider.succeed('tok', {})).rejects.toMatchObject({ reason: 'timed-out' });
    await expect(decider.succeed('tok', {})).rejects.toEqual(new TaskNoLongerWaitingError('not-waiting'));
  });
});

describe('SsmSecretReader', () => {
  it('reads a parameter once, decrypted, and serves later reads from memory', async () => {
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: 's3cret' } });
    const reader = new SsmSecretReader(new SSMClient({}));
    expect(await Promise.all([reader.read('/p'), reader.read('/p')])).toEqual(['s3cret', 's3cret']);
    expect(await reader.read('/p')).toBe('s3cret');
    expect(ssm).toHaveReceivedCommandTimes(GetParameterCommand, 1);
    expect(ssm).toHaveReceivedCommandWith(GetParameterCommand, { Name: '/p', WithDecryption: true });
  });

  it('reads a parameter again once it is older than the max age', async () => {
    let now = 0;
    ssm
      .on(GetParameterCommand)
      .resolvesOnce({ Parameter: { Value: 'v1' } })
      .resolves({ Parameter: { Value: 'v2' } });
    const reader = new SsmSecretReader(new SSMClient({}), { maxAgeMs: 60_000, now: () => now });
    expect(await reader.read('/p')).toBe('v1');
    now = 59_999;
    expect(await reader.read('/p')).toBe('v1');
    now = 60_000;
    expect(await reader.read('/p')).toBe('v2');
    expect(ssm).toHaveReceivedCommandTimes(GetParameterCommand, 2);
  });

  it('reads again when forced, but not twice within the minimum interval', async () => {
    let now = 0;
    ssm
      .on(GetParameterCommand)
      .resolvesOnce({ Parameter: { Value: 'v1' } })
      .resolves({ Parameter: { Value: 'v2' } });
    const reader = new SsmSecretReader(new SSMClient({}), { now: () => now });
    expect(await reader.read('/p')).toBe('v1');
    expect(await reader.read('/p', { forceFetch: true })).toBe('v1');
    now = SECRET_MIN_REFETCH_MS;
    expect(await reader.read('/p', { forceFetch: true })).toBe('v2');
    expect(await reader.read('/p')).toBe('v2');
    expect(ssm).toHaveReceivedCommandTimes(GetParameterCommand, 2);
  });

  it('does not cache a failed read', async () => {
    ssm
      .on(GetParameterCommand)
      .rejectsOnce(new Error('down'))
      .resolves({ Parameter: { Value: 'v' } });
    const reader = new SsmSecretReader(new SSMClient({}));
    await expect(reader.read('/p')).rejects.toThrow('down');
    expect(await reader.read('/p')).toBe('v');
  });
});

describe('SnsNotifier', () => {
  it('publishes to the topic of the notification, with a subject SNS email accepts', async () => {
    sns.on(PublishCommand).resolves({});
    const notifier = new SnsNotifier(new SNSClient({}), { approvals: 'arn:a', notifications: 'arn:n' });
    await notifier.publish({ topic: 'approvals', subject: `Approve\n${'x'.repeat(200)}`, body: 'b' });
    expect(sns).toHaveReceivedCommandWith(PublishCommand, { TopicArn: 'arn:a', Message: 'b' });
    const subject = sns.commandCalls(PublishCommand)[0]?.args[0].input.Subject ?? '';
    expect(Array.from(subject)).toHaveLength(99);
    expect(subject).not.toContain('\n');
  });

  it('keeps short subjects as they are', () => {
    expect(snsSubject('Run succeeded')).toBe('Run succeeded');
  });
});

describe('EventBridgeMilestoneEmitter', () => {
  it('puts the milestone on the bus with source stepline', async () => {
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 0 });
    await new EventBridgeMilestoneEmitter(new EventBridgeClient({}), 'bus').emit({
      detailType: 'Run Started',
      detail: { a: 1 },
    });
    expect(events).toHaveReceivedCommandWith(PutEventsCommand, {
      Entries: [{ EventBusName: 'bus', Source: 'stepline', DetailType: 'Run Started', Detail: '{"a":1}' }],
    });
  });

  it('fails when EventBridge refuses the entry', async () => {
    events.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'Throttling' }] });
    await expect(
      new EventBridgeMilestoneEmitter(new EventBridgeClient({}), 'bus').emit({ detailType: 'x', detail: {} }),
    ).rejects.toThrow(/Throttling/);
  });
});

describe('SfnExecutionInputs', () => {
  const arn = 'arn:aws:states:us-east-1:123456789012:execution:stepline-dev-pipeline:run-1';

  it('describes an execution: its input parsed, its status', async () => {
    sfn
      .on(DescribeExecutionCommand, { executionArn: arn })
      .resolves({ status: 'SUCCEEDED', input: '{"push":1}' } as never);
    await expect(new SfnExecutionInputs(new SFNClient({})).describe(arn)).resolves.toEqual({
      input: { push: 1 },
      status: 'SUCCEEDED',
    });
  });

  it('gives no input for one that is not JSON, and nothing for an execution that does not exist', async () => {
    sfn
      .on(DescribeExecutionCommand, { executionArn: arn })
      .resolves({ status: 'RUNNING', input: 'not json' } as never);
    sfn
      .on(DescribeExecutionCommand, { executionArn: `${arn}-gone` })
      .rejects(new ExecutionDoesNotExist({ message: 'Execution does not exist', $metadata: {} }));
    const inputs = new SfnExecutionInputs(new SFNClient({}));
    await expect(inputs.describe(arn)).resolves.toEqual({ input: undefined, status: 'RUNNING' });
    await expect(inputs.describe(`${arn}-gone`)).resolves.toBeUndefined();
  });
});

describe('SfnTestOutcomes', () => {
  const arn = 'arn:aws:states:us-east-1:123456789012:execution:stepline-dev-pipeline:run-1';
  const entered = (id: number, name: string, input: unknown) => ({
    id,
    type: 'ChoiceStateEntered',
    timestamp: new Date('2026-12-03T07:00:00Z'),
    stateEnteredEventDetails: { name, input: JSON.stringify(input) },
  });
  const outcome = {
    reports: [
      {
        Arn: 'arn:aws:codebuild:us-east-1:123456789012:report/stepline-dev-test-junit:1',
        Read: { Reports: [{ TestSummary: { StatusCounts: { SUCCEEDED: 12, SKIPPED: 1 } } }] },
        Failed: {},
      },
    ],
  };

  it('reads the Test outcome from the input of the state entered after the Test stage, paging no further', async () => {
    sfn
      .on(GetExecutionHistoryCommand, { executionArn: arn, nextToken: undefined })
      .resolves({
        events: [entered(2, 'Test enabled?', { test: { skipped: true } })],
        nextToken: 'page-2',
      } as never)
      .on(GetExecutionHistoryCommand, { executionArn: arn, nextToken: 'page-2' })
      .resolves({
        events: [entered(9, 'Pull request run?', { settings: {}, test: outcome })],
        nextToken: 'page-3',
      } as never);

    await expect(new SfnTestOutcomes(new SFNClient({})).of(arn)).resolves.toEqual(outcome);
    expect(sfn).toHaveReceivedCommandTimes(GetExecutionHistoryCommand, 2);
    expect(sfn).toHaveReceivedCommandWith(GetExecutionHistoryCommand, {
      executionArn: arn,
      includeExecutionData: true,
      reverseOrder: false,
    });
  });

  it('gives nothing when the history has not got there yet', async () => {
    sfn.on(GetExecutionHistoryCommand).resolves({ events: [entered(2, 'Test enabled?', {})] } as never);
    await expect(new SfnTestOutcomes(new SFNClient({})).of(arn)).resolves.toBeUndefined();
  });
});
