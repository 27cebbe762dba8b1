import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunSummary } from '#local/runs/read-model.ts';
import type { OutboxMessage } from '#local/state/outbox.ts';
import type { LineView } from '#shared/release.ts';
import { authorized, getJson, LocalTestScope, pollUntil } from '../helpers/local-process.ts';
import {
  listRuns,
  prodGate,
  pushSampleChange,
  runEnded,
  type SampleStepline,
  startSampleStepline,
} from '../helpers/sample-stepline.ts';

/**
 * The release guarantee on the real local mode: stepline started as a person starts it, real `git push`es
 * to its remote, the approval links it prints, and the prod service the deploys started.
 */

async function runOf(stepline: SampleStepline, name: string): Promise<RunSummary | undefined> {
  return (await listRuns(stepline)).find((r) => r.name === name);
}

async function decide(stepline: SampleStepline, link: string, method: 'GET' | 'POST') {
  const response = await fetch(link, {
    method,
    headers: await authorized(stepline.scope.stateDir),
    ...(method === 'POST' ? { body: new URLSearchParams({ name: 'Ada', comment: 'ship it' }) } : {}),
  });
  return { status: response.status, body: await response.text() };
}

const _ended = runEnded;

/** The commit prod's service answers with (its VERSION names the commit it was built from). */
async function prodVersion(stepline: SampleStepline): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${stepline.base + 4}/health`);
  return ((await response.json()) as { version: string }).version;
}

function outbox(stepline: SampleStepline): Promise<OutboxMessage[]> {
  return getJson<OutboxMessage[]>(`${stepline.url}/api/outbox`, stepline.scope.stateDir);
}

describe.concurrent('release control on the local mode', () => {
  it('SUPERSEDED (the default): a newer push retires the run waiting at prod, its link answers superseded, prod ends on the newer commit', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-superseded-', onTestFinished);
    const stepline = await startSampleStepline(scope);
    const a = (await stepline.process.waitForLine(/^▶ (\S+): /)).match[1] ?? '';
    const gateA = await prodGate(stepline, a);

    const b = await pushSampleChange(stepline, 'change-b');

    const retired = await runEnded(stepline, a, 'SUPERSEDED');
    expect(retired.cause).toMatch(
      new RegExp(`^Superseded by ${b.run} \\(push #2, commit ${b.commit.slice(0, 12)}\\)`),
    );
    for (const method of ['GET', 'POST'] as const) {
      const answer = await decide(stepline, gateA.approve, method);
      expect(answer.status, method).toBe(409);
      expect(answer.body, method).toContain(`Superseded by ${b.run}`);
      expect(answer.body, method).toContain('This decision was not accepted');
    }
    const notice = await pollUntil('the superseded notification', async () =>
      (await outbox(stepline)).find((m) => m.subject.includes('superseded by')),
    );
    expect(notice.subject).toContain(b.run);

    const gateB = await prodGate(stepline, b.run);
    expect((await decide(stepline, gateB.approve, 'POST')).status).toBe(200);
    await runEnded(stepline, b.run, 'SUCCEEDED');
    expect(await prodVersion(stepline)).toContain(b.commit.slice(0, 7));
    expect(await runOf(stepline, a)).toMatchObject({ status: 'SUPERSEDED', supersededBy: b.run });

    // What the console and the CLI read: each environment's commit and run, and who superseded whom.
    const [line] = await getJson<LineView[]>(`${stepline.url}/api/environments`, scope.stateDir);
    expect(line?.line).toBe('github:local/hello-service:refs/heads/main');
    expect(line?.environments.map((e) => [e.name, e.current?.commit, e.holder])).toEqual([
      ['dev', b.commit, null],
      ['prod', b.commit, null],
    ]);
    const port = new URL(stepline.url).port;
    const cli = async (command: string) => {
      const listing = scope.cli([command, '--port', port, '--state-dir', scope.stateDir]);
      expect(await listing.waitForExit()).toEqual({ code: 0, signal: null });
      return listing.output;
    };
    expect(await cli('runs')).toMatch(new RegExp(`SUPERSEDED +${a} .* superseded by ${b.run}`));
    expect(await cli('environments')).toContain(`prod       ${b.commit.slice(0, 7)} ${b.run} (push #2)`);
  }, 120_000);

  it('QUEUED: approving B then A leaves prod on B and refuses A as older; approving C then D leaves prod on D', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-queued-', onTestFinished);
    const stepline = await startSampleStepline(scope, ['settings={"executionMode":"QUEUED"}']);
    const a = (await stepline.process.waitForLine(/^▶ (\S+): /)).match[1] ?? '';
    const gateA = await prodGate(stepline, a);
    const b = await pushSampleChange(stepline, 'change-b');
    const gateB = await prodGate(stepline, b.run);
    // QUEUED drops nothing: both wait at their gate.
    expect((await runOf(stepline, a))?.status).toBe('RUNNING');

    expect((await decide(stepline, gateB.approve, 'POST')).status).toBe(200);
    await runEnded(stepline, b.run, 'SUCCEEDED');
    expect((await decide(stepline, gateA.approve, 'POST')).status).toBe(200);
    const refused = await runEnded(stepline, a, 'FAILED');

    expect(refused.error).toBe('Environment.Behind');
    expect(await prodVersion(stepline)).toContain(b.commit.slice(0, 7));
    const notice = await pollUntil('the refusal notification', async () =>
      (await outbox(stepline)).find((m) => m.subject.startsWith('Refused:')),
    );
    expect(notice.body).toContain(`${b.commit.slice(0, 12)} (push #2`);
    expect(notice.body).toContain('An environment only moves forward; nothing was deployed.');

    // In push order, each approved in turn: both deploy, prod ends on the newer.
    const c = await pushSampleChange(stepline, 'change-c');
    const gateC = await prodGate(stepline, c.run);
    const d = await pushSampleChange(stepline, 'change-d');
    const gateD = await prodGate(stepline, d.run);
    expect((await decide(stepline, gateC.approve, 'POST')).status).toBe(200);
    expect((await decide(stepline, gateD.approve, 'POST')).status).toBe(200);
    await runEnded(stepline, c.run, 'SUCCEEDED');
    await runEnded(stepline, d.run, 'SUCCEEDED');
    expect(await prodVersion(stepline)).toContain(d.commit.slice(0, 7));
  }, 180_000);

  for (const mode of ['SUPERSEDED', 'QUEUED'] as const) {
    it(`${mode}: runs of different branches never block each other — feature deploys dev and prod while main waits at prod's gate`, async ({
      onTestFinished,
    }) => {
      const scope = await LocalTestScope.create(
        `stepline-e2e-branches-${mode.toLowerCase()}-`,
        onTestFinished,
      );
      const stepline = await startSampleStepline(scope, [
        'triggers={"push":[{"branches":{"includes":["**"]}}]}',
        `settings={"executionMode":"${mode}"}`,
      ]);
      const main = (await stepline.process.waitForLine(/^▶ (\S+): /)).match[1] ?? '';
      const mainGate = await prodGate(stepline, main);

      // A newer push, on another branch: were lines per repository, it would retire main's run at its gate
      // (SUPERSEDED) or have main's later approval refused as older (QUEUED).
      const feature = await pushSampleChange(stepline, 'feature-change', undefined, 'feature');
      const featureGate = await prodGate(stepline, feature.run);
      const lines = await getJson<LineView[]>(`${stepline.url}/api/environments`, scope.stateDir);
      const featureLine = lines.find((l) => l.line === 'github:local/hello-service:refs/heads/feature');
      expect(featureLine?.environments.find((e) => e.name === 'dev')?.current?.commit).toBe(feature.commit);

      // Each approval request says what passed before it, the Test stage first with its JUnit counts.
      const requests = (await outbox(stepline)).filter((m) => m.subject.startsWith('Approve prod'));
      expect(requests).toHaveLength(2);
      for (const request of requests) {
        expect(request.body).toMatch(
          /^Passed: +Test \(\d+ passed\), Image, dev: Infrastructure, dev: Deploy$/m,
        );
      }

      expect((await decide(stepline, featureGate.approve, 'POST')).status).toBe(200);
      await runEnded(stepline, feature.run, 'SUCCEEDED');
      expect(await runOf(stepline, main)).toMatchObject({ status: 'RUNNING' });
      expect((await decide(stepline, mainGate.approve, 'POST')).status).toBe(200);
      const done = await runEnded(stepline, main, 'SUCCEEDED');
      expect(done.supersededBy).toBeUndefined();
      expect((await outbox(stepline)).filter((m) => /superseded by|^Refused:/.test(m.subject))).toEqual([]);
    }, 120_000);
  }

  it('SIGKILL while one run holds dev and another waits at the prod gate: after restart no hold is orphaned and the line goes on', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-holds-kill-', onTestFinished);
    const params = ['settings={"executionMode":"QUEUED"}'];
    const first = await startSampleStepline(scope, params);
    const a = (await first.process.waitForLine(/^▶ (\S+): /)).match[1] ?? '';
    await prodGate(first, a);
    // B's dev Infrastructure hangs: B holds dev when stepline is killed.
    const b = await pushSampleChange(first, 'change-b', async (source) => {
      const file = join(source, 'buildspecs', 'infrastructure.yml');
      const buildspec = await readFile(file, 'utf8');
      const commands = '    commands:\n';
      await writeFile(file, buildspec.replace(commands, `${commands}      - sleep 60\n`));
    });
    const held = await pollUntil('b to hold dev', async () => {
      const [line] = await getJson<LineView[]>(`${first.url}/api/environments`, scope.stateDir);
      return line?.environments.find((e) => e.name === 'dev' && e.holder?.executionArn.endsWith(`:${b.run}`));
    });
    expect(held.holder?.commit).toBe(b.commit);

    expect(await first.process.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    const second = await startSampleStepline(scope, params);

    // Both runs were in flight: INTERRUPTED, and the line holds nothing for them.
    expect((await runOf(second, a))?.status).toBe('INTERRUPTED');
    expect((await runOf(second, b.run))?.status).toBe('INTERRUPTED');
    const [line] = await getJson<LineView[]>(`${second.url}/api/environments`, scope.stateDir);
    // dev still runs A's commit (B never finished it); nobody holds it or waits for it.
    expect(line?.environments.map((e) => [e.name, e.holder, e.waiting, e.current?.executionArn])).toEqual([
      ['dev', null, [], expect.stringMatching(new RegExp(`:${a}$`))],
    ]);
    // The line goes on: a new push deploys dev and prod.
    const c = await pushSampleChange(second, 'change-c');
    const gate = await prodGate(second, c.run);
    expect((await decide(second, gate.approve, 'POST')).status).toBe(200);
    await runEnded(second, c.run, 'SUCCEEDED');
    expect(await prodVersion(second)).toContain(c.commit.slice(0, 7));
  }, 180_000);
});
