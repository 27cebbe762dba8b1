import { createHmac } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { record } from './figures.ts';
import {
  ANY_REF_TRIGGERS,
  createAppRepo,
  FIXTURES_DIR,
  filesUnder,
  findSecrets,
  githubPushPayload,
  type Local,
  send,
  settingsParam,
  startLocal,
} from './harness.ts';

/**
 * A whole run with known secrets — the webhook secret and the approval key from the environment, a
 * Parameter Store value a buildspec reads and prints — then a search for them, for the task tokens the
 * engine minted and for the signatures sent, in everything stepline wrote and answered: the state folder,
 * the JSON API (runs, run details with input, output and history, outbox, approvals, build logs) and the
 * console (terminal lines, and the handlers' logs at DEBUG with event logging asked for).
 */

const WEBHOOK_SECRET = 'whsec-resilience-7f3a9c1e5b2d4f60';
const GITLAB_TOKEN = 'gltok-resilience-5e1b9d3f7a2c4e60';
const APPROVAL_KEY = '3a9f1c7e5b2d8f40a6c2e9b1d7f3a5c8e0b4d6f2a8c1e3b5d7f9a0c2e4b6d8f1';
const PARAMETER_VALUE = 'pw-resilience-91c7e3a5';

let dir: string;
let local: Local;
const console: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stepline-secrets-'));
  vi.stubEnv('STEPLINE_WEBHOOK_SECRET_GITHUB', WEBHOOK_SECRET);
  vi.stubEnv('STEPLINE_WEBHOOK_SECRET_GITLAB', GITLAB_TOKEN);
  vi.stubEnv('STEPLINE_APPROVAL_KEY', APPROVAL_KEY);
  // The most a deployment could log: everything, and each Lambda's event.
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'DEBUG');
  vi.stubEnv('POWERTOOLS_LOGGER_LOG_EVENT', 'true');
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      console.push(String(chunk));
      return true;
    });
  }
  const stateDir = join(dir, 'state');
  await mkdir(stateDir, { recursive: true });
  await writeFile(
    join(stateDir, 'parameters.json'),
    JSON.stringify({ '/fixture/db-password': PARAMETER_VALUE }),
  );
  local = await startLocal({
    stateDir,
    params: [ANY_REF_TRIGGERS, settingsParam([{ name: 'dev', approval: true }])],
  });
});

afterAll(async () => {
  await local?.stop();
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

describe('secrets, task tokens and signatures', () => {
  it('appear nowhere stepline writes or answers; a printed parameter is masked as ***', async ({ task }) => {
    const tokens = local.runtime.engine.tokens;
    const minted: string[] = [];
    const mint = tokens.mint.bind(tokens);
    tokens.mint = (executionArn: string) => {
      const token = mint(executionArn);
      minted.push(token);
      return token;
    };
    const repo = await createAppRepo(join(dir, 'repo'));
    await copyFile(join(FIXTURES_DIR, 'image-print-secret.yml'), join(repo.path, 'buildspecs', 'image.yml'));
    const after = await repo.commit({}, 'Print the password');
    const body = JSON.stringify(githubPushPayload({ repo, after, ref: 'refs/heads/secrets' }));
    const signature = `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex')}`;
    const pushed = await send(`${local.url}/webhooks/github`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'push',
        'x-hub-signature-256': signature,
      },
      body,
    });
    // GitLab sends the secret itself as its token: a delivery that carries it, refused for its payload.
    const gitlab = await send(`${local.url}/webhooks/gitlab`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-gitlab-event': 'Push Hook',
        'x-gitlab-token': GITLAB_TOKEN,
      },
      body: '{"object_kind":"push"}',
    });
    const [name = ''] = (pushed.json as { started: string[] }).started;
    const executionArn = local.runtime.engine.executionArn('pipeline', name);
    const approval = await local.until(
      () => local.runtime.pendingApprovals().find((a) => a.executionArn === executionArn),
      'the approval',
    );
    const page = await send(approval.approve);
    const decided = await send(approval.approve, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=ada&comment=ship it',
    });
    const run = await local.runtime.engine.wait(executionArn);
    await local.until(
      () => local.runtime.store.outbox().find((m) => m.subject.includes('deployed to dev')),
      'the success notification',
    );

    // The run's end reaches its line through the "Execution Status Change" event, after the run: the
    // line's last write (it leaves the line) lands before the search, so the search sees the line settled.
    await vi.waitFor(
      () => {
        const left = local.runtime.lines
          .snapshot()
          .every((l) => l.runs.every((r) => r.executionArn !== executionArn));
        if (!left) throw new Error(`${name} is still in its line`);
      },
      { timeout: 10_000, interval: 20 },
    );

    const api = async (path: string) => ({
      place: `GET ${path}`,
      text: (await send(`${local.url}${path}`)).text,
    });
    const builds = local.runtime.builds(executionArn);
    const answers = await Promise.all([
      api('/api/runs'),
      api(`/api/runs/${name}`),
      api('/api/outbox'),
      api('/api/approvals'),
      ...builds.map((b) => api(`/api/builds/${encodeURIComponent(b.id)}/log`)),
    ]);
    // The secrets' own files (mode 0600, read by the local git hook), the user's parameters and the
    // control token's file (read by the CLI) are the places the values are meant to be.
    // `lines/` is searched like the rest. While a run waits to enter an environment, its line's file holds
    // that wait's task token: the ledger must keep it to resume the run when the run ahead leaves (on AWS
    // the release table holds it for the same reason). It is the token of the hold's wait, not of an
    // approval gate: it lets the run into an environment its own gate already passed, nothing more. So it
    // stays there, in a 0600 file of a 0700 folder like the secrets above, and leaves the file as soon as
    // the run is resumed, refused or ends — which this search, after the run, holds stepline to.
    const meant = [
      'webhook-secret-github',
      'webhook-secret-gitlab',
      'webhook-secret-bitbucket',
      'parameters.json',
      'control-token',
    ];
    const files = (await filesUnder(local.stateDir)).filter((file) => !meant.includes(file));
    // An atomic write's temporary file may be renamed between the listing and the read: its content is
    // then read under its final name.
    const written = (
      await Promise.all(
        files.map(async (file) => ({
          place: file,
          text: await readFile(join(local.stateDir, file), 'latin1').catch((error: NodeJS.ErrnoException) => {
            if (error.code === 'ENOENT') return undefined;
            throw error;
          }),
        })),
      )
    ).flatMap(({ place, text }) => (text === undefined ? [] : [{ place, text }]));
    const secrets = [
      { name: 'webhook secret', value: WEBHOOK_SECRET },
      { name: 'GitLab token', value: GITLAB_TOKEN },
      { name: 'approval key', value: APPROVAL_KEY },
      { name: 'parameter value', value: PARAMETER_VALUE },
      { name: 'signature', value: signature },
      { name: 'signature digest', value: signature.slice('sha256='.length) },
      ...minted.map((token, i) => ({ name: `task token ${i + 1}`, value: token })),
      { name: 'control token', value: local.runtime.controlToken },
    ];
    const texts = [
      ...written,
      ...answers,
      { place: 'console: terminal lines', text: local.lines.join('\n') },
      { place: 'console: process output', text: console.join('') },
      { place: 'execution input and output', text: JSON.stringify([run?.input, run?.output]) },
    ];
    const found = findSecrets(texts, secrets);
    record(task, {
      cases: { 'secrets: places searched': texts.length },
      secretsFound: found.length,
      secretPlaces: found,
    });

    expect([pushed.status, gitlab.status, page.status, decided.status]).toEqual([202, 400, 200, 200]);
    expect(run?.status).toBe('SUCCEEDED');
    expect(minted.length).toBeGreaterThan(0);
    expect(files.length).toBeGreaterThan(10);
    expect(found).toEqual([]);
    const imageLog = answers.find((a) => a.place.includes('stepline-local-image'))?.text ?? '';
    expect(imageLog).toContain('the password is ***');
    // A line's file (its temporary one, while a last write lands, is renamed over it).
    const lineFiles = files.filter((file) => file.startsWith('lines/') && file.endsWith('.json'));
    expect(lineFiles.length).toBeGreaterThan(0);
    expect((await stat(join(local.stateDir, 'lines'))).mode & 0o777).toBe(0o700);
    for (const file of lineFiles) {
      expect((await stat(join(local.stateDir, file))).mode & 0o777, file).toBe(0o600);
    }
    // GitHub's is written for the git hook even when it comes from the environment; Bitbucket's is generated.
    for (const provider of ['github', 'bitbucket']) {
      expect((await stat(join(local.stateDir, `webhook-secret-${provider}`))).mode & 0o777).toBe(0o600);
    }
  });
});
