import { randomBytes } from 'node:crypto';
import {
  DescribeExecutionCommand,
  InvalidToken,
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  SFNClient,
  SFNServiceException,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { mintApprovalLinks } from '#shared/approval.ts';
import { SfnRunStatusReader, SfnTaskDecider } from '#shared/aws/sfn.ts';
import { createApprovalHandler } from '#shared/handlers/approval.ts';
import { createLogger } from '#shared/logger.ts';
import type { ApprovalRequest } from '#shared/pipeline.ts';
import { httpEvent, lambdaContext } from '../helpers/lambda.ts';

const KEY = 'approval-key-for-tests-0123456789';
const BASE_URL = 'https://abc123.execute-api.eu-west-1.amazonaws.com/approvals';
const NOW = new Date('2026-11-23T14:00:00.000Z');
const EXECUTION_ARN = 'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-1';
const sfn = mockClient(SFNClient);

type Handler = (event: unknown, context: unknown) => Promise<APIGatewayProxyStructuredResultV2>;
let handler: Handler;

beforeAll(() => {
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'INFO');
  handler = createApprovalHandler({
    decider: new SfnTaskDecider(new SFNClient({ region: 'eu-west-1' })),
    runs: new SfnRunStatusReader(new SFNClient({ region: 'eu-west-1' })),
    approvalKey: async () => KEY,
    logger: createLogger('approval'),
    now: () => new Date(),
  }) as unknown as Handler;
});

let logged: string[];
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(NOW);
  sfn.reset();
  sfn.on(SendTaskSuccessCommand).resolves({});
  sfn.on(SendTaskFailureCommand).resolves({});
  sfn.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' });
  logged = [];
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      logged.push(String(chunk));
      return true;
    });
  }
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const taskToken = randomBytes(768).toString('base64');

function links(overrides: Partial<ApprovalRequest> = {}) {
  const request: ApprovalRequest = {
    taskToken,
    executionArn: EXECUTION_ARN,
    enteredAt: new Date(NOW.getTime() - 3600_000).toISOString(),
    timeoutSeconds: 24 * 3600,
    environment: 'prod',
    push: {
      provider: 'github',
      repository: { fullName: 'octo/app', cloneUrl: 'https://github.com/octo/app.git' },
      ref: 'refs/heads/main',
      refType: 'branch',
      refName: 'main',
      before: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678',
      after: 'b2c3d4e5f60718293a4b5c6d7e8f901234567890',
      created: false,
      deleted: false,
      forced: false,
      headCommitMessage: '<script>alert("pwned")</script>',
      changedFiles: [],
      commitsTruncated: false,
    },
    passed: [],
    ...overrides,
  };
  const minted = mintApprovalLinks(request, KEY, BASE_URL);
  const segment = (url: string) => url.slice(BASE_URL.length + 1);
  return { approve: segment(minted.approve), reject: segment(minted.reject) };
}

function request(method: 'GET' | 'POST' | 'PUT', segment: string, body?: string, isBase64Encoded = false) {
  return handler(
    httpEvent({
      method,
      path: `/approvals/${segment}`,
      pathParameters: { token: segment },
      headers: body === undefined ? {} : { 'Content-Type': 'application/x-www-form-urlencoded' },
      ...(body === undefined ? {} : { body, isBase64Encoded }),
      sourceIp: '203.0.113.9',
    }),
    lambdaContext('stepline-test-approval'),
  );
}

function tamper(segment: string): string {
  const middle = Math.floor(segment.length / 2);
  return `${segment.slice(0, middle)}${segment[middle] === 'A' ? 'B' : 'A'}${segment.slice(middle + 1)}`;
}

function expectNothingSent() {
  expect(sfn).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 0);
  expect(sfn).toHaveReceivedCommandTimes(SendTaskFailureCommand, 0);
}

describe('GET /approvals/{token}', () => {
  it('shows the confirm form and decides nothing', async () => {
    const response = await request('GET', links().approve);

    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('<form method="post">');
    expect(response.body).toContain('<button type="submit">Approve</button>');
    for (const text of ['octo/app', 'branch main', 'b2c3d4e', 'prod']) expect(response.body).toContain(text);
    expectNothingSent();
  });

  it('escapes a commit message holding a script', async () => {
    const response = await request('GET', links().reject);

    expect(response.body).not.toContain('<script>');
    expect(response.body).toContain('&#60;script&#62;alert(&#34;pwned&#34;)&#60;/script&#62;');
    expect(response.body).toContain('<button type="submit">Reject</button>');
  });

  it('keeps the page out of caches, referrers and indexes, with a policy that allows no script', async () => {
    const response = await request('GET', links().approve);

    expect(response.headers).toMatchObject({
      'Cache-Control': 'no-store',
      'Referrer-Policy': 'no-referrer',
      'X-Robots-Tag': 'noindex, nofollow',
    });
    expect(response.headers?.['Content-Security-Policy']).toMatch(/^default-src 'none'/);
  });

  it('answers a tampered link with 403', async () => {
    const response = await request('GET', tamper(links().approve));

    expect(response.statusCode).toBe(403);
    expect(response.body).toContain('This approval link is not valid');
    expectNothingSent();
  });
});

describe('POST /approvals/{token}', () => {
  it('approves: SendTaskSuccess once, with the decision', async () => {
    const response = await request('POST', links().approve, 'name=+Ada+Lovelace+&comment=Ship+it');

    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('<h1>Approved</h1>');
    expect(sfn).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 1);
    expect(sfn).toHaveReceivedCommandTimes(SendTaskFailureCommand, 0);
    const input = sfn.commandCalls(SendTaskSuccessCommand)[0]?.args[0].input;
    expect(input?.taskToken).toBe(taskToken);
    expect(JSON.parse(input?.output ?? '')).toEqual({
      approved: true,
      approver: 'Ada Lovelace',
      comment: 'Ship it',
      decidedAt: NOW.toISOString(),
      sourceIp: '203.0.113.9',
    });
  });

  it('reads a base64-encoded form body', async () => {
    const body = Buffer.from('name=Grace&comment=').toString('base64');
    const response = await request('POST', links().approve, body, true);

    expect(response.statusCode).toBe(200);
    const input = sfn.commandCalls(SendTaskSuccessCommand)[0]?.args[0].input;
    expect(JSON.parse(input?.output ?? '')).toMatchObject({ approver: 'Grace', comment: null });
  });

  it('rejects: SendTaskFailure with Approval.Rejected and the decision as cause', async () => {
    const response = await request('POST', links().reject, 'name=Ada&comment=Not+on+a+Friday');

    expect(response.statusCode).toBe(200);
    expect(response.body).toContain('<h1>Rejected</h1>');
    expect(sfn).toHaveReceivedCommandTimes(SendTaskSuccessCommand, 0);
    expect(sfn).toHaveReceivedCommandTimes(SendTaskFailureCommand, 1);
    const input = sfn.commandCalls(SendTaskFailureCommand)[0]?.args[0].input;
    expect(input?.taskToken).toBe(taskToken);
    expect(input?.error).toBe('Approval.Rejected');
    expect(JSON.parse(input?.cause ?? '')).toEqual({
      approved: false,
      approver: 'Ada',
      comment: 'Not on a Friday',
      decidedAt: NOW.toISOString(),
      sourceIp: '203.0.113.9',
    });
  });

  it('answers a tampered link with 403 and calls nothing', async () => {
    const response = await request('POST', tamper(links().approve), 'name=Mallory');

    expect(response.statusCode).toBe(403);
    expect(response.body).toContain('This approval link is not valid');
    expectNothingSent();
  });

  it('answers an expired link with 403 naming the time, and calls nothing', async () => {
    const enteredAt = new Date(NOW.getTime() - 2 * 3600_000).toISOString();
    const expired = links({ enteredAt, timeoutSeconds: 3600 });

    const response = await request('POST', expired.approve, 'name=Ada');

    expect(response.statusCode).toBe(403);
    expect(response.body).toContain('This approval link expired at 2026-11-23T13:00:00.000Z');
    expectNothingSent();
  });

  it('answers a repeated decision with the "already decided" page', async () => {
    sfn
      .on(SendTaskSuccessCommand)
      .resolvesOnce({})
      .rejectsOnce(new TaskDoesNotExist({ message: 'Task does not exist anymore', $metadata: {} }));
    const { approve } = links();

    const first = await request('POST', approve, 'name=Ada');
    const second = await request('POST', approve, 'name=Ada');

    expect(first.statusCode).toBe(200);
    expect(second.statusCode).toBe(409);
    expect(second.body).toContain('already decided');
  });

  it('answers an invalid token with the "already decided" page', async () => {
    sfn.on(SendTaskFailureCommand).rejects(new InvalidToken({ message: 'Invalid Token', $metadata: {} }));

    const response = await request('POST', links().reject, '');

    expect(response.statusCode).toBe(409);
    expect(response.body).toContain('already decided');
  });

  it('answers a gate that timed out with the "expired" page', async () => {
    sfn.on(SendTaskSuccessCommand).rejects(new TaskTimedOut({ message: 'Task Timed Out', $metadata: {} }));

    const response = await request('POST', links().approve, '');

    expect(response.statusCode).toBe(409);
    expect(response.body).toContain('This approval expired');
  });

  it('answers an over-long comment with 400 naming the limit, and calls nothing', async () => {
    const response = await request('POST', links().approve, `name=Ada&comment=${'x'.repeat(2001)}`);

    expect(response.statusCode).toBe(400);
    expect(response.body).toContain('longer than 2000 characters');
    expect(response.body).toContain('<form method="post">');
    expectNothingSent();
  });

  it('answers an over-long name with 400 naming the limit, and calls nothing', async () => {
    const response = await request('POST', links().approve, `name=${'n'.repeat(201)}`);

    expect(response.statusCode).toBe(400);
    expect(response.body).toContain('longer than 200 characters');
    expectNothingSent();
  });

  it('answers an unexpected failure with a generic 500 and logs it without the token', async () => {
    sfn.on(SendTaskSuccessCommand).rejects(
      new SFNServiceException({
        name: 'ValidationException',
        $fault: 'client',
        message: `Value '${taskToken}' at 'taskToken' failed to satisfy constraint`,
        $metadata: {},
      }),
    );

    const response = await request('POST', links().approve, 'name=Ada');

    expect(response.statusCode).toBe(500);
    expect(response.body).toContain('Something went wrong');
    expect(response.body).not.toContain('ValidationException');
    expect(response.body).not.toContain('taskToken');
    expect(logged.join('')).toContain('ValidationException');
    expect(logged.join('')).not.toContain(taskToken.slice(0, 40));
  });
});

describe('logging', () => {
  it('logs the execution and the action, never the token or the link', async () => {
    const { approve, reject } = links();

    await request('GET', approve);
    await request('POST', approve, 'name=Ada');
    await request('POST', reject, 'name=Ada');

    const lines = logged.join('');
    expect(lines).toContain(EXECUTION_ARN);
    expect(lines).toContain('"action":"approve"');
    expect(lines).not.toContain(taskToken.slice(0, 40));
    expect(lines).not.toContain(approve.slice(0, 40));
    expect(lines).not.toContain(reject.slice(0, 40));
    expect(lines).not.toContain(KEY);
  });
});

describe('a link of a run a newer run superseded', () => {
  const cause = 'Superseded by run-2 (push #2, commit 3333333333)';
  beforeEach(() => {
    // StopExecution's error and cause, as DescribeExecution returns them for the retired run.
    sfn.on(DescribeExecutionCommand, { executionArn: EXECUTION_ARN }).resolves({
      status: 'ABORTED',
      error: 'Stepline.Superseded',
      cause,
    });
  });

  it('answers GET with a "superseded by" page naming the newer run', async () => {
    const response = await request('GET', links().approve);

    expect(response.statusCode).toBe(409);
    expect(response.body).toContain('Superseded by run-2');
    expect(response.body).toContain('This decision was not accepted');
    expect(response.body).not.toContain('<form');
  });

  it('accepts no decision on POST, and sends nothing', async () => {
    const response = await request('POST', links().approve, 'name=Ada');

    expect(response.statusCode).toBe(409);
    expect(response.body).toContain('Superseded by run-2');
    expectNothingSent();
  });

  it('still shows the form for a run stopped for another reason', async () => {
    sfn.on(DescribeExecutionCommand).resolves({ status: 'ABORTED', error: 'Manual', cause: 'stopped' });

    const response = await request('GET', links().approve);

    expect(response.statusCode).toBe(200);
  });
});

describe('other methods', () => {
  it('answers 405 and decides nothing', async () => {
    const response = await request('PUT', links().approve, 'name=Ada');

    expect(response.statusCode).toBe(405);
    expectNothingSent();
  });
});
