import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalStore } from '#local/state/store.ts';
import { LocalStepFunctions } from '#local/stepfunctions/engine.ts';

/** A machine whose one Task waits until its run is stopped. */
const WAITING_MACHINE = {
  StartAt: 'Wait for a stop',
  States: {
    'Wait for a stop': {
      Type: 'Task',
      Resource: 'arn:aws:states:::codebuild:startBuild.sync',
      TimeoutSeconds: 60,
      End: true,
    },
  },
};

let dir = '';
let store: LocalStore | undefined;

afterEach(async () => {
  await store?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function engineWithWaitingTasks(): Promise<LocalStepFunctions> {
  dir = await mkdtemp(join(tmpdir(), 'stepline-stop-'));
  store = await LocalStore.open(dir);
  return new LocalStepFunctions({
    store,
    region: 'us-east-1',
    account: '000000000000',
    machines: { pipeline: { name: 'stepline-local-pipeline', definition: WAITING_MACHINE as never } },
    bindings: {
      'arn:aws:states:::codebuild:startBuild.sync': (_input, context) =>
        new Promise((_resolve, reject) =>
          context.signal.addEventListener('abort', () => reject(new Error('stopped'))),
        ),
    },
    onStatusChange: () => undefined,
  });
}

describe('StopExecution on the local engine', () => {
  it('ends the one run it names ABORTED, with the error and cause given, and leaves the others running', async () => {
    const engine = await engineWithWaitingTasks();
    const older = await engine.start('pipeline', 'shop-pr7-1a2b3c4d-1111111-aaaaaaaaaaaa', { n: 1 });
    const other = await engine.start('pipeline', 'shop-pr8-5e6f7a8b-1111111-bbbbbbbbbbbb', { n: 2 });

    const stopped = await engine.stopExecution(
      older.executionArn,
      'Pipeline.Superseded',
      'Superseded by newer',
    );

    expect(stopped).toBe(true);
    expect(store?.execution(older.executionArn)).toMatchObject({
      status: 'ABORTED',
      error: 'Pipeline.Superseded',
      cause: 'Superseded by newer',
    });
    expect(store?.history(older.executionArn).at(-1)).toMatchObject({
      type: 'ExecutionAborted',
      error: 'Pipeline.Superseded',
    });
    expect(engine.running).toEqual([other.executionArn]);
    expect(await engine.stopExecution(older.executionArn, 'Pipeline.Superseded', 'again')).toBe(false);
    await engine.stopAll('the test ended');
    expect(store?.execution(other.executionArn)?.status).toBe('INTERRUPTED');
  });

  it('stops a run whose start was under way when stepline began to stop, and starts none after', async () => {
    const engine = await engineWithWaitingTasks();
    // A push that arrives as stepline stops: its start is still writing the run when stopAll is called.
    const starting = engine.start('pipeline', 'shop-main-1a2b3c4d-1111111-cccccccccccc', { n: 3 });
    await engine.stopAll('stepline was stopped');

    const record = await starting;
    expect(engine.running).toEqual([]);
    expect(store?.execution(record.executionArn)).toMatchObject({
      status: 'INTERRUPTED',
      cause: 'stepline was stopped',
    });
    await expect(engine.start('pipeline', 'shop-main-5e6f7a8b-1111111-dddddddddddd', {})).rejects.toThrow(
      'stepline is stopping: no run starts now',
    );
    expect(store?.executions().map((e) => e.name)).toEqual(['shop-main-1a2b3c4d-1111111-cccccccccccc']);
  });
});
