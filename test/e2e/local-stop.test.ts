import { readdir, readFile, readlink } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  freeDeployPortBase,
  git,
  isPortOpen,
  type LocalProcess,
  LocalTestScope,
  pollUntil,
} from '../helpers/local-process.ts';
import { isRunning } from '../helpers/sample-app.ts';

const ALL_BRANCHES = 'triggers={"push":[{"branches":{"includes":["**"]}}]}';
const BRANCHES = Array.from({ length: 20 }, (_, index) => `feature-${index + 1}`);

/**
 * Live processes that belong to the test's folder `root`: started with it as working directory (or in it),
 * naming it on their command line, or given a deploy folder in it (STEPLINE_DEPLOY_DIR). Linux /proc.
 */
async function processesUnder(root: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const [cwd, cmdline, environ] = await Promise.all([
      readlink(`/proc/${entry}/cwd`).catch(() => ''),
      readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => ''),
      readFile(`/proc/${entry}/environ`, 'utf8').catch(() => ''),
    ]);
    const inRoot = (text: string) => text === root || text.includes(`${root}${sep}`);
    const belongs =
      inRoot(cwd) || inRoot(cmdline.split('\0').join(' ')) || environ.includes(`STEPLINE_DEPLOY_DIR=${root}`);
    if (belongs && (await isRunning(Number(entry))))
      found.push(`${entry}: ${cmdline.split('\0').join(' ').trim()} (cwd ${cwd})`);
  }
  return found;
}

/**
 * Starts `stepline start` with every branch triggering a run, pushes 20 branches to its remote (one run
 * each, beside the sample app's own first run on main), and returns once a Deploy build is in progress.
 */
async function startWithDeploysInFlight(
  scope: LocalTestScope,
): Promise<{ stepline: LocalProcess; ports: number[]; pushes: Promise<unknown> }> {
  const base = await freeDeployPortBase();
  const stepline = scope.cli(
    ['start', '--port', '0', '--state-dir', scope.stateDir, '--param', ALL_BRANCHES],
    {
      env: { STEPLINE_DEPLOY_PORT_BASE: String(base) },
    },
  );
  const { match } = await stepline.waitForLine(/^git remote of the sample app: (\S+)$/, {
    timeoutMs: 45_000,
  });
  const remote = match[1] ?? '';
  // `start` pushes the sample app to main itself (its run starts then); the branches start from that commit.
  await stepline.waitForLine(/^\d+ run\(s\) so far/);
  const clone = join(scope.root, 'clone');
  await git(['clone', '--quiet', remote, clone]);
  // A commit of its own on each branch, as 20 people would push (each run packs its own image).
  for (const branch of BRANCHES) {
    await git(['checkout', '--quiet', '-b', branch, 'main'], clone);
    await git(['commit', '--quiet', '--allow-empty', '-m', `Work on ${branch}`], clone);
  }
  // Pushed at once, as 20 people would; each hook waits for the server's answer, so the pushes end as their
  // runs start. Stopping does not wait for them: a deploy in flight is what this is about.
  const pushes = Promise.allSettled(BRANCHES.map((branch) => git(['push', 'origin', branch], clone)));
  await stepline.waitForLine(/^\s+… (dev|prod): Deploy started /, { timeoutMs: 60_000 });
  return { stepline, ports: [base + 1, base + 4], pushes };
}

async function expectNothingLeft(scope: LocalTestScope, ports: number[]): Promise<void> {
  expect(await processesUnder(scope.root)).toEqual([]);
  expect(await Promise.all(ports.map(isPortOpen))).toEqual(ports.map(() => false));
}

describe('stopping stepline while 21 runs deploy', () => {
  it('SIGTERM leaves no deployed service or build running and the environment ports free', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-stop-', onTestFinished);
    const { stepline, ports, pushes } = await startWithDeploysInFlight(scope);

    const exit = await stepline.stop('SIGTERM', 30_000);
    // What it printed, when it did not exit cleanly, says why.
    expect(
      exit,
      exit.code === 0 ? '' : stepline.lines.filter((l) => l.startsWith('stderr: ')).join('\n'),
    ).toEqual({
      code: 0,
      signal: null,
    });
    await pushes;
    // Nothing to wait for: stepline has ended what it started before it exits.
    await expectNothingLeft(scope, ports);
  }, 150_000);

  it('SIGKILL of the runtime: its watchdog ends every build and deployed service', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-kill-', onTestFinished);
    const { stepline, ports, pushes } = await startWithDeploysInFlight(scope);

    expect(await stepline.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    await pushes;
    // The watchdog acts once the runtime has gone: wait for it, against a deadline.
    await pollUntil(
      'the processes of the killed runtime to end',
      async () => ((await processesUnder(scope.root)).length === 0 ? true : undefined),
      10_000,
    );
    await expectNothingLeft(scope, ports);
  }, 150_000);
});
