import { describe, expect, it } from 'vitest';
import type { BuildReport, ExecutionReport } from '#shared/events.ts';
import {
  buildNotification,
  executionLink,
  executionNotification,
  pipelineNotification,
  readableCause,
  SUBJECT_MAX_LENGTH,
} from '#shared/notifications.ts';
import type { ApprovalDecision, NotifyRequest } from '#shared/pipeline.ts';
import { formatDuration } from '#shared/text.ts';
import { aPush, aPushTo } from '../helpers/push.ts';

const REGION = 'eu-west-1';
const EXECUTION_ARN = 'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-1';
const CONSOLE_LINK = `https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/${EXECUTION_ARN}`;
const IMAGE = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:2222222';
const DEEP_LINK =
  'https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logEvent:group=/aws/codebuild/stepline-test-deploy;stream=5b0c1d2e';

const approval: ApprovalDecision = {
  approved: true,
  approver: 'Alice',
  comment: 'Ship it',
  decidedAt: '2024-05-01T10:00:00.000Z',
  sourceIp: '203.0.113.9',
};

/** The cause Step Functions records when a `codebuild:startBuild.sync` task fails: the build, as JSON. */
function codeBuildCause(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    Arn: 'arn:aws:codebuild:eu-west-1:123456789012:build/stepline-test-deploy:5b0c1d2e',
    Id: 'stepline-test-deploy:5b0c1d2e',
    ProjectName: 'stepline-test-deploy',
    BuildStatus: 'FAILED',
    BuildComplete: true,
    CurrentPhase: 'COMPLETED',
    Environment: {
      EnvironmentVariables: [
        { Name: 'STEPLINE_ENVIRONMENT', Type: 'PLAINTEXT', Value: 'dev' },
        { Name: 'DEPLOY_PASSWORD', Type: 'PLAINTEXT', Value: 'hunter2-not-for-email' },
      ],
    },
    Logs: {
      DeepLink: DEEP_LINK,
      GroupName: '/aws/codebuild/stepline-test-deploy',
      StreamName: '5b0c1d2e',
    },
    Phases: [
      { PhaseType: 'SUBMITTED', PhaseStatus: 'SUCCEEDED', DurationInSeconds: 0, StartTime: 1.714557e9 },
      { PhaseType: 'INSTALL', PhaseStatus: 'SUCCEEDED', DurationInSeconds: 3.0 },
      {
        PhaseType: 'BUILD',
        PhaseStatus: 'FAILED',
        DurationInSeconds: 12,
        Contexts: [
          {
            StatusCode: 'COMMAND_EXECUTION_ERROR',
            Message: 'Error while executing command: ./deploy.sh. Reason: exit status 1',
          },
        ],
      },
      { PhaseType: 'FINALIZING', PhaseStatus: 'SUCCEEDED' },
      { PhaseType: 'COMPLETED' },
    ],
    ...overrides,
  });
}

describe('pipelineNotification', () => {
  it('names the repository, branch and environments of a successful run in the subject', () => {
    const request: NotifyRequest = {
      kind: 'succeeded',
      executionArn: EXECUTION_ARN,
      push: aPush(),
      imageUri: IMAGE,
      deployed: ['dev', 'prod'],
      approvals: [approval],
    };

    const { topic, subject, body } = pipelineNotification(request, REGION);

    expect(topic).toBe('notifications');
    expect(subject).toBe('✔ acme/shop main deployed to dev, prod');
    expect(body).toContain('Repository: acme/shop');
    expect(body).toContain('Branch: main');
    expect(body).toContain('Commit: 2222222 Fix the checkout');
    expect(body).toContain('Pushed by: octocat');
    expect(body).toContain(`  dev: ${IMAGE}`);
    expect(body).toContain(`  prod: ${IMAGE}`);
    expect(body).toContain('approved by Alice at 2024-05-01T10:00:00.000Z: "Ship it"');
    expect(body).toContain(`Execution: ${CONSOLE_LINK}`);
  });

  it('does not show the approver’s IP address', () => {
    const request: NotifyRequest = {
      kind: 'succeeded',
      executionArn: EXECUTION_ARN,
      push: aPush(),
      deployed: ['prod'],
      approvals: [approval],
    };

    expect(pipelineNotification(request, REGION).body).not.toContain('203.0.113.9');
  });

  it('says a tag push is a tag', () => {
    const request: NotifyRequest = {
      kind: 'succeeded',
      executionArn: EXECUTION_ARN,
      push: aPushTo('tag', 'v1.4.0'),
      deployed: ['dev'],
      approvals: [],
    };

    const { subject, body } = pipelineNotification(request, REGION);

    expect(subject).toBe('✔ acme/shop tag v1.4.0 deployed to dev');
    expect(body).toContain('Tag: v1.4.0');
  });

  it('names the failed stage first and reads a CodeBuild cause as status, failed phase and log link', () => {
    const request: NotifyRequest = {
      kind: 'failed',
      executionArn: EXECUTION_ARN,
      push: aPush(),
      stage: 'dev: Deploy',
      error: 'States.TaskFailed',
      cause: codeBuildCause(),
    };

    const { subject, body } = pipelineNotification(request, REGION);

    expect(subject).toBe('✖ acme/shop main failed at dev: Deploy');
    expect(body).toContain('Stage: dev: Deploy');
    expect(body).toContain('Error: States.TaskFailed');
    expect(body).toContain('Build: stepline-test-deploy:5b0c1d2e FAILED');
    expect(body).toContain('Failed phase: BUILD (FAILED)');
    expect(body).toContain(
      'COMMAND_EXECUTION_ERROR: Error while executing command: ./deploy.sh. Reason: exit status 1',
    );
    expect(body).toContain(`Build log: ${DEEP_LINK}`);
    expect(body).not.toContain('hunter2-not-for-email');
    expect(body).not.toContain('"BuildStatus"');
    expect(body).not.toContain('EnvironmentVariables');
  });

  it('names who rejected, when and why', () => {
    const request: NotifyRequest = {
      kind: 'rejected',
      executionArn: EXECUTION_ARN,
      push: aPush(),
      environment: 'prod',
      decision: { ...approval, approved: false, approver: 'Bob', comment: 'Not during the freeze' },
    };

    const { subject, body } = pipelineNotification(request, REGION);

    expect(subject).toBe('Rejected: acme/shop main for prod by Bob');
    expect(body).toContain('rejected by Bob at 2024-05-01T10:00:00.000Z: "Not during the freeze"');
    expect(body).toContain('Environment: prod');
    expect(body).toContain(`Execution: ${CONSOLE_LINK}`);
  });

  it('says an approval expired without a decision', () => {
    const request: NotifyRequest = {
      kind: 'expired',
      executionArn: EXECUTION_ARN,
      push: aPush(),
      environment: 'prod',
    };

    const { subject, body } = pipelineNotification(request, REGION);

    expect(subject).toBe('Approval expired: acme/shop main for prod');
    expect(body).toContain('Status: approval expired');
    expect(body).not.toContain('Decision:');
  });

  it('keeps the subject within 100 characters, status and repository first, for a 300-character branch', () => {
    const request: NotifyRequest = {
      kind: 'failed',
      executionArn: EXECUTION_ARN,
      push: aPushTo('branch', `feature/${'x'.repeat(292)}`),
      stage: 'prod: Deploy',
      error: 'States.TaskFailed',
    };

    const { subject, body } = pipelineNotification(request, REGION);

    expect(Array.from(subject).length).toBeLessThanOrEqual(SUBJECT_MAX_LENGTH);
    expect(subject.startsWith('✖ acme/shop feature/xxx')).toBe(true);
    expect(subject.endsWith('failed at prod: Deploy')).toBe(true);
    expect(body).toContain(`Branch: feature/${'x'.repeat(292)}`);
  });

  it('shows only the first line of a long commit message', () => {
    const request: NotifyRequest = {
      kind: 'succeeded',
      executionArn: EXECUTION_ARN,
      push: aPush({ headCommitMessage: 'Fix the checkout\n\nLong explanation\nSigned-off-by: someone' }),
      deployed: ['dev'],
      approvals: [],
    };

    const { body } = pipelineNotification(request, REGION);

    expect(body).toContain('Commit: 2222222 Fix the checkout\n');
    expect(body).not.toContain('Signed-off-by');
  });
});

describe('readableCause', () => {
  it('keeps the status and log link of a build JSON Step Functions cut short', () => {
    const cut = codeBuildCause().slice(0, 600);

    const lines = readableCause(cut);

    expect(lines).toContain('Build status: FAILED');
    expect(lines.join('\n')).not.toContain('hunter2-not-for-email');
  });

  it('shows a Lambda error as its type and message', () => {
    const cause = JSON.stringify({
      errorType: 'ConfigurationError',
      errorMessage: 'Missing X',
      trace: ['at a'],
    });

    expect(readableCause(cause)).toEqual(['Cause: ConfigurationError: Missing X']);
  });

  it('does not show JSON it does not know', () => {
    const cause = JSON.stringify({ anything: 'secret-looking-value' });

    expect(readableCause(cause).join('\n')).not.toContain('secret-looking-value');
  });

  it('shows plain text on one line', () => {
    expect(readableCause('The execution was stopped\nby an operator')).toEqual([
      'Cause: The execution was stopped by an operator',
    ]);
  });
});

const finishedBuild: BuildReport = {
  project: 'stepline-test-deploy',
  buildId: 'arn:aws:codebuild:eu-west-1:123456789012:build/stepline-test-deploy:5b0c1d2e',
  buildNumber: 42,
  status: 'FAILED',
  terminal: true,
  commit: '2222222222222222222222222222222222222222',
  environment: 'dev',
  logLink: DEEP_LINK,
  durationSeconds: 119,
  failedPhase: {
    type: 'BUILD',
    status: 'FAILED',
    context: ['COMMAND_EXECUTION_ERROR: Error while executing command: ./deploy.sh'],
  },
};

describe('buildNotification', () => {
  it('puts the outcome, project, environment and short commit in the subject', () => {
    expect(buildNotification(finishedBuild).subject).toBe(
      '✖ Build failed: stepline-test-deploy (dev) 2222222',
    );
  });

  it('names the build, its duration, failed phase and log in the body', () => {
    const { body } = buildNotification(finishedBuild);

    expect(body).toContain('Build: stepline-test-deploy:5b0c1d2e #42');
    expect(body).toContain('Status: FAILED');
    expect(body).toContain('Environment: dev');
    expect(body).toContain('Commit: 2222222222222222222222222222222222222222');
    expect(body).toContain('Duration: 1m 59s');
    expect(body).toContain('Failed phase: BUILD (FAILED)');
    expect(body).toContain('  COMMAND_EXECUTION_ERROR: Error while executing command: ./deploy.sh');
    expect(body).toContain(`Build log: ${DEEP_LINK}`);
  });

  it('words each terminal status', () => {
    const subjects = ['SUCCEEDED', 'STOPPED', 'FAULT', 'TIMED_OUT'].map(
      (status) => buildNotification({ ...finishedBuild, status, failedPhase: null }).subject,
    );

    expect(subjects).toEqual([
      '✔ Build succeeded: stepline-test-deploy (dev) 2222222',
      '■ Build stopped: stepline-test-deploy (dev) 2222222',
      '✖ Build failed (CodeBuild fault): stepline-test-deploy (dev) 2222222',
      '✖ Build timed out: stepline-test-deploy (dev) 2222222',
    ]);
  });

  it('says when the event has no commit or log link', () => {
    const { subject, body } = buildNotification({
      ...finishedBuild,
      commit: null,
      logLink: null,
      environment: null,
    });

    expect(subject).toBe('✖ Build failed: stepline-test-deploy');
    expect(body).toContain('Commit: not named in the event');
    expect(body).toContain('Build log: not available in the event');
  });
});

const runningExecution: ExecutionReport = {
  executionArn: EXECUTION_ARN,
  name: 'run-1',
  status: 'RUNNING',
  push: aPush(),
  startedAt: '2024-05-01T09:00:00.000Z',
  stoppedAt: null,
  durationSeconds: null,
  error: null,
  cause: null,
  redriveCount: 0,
};

describe('executionNotification', () => {
  it('tells a redriven run going on under its name from a new run', () => {
    const notification = executionNotification({ ...runningExecution, redriveCount: 2 }, REGION);

    expect(notification?.subject).toBe('↻ acme/shop main redriven: 2222222 Fix the checkout');
    expect(notification?.body).toContain('was redriven (redrive 2)');
    expect(notification?.body).toContain('Redrive: 2');
    expect(notification?.body).not.toContain('A pipeline run started');
  });

  it('announces a started run with its commit and message', () => {
    const notification = executionNotification(runningExecution, REGION);

    expect(notification?.subject).toBe('▶ acme/shop main started: 2222222 Fix the checkout');
    expect(notification?.body).toContain('Pushed by: octocat');
    expect(notification?.body).toContain(`Execution: ${CONSOLE_LINK}`);
  });

  it('reports an aborted run with its duration and cause', () => {
    const aborted: ExecutionReport = {
      ...runningExecution,
      status: 'ABORTED',
      stoppedAt: '2024-05-01T09:03:05.000Z',
      durationSeconds: 185,
      cause: 'Stopped by an operator',
    };

    const notification = executionNotification(aborted, REGION);

    expect(notification?.subject).toBe('■ acme/shop main aborted');
    expect(notification?.body).toContain('Duration: 3m 5s');
    expect(notification?.body).toContain('Cause: Stopped by an operator');
  });

  it('reports a timed-out run', () => {
    const notification = executionNotification({ ...runningExecution, status: 'TIMED_OUT' }, REGION);

    expect(notification?.subject).toBe('✖ acme/shop main timed out');
  });

  it('leaves succeeded and failed runs to the state machine’s own notifications', () => {
    expect(executionNotification({ ...runningExecution, status: 'SUCCEEDED' }, REGION)).toBeUndefined();
    expect(executionNotification({ ...runningExecution, status: 'FAILED' }, REGION)).toBeUndefined();
  });

  it('names a run started by hand by its execution name', () => {
    const notification = executionNotification({ ...runningExecution, push: null }, REGION);

    expect(notification?.subject).toBe('▶ Pipeline run run-1 started');
    expect(notification?.body).toContain('Execution name: run-1');
  });
});

describe('executionLink and formatDuration (shared/text.ts)', () => {
  it('links to the execution in the Step Functions console of its region', () => {
    expect(executionLink(REGION, EXECUTION_ARN)).toBe(CONSOLE_LINK);
  });

  it('formats seconds, minutes and hours', () => {
    expect([formatDuration(45_000), formatDuration(185_000), formatDuration(3_720_000)]).toEqual([
      '45s',
      '3m 5s',
      '1h 2m',
    ]);
    expect([formatDuration(3_340, { tenths: true }), formatDuration(65_000, { tenths: true })]).toEqual([
      '3.3s',
      '1m 5s',
    ]);
  });
});
