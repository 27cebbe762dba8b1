import { readFileSync } from 'node:fs';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SfnPipelineStarter, SfnRunStatusReader } from '#shared/aws/sfn.ts';
import { RollbackRefusedError, StageFailedError } from '#shared/errors.ts';
import { createHoldsHandler } from '#shared/handlers/holds.ts';
import { createPipelineEventsHandler } from '#shared/handlers/pipeline-events.ts';
import { createLogger } from '#shared/logger.ts';
import { pipelineNotification } from '#shared/notifications.ts';
import { type ExecutionInput, ExecutionInputSchema } from '#shared/pipeline.ts';
import { lineOf } from '#shared/release.ts';
import { lambdaContext } from '../helpers/lambda.ts';
import { aPush } from '../helpers/push.ts';
import { recordingLedger } from '../helpers/release.ts';

vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
afterAll(() => {
  vi.unstubAllEnvs();
});

const PIPELINE = 'arn:aws:states:us-east-1:012345678912:stateMachine:stepline-test-pipeline';
const ROLLBACK = 'arn:aws:states:us-east-1:012345678912:stateMachine:stepline-test-rollback';
const arn = (n: number) => `arn:aws:states:us-east-1:012345678912:execution:stepline-test-pipeline:run-${n}`;
const ROLLBACK_RUN = 'arn:aws:states:us-east-1:012345678912:execution:stepline-test-rollback:rollback-prod-1';
const push = aPush();
const settings = {
  environments: [
    { name: 'dev', approval: false },
    { name: 'prod', approval: true, rollbackOnFailure: true },
  ],
};
const input: ExecutionInput = ExecutionInputSchema.parse({
  push,
  sequence: 3,
  source: { type: 'GITHUB', location: push.repository.cloneUrl, version: push.after },
  settings,
});
const commit = (n: number) => String(n).repeat(40);
const image = (n: number) => `123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:${commit(n)}`;

function setUp() {
  const { ledger, record, store } = recordingLedger();
  const holds = createHoldsHandler({
    ledger,
    logger: createLogger('holds'),
    now: () => new Date('2026-12-03T08:00:00.000Z'),
    // As on AWS: the image the shipped image buildspec tags with the commit.
    images: { imageOf: async (run) => image(Number(run.commit[0])) },
  });
  const invoke = (event: unknown) => holds(event, lambdaContext('stepline-test-holds'));
  /** Runs n through prod: joins, enters (resumed at once, the line being free), leaves. */
  async function deploy(n: number): Promise<void> {
    const fields = { executionArn: arn(n), push, sequence: n, commit: commit(n), mode: 'SUPERSEDED' };
    await invoke({ action: 'join', ...fields, environments: settings.environments });
    await invoke({ action: 'enter', ...fields, environment: 'prod', taskToken: `token-${n}` });
    await invoke({ action: 'leave', ...fields, environment: 'prod' });
    await ledger.apply(lineOf(push), 'SUPERSEDED', (state) => ({
      state: { ...state, runs: state.runs.filter((r) => r.executionArn !== arn(n)) },
      actions: [],
    }));
  }
  return { ledger, record, store, invoke, deploy };
}

const rollbackInput = { environment: 'prod', push, source: input.source, settings: input.settings };

describe('the holds function, for a rollback', () => {
  it('plans the previous deployment with the image recorded for it, holds prod, and records the rollback', async () => {
    const { invoke, deploy, ledger, record } = setUp();
    await deploy(1);
    await deploy(2);

    const plan = (await invoke({
      action: 'plan-rollback',
      executionArn: ROLLBACK_RUN,
      input: rollbackInput,
    })) as {
      target: { commit: string; imageUri: string; run: string };
      approvalRequired: boolean;
      expected: string;
      source: { version: string };
    };
    expect(plan).toMatchObject({
      target: { commit: commit(1), imageUri: image(1), run: 'run-1' },
      expected: arn(2),
      from: commit(2),
      approvalRequired: true,
      automatic: false,
      source: { version: commit(1) },
      push: { after: commit(1) },
    });

    await invoke({
      action: 'enter-rollback',
      executionArn: ROLLBACK_RUN,
      push,
      mode: 'SUPERSEDED',
      environment: 'prod',
      taskToken: 'rollback-token',
      plan,
    });
    expect(record.resumed.map((r) => r.token)).toContain('rollback-token');
    await invoke({
      action: 'leave',
      executionArn: ROLLBACK_RUN,
      push,
      sequence: 1,
      commit: commit(1),
      mode: 'SUPERSEDED',
      environment: 'prod',
      imageUri: image(1),
    });
    const prod = (await ledger.read(lineOf(push))).environments.prod;
    expect(prod?.current).toMatchObject({
      executionArn: ROLLBACK_RUN,
      commit: commit(1),
      imageUri: image(1),
      rollback: { of: arn(1), from: commit(2), automatic: false },
    });
  });

  it('refuses to plan, naming why, when nothing earlier is recorded', async () => {
    const { invoke, deploy } = setUp();
    await deploy(1);
    await expect(
      invoke({ action: 'plan-rollback', executionArn: ROLLBACK_RUN, input: rollbackInput }),
    ).rejects.toThrow(RollbackRefusedError);
    await expect(
      invoke({
        action: 'plan-rollback',
        executionArn: ROLLBACK_RUN,
        input: { ...rollbackInput, to: 'run-7' },
      }),
    ).rejects.toThrow('No deployment of prod recorded for run-7');
  });
});

describe('pipelineEvents, on a run that failed in an environment with rollbackOnFailure', () => {
  const sfn = mockClient(SFNClient);
  /**
   * DescribeExecution of a run that failed at `stage`: the error and cause Step Functions records for the
   * notify task's StageFailedError, the Lambda runtime's JSON report of it.
   */
  function failedAt(stage: string) {
    const error = new StageFailedError(stage, 'the build FAILED');
    sfn.on(DescribeExecutionCommand).resolves({
      status: 'FAILED',
      error: error.name,
      cause: JSON.stringify({ errorType: error.name, errorMessage: error.message, trace: [] }),
    });
  }
  beforeEach(() => {
    sfn.reset();
    sfn.on(StartExecutionCommand).resolves({ executionArn: ROLLBACK_RUN });
    failedAt('prod: Deploy');
  });

  function events(ledger: ReturnType<typeof setUp>['ledger'], record: ReturnType<typeof setUp>['record']) {
    const handler = createPipelineEventsHandler({
      notifier: { publish: async (n) => void record.published.push(n) },
      emitter: { emit: async () => undefined },
      ledger,
      logger: createLogger('pipelineEvents'),
      region: 'us-east-1',
      stateMachineArn: PIPELINE,
      rollback: {
        stateMachineArn: ROLLBACK,
        starter: new SfnPipelineStarter(new SFNClient({}), ROLLBACK),
        runs: new SfnRunStatusReader(new SFNClient({})),
      },
    });
    const event = JSON.parse(
      readFileSync(
        new URL(
          '../fixtures/aws-events/awsdocs-sfn.02.Step-Functions-Execution-Status-Change.FAILED.json',
          import.meta.url,
        ),
        'utf8',
      ),
    );
    return (
      status: string,
      stateMachineArn = PIPELINE,
      executionArn = arn(3),
      detailInput: unknown = input,
    ) =>
      handler(
        {
          ...event,
          detail: {
            ...event.detail,
            status,
            stateMachineArn,
            executionArn,
            input: JSON.stringify(detailInput),
          },
        },
        lambdaContext('stepline-test-pipelineEvents'),
      );
  }

  it('starts the rollback of the environment it held, once, says so, and then releases the hold', async () => {
    const { ledger, record, invoke, deploy } = setUp();
    await deploy(1);
    const fields = { executionArn: arn(3), push, sequence: 3, commit: commit(3), mode: 'SUPERSEDED' };
    await invoke({ action: 'join', ...fields, environments: settings.environments });
    await invoke({ action: 'enter', ...fields, environment: 'prod', taskToken: 'token-3' });
    const ended = events(ledger, record);

    await ended('FAILED');
    await ended('FAILED');

    const started = sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input);
    expect(started[0]).toMatchObject({ stateMachineArn: ROLLBACK, name: 'rollback-prod-run-3' });
    expect(JSON.parse(started[0]?.input ?? '{}')).toMatchObject({
      environment: 'prod',
      to: null,
      infrastructure: false,
      automatic: { failedRun: arn(3), commit: push.after },
      settings: { executionMode: 'SUPERSEDED' },
    });
    expect(record.published.map((n) => n.subject)).toContainEqual(
      expect.stringContaining(
        `prod: ${push.after?.slice(0, 7)} failed, rolling back to ${commit(1).slice(0, 7)}`,
      ),
    );
    expect((await ledger.read(lineOf(push))).environments.prod?.holder).toBeNull();
  });

  it('starts nothing for a run that failed holding no environment, or one without rollbackOnFailure', async () => {
    const { ledger, record, invoke, deploy } = setUp();
    await deploy(1);
    const ended = events(ledger, record);
    await ended('FAILED');
    const fields = { executionArn: arn(3), push, sequence: 3, commit: commit(3), mode: 'SUPERSEDED' };
    await invoke({ action: 'join', ...fields, environments: settings.environments });
    await invoke({ action: 'enter', ...fields, environment: 'dev', taskToken: 'token-3' });
    await ended('FAILED');
    await ended('ABORTED');
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it('starts nothing when the run failed at the Infrastructure of that environment, before its Deploy', async () => {
    const { ledger, record, invoke, deploy } = setUp();
    await deploy(1);
    const fields = { executionArn: arn(3), push, sequence: 3, commit: commit(3), mode: 'SUPERSEDED' };
    await invoke({ action: 'join', ...fields, environments: settings.environments });
    await invoke({ action: 'enter', ...fields, environment: 'prod', taskToken: 'token-3' });
    failedAt('prod: Infrastructure');

    await events(ledger, record)('FAILED');

    expect(sfn.commandCalls(DescribeExecutionCommand)[0]?.args[0].input).toEqual({ executionArn: arn(3) });
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
    expect((await ledger.read(lineOf(push))).environments.prod?.holder).toBeNull();
  });

  it("releases a rollback's hold when it ends, however it ends", async () => {
    const { ledger, record, invoke, deploy } = setUp();
    await deploy(1);
    await deploy(2);
    const plan = await invoke({ action: 'plan-rollback', executionArn: ROLLBACK_RUN, input: rollbackInput });
    await invoke({
      action: 'enter-rollback',
      executionArn: ROLLBACK_RUN,
      push,
      mode: 'SUPERSEDED',
      environment: 'prod',
      taskToken: 'rollback-token',
      plan,
    });
    expect((await ledger.read(lineOf(push))).environments.prod?.holder?.executionArn).toBe(ROLLBACK_RUN);
    await events(ledger, record)('ABORTED', ROLLBACK, ROLLBACK_RUN, {
      ...rollbackInput,
      settings: input.settings,
    });
    expect((await ledger.read(lineOf(push))).environments.prod?.holder).toBeNull();
  });
});

describe('the rollback notification', () => {
  it('names the environment, the commit it went back to and from, and says it was automatic', () => {
    const message = pipelineNotification(
      {
        kind: 'rolled-back',
        executionArn: ROLLBACK_RUN,
        push: { ...push, after: commit(1) },
        environment: 'prod',
        from: commit(2),
        run: 'run-1',
        imageUri: image(1),
        automatic: true,
      },
      'us-east-1',
    );
    expect(message.subject).toBe(
      `↩ ${push.repository.fullName} ${push.refName} prod automatically rolled back to 1111111 from 2222222`,
    );
    expect(message.body).toContain(`Image: ${image(1)}`);
    expect(message.body).toContain('nothing was rebuilt');
  });
});
