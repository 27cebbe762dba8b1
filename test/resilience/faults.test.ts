import { randomUUID } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild } from '#local/codebuild/build-runner.ts';
import type { OutboxMessage } from '#local/state/store.ts';
import { type LineView, runName } from '#shared/release.ts';
import { isRunning } from '../helpers/sample-app.ts';
import { record } from './figures.ts';
import {
  ANY_REF_TRIGGERS,
  type Answer,
  type AppRepo,
  type CliProcess,
  createAppRepo,
  getJson,
  isAlive,
  pushTo,
  type RunSummary,
  send,
  settingsParam,
  startCli,
  startLocal,
  untilApi,
} from './harness.ts';

/**
 * Faults: the runtime killed (SIGKILL) in the middle of builds, of deliveries and of an approval, then
 * started again on the same state; a build that hangs; a tool that is missing; a torn last write.
 * Expected: nothing accepted is lost, interrupted runs are marked and start again, every failure is
 * reported, and the state on disk is repaired rather than fatal.
 */

let dir: string;
let repo: AppRepo;
const started: CliProcess[] = [];

/**
 * Where the echo app's builds leave their pids and wait for their gate: the folder a runtime's builds
 * share (STEPLINE_DEPLOY_DIR), the one a sandboxed build may write besides its checkout.
 */
const signals = (stateDir: string) => join(stateDir, 'deploy');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stepline-faults-'));
  repo = await createAppRepo(join(dir, 'repo'));
});

afterAll(async () => {
  for (const cli of started) if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
  // Build shells outlive a SIGKILLed runtime: they are their own process groups. Stop what is left.
  const states = (await readdir(dir).catch(() => [])).filter((name) => name.startsWith('state-'));
  const pidFiles = (
    await Promise.all(
      states.map(async (state) =>
        (
          await readdir(signals(join(dir, state))).catch(() => [])
        )
          .filter((file) => /^(hanging|gated)-/.test(file))
          .map((file) => join(signals(join(dir, state)), file)),
      ),
    )
  ).flat();
  for (const file of pidFiles) {
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          // Not a group leader, or gone.
        }
      }
    }
  }
  await rm(dir, { recursive: true, force: true });
});

async function cli(stateDir: string, params: string[]): Promise<CliProcess> {
  const process = await startCli({ stateDir, params });
  started.push(process);
  return process;
}

async function kill(cliProcess: CliProcess): Promise<void> {
  cliProcess.child.kill('SIGKILL');
  expect(await cliProcess.exited).toBe('SIGKILL');
}

/** A signed push with a delivery id of its own, kept with the answer. */
async function deliver(url: string, secret: string, options: Parameters<typeof pushTo>[2]) {
  const deliveryId = randomUUID();
  return { ...(await pushTo(url, secret, { ...options, deliveryId })), deliveryId };
}

const runs = (url: string) => getJson<RunSummary[]>(`${url}/api/runs`);

/** Waits until every named run has ended, and returns them all. */
function untilEnded(url: string, names: string[], what: string): Promise<RunSummary[]> {
  return untilApi(
    url,
    async () => {
      const all = await runs(url);
      const wanted = all.filter((r) => names.includes(r.name));
      return wanted.length === names.length && wanted.every((r) => r.status !== 'RUNNING')
        ? wanted
        : undefined;
    },
    what,
    90_000,
  );
}

/**
 * Holds and waits the local server's lines still keep for runs that are no longer running: after a
 * SIGKILL and a restart, an interrupted run must have let go of every environment it held or waited for.
 */
async function orphanedHolds(url: string): Promise<number> {
  const [lines, all] = await Promise.all([getJson<LineView[]>(`${url}/api/environments`), runs(url)]);
  const running = new Set(all.filter((r) => r.status === 'RUNNING').map((r) => r.name));
  const orphaned = (executionArn: string) => (running.has(runName(executionArn)) ? 0 : 1);
  return lines
    .flatMap((line) => line.environments)
    .reduce(
      (sum, e) =>
        sum +
        (e.holder ? orphaned(e.holder.executionArn) : 0) +
        e.waiting.reduce((waits, w) => waits + orphaned(w.executionArn), 0),
      0,
    );
}

async function deliveryLines(
  stateDir: string,
): Promise<{ type: string; id: string; response?: { status: number } }[]> {
  const text = await readFile(join(stateDir, 'deliveries.jsonl'), 'utf8');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line));
}

describe('the runtime killed with SIGKILL', () => {
  it('loses no accepted delivery or run mid-build and mid-delivery, marks them interrupted, and runs them again', async ({
    task,
  }) => {
    const stateDir = join(dir, 'state-build');
    const params = [ANY_REF_TRIGGERS, settingsParam([{ name: 'dev' }])];
    const commit = await repo.commit({ mode: 'gate\n' }, 'Builds that wait for the gate');
    const t0 = Date.now();
    const first = await cli(stateDir, params);
    const phases: string[] = [`started ${Date.now() - t0}`];
    const secret = (await readFile(join(stateDir, 'webhook-secret-github'), 'utf8')).trim();

    // Six runs whose Image build is under way…
    const early = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        deliver(first.url, secret, { repo, after: commit, ref: `refs/heads/build/${i}` }),
      ),
    );
    const earlyNames = early.flatMap((a) => (a.json as { started: string[] }).started);
    await untilApi(
      first.url,
      async () => {
        const details = await Promise.all(
          earlyNames.map((name) =>
            getJson<{ builds: { status: string }[] }>(`${first.url}/api/runs/${name}`),
          ),
        );
        return details.every((d) => d.builds.some((b) => b.status === 'IN_PROGRESS')) ? true : undefined;
      },
      'six Image builds in progress',
    );
    // …then twelve more deliveries, and the kill as soon as four of them are answered.
    const answered: (Answer & { deliveryId: string })[] = [];
    let unanswered = 0;
    const { promise: fourAnswered, resolve } = Promise.withResolvers<void>();
    const late = Array.from({ length: 12 }, (_, i) =>
      deliver(first.url, secret, { repo, after: commit, ref: `refs/heads/delivery/${i}` }).then(
        (answer) => {
          answered.push(answer);
          if (answered.length === 4) resolve();
        },
        () => {
          unanswered += 1;
        },
      ),
    );
    phases.push(`builds ${Date.now() - t0}`);
    await fourAnswered;
    await kill(first);
    phases.push(`killed ${Date.now() - t0}`);
    await Promise.all(late);

    const second = await cli(stateDir, params);
    phases.push(`restarted ${Date.now() - t0}`);
    const accepted = [...early, ...answered].filter((a) => a.status === 202);
    const acceptedNames = accepted.flatMap((a) => (a.json as { started: string[] }).started);
    const afterRestart = await runs(second.url);
    const found = afterRestart.filter((r) => acceptedNames.includes(r.name));
    const lost = acceptedNames.length - found.length;
    const perRef = new Map<string, number>();
    for (const r of afterRestart) perRef.set(r.ref ?? '', (perRef.get(r.ref ?? '') ?? 0) + 1);
    const duplicated = [...perRef.values()].filter((count) => count > 1).length;
    const journal = await deliveryLines(stateDir);
    const journalled = accepted.filter(
      (a) =>
        journal.some((line) => line.type === 'DeliveryReceived' && line.id === a.deliveryId) &&
        journal.some(
          (line) =>
            line.type === 'DeliveryAnswered' && line.id === a.deliveryId && line.response?.status === 202,
        ),
    );

    expect(second.output()).toMatch(/marked INTERRUPTED/);
    expect(acceptedNames.length).toBeGreaterThanOrEqual(10);
    expect(lost).toBe(0);
    expect(duplicated).toBe(0);
    expect(journalled).toHaveLength(accepted.length);
    expect(found.every((r) => r.status === 'INTERRUPTED' || r.status === 'SUCCEEDED')).toBe(true);
    expect(found.filter((r) => r.status === 'INTERRUPTED').map((r) => r.name)).toEqual(
      expect.arrayContaining(earlyNames),
    );

    // Every interrupted run starts again, under a new name, and finishes once the gate opens.
    await writeFile(join(signals(stateDir), 'gate'), 'open\n');
    const interrupted = found.filter((r) => r.status === 'INTERRUPTED');
    const restarts = await Promise.all(
      interrupted.map((r) =>
        send(`${second.url}/api/runs/${encodeURIComponent(r.name)}/restart`, { method: 'POST' }),
      ),
    );
    const restartedNames = restarts.map((r) => (r.json as RunSummary).name);
    phases.push(`restarts ${Date.now() - t0}`);
    const ended = await untilEnded(second.url, restartedNames, 'the restarted runs to end');
    phases.push(`ended ${Date.now() - t0}`);
    const runsByRef = new Map<string, number>();
    for (const r of ended) runsByRef.set(`${r.ref}`, (runsByRef.get(`${r.ref}`) ?? 0) + 1);
    const orphaned = await orphanedHolds(second.url);

    record(task, {
      cases: { 'fault: SIGKILL mid-build / mid-delivery': 1 },
      orphanedHolds: orphaned,
      lost,
      duplicated: duplicated + [...runsByRef.values()].filter((c) => c > 1).length,
      faultsInjected: 1,
      faultsSurvived: ended.every((r) => r.status === 'SUCCEEDED') ? 1 : 0,
    });
    expect(restarts.map((r) => r.status)).toEqual(Array(interrupted.length).fill(202));
    expect(new Set(restartedNames).size).toBe(interrupted.length);
    expect(ended.map((r) => r.status)).toEqual(Array(interrupted.length).fill('SUCCEEDED'));
    expect(ended.map((r) => r.restartOf).sort()).toEqual(interrupted.map((r) => r.name).sort());
    expect(orphaned).toBe(0);
    console.info(
      `SIGKILL mid-build: ${accepted.length} deliveries accepted before the kill, ${unanswered} unanswered, ${lost} lost; ${interrupted.length} interrupted runs restarted and succeeded (ms: ${phases.join(', ')})`,
    );
    await kill(second);
  });

  it('loses no run waiting for approval, refuses its old links after the restart, and runs it again', async ({
    task,
  }) => {
    const stateDir = join(dir, 'state-approval');
    const params = [ANY_REF_TRIGGERS, settingsParam([{ name: 'dev', approval: true }])];
    const commit = await repo.commit({ mode: 'echo\n' }, 'Waits for approval');
    const first = await cli(stateDir, params);
    const secret = (await readFile(join(stateDir, 'webhook-secret-github'), 'utf8')).trim();
    const answer = await pushTo(first.url, secret, { repo, after: commit, ref: 'refs/heads/approval/1' });
    const [name = ''] = (answer.json as { started: string[] }).started;
    const approval = await untilApi(
      first.url,
      async () => (await getJson<RunSummary>(`${first.url}/api/runs/${name}`)).approval,
      'the approval',
    );
    await kill(first);

    const second = await cli(stateDir, params);
    const [interrupted] = (await runs(second.url)).filter((r) => r.name === name);
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    // The link as mailed names the killed server's port; the same link on the new server:
    const relinked = approval.approve.replace(new URL(approval.approve).origin, second.url);
    const oldLinkNewServer = await send(relinked, { method: 'POST', headers: form, body: 'name=ada' });
    const afterOldLink = (await runs(second.url)).filter((r) => r.name === name);

    const restart = await send(`${second.url}/api/runs/${name}/restart`, { method: 'POST' });
    const restartedName = (restart.json as RunSummary).name;
    const newApproval = await untilApi(
      second.url,
      async () => (await getJson<RunSummary>(`${second.url}/api/runs/${restartedName}`)).approval,
      'the approval of the restarted run',
    );
    const decided = await send(newApproval.approve, { method: 'POST', headers: form, body: 'name=ada' });
    const [ended] = await untilEnded(second.url, [restartedName], 'the restarted run to end');
    const orphaned = await orphanedHolds(second.url);

    record(task, {
      cases: { 'fault: SIGKILL mid-approval': 1 },
      orphanedHolds: orphaned,
      lost: interrupted ? 0 : 1,
      duplicated: oldLinkNewServer.status === 200 ? 1 : 0,
      serverErrors: [oldLinkNewServer.status, decided.status].filter((s) => s >= 500).length,
      faultsInjected: 1,
      faultsSurvived: ended?.status === 'SUCCEEDED' ? 1 : 0,
    });
    expect(interrupted).toMatchObject({ status: 'INTERRUPTED', error: 'Stepline.Interrupted' });
    expect(oldLinkNewServer.status).toBe(409);
    expect(afterOldLink.map((r) => r.status)).toEqual(['INTERRUPTED']);
    expect(restart.status).toBe(202);
    expect(decided.status).toBe(200);
    expect(ended).toMatchObject({ status: 'SUCCEEDED', restartOf: name });
    expect(orphaned).toBe(0);
    await kill(second);
  });
});

describe('the runtime killed with SIGKILL while a run holds an environment', () => {
  it('leaves no orphaned hold after the restart, and the next run of the line deploys the environment', async ({
    task,
  }) => {
    const stateDir = join(dir, 'state-hold');
    const params = [ANY_REF_TRIGGERS, settingsParam([{ name: 'dev' }])];
    const ref = 'refs/heads/hold/1';
    const held = await repo.commit({ mode: 'hold-gate\n' }, 'Holds dev until the gate opens');
    const first = await cli(stateDir, params);
    const secret = (await readFile(join(stateDir, 'webhook-secret-github'), 'utf8')).trim();
    const answer = await pushTo(first.url, secret, { repo, after: held, ref });
    const [name = ''] = (answer.json as { started: string[] }).started;
    await untilApi(
      first.url,
      async () =>
        (await getJson<LineView[]>(`${first.url}/api/environments`))
          .flatMap((line) => line.environments)
          .find((e) => e.name === 'dev' && e.holder && runName(e.holder.executionArn) === name),
      'the run to hold dev',
    );
    await kill(first);

    const second = await cli(stateDir, params);
    const [interrupted] = (await runs(second.url)).filter((r) => r.name === name);
    const orphanedAtRestart = await orphanedHolds(second.url);
    // Recorded at once, so the summary counts an orphaned hold even when the line then stays blocked.
    record(task, {
      cases: { 'fault: SIGKILL holding an environment': 1 },
      lost: interrupted ? 0 : 1,
      orphanedHolds: orphanedAtRestart,
      faultsInjected: 1,
    });
    expect(interrupted?.status).toBe('INTERRUPTED');
    expect(orphanedAtRestart).toBe(0);

    const next = await repo.commit({ mode: 'echo\n' }, 'The next push of the line');
    const pushed = await pushTo(second.url, secret, { repo, before: held, after: next, ref });
    const [nextName = ''] = (pushed.json as { started: string[] }).started;
    const [ended] = await untilEnded(second.url, [nextName], 'the next run of the line to end');
    const dev = (await getJson<LineView[]>(`${second.url}/api/environments`))
      .flatMap((line) => line.environments)
      .find((e) => e.name === 'dev');
    const orphanedAtEnd = await orphanedHolds(second.url);

    record(task, {
      orphanedHolds: orphanedAtEnd,
      faultsSurvived: ended?.status === 'SUCCEEDED' && dev?.current?.commit === next ? 1 : 0,
    });
    expect(orphanedAtEnd).toBe(0);
    expect(ended?.status).toBe('SUCCEEDED');
    expect(dev).toMatchObject({ holder: null, waiting: [], current: { commit: next } });
    await kill(second);
  });
});

describe('builds that fail', () => {
  const IMAGE_PROJECT = 'stepline-local-image';

  it('stops a hanging build at its timeout and reports it, through the whole local pipeline', async ({
    task,
  }) => {
    // The project's TimeoutInMinutes (30 in serverless.yml; CodeBuild's least is 5) is the local build
    // timeout; here the wiring's timeout for the image project is cut to 2 s, the path it takes unchanged.
    const timeoutState = join(dir, 'state-timeout');
    const local = await startLocal({
      stateDir: timeoutState,
      params: [ANY_REF_TRIGGERS, settingsParam([{ name: 'dev' }])],
      buildTimeoutsMinutes: { [IMAGE_PROJECT]: 2 / 60 },
    });
    try {
      const hang = await repo.commit({ mode: 'hang\n' }, 'A build that never ends');
      const missing = await repo.commit({ mode: 'missing-tool\n' }, 'A build whose tool is missing');
      const started = Date.now();
      const answers = await Promise.all([
        pushTo(local.url, local.runtime.webhookSecret, { repo, after: hang, ref: 'refs/heads/hang' }),
        pushTo(local.url, local.runtime.webhookSecret, { repo, after: missing, ref: 'refs/heads/missing' }),
      ]);
      const [hangRun, missingRun] = await Promise.all(
        answers.map((a) => {
          const [name = ''] = (a.json as { started: string[] }).started;
          return local.runtime.engine.wait(local.runtime.engine.executionArn('pipeline', name));
        }),
      );
      const took = Date.now() - started;
      // The notifications are published by the buildEvents and notify handlers, after the run's end.
      const outbox = await local.until(() => {
        const messages = local.runtime.store.outbox();
        const about = (sha: string, pattern: RegExp) =>
          messages.some((m) => m.body.includes(sha) && pattern.test(`${m.subject}\n${m.body}`));
        return about(hang, /TIMED_OUT/) && about(missing, /stepline-no-such-tool/) ? messages : undefined;
      }, 'the failure notifications');
      const sleepers = (await readdir(signals(timeoutState)))
        .filter((f) => f.startsWith('hanging-'))
        .map((f) => Number(f.slice(8)));
      // A killed process may stay a zombie until reaped: isRunning counts it as stopped.
      const stillRunning = (
        await Promise.all(sleepers.map(async (pid) => ((await isRunning(pid)) ? [pid] : [])))
      ).flat();

      const timedOut = local.runtime.builds(hangRun?.executionArn ?? '');
      const failed = local.runtime.builds(missingRun?.executionArn ?? '');
      const notified = (sha: string) =>
        outbox.filter((m: OutboxMessage) => m.body.includes(sha)).map((m) => m.subject);
      const survived =
        hangRun?.status === 'FAILED' && missingRun?.status === 'FAILED' && stillRunning.length === 0;
      record(task, {
        cases: { 'fault: build timeout': 1, 'fault: missing tool': 1 },
        faultsInjected: 2,
        faultsSurvived: survived ? 2 : 0,
      });
      expect(hangRun).toMatchObject({ status: 'FAILED' });
      expect(timedOut.map((b) => `${b.stage} ${b.status}`)).toEqual(['Image TIMED_OUT']);
      expect(took).toBeLessThan(30_000);
      expect(sleepers.length).toBeGreaterThan(0);
      expect(stillRunning).toEqual([]);
      expect(missingRun).toMatchObject({ status: 'FAILED' });
      expect(failed.map((b) => `${b.stage} ${b.status}`)).toEqual(['Image FAILED']);
      const missingToolMessages = outbox.filter(
        (m) => m.body.includes(missing) && m.body.includes('stepline-no-such-tool'),
      );
      expect(missingToolMessages.length).toBeGreaterThan(0);
      console.info(`timeout: ${notified(hang).join(' | ')}\nmissing tool: ${notified(missing).join(' | ')}`);
    } finally {
      await local.stop();
    }
  });

  it('stops a hanging command at a 1-second timeout in the build runner itself', async () => {
    const workDir = join(dir, 'runner');
    await mkdir(workDir, { recursive: true });
    const lines: string[] = [];
    const begun = Date.now();
    const result = await runBuild({
      buildspec: 'version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 600\n',
      workDir,
      timeoutSeconds: 1,
      log: (line) => lines.push(line),
    });
    expect(result.status).toBe('TIMED_OUT');
    expect(Date.now() - begun).toBeLessThan(10_000);
    expect(lines.join('\n')).toMatch(/timed out/i);
  });
});

describe('the state on disk', () => {
  it('detects and skips a torn last write, rebuilds an unreadable record, and keeps working', async ({
    task,
  }) => {
    const stateDir = join(dir, 'state-torn');
    const params = [ANY_REF_TRIGGERS, settingsParam([{ name: 'dev' }])];
    const commit = await repo.commit({ mode: 'echo\n' }, 'Before the torn write');
    const before = await startLocal({ stateDir, params });
    const answers = await Promise.all(
      ['torn/1', 'torn/2'].map((ref) =>
        pushTo(before.url, before.runtime.webhookSecret, { repo, after: commit, ref: `refs/heads/${ref}` }),
      ),
    );
    const names = answers.flatMap((a) => (a.json as { started: string[] }).started);
    await Promise.all(
      names.map((n) => before.runtime.engine.wait(before.runtime.engine.executionArn('pipeline', n))),
    );
    await before.stop();

    // What a crash in the middle of writes leaves: half a line at the end of each journal, and a
    // record file that is not JSON.
    await appendFile(join(stateDir, 'deliveries.jsonl'), '{"type":"DeliveryReceived","id":"torn-deliv');
    await appendFile(
      join(stateDir, 'executions', names[0] ?? '', 'history.jsonl'),
      '{"id":999,"type":"StateEnt',
    );
    await writeFile(
      join(stateDir, 'executions', names[1] ?? '', 'execution.json'),
      '{"executionArn": "arn:aws:sta',
    );

    const after = await startLocal({ stateDir, params });
    try {
      const report = after.runtime.store.recoveryReport;
      const listed = names.map((n) => after.runtime.store.execution(n)?.status);
      const next = await pushTo(after.url, after.runtime.webhookSecret, {
        repo,
        after: commit,
        ref: 'refs/heads/torn/3',
      });
      const [nextName = ''] = (next.json as { started: string[] }).started;
      const nextRun = await after.runtime.engine.wait(
        after.runtime.engine.executionArn('pipeline', nextName),
      );
      const torn = (await readdir(stateDir)).filter((f) => f.endsWith('.torn'));

      record(task, {
        cases: { 'fault: torn write': 1 },
        faultsInjected: 1,
        faultsSurvived: nextRun?.status === 'SUCCEEDED' && listed.every((s) => s === 'SUCCEEDED') ? 1 : 0,
      });
      expect(report.repaired).toEqual(
        expect.arrayContaining(['deliveries.jsonl', `executions/${names[1]}/execution.json`]),
      );
      expect(report.notes.join('\n')).toMatch(/rebuilt from history/);
      expect(torn).toEqual(['deliveries.jsonl.torn']);
      expect(listed).toEqual(['SUCCEEDED', 'SUCCEEDED']);
      expect(
        after.runtime.store
          .history(after.runtime.store.execution(names[0] ?? '')?.executionArn ?? '')
          .some((e) => e.id === 999),
      ).toBe(false);
      expect(next.status).toBe(202);
      expect(nextRun?.status).toBe('SUCCEEDED');
    } finally {
      await after.stop();
    }
  });
});
