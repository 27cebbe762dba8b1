import { fileURLToPath } from 'node:url';
import {
  type StateMachineDefinition as EngineDefinition,
  ExecutionError,
  StateMachine,
} from 'aws-local-stepfunctions';
import type { CodeBuildBuild } from '#local/codebuild/service.ts';

export type { CodeBuildBuild };

import {
  adaptToLocalEngine,
  listStates,
  loadStateMachine,
  localContextObject,
  type StateMachineDefinition,
} from '#local/stepfunctions/definition.ts';
import { notifyStep, stageFailure } from '#shared/handlers/notify.ts';
import {
  type ApprovalDecision,
  type Environment,
  type ExecutionInput,
  ExecutionInputSchema,
  NotifyRequestSchema,
  type PipelineSettings,
} from '#shared/pipeline.ts';
import type { PullRequest } from '#shared/pull-request.ts';
import { aPush } from './push.ts';

/**
 * Runs a state machine file locally with aws-local-stepfunctions, with Task handlers bound by Resource
 * ARN instead of by state name: a test binds "every startBuild.sync task" and the harness finds the
 * states (Map iterations and Parallel branches included). Every Task gets a local handler, so nothing
 * reaches AWS; a Task whose Resource has none fails with an error that names it.
 */

/** The Resource ARNs the stepline state machines use. */
export const RESOURCE = {
  startBuildSync: 'arn:aws:states:::codebuild:startBuild.sync',
  lambdaInvoke: 'arn:aws:states:::lambda:invoke',
  lambdaInvokeWaitForTaskToken: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
  batchGetReports: 'arn:aws:states:::codebuild:batchGetReports',
  describeTestCases: 'arn:aws:states:::aws-sdk:codebuild:describeTestCases',
} as const;

/** The deploy-time variables the tests load the state machines with. */
export const TEST_DEPLOYMENT = { service: 'stepline', stage: 'test' } as const;

/** The ARN the harness gives each execution (`$$.Execution.Id`). */
export const TEST_EXECUTION_ARN =
  'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-1';

/** Loads statemachines/<name>.asl.json with the test deployment variables. */
export function loadProjectStateMachine(name: 'pipeline' | 'teardown' | 'rollback'): StateMachineDefinition {
  const path = fileURLToPath(new URL(`../../statemachines/${name}.asl.json`, import.meta.url));
  return loadStateMachine(path, TEST_DEPLOYMENT);
}

/** What a Task handler receives: the state's effective input (its Parameters, resolved). */
export type TaskInput = Record<string, unknown>;

/** One Task invocation, in the order they happened (retries included). */
export interface TaskCall {
  stateName: string;
  resource: string;
  input: TaskInput;
}

/**
 * Stands in for the service integration: returns what it would return, or throws an Error whose `name`
 * is the error Step Functions would report (`States.TaskFailed`, `CodeBuild.ThrottlingException`, …).
 * For `.waitForTaskToken`, what it returns is what SendTaskSuccess would send; a pending promise is a
 * task still waiting.
 */
export type TaskHandler = (input: TaskInput, call: TaskCall) => unknown;

/** Handlers keyed by Resource ARN. */
export type HandlersByResource = Partial<Record<string, TaskHandler>>;

type EngineRun = ReturnType<StateMachine['run']>;
/** One event of aws-local-stepfunctions' execution log. */
export type ExecutionEvent = EngineRun['eventLogs'] extends AsyncGenerator<infer Event> ? Event : never;

/** How a local run ended, with everything a test asserts on. */
export interface LocalRun {
  status: 'SUCCEEDED' | 'FAILED';
  /** The execution output, when it succeeded. */
  output?: unknown;
  /** The execution's error and cause, when it failed. */
  error?: string;
  cause?: string;
  calls: TaskCall[];
  /** The holds function's calls (release tasks), apart from `calls`. */
  holdsCalls: TaskCall[];
  events: ExecutionEvent[];
}

export interface RunOptions {
  handlers: HandlersByResource;
  executionArn?: string;
  /**
   * The holds function (the release tasks: Join line, Enter environment, Leave environment), bound apart
   * from the other Lambdas so that tests of stages need not know it. By default {@link enterAtOnce}.
   * Its calls are in `holdsCalls`, not in `calls`.
   */
  holds?: TaskHandler;
  /** Each task token minted, as `$$.Task.Token` (default: task-token-1, task-token-2, …). */
  mintTaskToken?: () => string;
  /** `$$.Execution.RedriveCount` (default 0: the first attempt of the execution). */
  redriveCount?: number;
  /**
   * False to run a definition the validator refuses: one started half-way (`StartAt` a later state, as a
   * redrive on AWS goes on from the state that failed) leaves the states before it unreachable.
   */
  validate?: boolean;
}

/** The holds function's name in the test deployment. */
export const HOLDS_FUNCTION = `${TEST_DEPLOYMENT.service}-${TEST_DEPLOYMENT.stage}-holds`;

/**
 * The holds function as a line with no other run sees it: every run joins, enters each environment at
 * once (the token's success output) and leaves it.
 */
export function enterAtOnce(input: TaskInput, call: TaskCall): unknown {
  const payload = lambdaPayload(input);
  if (call.resource === RESOURCE.lambdaInvokeWaitForTaskToken) {
    return { environment: payload.environment, entered: true };
  }
  return { StatusCode: 200, ExecutedVersion: '$LATEST', Payload: { line: 'test', actions: [] } };
}

/**
 * Runs `definition` on `input` to its end. Retry pauses are zero; Task timeouts are the definition's.
 * The definition is adapted to the local engine (see `adaptToLocalEngine`) and copied before the engine
 * sees it, as its validator adds fields to what it validates.
 */
export async function runStateMachine(
  definition: StateMachineDefinition,
  input: unknown,
  options: RunOptions,
): Promise<LocalRun> {
  const adapted = adaptToLocalEngine(definition);
  const calls: TaskCall[] = [];
  const holdsCalls: TaskCall[] = [];
  const taskResourceLocalHandlers: Record<string, (input: unknown) => unknown> = {};
  const retryIntervalOverrides: Record<string, number> = {};
  for (const { name, state } of listStates(adapted)) {
    if (Array.isArray(state.Retry)) retryIntervalOverrides[name] = 0;
    if (state.Type !== 'Task') continue;
    const resource = String(state.Resource);
    taskResourceLocalHandlers[name] = async (taskInput) => {
      const call: TaskCall = { stateName: name, resource, input: taskInput as TaskInput };
      if ((taskInput as TaskInput).FunctionName === HOLDS_FUNCTION) {
        holdsCalls.push(call);
        return (options.holds ?? enterAtOnce)(call.input, call);
      }
      calls.push(call);
      const handler = options.handlers[resource];
      if (handler === undefined) throw new Error(`No local handler for ${resource} (state "${name}")`);
      return handler(call.input, call);
    };
  }
  let tokens = 0;
  const machine = new StateMachine(structuredClone(adapted) as unknown as EngineDefinition, {
    validationOptions: { noValidate: options.validate === false },
  });
  const execution = machine.run(input as Parameters<StateMachine['run']>[0], {
    overrides: {
      taskResourceLocalHandlers: taskResourceLocalHandlers as never,
      retryIntervalOverrides,
    },
    context: localContextObject({
      executionArn: options.executionArn ?? TEST_EXECUTION_ARN,
      mintTaskToken: options.mintTaskToken ?? (() => `task-token-${++tokens}`),
      redriveCount: options.redriveCount ?? 0,
    }),
  });
  const events: ExecutionEvent[] = [];
  const logged = (async () => {
    for await (const event of execution.eventLogs) events.push(event);
  })();
  try {
    const output = await execution.result;
    await logged;
    return { status: 'SUCCEEDED', output, calls, holdsCalls, events };
  } catch (error) {
    if (!(error instanceof ExecutionError)) throw error;
    await logged;
    const failure = error.cause instanceof Error ? error.cause : new Error(String(error.cause));
    return { status: 'FAILED', error: failure.name, cause: failure.message, calls, holdsCalls, events };
  }
}

/** The names of the states entered, in order: top-level states and Map iterations' states alike. */
export function statesEntered(run: Pick<LocalRun, 'events'>): string[] {
  return run.events.flatMap((event) => (event.type === 'StateEntered' ? [event.state.name] : []));
}

/**
 * State transitions of a run as Step Functions bills them: one per state entered, counting the states
 * of every Map iteration.
 */
export function countTransitions(run: Pick<LocalRun, 'events'>): number {
  return statesEntered(run).length;
}

/** The Task calls to one state, in order. */
export function callsTo(run: Pick<LocalRun, 'calls'>, stateName: string): TaskCall[] {
  return run.calls.filter((call) => call.stateName === stateName);
}

/** A build's `EnvironmentVariablesOverride` as a name → value record. */
export function buildEnvironment(input: TaskInput): Record<string, string> {
  const overrides = input.EnvironmentVariablesOverride;
  if (!Array.isArray(overrides)) return {};
  return Object.fromEntries(
    overrides.map((variable: { Name: string; Value: string }) => [variable.Name, variable.Value]),
  );
}

/** The `Payload` of a `lambda:invoke` task's input. */
export function lambdaPayload(input: TaskInput): Record<string, unknown> {
  return (input.Payload ?? {}) as Record<string, unknown>;
}

/** An error as Step Functions names it: a service integration's (`CodeBuild.ThrottlingException`) or the task's. */
export function stepFunctionsError(name: string, cause: string): Error {
  const error = new Error(cause);
  error.name = name;
  return error;
}

export interface BuildOptions {
  status?: CodeBuildBuild['BuildStatus'];
  /** Variables the buildspec exports (`exported-variables`). */
  exported?: Record<string, string>;
  buildNumber?: number;
  /** The build's test reports (ReportArns); absent when the buildspec names none. */
  reportArns?: string[];
}

const REGION = 'eu-west-1';
const ACCOUNT = '123456789012';

/**
 * The build a `startBuild.sync` task with this input ends with: project, commit and environment
 * variables from the input, a log deep link, and the given status and exported variables.
 */
export function codeBuildBuild(input: TaskInput, options: BuildOptions = {}): CodeBuildBuild {
  const project = String(input.ProjectName);
  const buildNumber = options.buildNumber ?? 7;
  const uuid = `0d6a3b1e-5f2c-4c3a-9d7e-${String(buildNumber).padStart(12, '0')}`;
  const id = `${project}:${uuid}`;
  const status = options.status ?? 'SUCCEEDED';
  const group = `/aws/codebuild/${project}`;
  const environment = buildEnvironment(input);
  return {
    Id: id,
    Arn: `arn:aws:codebuild:${REGION}:${ACCOUNT}:build/${id}`,
    BuildNumber: buildNumber,
    BuildStatus: status,
    BuildComplete: true,
    CurrentPhase: 'COMPLETED',
    ProjectName: project,
    SourceVersion: String(input.SourceVersion ?? ''),
    ResolvedSourceVersion: String(input.SourceVersion ?? ''),
    StartTime: 1_795_000_000_000,
    EndTime: 1_795_000_090_000,
    Environment: {
      EnvironmentVariables: Object.entries(environment).map(([Name, Value]) => ({
        Name,
        Type: 'PLAINTEXT',
        Value,
      })),
    },
    Phases: [],
    ExportedEnvironmentVariables: Object.entries(options.exported ?? {}).map(([Name, Value]) => ({
      Name,
      Value,
    })),
    Logs: {
      GroupName: group,
      StreamName: uuid,
      DeepLink: `https://console.aws.amazon.com/cloudwatch/home?region=${REGION}#logsV2:log-groups/log-group/${encodeURIComponent(group)}/log-events/${uuid}`,
    },
    ...(options.reportArns ? { ReportArns: options.reportArns } : {}),
  };
}

/** The test report the passing test build writes (report group `<project>-junit`). */
export const TEST_REPORT_ARN = `arn:aws:codebuild:${REGION}:${ACCOUNT}:report/stepline-test-test-junit:0d6a3b1e-5f2c-4c3a-9d7e-000000000007`;

/** What `codebuild:batchGetReports` returns for one report with these counts. */
export function reportsRead(
  arns: string[],
  counts: Record<string, number> = { SUCCEEDED: 12 },
): { Reports: unknown[] } {
  return {
    Reports: arns.map((arn) => ({
      Arn: arn,
      Type: 'TEST',
      Name: 'stepline-test-test-junit',
      Status: (counts.FAILED ?? 0) > 0 ? 'FAILED' : 'SUCCEEDED',
      TestSummary: {
        Total: Object.values(counts).reduce((sum, count) => sum + count, 0),
        StatusCounts: counts,
      },
    })),
  };
}

/** What `startBuild.sync` returns for a build that succeeded. */
export function buildSucceeded(
  input: TaskInput,
  options: Omit<BuildOptions, 'status'> = {},
): { Build: CodeBuildBuild } {
  return { Build: codeBuildBuild(input, { ...options, status: 'SUCCEEDED' }) };
}

/**
 * What `startBuild.sync` throws for a build that ended FAILED: Step Functions' CodeBuild integration
 * fails the task with `States.TaskFailed` and the build, as JSON, for cause.
 */
export function buildFailed(input: TaskInput, options: Omit<BuildOptions, 'status'> = {}): Error {
  return stepFunctionsError(
    'States.TaskFailed',
    JSON.stringify(codeBuildBuild(input, { ...options, status: 'FAILED' })),
  );
}

/** The image URI the passing image build exports. */
export const TEST_IMAGE_URI =
  '123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop:2222222222222222222222222222222222222222';

/** A decision as SendTaskSuccess returns it into the execution. */
export const APPROVED: ApprovalDecision = {
  approved: true,
  approver: 'Ada',
  comment: 'Looks good',
  decidedAt: '2026-11-23T10:00:00.000Z',
  sourceIp: '203.0.113.7',
};

/** An execution input as the webhook starts the pipeline with: a push to main, settings with their defaults. */
export function anExecutionInput(settings: Partial<PipelineSettings> = {}): ExecutionInput {
  const push = aPush();
  return ExecutionInputSchema.parse({
    push,
    deliveryId: '72d3162e-cc78-11e3-81ab-4c9367dc0958',
    sequence: 1,
    source: { type: 'GITHUB', location: push.repository.cloneUrl, version: push.after },
    settings,
  });
}

/** The execution input of a pull request's run: its head as a push of the source branch. */
export function aPullRequestExecutionInput(
  pullRequest: Partial<PullRequest> = {},
  settings: Partial<PipelineSettings> = {},
): ExecutionInput {
  const push = aPush({ ref: 'refs/heads/feature/thing', refName: 'feature/thing' });
  const pr: PullRequest = {
    provider: 'github',
    number: 12,
    title: 'Add the thing',
    event: 'UPDATED',
    action: 'synchronize',
    draft: false,
    fork: false,
    head: push.after ?? '',
    target: { repository: push.repository.fullName, branch: 'main', defaultBranch: 'main' },
    source: { repository: push.repository.fullName, branch: 'feature/thing' },
    ...pullRequest,
  };
  return ExecutionInputSchema.parse({
    push,
    pullRequest: pr,
    sequence: 1,
    source: { type: 'GITHUB', location: push.repository.cloneUrl, version: push.after },
    settings,
  });
}

/**
 * Handlers for a run where everything passes: every build succeeds (the image build exports
 * TEST_IMAGE_URI), every approval is approved, every Lambda answers 200.
 */
/**
 * A `lambda:invoke` answered as the deployed functions answer: the notify function's request is parsed as it
 * parses it and, for a failed stage that carries `redrive`, ends the Task with `Pipeline.StageFailed` as the
 * function throws it (shared/handlers/notify.ts); any other invoke returns an empty payload.
 */
export function notifyAsDeployed(input: TaskInput): unknown {
  if (String(input.FunctionName).endsWith('-notify')) {
    const request = NotifyRequestSchema.parse(lambdaPayload(input));
    if (request.kind === 'failed' && notifyStep(request) === 'notify and fail') {
      const failure = stageFailure(request);
      throw stepFunctionsError(failure.name, failure.message);
    }
  }
  return { StatusCode: 200, ExecutedVersion: '$LATEST', Payload: null };
}

export function passingHandlers(decision: ApprovalDecision = APPROVED): HandlersByResource {
  return {
    [RESOURCE.startBuildSync]: (input) => {
      const project = String(input.ProjectName);
      if (project.endsWith('-image'))
        return buildSucceeded(input, { exported: { IMAGE_URI: TEST_IMAGE_URI } });
      if (project.endsWith('-test')) return buildSucceeded(input, { reportArns: [TEST_REPORT_ARN] });
      return buildSucceeded(input);
    },
    [RESOURCE.batchGetReports]: (input) => reportsRead(input.ReportArns as string[]),
    [RESOURCE.describeTestCases]: () => ({ TestCases: [] }),
    [RESOURCE.lambdaInvoke]: notifyAsDeployed,
    [RESOURCE.lambdaInvokeWaitForTaskToken]: () => decision,
  };
}

/** State transitions of a passing pipeline run over these environments (every approval approved). */
export async function countPassingRunTransitions(environments: Environment[]): Promise<number> {
  const run = await runStateMachine(loadProjectStateMachine('pipeline'), anExecutionInput({ environments }), {
    handlers: passingHandlers(),
  });
  if (run.status !== 'SUCCEEDED') throw new Error(`The passing run failed: ${run.error}: ${run.cause}`);
  return countTransitions(run);
}

/** Where a run's largest state data was, and its size in UTF-8 bytes of JSON. */
export interface StateDataSize {
  bytes: number;
  where: string;
}

/**
 * The largest data any state of the run received or produced: every state's input and output (Map
 * iterations' states and Catch outputs included: a caught error is the input of the state it routes to),
 * every Map's input, and the execution's input and output, measured as Step Functions measures its
 * 256 KiB quota: the JSON as a UTF-8 string
 * (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).
 */
export function largestStateData(run: Pick<LocalRun, 'events' | 'output'>): StateDataSize {
  let largest: StateDataSize = { bytes: 0, where: 'nothing' };
  const measure = (value: unknown, where: string) => {
    if (value === undefined) return;
    const bytes = Buffer.byteLength(JSON.stringify(value), 'utf8');
    if (bytes > largest.bytes) largest = { bytes, where };
  };
  for (const event of run.events) {
    if ('state' in event) {
      measure(event.state.input, `${event.state.name} input`);
      measure(event.state.output, `${event.state.name} output`);
    }
    if ('parentState' in event) measure(event.parentState.input, `${event.parentState.name} input`);
    if (event.type === 'ExecutionStarted') measure(event.input, 'execution input');
    if (event.type === 'ExecutionSucceeded') measure(event.output, 'execution output');
  }
  measure(run.output, 'execution output');
  return largest;
}
