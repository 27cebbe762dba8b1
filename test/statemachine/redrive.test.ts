import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ExecutionRecord, LocalStore } from '#local/state/store.ts';
import { LocalStepFunctions, type TaskBinding } from '#local/stepfunctions/engine.ts';
import { REDRIVE_PERIOD_MS } from '#local/stepfunctions/redrive.ts';
import { StageFailedError } from '#shared/errors.ts';
import {
  APPROVED,
  anExecutionInput,
  buildEnvironment,
  buildFailed,
  buildSucceeded,
  loadProjectStateMachine,
  notifyAsDeployed,
  RESOURCE,
  TEST_IMAGE_URI,
} from '../helpers/asl-harness.ts';

/**
 * The pipeline's ASL on the local engine, redriven after each stage fails in turn: only the failed stage
 * and what follows run again; what succeeded (the image, environments deployed, an approval decided) does
 * not, and the run ends SUCCEEDED under the same name with one history.
 */

const ENVIRONMENTS = [
  { name: 'dev', approval: false },
  { name: 'prod', approval: true },
];
const DEADLINE_MS = 15_000;

let dir: string;
let store: LocalStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stepline-redrive-'));
  store = await LocalStore.open(dir);
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** What the bindings were asked for, as people read it: `Image`, `dev: Deploy`, `prod: Approval`, `Notify …`. */
type Stage = string;

/** An engine over the real pipeline whose builds of `failing` (a stage label) fail while `broken()` says so. */
function engineWith(failing: { stage: Stage; broken: () => boolean; hangs?: boolean }) {
  const calls: Stage[] = [];
  const label = (input: Record<string, unknown>, state: string) => {
    const environment =
      buildEnvironment(input).STEPLINE_ENVIRONMENT ??
      ((input.Payload as { environment?: string } | undefined)?.environment || undefined);
    return environment === undefined ? state : `${environment}: ${state}`;
  };
  const bindings: Record<string, TaskBinding> = {
    [RESOURCE.startBuildSync]: async (input, context) => {
      const stage = label(input, context.stateName);
      calls.push(stage);
      if (stage === failing.stage && failing.broken()) {
        if (!failing.hangs) throw buildFailed(input);
        // A build still going when stepline stops: it ends with the run.
        await new Promise((_, reject) =>
          context.signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true }),
        );
      }
      return buildSucceeded(
        input,
        String(input.ProjectName).endsWith('-image') ? { exported: { IMAGE_URI: TEST_IMAGE_URI } } : {},
      );
    },
    [RESOURCE.lambdaInvoke]: async (input, context) => {
      // A hold is left per environment; the notifications read as they are named.
      calls.push(
        context.stateName === 'Leave environment' ? label(input, context.stateName) : context.stateName,
      );
      return notifyAsDeployed(input);
    },
    [RESOURCE.lambdaInvokeWaitForTaskToken]: async (input, context) => {
      calls.push(label(input, context.stateName));
      return APPROVED;
    },
  };
  const statuses: ExecutionRecord[] = [];
  const engine = new LocalStepFunctions({
    store,
    region: 'eu-west-1',
    account: '123456789012',
    machines: {
      pipeline: { name: 'stepline-test-pipeline', definition: loadProjectStateMachine('pipeline') },
    },
    bindings,
    onStatusChange: (record) => statuses.push(record),
  });
  return { engine, calls, statuses };
}

async function ended(engine: LocalStepFunctions, arn: string): Promise<ExecutionRecord | undefined> {
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`${arn} did not end`)), DEADLINE_MS).unref(),
  );
  return Promise.race([engine.wait(arn), timeout]);
}

const EVERY_STAGE = [
  'Test',
  'Image',
  'dev: Infrastructure',
  'dev: Deploy',
  'prod: Infrastructure',
  'prod: Deploy',
];
const PASSING_RUN = [
  'Test',
  'Join line',
  'Image',
  'dev: Enter environment',
  'dev: Infrastructure',
  'dev: Deploy',
  'dev: Leave environment',
  'prod: Approval',
  'prod: Enter environment',
  'prod: Infrastructure',
  'prod: Deploy',
  'prod: Leave environment',
  'Notify succeeded',
];

describe('redriving the pipeline', () => {
  it.each(EVERY_STAGE)('reruns from %s once fixed, and nothing that succeeded before', async (stage) => {
    let broken = true;
    const { engine, calls, statuses } = engineWith({ stage, broken: () => broken });
    const input = anExecutionInput({ environments: ENVIRONMENTS });
    const started = await engine.start('pipeline', 'main-2222222', input);
    const failed = await ended(engine, started.executionArn);
    expect(failed).toMatchObject({ status: 'FAILED' });
    // What automatic rollback reads to tell a failed Deploy from the rest: the stage, from error and cause.
    if (/Test|Image|Infrastructure|Deploy/.test(stage))
      expect(StageFailedError.stageOf(failed?.error, failed?.cause)).toBe(stage);
    const firstAttempt = [...calls];
    expect(firstAttempt.at(-2)).toBe(stage);
    expect(firstAttempt.at(-1)).toMatch(/^Notify .* failure$/);

    broken = false;
    calls.length = 0;
    const redriven = await engine.redrive('main-2222222');
    const finished = await ended(engine, started.executionArn);

    const succeededBefore = firstAttempt.slice(0, -2);
    expect(calls).toEqual(PASSING_RUN.slice(PASSING_RUN.indexOf(stage)));
    for (const done of succeededBefore) expect(calls).not.toContain(done);
    expect(redriven).toMatchObject({ name: 'main-2222222', status: 'RUNNING', redriveCount: 1 });
    expect(finished).toMatchObject({
      executionArn: started.executionArn,
      status: 'SUCCEEDED',
      redriveCount: 1,
    });
    expect(finished?.error).toBeUndefined();
    // Started, ended FAILED, RUNNING again (the second "started" of the same name), SUCCEEDED.
    expect(statuses.map((s) => [s.status, s.redriveCount ?? 0])).toEqual([
      ['RUNNING', 0],
      ['FAILED', 0],
      ['RUNNING', 1],
      ['SUCCEEDED', 1],
    ]);
  });

  it('continues one history: the redrive recorded, what succeeded not written again', async () => {
    let broken = true;
    const { engine } = engineWith({ stage: 'prod: Deploy', broken: () => broken });
    const started = await engine.start('pipeline', 'run', anExecutionInput({ environments: ENVIRONMENTS }));
    await ended(engine, started.executionArn);
    broken = false;
    await engine.redrive(started.executionArn);
    await ended(engine, started.executionArn);

    const history = store.history(started.executionArn);
    const types = history.map((event) => event.type);
    const redrive = types.indexOf('ExecutionRedriven');
    expect(types.filter((type) => type === 'ExecutionStarted')).toHaveLength(1);
    expect(types.slice(redrive - 1, redrive + 1)).toEqual(['ExecutionFailed', 'ExecutionRedriven']);
    expect(history[redrive]).toMatchObject({ redriveCount: 1 });
    expect(types.at(-1)).toBe('ExecutionSucceeded');
    const after = history.slice(redrive + 1);
    const entered = after.filter((e) => e.type === 'StateEntered').map((e) => `${e.state}#${e.index ?? ''}`);
    // The failed Map and its failed iteration are entered again; Image, dev and prod's approval are not.
    expect(entered).toEqual([
      'Environments#',
      'Deploy#1',
      'Leave environment#1',
      'Notify succeeded#',
      'Succeeded#',
    ]);
    expect(after.filter((e) => e.type === 'MapIterationStarted').map((e) => e.index)).toEqual([1]);
  });

  it('does not ask again for an approval already decided', async () => {
    let broken = true;
    const { engine, calls } = engineWith({ stage: 'prod: Infrastructure', broken: () => broken });
    const started = await engine.start('pipeline', 'run', anExecutionInput({ environments: ENVIRONMENTS }));
    await ended(engine, started.executionArn);
    expect(calls).toContain('prod: Approval');
    broken = false;
    calls.length = 0;
    await engine.redrive('run');
    await ended(engine, started.executionArn);
    expect(calls).toEqual([
      'prod: Infrastructure',
      'prod: Deploy',
      'prod: Leave environment',
      'Notify succeeded',
    ]);
  });

  it('gives the redriven stage its retries again, as the rerun notify task on AWS does (from attempt 1)', async () => {
    let failures = 4;
    const { engine, calls } = engineWith({ stage: 'dev: Deploy', broken: () => failures-- > 0 });
    const input = anExecutionInput({
      environments: ENVIRONMENTS,
      retries: { test: 0, image: 0, infrastructure: 0, deploy: 1 },
    });
    const started = await engine.start('pipeline', 'run', input);
    expect(await ended(engine, started.executionArn)).toMatchObject({ status: 'FAILED' });
    expect(calls.filter((call) => call === 'dev: Deploy')).toHaveLength(2);

    calls.length = 0;
    await engine.redrive('run');
    expect(await ended(engine, started.executionArn)).toMatchObject({ status: 'FAILED', redriveCount: 1 });
    expect(calls.filter((call) => call === 'dev: Deploy')).toHaveLength(2);
    expect(calls).not.toContain('Image');
  });

  it('redrives a run that failed again, counting each redrive', async () => {
    let failures = 2;
    const { engine, calls } = engineWith({ stage: 'dev: Deploy', broken: () => failures-- > 0 });
    const started = await engine.start('pipeline', 'run', anExecutionInput({ environments: ENVIRONMENTS }));
    await ended(engine, started.executionArn);
    await engine.redrive('run');
    expect(await ended(engine, started.executionArn)).toMatchObject({ status: 'FAILED', redriveCount: 1 });
    calls.length = 0;
    await engine.redrive('run');
    expect(await ended(engine, started.executionArn)).toMatchObject({ status: 'SUCCEEDED', redriveCount: 2 });
    expect(calls[0]).toBe('dev: Deploy');
    expect(calls).not.toContain('Image');
    expect(store.history('run').filter((e) => e.type === 'ExecutionRedriven')).toHaveLength(2);
  });

  it('redrives a run stepline stopped in flight (INTERRUPTED) from the stage it was in, once started again', async () => {
    const { engine, calls } = engineWith({ stage: 'dev: Deploy', broken: () => true, hangs: true });
    const started = await engine.start('pipeline', 'run', anExecutionInput({ environments: ENVIRONMENTS }));
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (calls.includes('dev: Deploy')) {
          clearInterval(poll);
          resolve();
        }
      }, 10);
    });
    await engine.stopAll('stepline was stopped');
    expect(store.execution('run')).toMatchObject({ status: 'INTERRUPTED' });

    // A stopping engine starts nothing; stepline started again (a new engine on the same store) redrives it.
    await expect(engine.redrive('run')).rejects.toThrow('stepline is stopping');
    const restarted = engineWith({ stage: 'dev: Deploy', broken: () => false });
    await restarted.engine.redrive('run');
    expect(await ended(restarted.engine, started.executionArn)).toMatchObject({
      status: 'SUCCEEDED',
      redriveCount: 1,
    });
    expect(restarted.calls).toEqual(PASSING_RUN.slice(PASSING_RUN.indexOf('dev: Deploy')));
  });

  it('refuses, as ExecutionNotRedrivable with the reason, a run that succeeded, is running, or ended over 14 days ago', async () => {
    const { engine } = engineWith({ stage: 'none', broken: () => false });
    const input = anExecutionInput({ environments: ENVIRONMENTS });
    const succeeded = await engine.start('pipeline', 'passed', input);
    await ended(engine, succeeded.executionArn);
    await expect(engine.redrive('passed')).rejects.toMatchObject({
      name: 'ExecutionNotRedrivable',
      status: 409,
      message: 'Execution passed cannot be redriven: Execution is SUCCEEDED and cannot be redriven.',
    });

    const { engine: failingEngine } = engineWith({ stage: 'Image', broken: () => true });
    const failed = await failingEngine.start('pipeline', 'failed', input);
    const record = await ended(failingEngine, failed.executionArn);
    const late = new Date(Date.parse(record?.stopDate ?? '') + REDRIVE_PERIOD_MS + 1000);
    await expect(failingEngine.redrive('failed', late)).rejects.toMatchObject({
      name: 'ExecutionNotRedrivable',
      message: 'Execution failed cannot be redriven: Execution redrivable period exceeded.',
    });
    await failingEngine.redrive('failed');
    await expect(failingEngine.redrive('failed')).rejects.toMatchObject({
      message: 'Execution failed cannot be redriven: Execution is RUNNING and cannot be redriven.',
    });
    await ended(failingEngine, failed.executionArn);
    await expect(failingEngine.redrive('nothing-of-that-name')).rejects.toMatchObject({ status: 404 });
  });
});
