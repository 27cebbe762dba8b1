import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pushSampleApp } from '#local/git/remote.ts';
import type { RunDetail, RunSummary } from '#local/runs/read-model.ts';
import {
  authorized,
  freeDeployPortBase,
  getJson,
  isPortOpen,
  LocalTestScope,
  pollUntil,
  processesOf,
} from '../helpers/local-process.ts';
import { copySampleApp, isRunning } from '../helpers/sample-app.ts';

interface DeliveryLine {
  id: string;
  response?: { status: number; body: { started?: string[] } };
}

/** The file each slow image build appends `<build shell pid> <sleep pid>` to, before it sleeps. */
const SLOW_PIDS = 'slow-image.pids';

/** A copy of the sample app whose image build hangs: it records its pids, then sleeps for a minute. */
async function slowSampleApp(dir: string): Promise<string> {
  await copySampleApp(dir);
  const file = join(dir, 'buildspecs', 'image.yml');
  const buildspec = await readFile(file, 'utf8');
  // The hang goes before the build phase's first command, which packs the app.
  const first = '      - STAGING_DIR="$(mktemp -d)"\n';
  if (!buildspec.includes(first))
    throw new Error(`${file} no longer starts its build phase with ${first.trim()}`);
  const hang = `      - sh -c 'echo "$PPID $$" >> "$STEPLINE_DEPLOY_DIR/${SLOW_PIDS}"; exec sleep 60'\n`;
  await writeFile(
    file,
    buildspec.replace(first, () => `${hang}${first}`),
  );
  return dir;
}

/** The pids of the slow builds that have reached their sleep, once there are `count` of them. */
async function slowBuilds(stateDir: string, count: number): Promise<{ shell: number; sleep: number }[]> {
  return pollUntil(`${count} slow image build(s) to reach their sleep`, async () => {
    const text = await readFile(join(stateDir, 'deploy', SLOW_PIDS), 'utf8').catch(() => '');
    // Whole lines only: the file may be read while a line is being written.
    const builds = text
      .split('\n')
      .slice(0, -1)
      .map((line) => /^(\d+) (\d+)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ shell: Number(m[1]), sleep: Number(m[2]) }));
    return builds.length >= count ? builds : undefined;
  });
}

async function stopped(pid: number): Promise<true> {
  return pollUntil(`process ${pid} to stop`, async () => ((await isRunning(pid)) ? undefined : true), 5_000);
}

async function deliveries(stateDir: string): Promise<Map<string, DeliveryLine[]>> {
  const lines = (await readFile(join(stateDir, 'deliveries.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as DeliveryLine);
  return Map.groupBy(lines, (line) => line.id);
}

describe('stepline killed and started again on the same state folder', () => {
  it('keeps every delivery and finished run, marks the run in flight INTERRUPTED, kills its build and restarts it under a new name', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-restart-', onTestFinished);
    const { stateDir } = scope;
    const base = await freeDeployPortBase();
    const env = { STEPLINE_DEPLOY_PORT_BASE: String(base) };
    const args = ['start', '--port', '0', '--state-dir', stateDir];

    // A finished run: the sample app `start` pushes, approved.
    const first = scope.cli(args, { env });
    const url = (await first.waitForLine(/^stepline is running at (http:\/\/\S+) /)).match[1] ?? '';
    const remote = (await first.waitForLine(/^git remote of the sample app: (\S+)$/)).match[1] ?? '';
    const finishedName = (await first.waitForLine(/^▶ (\S+): /)).match[1] ?? '';
    const approve = (await first.waitForLine(/^\s+approve: (http:\/\/\S+)$/)).match[1] ?? '';
    const decision = await fetch(approve, {
      method: 'POST',
      headers: await authorized(stateDir),
      body: new URLSearchParams({ name: 'Ada' }),
    });
    expect(decision.status).toBe(200);
    await first.waitForLine(new RegExp(`^✔ ${finishedName} SUCCEEDED`));

    // A run in flight: its image build hangs in `sleep 60`.
    const slowApp = await slowSampleApp(join(scope.root, 'slow-app'));
    const pushed = await pushSampleApp({
      remotePath: remote,
      workDir: join(scope.root, 'push'),
      sourceDir: slowApp,
    });
    const inFlight = await first.waitForLine(
      new RegExp(`^▶ (\\S+): local/hello-service main @ ${pushed.commit.slice(0, 7)}`),
    );
    const inFlightName = inFlight.match[1] ?? '';
    await first.waitForLine(/^\s+… Image started/, { from: inFlight.index });
    const [killedBuild] = await slowBuilds(stateDir, 1);
    if (!killedBuild) throw new Error('no slow build');
    scope.killAtCleanup(killedBuild.sleep, 'sleep 60');
    expect(await isRunning(killedBuild.sleep)).toBe(true);
    expect((await getJson<RunSummary[]>(`${url}/api/runs`, stateDir)).map((r) => r.status).sort()).toEqual([
      'RUNNING',
      'SUCCEEDED',
    ]);

    expect(await first.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });

    // The build's shell and what it ran die with the runtime, and so do the services its deploys started.
    await stopped(killedBuild.sleep);
    await stopped(killedBuild.shell);
    await pollUntil("the killed runtime's services to stop", async () =>
      (await processesOf(stateDir)).length === 0 ? true : undefined,
    );
    expect(await isPortOpen(base + 1)).toBe(false);

    const second = scope.cli(args, { env });
    const secondUrl = (await second.waitForLine(/^stepline is running at (http:\/\/\S+) /)).match[1] ?? '';
    expect(second.output).toMatch(
      new RegExp(
        `stepline: executions/${inFlightName}: stepline stopped while this run was in flight .*marked INTERRUPTED`,
      ),
    );
    await second.waitForLine(/run\(s\) so far/);
    expect(second.output).not.toContain('Pushing the sample application');

    const runs = await getJson<RunSummary[]>(`${secondUrl}/api/runs`, stateDir);
    expect(runs.map((r) => [r.name, r.status]).sort()).toEqual(
      [
        [finishedName, 'SUCCEEDED'],
        [inFlightName, 'INTERRUPTED'],
      ].sort(),
    );
    // The finished run's builds and their logs are still shown after the restart.
    const finished = await getJson<RunDetail>(`${secondUrl}/api/runs/${finishedName}`, stateDir);
    expect(finished.builds.map((b) => [b.stage, b.status])).toEqual([
      ['Test', 'SUCCEEDED'],
      ['Image', 'SUCCEEDED'],
      ['dev: Infrastructure', 'SUCCEEDED'],
      ['dev: Deploy', 'SUCCEEDED'],
      ['prod: Infrastructure', 'SUCCEEDED'],
      ['prod: Deploy', 'SUCCEEDED'],
    ]);
    const interrupted = runs.find((r) => r.name === inFlightName);
    expect(interrupted?.error).toBe('Stepline.Interrupted');
    expect(interrupted?.cause).toMatch(/^stepline stopped while this run was in flight \(at .+\)/);
    expect(interrupted?.commit).toBe(pushed.commit);

    // Both pushes were accepted, answered, and each started the run that is listed.
    const recorded = await deliveries(stateDir);
    expect(recorded.size).toBe(2);
    const started = [...recorded.values()].flatMap((lines) => {
      const answer = lines.find((line) => line.response)?.response;
      expect(answer?.status).toBe(202);
      return answer?.body.started ?? [];
    });
    expect(started.sort()).toEqual([finishedName, inFlightName].sort());

    // `stepline restart <run>` starts the interrupted run again under a new name.
    const port = new URL(secondUrl).port;
    const restart = scope.cli(['restart', inFlightName, '--port', port, '--state-dir', stateDir]);
    expect(await restart.waitForExit()).toEqual({ code: 0, signal: null });
    const restartedName = /^started (\S+)$/m.exec(restart.output)?.[1] ?? '';
    expect(restartedName).not.toBe('');
    expect(restartedName).not.toBe(inFlightName);
    await second.waitForLine(
      new RegExp(`^▶ ${restartedName}: local/hello-service main @ ${pushed.commit.slice(0, 7)}`),
    );
    const restarted = await getJson<RunSummary>(`${secondUrl}/api/runs/${restartedName}`, stateDir);
    expect(restarted.status).toBe('RUNNING');
    expect(restarted.restartOf).toBe(inFlightName);
    const [, restartedBuild] = await slowBuilds(stateDir, 2);
    if (!restartedBuild) throw new Error('no second slow build');
    scope.killAtCleanup(restartedBuild.sleep, 'sleep 60');

    // SIGTERM stops the restarted run and its build.
    expect(await second.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    const record = JSON.parse(
      await readFile(join(stateDir, 'executions', restartedName, 'execution.json'), 'utf8'),
    ) as RunSummary;
    expect(record.status).toBe('INTERRUPTED');
    expect(record.cause).toContain('stepline was stopped (Ctrl-C) while this run was in flight');
    await stopped(restartedBuild.sleep);
    await stopped(restartedBuild.shell);
    await pollUntil('the deployed services to stop', async () =>
      (await processesOf(stateDir)).length === 0 ? true : undefined,
    );
    expect(await isPortOpen(base + 1)).toBe(false);
    expect(await isPortOpen(base + 4)).toBe(false);
  }, 60_000);
});
