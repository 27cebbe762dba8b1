import { describe, expect, it } from 'vitest';
import type { StateMachineDefinition } from '#local/stepfunctions/definition.ts';
import { notifyStep } from '#shared/handlers/notify.ts';
import { NotifyRequestSchema } from '#shared/pipeline.ts';
import {
  anExecutionInput,
  buildEnvironment,
  buildFailed,
  type HandlersByResource,
  type LocalRun,
  lambdaPayload,
  loadProjectStateMachine,
  notifyAsDeployed,
  passingHandlers,
  RESOURCE,
  runStateMachine,
  statesEntered,
  TEST_REPORT_ARN,
} from '../helpers/asl-harness.ts';

/**
 * What RedriveExecution does on AWS with the pipeline's ASL. Step Functions reruns the states of the failed
 * run that have a `…StateEntered` event and no `…StateExited` one, and in an inline Map only the iterations
 * that failed (https://docs.aws.amazon.com/step-functions/latest/dg/redrive-map-run.html,
 * https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html), with
 * `$$.Execution.RedriveCount` one higher. The local engine cannot start a definition half-way, so this
 * test does: it finds the state the failed run did not leave, and runs the definition from there (the
 * iteration's ItemProcessor for a stage of an environment) with that state's recorded input and
 * RedriveCount 1. The local engine's redrive (test/statemachine/redrive.test.ts) must end the same way:
 * the failed build runs again, nothing before it does, and no second failure email is sent.
 */

const pipeline = loadProjectStateMachine('pipeline');
const environments = [
  { name: 'dev', approval: false },
  { name: 'prod', approval: true },
];

/** Passing handlers whose builds of `stage` (`Image`, `dev: Deploy`) fail while `broken()` says so. */
function handlersFailing(stage: string, broken: () => boolean): HandlersByResource {
  const passing = passingHandlers();
  return {
    ...passing,
    [RESOURCE.startBuildSync]: (input, call) => {
      const environment = buildEnvironment(input).STEPLINE_ENVIRONMENT;
      const label = environment === undefined ? call.stateName : `${environment}: ${call.stateName}`;
      if (label === stage && broken()) throw buildFailed(input, { reportArns: [TEST_REPORT_ARN] });
      return passing[RESOURCE.startBuildSync]?.(input, call);
    },
    [RESOURCE.lambdaInvoke]: notifyAsDeployed,
  };
}

/**
 * The states that failed and were not caught: the unsuccessful states a redrive reruns (the Map around
 * them fails with them; it is left out, as Step Functions redrives its failed iteration).
 */
function unsuccessful(run: LocalRun): { name: string; input: unknown }[] {
  const entered = new Map<string, unknown>();
  const failed = new Map<string, { name: string; input: unknown }>();
  for (const event of run.events) {
    if (!('state' in event) || event.state.name === 'Environments') continue;
    const key = `${event.state.name}\u0000${event.index ?? ''}`;
    if (event.type === 'StateEntered') entered.set(key, event.state.input);
    if (event.type === 'StateFailed') failed.set(key, { name: event.state.name, input: entered.get(key) });
    if (event.type === 'StateCaught' || event.type === 'StateExited') failed.delete(key);
  }
  return [...failed.values()];
}

/** The definition that goes on from `stateName`: the pipeline's, or its Map iteration's for a stage in it. */
function from(stateName: string): StateMachineDefinition {
  const states = pipeline.States as Record<string, Record<string, unknown>>;
  if (stateName in states) return { ...pipeline, StartAt: stateName };
  const processor = states.Environments?.ItemProcessor as { States: Record<string, unknown> };
  return { StartAt: stateName, States: processor.States };
}

function notifications(run: LocalRun) {
  return run.calls
    .filter((call) => call.resource === RESOURCE.lambdaInvoke && call.stateName.startsWith('Notify'))
    .map((call) => NotifyRequestSchema.parse(lambdaPayload(call.input)));
}

function builds(run: LocalRun): string[] {
  return run.calls
    .filter((call) => call.resource === RESOURCE.startBuildSync)
    .map((call) => {
      const environment = buildEnvironment(call.input).STEPLINE_ENVIRONMENT;
      return environment === undefined ? call.stateName : `${environment}: ${call.stateName}`;
    });
}

describe('a redrive on AWS of a run failed at a build', () => {
  it.each([
    ['Test', 'Test'],
    ['Image', 'Image'],
    ['dev: Infrastructure', 'Infrastructure'],
    ['dev: Deploy', 'Deploy'],
    ['prod: Deploy', 'Deploy'],
  ])(
    'reruns %s: the run fails at its notify task, which a redrive reruns, and it goes back to the build',
    async (stage, build) => {
      let broken = true;
      const handlers = handlersFailing(stage, () => broken);
      const failed = await runStateMachine(pipeline, anExecutionInput({ environments }), { handlers });
      expect(failed).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
      expect(notifications(failed)).toMatchObject([{ kind: 'failed', stage }]);

      // What AWS reruns: the notify task alone, not a Fail state (which would fail again at once).
      const unfinished = unsuccessful(failed);
      expect(unfinished.map((state) => state.name)).toEqual([`Notify ${build} failure`]);
      expect(statesEntered(failed).some((name) => /failed$/.test(name))).toBe(false);

      broken = false;
      const redriven = await runStateMachine(from(`Notify ${build} failure`), unfinished[0]?.input, {
        handlers,
        redriveCount: 1,
        validate: false,
      });

      expect(redriven.status).toBe('SUCCEEDED');
      // No second failure email; the failed build first, then what follows it.
      // The notify task runs again and, in the redrive, publishes nothing (shared/handlers/notify.ts).
      const failures = notifications(redriven).filter((request) => request.kind === 'failed');
      expect(failures.map(notifyStep)).toEqual(['rerun']);
      expect(builds(redriven)[0]).toBe(stage);
      const before = builds(failed).slice(0, -1);
      if (!stage.includes(':')) for (const done of before) expect(builds(redriven)).not.toContain(done);
    },
  );

  it('fails again, with a second email, when the build fails again in the redrive', async () => {
    const handlers = handlersFailing('Image', () => true);
    const failed = await runStateMachine(pipeline, anExecutionInput({ environments }), { handlers });
    const [unfinished] = unsuccessful(failed);

    const redriven = await runStateMachine(from('Notify Image failure'), unfinished?.input, {
      handlers,
      redriveCount: 1,
      validate: false,
    });

    expect(redriven).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(builds(redriven)).toEqual(['Image']);
    expect(notifications(redriven).map(notifyStep)).toEqual(['rerun', 'notify and fail']);
    expect(notifications(redriven)[1]).toMatchObject({ redrive: { failedIn: 1, current: 1 } });
  });
});
