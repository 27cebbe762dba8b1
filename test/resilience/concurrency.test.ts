import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExecutionRecord } from '#local/state/store.ts';
import { record } from './figures.ts';
import {
  ANY_REF_TRIGGERS,
  type AppRepo,
  createAppRepo,
  type Local,
  pushTo,
  send,
  settingsParam,
  startLocal,
} from './harness.ts';

/**
 * Duplicates and concurrency against the real local mode (server, runtime, engine, builds): what
 * CodePipeline and Step Functions promise — a delivery is never lost, a push never runs twice, an
 * approval is decided once.
 */

let dir: string;
let repo: AppRepo;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stepline-concurrency-'));
  repo = await createAppRepo(join(dir, 'repo'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const pushOf = (r: ExecutionRecord) => (r.input as { push: { ref: string; after: string } }).push;

describe('deliveries at once, no approval', () => {
  let local: Local;

  beforeAll(async () => {
    local = await startLocal({
      stateDir: join(dir, 'state'),
      params: [ANY_REF_TRIGGERS, settingsParam([{ name: 'dev' }])],
    });
  });

  afterAll(async () => {
    await local?.stop();
  });

  it('starts exactly one run for 100 concurrent deliveries of the same push', async ({ task }) => {
    const after = await repo.commit({ mode: 'echo\n' }, 'Pushed once, delivered 100 times');
    const deliveryId = randomUUID();

    const answers = await Promise.all(
      Array.from({ length: 100 }, () =>
        pushTo(local.url, local.runtime.webhookSecret, { repo, after, deliveryId }),
      ),
    );
    const runs = local.runtime.store.executions().filter((r) => pushOf(r).after === after);
    const finished = await Promise.all(runs.map((r) => local.runtime.engine.wait(r.executionArn)));

    const statuses = answers.map((a) => a.status);
    const serverErrors = statuses.filter((s) => s >= 500).length;
    record(task, {
      cases: { 'webhook/github (same push 100×)': answers.length },
      serverErrors,
      duplicated: Math.max(0, runs.length - 1),
      lost: runs.length === 0 ? 1 : 0,
    });
    expect(serverErrors).toBe(0);
    expect(statuses.filter((s) => s === 202)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(99);
    expect(
      answers.filter((a) => a.status === 200).map((a) => (a.json as { message: string }).message),
    ).toEqual(Array(99).fill('Already started: this push was delivered before'));
    expect(runs).toHaveLength(1);
    expect(finished.map((r) => r?.status)).toEqual(['SUCCEEDED']);
    const recorded = local.runtime.store.deliveries().filter((d) => d.id === deliveryId);
    expect(recorded).toHaveLength(100);
  });

  it('starts 50 runs for 50 pushes of different branches at once, and loses none', async ({ task }) => {
    const after = await repo.commit({ mode: 'echo\n' }, 'Pushed to 50 branches');
    const branches = Array.from({ length: 50 }, (_, i) => `load/${i}-ünïcødé`);

    const answers = await Promise.all(
      branches.map((branch) =>
        pushTo(local.url, local.runtime.webhookSecret, { repo, after, ref: `refs/heads/${branch}` }),
      ),
    );
    const runs = local.runtime.store.executions().filter((r) => pushOf(r).after === after);
    const finished = await Promise.all(runs.map((r) => local.runtime.engine.wait(r.executionArn)));

    const started = new Set(answers.flatMap((a) => (a.json as { started?: string[] }).started ?? []));
    const refsRun = new Set(runs.map((r) => pushOf(r).ref));
    const lost = branches.filter((branch) => !refsRun.has(`refs/heads/${branch}`)).length;
    const serverErrors = answers.filter((a) => a.status >= 500).length;
    record(task, {
      cases: { 'webhook/github (50 branches at once)': answers.length },
      serverErrors,
      lost,
      duplicated: Math.max(0, runs.length - branches.length),
    });
    expect(serverErrors).toBe(0);
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(202));
    expect(started.size).toBe(50);
    expect(lost).toBe(0);
    expect(runs).toHaveLength(50);
    expect(finished.filter((r) => r?.status === 'SUCCEEDED')).toHaveLength(50);
    for (const run of runs) {
      expect(local.runtime.builds(run.executionArn).map((b) => `${b.stage} ${b.status}`)).toEqual([
        'Image SUCCEEDED',
        'dev: Infrastructure SUCCEEDED',
        'dev: Deploy SUCCEEDED',
      ]);
    }
  });
});

describe('decisions at once', () => {
  let local: Local;

  beforeAll(async () => {
    local = await startLocal({
      stateDir: join(dir, 'state-approvals'),
      params: [ANY_REF_TRIGGERS, settingsParam([{ name: 'dev', approval: true }])],
    });
  });

  afterAll(async () => {
    await local?.stop();
  });

  it('lets exactly one of two decisions sent at the same instant win, ten times over', async ({ task }) => {
    const after = await repo.commit({ mode: 'echo\n' }, 'Decided twice at once');
    const refs = Array.from({ length: 10 }, (_, i) => `refs/heads/race/${i}`);
    const answers = await Promise.all(
      refs.map((ref) => pushTo(local.url, local.runtime.webhookSecret, { repo, after, ref })),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(202));
    const runs = local.runtime.store.executions().filter((r) => pushOf(r).after === after);
    const approvals = await local.until(() => {
      const pending = local.runtime
        .pendingApprovals()
        .filter((a) => runs.some((r) => r.executionArn === a.executionArn));
      return pending.length === runs.length ? pending : undefined;
    }, 'ten approvals waiting');

    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const races = await Promise.all(
      approvals.map(async (approval) => {
        // Approve and reject the same gate at the same instant: one link each, as two people would.
        const [approve, reject] = await Promise.all([
          send(approval.approve, { method: 'POST', headers: form, body: 'name=ada&comment=ship' }),
          send(approval.reject, { method: 'POST', headers: form, body: 'name=bob&comment=stop' }),
        ]);
        const outcome = await local.runtime.engine.wait(approval.executionArn);
        return { approve: approve.status, reject: reject.status, outcome };
      }),
    );

    const winners = races.map((r) => [r.approve, r.reject].filter((s) => s === 200).length);
    const serverErrors = races.flatMap((r) => [r.approve, r.reject]).filter((s) => s >= 500).length;
    record(task, {
      cases: { 'approval POST (two at once)': races.length * 2 },
      serverErrors,
      duplicated: winners.filter((count) => count > 1).length,
    });
    expect(serverErrors).toBe(0);
    for (const race of races) {
      expect([race.approve, race.reject].sort()).toEqual([200, 409]);
      // The run went the way of the decision that won.
      if (race.approve === 200) expect(race.outcome?.status).toBe('SUCCEEDED');
      else expect(race.outcome).toMatchObject({ status: 'FAILED' });
    }
  });
});
