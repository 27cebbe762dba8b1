import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SnsNotifier } from '#shared/aws/sns.ts';
import { InvalidInputError, StageFailedError } from '#shared/errors.ts';
import { createNotifyHandler } from '#shared/handlers/notify.ts';
import { createLogger } from '#shared/logger.ts';
import { aPush, aPushTo } from '../helpers/push.ts';

const EXECUTION_ARN = 'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-1';
const CONSOLE_LINK = `https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/${EXECUTION_ARN}`;
const DEEP_LINK =
  'https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logEvent:group=/aws/codebuild/stepline-test-deploy;stream=5b0c1d2e';

const { TOPIC_ARN } = vi.hoisted(() => {
  const settings = { TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:stepline-test-notifications' };
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
  return settings;
});
afterAll(() => {
  vi.unstubAllEnvs();
});

const sns = mockClient(SNSClient);
const handler = createNotifyHandler({
  notifier: new SnsNotifier(new SNSClient({}), { notifications: TOPIC_ARN, approvals: '' }),
  logger: createLogger('notify'),
  region: 'eu-west-1',
});

beforeEach(() => {
  sns.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
});

const context = {
  functionName: 'stepline-test-notify',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:stepline-test-notify',
  memoryLimitInMB: '256',
  awsRequestId: 'request-1',
  logGroupName: '/aws/lambda/stepline-test-notify',
  logStreamName: 'stream',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 30_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
} satisfies Context;

const decision = {
  approved: true,
  approver: 'Alice',
  comment: 'Ship it',
  decidedAt: '2024-05-01T10:00:00.000Z',
  sourceIp: '203.0.113.9',
};

/** The build JSON Step Functions puts in the cause of a failed `codebuild:startBuild.sync` task. */
const buildCause = JSON.stringify({
  Arn: 'arn:aws:codebuild:eu-west-1:123456789012:build/stepline-test-deploy:5b0c1d2e',
  Id: 'stepline-test-deploy:5b0c1d2e',
  BuildNumber: 7.0,
  BuildStatus: 'FAILED',
  ProjectName: 'stepline-test-deploy',
  Environment: {
    EnvironmentVariables: [
      { Name: 'STEPLINE_ENVIRONMENT', Type: 'PLAINTEXT', Value: 'dev' },
      { Name: 'REGISTRY_TOKEN', Type: 'PLAINTEXT', Value: 'plaintext-token-value' },
    ],
  },
  Logs: { DeepLink: DEEP_LINK, GroupName: '/aws/codebuild/stepline-test-deploy', StreamName: '5b0c1d2e' },
  Phases: [
    { PhaseType: 'SUBMITTED', PhaseStatus: 'SUCCEEDED', DurationInSeconds: 0 },
    {
      PhaseType: 'POST_BUILD',
      PhaseStatus: 'FAILED',
      DurationInSeconds: 31.0,
      Contexts: [
        { StatusCode: 'COMMAND_EXECUTION_ERROR', Message: 'Error while executing command: ./deploy.sh' },
      ],
    },
    { PhaseType: 'COMPLETED' },
  ],
});

function published() {
  return sns.commandCalls(PublishCommand).map((call) => call.args[0].input);
}

describe('notify', () => {
  it.each([
    [
      'succeeded',
      {
        deployed: ['dev', 'prod'],
        imageUri: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:2222222',
        approvals: [decision],
      },
      '✔ acme/shop main deployed to dev, prod',
    ],
    [
      'failed',
      { stage: 'dev: Deploy', error: 'States.TaskFailed', cause: buildCause },
      '✖ acme/shop main failed at dev: Deploy',
    ],
    [
      'rejected',
      { environment: 'prod', decision: { ...decision, approved: false, approver: 'Bob' } },
      'Rejected: acme/shop main for prod by Bob',
    ],
    ['expired', { environment: 'prod' }, 'Approval expired: acme/shop main for prod'],
  ])('publishes one %s notification to the notifications topic', async (kind, fields, subject) => {
    await handler({ kind, executionArn: EXECUTION_ARN, push: aPush(), ...fields }, context);

    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(sns).toHaveReceivedCommandWith(PublishCommand, { TopicArn: TOPIC_ARN, Subject: subject });
    expect(published()[0]?.Message).toContain(`Execution: ${CONSOLE_LINK}`);
  });

  it('shows the failed phase and build log of a failed build, not its JSON', async () => {
    await handler(
      {
        kind: 'failed',
        executionArn: EXECUTION_ARN,
        push: aPush(),
        stage: 'dev: Deploy',
        error: 'States.TaskFailed',
        cause: buildCause,
      },
      context,
    );

    const body = published()[0]?.Message ?? '';
    expect(body).toContain(`Build log: ${DEEP_LINK}`);
    expect(body).toContain('Failed phase: POST_BUILD (FAILED)');
    expect(body).toContain('COMMAND_EXECUTION_ERROR: Error while executing command: ./deploy.sh');
    expect(body).not.toContain('{');
    expect(body).not.toContain('plaintext-token-value');
  });

  it('keeps the subject within 100 characters for a 300-character branch name', async () => {
    const branch = `release/${'b'.repeat(292)}`;

    await handler(
      {
        kind: 'succeeded',
        executionArn: EXECUTION_ARN,
        push: aPushTo('branch', branch),
        deployed: ['dev', 'qa', 'prod'],
        approvals: [],
      },
      context,
    );

    const subject = published()[0]?.Subject ?? '';
    expect(Array.from(subject).length).toBeLessThanOrEqual(100);
    expect(subject.startsWith('✔ acme/shop release/bbb')).toBe(true);
    expect(subject.endsWith('deployed to dev, qa, prod')).toBe(true);
  });

  it('never puts a task token, signature or other field it does not know into the notification', async () => {
    const payload = {
      kind: 'rejected',
      executionArn: EXECUTION_ARN,
      taskToken: 'AQCEAAAAKgAAAAMAAAAAAAAAAV-task-token',
      signature: 'sha256=5f2b-signature',
      push: { ...aPush(), webhookSecret: 'webhook-secret-value' },
      environment: 'prod',
      decision: { ...decision, approved: false, token: 'approval-link-token' },
    };

    await handler(payload, context);

    const { Subject, Message } = published()[0] ?? {};
    const text = `${Subject}\n${Message}`;
    for (const secret of [
      'AQCEAAAAKgAAAAMAAAAAAAAAAV-task-token',
      'sha256=5f2b-signature',
      'webhook-secret-value',
      'approval-link-token',
    ]) {
      expect(text).not.toContain(secret);
    }
  });

  it('throws a named error and publishes nothing for a malformed request', async () => {
    const outcome = handler({ kind: 'deployed', executionArn: EXECUTION_ARN }, context);

    await expect(outcome).rejects.toBeInstanceOf(InvalidInputError);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
  });
});

describe('notify, for a failed stage that ends the run', () => {
  const failedStage = (redrive: { failedIn: number; current: number }) => ({
    kind: 'failed',
    executionArn: EXECUTION_ARN,
    push: aPush(),
    stage: 'prod: Deploy',
    error: 'States.TaskFailed',
    cause: buildCause,
    attempt: { number: 3, of: 3 },
    redrive,
  });

  it('publishes the failure, then throws Pipeline.StageFailed so that the run fails at this task', async () => {
    const outcome = handler(failedStage({ failedIn: 0, current: 0 }), context);

    await expect(outcome).rejects.toMatchObject({ name: 'Pipeline.StageFailed' });
    await expect(outcome).rejects.toBeInstanceOf(StageFailedError);
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(published()[0]?.Message).toContain('Attempts: failed on attempt 3 of 3');
  });

  it('still throws the stage failure when the notification cannot be published', async () => {
    sns.on(PublishCommand).rejects(new Error('SNS is down'));

    await expect(handler(failedStage({ failedIn: 1, current: 1 }), context)).rejects.toMatchObject({
      name: 'Pipeline.StageFailed',
    });
  });

  it('in a redrive of the run, publishes nothing and returns, so that the stage runs again', async () => {
    await expect(handler(failedStage({ failedIn: 0, current: 1 }), context)).resolves.toBeUndefined();

    expect(sns).not.toHaveReceivedCommand(PublishCommand);
  });
});
