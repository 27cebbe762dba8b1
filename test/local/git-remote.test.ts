import { execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { GitCommandError } from '#local/git/command.ts';
import {
  createLocalRemote,
  HOOK_FILES,
  pushSampleApp,
  webhookSecretPath,
  writeWebhookSecret,
} from '#local/git/remote.ts';
import { normalizeGitHubWebhook } from '#shared/providers/github.ts';
import { ZERO_SHA } from '#shared/push.ts';
import { verifyGitHubSignature } from '#shared/signatures.ts';
import { copySampleApp, SAMPLE_APP_DIR } from '../helpers/sample-app.ts';

const execFileAsync = promisify(execFile);

interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

interface PushPayload {
  ref: string;
  before: string;
  after: string;
  created: boolean;
  deleted: boolean;
  forced: boolean;
  commits: { id: string; message: string; added: string[]; modified: string[]; removed: string[] }[];
  head_commit: { id: string; message: string } | null;
  repository: { full_name: string; clone_url: string; default_branch: string };
  pusher: { name: string; email?: string };
}

type Answer = { status: number; body: unknown };

/** An HTTP server on 127.0.0.1:0 that records each request before answering it. */
class RecordingServer {
  readonly requests: RecordedRequest[] = [];
  answer: Answer = {
    status: 202,
    body: { message: 'Started 1 run', started: ['run-1'], alreadyStarted: [], skipped: [] },
  };
  readonly #server: Server;

  constructor() {
    this.#server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        this.requests.push({
          method: request.method ?? '',
          url: request.url ?? '',
          headers: request.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        });
        response.writeHead(this.answer.status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(this.answer.body));
      });
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/webhooks/github`;
  }

  async stop(): Promise<void> {
    if (!this.#server.listening) return;
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  payloads(): PushPayload[] {
    return this.requests.map((request) => JSON.parse(request.body) as PushPayload);
  }
}

function hmac(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

describe('createLocalRemote', () => {
  let scratch: string;
  let stateDir: string;
  let server: RecordingServer;
  let webhookUrl: string;
  let secret: string;
  /** The environment of the pusher's git: a hermetic global configuration naming the pusher. */
  let pusherEnv: NodeJS.ProcessEnv;

  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'stepline-remote-'));
    stateDir = join(scratch, 'state');
    const globalConfig = join(scratch, 'gitconfig');
    await writeFile(globalConfig, '[user]\n\tname = Pat Pusher\n\temail = pat@example.com\n');
    pusherEnv = { ...process.env, GIT_CONFIG_GLOBAL: globalConfig, GIT_CONFIG_NOSYSTEM: '1' };
    delete pusherEnv.STEPLINE_WEBHOOK_SECRET_GITHUB;
    vi.stubEnv('GIT_CONFIG_GLOBAL', globalConfig);
    vi.stubEnv('GIT_CONFIG_NOSYSTEM', '1');
    server = new RecordingServer();
    webhookUrl = await server.start();
    secret = randomBytes(24).toString('hex');
  });

  afterEach(async () => {
    vi.unstubAllEnvs();
    await server.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  /** Runs git in `cwd` as the pusher; resolves with its exit code and output instead of throwing. */
  async function gitIn(cwd: string, args: string[], env: NodeJS.ProcessEnv = pusherEnv) {
    try {
      const { stdout, stderr } = await execFileAsync('git', args, { cwd, env });
      return { exitCode: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { exitCode: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
    }
  }

  async function gitOk(cwd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
    const result = await gitIn(cwd, args, env);
    expect(result.exitCode, `git ${args.join(' ')}: ${result.stderr}`).toBe(0);
    return result.stdout.trim();
  }

  /** A working clone of the remote with a helper to commit files. */
  async function cloneOf(remotePath: string) {
    const dir = join(scratch, `clone-${randomBytes(3).toString('hex')}`);
    await gitOk(scratch, ['clone', '--quiet', remotePath, dir]);
    await gitOk(dir, ['checkout', '--quiet', '-B', 'main']);
    return {
      dir,
      async commit(message: string, files: Record<string, string | null>): Promise<string> {
        for (const [file, content] of Object.entries(files)) {
          if (content === null) {
            await gitOk(dir, ['rm', '--quiet', file]);
          } else {
            await mkdir(join(dir, file, '..'), { recursive: true });
            await writeFile(join(dir, file), content);
            await gitOk(dir, ['add', file]);
          }
        }
        await gitOk(dir, ['commit', '--quiet', '-m', message]);
        return gitOk(dir, ['rev-parse', 'HEAD']);
      },
      push(args: string[], env?: NodeJS.ProcessEnv) {
        return gitIn(dir, ['push', 'origin', ...args], env);
      },
    };
  }

  async function aRemote(options: { secretEnvVar?: string } = {}) {
    return createLocalRemote({ stateDir, name: 'shop', webhookUrl, ...options });
  }

  it('posts one signed GitHub push per pushed ref, the signature over the exact body', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    await clone.commit('First', { 'a.txt': 'a\n' });
    await gitOk(clone.dir, ['tag', '-a', 'v1.0.0', '-m', 'Release 1.0.0']);

    const result = await clone.push(['main', 'v1.0.0']);

    expect(result.exitCode).toBe(0);
    expect(server.requests).toHaveLength(2);
    for (const request of server.requests) {
      expect(request.method).toBe('POST');
      expect(request.url).toBe('/webhooks/github');
      expect(request.headers['content-type']).toBe('application/json');
      expect(request.headers['x-github-event']).toBe('push');
      expect(request.headers['x-github-delivery']).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      );
      expect(request.headers['x-hub-signature-256']).toBe(hmac(secret, request.body));
    }
    expect(new Set(server.requests.map((request) => request.headers['x-github-delivery'])).size).toBe(2);
    expect(
      server
        .payloads()
        .map((payload) => payload.ref)
        .sort(),
    ).toEqual(['refs/heads/main', 'refs/tags/v1.0.0']);
  });

  it('describes the first push of a branch: created, before all zeros, its commits with their files', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    const first = await clone.commit('Add a', { 'a.txt': 'a\n' });
    const second = await clone.commit('Add b, change a\n\nWith a body.', {
      'a.txt': 'a2\n',
      'src/b.txt': 'b\n',
    });

    await clone.push(['main']);

    const [payload] = server.payloads();
    expect(payload).toMatchObject({
      ref: 'refs/heads/main',
      before: ZERO_SHA,
      after: second,
      created: true,
      deleted: false,
      forced: false,
      head_commit: { id: second, message: 'Add b, change a\n\nWith a body.' },
      repository: { full_name: 'local/shop', clone_url: remotePath, default_branch: 'main' },
      pusher: { name: 'Pat Pusher', email: 'pat@example.com' },
    });
    expect(payload?.commits).toEqual([
      expect.objectContaining({ id: first, message: 'Add a', added: ['a.txt'], modified: [], removed: [] }),
      expect.objectContaining({ id: second, added: ['src/b.txt'], modified: ['a.txt'], removed: [] }),
    ]);
  });

  it('sends before = the previous commit, and only the new commits, on the next push', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    const first = await clone.commit('Add a and b', { 'a.txt': 'a\n', 'b.txt': 'b\n' });
    await clone.push(['main']);

    const second = await clone.commit('Remove b', { 'b.txt': null });
    await clone.push(['main']);

    expect(server.requests).toHaveLength(2);
    expect(server.payloads()[1]).toMatchObject({
      before: first,
      after: second,
      created: false,
      forced: false,
      commits: [{ id: second, added: [], modified: [], removed: ['b.txt'] }],
    });
  });

  it('marks a push that rewrites history as forced', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    await clone.commit('One', { 'a.txt': 'a\n' });
    const replaced = await clone.commit('Two', { 'a.txt': 'b\n' });
    await clone.push(['main']);
    await gitOk(clone.dir, ['reset', '--quiet', '--hard', 'HEAD~1']);
    const rewritten = await clone.commit('Two, again', { 'c.txt': 'c\n' });

    await clone.push(['--force', 'main']);

    expect(server.payloads()[1]).toMatchObject({ before: replaced, after: rewritten, forced: true });
    expect(server.payloads()[1]?.commits.map((commit) => commit.id)).toEqual([rewritten]);
  });

  it('describes a deleted branch as deleted, with no commits', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    const head = await clone.commit('One', { 'a.txt': 'a\n' });
    await clone.push(['main', 'main:feature']);

    await clone.push([':feature']);

    expect(server.payloads()[2]).toMatchObject({
      ref: 'refs/heads/feature',
      before: head,
      after: ZERO_SHA,
      deleted: true,
      commits: [],
      head_commit: null,
    });
  });

  it('sends a payload the webhook handler verifies and normalizes into a Push', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    await clone.commit('Add the app', { 'server.mjs': 'x\n', 'buildspecs/image.yml': 'version: 0.2\n' });

    await clone.push(['main']);

    const [request] = server.requests;
    if (!request) throw new Error('no request was received');
    const headers = request.headers as Record<string, string>;
    expect(() => verifyGitHubSignature(request.body, headers['x-hub-signature-256'], secret)).not.toThrow();
    const outcome = normalizeGitHubWebhook(headers, JSON.parse(request.body));
    expect(outcome).toMatchObject({
      kind: 'pushes',
      deliveryId: headers['x-github-delivery'],
      pushes: [
        {
          provider: 'github',
          repository: { fullName: 'local/shop', cloneUrl: remotePath, defaultBranch: 'main' },
          refType: 'branch',
          refName: 'main',
          before: null,
          created: true,
          changedFiles: ['buildspecs/image.yml', 'server.mjs'],
          commitsTruncated: false,
          headCommitMessage: 'Add the app',
        },
      ],
    });
  });

  it('describes an annotated tag by the commit it names', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    const head = await clone.commit('One', { 'a.txt': 'a\n' });
    await clone.push(['main']);
    await gitOk(clone.dir, ['tag', '-a', 'v2', '-m', 'Release 2']);

    await clone.push(['v2']);

    expect(server.payloads()[1]).toMatchObject({
      ref: 'refs/tags/v2',
      created: true,
      after: head,
      commits: [],
    });
    expect(server.payloads()[1]?.head_commit?.id).toBe(head);
  });

  it('tells the pusher which run each ref started', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    await clone.commit('One', { 'a.txt': 'a\n' });
    server.answer = {
      status: 202,
      body: {
        message: 'Started 1 run',
        started: ['shop-main-1a2b3c4-5d6e'],
        alreadyStarted: [],
        skipped: [],
      },
    };

    const result = await clone.push(['main']);

    expect(result.stderr).toMatch(/^remote: stepline: started shop-main-1a2b3c4-5d6e\s*$/m);
  });

  it('tells the pusher why nothing started', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    await clone.commit('One', { 'a.txt': 'a\n' });
    server.answer = {
      status: 200,
      body: {
        message: 'Nothing started: branch docs is not a trigger',
        started: [],
        alreadyStarted: [],
        skipped: [{ ref: 'refs/heads/docs', reason: 'branch docs is not a trigger' }],
      },
    };

    const result = await clone.push(['main:docs']);

    expect(result.stderr).toMatch(
      /^remote: stepline: nothing started for refs\/heads\/docs: branch docs is not a trigger/m,
    );
  });

  it('tells the pusher when the server refuses the delivery', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    await clone.commit('One', { 'a.txt': 'a\n' });
    server.answer = {
      status: 401,
      body: { message: 'X-Hub-Signature-256 header does not match the payload' },
    };

    const result = await clone.push(['main']);

    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain(
      'remote: stepline: the server refused the push of refs/heads/main (HTTP 401): X-Hub-Signature-256 header does not match the payload',
    );
  });

  it('lets the push succeed, and says stepline is not running, when the server is down', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    const head = await clone.commit('One', { 'a.txt': 'a\n' });
    await server.stop();

    const result = await clone.push(['main']);

    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain(
      `remote: stepline: stepline is not running at ${webhookUrl}: start it with npm start`,
    );
    expect(await gitOk(scratch, ['--git-dir', remotePath, 'rev-parse', 'refs/heads/main'])).toBe(head);
  });

  it('never writes the secret into the repository or its hooks', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    await clone.commit('One', { 'a.txt': 'a\n' });
    await clone.push(['main'], { ...pusherEnv, STEPLINE_WEBHOOK_SECRET_GITHUB: secret });

    const hookFiles = await readdir(join(remotePath, 'hooks'));
    expect(hookFiles).toEqual(expect.arrayContaining(Object.values(HOOK_FILES)));
    for (const file of hookFiles) {
      expect(await readFile(join(remotePath, 'hooks', file), 'utf8'), file).not.toContain(secret);
    }
    expect(await readFile(join(remotePath, 'config'), 'utf8')).not.toContain(secret);
    expect(server.requests).toHaveLength(1);
  });

  it('signs with the secret from the pusher environment when there is no secret file', async () => {
    const { remotePath } = await aRemote({ secretEnvVar: 'SHOP_HOOK_SECRET' });
    const clone = await cloneOf(remotePath);
    await clone.commit('One', { 'a.txt': 'a\n' });

    await clone.push(['main'], { ...pusherEnv, SHOP_HOOK_SECRET: secret });

    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.headers['x-hub-signature-256']).toBe(
      hmac(secret, server.requests[0]?.body ?? ''),
    );
  });

  it('prefers the secret file to the environment variable', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    await clone.commit('One', { 'a.txt': 'a\n' });

    await clone.push(['main'], { ...pusherEnv, STEPLINE_WEBHOOK_SECRET_GITHUB: 'a-stale-secret' });

    expect(server.requests[0]?.headers['x-hub-signature-256']).toBe(
      hmac(secret, server.requests[0]?.body ?? ''),
    );
  });

  it('sends nothing, and says why, when no secret can be found', async () => {
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    await clone.commit('One', { 'a.txt': 'a\n' });

    const result = await clone.push(['main']);

    expect(result.exitCode).toBe(0);
    expect(server.requests).toHaveLength(0);
    expect(result.stderr).toContain(`remote: stepline: no webhook secret in ${webhookSecretPath(stateDir)}`);
  });

  it('writes the secret file readable by its owner only', async () => {
    const path = await writeWebhookSecret(stateDir, secret);

    expect(path).toBe(webhookSecretPath(stateDir));
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readFile(path, 'utf8')).toBe(secret);
  });

  it('runs its hook even when the pusher has a global core.hooksPath', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    await clone.commit('One', { 'a.txt': 'a\n' });
    const globalConfig = join(scratch, 'gitconfig-hooks');
    await writeFile(globalConfig, `[core]\n\thooksPath = ${join(scratch, 'no-hooks-here')}\n`);

    await clone.push(['main'], { ...pusherEnv, GIT_CONFIG_GLOBAL: globalConfig });

    expect(server.requests).toHaveLength(1);
  });

  it('still runs its hook after the state folder has been moved', async () => {
    const { remotePath } = await aRemote();
    const moved = join(scratch, 'moved-state');
    await rename(stateDir, moved);
    const clone = await cloneOf(join(moved, 'git', 'shop.git'));
    await clone.commit('One', { 'a.txt': 'a\n' });

    const result = await clone.push(['main'], { ...pusherEnv, STEPLINE_WEBHOOK_SECRET_GITHUB: secret });

    expect(result.stderr).toContain('remote: stepline: started run-1');
    expect(server.payloads()).toMatchObject([{ ref: 'refs/heads/main', created: true }]);
    expect(remotePath).not.toBe(join(moved, 'git', 'shop.git'));
  });

  it('installs the hook from its TypeScript source, unchanged', async () => {
    const { remotePath } = await aRemote();

    const installed = await readFile(join(remotePath, 'hooks', HOOK_FILES.script), 'utf8');

    expect(installed).toBe(
      await readFile(new URL('../../local/git/post-receive.ts', import.meta.url), 'utf8'),
    );
  });

  it('can be created again, keeping the pushed history and pointing the hook at the new URL', async () => {
    await writeWebhookSecret(stateDir, secret);
    const { remotePath } = await aRemote();
    const clone = await cloneOf(remotePath);
    const first = await clone.commit('One', { 'a.txt': 'a\n' });
    await clone.push(['main']);
    const other = new RecordingServer();
    const otherUrl = await other.start();

    try {
      const again = await createLocalRemote({ stateDir, name: 'shop', webhookUrl: otherUrl });
      await clone.commit('Two', { 'b.txt': 'b\n' });
      await clone.push(['main']);

      expect(again.remotePath).toBe(remotePath);
      expect(server.requests).toHaveLength(1);
      expect(other.payloads()).toMatchObject([{ before: first, created: false }]);
    } finally {
      await other.stop();
    }
  });

  it('refuses a repository name that is not a plain name', async () => {
    await expect(createLocalRemote({ stateDir, name: '../escape', webhookUrl })).rejects.toThrow(
      'Repository name "../escape" is not usable',
    );
  });

  it('refuses a webhook URL that is not http(s)', async () => {
    await expect(
      createLocalRemote({ stateDir, name: 'shop', webhookUrl: 'file:///etc/passwd' }),
    ).rejects.toThrow('is not an http(s) URL');
  });

  it('refuses a folder in the way that is not a git repository', async () => {
    await mkdir(join(stateDir, 'git', 'shop.git'), { recursive: true });
    await writeFile(join(stateDir, 'git', 'shop.git', 'notes.txt'), 'mine\n');

    await expect(aRemote()).rejects.toThrow('is not empty and is not a git repository');
  });

  it('names git as missing when it is not on the PATH', async () => {
    vi.stubEnv('PATH', join(scratch, 'empty-bin'));

    const creating = aRemote();

    await expect(creating).rejects.toThrow(GitCommandError);
    await expect(creating).rejects.toThrow(/^git init .* failed: git is not installed or not on the PATH$/);
  });

  describe('pushSampleApp', () => {
    it('pushes the sample app as the whole tree of a new commit on main', async () => {
      await writeWebhookSecret(stateDir, secret);
      const { remotePath } = await aRemote();

      const { commit, output } = await pushSampleApp({
        remotePath,
        workDir: join(scratch, 'work'),
        sourceDir: SAMPLE_APP_DIR,
      });

      expect(await gitOk(scratch, ['--git-dir', remotePath, 'rev-parse', 'refs/heads/main'])).toBe(commit);
      const tree = await gitOk(scratch, ['--git-dir', remotePath, 'ls-tree', '-r', '--name-only', commit]);
      expect(tree.split('\n')).toEqual(
        expect.arrayContaining([
          'server.mjs',
          'package.json',
          'test/server.test.mjs',
          'buildspecs/infrastructure.yml',
          'buildspecs/image.yml',
          'buildspecs/deploy.yml',
        ]),
      );
      expect(output).toContain('remote: stepline: started run-1');
      expect(server.payloads()).toMatchObject([
        {
          created: true,
          after: commit,
          head_commit: { message: 'Update hello-service' },
          commits: [{ author: { name: 'stepline', email: 'stepline@localhost' } }],
        },
      ]);
      expect(server.payloads()[0]?.commits[0]?.added).toContain('buildspecs/deploy.yml');
    });

    it('commits on top of the previous push, with files that left the folder removed', async () => {
      await writeWebhookSecret(stateDir, secret);
      const { remotePath } = await aRemote();
      const source = await copySampleApp(join(scratch, 'app'));
      const workDir = join(scratch, 'work');
      const first = await pushSampleApp({ remotePath, workDir, sourceDir: source });
      await rm(join(source, 'README.md'));
      await writeFile(join(source, 'server.mjs'), '// changed\n', { flag: 'a' });

      const second = await pushSampleApp({
        remotePath,
        workDir,
        sourceDir: source,
        message: 'Change the server',
      });

      expect(server.payloads()[1]).toMatchObject({
        before: first.commit,
        after: second.commit,
        created: false,
        forced: false,
        commits: [
          { message: 'Change the server', added: [], modified: ['server.mjs'], removed: ['README.md'] },
        ],
      });
    });

    it('pushes a new commit even when nothing changed, so each call starts a run', async () => {
      await writeWebhookSecret(stateDir, secret);
      const { remotePath } = await aRemote();
      const workDir = join(scratch, 'work');
      const first = await pushSampleApp({ remotePath, workDir, sourceDir: SAMPLE_APP_DIR });

      const second = await pushSampleApp({ remotePath, workDir, sourceDir: SAMPLE_APP_DIR, branch: 'main' });

      expect(second.commit).not.toBe(first.commit);
      expect(server.payloads()[1]).toMatchObject({ before: first.commit, after: second.commit });
    });

    it('pushes to another branch from a fresh working clone', async () => {
      await writeWebhookSecret(stateDir, secret);
      const { remotePath } = await aRemote();
      const main = await pushSampleApp({
        remotePath,
        workDir: join(scratch, 'work-1'),
        sourceDir: SAMPLE_APP_DIR,
      });

      const feature = await pushSampleApp({
        remotePath,
        workDir: join(scratch, 'work-2'),
        sourceDir: SAMPLE_APP_DIR,
        branch: 'feature/x',
      });

      expect(await gitOk(scratch, ['--git-dir', remotePath, 'rev-parse', 'refs/heads/feature/x'])).toBe(
        feature.commit,
      );
      expect(await gitOk(scratch, ['--git-dir', remotePath, 'rev-parse', 'refs/heads/main'])).toBe(
        main.commit,
      );
      expect(server.payloads()[1]).toMatchObject({ ref: 'refs/heads/feature/x', created: true });
    });

    it('fails naming the git command when the remote is not a repository', async () => {
      const pushing = pushSampleApp({
        remotePath: join(scratch, 'nowhere.git'),
        workDir: join(scratch, 'work'),
        sourceDir: SAMPLE_APP_DIR,
      });

      await expect(pushing).rejects.toThrow(GitCommandError);
      await expect(pushing).rejects.toThrow(/^git fetch --quiet origin .* failed: .*nowhere\.git/s);
    });

    it('refuses a working clone inside the source folder', async () => {
      const source = await copySampleApp(join(scratch, 'app'));

      await expect(
        pushSampleApp({
          remotePath: join(scratch, 'r.git'),
          workDir: join(source, 'work'),
          sourceDir: source,
        }),
      ).rejects.toThrow('must not be inside the source folder');
    });
  });
});
