// biome-ignore-all lint/suspicious/noTemplateCurlyInString: state machine placeholders (${…}) are data here, not template literals
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  adaptToLocalEngine,
  listStates,
  loadStateMachine,
  type StateMachineDefinition,
} from '#local/stepfunctions/definition.ts';
import { loadProjectStateMachine, RESOURCE } from '../helpers/asl-harness.ts';

type AslValidator = (
  definition: unknown,
  options?: { checkPaths?: boolean; checkArn?: boolean },
) => { isValid: boolean; errorsText: (separator?: string) => string };
// asl-validator is CommonJS without type declarations.
const aslValidator = createRequire(import.meta.url)('asl-validator') as AslValidator;

const MACHINES = ['pipeline', 'teardown'] as const;

function tasks(definition: StateMachineDefinition) {
  return listStates(definition).filter(({ state }) => state.Type === 'Task');
}

/** Every `"….$"` value of a state's payload templates, nested ones included (not those of inner states). */
function pathValues(state: Record<string, unknown>): string[] {
  const values: string[] = [];
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) for (const item of node) visit(item);
    else if (node !== null && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key.endsWith('.$') && typeof value === 'string') values.push(value);
        else visit(value);
      }
    }
  };
  for (const field of ['Parameters', 'ItemSelector', 'ResultSelector', 'Arguments']) visit(state[field]);
  return values;
}

function writeDefinition(definition: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), 'stepline-asl-')), 'machine.asl.json');
  writeFileSync(path, JSON.stringify(definition));
  return path;
}

describe.each(MACHINES)('statemachines/%s.asl.json', (name) => {
  const definition = loadProjectStateMachine(name);

  it('passes asl-validator with path and ARN checks', () => {
    const result = aslValidator(structuredClone(definition), { checkPaths: true, checkArn: true });

    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });

  it('gives every Task a timeout, so none falls back to a 60 s default', () => {
    const untimed = tasks(definition).filter(
      ({ state }) => state.TimeoutSeconds === undefined && state.TimeoutSecondsPath === undefined,
    );

    expect(untimed.map((entry) => entry.name)).toEqual([]);
  });

  it('retries only throttling and transient service errors, never a failed build or every error', () => {
    for (const { name: stateName, state } of tasks(definition)) {
      const retriers = state.Retry as {
        ErrorEquals: string[];
        BackoffRate: number;
        JitterStrategy: string;
      }[];
      expect(retriers, stateName).toHaveLength(1);
      const [retrier] = retriers;
      expect(retrier?.BackoffRate, stateName).toBeGreaterThan(1);
      expect(retrier?.JitterStrategy, stateName).toBe('FULL');
      expect(retrier, stateName).toHaveProperty('MaxDelaySeconds');
      const prefix = String(state.Resource).includes(':codebuild:') ? 'CodeBuild.' : 'Lambda.';
      for (const error of retrier?.ErrorEquals ?? [])
        expect(error, stateName).toMatch(new RegExp(`^${prefix}`));
    }
  });

  // Only what waiting cures: a full account and throttling (API_StartBuild.html "Errors", CommonErrors.html in
  // https://docs.aws.amazon.com/codebuild/latest/APIReference/). CodeBuild.AWSCodeBuildException and the other
  // generic names also carry AccessDenied, which no retry fixes.
  it('retries a CodeBuild task on the account build limit and throttling, and nothing else', () => {
    const builds = tasks(definition).filter(({ state }) => state.Resource === RESOURCE.startBuildSync);

    expect(builds.length).toBeGreaterThan(0);
    for (const { name: stateName, state } of builds) {
      const retried = (state.Retry as { ErrorEquals: string[] }[]).flatMap((retrier) => retrier.ErrorEquals);
      expect(retried.sort(), stateName).toEqual([
        'CodeBuild.AccountLimitExceededException',
        'CodeBuild.ThrottlingException',
      ]);
    }
  });

  // Names that start with `States.` are reserved for Step Functions' own errors
  // (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html, "Error names").
  it('raises no error of its own under the reserved States. prefix', () => {
    const raised = listStates(definition).flatMap(({ name: stateName, state }) => {
      if (state.Type === 'Fail') return [[stateName, String(state.Error)]];
      const result = state.Result as { Error?: unknown } | undefined;
      return state.Type === 'Pass' && typeof result?.Error === 'string' ? [[stateName, result.Error]] : [];
    });

    expect(raised.length).toBeGreaterThan(0);
    expect(raised.filter(([, error]) => error?.startsWith('States.'))).toEqual([]);
  });

  // `'` is a reserved character in intrinsic function arguments
  // (https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html, "Reserved characters in
  // intrinsic functions"): a JSONPath filter belongs in a plain path, outside the intrinsic.
  it('puts no JSONPath filter inside an intrinsic function', () => {
    const intrinsicsWithFilters = listStates(definition).flatMap(({ name: stateName, state }) =>
      pathValues(state)
        .filter((value) => value.startsWith('States.') && /\[\?\(|@/.test(value))
        .map((value) => `${stateName}: ${value}`),
    );

    expect(intrinsicsWithFilters).toEqual([]);
  });

  it('catches every error of every Task, keeping the state input, but a failure notification that ends the run', () => {
    for (const { name: stateName, state } of tasks(definition)) {
      // The notify Task of a failed stage raises the stage's failure itself, uncaught, so that a redrive
      // reruns it and then the stage (see "Notify Image failure" in statemachines/pipeline.asl.json).
      if (endsTheRun(state)) {
        expect(state.Catch, stateName).toBeUndefined();
        continue;
      }
      const catchers = state.Catch as { ErrorEquals: string[]; ResultPath: string }[];
      const catchAll = catchers.find((catcher) => catcher.ErrorEquals.includes('States.ALL'));
      expect(catchAll, stateName).toBeDefined();
      expect(catchAll?.ResultPath, stateName).toMatch(/^\$\.\w+$/);
      expect(catchers.at(-1), `${stateName}: States.ALL comes last`).toBe(catchAll);
    }
  });

  it('ends every failure with an Error and a Cause a person can act on', () => {
    const fails = listStates(definition).filter(({ state }) => state.Type === 'Fail');

    expect(fails.length).toBeGreaterThan(0);
    for (const { name: stateName, state } of fails) {
      expect(state.Error, stateName).toMatch(/^[A-Z]\w*\.\w+$/);
      expect(String(state.Cause).length, stateName).toBeGreaterThan(60);
    }
  });
});

/** A notify Task whose request carries `redrive`: it ends the run with the failed stage's error. */
function endsTheRun(state: Record<string, unknown>): boolean {
  const payload = (state.Parameters as { Payload?: Record<string, unknown> } | undefined)?.Payload;
  return payload?.kind === 'failed' && payload.redrive !== undefined;
}

describe('statemachines/pipeline.asl.json', () => {
  const definition = loadProjectStateMachine('pipeline');

  it('names the test and image projects and the Lambda functions literally, after the service and stage', () => {
    const targets = tasks(definition).flatMap(({ state }) => {
      const parameters = state.Parameters as Record<string, unknown>;
      const target = parameters.ProjectName ?? parameters['ProjectName.$'] ?? parameters.FunctionName;
      return target === undefined ? [] : [String(target)];
    });

    expect(new Set(targets)).toEqual(
      new Set([
        'stepline-test-test',
        'stepline-test-image',
        "States.Format('stepline-test-{}-infrastructure', $.environment)",
        "States.Format('stepline-test-{}-deploy', $.environment)",
        'stepline-test-approvalRequest',
        'stepline-test-notify',
        'stepline-test-holds',
      ]),
    );
  });

  it('builds every stage from the pushed source at its commit, with the buildspec from the settings', () => {
    const builds = tasks(definition).filter(({ state }) => state.Resource === RESOURCE.startBuildSync);

    expect(builds.map((entry) => entry.name)).toEqual(['Test', 'Image', 'Infrastructure', 'Deploy']);
    for (const { name: stateName, state } of builds) {
      expect(state.Parameters, stateName).toMatchObject({
        'SourceTypeOverride.$': '$.source.type',
        'SourceLocationOverride.$': '$.source.location',
        'SourceVersion.$': '$.source.version',
        'BuildspecOverride.$': expect.stringMatching(new RegExp(`buildspecs\\.${stateName.toLowerCase()}$`)),
      });
    }
  });

  it('reads the test reports with CodeBuild calls on the report ARNs only, each a Task of its own', () => {
    const readers = tasks(definition).filter(({ state }) => String(state.Resource).includes(':codebuild:'));

    expect(readers.map(({ state }) => state.Resource).sort()).toEqual([
      'arn:aws:states:::aws-sdk:codebuild:describeTestCases',
      'arn:aws:states:::codebuild:batchGetReports',
      RESOURCE.startBuildSync,
      RESOURCE.startBuildSync,
      RESOURCE.startBuildSync,
      RESOURCE.startBuildSync,
    ]);
  });

  it('runs the environments from the settings through one Map, one at a time', () => {
    const environments = listStates(definition).find((entry) => entry.name === 'Environments')?.state;

    expect(environments).toMatchObject({
      Type: 'Map',
      ItemsPath: '$.settings.environments',
      MaxConcurrency: 1,
    });
  });

  it('reads the approval timeout from the settings', () => {
    const approval = listStates(definition).find((entry) => entry.name === 'Approval')?.state;

    expect(approval).toMatchObject({
      Resource: RESOURCE.lambdaInvokeWaitForTaskToken,
      TimeoutSecondsPath: '$.approvalTimeoutSeconds',
    });
    expect(approval).not.toHaveProperty('TimeoutSeconds');
  });
});

describe('loadStateMachine', () => {
  it('substitutes the service and the stage everywhere they appear', () => {
    const path = writeDefinition({
      StartAt: 'A',
      States: { A: { Type: 'Pass', Result: { name: '${self:service}-${sls:stage}-x' }, End: true } },
    });

    const definition = loadStateMachine(path, { service: 'shop', stage: 'prod' });

    expect(definition).toEqual({
      StartAt: 'A',
      States: { A: { Type: 'Pass', Result: { name: 'shop-prod-x' }, End: true } },
    });
  });

  it('names every other placeholder left in the file', () => {
    const path = writeDefinition({
      StartAt: 'A',
      States: {
        A: { Type: 'Pass', Result: ['${self:custom.topic}', '${env:SECRET}', '${sls:stage}'], End: true },
      },
    });

    expect(() => loadStateMachine(path, { service: 'shop', stage: 'prod' })).toThrow(
      /unresolved placeholders \$\{self:custom\.topic\}, \$\{env:SECRET\}/,
    );
  });

  it('refuses a stage that would change the definition beyond a name', () => {
    const path = writeDefinition({ StartAt: 'A', States: { A: { Type: 'Succeed' } } });

    expect(() => loadStateMachine(path, { service: 'shop', stage: 'x"}' })).toThrow(/stage must be/);
  });
});

describe('adaptToLocalEngine', () => {
  it('points TimeoutSecondsPath at the Parameters field that carries the same value', () => {
    const definition = loadProjectStateMachine('pipeline');

    const adapted = adaptToLocalEngine(definition);

    const approval = listStates(adapted).find((entry) => entry.name === 'Approval')?.state;
    expect(approval?.TimeoutSecondsPath).toBe('$.Payload.timeoutSeconds');
    const original = listStates(definition).find((entry) => entry.name === 'Approval')?.state;
    expect(original?.TimeoutSecondsPath).toBe('$.approvalTimeoutSeconds');
  });

  it('refuses a TimeoutSecondsPath that the Parameters do not carry', () => {
    const definition = {
      StartAt: 'Wait',
      States: {
        Wait: {
          Type: 'Task',
          Resource: RESOURCE.lambdaInvoke,
          Parameters: { FunctionName: 'f', Payload: {} },
          TimeoutSecondsPath: '$.timeout',
          End: true,
        },
      },
    };

    expect(() => adaptToLocalEngine(definition)).toThrow(/State "Wait": its TimeoutSecondsPath \$\.timeout/);
  });
});
