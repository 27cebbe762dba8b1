import { describe, expect, it } from 'vitest';
import { createHoldsHandler } from '#shared/handlers/holds.ts';
import { createPipelineEventsHandler } from '#shared/handlers/pipeline-events.ts';
import { createLogger } from '#shared/logger.ts';
import type { ExecutionInput, PipelineSettings } from '#shared/pipeline.ts';
import type { TaskDecider } from '#shared/ports.ts';
import { type ExecutionMode, type LineState, lineOf } from '#shared/release.ts';
import { ReleaseLedger } from '#shared/release-ledger.ts';
import {
  anExecutionInput,
  buildFailed,
  HOLDS_FUNCTION,
  type LocalRun,
  lambdaPayload,
  loadProjectStateMachine,
  passingHandlers,
  RESOURCE,
  runStateMachine,
  stepFunctionsError,
  type TaskHandler,
  type TaskInput,
  TEST_IMAGE_URI,
} from '../helpers/asl-harness.ts';
import { lambdaContext } from '../helpers/lambda.ts';
import { MemoryLineStore } from '../helpers/release.ts';

/**
 * The pipeline's release tasks run against the real holds handler and ledger (lines in memory, the
 * conditional write as DynamoDB's): several executions of the real ASL share one line, each task token is
 * resumed by whichever ledger decision comes (now or when another run leaves), and a run's end goes
 * through the real pipelineEvents handler, as EventBridge would deliver it.
 */

const pipeline = loadProjectStateMachine('pipeline');
const arn = (n: number) => `arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-${n}`;

class Fixture {
  readonly store = new MemoryLineStore();
  readonly waiting = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly early = new Map<string, { output: unknown } | { error: Error }>();
  readonly stopped: { executionArn: string; error: string; cause: string }[] = [];
  readonly ledger: ReleaseLedger;
  readonly holds: TaskHandler;
  readonly #tokens = { next: 0 };

  constructor() {
    const decide = (token: string, outcome: { output: unknown } | { error: Error }) => {
      const waiter = this.waiting.get(token);
      if (!waiter) return void this.early.set(token, outcome);
      this.waiting.delete(token);
      if ('error' in outcome) waiter.reject(outcome.error);
      else waiter.resolve(outcome.output);
    };
    const decider: TaskDecider = {
      succeed: async (token, output) => decide(token, { output }),
      fail: async (token, error, cause) => decide(token, { error: stepFunctionsError(error, cause) }),
    };
    this.ledger = new ReleaseLedger({
      store: this.store,
      decider,
      stopper: {
        stop: async (executionArn, error, cause) => void this.stopped.push({ executionArn, error, cause }),
      },
      notifier: { publish: async () => undefined },
      logger: createLogger('holds', 'SILENT'),
    });
    const handler = createHoldsHandler({
      ledger: this.ledger,
      logger: createLogger('holds', 'SILENT'),
      now: () => new Date(),
    });
    this.holds = async (input: TaskInput, call) => {
      const payload = lambdaPayload(input);
      const result = await handler(payload, lambdaContext('stepline-test-holds'));
      if (call.resource !== RESOURCE.lambdaInvokeWaitForTaskToken)
        return { StatusCode: 200, Payload: result };
      const token = String(payload.taskToken);
      const early = this.early.get(token);
      if (early) return 'error' in early ? Promise.reject(early.error) : early.output;
      return new Promise((resolve, reject) => this.waiting.set(token, { resolve, reject }));
    };
  }

  input(n: number, settings: Partial<PipelineSettings> = {}): ExecutionInput {
    const input = anExecutionInput({ executionMode: 'QUEUED', ...settings });
    return { ...input, sequence: n, source: { ...input.source, version: String(n).repeat(40) } };
  }

  run(n: number, input: ExecutionInput, handlers = passingHandlers()): Promise<LocalRun> {
    return runStateMachine(pipeline, input, {
      handlers,
      executionArn: arn(n),
      holds: this.holds,
      mintTaskToken: () => `token-${++this.#tokens.next}`,
    });
  }

  /** The run's end, as EventBridge delivers it to pipelineEvents. */
  async ended(n: number, input: ExecutionInput, status: string): Promise<void> {
    const handler = createPipelineEventsHandler({
      notifier: { publish: async () => undefined },
      emitter: { emit: async () => undefined },
      ledger: this.ledger,
      logger: createLogger('pipelineEvents', 'SILENT'),
      region: 'eu-west-1',
      stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-test-pipeline',
    });
    await handler(
      {
        version: '0',
        id: `event-${n}-${status}`,
        'detail-type': 'Step Functions Execution Status Change',
        source: 'aws.states',
        account: '123456789012',
        time: '2026-12-03T07:00:00Z',
        region: 'eu-west-1',
        resources: [arn(n)],
        detail: {
          executionArn: arn(n),
          stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-test-pipeline',
          name: `run-${n}`,
          status,
          startDate: 1_795_000_000_000,
          stopDate: 1_795_000_100_000,
          input: JSON.stringify(input),
          output: null,
        },
      },
      lambdaContext('stepline-test-pipelineEvents'),
    );
  }

  async line(input: ExecutionInput): Promise<LineState> {
    return (await this.store.read(lineOf(input.push))).state;
  }
}

/** Waits until `check` holds, checking after each turn of the event loop (no sleeps). */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let turn = 0; turn < 10_000; turn++) {
    if (await check()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`Never happened: ${what}`);
}

const held = (line: LineState) =>
  Object.entries(line.environments).flatMap(([name, e]) =>
    e.holder ? [`${name}:${e.holder.sequence}`] : [],
  );

describe('the release states of the pipeline', () => {
  it('join the line, enter and leave each environment: a passing run holds nothing at its end', async () => {
    const fixture = new Fixture();
    const input = fixture.input(1);

    const run = await fixture.run(1, input);

    expect(run.status).toBe('SUCCEEDED');
    expect(
      run.holdsCalls.map((c) => `${c.stateName} ${lambdaPayload(c.input).environment ?? ''}`.trim()),
    ).toEqual([
      'Join line',
      'Enter environment dev',
      'Leave environment dev',
      'Enter environment prod',
      'Leave environment prod',
    ]);
    expect(run.holdsCalls[0]?.input.FunctionName).toBe(HOLDS_FUNCTION);
    const line = await fixture.line(input);
    expect(held(line)).toEqual([]);
    expect(line.environments.prod?.current?.sequence).toBe(1);
    // Leave environment passes the image the run deployed: the deployment a rollback may go back to.
    expect(line.environments.prod?.deployments?.[0]).toMatchObject({ sequence: 1, imageUri: TEST_IMAGE_URI });
    await fixture.ended(1, input, 'SUCCEEDED');
    expect((await fixture.line(input)).runs).toEqual([]);
  });

  it('makes a second run wait at Enter environment until the first leaves (QUEUED)', async () => {
    const fixture = new Fixture();
    const [first, second] = [fixture.input(1), fixture.input(2)];
    let releaseDeploy: () => void = () => undefined;
    const deployGate = new Promise<void>((resolve) => {
      releaseDeploy = resolve;
    });
    const passing = passingHandlers();
    const slowDevDeploy = {
      ...passing,
      [RESOURCE.startBuildSync]: async (input: TaskInput, call: Parameters<TaskHandler>[1]) => {
        if (call.stateName === 'Deploy' && String(input.ProjectName).includes('-dev-')) await deployGate;
        return passing[RESOURCE.startBuildSync]?.(input, call);
      },
    };
    const one = fixture.run(1, first, slowDevDeploy);
    await until(async () => held(await fixture.line(first)).includes('dev:1'), 'run 1 holds dev');
    const two = fixture.run(2, second);
    await until(
      async () => (await fixture.line(first)).runs.some((r) => r.waiting?.environment === 'dev'),
      'run 2 waits for dev',
    );
    expect(held(await fixture.line(first))).toEqual(['dev:1']);

    releaseDeploy();
    const [runOne, runTwo] = await Promise.all([one, two]);

    expect([runOne.status, runTwo.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect((await fixture.line(first)).environments.prod?.current?.sequence).toBe(2);
  });

  it.each(['QUEUED', 'SUPERSEDED'] as const)(
    'lets runs of another branch through while one holds dev (%s): lines never block each other',
    async (mode) => {
      const fixture = new Fixture();
      const main = fixture.input(1, { executionMode: mode });
      const feature = {
        ...fixture.input(1, { executionMode: mode }),
        push: { ...main.push, ref: 'refs/heads/feature', refName: 'feature' },
      };
      const passing = passingHandlers();
      // main's dev Deploy never ends: it holds dev throughout.
      void fixture.run(1, main, {
        ...passing,
        [RESOURCE.startBuildSync]: (build, call) =>
          call.stateName === 'Deploy'
            ? new Promise(() => undefined)
            : passing[RESOURCE.startBuildSync]?.(build, call),
      });
      await until(async () => held(await fixture.line(main)).includes('dev:1'), 'main holds dev');

      const run = await fixture.run(2, feature);

      expect(run.status).toBe('SUCCEEDED');
      expect(held(await fixture.line(main))).toEqual(['dev:1']);
      expect(fixture.stopped).toEqual([]);
    },
  );

  it('fails an older run that arrives at prod after a newer one deployed it, with Environment.Behind', async () => {
    const fixture = new Fixture();
    const [older, newer] = [fixture.input(1), fixture.input(2)];
    await fixture.run(2, newer);

    const run = await fixture.run(1, older);

    expect(run).toMatchObject({ status: 'FAILED', error: 'Environment.Behind' });
    // It never built anything in an environment that runs a newer commit.
    expect(run.calls.filter((c) => c.stateName === 'Deploy')).toHaveLength(0);
  });
});

describe('every way a run ends while it holds an environment releases the hold', () => {
  const modes: ExecutionMode[] = ['QUEUED', 'SUPERSEDED'];

  it.each(modes)(
    'a failed Deploy (%s): the run fails holding dev, and its end hands dev to the next run',
    async (mode) => {
      const fixture = new Fixture();
      const input = fixture.input(1, { executionMode: mode });
      const passing = passingHandlers();
      const run = await fixture.run(1, input, {
        ...passing,
        [RESOURCE.startBuildSync]: (build, call) => {
          if (call.stateName === 'Deploy') throw buildFailed(build);
          return passing[RESOURCE.startBuildSync]?.(build, call);
        },
      });
      expect(run.status).toBe('FAILED');
      expect(held(await fixture.line(input))).toEqual(['dev:1']);

      await fixture.ended(1, input, 'FAILED');

      expect(held(await fixture.line(input))).toEqual([]);
      expect((await fixture.line(input)).runs).toEqual([]);
    },
  );

  it.each([
    [
      'rejected',
      stepFunctionsError(
        'Approval.Rejected',
        JSON.stringify({ approved: false, approver: 'Ada', comment: 'no', decidedAt: 'x', sourceIp: null }),
      ),
    ],
    ['expired', stepFunctionsError('States.Timeout', 'The task timed out')],
  ])('a %s approval: the run holds nothing at the gate, and its end leaves the line', async (_how, error) => {
    const fixture = new Fixture();
    const input = fixture.input(1);
    const run = await fixture.run(1, input, {
      ...passingHandlers(),
      [RESOURCE.lambdaInvokeWaitForTaskToken]: () => {
        throw error;
      },
    });
    expect(run.status).toBe('FAILED');
    expect(held(await fixture.line(input))).toEqual([]);
    await fixture.ended(1, input, 'FAILED');
    expect((await fixture.line(input)).runs).toEqual([]);
  });

  it.each(['TIMED_OUT', 'ABORTED'])(
    'an execution that ends %s in the middle of a build hands dev on',
    async (status) => {
      const fixture = new Fixture();
      const [first, second] = [fixture.input(1), fixture.input(2)];
      const passing = passingHandlers();
      // Run 1's Infrastructure never ends: the execution is timed out or stopped from outside meanwhile.
      void fixture.run(1, first, {
        ...passing,
        [RESOURCE.startBuildSync]: (build, call) =>
          call.stateName === 'Infrastructure'
            ? new Promise(() => undefined)
            : passing[RESOURCE.startBuildSync]?.(build, call),
      });
      await until(async () => held(await fixture.line(first)).includes('dev:1'), 'run 1 holds dev');
      const two = fixture.run(2, second);
      await until(
        async () => (await fixture.line(first)).runs.some((r) => r.waiting !== null),
        'run 2 waits',
      );

      await fixture.ended(1, first, status);

      expect((await two).status).toBe('SUCCEEDED');
      expect((await fixture.line(first)).runs.map((r) => r.sequence)).toEqual([2]);
    },
  );
});

describe('SUPERSEDED through the state machine', () => {
  it('retires the older run waiting at the prod gate as soon as the newer one joins, naming it', async () => {
    const fixture = new Fixture();
    const [older, newer] = [
      fixture.input(1, { executionMode: 'SUPERSEDED' }),
      fixture.input(2, { executionMode: 'SUPERSEDED' }),
    ];
    void fixture.run(1, older, {
      ...passingHandlers(),
      // The prod gate waits: nobody decides.
      [RESOURCE.lambdaInvokeWaitForTaskToken]: () => new Promise(() => undefined),
    });
    await until(
      async () => (await fixture.line(older)).environments.dev?.current?.sequence === 1,
      'run 1 deployed dev',
    );

    const run = await fixture.run(2, newer);

    expect(run.status).toBe('SUCCEEDED');
    expect(fixture.stopped).toEqual([
      {
        executionArn: arn(1),
        error: 'Stepline.Superseded',
        cause: expect.stringMatching(/^Superseded by run-2 \(push #2/),
      },
    ]);
    expect((await fixture.line(newer)).environments.prod?.current?.sequence).toBe(2);
  });
});
