import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunDetail, RunSummary } from '#local/runs/read-model.ts';
import type { LineView } from '#shared/release.ts';
import { freeDeployPortBase, getJson, git, LocalTestScope, pollUntil } from '../helpers/local-process.ts';

/**
 * Twenty pushes to one branch in quick succession, on the real local mode with no approval gate: every
 * environment ends on the newest commit, each environment's deployments come in push order, and every
 * push has exactly one run, which ends.
 */

const PUSHES = 20;

async function burst(
  mode: 'SUPERSEDED' | 'QUEUED',
  onTestFinished: (fn: () => Promise<void>) => void,
  whileRunning: (url: string, stateDir: string) => Promise<void> = async () => undefined,
) {
  const scope = await LocalTestScope.create(`stepline-e2e-burst-${mode.toLowerCase()}-`, onTestFinished);
  const base = await freeDeployPortBase();
  const settings = { executionMode: mode, environments: [{ name: 'dev' }, { name: 'prod' }] };
  const stepline = scope.cli(
    [
      'start',
      '--port',
      '0',
      '--state-dir',
      scope.stateDir,
      '--param',
      `settings=${JSON.stringify(settings)}`,
    ],
    { env: { STEPLINE_DEPLOY_PORT_BASE: String(base) } },
  );
  const url = (await stepline.waitForLine(/^stepline is running at (http:\/\/\S+) /)).match[1] ?? '';
  const remote = (await stepline.waitForLine(/^git remote of the sample app: (\S+)$/)).match[1] ?? '';
  await stepline.waitForLine(/^▶ (\S+): /);

  // The twenty commits are made first, in a clone of the remote, so that the pushes themselves come in quick
  // succession: each `git push` sends one commit, and its hook waits only for the webhook's answer.
  const clone = join(scope.root, 'clone');
  await git(['clone', '--quiet', remote, clone]);
  const commits: string[] = [];
  for (let n = 1; n <= PUSHES; n++) {
    await appendFile(join(clone, 'server.mjs'), `// change ${n}\n`);
    await git(['commit', '--quiet', '--all', '-m', `Change ${n}`], clone);
    commits.push((await git(['rev-parse', 'HEAD'], clone)).trim());
  }
  // Watched from the first push on: the first runs are deploying while the last pushes go.
  const watching = whileRunning(url, scope.stateDir);
  for (const commit of commits) await git(['push', '--quiet', 'origin', `${commit}:refs/heads/main`], clone);
  const newest = commits.at(-1) ?? '';

  const runs = await pollUntil(
    `the ${PUSHES + 1} runs to end`,
    async () => {
      const all = await getJson<RunSummary[]>(`${url}/api/runs`, scope.stateDir);
      return all.length === PUSHES + 1 && all.every((r) => r.status !== 'RUNNING') ? all : undefined;
    },
    240_000,
  );
  await watching;
  // No run lost or doubled: one per push (the start's own push included), each ended.
  expect(new Set(runs.map((r) => r.commit)).size).toBe(PUSHES + 1);
  expect(runs.map((r) => r.commit)).toEqual(expect.arrayContaining(commits));

  const [line] = await getJson<LineView[]>(`${url}/api/environments`, scope.stateDir);
  for (const environment of line?.environments ?? []) {
    expect([environment.name, environment.current?.commit, environment.holder]).toEqual([
      environment.name,
      newest,
      null,
    ]);
  }
  expect(line?.environments.map((e) => e.name)).toEqual(['dev', 'prod']);

  // Each environment's deployments, in the order they finished, go forward in push order.
  const details = await Promise.all(
    runs.map((r) => getJson<RunDetail>(`${url}/api/runs/${r.name}`, scope.stateDir)),
  );
  for (const environment of ['dev', 'prod']) {
    const deployed = details
      .flatMap((run) =>
        run.builds
          .filter((b) => b.stage === `${environment}: Deploy` && b.status === 'SUCCEEDED')
          .map((b) => ({ end: b.endTime ?? 0, sequence: (run.input as { sequence: number }).sequence })),
      )
      .sort((a, b) => a.end - b.end)
      .map((d) => d.sequence);
    expect(deployed, environment).toEqual([...deployed].sort((a, b) => a - b));
    expect(deployed.at(-1), environment).toBe(PUSHES + 1);
  }
  return { runs, details };
}

describe.concurrent('twenty pushes to one branch in quick succession', () => {
  it('SUPERSEDED: the newest commit reaches every environment, older runs are retired or finish, deployments move forward', async ({
    onTestFinished,
  }) => {
    const { runs } = await burst('SUPERSEDED', onTestFinished);
    const statuses = new Set(runs.map((r) => r.status));
    // How many are retired depends on how the pushes and the runs overlap on this machine; which ones are is
    // the rules' (test/functions/release.test.ts), and a retirement end to end is test/e2e/local-release.test.ts's.
    expect([...statuses].every((s) => s === 'SUCCEEDED' || s === 'SUPERSEDED')).toBe(true);
  }, 300_000);

  it('QUEUED: every run deploys, one after another in push order, and the newest ends in every environment', async ({
    onTestFinished,
  }) => {
    const seenWaiting: RunSummary[] = [];
    const { runs, details } = await burst('QUEUED', onTestFinished, async (url, stateDir) => {
      // While they queue, a run says which environment it waits for and which run holds it. Whether one is
      // caught waiting depends on how pushes and runs overlap here (the rule itself is
      // test/functions/release.test.ts's); what is caught must read right.
      await pollUntil(
        'every run to end',
        async () => {
          const all = await getJson<RunSummary[]>(`${url}/api/runs`, stateDir);
          seenWaiting.push(...all.filter((r) => r.waitingFor));
          return all.length === PUSHES + 1 && all.every((r) => r.status !== 'RUNNING') ? true : undefined;
        },
        240_000,
      );
    });
    const names = new Set(runs.map((r) => r.name));
    for (const waiting of seenWaiting) {
      expect(waiting.waitingFor?.environment).toMatch(/^(dev|prod)$/);
      expect(waiting.stage).toBe(`${waiting.waitingFor?.environment}: waiting`);
      const heldBy = waiting.waitingFor?.heldBy;
      if (heldBy !== null && heldBy !== undefined) expect(names.has(heldBy), heldBy).toBe(true);
    }
    expect(runs.every((r) => r.status === 'SUCCEEDED')).toBe(true);
    const prodDeploys = details.filter((d) => d.builds.some((b) => b.stage === 'prod: Deploy'));
    expect(prodDeploys).toHaveLength(PUSHES + 1);
  }, 300_000);
});
