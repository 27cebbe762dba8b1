import { readFileSync } from 'node:fs';
import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DynamoLineStore } from '#shared/aws/dynamodb.ts';
import { SfnPipelineStarter, SfnRunStopper } from '#shared/aws/sfn.ts';
import { SECRET_MAX_AGE_MS, SECRET_MIN_REFETCH_MS, SsmSecretReader } from '#shared/aws/ssm.ts';
import { createWebhookHandler, MAX_BODY_BYTES, type WebhookDeps } from '#shared/handlers/webhook.ts';
import { createLogger } from '#shared/logger.ts';
import { ExecutionInputSchema, PipelineSettingsSchema } from '#shared/pipeline.ts';
import { webhookSecretsFor } from '#shared/secrets.ts';
import { TriggersSchema } from '#shared/triggers.ts';
import { httpEvent, hubSignature, lambdaContext } from '../helpers/lambda.ts';

const SECRET = 'webhook-secret-for-tests';
const GITLAB_SECRET = 'gitlab-token-for-tests';
const BITBUCKET_SECRET = 'bitbucket-secret-for-tests';
const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-test-pipeline';
const sfn = mockClient(SFNClient);
const dynamo = mockClient(DynamoDBClient);
const githubPush = readFileSync(
  new URL('../fixtures/github/go-playground-push.json', import.meta.url),
  'utf8',
);
const githubPing = readFileSync(
  new URL('../fixtures/github/go-playground-ping.json', import.meta.url),
  'utf8',
);

type Handler = (event: unknown, context: unknown) => Promise<APIGatewayProxyStructuredResultV2>;
let handler: Handler;
const maxBodyBytes = MAX_BODY_BYTES;

function fixed(value: string) {
  return { current: async () => value, fetchAgain: async () => value };
}

function webhookHandler(overrides: Partial<WebhookDeps> = {}): Handler {
  return createWebhookHandler({
    starter: new SfnPipelineStarter(new SFNClient({}), STATE_MACHINE_ARN),
    lines: new DynamoLineStore(new DynamoDBClient({}), 'stepline-test-release'),
    triggers: TriggersSchema.parse({}),
    settings: PipelineSettingsSchema.parse({}),
    logger: createLogger('webhook'),
    webhookSecrets: {
      github: fixed(SECRET),
      gitlab: fixed(GITLAB_SECRET),
      bitbucket: fixed(BITBUCKET_SECRET),
    },
    builds: 'codebuild',
    runStopper: new SfnRunStopper(new SFNClient({}), STATE_MACHINE_ARN),
    ...overrides,
  }) as unknown as Handler;
}

beforeAll(() => {
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
  handler = webhookHandler();
});

beforeEach(() => {
  sfn.reset();
  dynamo.reset();
  // The line's push counter: this push is the line's 7th.
  dynamo.on(UpdateItemCommand).resolves({ Attributes: { sequence: { N: '7' } } });
  sfn.on(StartExecutionCommand).callsFake((input: { name: string }) => ({
    executionArn: `${STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:${input.name}`,
  }));
});

function githubDelivery(body: string, headers: Record<string, string> = {}) {
  return httpEvent({
    path: '/webhooks/github',
    pathParameters: { provider: 'github' },
    headers: {
      'Content-Type': 'application/json',
      'X-GitHub-Event': 'push',
      'X-GitHub-Delivery': '72d3162e-cc78-11e3-81ab-4c9367dc0958',
      'X-Hub-Signature-256': hubSignature(body, SECRET),
      ...headers,
    },
    body,
  });
}

async function post(event: unknown, using: Handler = handler) {
  const response = await using(event, lambdaContext('stepline-test-webhook'));
  return { status: response.statusCode, body: JSON.parse(response.body ?? '{}') };
}

describe('POST /webhooks/github', () => {
  it('starts one execution for a signed push to the default branch, with the push as input', async () => {
    const { status, body } = await post(githubDelivery(githubPush));
    expect(status).toBe(202);
    expect(body.started).toHaveLength(1);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
    const call = sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input;
    expect(call?.stateMachineArn).toBe(STATE_MACHINE_ARN);
    expect(call?.name).toBe(body.started[0]);
    const input = ExecutionInputSchema.parse(JSON.parse(call?.input ?? ''));
    expect(input.push).toMatchObject({ provider: 'github', ref: 'refs/heads/master' });
    expect(input.source).toEqual({
      type: 'GITHUB',
      location: input.push.repository.cloneUrl,
      version: 'fd489864e7642b48eaad6e3f155c10e46810ec72',
    });
    expect(input.deliveryId).toBe('72d3162e-cc78-11e3-81ab-4c9367dc0958');
    expect(call?.input).not.toContain(SECRET);
  });

  it('starts one execution when the same delivery is posted twice', async () => {
    sfn
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: 'arn:x' })
      .rejects(new ExecutionAlreadyExists({ message: 'Execution already exists', $metadata: {} }));
    const first = await post(githubDelivery(githubPush));
    const second = await post(githubDelivery(githubPush));
    expect(first.status).toBe(202);
    expect(second).toMatchObject({
      status: 200,
      body: { message: 'Already started: this push was delivered before' },
    });
    const names = sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.name);
    expect(names).toHaveLength(2);
    expect(names[0]).toBe(names[1]);
  });

  it('starts a run for a force-push back to a commit that already ran, and one only when it is redelivered', async () => {
    // Step Functions' own rule: a name already used answers ExecutionAlreadyExists.
    const used = new Set<string>();
    sfn.on(StartExecutionCommand).callsFake((input: { name: string }) => {
      if (used.has(input.name)) {
        throw new ExecutionAlreadyExists({ message: 'Execution already exists', $metadata: {} });
      }
      used.add(input.name);
      return { executionArn: `${STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:${input.name}` };
    });
    const original = JSON.parse(githubPush);
    const ranCommit: string = original.after;
    const later = { ...original, before: ranCommit, after: 'a'.repeat(40), forced: false };
    const back = { ...original, before: later.after, after: ranCommit, forced: true };
    const deliveries = [original, later, back].map((payload, index) =>
      githubDelivery(JSON.stringify(payload), { 'X-GitHub-Delivery': `delivery-${index}` }),
    );
    const answers = [];
    for (const delivery of deliveries) answers.push(await post(delivery));
    const redelivered = await post(deliveries[2]);
    expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202]);
    expect(answers[2]?.body.started[0]).not.toBe(answers[0]?.body.started[0]);
    expect(redelivered).toMatchObject({
      status: 200,
      body: { message: 'Already started: this push was delivered before' },
    });
    expect(used.size).toBe(3);
    const backInput = ExecutionInputSchema.parse(
      JSON.parse(sfn.commandCalls(StartExecutionCommand)[2]?.args[0].input.input ?? ''),
    );
    expect(backInput.source.version).toBe(ranCommit);
  });

  it('answers a ping with 200 and starts nothing', async () => {
    const { status, body } = await post(githubDelivery(githubPing, { 'X-GitHub-Event': 'ping' }));
    expect(status).toBe(200);
    expect(body.message).toMatch(/^Nothing started: .*ping/);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('answers a push to another branch with 200 and the reason', async () => {
    const payload = JSON.parse(githubPush);
    payload.ref = 'refs/heads/feature/x';
    const { status, body } = await post(githubDelivery(JSON.stringify(payload)));
    expect(status).toBe(200);
    expect(body.skipped).toEqual([
      { ref: 'refs/heads/feature/x', reason: expect.stringContaining('not the default branch') },
    ]);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('answers a deleted branch with 200 and starts nothing', async () => {
    const payload = JSON.parse(githubPush);
    Object.assign(payload, { deleted: true, after: '0'.repeat(40), head_commit: null, commits: [] });
    const { status, body } = await post(githubDelivery(JSON.stringify(payload)));
    expect(status).toBe(200);
    expect(body.message).toBe('Nothing started: branch master was deleted');
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('refuses a wrong signature with 401', async () => {
    const event = githubDelivery(githubPush, { 'X-Hub-Signature-256': hubSignature(githubPush, 'wrong') });
    const { status, body } = await post(event);
    expect(status).toBe(401);
    expect(JSON.stringify(body)).not.toContain(SECRET);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('refuses a missing signature with 401 before looking at the payload', async () => {
    const event = githubDelivery('{not json');
    delete event.headers['x-hub-signature-256'];
    expect((await post(event)).status).toBe(401);
  });

  it('answers malformed JSON with 400 saying so', async () => {
    const { status, body } = await post(githubDelivery('{"ref": '));
    expect(status).toBe(400);
    expect(body.message).toMatch(/not valid JSON/);
  });

  it('answers a push missing what a push needs with 400 naming the field', async () => {
    const payload = JSON.parse(githubPush);
    delete payload.repository;
    const { status, body } = await post(githubDelivery(JSON.stringify(payload)));
    expect(status).toBe(400);
    expect(body.message).toMatch(/repository/);
  });

  it('answers a push whose after is a branch name with 400 naming the field', async () => {
    const payload = { ...JSON.parse(githubPush), after: 'main' };
    const { status, body } = await post(githubDelivery(JSON.stringify(payload)));
    expect(status).toBe(400);
    expect(body.message).toBe(
      'GitHub push payload has an invalid after: expected a full commit id (40 or 64 hex digits)',
    );
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('refuses a push whose clone URL is not its repository, naming both', async () => {
    const payload = JSON.parse(githubPush);
    payload.repository.clone_url = 'https://github.com/mallory/payload.git';
    const { status, body } = await post(githubDelivery(JSON.stringify(payload)));
    expect(status).toBe(400);
    expect(body.message).toContain(
      'repository.clone_url https://github.com/mallory/payload.git does not belong to repository.full_name binkkatal/sample_app',
    );
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('answers an unknown provider with 404 naming the known ones', async () => {
    const event = httpEvent({ path: '/webhooks/gitea', pathParameters: { provider: 'gitea' }, body: '{}' });
    const { status, body } = await post(event);
    expect(status).toBe(404);
    expect(body.message).toBe('Unknown provider "gitea": use github, gitlab, bitbucket');
  });

  it('takes a push padded to the 4 MiB limit, which base64-encoded still fits a Lambda invocation (6 MB)', async () => {
    const push = JSON.parse(githubPush) as Record<string, unknown>;
    const padding = maxBodyBytes - Buffer.byteLength(JSON.stringify({ ...push, padding: '' }));
    const body = JSON.stringify({ ...push, padding: 'x'.repeat(padding) });
    expect(Buffer.byteLength(body)).toBe(4 * 1024 * 1024);
    expect(Buffer.from(body).toString('base64').length).toBeLessThan(6_000_000);
    const { status } = await post(githubDelivery(body));
    expect(status).toBe(202);
  });

  it('answers a body over the limit with 413 naming the limit', async () => {
    const { status, body } = await post(githubDelivery('x'.repeat(maxBodyBytes + 1)));
    expect(status).toBe(413);
    expect(body.message).toBe(`The request body is over the limit of ${maxBodyBytes} bytes`);
  });

  it('reads a base64-encoded body as the bytes that were signed', async () => {
    const event = githubDelivery(githubPush);
    event.body = Buffer.from(githubPush).toString('base64');
    event.isBase64Encoded = true;
    expect((await post(event)).status).toBe(202);
  });

  it('accepts GitHub form-encoded deliveries', async () => {
    const form = `payload=${encodeURIComponent(githubPush)}`;
    const event = githubDelivery(form, { 'Content-Type': 'application/x-www-form-urlencoded' });
    expect((await post(event)).status).toBe(202);
  });

  it('answers 500 without internals when Step Functions fails', async () => {
    sfn.on(StartExecutionCommand).rejects(new Error('Service unavailable at 10.0.0.1'));
    const { status, body } = await post(githubDelivery(githubPush));
    expect(status).toBe(500);
    expect(JSON.stringify(body)).not.toContain('10.0.0.1');
  });
});

const gitlabPush = readFileSync(
  new URL('../fixtures/gitlab/gitlab-docs-push-hook.json', import.meta.url),
  'utf8',
);
const dataCenterPush = readFileSync(
  new URL('../fixtures/bitbucket/jenkins-server-pushPayload.json', import.meta.url),
  'utf8',
);

function gitlabDelivery(body: string, token: string) {
  return httpEvent({
    path: '/webhooks/gitlab',
    pathParameters: { provider: 'gitlab' },
    headers: { 'Content-Type': 'application/json', 'X-Gitlab-Event': 'Push Hook', 'X-Gitlab-Token': token },
    body,
  });
}

function dataCenterDelivery(body: string) {
  return httpEvent({
    path: '/webhooks/bitbucket',
    pathParameters: { provider: 'bitbucket' },
    headers: {
      'Content-Type': 'application/json',
      'X-Event-Key': 'repo:refs_changed',
      'X-Request-Id': 'dc-delivery-1',
      'X-Hub-Signature': hubSignature(body, BITBUCKET_SECRET),
    },
    body,
  });
}

describe('one webhook secret per provider', () => {
  it("refuses a delivery to the GitHub route signed with GitLab's token (401)", async () => {
    const event = githubDelivery(githubPush, {
      'X-Hub-Signature-256': hubSignature(githubPush, GITLAB_SECRET),
      'X-Gitlab-Token': GITLAB_SECRET,
    });
    const { status, body } = await post(event);
    expect(status).toBe(401);
    expect(body.message).toBe('X-Hub-Signature-256 header does not match the payload');
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it("refuses GitHub's secret as a GitLab token (401), and accepts GitLab's own", async () => {
    expect((await post(gitlabDelivery(gitlabPush, SECRET))).status).toBe(401);
    const payload = { ...JSON.parse(gitlabPush), ref: 'refs/heads/master' };
    const accepted = await post(gitlabDelivery(JSON.stringify(payload), GITLAB_SECRET));
    expect(accepted.status).toBe(202);
  });

  it('answers 404 for a provider with no secret configured, saying how to configure one', async () => {
    const onlyGitHub = webhookHandler({ webhookSecrets: { github: fixed(SECRET) } });
    const { status, body } = await post(gitlabDelivery(gitlabPush, GITLAB_SECRET), onlyGitHub);
    expect(status).toBe(404);
    expect(body.message).toBe(
      'No webhook secret is configured for gitlab, so gitlab deliveries are not accepted: list gitlab in ' +
        'the webhookProviders parameter (or set STEPLINE_WEBHOOK_SECRET_GITLAB)',
    );
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });
});

describe('a rotated webhook secret', () => {
  const ssm = mockClient(SSMClient);
  const NAME = '/stepline/test/webhook-secret/github';

  function rotatingHandler(now: () => number) {
    const secrets = webhookSecretsFor(
      { WEBHOOK_PROVIDERS: 'github', WEBHOOK_SECRET_PARAMETER_PREFIX: '/stepline/test/webhook-secret' },
      () => new SsmSecretReader(new SSMClient({}), { now }),
    );
    return webhookHandler({ webhookSecrets: secrets });
  }

  function signedWith(secret: string) {
    return githubDelivery(githubPush, { 'X-Hub-Signature-256': hubSignature(githubPush, secret) });
  }

  beforeEach(() => ssm.reset());

  it('is picked up by a warm handler when a delivery fails with the cached one', async () => {
    let clock = 0;
    const warm = rotatingHandler(() => clock);
    ssm.on(GetParameterCommand, { Name: NAME }).resolves({ Parameter: { Value: 'old-secret' } });
    expect((await post(signedWith('old-secret'), warm)).status).toBe(202);

    ssm.on(GetParameterCommand, { Name: NAME }).resolves({ Parameter: { Value: 'new-secret' } });
    clock += SECRET_MIN_REFETCH_MS;
    expect((await post(signedWith('new-secret'), warm)).status).toBe(202);
    expect((await post(signedWith('old-secret'), warm)).status).toBe(401);
    expect(ssm).toHaveReceivedCommandTimes(GetParameterCommand, 2);
  });

  it('is read again once the cached one is older than the max age, without a failure', async () => {
    let clock = 0;
    const warm = rotatingHandler(() => clock);
    ssm.on(GetParameterCommand, { Name: NAME }).resolves({ Parameter: { Value: 'old-secret' } });
    expect((await post(signedWith('old-secret'), warm)).status).toBe(202);
    ssm.on(GetParameterCommand, { Name: NAME }).resolves({ Parameter: { Value: 'new-secret' } });
    clock += SECRET_MAX_AGE_MS;
    // The cache has expired: the old secret is refused with no forced read needed.
    expect((await post(signedWith('old-secret'), warm)).status).toBe(401);
    expect(ssm).toHaveReceivedCommandTimes(GetParameterCommand, 2);
  });

  it('does not read SSM again for each forged delivery', async () => {
    let clock = 0;
    const warm = rotatingHandler(() => clock);
    ssm.on(GetParameterCommand, { Name: NAME }).resolves({ Parameter: { Value: 'the-secret' } });
    for (let i = 0; i < 5; i++) expect((await post(signedWith(`forged-${i}`), warm)).status).toBe(401);
    clock += 1000;
    expect((await post(signedWith('forged-again'), warm)).status).toBe(401);
    expect(ssm).toHaveReceivedCommandTimes(GetParameterCommand, 1);
  });
});

describe('sources CodeBuild cannot build', () => {
  it('answers a Bitbucket Data Center push on AWS with 200 "not supported on AWS yet" and starts nothing', async () => {
    const { status, body } = await post(dataCenterDelivery(dataCenterPush));
    expect(status).toBe(200);
    expect(body.message).toMatch(
      /^Nothing started: Bitbucket Data Center \/ Server pushes are not supported on AWS yet/,
    );
    expect(body.started).toEqual([]);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('starts a Bitbucket Data Center push when the builds run locally', async () => {
    const local = webhookHandler({
      builds: 'local',
      triggers: TriggersSchema.parse({ push: [{ branches: { includes: ['**'] } }] }),
    });
    const { status } = await post(dataCenterDelivery(dataCenterPush), local);
    expect(status).toBe(202);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
  });

  it('refuses a clone URL that is a local path on AWS, and starts it locally', async () => {
    const payload = JSON.parse(githubPush);
    payload.repository.clone_url = '/home/me/.stepline/git/sample_app.git';
    const body = JSON.stringify(payload);
    const refused = await post(githubDelivery(body));
    expect(refused).toMatchObject({
      status: 400,
      body: {
        message: 'The clone URL of binkkatal/sample_app is not an http(s) URL: CodeBuild cannot clone it',
      },
    });
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
    expect((await post(githubDelivery(body), webhookHandler({ builds: 'local' }))).status).toBe(202);
  });
});

describe('a real-size push', () => {
  // Step Functions refuses an execution input over 256 KiB (States.DataLimitExceeded):
  // https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
  const QUOTA = 256 * 1024;

  function bigPush(): string {
    const payload = JSON.parse(githubPush);
    const message = `Refactor every module\n\n${'Moves the files, renames the exports, updates the imports. '.repeat(2000)}`;
    // 10,000 files over five commits (GitHub lists at most 3,000 per commit), the last one under docs/.
    payload.commits = Array.from({ length: 5 }, (_, c) => ({
      id: `${c}`.repeat(40),
      message,
      added: Array.from({ length: 2000 }, (_, f) =>
        c === 4 && f === 1999
          ? 'docs/the-only-documentation-change.md'
          : `src/module-${c}/file-${f}-with-a-long-descriptive-name.ts`,
      ),
      modified: [],
      removed: [],
    }));
    payload.head_commit = { ...payload.head_commit, message };
    payload.pusher = { name: `Pat ${'de la '.repeat(5000)}Pusher` };
    return JSON.stringify(payload);
  }

  it('starts with an execution input well under 256 KiB: no file list, bounded free text', async () => {
    const body = bigPush();
    expect(Buffer.byteLength(body)).toBeGreaterThan(QUOTA);
    const { status } = await post(githubDelivery(body));
    expect(status).toBe(202);
    const raw = sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input.input ?? '';
    const bytes = Buffer.byteLength(raw, 'utf8');
    console.info(
      `execution input: ${bytes} bytes for a ${Buffer.byteLength(body)}-byte push of 10,000 files`,
    );
    expect(bytes).toBeLessThan(QUOTA / 16);
    const input = ExecutionInputSchema.parse(JSON.parse(raw));
    expect(JSON.parse(raw).push).not.toHaveProperty('changedFiles');
    expect(Array.from(input.push.headCommitMessage ?? '')).toHaveLength(1000);
    expect(input.push.headCommitMessage?.endsWith('…')).toBe(true);
    expect(Array.from(input.push.pusher ?? '')).toHaveLength(100);
  });

  it('still applies a file-path filter to all 10,000 files before starting', async () => {
    const docsOnly = webhookHandler({
      triggers: TriggersSchema.parse({
        push: [{ branches: { includes: ['master'] }, filePaths: { includes: ['docs/**'] } }],
      }),
    });
    const { status, body } = await post(githubDelivery(bigPush()), docsOnly);
    expect(status).toBe(202);
    expect(body.started).toHaveLength(1);
    const noMatch = webhookHandler({
      triggers: TriggersSchema.parse({
        push: [{ branches: { includes: ['master'] }, filePaths: { includes: ['infra/**'] } }],
      }),
    });
    const skipped = await post(githubDelivery(bigPush()), noMatch);
    expect(skipped.status).toBe(200);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
  });

  it('refuses a ref over 1024 characters with 400 instead of a run that cannot start', async () => {
    const payload = { ...JSON.parse(githubPush), ref: `refs/heads/${'x'.repeat(1100)}` };
    const { status, body } = await post(
      githubDelivery(JSON.stringify(payload)),
      webhookHandler({
        triggers: TriggersSchema.parse({ push: [{ branches: { includes: ['**'] } }] }),
      }),
    );
    expect(status).toBe(400);
    expect(body.message).toBe("The push's ref is over 1024 characters");
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });
});
