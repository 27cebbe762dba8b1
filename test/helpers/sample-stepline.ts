import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pushSampleApp } from '#local/git/remote.ts';
import type { PendingApproval, RunSummary } from '#local/runs/read-model.ts';
import {
  freeDeployPortBase,
  getJson,
  type LocalProcess,
  type LocalTestScope,
  pollUntil,
} from './local-process.ts';
import { copySampleApp } from './sample-app.ts';

/**
 * `stepline start` on the sample app, as a person starts it, for the end-to-end tests that push changes of
 * it and follow their runs through the API: where it answers, its git remote, and its deploys' ports.
 */
export interface SampleStepline {
  scope: LocalTestScope;
  process: LocalProcess;
  url: string;
  /** The server's port, for the CLI's `--port`. */
  port: string;
  remote: string;
  /** The first deploy port (`STEPLINE_DEPLOY_PORT_BASE`): prod's service answers on `base + 4`. */
  base: number;
}

export async function startSampleStepline(
  scope: LocalTestScope,
  params: string[] = [],
): Promise<SampleStepline> {
  const base = await freeDeployPortBase();
  const args = [
    'start',
    '--port',
    '0',
    '--state-dir',
    scope.stateDir,
    ...params.flatMap((p) => ['--param', p]),
  ];
  const process = scope.cli(args, { env: { STEPLINE_DEPLOY_PORT_BASE: String(base) } });
  const url = (await process.waitForLine(/^stepline is running at (http:\/\/\S+) /)).match[1] ?? '';
  const remote = (await process.waitForLine(/^git remote of the sample app: (\S+)$/)).match[1] ?? '';
  return { scope, process, url, port: new URL(url).port, remote, base };
}

/** Pushes a change of the sample app (a new commit) and returns the run it started. */
export async function pushSampleChange(
  stepline: SampleStepline,
  change: string,
  alter: (source: string) => Promise<void> = async () => undefined,
  branch = 'main',
): Promise<{ commit: string; run: string }> {
  const source = join(stepline.scope.root, `app-${change}`);
  await copySampleApp(source);
  await appendFile(join(source, 'server.mjs'), `// ${change}\n`);
  await alter(source);
  const pushed = await pushSampleApp({
    remotePath: stepline.remote,
    workDir: join(stepline.scope.root, 'clone'),
    sourceDir: source,
    branch,
    message: change,
  });
  const run = await pollUntil(`the run of ${change}`, async () =>
    (await listRuns(stepline)).find((r) => r.commit === pushed.commit),
  );
  return { commit: pushed.commit, run: run.name };
}

export function listRuns(stepline: SampleStepline): Promise<RunSummary[]> {
  return getJson<RunSummary[]>(`${stepline.url}/api/runs`, stepline.scope.stateDir);
}

/** The run once it has ended with `status`; fails at once when it ends otherwise. */
export function runEnded(
  stepline: SampleStepline,
  name: string,
  status: RunSummary['status'],
): Promise<RunSummary> {
  return pollUntil(
    `${name} to end ${status}`,
    async () => {
      const run = (await listRuns(stepline)).find((r) => r.name === name);
      if (run && run.status !== 'RUNNING' && run.status !== status) {
        throw new Error(`${name} ended ${run.status} (${run.error}: ${run.cause}), not ${status}`);
      }
      return run?.status === status ? run : undefined;
    },
    60_000,
  );
}

/** The run's pending prod approval, once its gate is reached. */
export function prodGate(stepline: SampleStepline, name: string): Promise<PendingApproval> {
  return pollUntil(
    `${name} to wait at prod's approval`,
    async () =>
      (await getJson<PendingApproval[]>(`${stepline.url}/api/approvals`, stepline.scope.stateDir)).find(
        (a) => a.executionArn.endsWith(`:${name}`) && a.environment === 'prod',
      ),
    30_000,
  );
}
