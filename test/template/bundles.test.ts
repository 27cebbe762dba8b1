import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PackagedStack, packagedStack } from '../helpers/package-template.ts';

/**
 * The packaged bundles run as Lambda runs them: a CommonJS `.js` file alone in its folder (no
 * package.json), its handler required and called. Minified, they keep the error class names that the
 * state machines' Retry/Catch and the HTTP answers rely on.
 */

const exec = promisify(execFile);

let stack: PackagedStack;
let dir: string;

beforeAll(async () => {
  stack = await packagedStack();
  dir = await mkdtemp(join(tmpdir(), 'stepline-bundle-'));
}, 180_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Each file of a zip archive (stored or deflated), by name. */
function unzip(zip: Buffer): Map<string, Buffer> {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (end < 0) throw new Error('Not a zip archive: no end of central directory');
  const files = new Map<string, Buffer>();
  let offset = zip.readUInt32LE(end + 16);
  for (let index = 0; index < zip.readUInt16LE(end + 10); index++) {
    const method = zip.readUInt16LE(offset + 10);
    const size = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const entryEnd = offset + 46 + nameLength + zip.readUInt16LE(offset + 30) + zip.readUInt16LE(offset + 32);
    const name = zip.toString('utf8', offset + 46, offset + 46 + nameLength);
    const local = zip.readUInt32LE(offset + 42);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(start, start + size);
    if (method !== 0 && method !== 8) throw new Error(`${name}: unknown compression method ${method}`);
    files.set(name, method === 8 ? inflateRawSync(data) : Buffer.from(data));
    offset = entryEnd;
  }
  return files;
}

describe('packaged bundles', () => {
  it('run the webhook handler as CommonJS, answering an unknown provider with NotFoundError by name', async () => {
    const files = unzip(await readFile(join(stack.outputDir, 'webhook.zip')));
    const bundle = files.get('functions/webhook.js');
    expect(bundle, [...files.keys()].join(', ')).toBeDefined();
    const file = join(dir, 'functions', 'webhook.js');
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bundle ?? '');
    const event = {
      version: '2.0',
      rawPath: '/webhooks/nope',
      headers: {},
      requestContext: { http: { method: 'POST', path: '/webhooks/nope' }, requestId: 'r' },
      body: '{}',
      isBase64Encoded: false,
    };
    const script = `require(${JSON.stringify(file)}).handler(${JSON.stringify(event)}, {
      awsRequestId: 'r', functionName: 'webhook', getRemainingTimeInMillis: () => 1000,
    }).then((answer) => process.stdout.write('\\n' + JSON.stringify(answer)));`;
    const { stdout } = await exec(process.execPath, ['-e', script], {
      cwd: dir,
      timeout: 20_000,
      env: {
        PATH: process.env.PATH ?? '',
        AWS_REGION: 'eu-west-1',
        WEBHOOK_PROVIDERS: 'github',
        WEBHOOK_SECRET_PARAMETER_PREFIX: '/stepline/test/webhook-secret',
        STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-test-pipeline',
        RELEASE_TABLE: 'stepline-test-release',
        STEPLINE_TRIGGERS: '{}',
        STEPLINE_SETTINGS: '{}',
      },
    });
    const answer = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as { statusCode: number; body: string };

    expect(answer.statusCode).toBe(404);
    expect(JSON.parse(answer.body)).toMatchObject({ error: 'NotFoundError' });
  }, 60_000);

  it('leave out the SDK parts no function reaches on Lambda (serverless.yml, esbuild alias)', async () => {
    const zips = (await readdir(stack.outputDir)).filter(
      (name) => name.endsWith('.zip') && name !== 'stepline.zip',
    );
    expect(zips.length).toBeGreaterThanOrEqual(7);
    for (const zip of zips) {
      const files = unzip(await readFile(join(stack.outputDir, zip)));
      const bundle = [...files].find(([name]) => name.startsWith('functions/') && name.endsWith('.js'))?.[1];
      expect(bundle, `${zip}: ${[...files.keys()].join(', ')}`).toBeDefined();
      const code = bundle?.toString('utf8') ?? '';
      // The credential chain's web identity (STS) and SSO links, and the event-stream codec with the zlib it loads.
      for (const leftOut of [
        'AssumeRoleWithWebIdentity',
        'GetRoleCredentials',
        'Unrecognized header type tag',
        'node:zlib',
      ]) {
        expect(code.includes(leftOut), `${zip} holds ${leftOut}`).toBe(false);
      }
      expect(code, zip).toContain('event-streams is left out');
    }
  });

  it('carry zod/mini with its English messages (shared/zod.ts), not classic zod nor the other locales', async () => {
    const zips = (await readdir(stack.outputDir)).filter(
      (name) => name.endsWith('.zip') && name !== 'stepline.zip',
    );
    for (const zip of zips) {
      const files = unzip(await readFile(join(stack.outputDir, zip)));
      const bundle = [...files].find(([name]) => name.startsWith('functions/') && name.endsWith('.js'))?.[1];
      const code = bundle?.toString('utf8') ?? '';
      // zod names its schema classes with strings, which minifying keeps; a locale is known by its own words.
      expect(code, zip).toContain('"ZodMiniObject"');
      expect(code, zip).toContain('Invalid input: expected ');
      for (const classic of ['"ZodObject"', '"ZodString"', 'Ungültige Eingabe', 'Entrada inválida']) {
        expect(code.includes(classic), `${zip} holds ${classic}`).toBe(false);
      }
    }
  });

  /**
   * Runs the packaged commit status handler on `event` against one local server that stands in for SSM
   * (its JSON protocol, AWS_ENDPOINT_URL_SSM), Step Functions, CodeBuild and a self-managed GitLab or a
   * GitHub Enterprise Server; returns what the server was asked.
   */
  async function runPackagedCommitStatus(
    provider: string,
    event: (url: string) => Record<string, unknown>,
    answers: Record<string, (body: string) => unknown> = {},
  ): Promise<{ target: string; path: string; token: string; body: string }[]> {
    const files = unzip(await readFile(join(stack.outputDir, 'commitStatus.zip')));
    const bundle = files.get('functions/commit-status.js');
    expect(bundle, [...files.keys()].join(', ')).toBeDefined();
    const file = join(dir, 'functions', 'commit-status.js');
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bundle ?? '');

    const requests: { target: string; path: string; token: string; body: string }[] = [];
    const server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      request.on('end', () => {
        const target = String(request.headers['x-amz-target'] ?? '');
        const auth =
          request.headers['private-token'] ??
          String(request.headers.authorization ?? '').replace(/^token /, '');
        requests.push({ target, path: request.url ?? '', token: target ? '' : String(auth ?? ''), body });
        response.writeHead(target ? 200 : 201, { 'content-type': 'application/json' });
        const answer =
          target === 'AmazonSSM.GetParameter'
            ? { Parameter: { Name: JSON.parse(body).Name, Type: 'SecureString', Value: 'glpat-from-ssm' } }
            : (answers[target]?.(body) ?? {});
        response.end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const script = `require(${JSON.stringify(file)}).handler(${JSON.stringify(event(url))}, {
      awsRequestId: 'r', functionName: 'commitStatus', getRemainingTimeInMillis: () => 60000,
    }).then(() => process.stdout.write('\\ndone'));`;
    try {
      const { stdout, stderr } = await exec(process.execPath, ['-e', script], {
        cwd: dir,
        timeout: 30_000,
        env: {
          PATH: process.env.PATH ?? '',
          AWS_REGION: 'eu-west-1',
          AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
          AWS_SECRET_ACCESS_KEY: 'secret',
          AWS_ENDPOINT_URL_SSM: url,
          AWS_ENDPOINT_URL_SFN: url,
          AWS_ENDPOINT_URL_CODEBUILD: url,
          NOTIFICATIONS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:stepline-test-notifications',
          STATE_MACHINE_ARN: STATE_MACHINE_ARN,
          TEST_PROJECT_NAME: 'stepline-test-test',
          STATUS_PROVIDERS: provider,
          STATUS_TOKEN_PARAMETER_PREFIX: '/stepline/test/status-token',
        },
      });
      expect(stdout.trim().split('\n').at(-1)).toBe('done');
      expect(`${stdout}${stderr}`).not.toContain('glpat-from-ssm');
    } finally {
      server.close();
    }
    return requests;
  }

  const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-test-pipeline';
  const RUN_ARN = 'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-1';
  const COMMIT = 'c'.repeat(40);
  const pushOf = (provider: string, url: string) => ({
    provider,
    repository: { fullName: 'platform/shop', cloneUrl: `${url}/platform/shop.git` },
    ref: 'refs/heads/main',
    refType: 'branch',
    refName: 'main',
    before: null,
    after: COMMIT,
    created: true,
    deleted: false,
    forced: false,
    commitsTruncated: false,
  });

  it.each([
    {
      provider: 'gitlab',
      client: 'Gitbeaker',
      path: (commit: string) => `/api/v4/projects/platform%2Fshop/statuses/${commit}`,
    },
    {
      provider: 'github',
      client: 'Octokit',
      path: (commit: string) => `/api/v3/repos/platform/shop/statuses/${commit}`,
    },
  ])(
    'run the commit status handler, which reads its token from SSM and posts to $provider through the $client it loads',
    async ({ provider, path }) => {
      const requests = await runPackagedCommitStatus(provider, (url) => ({
        version: '0',
        id: 'e-1',
        'detail-type': 'Step Functions Execution Status Change',
        source: 'aws.states',
        account: '123456789012',
        time: '2026-01-01T10:01:00Z',
        region: 'eu-west-1',
        resources: [],
        detail: {
          executionArn: RUN_ARN,
          stateMachineArn: STATE_MACHINE_ARN,
          name: 'run-1',
          status: 'SUCCEEDED',
          startDate: 1767261600000,
          stopDate: 1767261660000,
          input: JSON.stringify({ push: pushOf(provider, url), source: { version: COMMIT } }),
        },
      }));
      expect(requests.map(({ target, path, token }) => [target, path, token])).toEqual([
        ['AmazonSSM.GetParameter', '/', ''],
        ['', path(COMMIT), 'glpat-from-ssm'],
      ]);
      expect(JSON.parse(requests[0]?.body ?? '{}')).toEqual({
        Name: `/stepline/test/status-token/${provider}`,
        WithDecryption: true,
      });
      expect(JSON.parse(requests[1]?.body ?? '{}')).toMatchObject({
        state: 'success',
        description: 'Succeeded in 1 min',
        ...(provider === 'gitlab' ? { name: 'stepline', ref: 'main' } : { context: 'stepline' }),
      });
    },
    60_000,
  );

  it("run the commit status handler on the Test build's end: it loads the CodeBuild client then, and counts the build's test reports", async () => {
    const buildArn = 'arn:aws:codebuild:eu-west-1:123456789012:build/stepline-test-test:0c1d2e3f';
    const reportArn = 'arn:aws:codebuild:eu-west-1:123456789012:report/stepline-test-test-junit:1';
    let url = '';
    const requests = await runPackagedCommitStatus(
      'github',
      (base) => {
        url = base;
        return {
          version: '0',
          id: 'e-2',
          'detail-type': 'CodeBuild Build State Change',
          source: 'aws.codebuild',
          account: '123456789012',
          time: '2026-01-01T10:02:00Z',
          region: 'eu-west-1',
          resources: [buildArn],
          detail: {
            'build-status': 'SUCCEEDED',
            'project-name': 'stepline-test-test',
            'build-id': buildArn,
            'current-phase': 'COMPLETED',
            'current-phase-context': '[]',
            version: '1',
            'additional-information': {
              'build-complete': true,
              'build-start-time': 'Jan 1, 2026 10:01:00 AM',
              environment: {
                'environment-variables': [
                  { name: 'STEPLINE_EXECUTION_ID', value: RUN_ARN, type: 'PLAINTEXT' },
                ],
              },
              phases: [{ 'phase-type': 'COMPLETED', 'start-time': 'Jan 1, 2026 10:01:42 AM' }],
            },
          },
        };
      },
      {
        'AWSStepFunctions.DescribeExecution': () => ({
          executionArn: RUN_ARN,
          stateMachineArn: STATE_MACHINE_ARN,
          status: 'RUNNING',
          startDate: 1767261600,
          input: JSON.stringify({ push: pushOf('github', url), source: { version: COMMIT } }),
        }),
        'CodeBuild_20161006.BatchGetBuilds': () => ({
          builds: [{ id: 'stepline-test-test:0c1d2e3f', reportArns: [reportArn] }],
        }),
        'CodeBuild_20161006.BatchGetReports': () => ({
          reports: [
            {
              arn: reportArn,
              type: 'TEST',
              testSummary: {
                total: 13,
                statusCounts: { SUCCEEDED: 12, SKIPPED: 1 },
                durationInNanoSeconds: 5,
              },
            },
          ],
        }),
      },
    );
    expect(requests.map(({ target }) => target)).toEqual([
      'AWSStepFunctions.DescribeExecution',
      'CodeBuild_20161006.BatchGetBuilds',
      'CodeBuild_20161006.BatchGetReports',
      'AmazonSSM.GetParameter',
      '',
    ]);
    expect(JSON.parse(requests[1]?.body ?? '{}')).toEqual({ ids: ['stepline-test-test:0c1d2e3f'] });
    expect(JSON.parse(requests[4]?.body ?? '{}')).toMatchObject({
      state: 'success',
      context: 'stepline/test',
      description: expect.stringMatching(/^12 passed, 1 skipped/),
    });
  }, 60_000);
});
