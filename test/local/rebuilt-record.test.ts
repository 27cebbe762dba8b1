import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalRuntime } from '#local/runtime.ts';
import type { ExecutionRecord } from '#local/state/store.ts';
import type { Wiring } from '#local/wiring.ts';

const projectDir = fileURLToPath(new URL('../..', import.meta.url));
const DEADLINE_MS = 20_000;

/**
 * A pipeline of two states: `Prepare` passes its result on; `Hold` waits (for a minute, so a run can be
 * caught in flight) unless the input says `"quick": true`.
 */
const wiring: Wiring = {
  service: 'stepline',
  stage: 'local',
  region: 'us-east-1',
  functions: [],
  buildTimeouts: {},
  machines: {
    pipeline: {
      id: 'PipelineStateMachine',
      name: 'stepline-local-pipeline',
      definition: {
        StartAt: 'Prepare',
        States: {
          Prepare: { Type: 'Pass', Result: { prepared: true }, ResultPath: '$.prepare', Next: 'Quick?' },
          'Quick?': {
            Type: 'Choice',
            Choices: [{ Variable: '$.quick', BooleanEquals: true, Next: 'Done' }],
            Default: 'Hold',
          },
          Hold: { Type: 'Wait', Seconds: 60, Next: 'Done' },
          Done: { Type: 'Succeed' },
        },
      },
    },
  },
};

const INPUT = { push: { repository: 'octo/app', ref: 'refs/heads/main', after: '6113728' }, quick: false };

let dir: string;
const runtimes: LocalRuntime[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stepline-rebuilt-'));
});

afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.stop();
  await rm(dir, { recursive: true, force: true });
});

async function startRuntime(stateDir: string): Promise<LocalRuntime> {
  const runtime = await LocalRuntime.start({ projectDir, stateDir, baseUrl: 'http://127.0.0.1:0', wiring });
  runtimes.push(runtime);
  return runtime;
}

async function stopRuntime(runtime: LocalRuntime): Promise<void> {
  runtimes.splice(runtimes.indexOf(runtime), 1);
  await runtime.stop();
}

/** Resolves once the run's history shows it entered `state`; fails after the deadline. */
function entered(runtime: LocalRuntime, executionArn: string, state: string): Promise<void> {
  const isThere = () =>
    runtime.store
      .history(executionArn)
      .some((event) => event.type === 'StateEntered' && event.state === state);
  return new Promise((resolve, reject) => {
    if (isThere()) return resolve();
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`${executionArn} did not enter ${state} within ${DEADLINE_MS} ms`));
    }, DEADLINE_MS);
    const unsubscribe = runtime.store.subscribe((change) => {
      if (change.kind === 'history' && change.id === executionArn && isThere()) {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      }
    });
  });
}

async function finished(runtime: LocalRuntime, executionArn: string): Promise<ExecutionRecord | undefined> {
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`${executionArn} did not end`)), DEADLINE_MS).unref(),
  );
  return Promise.race([runtime.engine.wait(executionArn), timeout]);
}

/** Removes a run's execution.json, as a lost or deleted file leaves it. */
async function loseRecord(stateDir: string, name: string): Promise<void> {
  await rm(join(stateDir, 'executions', name, 'execution.json'));
}

describe('a lost execution.json rebuilt from its history', () => {
  it('gives a finished run back its state machine, input, outcome and restarts it', async () => {
    const stateDir = join(dir, 'state');
    const first = await startRuntime(stateDir);
    const run = await first.engine.start('pipeline', 'finished-run', { ...INPUT, quick: true });
    const original = await finished(first, run.executionArn);
    await stopRuntime(first);
    await loseRecord(stateDir, 'finished-run');

    const second = await startRuntime(stateDir);
    const rebuilt = second.store.execution('finished-run');
    const restarted = await second.operations.restart('finished-run');
    const rerun = await finished(second, restarted.executionArn);

    expect(original?.status).toBe('SUCCEEDED');
    expect(rebuilt).toEqual({ ...original });
    expect(second.store.recoveryReport.repaired).toContain('executions/finished-run/execution.json');
    expect(restarted).toMatchObject({
      name: 'finished-run-r1',
      stateMachine: 'pipeline',
      restartOf: 'finished-run',
      input: { ...INPUT, quick: true },
    });
    expect(rerun?.status).toBe('SUCCEEDED');
  });

  it('keeps a run stopped with stepline INTERRUPTED, not ABORTED, and restarts it', async () => {
    const stateDir = join(dir, 'state');
    const first = await startRuntime(stateDir);
    const run = await first.engine.start('pipeline', 'stopped-run', INPUT);
    await entered(first, run.executionArn, 'Hold');
    await stopRuntime(first);
    await loseRecord(stateDir, 'stopped-run');

    const second = await startRuntime(stateDir);
    const rebuilt = second.store.execution('stopped-run');
    const restarted = await second.operations.restart('stopped-run');
    await entered(second, restarted.executionArn, 'Hold');

    expect(rebuilt).toMatchObject({
      executionArn: run.executionArn,
      stateMachine: 'pipeline',
      status: 'INTERRUPTED',
      error: 'Stepline.Interrupted',
      input: INPUT,
      startDate: run.startDate,
    });
    expect(second.store.history('stopped-run').map((event) => event.type)).not.toContain('ExecutionAborted');
    expect(restarted).toMatchObject({ stateMachine: 'pipeline', restartOf: 'stopped-run', input: INPUT });
    expect(second.store.execution(restarted.name)?.status).toBe('RUNNING');
  });

  it('marks a run in flight at a crash INTERRUPTED where it was, and restarts it', async () => {
    const live = join(dir, 'live');
    const crashed = join(dir, 'crashed');
    const first = await startRuntime(live);
    const run = await first.engine.start('pipeline', 'crashed-run', INPUT);
    await entered(first, run.executionArn, 'Hold');
    // The run's files as a crash at this moment leaves them: every acknowledged event is on disk.
    await cp(join(live, 'executions'), join(crashed, 'executions'), { recursive: true });
    await loseRecord(crashed, 'crashed-run');

    const second = await startRuntime(crashed);
    const rebuilt = second.store.execution('crashed-run');
    const restarted = await second.operations.restart('crashed-run');

    expect(rebuilt).toMatchObject({
      executionArn: run.executionArn,
      stateMachine: 'pipeline',
      status: 'INTERRUPTED',
      error: 'Stepline.Interrupted',
      input: INPUT,
      startDate: run.startDate,
    });
    expect(rebuilt?.cause).toContain('stepline stopped while this run was in flight (at Hold)');
    expect(rebuilt?.cause).toContain('execution.json was missing; rebuilt from history.jsonl');
    expect(second.store.recoveryReport.interrupted).toEqual(['crashed-run']);
    expect(second.store.history('crashed-run').at(-1)).toMatchObject({ type: 'ExecutionInterrupted' });
    expect(restarted).toMatchObject({ name: 'crashed-run-r1', stateMachine: 'pipeline', input: INPUT });
  });
});
