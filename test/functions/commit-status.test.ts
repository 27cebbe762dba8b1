import { readFileSync } from 'node:fs';
import { BatchGetBuildsCommand, BatchGetReportsCommand, CodeBuildClient } from '@aws-sdk/client-codebuild';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CodeBuildTestReports } from '#shared/aws/codebuild.ts';
import { SfnExecutionInputs } from '#shared/aws/sfn.ts';
import { SnsNotifier } from '#shared/aws/sns.ts';
import { createCommitStatusHandler, type ReportedStatus } from '#shared/handlers/commit-status.ts';
import { createLogger } from '#shared/logger.ts';
import { executionLink } from '#shared/notifications.ts';
import type { TestReports } from '#shared/ports.ts';
import type { Push } from '#shared/push.ts';
import { StatusPublisher, type StatusTokens } from '#shared/status/publisher.ts';
import { ForgeServer } from '../helpers/forge-server.ts';
import { aPush } from '../helpers/push.ts';

/**
 * The commit status function over real EventBridge events (AWS's documented samples, their detail set to
 * this stack's): the real clients post to a local stand-in of a GitHub Enterprise Server and of a
 * self-managed GitLab, whose hosts come from the push, as they would from a real payload.
 */

const STATE_MACHINE_ARN = 'arn:aws:states:us-east-1:012345678912:stateMachine:stepline-test-pipeline';
const EXECUTION_ARN = 'arn:aws:states:us-east-1:012345678912:execution:stepline-test-pipeline:run-1';
const TOPIC_ARN = 'arn:aws:sns:us-east-1:012345678912:stepline-test-notifications';
const COMMIT = 'c0ffee0000000000000000000000000000000001';
const GITHUB_TOKEN = 'ghp_neverLogged0123456789';

const sns = mockClient(SNSClient);
const sfn = mockClient(SFNClient);
let forge: ForgeServer;
beforeAll(async () => {
  forge = await ForgeServer.start();
});
afterAll(() => forge.close());
beforeEach(() => {
  forge.reset();
  sns.reset();
  sfn.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  // The run still runs, unless a test says otherwise; the events carry its input.
  sfn.on(DescribeExecutionCommand).resolves({ executionArn: EXECUTION_ARN, status: 'RUNNING' } as never);
});

const context = {
  functionName: 'stepline-test-commitStatus',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:012345678912:function:stepline-test-commitStatus',
  memoryLimitInMB: '256',
  awsRequestId: 'request-1',
  logGroupName: '/aws/lambda/stepline-test-commitStatus',
  logStreamName: 'stream',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 60_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
} satisfies Context;

type Json = Record<string, unknown>;

function fixture(file: string): Json {
  return JSON.parse(readFileSync(new URL(`../fixtures/aws-events/${file}`, import.meta.url), 'utf8'));
}

function gitHubEnterprisePush(): Push {
  return aPush({
    provider: 'github',
    repository: { fullName: 'acme/shop', cloneUrl: `${forge.url}/acme/shop.git`, defaultBranch: 'main' },
    after: COMMIT,
  });
}

function selfManagedGitLabPush(): Push {
  return aPush({
    provider: 'gitlab',
    repository: {
      fullName: 'platform/shop',
      cloneUrl: `${forge.url}/platform/shop.git`,
      defaultBranch: 'main',
    },
    after: COMMIT,
  });
}

function runInput(push: Push) {
  return {
    push,
    source: { type: 'GITHUB', location: push.repository.cloneUrl, version: COMMIT },
    settings: {},
  };
}

function executionEvent(status: string, push: Push, more: Json = {}): Json {
  const index = ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED'].indexOf(status);
  const event = fixture(`awsdocs-sfn.0${index}.Step-Functions-Execution-Status-Change.${status}.json`);
  return {
    ...event,
    detail: {
      ...(event.detail as Json),
      executionArn: EXECUTION_ARN,
      stateMachineArn: STATE_MACHINE_ARN,
      input: JSON.stringify(runInput(push)),
      ...more,
    },
  };
}

function buildEvent(status: string, project: string, variables: { name: string; value: string }[]): Json {
  const event = fixture('awsdocs-codebuild.00.CodeBuild-Build-State-Change.SUCCEEDED.json');
  const detail = event.detail as Json;
  const info = detail['additional-information'] as Json;
  return {
    ...event,
    detail: {
      ...detail,
      'build-status': status,
      'project-name': project,
      'additional-information': {
        ...info,
        environment: {
          ...(info.environment as Json),
          'environment-variables': variables.map((v) => ({ ...v, type: 'PLAINTEXT' })),
        },
      },
    },
  };
}

function handlerWith(
  tokens: StatusTokens,
  recorded: ReportedStatus[] = [],
  logLevel: 'INFO' | 'SILENT' = 'SILENT',
  testReports?: TestReports,
) {
  const logger = createLogger('commitStatus', logLevel);
  return createCommitStatusHandler({
    publisher: new StatusPublisher({
      tokens,
      logger,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5, budgetMs: 2000 },
    }),
    executions: new SfnExecutionInputs(new SFNClient({ region: 'us-east-1' })),
    notifier: new SnsNotifier(new SNSClient({ region: 'us-east-1' }), {
      notifications: TOPIC_ARN,
      approvals: '',
    }),
    logger,
    runLink: (executionArn) => executionLink('us-east-1', executionArn),
    stateMachineArn: STATE_MACHINE_ARN,
    recorder: {
      record: async (_arn, status) => {
        recorded.push(status);
      },
    },
    ...(testReports ? { testReports } : {}),
  });
}

const allTokens: StatusTokens = {
  tokenFor: async (provider) => ({ github: GITHUB_TOKEN, gitlab: 'glpat-token', bitbucket: 'bb' })[provider],
};

/** Runs the handler with stdout captured: what it logged. */
async function logged(run: () => Promise<unknown>): Promise<string> {
  const lines: string[] = [];
  const capture = (chunk: unknown) => {
    lines.push(String(chunk));
    return true;
  };
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  try {
    await run();
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
  return lines.join('');
}

describe('the run status', () => {
  it('posts pending when the run starts, then its outcome, to the GitHub Enterprise Server of the push', async () => {
    const handler = handlerWith(allTokens, [], 'INFO');
    const output = await logged(async () => {
      await handler(executionEvent('RUNNING', gitHubEnterprisePush()), context);
      await handler(executionEvent('SUCCEEDED', gitHubEnterprisePush()), context);
    });
    expect(forge.requests.map((r) => [r.method, r.path])).toEqual([
      ['POST', `/api/v3/repos/acme/shop/statuses/${COMMIT}`],
      ['POST', `/api/v3/repos/acme/shop/statuses/${COMMIT}`],
    ]);
    expect(forge.requests.map((r) => r.body)).toEqual([
      {
        state: 'pending',
        context: 'stepline',
        description: 'Running',
        target_url: executionLink('us-east-1', EXECUTION_ARN),
      },
      {
        state: 'success',
        context: 'stepline',
        description: expect.stringMatching(/^Succeeded in /),
        target_url: executionLink('us-east-1', EXECUTION_ARN),
      },
    ]);
    expect(forge.requests[0]?.headers.authorization).toBe(`token ${GITHUB_TOKEN}`);
    expect(output).toContain('Commit status posted');
    expect(output).not.toContain(GITHUB_TOKEN);
  });

  it('posts failure for a failed run and error for a timed-out or stopped one', async () => {
    const handler = handlerWith(allTokens);
    for (const status of ['FAILED', 'TIMED_OUT', 'ABORTED']) {
      await handler(executionEvent(status, selfManagedGitLabPush()), context);
    }
    expect(forge.requests.map((r) => r.path)).toEqual(
      Array(3).fill(`/api/v4/projects/platform%2Fshop/statuses/${COMMIT}`),
    );
    expect(forge.requests.map((r) => (r.body as { state: string }).state)).toEqual([
      'failed',
      'failed',
      'failed',
    ]);
    expect(forge.requests.map((r) => (r.body as { description: string }).description)).toEqual([
      expect.stringMatching(/^Failed/),
      expect.stringMatching(/^Timed out/),
      expect.stringMatching(/^Stopped/),
    ]);
  });

  it('asks the execution for its input when the event carries none', async () => {
    sfn.on(DescribeExecutionCommand, { executionArn: EXECUTION_ARN }).resolves({
      executionArn: EXECUTION_ARN,
      status: 'RUNNING',
      input: JSON.stringify(runInput(gitHubEnterprisePush())),
    } as never);
    await handlerWith(allTokens)(executionEvent('RUNNING', gitHubEnterprisePush(), { input: null }), context);
    expect(forge.requests).toHaveLength(1);
  });

  it("does not post a run's start that arrives after it ended", async () => {
    sfn.on(DescribeExecutionCommand, { executionArn: EXECUTION_ARN }).resolves({
      executionArn: EXECUTION_ARN,
      status: 'SUCCEEDED',
      input: JSON.stringify(runInput(gitHubEnterprisePush())),
    } as never);
    const handler = handlerWith(allTokens);
    await handler(executionEvent('SUCCEEDED', gitHubEnterprisePush()), context);
    await handler(executionEvent('RUNNING', gitHubEnterprisePush()), context);
    expect(forge.requests.map((r) => (r.body as { state: string }).state)).toEqual(['success']);
  });

  it('posts nothing for an execution of another state machine (a teardown)', async () => {
    const other = 'arn:aws:states:us-east-1:012345678912:execution:stepline-test-teardown:t-1';
    await handlerWith(allTokens)(
      executionEvent('RUNNING', gitHubEnterprisePush(), { executionArn: other }),
      context,
    );
    expect(forge.requests).toEqual([]);
  });

  it('posts nothing for a CodeCommit push or a repository that is not on a forge', async () => {
    const handler = handlerWith(allTokens);
    await handler(executionEvent('RUNNING', aPush({ provider: 'codecommit', after: COMMIT })), context);
    await handler(
      executionEvent(
        'RUNNING',
        aPush({ repository: { fullName: 'hello', cloneUrl: '/tmp/hello.git' }, after: COMMIT }),
      ),
      context,
    );
    expect(forge.requests).toEqual([]);
  });
});

describe('the stage statuses', () => {
  const variables = (environment?: string) => [
    { name: 'STEPLINE_EXECUTION_ID', value: EXECUTION_ARN },
    ...(environment ? [{ name: 'STEPLINE_ENVIRONMENT', value: environment }] : []),
  ];

  beforeEach(() => {
    sfn.on(DescribeExecutionCommand, { executionArn: EXECUTION_ARN }).resolves({
      executionArn: EXECUTION_ARN,
      status: 'RUNNING',
      input: JSON.stringify(runInput(selfManagedGitLabPush())),
    } as never);
  });

  it('names each stage after its project and environment, a new stage included', async () => {
    const handler = handlerWith(allTokens);
    await handler(buildEvent('IN_PROGRESS', 'stepline-test-test', variables()), context);
    await handler(buildEvent('SUCCEEDED', 'stepline-test-image', variables()), context);
    await handler(buildEvent('FAILED', 'stepline-test-prod-deploy', variables('prod')), context);
    await handler(
      buildEvent('TIMED_OUT', 'stepline-test-eu-west-infrastructure', variables('eu-west')),
      context,
    );
    expect(forge.requests.map((r) => r.body)).toEqual([
      expect.objectContaining({ name: 'stepline/test', state: 'running', description: 'Running' }),
      expect.objectContaining({
        name: 'stepline/image',
        state: 'success',
        description: expect.stringMatching(/^Passed in /),
      }),
      expect.objectContaining({ name: 'stepline/deploy-prod', state: 'failed' }),
      expect.objectContaining({ name: 'stepline/infrastructure-eu-west', state: 'failed' }),
    ]);
    for (const request of forge.requests) {
      expect((request.body as { target_url: string }).target_url).toBe(
        executionLink('us-east-1', EXECUTION_ARN),
      );
    }
  });

  it("posts a build's late start only while its run runs, and its result always", async () => {
    sfn.on(DescribeExecutionCommand, { executionArn: EXECUTION_ARN }).resolves({
      executionArn: EXECUTION_ARN,
      status: 'FAILED',
      input: JSON.stringify(runInput(selfManagedGitLabPush())),
    } as never);
    const handler = handlerWith(allTokens);
    await handler(buildEvent('FAILED', 'stepline-test-image', variables()), context);
    await handler(buildEvent('IN_PROGRESS', 'stepline-test-image', variables()), context);
    expect(forge.requests.map((r) => (r.body as { state: string }).state)).toEqual(['failed']);
  });

  it("describes a finished stage by its test reports' counts", async () => {
    const asked: string[] = [];
    const testReports: TestReports = {
      countsOf: async (buildArn, executionArn) => {
        asked.push(`${buildArn} ${executionArn}`);
        return { passed: 12, failed: 1, skipped: 0 };
      },
    };
    const handler = handlerWith(allTokens, [], 'SILENT', testReports);
    await handler(buildEvent('IN_PROGRESS', 'stepline-test-test', variables()), context);
    const failed = buildEvent('FAILED', 'stepline-test-test', variables());
    await handler(failed, context);
    expect(forge.requests.map((r) => (r.body as { description: string }).description)).toEqual([
      'Running',
      expect.stringMatching(/^12 passed, 1 failed in /),
    ]);
    // Only the finished build is asked for its counts.
    expect(asked).toEqual([`${(failed.detail as Json)['build-id']} ${EXECUTION_ARN}`]);
  });

  it("on AWS, counts the Test build's CodeBuild test reports, and asks nothing of other builds", async () => {
    const codebuild = mockClient(CodeBuildClient);
    const reportArns = [0, 1].map(
      (n) => `arn:aws:codebuild:us-east-1:123456789012:report/stepline-test-test-junit:${n}`,
    );
    codebuild.on(BatchGetBuildsCommand).resolves({ builds: [{ id: 'stepline-test-test:1', reportArns }] });
    codebuild.on(BatchGetReportsCommand).resolves({
      reports: [
        {
          arn: reportArns[0],
          type: 'TEST',
          testSummary: { total: 9, statusCounts: { SUCCEEDED: 8, FAILED: 1 }, durationInNanoSeconds: 1 },
        },
        {
          arn: reportArns[1],
          type: 'TEST',
          testSummary: {
            total: 5,
            statusCounts: { SUCCEEDED: 4, ERROR: 0, SKIPPED: 1 },
            durationInNanoSeconds: 1,
          },
        },
        // A code coverage report counts no test.
        {
          arn: 'arn:aws:codebuild:us-east-1:123456789012:report/stepline-test-test-coverage:2',
          type: 'CODE_COVERAGE',
        },
      ],
    });
    try {
      const handler = handlerWith(allTokens, [], 'SILENT', new CodeBuildTestReports('stepline-test-test'));
      const atBuild = (event: Json, project: string) => ({
        ...event,
        detail: {
          ...(event.detail as Json),
          'build-id': `arn:aws:codebuild:us-east-1:123456789012:build/${project}:1`,
        },
      });
      await handler(
        atBuild(buildEvent('FAILED', 'stepline-test-test', variables()), 'stepline-test-test'),
        context,
      );
      await handler(
        atBuild(buildEvent('SUCCEEDED', 'stepline-test-image', variables()), 'stepline-test-image'),
        context,
      );

      expect(forge.requests.map((r) => (r.body as { description: string }).description)).toEqual([
        expect.stringMatching(/^12 passed, 1 failed, 1 skipped in /),
        expect.stringMatching(/^Passed in /),
      ]);
      expect(codebuild.commandCalls(BatchGetBuildsCommand).map((c) => c.args[0].input)).toEqual([
        { ids: ['stepline-test-test:1'] },
      ]);
      expect(codebuild.commandCalls(BatchGetReportsCommand)[0]?.args[0].input).toEqual({ reportArns });
    } finally {
      codebuild.restore();
    }
  });

  it('posts nothing for a build the pipeline did not start', async () => {
    await handlerWith(allTokens)(buildEvent('SUCCEEDED', 'stepline-test-image', []), context);
    expect(forge.requests).toEqual([]);
  });
});

describe('when the status cannot be posted', () => {
  it('notifies, records and returns normally when the forge is down: the run is never failed', async () => {
    const down = await ForgeServer.start();
    const push = aPush({
      provider: 'gitlab',
      repository: { fullName: 'platform/shop', cloneUrl: `${down.url}/platform/shop.git` },
      after: COMMIT,
    });
    await down.close();
    const recorded: ReportedStatus[] = [];
    const handler = handlerWith(allTokens, recorded, 'INFO');
    const output = await logged(() => handler(executionEvent('FAILED', push), context));
    expect(recorded).toEqual([
      expect.objectContaining({ context: 'stepline', state: 'failure', outcome: 'failed' }),
    ]);
    const [notification] = sns.commandCalls(PublishCommand).map((call) => call.args[0].input);
    expect(notification?.TopicArn).toBe(TOPIC_ARN);
    expect(notification?.Subject).toBe('✖ GitLab did not take the commit status stepline of platform/shop');
    expect(notification?.Message).toContain('The run is not affected');
    expect(notification?.Message).toContain(`Commit: ${COMMIT}`);
    expect(notification?.Message).toMatch(/^Why: GitLab answered nothing: fetch failed/m);
    expect(output).toContain('Commit status not posted');
    expect(output).not.toContain('glpat-token');
  });

  it('notifies once per run and forge, however many of its statuses the forge refuses', async () => {
    forge.answerAlways({ status: 401, body: { message: '401 Unauthorized' } });
    sfn.on(DescribeExecutionCommand).resolves({
      executionArn: EXECUTION_ARN,
      status: 'RUNNING',
      input: JSON.stringify(runInput(selfManagedGitLabPush())),
    } as never);
    const handler = handlerWith(allTokens);
    const variables = [{ name: 'STEPLINE_EXECUTION_ID', value: EXECUTION_ARN }];
    await handler(executionEvent('RUNNING', selfManagedGitLabPush()), context);
    await handler(buildEvent('IN_PROGRESS', 'stepline-test-image', variables), context);
    await handler(buildEvent('FAILED', 'stepline-test-image', variables), context);
    // A 401 is not retried: one request per status.
    expect(forge.requests).toHaveLength(3);
    expect(sns.commandCalls(PublishCommand)).toHaveLength(1);
    expect(sns.commandCalls(PublishCommand)[0]?.args[0].input.Message).toMatch(/GitLab answered 401/);
  });

  it('still returns when the notification cannot be sent either', async () => {
    sns.on(PublishCommand).rejects(new Error('SNS is down'));
    forge.answerAlways({ status: 503 });
    await expect(
      handlerWith(allTokens)(executionEvent('RUNNING', selfManagedGitLabPush()), context),
    ).resolves.toBeUndefined();
  });

  it('skips a forge without a token, posting and notifying nothing', async () => {
    const recorded: ReportedStatus[] = [];
    await handlerWith({ tokenFor: async () => undefined }, recorded)(
      executionEvent('RUNNING', gitHubEnterprisePush()),
      context,
    );
    expect(forge.requests).toEqual([]);
    expect(sns.commandCalls(PublishCommand)).toEqual([]);
    expect(recorded).toEqual([
      expect.objectContaining({ outcome: 'skipped', reason: 'no GitHub status token is configured' }),
    ]);
  });

  it('refuses an event that is neither an execution nor a build state change', async () => {
    await expect(handlerWith(allTokens)({ 'detail-type': 'Something Else' }, context)).rejects.toThrow(
      /Not an execution status change or a build state change/,
    );
  });
});
