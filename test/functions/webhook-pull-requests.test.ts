import { readFileSync } from 'node:fs';
import {
  ExecutionAlreadyExists,
  ListExecutionsCommand,
  SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SfnPipelineStarter, SfnRunStopper } from '#shared/aws/sfn.ts';
import { createWebhookHandler, type WebhookDeps } from '#shared/handlers/webhook.ts';
import { createLogger } from '#shared/logger.ts';
import { ExecutionInputSchema, PipelineSettingsSchema } from '#shared/pipeline.ts';
import { SUPERSEDED_ERROR } from '#shared/release.ts';
import { TriggersSchema } from '#shared/triggers.ts';
import { httpEvent, hubSignature, lambdaContext } from '../helpers/lambda.ts';

/**
 * The webhook route over real pull-request payloads of the three providers, with the real Step Functions
 * adapters over a mocked SFN client: which deliveries start a CI run (and under which name, with which
 * input), which are answered 200 with a reason, and how a newer head stops the older head's run.
 */
import { MemoryLineStore } from '../helpers/release.ts';

const SECRETS = { github: 'github-secret', gitlab: 'gitlab-token', bitbucket: 'bitbucket-secret' };
const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-test-pipeline';
const EXECUTION_PREFIX = 'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:';
const sfn = mockClient(SFNClient);

type Handler = (event: unknown, context: unknown) => Promise<APIGatewayProxyStructuredResultV2>;
// biome-ignore lint/suspicious/noExplicitAny: the tests edit real payloads field by field, as the providers send them
type Json = Record<string, any>;

function fixture(provider: string, name: string): Json {
  return JSON.parse(readFileSync(new URL(`../fixtures/${provider}/${name}`, import.meta.url), 'utf8'));
}

function fixed(value: string) {
  return { current: async () => value, fetchAgain: async () => value };
}

function webhookHandler(overrides: Partial<WebhookDeps> = {}): Handler {
  return createWebhookHandler({
    starter: new SfnPipelineStarter(new SFNClient({}), STATE_MACHINE_ARN),
    runStopper: new SfnRunStopper(new SFNClient({}), STATE_MACHINE_ARN),
    lines: new MemoryLineStore(),
    // Pushes run every branch here: a pull request must still be decided by the pull-request rules.
    triggers: TriggersSchema.parse({ push: [{ branches: { includes: ['**'] } }] }),
    settings: PipelineSettingsSchema.parse({}),
    logger: createLogger('webhook'),
    webhookSecrets: {
      github: fixed(SECRETS.github),
      gitlab: fixed(SECRETS.gitlab),
      bitbucket: fixed(SECRETS.bitbucket),
    },
    builds: 'codebuild',
    ...overrides,
  }) as unknown as Handler;
}

function delivery(provider: 'github' | 'gitlab' | 'bitbucket', event: string, payload: Json) {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> =
    provider === 'github'
      ? {
          'X-GitHub-Event': event,
          'X-GitHub-Delivery': 'a1b2c3d4-0000-11ee-8000-000000000001',
          'X-Hub-Signature-256': hubSignature(body, SECRETS.github),
        }
      : provider === 'gitlab'
        ? { 'X-Gitlab-Event': event, 'X-Gitlab-Token': SECRETS.gitlab }
        : { 'X-Event-Key': event, 'X-Hub-Signature': hubSignature(body, SECRETS.bitbucket) };
  return httpEvent({
    path: `/webhooks/${provider}`,
    pathParameters: { provider },
    headers: { 'Content-Type': 'application/json', ...headers },
    body,
  });
}

let handler: Handler;

async function post(event: unknown, using: Handler = handler) {
  const response = await using(event, lambdaContext('stepline-test-webhook'));
  return { status: response.statusCode, body: JSON.parse(response.body ?? '{}') };
}

function started() {
  return sfn.commandCalls(StartExecutionCommand).map((call) => ({
    name: call.args[0].input.name ?? '',
    input: ExecutionInputSchema.parse(JSON.parse(call.args[0].input.input ?? '')),
  }));
}

beforeAll(() => {
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
  handler = webhookHandler();
});

beforeEach(() => {
  sfn.reset();
  sfn.on(StartExecutionCommand).callsFake((input: { name: string }) => ({
    executionArn: `${EXECUTION_PREFIX}${input.name}`,
  }));
  sfn.on(ListExecutionsCommand).resolves({ executions: [] });
  sfn.on(StopExecutionCommand).resolves({ stopDate: new Date() });
});

describe('GitHub pull_request', () => {
  it.each([
    ['octokit-pull_request.opened.json'],
    ['octokit-pull_request.synchronize.json'],
    ['zulip-pull_request__reopened.json'],
    ['zulip-pull_request__ready_for_review.json'],
  ])('starts a CI run of the head commit for %s', async (name) => {
    const payload = fixture('github', name);

    const { status, body } = await post(delivery('github', 'pull_request', payload));

    expect(status).toBe(202);
    const [run] = started();
    expect(body.started).toEqual([run?.name]);
    expect(run?.name).toMatch(
      new RegExp(`-pr${payload.number}-[0-9a-f]{8}-${payload.pull_request.head.sha.slice(0, 7)}-`),
    );
    expect(run?.input.pullRequest).toMatchObject({
      number: payload.number,
      head: payload.pull_request.head.sha,
      target: { branch: payload.pull_request.base.ref },
    });
    expect(run?.input.push).toMatchObject({ ref: `refs/heads/${payload.pull_request.head.ref}` });
    expect(run?.input.source).toEqual({
      type: 'GITHUB',
      location: payload.pull_request.head.repo.clone_url,
      version: payload.pull_request.head.sha,
    });
  });

  it('gives a pull request run a name no push of the same commit has', async () => {
    const payload = fixture('github', 'octokit-pull_request.opened.json');
    await post(delivery('github', 'pull_request', payload));
    const { name } = started()[0] ?? { name: '' };

    expect(name).toContain('-pr2-');
    expect(name).not.toMatch(/^hello-world-changes-/);
  });

  it('starts nothing twice for a redelivery, and answers 200', async () => {
    sfn
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: 'arn:x' })
      .rejects(new ExecutionAlreadyExists({ message: 'Execution already exists', $metadata: {} }));
    const payload = fixture('github', 'octokit-pull_request.synchronize.json');

    const first = await post(delivery('github', 'pull_request', payload));
    const second = await post(delivery('github', 'pull_request', payload));

    expect(first.status).toBe(202);
    expect(second).toMatchObject({
      status: 200,
      body: { started: [], alreadyStarted: [first.body.started[0]] },
    });
  });

  it("stops the running CI run of the request's older head, and no other run", async () => {
    const payload = fixture('github', 'octokit-pull_request.synchronize.json');
    await post(delivery('github', 'pull_request', { ...payload, action: 'opened' }));
    const newest = started()[0]?.name ?? '';
    const prefix = newest.slice(0, newest.lastIndexOf('-', newest.lastIndexOf('-') - 1) + 1);
    const older = `${prefix}f95f852-0123456789ab`;
    sfn.reset();
    sfn.on(StartExecutionCommand).resolves({ executionArn: `${EXECUTION_PREFIX}${newest}` });
    sfn.on(ListExecutionsCommand).resolves({
      executions: [
        newest,
        older,
        'hello-world-changes-ec26c3e-0123456789abcdef',
        'hello-world-pr3-00000000-ec26c3e-0123',
      ].map((name) => ({
        name,
        executionArn: `${EXECUTION_PREFIX}${name}`,
        stateMachineArn: STATE_MACHINE_ARN,
        status: 'RUNNING' as const,
        startDate: new Date(),
      })),
    });
    sfn.on(StopExecutionCommand).resolves({ stopDate: new Date() });

    const { status } = await post(delivery('github', 'pull_request', payload));

    expect(status).toBe(202);
    expect(sfn.commandCalls(ListExecutionsCommand)[0]?.args[0].input).toEqual({
      stateMachineArn: STATE_MACHINE_ARN,
      statusFilter: 'RUNNING',
    });
    expect(sfn.commandCalls(StopExecutionCommand).map((call) => call.args[0].input)).toEqual([
      {
        executionArn: `${EXECUTION_PREFIX}${older}`,
        error: SUPERSEDED_ERROR,
        cause: expect.stringContaining(`Superseded by ${newest}`),
      },
    ]);
  });

  it('still answers 202 when the older run cannot be stopped', async () => {
    sfn.on(ListExecutionsCommand).rejects(new Error('Rate exceeded'));

    const { status } = await post(
      delivery('github', 'pull_request', fixture('github', 'octokit-pull_request.opened.json')),
    );

    expect(status).toBe(202);
  });

  it.each([
    ['zulip-pull_request__closed.json', 'pull request #1 was closed'],
    ['octokit-pull_request.closed.json', 'pull request #2 was closed'],
  ])('answers a closed request (%s) with 200 and the reason, starting nothing', async (name, reason) => {
    const { status, body } = await post(delivery('github', 'pull_request', fixture('github', name)));

    expect(status).toBe(200);
    expect(body.message).toBe(`Nothing started: ${reason}`);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('answers a draft with 200 and the reason, and runs it when a filter asks for drafts', async () => {
    const payload = fixture('github', 'octokit-pull_request.opened.json');
    payload.pull_request.draft = true;

    const skipped = await post(delivery('github', 'pull_request', payload));
    const withDrafts = await post(
      delivery('github', 'pull_request', payload),
      webhookHandler({ triggers: TriggersSchema.parse({ pullRequest: [{ drafts: true }] }) }),
    );

    expect(skipped).toMatchObject({
      status: 200,
      body: { skipped: [{ reason: expect.stringContaining('is a draft') }] },
    });
    expect(withDrafts.status).toBe(202);
  });

  it('answers a request from a fork with 200, and builds the fork when a filter asks for forks', async () => {
    const payload = fixture('github', 'octokit-pull_request.opened.json');
    payload.pull_request.head.repo = {
      ...payload.pull_request.head.repo,
      full_name: 'octocat/Hello-World',
      html_url: 'https://github.com/octocat/Hello-World',
      clone_url: 'https://github.com/octocat/Hello-World.git',
    };

    const skipped = await post(delivery('github', 'pull_request', payload));
    const withForks = await post(
      delivery('github', 'pull_request', payload),
      webhookHandler({ triggers: TriggersSchema.parse({ pullRequest: [{ forks: true }] }) }),
    );

    expect(skipped).toMatchObject({
      status: 200,
      body: { skipped: [{ reason: expect.stringContaining('comes from the fork octocat/Hello-World') }] },
    });
    expect(withForks.status).toBe(202);
    expect(started()[0]?.input.source.location).toBe('https://github.com/octocat/Hello-World.git');
  });

  it('answers a request into another branch than the default with 200 when no filter names it', async () => {
    const payload = fixture('github', 'octokit-pull_request.opened.json');
    payload.pull_request.base.ref = 'develop';

    const { status, body } = await post(delivery('github', 'pull_request', payload));

    expect(status).toBe(200);
    expect(body.skipped[0].reason).toContain('targets develop, not the default branch (master)');
  });

  it('starts nothing when the settings run no stage for pull requests', async () => {
    const { status, body } = await post(
      delivery('github', 'pull_request', fixture('github', 'octokit-pull_request.opened.json')),
      webhookHandler({ settings: PipelineSettingsSchema.parse({ test: false }) }),
    );

    expect(status).toBe(200);
    expect(body.skipped[0].reason).toContain('settings.test');
  });
});

describe('GitLab Merge Request Hook', () => {
  it('starts a CI run of the last commit of an opened merge request', async () => {
    const payload = fixture('gitlab', 'gitlab-docs-merge-request-hook.json');

    const { status } = await post(delivery('gitlab', 'Merge Request Hook', payload));

    expect(status).toBe(202);
    expect(started()[0]?.input).toMatchObject({
      pullRequest: { provider: 'gitlab', number: 1, event: 'OPEN' },
      source: {
        type: 'GITLAB_SELF_MANAGED',
        location: 'http://example.com/awesome_space/awesome_project.git',
        version: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
      },
    });
  });

  it.each(['zulip-merge_request_closed.json', 'zulip-merge_request_merged.json'])(
    'answers %s with 200 and the reason',
    async (name) => {
      const { status, body } = await post(delivery('gitlab', 'Merge Request Hook', fixture('gitlab', name)));

      expect(status).toBe(200);
      expect(body.message).toMatch(/^Nothing started: merge request !\d+ was (closed|merged)$/);
    },
  );

  it('answers a draft merge request with 200 and the reason', async () => {
    const payload = fixture('gitlab', 'gitlab-docs-merge-request-hook.json');
    payload.object_attributes.draft = true;

    const { status, body } = await post(delivery('gitlab', 'Merge Request Hook', payload));

    expect(status).toBe(200);
    expect(body.skipped[0].reason).toContain('is a draft');
  });
});

describe('Bitbucket Cloud pullrequest', () => {
  it.each(['pullrequest:created', 'pullrequest:updated'])(
    'starts a CI run of the source commit on %s',
    async (event) => {
      const payload = fixture('bitbucket', 'go-playground-pull-request-created.json');

      const { status } = await post(delivery('bitbucket', event, payload));

      expect(status).toBe(202);
      expect(started()[0]?.input).toMatchObject({
        pullRequest: { provider: 'bitbucket', number: 1 },
        source: { type: 'BITBUCKET', version: 'd3022fc0ca3d' },
      });
    },
  );

  it.each(['pullrequest:rejected', 'pullrequest:fulfilled'])(
    'answers %s with 200 and the reason',
    async (event) => {
      const payload = fixture('bitbucket', 'zulip-bitbucket2-pull_request_merged_or_rejected.json');

      const { status, body } = await post(delivery('bitbucket', event, payload));

      expect(status).toBe(200);
      expect(body.message).toMatch(/^Nothing started: pull request #1 was (declined|merged)$/);
    },
  );

  it('answers a request from a fork with 200 and the reason', async () => {
    const payload = fixture('bitbucket', 'go-playground-pull-request-created.json');
    payload.pullrequest.source.repository.full_name = 'someone/repo_name';

    const { status, body } = await post(delivery('bitbucket', 'pullrequest:created', payload));

    expect(status).toBe(200);
    expect(body.skipped[0].reason).toContain('fork someone/repo_name');
  });
});
