import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  freeDeployPortBase,
  isPortOpen,
  type LocalProcess,
  LocalTestScope,
  PROJECT_DIR,
  pollUntil,
  processesOf,
} from '../helpers/local-process.ts';
import { isRunning } from '../helpers/sample-app.ts';

/** What every one-shot run must show: each stage, where dev and prod answered, and nothing left running. */
async function expectWholeRun(stepline: LocalProcess, stateDir: string, base: number): Promise<void> {
  const exit = await stepline.waitForExit(30_000);
  expect(exit, stepline.output).toEqual({ code: 0, signal: null });
  const devUrl = `http://127.0.0.1:${base + 1}/`;
  const prodUrl = `http://127.0.0.1:${base + 4}/`;
  const stages = stepline.lines
    .filter((line) => /^\s+✔ .* succeeded in /.test(line))
    .map((line) => line.trim());
  expect(stages).toEqual([
    expect.stringMatching(/^✔ Test succeeded in \d+\.\ds$/),
    expect.stringMatching(/^✔ Image succeeded in \d+\.\ds$/),
    expect.stringMatching(/^✔ dev: Infrastructure succeeded in /),
    expect.stringMatching(new RegExp(`^✔ dev: Deploy succeeded in \\d+\\.\\ds — answers at ${devUrl}$`)),
    expect.stringMatching(/^✔ prod: Infrastructure succeeded in /),
    expect.stringMatching(new RegExp(`^✔ prod: Deploy succeeded in \\d+\\.\\ds — answers at ${prodUrl}$`)),
  ]);
  expect(stepline.lines).toContain(`  dev answered at ${devUrl}`);
  expect(stepline.lines).toContain(`  prod answered at ${prodUrl}`);
  expect(stepline.lines.some((line) => /^✔ hello-service-main-\S+ SUCCEEDED in /.test(line))).toBe(true);

  // Nothing it started outlives it: no deployed service, no build.
  expect(await readdir(join(stateDir, 'deploy', 'environments', 'dev'))).not.toContain('service.pid');
  expect(await readdir(join(stateDir, 'deploy', 'environments', 'prod'))).not.toContain('service.pid');
  await noProcessLeft(stateDir);
  expect(await isPortOpen(base + 1)).toBe(false);
  expect(await isPortOpen(base + 4)).toBe(false);
}

/** Waits until no process of `stateDir` runs: stepline signals its services as it exits, they end just after. */
async function noProcessLeft(stateDir: string): Promise<void> {
  await pollUntil(`the processes of ${stateDir} to end`, async () =>
    (await processesOf(stateDir)).length === 0 ? true : undefined,
  );
}

// Each test is its own stepline process and folder: they run side by side.
describe.concurrent('stepline run, the one-shot form', () => {
  it('node local/cli/main.ts run --approve pushes, deploys dev and prod, prints each stage, exits 0 and stops what it started', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-run-', onTestFinished);
    const { stateDir } = scope;
    const base = await freeDeployPortBase();
    const stepline = scope.cli(['run', '--approve', '--port', '0', '--state-dir', stateDir], {
      env: { STEPLINE_DEPLOY_PORT_BASE: String(base) },
    });
    await expectWholeRun(stepline, stateDir, base);
  }, 60_000);

  it('npx stepline run --approve from the project root does the same through the package bin', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-npx-', onTestFinished);
    const { stateDir } = scope;
    const base = await freeDeployPortBase();
    const stepline = scope.process(['stepline', 'run', '--approve', '--port', '0', '--state-dir', stateDir], {
      command: 'npx',
      cwd: PROJECT_DIR,
      env: { STEPLINE_DEPLOY_PORT_BASE: String(base), npm_config_yes: 'false', npm_config_offline: 'true' },
    });
    await expectWholeRun(stepline, stateDir, base);
  }, 60_000);

  it('Ctrl-C on a run waiting for its approval stops the run and the service it deployed, and exits 130', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-ctrl-c-', onTestFinished);
    const { stateDir } = scope;
    const base = await freeDeployPortBase();
    const stepline = scope.cli(['run', '--port', '0', '--state-dir', stateDir], {
      env: { STEPLINE_DEPLOY_PORT_BASE: String(base) },
    });
    const name = (await stepline.waitForLine(/^▶ (\S+): /)).match[1] ?? '';
    await stepline.waitForLine(/^\s+\(waiting: approve with `npx stepline approve <run>`/);
    const dev = Number(
      await readFile(join(stateDir, 'deploy', 'environments', 'dev', 'service.pid'), 'utf8'),
    );
    expect(await isRunning(dev)).toBe(true);
    expect((await processesOf(stateDir)).map((p) => p.pid)).toContain(dev);

    expect(await stepline.stop('SIGINT')).toEqual({ code: 130, signal: null });

    const record = JSON.parse(await readFile(join(stateDir, 'executions', name, 'execution.json'), 'utf8'));
    expect(record).toMatchObject({
      status: 'INTERRUPTED',
      cause: 'stepline run was stopped (Ctrl-C) while this run was in flight',
    });
    await noProcessLeft(stateDir);
    expect(await isRunning(dev)).toBe(false);
    expect(await isPortOpen(base + 1)).toBe(false);
  }, 60_000);
});
