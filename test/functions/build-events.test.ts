import { readFileSync } from 'node:fs';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { EventBridgeMilestoneEmitter } from '#shared/aws/eventbridge.ts';
import { SnsNotifier } from '#shared/aws/sns.ts';
import { InvalidInputError } from '#shared/errors.ts';
import { createBuildEventsHandler } from '#shared/handlers/build-events.ts';
import { createLogger } from '#shared/logger.ts';

const { TOPIC_ARN, BUS_NAME } = vi.hoisted(() => {
  const settings = {
    TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:stepline-test-notifications',
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
const handler = createBuildEventsHandler({
  notifier: new SnsNotifier(new SNSClient({}), { notifications: TOPIC_ARN, approvals: '' }),
  emitter: new EventBridgeMilestoneEmitter(new EventBridgeClient({}), BUS_NAME),
  logger: createLogger('buildEvents'),
  region: 'us-east-1',
});

beforeEach(() => {
  sns.reset();
  eventBridge.reset();
  sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
  eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] });
});

const context = {
  functionName: 'stepline-test-buildEvents',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:stepline-test-buildEvents',
  memoryLimitInMB: '256',
  awsRequestId: 'request-1',
  logGroupName: '/aws/lambda/stepline-test-buildEvents',
  logStreamName: 'stream',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => 30_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
} satisfies Context;

type Json = Record<string, unknown>;

function fixture(name: string): Json {
  return JSON.parse(readFileSync(new URL(`../fixtures/aws-events/${name}`, import.meta.url), 'utf8'));
}

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

const SAMPLE_BUILD_ARN =
  'arn:aws:codebuild:us-west-2:123456789012:build/my-sample-project:8745a7a9-c340-456a-9166-edf953571bEX';
const SAMPLE_LOG_LINK =
  'https://console.aws.amazon.com/cloudwatch/home?region=us-west-2#logEvent:group=/aws/codebuild/my-sample-project;stream=8745a7a9-c340-456a-9166-edf953571bEX';
const FUNCTIONCI_PROJECT = 'functionci-thestackshack-serverless-demo-master-code-build';

describe('buildEvents: build state changes', () => {
  const cases = [
    {
      file: 'awsdocs-codebuild.00.CodeBuild-Build-State-Change.SUCCEEDED.json',
      milestone: {
        project: 'my-sample-project',
        buildId: SAMPLE_BUILD_ARN,
        status: 'SUCCEEDED',
        commit: null,
        environment: null,
        logLink: SAMPLE_LOG_LINK,
        // 16:12:29 (build-start-time) to 16:14:28 (event time)
        duration: 119,
      },
    },
    {
      file: 'aws-lambda-go.codebuild-state-change.json',
      milestone: {
        project: 'my-sample-project',
        buildId: SAMPLE_BUILD_ARN,
        status: 'SUCCEEDED',
        commit: 'my-source-version',
        environment: null,
        logLink: SAMPLE_LOG_LINK,
        duration: 119,
      },
    },
    {
      file: 'functionci.CodeBuild-Build-State-Change.FAILED.json',
      milestone: {
        project: FUNCTIONCI_PROJECT,
        buildId: `arn:aws:codebuild:us-east-1:132093761664:build/${FUNCTIONCI_PROJECT}:845a17d1-3901-40aa-a169-15f7545eca60`,
        status: 'FAILED',
        commit: 'arn:aws:s3:::functionci-artifacts/functionci-thestacks/SourceOutp/Wk6cJXz.zip',
        environment: null,
        logLink: `https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEvent:group=/aws/codebuild/${FUNCTIONCI_PROJECT};stream=845a17d1-3901-40aa-a169-15f7545eca60`,
        // 01:33:58 to 01:35:07
        duration: 69,
      },
    },
  ];

  it.each(cases)(
    'emits the milestone and notifies the finished build of $file',
    async ({ file, milestone }) => {
      await handler(fixture(file), context);

      expect(milestones()).toEqual([
        { source: 'stepline', busName: BUS_NAME, detailType: 'Build State Change', detail: milestone },
      ]);
      expect(sns).toHaveReceivedCommandTimes(PublishCommand, 1);
      const [message] = published();
      expect(message?.TopicArn).toBe(TOPIC_ARN);
      expect(Array.from(message?.Subject ?? '').length).toBeLessThanOrEqual(100);
      expect(message?.Subject).toContain(milestone.project.slice(0, 40));
      expect(message?.Message).toContain(`Project: ${milestone.project}`);
      expect(message?.Message).toContain(`Status: ${milestone.status}`);
      expect(message?.Message).toContain(`Build log: ${milestone.logLink}`);
      if (milestone.commit) expect(message?.Message).toContain(`Commit: ${milestone.commit}`);
    },
  );

  it('shows the failed phase and its YAML_FILE_ERROR context for the real failed build', async () => {
    await handler(fixture('functionci.CodeBuild-Build-State-Change.FAILED.json'), context);

    const [message] = published();
    expect(message?.Subject?.startsWith('✖ Build failed: functionci-')).toBe(true);
    expect(message?.Message).toContain('Failed phase: DOWNLOAD_SOURCE (FAILED)');
    expect(message?.Message).toContain(
      'YAML_FILE_ERROR: stat /codebuild/output/src424818173/src/buildspec.yml: no such file or directory',
    );
    expect(message?.Message).toContain('Duration: 1m 9s');
  });

  it('emits a milestone but sends no notification for a build in progress without logs or phases', async () => {
    await handler(fixture('functionci.CodeBuild-Build-State-Change.IN_PROGRESS.json'), context);

    expect(milestones()).toEqual([
      {
        source: 'stepline',
        busName: BUS_NAME,
        detailType: 'Build State Change',
        detail: {
          project: FUNCTIONCI_PROJECT,
          buildId: `arn:aws:codebuild:us-east-1:132093761664:build/${FUNCTIONCI_PROJECT}:93942698-859e-4fa9-8fde-c062977f6053`,
          status: 'IN_PROGRESS',
          commit: 'arn:aws:s3:::functionci-artifacts/functionci-thestacks/SourceOutp/PHoeKv7.zip',
          environment: null,
          logLink: null,
          duration: null,
        },
      },
    ]);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
  });

  it('reads the environment and commit of a stepline build', async () => {
    const event = fixture('awsdocs-codebuild.00.CodeBuild-Build-State-Change.SUCCEEDED.json');
    const detail = event.detail as Json;
    const info = detail['additional-information'] as Json;
    const commit = '2222222222222222222222222222222222222222';
    const steplineBuild = {
      ...event,
      detail: {
        ...detail,
        'build-status': 'FAILED',
        'additional-information': {
          ...info,
          'source-version': commit,
          environment: {
            ...(info.environment as Json),
            'environment-variables': [
              { name: 'STEPLINE_IMAGE_TAG', type: 'PLAINTEXT', value: '2222222' },
              { name: 'STEPLINE_ENVIRONMENT', type: 'PLAINTEXT', value: 'prod' },
            ],
          },
        },
      },
    };

    await handler(steplineBuild, context);

    expect(milestones()[0]?.detail).toMatchObject({ status: 'FAILED', commit, environment: 'prod' });
    const [message] = published();
    expect(message?.Subject).toBe('✖ Build failed: my-sample-project (prod) 2222222');
    expect(message?.Message).toContain('Environment: prod');
  });

  it('handles an event carrying fields it does not know, with the same result', async () => {
    const original = fixture('aws-lambda-go.codebuild-state-change.json');
    await handler(original, context);
    const expected = { milestones: milestones(), published: published() };
    sns.resetHistory();
    eventBridge.resetHistory();
    const detail = original.detail as Json;
    const info = detail['additional-information'] as Json;
    const withExtras = {
      ...original,
      'replay-name': 'archive-replay',
      'future-envelope-field': { nested: true },
      detail: {
        ...detail,
        'build-number': 55.0,
        'current-phase-context': '[]',
        'new-top-level-field': [1, 2, 3],
        'additional-information': {
          ...info,
          'project-file-system-locations': [],
          'queued-timeout-in-minutes': 480.0,
          cache: { type: 'NO_CACHE' },
          'network-interface': { 'subnet-id': 'subnet-1' },
          phases: (info.phases as Json[]).map((phase) => ({ ...phase, 'phase-new-field': 'x' })),
        },
      },
    };

    await handler(withExtras, context);

    expect({ milestones: milestones(), published: published() }).toEqual(expected);
  });

  it('throws a named error, and emits and publishes nothing, for an event that is not from CodeBuild', async () => {
    const notCodeBuild = fixture('awsdocs-sfn.02.Step-Functions-Execution-Status-Change.FAILED.json');

    const outcome = handler(notCodeBuild, context);

    await expect(outcome).rejects.toBeInstanceOf(InvalidInputError);
    await expect(outcome).rejects.toThrow(/Not a CodeBuild build state or phase change event/);
    expect(eventBridge).not.toHaveReceivedCommand(PutEventsCommand);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
  });
});

describe('buildEvents: build phase changes', () => {
  it.each([
    'awsdocs-codebuild.01.CodeBuild-Build-Phase-Change.COMPLETED.json',
    'aws-lambda-go.codebuild-phase-change.json',
  ])('emits a phase milestone and sends no notification for %s', async (file) => {
    await handler(fixture(file), context);

    expect(milestones()).toEqual([
      {
        source: 'stepline',
        busName: BUS_NAME,
        detailType: 'Build Phase Change',
        detail: {
          project: 'my-sample-project',
          buildId: SAMPLE_BUILD_ARN,
          phase: 'COMPLETED',
          phaseStatus: 'SUCCEEDED',
          phaseContext: [],
          duration: 4,
          commit: null,
          environment: null,
          logLink: SAMPLE_LOG_LINK,
        },
      },
    ]);
    expect(sns).not.toHaveReceivedCommand(PublishCommand);
  });

  it('reads the messages of a failed phase from its JSON-encoded context', async () => {
    const event = fixture('awsdocs-codebuild.01.CodeBuild-Build-Phase-Change.COMPLETED.json');
    const failedPhase = {
      ...event,
      detail: {
        ...(event.detail as Json),
        'completed-phase': 'BUILD',
        'completed-phase-status': 'FAILED',
        'completed-phase-context': JSON.stringify([
          'COMMAND_EXECUTION_ERROR: Error while executing command: npm test. Reason: exit status 1',
        ]),
      },
    };

    await handler(failedPhase, context);

    expect(milestones()[0]?.detail).toMatchObject({
      phase: 'BUILD',
      phaseStatus: 'FAILED',
      phaseContext: [
        'COMMAND_EXECUTION_ERROR: Error while executing command: npm test. Reason: exit status 1',
      ],
    });
  });
});
