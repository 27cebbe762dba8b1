import { readFileSync } from 'node:fs';

/**
 * Helpers around the state machine files in statemachines/: load one with its deploy-time placeholders
 * resolved, walk its states (Map and Parallel included), and adapt it to the local engine
 * (aws-local-stepfunctions), which differs from Step Functions in two ways the pipeline depends on.
 */

/** The two Serverless Framework variables the state machine files use, resolved at package time in AWS. */
export interface DeploymentVariables {
  /** `${self:service}`: the service name in serverless.yml. */
  service: string;
  /** `${sls:stage}`: the deployment stage (`dev`, `prod`, `local`, …). */
  stage: string;
}

/** A state machine definition as parsed JSON. */
export type StateMachineDefinition = Record<string, unknown>;

/** One state, wherever it sits: at the top level, in a Map's ItemProcessor or in a Parallel branch. */
export interface StateEntry {
  name: string;
  state: Record<string, unknown>;
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: the Serverless Framework variable, not a template literal
const SERVICE_VARIABLE = '${self:service}';
// biome-ignore lint/suspicious/noTemplateCurlyInString: the Serverless Framework variable, not a template literal
const STAGE_VARIABLE = '${sls:stage}';
const PLACEHOLDER = /\$\{[^}]*\}/g;

/**
 * Reads a state machine file and substitutes `${self:service}` and `${sls:stage}` in every string, as
 * the Serverless Framework does when it packages the definition.
 *
 * @throws Error naming the file and every other `${…}` left in it, so a placeholder the local mode
 *   cannot resolve fails at start-up instead of reaching a build or a Lambda as literal text.
 * @example
 * ```ts
 * const definition = loadStateMachine('statemachines/pipeline.asl.json', { service: 'stepline', stage: 'local' });
 * ```
 */
export function loadStateMachine(path: string, vars: DeploymentVariables): StateMachineDefinition {
  for (const [name, value] of Object.entries(vars)) {
    if (!/^[A-Za-z0-9-]+$/.test(value)) {
      throw new Error(`Cannot load ${path}: the ${name} must be letters, digits and dashes, got "${value}"`);
    }
  }
  const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (!isObject(parsed)) {
    throw new Error(`Cannot load ${path}: a state machine definition is a JSON object`);
  }
  const substituted = mapStrings(parsed, (text) =>
    text.replaceAll(SERVICE_VARIABLE, vars.service).replaceAll(STAGE_VARIABLE, vars.stage),
  ) as StateMachineDefinition;
  const left = new Set(strings(substituted).flatMap((text) => text.match(PLACEHOLDER) ?? []));
  if (left.size > 0) {
    throw new Error(
      `Cannot load ${path}: unresolved placeholders ${[...left].join(', ')} (only ${SERVICE_VARIABLE} and ${STAGE_VARIABLE} are substituted)`,
    );
  }
  return substituted;
}

/**
 * Every state of a definition, depth first: top-level states, then the states of each Map's
 * ItemProcessor (or legacy Iterator) and of each Parallel branch. State names are unique across a whole
 * state machine, so a name identifies one entry.
 */
export function listStates(definition: StateMachineDefinition): StateEntry[] {
  const entries: StateEntry[] = [];
  const visit = (machine: unknown): void => {
    if (!isObject(machine) || !isObject(machine.States)) return;
    for (const [name, state] of Object.entries(machine.States)) {
      if (!isObject(state)) continue;
      entries.push({ name, state });
      visit(state.ItemProcessor ?? state.Iterator);
      if (Array.isArray(state.Branches)) for (const branch of state.Branches) visit(branch);
    }
  };
  visit(definition);
  return entries;
}

/**
 * Returns a copy of the definition that aws-local-stepfunctions runs the way Step Functions does.
 *
 * Step Functions resolves a Task's `TimeoutSecondsPath` against the state input; aws-local-stepfunctions
 * (3.x) resolves it against the Parameters output. So for each such Task, the copy points
 * `TimeoutSecondsPath` at the Parameters field that carries the same path (the approval gate passes
 * `"timeoutSeconds.$": "$.approvalTimeoutSeconds"` in its Payload, and its TimeoutSecondsPath is
 * `$.approvalTimeoutSeconds`; the copy reads `$.Payload.timeoutSeconds`).
 *
 * @throws Error when a Task has a `TimeoutSecondsPath` that no Parameters field repeats.
 */
export function adaptToLocalEngine(definition: StateMachineDefinition): StateMachineDefinition {
  const copy = structuredClone(definition);
  for (const { name, state } of listStates(copy)) {
    if (state.Type !== 'Task' || typeof state.TimeoutSecondsPath !== 'string') continue;
    const field = findPathField(state.Parameters, state.TimeoutSecondsPath, '$');
    if (field === undefined) {
      throw new Error(
        `State "${name}": its TimeoutSecondsPath ${state.TimeoutSecondsPath} must also be passed in its Parameters for the local engine`,
      );
    }
    state.TimeoutSecondsPath = field;
  }
  return copy;
}

/** What the local mode knows about an execution, to build its Context Object. */
export interface LocalContextOptions {
  /** The execution's ARN (`$$.Execution.Id`). */
  executionArn: string;
  /** Mints the task token a `.waitForTaskToken` task hands out (`$$.Task.Token`), one per read. */
  mintTaskToken: () => string;
  now?: () => Date;
  /**
   * How many times the execution was redriven (`$$.Execution.RedriveCount`, 0 until its first redrive,
   * https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html).
   */
  redriveCount?: number;
}

/**
 * The Context Object (`$$`) for an aws-local-stepfunctions run: `Execution.Id`, `Execution.Name` and
 * `Execution.RedriveCount`,
 * plus `Task.Token` and `State.EnteredTime`, which that engine does not provide. Those two are getters,
 * read when a state's Parameters are evaluated, so each waiting task gets its own token and each
 * state its own time (the engine copies the object's top level only, so the getters stay live).
 */
export function localContextObject(options: LocalContextOptions): Record<string, unknown> {
  const now = options.now ?? (() => new Date());
  const task = {};
  Object.defineProperty(task, 'Token', { enumerable: true, get: options.mintTaskToken });
  const state = {};
  Object.defineProperty(state, 'EnteredTime', { enumerable: true, get: () => now().toISOString() });
  return {
    Execution: {
      Id: options.executionArn,
      Name: options.executionArn.split(':').at(-1) ?? '',
      RedriveCount: options.redriveCount ?? 0,
    },
    Task: task,
    State: state,
  };
}

/** The output path of the payload-template field whose `.$` value is `path`, if any. */
function findPathField(template: unknown, path: string, at: string): string | undefined {
  if (!isObject(template)) return undefined;
  for (const [key, value] of Object.entries(template)) {
    if (key.endsWith('.$') && value === path) return `${at}.${key.slice(0, -2)}`;
    const nested = findPathField(value, path, `${at}.${key}`);
    if (nested !== undefined) return nested;
  }
  return undefined;
}

function mapStrings(value: unknown, map: (text: string) => string): unknown {
  if (typeof value === 'string') return map(value);
  if (Array.isArray(value)) return value.map((item) => mapStrings(item, map));
  if (isObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, mapStrings(item, map)]));
  }
  return value;
}

function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (isObject(value)) return Object.values(value).flatMap(strings);
  return [];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
