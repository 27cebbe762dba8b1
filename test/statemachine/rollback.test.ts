import { describe, expect, it } from 'vitest';
import type { RollbackPlan } from '#shared/rollback.ts';
import {
  APPROVED,
  anExecutionInput,
  buildEnvironment,
  buildFailed,
  buildSucceeded,
  callsTo,
  type HandlersByResource,
  lambdaPayload,
  loadProjectStateMachine,
  RESOURCE,
  runStateMachine,
  statesEntered,
  stepFunctionsError,
  type TaskCall,
  type TaskInput,
  TEST_EXECUTION_ARN,
} from '../helpers/asl-harness.ts';

const rollback = loadProjectStateMachine('rollback');
const pipelineInput = anExecutionInput();
const OLD = '1'.repeat(40);
const IMAGE = `123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:${OLD}`;

function input(overrides: Record<string, unknown> = {}) {
  const { push, source, settings } = pipelineInput;
  return {
    environment: 'prod',
    push,
    source,
    settings,
    to: null,
    infrastructure: false,
    automatic: null,
    ...overrides,
  };
}

function plan(overrides: Partial<RollbackPlan> = {}): RollbackPlan {
  return {
    target: {
      executionArn: 'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-0',
      run: 'run-0',
      sequence: 1,
      commit: OLD,
      at: '2026-12-01T10:00:00.000Z',
      imageUri: IMAGE,
    },
    expected: 'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-1',
    from: pipelineInput.push.after,
    automatic: false,
    approvalRequired: true,
    source: { ...pipelineInput.source, version: OLD },
    push: { ...pipelineInput.push, after: OLD },
    passed: ['Rollback of prod'],
    ...overrides,
  };
}

/** The holds function: plans `planned` (or refuses), holds at once (or refuses), leaves. */
function holds(planned: RollbackPlan | Error, entered: 'at once' | Error = 'at once') {
  return (taskInput: TaskInput, call: TaskCall): unknown => {
    const payload = lambdaPayload(taskInput);
    if (payload.action === 'plan-rollback') {
      if (planned instanceof Error) throw planned;
      return { StatusCode: 200, Payload: planned };
    }
    if (call.resource === RESOURCE.lambdaInvokeWaitForTaskToken) {
      if (entered instanceof Error) throw entered;
      return { environment: payload.environment, entered: true };
    }
    return { StatusCode: 200, Payload: { line: 'test', actions: [] } };
  };
}

function handlers(build: (input: TaskInput) => unknown = (i) => buildSucceeded(i)): HandlersByResource {
  return {
    [RESOURCE.startBuildSync]: build,
    [RESOURCE.lambdaInvoke]: () => ({ StatusCode: 200, Payload: null }),
    [RESOURCE.lambdaInvokeWaitForTaskToken]: () => APPROVED,
  };
}

describe('statemachines/rollback.asl.json', () => {
  it('plans, asks for approval, holds prod, deploys the recorded image at the recorded commit, leaves, notifies', async () => {
    const run = await runStateMachine(rollback, input(), { handlers: handlers(), holds: holds(plan()) });

    expect(run.status).toBe('SUCCEEDED');
    expect(statesEntered(run)).toEqual([
      'Plan rollback',
      'Approval required?',
      'Approval',
      'Enter environment',
      'Infrastructure asked?',
      'Deploy',
      'Leave environment',
      'Notify rolled back',
      'Rolled back',
    ]);
    const [planCall, enter, leave] = run.holdsCalls.map((c) => lambdaPayload(c.input));
    expect(planCall).toMatchObject({
      action: 'plan-rollback',
      executionArn: TEST_EXECUTION_ARN,
      input: input(),
    });
    expect(enter).toMatchObject({
      action: 'enter-rollback',
      environment: 'prod',
      mode: 'SUPERSEDED',
      plan: plan(),
    });
    expect(leave).toMatchObject({
      action: 'leave',
      environment: 'prod',
      commit: OLD,
      sequence: 1,
      imageUri: IMAGE,
    });
    expect(lambdaPayload(callsTo(run, 'Approval')[0]?.input ?? {})).toMatchObject({
      environment: 'prod',
      push: { after: OLD },
      passed: ['Rollback of prod'],
      imageUri: IMAGE,
    });
    const [deploy] = callsTo(run, 'Deploy');
    expect(deploy?.input).toMatchObject({
      ProjectName: 'stepline-test-prod-deploy',
      SourceVersion: OLD,
      BuildspecOverride: 'buildspecs/deploy.yml',
    });
    expect(buildEnvironment(deploy?.input ?? {})).toMatchObject({
      STEPLINE_ENVIRONMENT: 'prod',
      IMAGE_URI: IMAGE,
      STEPLINE_COMMIT: OLD,
      STEPLINE_ROLLBACK: 'true',
    });
    expect(lambdaPayload(callsTo(run, 'Notify rolled back')[0]?.input ?? {})).toMatchObject({
      kind: 'rolled-back',
      environment: 'prod',
      run: 'run-0',
      from: pipelineInput.push.after,
      imageUri: IMAGE,
      automatic: false,
    });
    // No rebuild and no infrastructure change: the Deploy is the one build.
    expect(run.calls.filter((c) => c.resource === RESOURCE.startBuildSync).map((c) => c.stateName)).toEqual([
      'Deploy',
    ]);
  });

  it('runs the Infrastructure at the recorded commit first when asked, and passes no gate when automatic', async () => {
    const run = await runStateMachine(rollback, input({ infrastructure: true }), {
      handlers: handlers(),
      holds: holds(plan({ approvalRequired: false, automatic: true })),
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(callsTo(run, 'Approval')).toHaveLength(0);
    expect(callsTo(run, 'Infrastructure')[0]?.input).toMatchObject({
      ProjectName: 'stepline-test-prod-infrastructure',
      SourceVersion: OLD,
      BuildspecOverride: 'buildspecs/infrastructure.yml',
    });
  });

  it('fails as Rollback.Failed, notified, when there is nothing to roll back to', async () => {
    const run = await runStateMachine(rollback, input(), {
      handlers: handlers(),
      holds: holds(stepFunctionsError('RollbackRefusedError', 'prod has no earlier deployment recorded')),
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Rollback.Failed' });
    expect(lambdaPayload(callsTo(run, 'Notify plan failure')[0]?.input ?? {})).toMatchObject({
      kind: 'failed',
      stage: 'prod: Rollback',
      error: 'RollbackRefusedError',
      push: pipelineInput.push,
    });
    expect(run.calls.some((c) => c.resource === RESOURCE.startBuildSync)).toBe(false);
  });

  it('ends Rollback.Refused, deploying nothing, when prod moved on while it waited for the hold', async () => {
    const run = await runStateMachine(rollback, input(), {
      handlers: handlers(),
      holds: holds(plan(), stepFunctionsError('Rollback.Refused', 'prod moved on')),
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Rollback.Refused' });
    expect(run.calls.some((c) => c.resource === RESOURCE.startBuildSync)).toBe(false);
  });

  it('fails as Rollback.Failed when the Deploy fails, without leaving (the environment keeps its record)', async () => {
    const run = await runStateMachine(rollback, input(), {
      handlers: handlers((i) => {
        throw buildFailed(i);
      }),
      holds: holds(plan()),
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Rollback.Failed' });
    expect(lambdaPayload(callsTo(run, 'Notify Deploy failure')[0]?.input ?? {})).toMatchObject({
      stage: 'prod: Rollback deploy',
    });
    expect(run.holdsCalls.map((c) => lambdaPayload(c.input).action)).toEqual([
      'plan-rollback',
      'enter-rollback',
    ]);
  });

  it('stops at a rejected approval, notified, with nothing deployed', async () => {
    const run = await runStateMachine(rollback, input(), {
      handlers: {
        ...handlers(),
        [RESOURCE.lambdaInvokeWaitForTaskToken]: () => {
          throw stepFunctionsError('Approval.Rejected', JSON.stringify({ ...APPROVED, approved: false }));
        },
      },
      holds: holds(plan()),
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Approval.Rejected' });
    expect(callsTo(run, 'Notify rejected')).toHaveLength(1);
    expect(run.holdsCalls.map((c) => lambdaPayload(c.input).action)).toEqual(['plan-rollback']);
  });
});
