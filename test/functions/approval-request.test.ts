import { randomBytes } from 'node:crypto';
import { ListSubscriptionsByTopicCommand, PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { COMMIT_MESSAGE_MAX_LENGTH, openApprovalLink } from '#shared/approval.ts';
import { SnsNotifier, SnsSubscriberCounter } from '#shared/aws/sns.ts';
import {
  createApprovalRequestHandler,
  SUBSCRIBER_CHECK_INTERVAL_MS,
} from '#shared/handlers/approval-request.ts';
import { createLogger } from '#shared/logger.ts';
import type { ApprovalRequest, TestOutcome } from '#shared/pipeline.ts';
import { lambdaContext } from '../helpers/lambda.ts';

const KEY = 'approval-key-for-tests-0123456789';
const TOPIC_ARN = 'arn:aws:sns:eu-west-1:123456789012:stepline-test-approvals';
const BASE_URL = 'https://abc123.execute-api.eu-west-1.amazonaws.com/approvals';
const sns = mockClient(SNSClient);

type Handler = (event: unknown, context: unknown) => Promise<unknown>;
let handler: Handler;

beforeAll(() => {
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'INFO');
  handler = createApprovalRequestHandler({
    notifier: new SnsNotifier(new SNSClient({}), { approvals: TOPIC_ARN, notifications: '' }),
    approvalKey: async () => KEY,
    baseUrl: BASE_URL,
    logger: createLogger('approvalRequest'),
    now: () => new Date(),
  }) as unknown as Handler;
});

let logged: string[];
beforeEach(() => {
  sns.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  logged = [];
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      logged.push(String(chunk));
      return true;
    });
  }
});
afterEach(() => {
  vi.restoreAllMocks();
});

function gatePayload(): ApprovalRequest {
  return {
    // Shaped like a Step Functions task token: base64 of binary, 1024 characters.
    taskToken: randomBytes(768).toString('base64'),
    executionArn:
      'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:github-octo-app-b2c3d4e',
    enteredAt: new Date(Date.now() - 60_000).toISOString(),
    timeoutSeconds: 3600,
    environment: 'prod',
    push: {
      provider: 'github',
      repository: {
        fullName: 'octo/app',
        cloneUrl: 'https://github.com/octo/app.git',
        defaultBranch: 'main',
      },
      ref: 'refs/heads/main',
      refType: 'branch',
      refName: 'main',
      before: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678',
      after: 'b2c3d4e5f60718293a4b5c6d7e8f901234567890',
      created: false,
      deleted: false,
      forced: false,
      pusher: 'octocat',
      headCommitMessage: 'Fix the login redirect',
      changedFiles: ['src/login.ts'],
      commitsTruncated: false,
    },
    passed: ['Infrastructure', 'Image', 'dev: Deploy'],
    imageUri: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:b2c3d4e',
  };
}

function publishedMessage(): { Subject: string; Message: string; TopicArn: string } {
  const call = sns.commandCalls(PublishCommand)[0];
  expect(call).toBeDefined();
  return call?.args[0].input as { Subject: string; Message: string; TopicArn: string };
}

function linkFrom(message: string, label: 'Approve' | 'Reject'): string {
  const match = new RegExp(`^${label}: +(\\S+)$`, 'm').exec(message);
  expect(match).not.toBeNull();
  return match?.[1] ?? '';
}

describe('approvalRequest handler', () => {
  it('publishes one message to the approvals topic with both links and what waits for approval', async () => {
    const payload = gatePayload();

    const result = await handler(payload, lambdaContext('stepline-test-approvalRequest'));

    expect(result ?? undefined).toBeUndefined();
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    const { TopicArn, Subject, Message } = publishedMessage();
    expect(TopicArn).toBe(TOPIC_ARN);
    expect(Subject).toBe('Approve prod: octo/app main @ b2c3d4e');
    const deadline = new Date(Math.floor(Date.parse(payload.enteredAt) / 1000) * 1000 + 3600_000);
    for (const text of [
      'octo/app',
      'main',
      'b2c3d4e',
      'Fix the login redirect',
      'prod',
      deadline.toISOString(),
    ]) {
      expect(Message).toContain(text);
    }
    expect(Message).toContain('These links act for whoever holds them');
  });

  it('puts both links before any pushed text, names the clone URL, and bounds the commit message', async () => {
    const payload = gatePayload();
    const lookalike = `Approve: https://approve.example/${'x'.repeat(40)}`;
    payload.push.headCommitMessage = `Urgent fix\n\n${lookalike}\n${'padding line\n'.repeat(400)}`;
    await handler(payload, lambdaContext());
    const { Message } = publishedMessage();

    const lines = Message.split('\n');
    const approveLine = lines.indexOf(`Approve: ${linkFrom(Message, 'Approve')}`);
    const rejectLine = lines.findIndex((line) => line.startsWith('Reject:  '));
    const commitText = lines.findIndex((line) => line.includes('Urgent fix'));
    expect(approveLine).toBeGreaterThan(0);
    expect(rejectLine).toBeGreaterThan(approveLine);
    expect(commitText).toBeGreaterThan(rejectLine);
    // The look-alike stays indented inside the commit message, after the real links.
    expect(lines.findIndex((line) => line.includes(lookalike))).toBeGreaterThan(commitText);
    expect(lines.filter((line) => line.startsWith('Approve: '))).toHaveLength(1);
    expect(Message).toContain('Built from:  https://github.com/octo/app.git');
    const shown = Message.slice(Message.indexOf('Commit message'));
    expect(shown.replace(/\n {4}/g, '\n').length).toBeLessThan(COMMIT_MESSAGE_MAX_LENGTH + 100);
    expect(shown).toContain('…');
  });

  it('sends links that open to approve and reject this very task', async () => {
    const payload = gatePayload();
    await handler(payload, lambdaContext());
    const { Message } = publishedMessage();

    const approve = linkFrom(Message, 'Approve');
    const reject = linkFrom(Message, 'Reject');

    expect(approve.startsWith(`${BASE_URL}/`)).toBe(true);
    const opened = [approve, reject].map((url) =>
      openApprovalLink(url.slice(BASE_URL.length + 1), KEY, new Date()),
    );
    expect(opened.map((link) => [link.action, link.taskToken, link.executionArn])).toEqual([
      ['approve', payload.taskToken, payload.executionArn],
      ['reject', payload.taskToken, payload.executionArn],
    ]);
  });

  it('never puts the task token in the message, its subject or a log line', async () => {
    const payload = gatePayload();
    await handler(payload, lambdaContext());
    const { Subject, Message } = publishedMessage();

    expect(Message).not.toContain(payload.taskToken);
    expect(Subject).not.toContain(payload.taskToken);
    expect(logged.join('')).toContain(payload.executionArn);
    expect(logged.join('')).not.toContain(payload.taskToken.slice(0, 40));
  });

  it('throws on a bad payload and publishes nothing', async () => {
    const { push: _, ...withoutPush } = gatePayload();

    await expect(handler(withoutPush, lambdaContext())).rejects.toThrow(
      /approval request is invalid at push/,
    );
    await expect(handler({ ...gatePayload(), timeoutSeconds: -1 }, lambdaContext())).rejects.toThrow(
      /timeoutSeconds/,
    );
    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 0);
  });

  it('lets a failed publish fail the task', async () => {
    sns.on(PublishCommand).rejects(new Error('Topic does not exist'));
    await expect(handler(gatePayload(), lambdaContext())).rejects.toThrow('Topic does not exist');
  });
});

describe('approvalRequest handler: nobody confirmed the approvals subscription', () => {
  let clock: number;
  function handlerCountingSubscribers(): Handler {
    const client = new SNSClient({});
    return createApprovalRequestHandler({
      notifier: new SnsNotifier(client, { approvals: TOPIC_ARN, notifications: '' }),
      subscribers: new SnsSubscriberCounter(client, TOPIC_ARN),
      approvalKey: async () => KEY,
      baseUrl: BASE_URL,
      logger: createLogger('approvalRequest'),
      now: () => new Date(clock),
    }) as unknown as Handler;
  }
  const subscription = (arn: string) => ({ SubscriptionArn: arn, Protocol: 'email', TopicArn: TOPIC_ARN });
  const warnings = () => logged.filter((line) => line.includes('no confirmed subscriber'));

  beforeEach(() => {
    clock = Date.now();
  });

  it('logs a warning when every subscription is pending confirmation, and still sends the request', async () => {
    sns
      .on(ListSubscriptionsByTopicCommand)
      .resolves({ Subscriptions: [subscription('PendingConfirmation')] });
    await handlerCountingSubscribers()(gatePayload(), lambdaContext());

    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(sns).toHaveReceivedCommandWith(ListSubscriptionsByTopicCommand, { TopicArn: TOPIC_ARN });
    expect(warnings()).toHaveLength(1);
    expect(JSON.parse(warnings()[0] ?? '{}')).toMatchObject({ level: 'WARN', pendingSubscriptions: 1 });
  });

  it('says nothing when one subscription on any page is confirmed', async () => {
    sns
      .on(ListSubscriptionsByTopicCommand)
      .resolvesOnce({ Subscriptions: [subscription('PendingConfirmation')], NextToken: 'page-2' })
      .resolvesOnce({ Subscriptions: [subscription(`${TOPIC_ARN}:0f1e2d3c-aaaa-bbbb-cccc-1234567890ab`)] });
    await handlerCountingSubscribers()(gatePayload(), lambdaContext());

    expect(sns).toHaveReceivedCommandTimes(ListSubscriptionsByTopicCommand, 2);
    expect(warnings()).toEqual([]);
  });

  it('sends the request when the subscribers cannot be counted', async () => {
    sns
      .on(ListSubscriptionsByTopicCommand)
      .rejects(Object.assign(new Error('denied'), { name: 'AuthorizationError' }));
    await expect(handlerCountingSubscribers()(gatePayload(), lambdaContext())).resolves.toBeUndefined();

    expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
    expect(logged.some((line) => line.includes('Could not count the approvals topic subscribers'))).toBe(
      true,
    );
  });

  it('counts at most once per interval in a warm container', async () => {
    sns.on(ListSubscriptionsByTopicCommand).resolves({ Subscriptions: [] });
    const warm = handlerCountingSubscribers();
    await warm(gatePayload(), lambdaContext());
    await warm(gatePayload(), lambdaContext());
    expect(sns).toHaveReceivedCommandTimes(ListSubscriptionsByTopicCommand, 1);

    clock += SUBSCRIBER_CHECK_INTERVAL_MS;
    await warm(gatePayload(), lambdaContext());
    expect(sns).toHaveReceivedCommandTimes(ListSubscriptionsByTopicCommand, 2);
  });
});

describe('approvalRequest handler with the run’s Test outcome', () => {
  const withTests = (of: () => Promise<TestOutcome | undefined>) =>
    createApprovalRequestHandler({
      notifier: new SnsNotifier(new SNSClient({}), { approvals: TOPIC_ARN, notifications: '' }),
      approvalKey: async () => KEY,
      baseUrl: BASE_URL,
      logger: createLogger('approvalRequest'),
      now: () => new Date(),
      testOutcomes: { of },
    }) as unknown as Handler;
  const reports = (counts: Record<string, number>) => ({
    reports: [
      { Arn: 'arn:report', Read: { Reports: [{ TestSummary: { StatusCounts: counts } }] }, Failed: {} },
    ],
  });

  it('lists the Test stage first among what passed, with its counts', async () => {
    await withTests(async () => reports({ SUCCEEDED: 12, SKIPPED: 1 }))(gatePayload(), lambdaContext());

    expect(publishedMessage().Message).toMatch(
      /^Passed: +Test \(12 passed, 1 skipped\), Infrastructure, Image, dev: Deploy$/m,
    );
  });

  it('lists Test without counts when it named no reports, and nothing more when it was skipped', async () => {
    await withTests(async () => ({ reports: [] }))(gatePayload(), lambdaContext());
    expect(publishedMessage().Message).toMatch(/^Passed: +Test, Infrastructure, Image, dev: Deploy$/m);

    sns.resetHistory();
    await withTests(async () => ({ skipped: true }))(gatePayload(), lambdaContext());
    expect(publishedMessage().Message).toMatch(/^Passed: +Infrastructure, Image, dev: Deploy$/m);
  });

  it('still asks for approval when the Test outcome cannot be read, listing the other stages', async () => {
    await withTests(async () => {
      throw Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
    })(gatePayload(), lambdaContext());

    expect(publishedMessage().Message).toMatch(/^Passed: +Infrastructure, Image, dev: Deploy$/m);
    expect(logged.join('')).toContain('AccessDeniedException');
  });
});
