import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PendingApproval, RunDetail, RunSummary } from '#local/runs/read-model.ts';
import {
  authorized,
  freeDeployPortBase,
  getJson,
  git,
  isPortOpen,
  LocalTestScope,
  pollUntil,
  processesOf,
} from '../helpers/local-process.ts';
import { isRunning } from '../helpers/sample-app.ts';

interface OutboxMessage {
  topic: string;
  subject: string;
  body: string;
}

async function readOutbox(stateDir: string): Promise<OutboxMessage[]> {
  const folder = join(stateDir, 'outbox');
  const files = (await readdir(folder)).filter((file) => file.endsWith('.json')).sort();
  return Promise.all(files.map(async (file) => JSON.parse(await readFile(join(folder, file), 'utf8'))));
}

async function servicePid(stateDir: string, environment: string): Promise<number> {
  return Number(
    (await readFile(join(stateDir, 'deploy', 'environments', environment, 'service.pid'), 'utf8')).trim(),
  );
}

describe('npm start (node local/cli/main.ts start), the real process', () => {
  it('pushes the sample app, deploys dev, waits for the approval link, deploys prod, starts a run on each git push and stops everything on SIGTERM', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-start-', onTestFinished);
    const { stateDir } = scope;
    const base = await freeDeployPortBase();
    const devPort = base + 1;
    const prodPort = base + 4;
    const stepline = scope.cli(['start', '--port', '0', '--state-dir', stateDir], {
      env: { STEPLINE_DEPLOY_PORT_BASE: String(base) },
    });

    // The first push: the sample app, pushed by `start` itself.
    const { match: running } = await stepline.waitForLine(
      /^stepline is running at (http:\/\/127\.0\.0\.1:\d+) /,
    );
    const url = running[1] ?? '';
    const { match: remoteLine } = await stepline.waitForLine(/^git remote of the sample app: (\S+)$/);
    const remote = remoteLine[1] ?? '';
    const started = await stepline.waitForLine(/^▶ (\S+): local\/hello-service main @ ([0-9a-f]{7}) /);
    const runName = started.match[1] ?? '';
    await stepline.waitForLine(
      new RegExp(`✔ dev: Deploy succeeded .* answers at http://127\\.0\\.0\\.1:${devPort}/`),
      {
        from: started.index,
      },
    );
    const approveLine = await stepline.waitForLine(/^\s+approve: (http:\/\/\S+)$/, { from: started.index });
    const approveLink = approveLine.match[1] ?? '';

    // The API and the approval links need the control token: the console URL printed once carries it.
    const consoleUrl = (await stepline.waitForLine(/^\s+console: (http:\/\/\S+\?token=\S+)$/)).match[1] ?? '';
    const token = new URL(consoleUrl).searchParams.get('token') ?? '';
    expect((await authorized(stateDir)).authorization).toBe(`Bearer ${token}`);
    for (const [target, init] of [
      [`${url}/api/approvals`, {}],
      [approveLink, { headers: { accept: 'text/html' } }],
      [`${url}/api/approvals`, { headers: { authorization: `Bearer ${token}x` } }],
      [`${url}/?token=${token}x`, {}],
    ] as const) {
      const refused = await fetch(target, init);
      expect([target, refused.status]).toEqual([target, 401]);
      expect(await refused.text()).toContain('?token=');
    }
    const signIn = await fetch(consoleUrl, { redirect: 'manual' });
    expect(signIn.status).toBe(303);
    expect(signIn.headers.get('location')).toBe('/');
    const cookie = signIn.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/; HttpOnly; SameSite=Strict; Path=\/$/);
    const asBrowser = { headers: { cookie: cookie.split(';')[0] ?? '' } };
    expect((await fetch(`${url}/api/approvals`, asBrowser)).status).toBe(200);
    expect((await fetch(approveLink, asBrowser)).status).toBe(200);
    // Only the operator may enter the state folder or read what stepline wrote there.
    const mode = async (path: string) => ((await stat(path)).mode & 0o777).toString(8);
    expect(await mode(stateDir)).toBe('700');
    for (const folder of ['outbox', 'builds', 'executions', 'deploy'])
      expect([folder, await mode(join(stateDir, folder))]).toEqual([folder, '700']);
    const outboxFiles = await readdir(join(stateDir, 'outbox'));
    for (const file of [
      'control-token',
      'approval-key',
      'webhook-secret-github',
      'deliveries.jsonl',
      ...outboxFiles.map((f) => join('outbox', f)),
    ])
      expect([file, await mode(join(stateDir, file))]).toEqual([file, '600']);
    // No log, record or notification holds the token.
    const written = await Promise.all(
      ['outbox', 'builds', 'executions'].map(async (folder) =>
        (await readdir(join(stateDir, folder), { recursive: true, withFileTypes: true }))
          .filter((entry) => entry.isFile())
          .map((entry) => join(entry.parentPath, entry.name)),
      ),
    );
    for (const file of written.flat())
      expect([file, (await readFile(file, 'utf8')).includes(token)]).toEqual([file, false]);

    const pending = await getJson<PendingApproval[]>(`${url}/api/approvals`, stateDir);
    expect(pending).toEqual([
      expect.objectContaining({
        environment: 'prod',
        approve: approveLink,
        executionArn: expect.stringMatching(`:${runName}$`),
      }),
    ]);

    // Opening the link (a mail scanner, a preview) decides nothing.
    const page = await fetch(approveLink, { headers: await authorized(stateDir) });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('prod');
    expect((await getJson<RunSummary>(`${url}/api/runs/${runName}`, stateDir)).status).toBe('RUNNING');
    expect(await getJson<PendingApproval[]>(`${url}/api/approvals`, stateDir)).toHaveLength(1);
    expect(await isPortOpen(prodPort)).toBe(false);

    const decision = await fetch(approveLink, {
      method: 'POST',
      headers: { ...(await authorized(stateDir)), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ name: 'Ada Lovelace', comment: 'Checked on dev, ship it' }).toString(),
    });
    expect(decision.status).toBe(200);
    // Decided: no longer listed as waiting, while the run goes on to prod.
    expect(await getJson<unknown[]>(`${url}/api/approvals`, stateDir)).toEqual([]);
    const succeededLine = await stepline.waitForLine(new RegExp(`^✔ ${runName} SUCCEEDED`), {
      from: approveLine.index,
    });
    await stepline.waitForLine(/now answering: /, { from: succeededLine.index });
    expect(stepline.output).toContain(
      `now answering: dev http://127.0.0.1:${devPort}/ · prod http://127.0.0.1:${prodPort}/`,
    );

    const run = await getJson<RunDetail>(`${url}/api/runs/${runName}`, stateDir);
    expect(run.status).toBe('SUCCEEDED');
    expect(run.deployments).toEqual({
      dev: `http://127.0.0.1:${devPort}/`,
      prod: `http://127.0.0.1:${prodPort}/`,
    });
    expect(run.builds?.map((b) => `${b.stage} ${b.status}`)).toEqual([
      'Test SUCCEEDED',
      'Image SUCCEEDED',
      'dev: Infrastructure SUCCEEDED',
      'dev: Deploy SUCCEEDED',
      'prod: Infrastructure SUCCEEDED',
      'prod: Deploy SUCCEEDED',
    ]);
    const version = run.commit?.slice(0, 12);
    expect(await getJson(`http://127.0.0.1:${devPort}/health`)).toEqual({
      status: 'ok',
      environment: 'dev',
      version,
    });
    expect(await getJson(`http://127.0.0.1:${prodPort}/health`)).toEqual({
      status: 'ok',
      environment: 'prod',
      version,
    });

    const short = run.commit?.slice(0, 7);
    const messages = await readOutbox(stateDir);
    const subjects = messages.map((m) => m.subject);
    const startedAt = subjects.findIndex((s) => s.startsWith(`▶ local/hello-service main started: ${short}`));
    const approvalAt = subjects.indexOf(`Approve prod: local/hello-service main @ ${short}`);
    const succeededAt = subjects.indexOf('✔ local/hello-service main deployed to dev, prod');
    expect(
      [startedAt, approvalAt, succeededAt].every((i) => i >= 0),
      subjects.join('\n'),
    ).toBe(true);
    expect(startedAt).toBeLessThan(approvalAt);
    expect(approvalAt).toBeLessThan(succeededAt);
    expect(messages[approvalAt]?.topic).toBe('approvals');
    expect(messages[approvalAt]?.body).toContain(approveLink);
    const succeeded = messages[succeededAt]?.body ?? '';
    expect(succeeded).toContain('Ada Lovelace');
    expect(succeeded).toContain('Checked on dev, ship it');
    expect(
      (await readdir(join(stateDir, 'outbox'))).filter((f) => f.endsWith('.eml')).length,
    ).toBeGreaterThan(0);

    // `stepline teardown dev` runs the teardown machine by hand: dev stops answering, prod does not.
    const teardown = scope.cli(['teardown', 'dev', '--port', new URL(url).port, '--state-dir', stateDir]);
    expect(await teardown.waitForExit()).toEqual({ code: 0, signal: null });
    const teardownName = /^started (teardown-dev-\d+)$/m.exec(teardown.output)?.[1] ?? '';
    expect(teardownName).not.toBe('');
    await stepline.waitForLine(new RegExp(`^✔ ${teardownName} SUCCEEDED`));
    expect(await isPortOpen(devPort)).toBe(false);
    expect(await isPortOpen(prodPort)).toBe(true);

    // The second push: a person's own clone of the remote `start` printed, a change, `git push`.
    const clone = join(scope.root, 'clone');
    await git(['clone', '--quiet', remote, clone]);
    await mkdir(join(clone, 'docs'), { recursive: true });
    await writeFile(join(clone, 'docs', 'NOTES.md'), 'Deployed by stepline.\n');
    await git(['add', '.'], clone);
    await git(['commit', '--quiet', '-m', 'Add notes'], clone);
    const head = (await git(['rev-parse', 'HEAD'], clone)).trim();
    const pushed = await git(['push', 'origin', 'main'], clone);
    const second = await stepline.waitForLine(
      new RegExp(`^▶ (\\S+): local/hello-service main @ ${head.slice(0, 7)} Add notes`),
    );
    const secondName = second.match[1] ?? '';
    expect(secondName).not.toBe(runName);
    expect(pushed).toContain(`stepline: started ${secondName}`);
    await stepline.waitForLine(/^\s+approve: http/, { from: second.index });
    expect(await getJson(`http://127.0.0.1:${devPort}/health`)).toEqual({
      status: 'ok',
      environment: 'dev',
      version: head.slice(0, 12),
    });
    const runs = await getJson<RunSummary[]>(`${url}/api/runs`, stateDir);
    expect(runs.map((r) => [r.name, r.status]).sort()).toEqual(
      [
        [runName, 'SUCCEEDED'],
        [teardownName, 'SUCCEEDED'],
        [secondName, 'RUNNING'],
      ].sort(),
    );

    // Ctrl-C / SIGTERM: the run in flight is stopped and recorded, the deployed services are stopped.
    const services = [await servicePid(stateDir, 'dev'), await servicePid(stateDir, 'prod')];
    expect(await Promise.all(services.map(isRunning))).toEqual([true, true]);
    const exit = await stepline.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(stepline.output).toContain('stepline: stopping runs and the services they started');
    const interrupted = JSON.parse(
      await readFile(join(stateDir, 'executions', secondName, 'execution.json'), 'utf8'),
    ) as RunSummary;
    expect(interrupted.status).toBe('INTERRUPTED');
    expect(interrupted.cause).toContain('stepline was stopped (Ctrl-C) while this run was in flight');
    for (const pid of services) {
      await pollUntil(`deployed service ${pid} to stop`, async () =>
        (await isRunning(pid)) ? undefined : true,
      );
    }
    expect(await isPortOpen(devPort)).toBe(false);
    expect(await isPortOpen(prodPort)).toBe(false);
    expect(await processesOf(stateDir)).toEqual([]);
  }, 60_000);
});
