import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushSampleApp } from '#local/git/remote.ts';
import { breakSampleApp, copySampleApp, stopSampleAppInstances } from '../helpers/sample-app.ts';

/**
 * The console in a real browser (Debian's Chromium driven by playwright-core): the local mode started as
 * a person starts it, a run watched live to the approval gate, approved from the page, and a broken push
 * shown failing with its failed state and cause.
 */

const CHROMIUM = '/usr/bin/chromium';
const PROJECT_DIR = fileURLToPath(new URL('../../', import.meta.url));
const ARTIFACTS = join(PROJECT_DIR, 'test-artifacts', 'console');
const DEADLINE_MS = 20_000;

/** Settings of the developer's shell that would point the server at another port, folder or secret. */
const INHERITED = [
  'STEPLINE_PORT',
  'STEPLINE_STATE_DIR',
  'STEPLINE_DEPLOY_PORT',
  'STEPLINE_DEPLOY_PORT_BASE',
  'STEPLINE_SAMPLE_APP',
  'STEPLINE_WEBHOOK_SECRET',
  'STEPLINE_WEBHOOK_SECRET_GITHUB',
  'STEPLINE_WEBHOOK_SECRET_GITLAB',
  'STEPLINE_WEBHOOK_SECRET_BITBUCKET',
  'STEPLINE_APPROVAL_KEY',
  'STEPLINE_SANDBOX',
];

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('No free port');
  return address.port;
}

/** A base whose dev (base + 1) and prod (base + 4) ports are free, for the sample app's deploys. */
async function freeDeployPortBase(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const base = (await freePort()) - 1;
    if (base + 4 <= 65535 && (await portIsFree(base + 4))) return base;
  }
  throw new Error('Found no free pair of ports for the sample app');
}

/** `stepline start` in its own process group, its output kept for waiting and for failure messages. */
class Stepline {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<void>;

  constructor(stateDir: string, deployPortBase: number) {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of INHERITED) delete env[name];
    env.PATH = `${dirname(process.execPath)}${delimiter}${env.PATH ?? ''}`;
    env.STEPLINE_DEPLOY_PORT_BASE = String(deployPortBase);
    this.child = spawn(
      process.execPath,
      ['local/cli/main.ts', 'start', '--port', '0', '--state-dir', stateDir],
      {
        cwd: PROJECT_DIR,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    this.child.stdout?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString('utf8');
    });
    this.child.stderr?.on('data', (chunk: Buffer) => {
      this.output += chunk.toString('utf8');
    });
    this.exited = new Promise((resolve) => this.child.once('close', () => resolve()));
  }

  /** The server's URL, once it says it runs. */
  url(): Promise<string> {
    return this.printed(/stepline is running at (http:\/\/\S+)/);
  }

  /** The console URL with the control token, which `start` prints once: opening it signs a browser in. */
  consoleUrl(): Promise<string> {
    return this.printed(/console: (http:\/\/\S+\?token=\S+)/);
  }

  /** The first group of `pattern` in the output, once printed. */
  printed(pattern: RegExp): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(this.output);
        if (!match?.[1]) return false;
        cleanup();
        resolve(match[1]);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`stepline did not start within ${DEADLINE_MS} ms:\n${this.output}`));
      }, DEADLINE_MS);
      const onData = () => void check();
      const onClose = () => {
        cleanup();
        reject(new Error(`stepline exited before it started:\n${this.output}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.child.stdout?.off('data', onData);
        this.child.off('close', onClose);
      };
      this.child.stdout?.on('data', onData);
      this.child.once('close', onClose);
      check();
    });
  }

  /** Stops it as Ctrl-C does (it stops its runs and deployed services); kills the group if it hangs. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.pid === undefined) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      try {
        if (this.child.pid !== undefined) process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }, 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

describe('the console in a browser', () => {
  let workDir: string;
  let stateDir: string;
  let stepline: Stepline;
  let baseUrl: string;
  let consoleUrl: string;
  let deployPortBase: number;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `Chromium is missing at ${CHROMIUM}: the browser tests drive Debian's Chromium. Install it with \`apt-get update && apt-get install -y chromium\`.`,
      );
    }
    await mkdir(ARTIFACTS, { recursive: true });
    workDir = await mkdtemp(join(tmpdir(), 'stepline-console-'));
    stateDir = join(workDir, 'state');
    deployPortBase = await freeDeployPortBase();
    stepline = new Stepline(stateDir, deployPortBase);
    baseUrl = await stepline.url();
    consoleUrl = await stepline.consoleUrl();
    context = await chromium.launchPersistentContext(join(workDir, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(DEADLINE_MS);
    page.on('pageerror', (error) => pageErrors.push(error.message));
    // Nothing but the local server: a request elsewhere fails the test instead of leaving the machine.
    await context.route(
      (url) => url.hostname !== '127.0.0.1' && url.protocol !== 'data:',
      (route) => {
        pageErrors.push(`request outside localhost: ${route.request().url()}`);
        return route.abort();
      },
    );
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await stepline?.stop();
    if (stateDir) await stopSampleAppInstances(join(stateDir, 'deploy'));
    if (workDir) await rm(workDir, { recursive: true, force: true });
  }, 60_000);

  it('watches the pushed run reach the approval gate live, approves it from the page, and sees it succeed', async () => {
    // Without the control token the console shows how to get in, and nothing of the runs.
    await page.goto(`${baseUrl}/`);
    await page.getByText('?token=').first().waitFor();
    expect(await page.locator('tr[data-run]').count()).toBe(0);
    // `stepline start` pushes the sample app on a fresh state folder: opened through the URL it printed
    // (which signs this browser in and drops the token from the address), that run shows up in the list.
    await page.goto(consoleUrl);
    expect(page.url()).toBe(`${baseUrl}/`);
    const row = page.locator('tr[data-run]').first();
    await row.waitFor();
    const name = (await row.getAttribute('data-run')) ?? '';
    await expect(row.textContent()).resolves.toContain('local/hello-service');

    await page.getByRole('link', { name, exact: true }).first().click();
    await page.locator('[data-state="Approval"][data-status="waiting"]').waitFor();
    expect(await page.locator('[data-state="Image"]').getAttribute('data-status')).toBe('succeeded');
    expect(await page.locator('[data-state="Deploy"]').getAttribute('aria-label')).toContain('dev ✓');
    expect(await page.locator('[data-state="Notify succeeded"]').getAttribute('data-status')).toBe(
      'not-reached',
    );
    await page.screenshot({ path: join(ARTIFACTS, 'run-waiting.png') });

    await page.getByLabel('Your name').fill('Ada Lovelace');
    await page.getByLabel('Comment').fill('Ship it: dev answers');
    await page.getByRole('button', { name: 'Approve' }).click();

    await page.getByRole('heading', { name: 'Approved' }).waitFor();
    // The rest of the run arrives by server-sent events: the page is never reloaded.
    await page.locator('[data-state="Notify succeeded"][data-status="succeeded"]').waitFor();
    await page.locator('h1 [data-status="SUCCEEDED"]').waitFor();
    expect(await page.locator('[data-state="Deploy"]').getAttribute('aria-label')).toContain('prod ✓');
    expect(await page.locator('[data-terminal="end"]').getAttribute('class')).toContain('succeeded');
    const prodDeploy = page.locator('details.build', { hasText: 'prod: Deploy' });
    await prodDeploy.locator('pre.log', { hasText: 'Phase complete: BUILD' }).waitFor({ state: 'attached' });
    await page.getByText('deployed to dev, prod').first().waitFor();
    await page.screenshot({ path: join(ARTIFACTS, 'run-succeeded.png'), fullPage: true });

    // The decision went through the signed link, into the run, as the emailed link records it.
    const token = new URL(consoleUrl).searchParams.get('token') ?? '';
    const run = (await (
      await fetch(`${baseUrl}/api/runs/${encodeURIComponent(name)}`, {
        headers: { authorization: `Bearer ${token}` },
      })
    ).json()) as {
      status: string;
      output: { outcome: { approvals: ({ approver: string; comment: string } | null)[] } };
    };
    expect(run.status).toBe('SUCCEEDED');
    expect(run.output.outcome.approvals).toEqual([
      null,
      expect.objectContaining({ approved: true, approver: 'Ada Lovelace', comment: 'Ship it: dev answers' }),
    ]);
    expect(pageErrors).toEqual([]);
  }, 90_000);

  it('shows a broken push appear live in the list, then its failed state and cause', async () => {
    await page.goto(`${baseUrl}/#/`);
    await page.locator('tr[data-run]').first().waitFor();
    const before = await page.locator('tr[data-run]').count();

    const app = await copySampleApp(join(workDir, 'broken-app'));
    await breakSampleApp(app);
    const { commit } = await pushSampleApp({
      remotePath: join(stateDir, 'git', 'hello-service.git'),
      workDir: join(workDir, 'checkout'),
      sourceDir: app,
      message: 'Answer /health with 500',
    });

    const failed = page.locator('tr[data-run][data-status="FAILED"]', { hasText: commit.slice(0, 7) });
    await failed.waitFor();
    expect(await page.locator('tr[data-run]').count()).toBe(before + 1);
    // Newest first.
    expect(await page.locator('tr[data-run]').first().textContent()).toContain(commit.slice(0, 7));
    await expect(failed.textContent()).resolves.toContain('Answer /health with 500');
    await page.screenshot({ path: join(ARTIFACTS, 'runs.png') });

    await failed.getByRole('link').click();
    await page.locator('[data-state="Test"][data-status="caught"]').waitFor();
    expect(await page.locator('[data-state="Notify Test failure"]').getAttribute('data-status')).toBe(
      'failed',
    );
    expect(await page.locator('[data-state="Image"]').getAttribute('data-status')).not.toBe('succeeded');
    const why = page.getByRole('region', { name: 'Why this run failed' });
    await expect(why.textContent()).resolves.toMatch(/Pipeline\.StageFailed/);
    const test = why.locator('[data-failed-state="Test"]');
    await expect(test.textContent()).resolves.toContain('States.TaskFailed');
    await expect(test.textContent()).resolves.toContain('BUILD: Error while executing command: node --test');
    // Keyboard: Tab to a state and press Enter for what happened to it.
    await page.locator('[data-state="Test"]').focus();
    await page.keyboard.press('Enter');
    const selected = page.locator('.selected-state');
    await selected.getByRole('heading', { name: 'Test' }).waitFor();
    await expect(selected.textContent()).resolves.toContain('States.TaskFailed');
    // The failed build is open with its log, and its report names the failed test with its message.
    const build = page.locator('details.build[open]', { hasText: 'Test' });
    await build.locator('pre.log', { hasText: /not ok \d+|✖ answers/ }).waitFor();
    const failedTest = build.locator(
      '[data-failed-test="answers /health with 200, the environment and the version"]',
    );
    await expect(failedTest.textContent()).resolves.toContain('hello-service › answers /health with 200');
    await page.screenshot({ path: join(ARTIFACTS, 'run-failed.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  }, 90_000);

  it('redrives a run whose prod deploy failed from its page, and shows the redrive in its history', async () => {
    const parameters = join(stateDir, 'parameters.json');
    const failIn = (environments: string[]) =>
      writeFile(
        parameters,
        `${JSON.stringify({ '/hello-service/failing-health-checks': JSON.stringify({ environments }) })}\n`,
      );
    await failIn(['prod']);
    const app = await copySampleApp(join(workDir, 'redriven-app'));
    const { commit } = await pushSampleApp({
      remotePath: join(stateDir, 'git', 'hello-service.git'),
      workDir: join(workDir, 'checkout'),
      sourceDir: app,
      message: 'Deploy while prod fails its health check',
    });
    await page.goto(`${baseUrl}/#/`);
    const row = page.locator('tr[data-run]', { hasText: commit.slice(0, 7) });
    await row.waitFor();
    await row.getByRole('link').click();
    await page.getByLabel('Your name').fill('Ada Lovelace');
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.locator('h1 [data-status="FAILED"]').waitFor({ timeout: 60_000 });
    expect(await page.locator('[data-state="Deploy"]').getAttribute('data-status')).toBe('caught');

    await failIn([]);
    await page.getByRole('button', { name: 'Redrive from the failed state' }).click();
    await page.locator('h1 [data-status="SUCCEEDED"]').waitFor({ timeout: 60_000 });
    await page.getByText('Redriven').first().waitFor();
    expect(await page.locator('[data-state="Deploy"]').getAttribute('data-status')).toBe('succeeded');
    const history = page.locator('[data-key="history"]');
    await history.locator('summary').click();
    await history.locator('td', { hasText: /^ExecutionRedriven$/ }).waitFor();
    // Image and dev were built once: the page lists one build of each, and two of prod's Deploy.
    await expect(page.locator('details.build', { hasText: 'dev: Deploy' }).count()).resolves.toBe(1);
    await expect(page.locator('details.build', { hasText: 'prod: Deploy' }).count()).resolves.toBe(2);
    await page.screenshot({ path: join(ARTIFACTS, 'run-redriven.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  }, 120_000);

  it('rolls prod back from the Environments table, after its approval, and shows the rollback as one', async () => {
    const prodVersion = async () =>
      ((await (await fetch(`http://127.0.0.1:${deployPortBase + 4}/health`)).json()) as { version: string })
        .version;
    // A new commit approved to prod, from its page: prod's previous deployment is then the first run's.
    const app = await copySampleApp(join(workDir, 'rolled-back-app'));
    await appendFile(join(app, 'server.mjs'), '// to be rolled back\n');
    const { commit } = await pushSampleApp({
      remotePath: join(stateDir, 'git', 'hello-service.git'),
      workDir: join(workDir, 'checkout'),
      sourceDir: app,
      message: 'A release to roll back',
    });
    await page.goto(`${baseUrl}/#/`);
    const row = page.locator('tr[data-run]', { hasText: commit.slice(0, 7) });
    await row.waitFor();
    await row.getByRole('link').click();
    await page.getByLabel('Your name').fill('Ada Lovelace');
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.locator('h1 [data-status="SUCCEEDED"]').waitFor({ timeout: 60_000 });
    const before = await prodVersion();
    expect(before).toBe(commit.slice(0, 12));
    await page.goto(`${baseUrl}/#/`);
    const prod = page.locator('tr[data-environment$="/prod"]');
    await prod.locator('.commit', { hasText: commit.slice(0, 7) }).waitFor();
    await prod.getByRole('button', { name: 'Roll back' }).click();
    // The rollback's own page: its state machine, waiting at prod's gate with the same approval form.
    await page.locator('[data-state="Approval"][data-status="waiting"]').waitFor();
    await page.getByLabel('Your name').fill('Ada Lovelace');
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.locator('h1 [data-status="SUCCEEDED"]').waitFor({ timeout: 60_000 });
    expect(await page.locator('[data-state="Deploy"]').getAttribute('data-status')).toBe('succeeded');
    await expect(page.locator('details.build').count()).resolves.toBe(1);

    const after = await prodVersion();
    expect(after).not.toBe(before);
    await page.goto(`${baseUrl}/#/`);
    await prod.locator('.rollback', { hasText: `↩ rollback from ${before.slice(0, 7)}` }).waitFor();
    await expect(prod.locator('.commit').textContent()).resolves.toBe(after.slice(0, 7));
    await page.screenshot({ path: join(ARTIFACTS, 'environment-rolled-back.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
