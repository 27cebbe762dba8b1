import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { OutboxMessage } from '#local/state/outbox.ts';
import type { LineView } from '#shared/release.ts';
import { authorized, getJson, type LocalProcess, LocalTestScope } from '../helpers/local-process.ts';
import {
  prodGate,
  pushSampleChange,
  runEnded,
  type SampleStepline,
  startSampleStepline,
} from '../helpers/sample-stepline.ts';

/**
 * Rollback on the real local mode: stepline started as a person starts it, real `git push`es, the
 * rollback asked for with `stepline rollback`, its approval decided with `stepline approve`, and the
 * services the deploys started answering with the commit they run.
 */

async function approve(stepline: SampleStepline, name: string): Promise<void> {
  const link = (await prodGate(stepline, name)).approve;
  const answer = await fetch(link, {
    method: 'POST',
    headers: await authorized(stepline.scope.stateDir),
    body: new URLSearchParams({ name: 'Ada' }),
  });
  expect(answer.status).toBe(200);
}

/** The version (12-digit commit) an environment's service answers /health with. */
async function versionAt(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/health`);
  return ((await response.json()) as { version: string }).version;
}

function cli(stepline: SampleStepline, args: string[]): LocalProcess {
  return stepline.scope.cli([...args, '--port', stepline.port, '--state-dir', stepline.scope.stateDir]);
}

function outbox(stepline: SampleStepline): Promise<OutboxMessage[]> {
  return getJson<OutboxMessage[]>(`${stepline.url}/api/outbox`, stepline.scope.stateDir);
}

describe('rollback of an environment', () => {
  it('moves prod back to its previous deployment by the CLI, after its approval, recorded as a rollback', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-rollback-', onTestFinished);
    const stepline = await startSampleStepline(scope);
    const prodPort = stepline.base + 4;
    const first = (await stepline.process.waitForLine(/^▶ (\S+): /)).match[1] ?? '';
    await approve(stepline, first);
    await runEnded(stepline, first, 'SUCCEEDED');
    const firstVersion = await versionAt(prodPort);
    const second = await pushSampleChange(stepline, 'second');
    await approve(stepline, second.run);
    await runEnded(stepline, second.run, 'SUCCEEDED');
    expect(await versionAt(prodPort)).toBe(second.commit.slice(0, 12));

    // The rollback route is the operator's: without the control token, 401; from another site, 403.
    const route = `${stepline.url}/api/environments/prod/rollback`;
    expect((await fetch(route, { method: 'POST' })).status).toBe(401);
    const crossSite = await fetch(route, {
      method: 'POST',
      headers: {
        ...(await authorized(scope.stateDir)),
        origin: 'http://evil.example',
        'sec-fetch-site': 'cross-site',
      },
    });
    expect(crossSite.status).toBe(403);
    // A longer path is no route, not a rollback.
    const longer = await fetch(`${route}/again`, {
      method: 'POST',
      headers: await authorized(scope.stateDir),
    });
    expect(longer.status).toBe(404);
    // Nothing recorded under that name: refused, nothing started.
    const unknown = cli(stepline, ['rollback', 'prod', '--to', 'no-such-run']);
    expect((await unknown.waitForExit()).code).toBe(1);
    expect(unknown.output).toContain('No deployment of prod recorded for no-such-run');

    const rollback = cli(stepline, ['rollback', 'prod']);
    expect(await rollback.waitForExit(), rollback.output).toEqual({ code: 0, signal: null });
    const name = /started (rollback-prod-\d+)/.exec(rollback.output)?.[1] ?? '';
    expect(name).not.toBe('');
    // It waits at prod's gate like any run; the email names the rollback and the image it deploys again.
    await prodGate(stepline, name);
    expect(await versionAt(prodPort)).toBe(second.commit.slice(0, 12));
    const approval = cli(stepline, ['approve', name, '--name', 'Ada']);
    expect((await approval.waitForExit()).code, approval.output).toBe(0);
    await runEnded(stepline, name, 'SUCCEEDED');
    expect(await versionAt(prodPort)).toBe(firstVersion);
    // The outbox lists the newest message first: the rollback's request.
    const asked = (await outbox(stepline)).find((m) => m.topic === 'approvals');
    expect(asked?.body).toContain(`Rollback of prod from ${second.commit.slice(0, 12)} to ${firstVersion}`);

    // What was deployed: the recorded image, no Image build, no Infrastructure.
    const detail = await getJson<{ builds: { stage: string; status: string }[] }>(
      `${stepline.url}/api/runs/${name}`,
      scope.stateDir,
    );
    expect(detail.builds.map((b) => [b.stage, b.status])).toEqual([['prod: Deploy', 'SUCCEEDED']]);

    // The history shows a rollback, not a regression; dev is left as it was.
    const lines = await getJson<LineView[]>(`${stepline.url}/api/environments`, scope.stateDir);
    const prod = lines[0]?.environments.find((e) => e.name === 'prod');
    expect(prod?.current).toMatchObject({
      commit: expect.stringMatching(new RegExp(`^${firstVersion}`)),
      rollback: {
        of: expect.stringMatching(new RegExp(`:${first}$`)),
        from: second.commit,
        automatic: false,
      },
    });
    expect(lines[0]?.environments.find((e) => e.name === 'dev')?.current?.commit).toBe(second.commit);
    const environments = cli(stepline, ['environments']);
    expect((await environments.waitForExit()).code).toBe(0);
    expect(environments.output).toMatch(
      new RegExp(
        `prod\\s+${firstVersion.slice(0, 7)} ${name} .*rollback from ${second.commit.slice(0, 7)} to ${first}'s deployment`,
      ),
    );
    const notified = (await outbox(stepline)).find((m) => m.subject.startsWith('↩'));
    expect(notified?.subject).toContain(`prod rolled back to ${firstVersion.slice(0, 7)}`);

    expect(await stepline.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  }, 180_000);

  it('redeploys the previous deployment by itself when a deploy fails in an environment with rollbackOnFailure', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-auto-rollback-', onTestFinished);
    const stepline = await startSampleStepline(scope, [
      'settings={"environments":[{"name":"dev","rollbackOnFailure":true},{"name":"prod","approval":true}]}',
    ]);
    const devPort = stepline.base + 1;
    const first = (await stepline.process.waitForLine(/^▶ (\S+): /)).match[1] ?? '';
    await prodGate(stepline, first);
    const firstVersion = await versionAt(devPort);
    // dev's health check fails from now on, for any version but the one it runs.
    await writeFile(
      join(scope.stateDir, 'parameters.json'),
      `${JSON.stringify({
        '/hello-service/failing-health-checks': JSON.stringify({
          environments: ['dev'],
          except: [firstVersion],
        }),
      })}\n`,
      { mode: 0o600 },
    );
    const second = await pushSampleChange(stepline, 'broken');
    const failed = await runEnded(stepline, second.run, 'FAILED');
    expect(failed.stage).toBe('dev: Deploy');
    const name = `rollback-dev-${second.run}`.slice(0, 80);
    await runEnded(stepline, name, 'SUCCEEDED');
    expect(await versionAt(devPort)).toBe(firstVersion);

    const lines = await getJson<LineView[]>(`${stepline.url}/api/environments`, scope.stateDir);
    expect(lines[0]?.environments.find((e) => e.name === 'dev')?.current).toMatchObject({
      executionArn: expect.stringMatching(new RegExp(`:${name}$`)),
      rollback: { from: second.commit, automatic: true },
    });
    // Both are reported: the failure, and the rollback (started, then done).
    const subjects = (await outbox(stepline)).map((m) => m.subject);
    expect(subjects).toContainEqual(expect.stringMatching(/✖ .* failed at dev: Deploy/));
    expect(subjects).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `↩ local/hello-service dev: ${second.commit.slice(0, 7)} failed, rolling back to ${firstVersion.slice(0, 7)}`,
        ),
      ),
    );
    expect(subjects).toContainEqual(
      expect.stringMatching(new RegExp(`↩ .* dev automatically rolled back to ${firstVersion.slice(0, 7)}`)),
    );

    expect(await stepline.process.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  }, 180_000);
});
