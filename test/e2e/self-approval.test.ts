import { execFile } from 'node:child_process';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BWRAP, BWRAP_ISOLATION } from '#local/codebuild/sandbox.ts';
import type { PendingApproval, RunDetail } from '#local/runs/read-model.ts';
import {
  deployDirOf,
  freeDeployPortBase,
  getJson,
  LocalTestScope,
  pollUntil,
  processesOf,
} from '../helpers/local-process.ts';
import { copySampleApp } from '../helpers/sample-app.ts';

/**
 * The reproduction of "a build approves its own gate": a pushed buildspec starts a detached script
 * (self-approval-build.mjs) that tries, for as long as the run waits at the gate, every route a local
 * build has to the approval: the environment, the JSON API, the approval link pattern, the state folder's
 * files (control token, keys, outbox with its approve links), and the state folder through stepline's own
 * process. Each must fail; the run must still wait at the gate; only the operator's token approves it.
 */

const ATTACK = fileURLToPath(new URL('./self-approval-build.mjs', import.meta.url));

/** What the runtime prints at start-up when builds are not sandboxed. */
const UNSANDBOXED = /a local build runs with the operator's authority/;

/** Whether bubblewrap works on this machine, tried as the runtime tries it (local/codebuild/sandbox.ts). */
async function bubblewrapWorks(): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(BWRAP, [...BWRAP_ISOLATION, 'true'], (error) => resolve(error === null));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The sample app, whose image build starts the self-approving script detached (it outlives the build). */
async function selfApprovingApp(dir: string, serverUrl: string, stateDir: string): Promise<string> {
  await copySampleApp(dir);
  await copyFile(ATTACK, join(dir, 'self-approve.mjs'));
  const file = join(dir, 'buildspecs', 'image.yml');
  const buildspec = await readFile(file, 'utf8');
  // The attack starts before the build phase's first command, which packs the app.
  const first = '      - STAGING_DIR="$(mktemp -d)"\n';
  if (!buildspec.includes(first))
    throw new Error(`${file} no longer starts its build phase with ${first.trim()}`);
  const attack = `      - setsid nohup node self-approve.mjs ${serverUrl} ${stateDir} </dev/null >/dev/null 2>&1 &\n`;
  await writeFile(
    file,
    buildspec.replace(first, () => `${attack}${first}`),
  );
  return dir;
}

interface AttackReport {
  executionId?: string;
  env: Record<string, string>;
  rounds: number;
  api: Record<string, (number | string)[]>;
  files: Record<string, string[]>;
  links: string[];
  decisions: Record<string, (number | string)[]>;
  done: boolean;
}

async function readReport(stateDir: string): Promise<AttackReport | undefined> {
  const text = await readFile(join(deployDirOf(stateDir), 'attack-report.json'), 'utf8').catch(() => '');
  return text === '' ? undefined : (JSON.parse(text) as AttackReport);
}

/** The runtime's secrets, as the operator can read them: none may reach a build. */
async function runtimeSecrets(stateDir: string): Promise<{ name: string; value: string }[]> {
  return Promise.all(
    ['control-token', 'approval-key', 'webhook-secret-github'].map(async (name) => ({
      name,
      value: (await readFile(join(stateDir, name), 'utf8')).trim(),
    })),
  );
}

describe('a build cannot approve its own gate', () => {
  it('fails at every route (environment, API, link pattern, state files, /proc), and the run waits until the operator approves', async ({
    onTestFinished,
    skip,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-self-approval-', onTestFinished);
    const { stateDir } = scope;
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const app = await selfApprovingApp(join(scope.root, 'app'), url, stateDir);
    const stepline = scope.cli(['run', '--port', String(port), '--state-dir', stateDir], {
      env: { STEPLINE_SAMPLE_APP: app, STEPLINE_DEPLOY_PORT_BASE: String(await freeDeployPortBase()) },
    });
    const name = (await stepline.waitForLine(/^▶ (\S+): /)).match[1] ?? '';
    await stepline.waitForLine(/^\s+\(waiting: approve with `npx stepline approve <run>`/);
    // Where bubblewrap works, the runtime must use it; where it does not, the next test covers that path.
    const sandboxed = await bubblewrapWorks();
    expect(UNSANDBOXED.test(stepline.output)).toBe(!sandboxed);
    if (!sandboxed) skip('bubblewrap does not work here: the no-sandbox path is covered below');

    // The script keeps trying while the run waits: two more rounds after the gate was reached.
    const atGate = (await readReport(stateDir))?.rounds ?? 0;
    await pollUntil('the self-approving build to try twice at the gate', async () => {
      const report = await readReport(stateDir);
      return report && report.rounds >= atGate + 2 ? true : undefined;
    });
    await writeFile(join(deployDirOf(stateDir), 'attack-stop'), '');
    const report = await pollUntil('the self-approving build to finish', async () => {
      const current = await readReport(stateDir);
      return current?.done ? current : undefined;
    });

    // It is the run at the gate, and knows it (the pipeline's own variable), but nothing of the runtime.
    expect(report.executionId).toMatch(new RegExp(`:${name}$`));
    const stepline_ = Object.keys(report.env).filter((variable) => variable.startsWith('STEPLINE_'));
    expect(stepline_).not.toContain('STEPLINE_PORT');
    expect(stepline_).not.toContain('STEPLINE_STATE_DIR');
    const secrets = await runtimeSecrets(stateDir);
    const inEnvironment = Object.entries(report.env).flatMap(([variable, value]) =>
      secrets.filter((secret) => value.includes(secret.value)).map((secret) => `${variable}: ${secret.name}`),
    );
    expect(inEnvironment).toEqual([]);

    // Every API request and every request on the approval link pattern: 401, never anything else.
    expect(Object.keys(report.api).sort()).toEqual([
      'GET /api/approvals',
      'GET /api/outbox',
      'GET /api/runs',
      'POST /approvals/<forged>',
    ]);
    for (const [request, statuses] of Object.entries(report.api))
      expect([request, statuses]).toEqual([request, [401]]);

    // The state folder: not there for the build, neither directly nor through stepline's /proc entry.
    const stateFiles = Object.entries(report.files).filter(([path]) => path.startsWith(stateDir));
    expect(stateFiles.map(([path]) => path)).toEqual(
      expect.arrayContaining([
        join(stateDir, 'control-token'),
        join(stateDir, 'approval-key'),
        join(stateDir, 'webhook-secret-github'),
        join(stateDir, 'outbox'),
      ]),
    );
    for (const [path, outcomes] of stateFiles) expect([path, outcomes]).toEqual([path, ['ENOENT']]);
    expect(report.files['/proc/*/root']).toEqual(['none reachable']);
    expect(report.links).toEqual([]);
    expect(report.decisions).toEqual({});

    // The run still waits at the gate; the operator approves it with the token, as the CLI sends it.
    const run = await getJson<RunDetail>(`${url}/api/runs/${name}`, stateDir);
    expect(run.status).toBe('RUNNING');
    expect(run.approval?.environment).toBe('prod');
    expect(
      (await getJson<PendingApproval[]>(`${url}/api/approvals`, stateDir)).map((a) => a.executionArn),
    ).toEqual([run.executionArn]);
    const approve = scope.cli([
      'approve',
      name,
      '--port',
      String(port),
      '--state-dir',
      stateDir,
      '--name',
      'Ada',
    ]);
    expect(await approve.waitForExit()).toEqual({ code: 0, signal: null });
    expect(await stepline.waitForExit(30_000)).toEqual({ code: 0, signal: null });
    const approved = await getJsonAfterExit(stateDir, name);
    expect(approved).toMatchObject({ status: 'SUCCEEDED' });
  }, 60_000);

  it('without a sandbox (STEPLINE_SANDBOX=off) says so at start-up; builds still get no runtime variable and the API still needs the token', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-no-sandbox-', onTestFinished);
    const { stateDir } = scope;
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const stepline = scope.cli(['run', '--port', String(port), '--state-dir', stateDir], {
      env: { STEPLINE_SANDBOX: 'off', STEPLINE_DEPLOY_PORT_BASE: String(await freeDeployPortBase()) },
    });
    await stepline.waitForLine(
      /^stepline: builds are not sandboxed \(STEPLINE_SANDBOX=off\): a local build runs with the operator's authority/,
    );
    const name = (await stepline.waitForLine(/^▶ (\S+): /)).match[1] ?? '';
    await stepline.waitForLine(/^\s+\(waiting: approve with `npx stepline approve <run>`/);

    // The dev service the deploy build left running carries the build's environment.
    const [service] = await processesOf(stateDir);
    if (!service) throw new Error('no process of the run is running');
    const environ = (await readFile(`/proc/${service.pid}/environ`, 'utf8')).split('\0');
    const names = environ.map((entry) => entry.slice(0, entry.indexOf('=')));
    expect(names).toContain('STEPLINE_EXECUTION_ID');
    expect(names).not.toContain('STEPLINE_PORT');
    expect(names).not.toContain('STEPLINE_STATE_DIR');
    expect(names).not.toContain('STEPLINE_SANDBOX');
    const secrets = await runtimeSecrets(stateDir);
    expect(environ.filter((entry) => secrets.some((secret) => entry.includes(secret.value)))).toEqual([]);

    for (const path of ['/api/approvals', '/api/runs']) {
      const answer = await fetch(`${url}${path}`);
      expect([path, answer.status]).toEqual([path, 401]);
      expect(((await answer.json()) as { message: string }).message).toContain('?token=');
    }
    const wrong = await fetch(`${url}/api/approvals`, { headers: { authorization: 'Bearer not-the-token' } });
    expect(wrong.status).toBe(401);

    const approve = scope.cli(['approve', name, '--port', String(port), '--state-dir', stateDir]);
    expect(await approve.waitForExit()).toEqual({ code: 0, signal: null });
    expect(await stepline.waitForExit(30_000)).toEqual({ code: 0, signal: null });
  }, 60_000);
});

/** The run's record once stepline has exited (its API has gone with it). */
async function getJsonAfterExit(stateDir: string, name: string): Promise<{ status: string }> {
  return JSON.parse(await readFile(join(stateDir, 'executions', name, 'execution.json'), 'utf8'));
}
