import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunDetail } from '#local/runs/read-model.ts';
import { authorized, freeDeployPortBase, getJson, LocalTestScope } from '../helpers/local-process.ts';

const PARAMETER = '/hello-service/failing-health-checks';

/** Sets the sample app's parameter in the local Parameter Store: the environments whose health check fails. */
async function failHealthChecksIn(stateDir: string, environments: string[]): Promise<void> {
  await writeFile(
    join(stateDir, 'parameters.json'),
    `${JSON.stringify({ [PARAMETER]: JSON.stringify({ environments }) })}\n`,
    { mode: 0o600 },
  );
}

async function approvalRequests(stateDir: string): Promise<number> {
  const outbox = join(stateDir, 'outbox');
  const messages = await Promise.all(
    (await readdir(outbox))
      .filter((file) => file.endsWith('.json'))
      .map(async (file) => JSON.parse(await readFile(join(outbox, file), 'utf8')) as { topic: string }),
  );
  return messages.filter((message) => message.topic === 'approvals').length;
}

describe('a run whose prod deploy fails, redriven after the fix', () => {
  it('goes on from prod: Deploy under the same name: Image and dev are not built again, and it ends SUCCEEDED', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-redrive-', onTestFinished);
    const { stateDir } = scope;
    const base = await freeDeployPortBase();
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await failHealthChecksIn(stateDir, ['prod']);

    const stepline = scope.cli(['start', '--port', '0', '--state-dir', stateDir], {
      env: { STEPLINE_DEPLOY_PORT_BASE: String(base) },
    });
    const url = (await stepline.waitForLine(/^stepline is running at (http:\/\/\S+) /)).match[1] ?? '';
    const port = new URL(url).port;
    const name = (await stepline.waitForLine(/^▶ (\S+): /)).match[1] ?? '';
    const approve = (await stepline.waitForLine(/^\s+approve: (http:\/\/\S+)$/)).match[1] ?? '';
    const decision = await fetch(approve, {
      method: 'POST',
      headers: await authorized(stateDir),
      body: new URLSearchParams({ name: 'Ada' }),
    });
    expect(decision.status).toBe(200);
    const failed = await stepline.waitForLine(new RegExp(`^✖ ${name} FAILED`));
    const before = await getJson<RunDetail>(`${url}/api/runs/${name}`, stateDir);
    expect(before.builds.map((b) => [b.stage, b.status])).toEqual([
      ['Test', 'SUCCEEDED'],
      ['Image', 'SUCCEEDED'],
      ['dev: Infrastructure', 'SUCCEEDED'],
      ['dev: Deploy', 'SUCCEEDED'],
      ['prod: Infrastructure', 'SUCCEEDED'],
      ['prod: Deploy', 'FAILED'],
    ]);

    // The redrive route is the operator's: no control token, 401; another site's page, 403. Neither redrove.
    const route = `${url}/api/runs/${name}/redrive`;
    expect((await fetch(route, { method: 'POST' })).status).toBe(401);
    const crossSite = await fetch(route, {
      method: 'POST',
      headers: {
        ...(await authorized(stateDir)),
        origin: 'http://evil.example',
        'sec-fetch-site': 'cross-site',
      },
    });
    expect(crossSite.status).toBe(403);
    expect((await getJson<RunDetail>(`${url}/api/runs/${name}`, stateDir)).status).toBe('FAILED');

    // The fix is outside the commit: prod's health check passes again. Then `stepline redrive <run>`.
    await failHealthChecksIn(stateDir, []);
    const redrive = scope.cli(['redrive', name, '--port', port, '--state-dir', stateDir]);
    expect(await redrive.waitForExit(), redrive.output).toEqual({ code: 0, signal: null });
    expect(redrive.output).toContain(`redriven ${name} (redrive 1)`);
    await stepline.waitForLine(new RegExp(`^↻ ${name} \\(redrive 1\\): local/hello-service main`), {
      from: failed.index,
    });
    await stepline.waitForLine(new RegExp(`^✔ ${name} SUCCEEDED`), { from: failed.index });
    const show = scope.cli(['show', name, '--port', port, '--state-dir', stateDir]);
    expect((await show.waitForExit()).code).toBe(0);
    expect(show.output).toMatch(/^\s+redriven 1×, last \d{4}-/m);

    const after = await getJson<RunDetail>(`${url}/api/runs/${name}`, stateDir);
    expect(after).toMatchObject({ name, status: 'SUCCEEDED', redriveCount: 1 });
    expect(after.executionArn).toBe(before.executionArn);
    // The build list proves it: one more build, prod's Deploy; Test, Image and dev were not built again.
    expect(after.builds.map((b) => [b.stage, b.status])).toEqual([
      ['Test', 'SUCCEEDED'],
      ['Image', 'SUCCEEDED'],
      ['dev: Infrastructure', 'SUCCEEDED'],
      ['dev: Deploy', 'SUCCEEDED'],
      ['prod: Infrastructure', 'SUCCEEDED'],
      ['prod: Deploy', 'FAILED'],
      ['prod: Deploy', 'SUCCEEDED'],
    ]);
    expect(after.builds.slice(0, 6).map((b) => b.id)).toEqual(before.builds.map((b) => b.id));
    // prod's approval was decided once and not asked again.
    expect(await approvalRequests(stateDir)).toBe(1);
    // The history the console shows: one start, the failure, the redrive, the end.
    const types = after.history.map((e) => e.type);
    expect(types.filter((t) => t === 'ExecutionStarted')).toHaveLength(1);
    expect(types.indexOf('ExecutionFailed')).toBeLessThan(types.indexOf('ExecutionRedriven'));
    expect(after.history.find((e) => e.type === 'ExecutionRedriven')).toMatchObject({ redriveCount: 1 });
    expect(types.at(-1)).toBe('ExecutionSucceeded');
    const prod = await fetch(`http://127.0.0.1:${base + 4}/health`);
    expect(await prod.json()).toMatchObject({ status: 'ok', environment: 'prod' });

    // A run that succeeded cannot be redriven: the CLI says why, as Step Functions would.
    const again = scope.cli(['redrive', name, '--port', port, '--state-dir', stateDir]);
    expect((await again.waitForExit()).code).toBe(1);
    expect(again.output).toContain('Execution is SUCCEEDED and cannot be redriven.');

    expect(await stepline.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  }, 90_000);
});
