/**
 * What the console draws, worked out from data alone (no DOM): the graph of a state machine from its
 * ASL, and what happened to each state in one run from the run's stored history events. The browser
 * bundle and the tests both import it.
 */
import type { HistoryEventFields } from '#local/stepfunctions/history.ts';
import { formatDuration as formatText } from '#shared/text.ts';

/** What happened to a state in a run, as the graph colours it. */
export type StateStatus =
  | 'not-reached'
  | 'running'
  | 'waiting'
  | 'succeeded'
  | 'retried'
  | 'caught'
  | 'failed'
  | 'stopped';

export const STATUS_LABELS: Record<StateStatus, string> = {
  'not-reached': 'not reached',
  running: 'running',
  waiting: 'waiting for approval',
  succeeded: 'succeeded',
  retried: 'succeeded after a retry',
  caught: 'failed, caught',
  failed: 'failed',
  stopped: 'stopped',
};

export type NodeKind = 'start' | 'end' | 'state' | 'group-end';

export interface GraphNode {
  id: string;
  kind: NodeKind;
  label: string;
  /** The ASL state this node stands for (the state itself, or the end of a Map/Parallel group). */
  state?: string;
  stateType?: string;
  /** The group (Map, Parallel, or a Parallel branch) the node is drawn in. */
  parent?: string;
  /** `.waitForTaskToken`: the state waits for a decision (the approval gate). */
  waitsForToken?: boolean;
  /** How many retriers the state has (shown as a mark). */
  retriers?: number;
}

export interface GraphGroup {
  id: string;
  label: string;
  state: string;
  parent?: string;
}

export type EdgeKind = 'next' | 'choice' | 'default' | 'catch' | 'items' | 'branch';

export interface GraphEdge {
  from: string;
  to: string;
  kind: EdgeKind;
  label?: string;
}

export interface MachineGraph {
  nodes: GraphNode[];
  groups: GraphGroup[];
  edges: GraphEdge[];
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

export const stateNodeId = (name: string): string => `state:${name}`;
const groupEndId = (name: string): string => `end-of:${name}`;
const groupId = (name: string): string => `group:${name}`;

/**
 * The graph of a state machine: a node per state, Start and End, an edge per transition (Next, each
 * Choice rule and its Default, each Catch). A Map or Parallel state is a group holding its own node, its
 * inner states and a closing node its outgoing transitions leave from.
 */
export function machineGraph(definition: Json): MachineGraph {
  const graph: MachineGraph = { nodes: [], groups: [], edges: [] };
  graph.nodes.push({ id: 'start', kind: 'start', label: 'Start' }, { id: 'end', kind: 'end', label: 'End' });
  if (typeof definition.StartAt === 'string')
    graph.edges.push({ from: 'start', to: stateNodeId(definition.StartAt), kind: 'next' });
  addMachine(graph, definition, { exit: 'end' });
  return graph;
}

function addMachine(graph: MachineGraph, machine: Json, scope: { parent?: string; exit?: string }): void {
  if (!isObject(machine.States)) return;
  for (const [name, value] of Object.entries(machine.States)) {
    if (!isObject(value)) continue;
    const state = value;
    const type = String(state.Type);
    const id = stateNodeId(name);
    const inGroup = scope.parent ? { parent: scope.parent } : {};
    const retriers = Array.isArray(state.Retry) ? state.Retry.length : 0;
    let from = id;
    const inner = isObject(state.ItemProcessor) ? state.ItemProcessor : state.Iterator;
    if (type === 'Map' || type === 'Parallel') {
      const group = groupId(name);
      graph.groups.push({ id: group, label: `${name} (${type})`, state: name, ...inGroup });
      graph.nodes.push({
        id,
        kind: 'state',
        label: name,
        state: name,
        stateType: type,
        parent: group,
        ...(retriers ? { retriers } : {}),
      });
      from = groupEndId(name);
      graph.nodes.push({ id: from, kind: 'group-end', label: `${name} done`, state: name, parent: group });
      if (type === 'Map' && isObject(inner)) {
        if (typeof inner.StartAt === 'string')
          graph.edges.push({ from: id, to: stateNodeId(inner.StartAt), kind: 'items', label: 'each item' });
        addMachine(graph, inner, { parent: group, exit: from });
      }
      if (type === 'Parallel' && Array.isArray(state.Branches)) {
        state.Branches.forEach((branch, index) => {
          if (!isObject(branch)) return;
          const branchGroup = `${group}:branch:${index}`;
          graph.groups.push({ id: branchGroup, label: `Branch ${index + 1}`, state: name, parent: group });
          if (typeof branch.StartAt === 'string')
            graph.edges.push({
              from: id,
              to: stateNodeId(branch.StartAt),
              kind: 'branch',
              label: `branch ${index + 1}`,
            });
          addMachine(graph, branch, { parent: branchGroup, exit: from });
        });
      }
    } else {
      graph.nodes.push({
        id,
        kind: 'state',
        label: name,
        state: name,
        stateType: type,
        ...inGroup,
        ...(type === 'Task' && String(state.Resource).endsWith('.waitForTaskToken') && !takesAHold(state)
          ? { waitsForToken: true }
          : {}),
        ...(retriers ? { retriers } : {}),
      });
    }
    if (typeof state.Next === 'string') graph.edges.push({ from, to: stateNodeId(state.Next), kind: 'next' });
    if (state.End === true || type === 'Succeed') {
      if (scope.exit) graph.edges.push({ from, to: scope.exit, kind: 'next' });
    }
    // A Fail state ends the whole execution only at the top level; inside a group it fails the group.
    if (type === 'Fail' && !scope.parent) graph.edges.push({ from, to: 'end', kind: 'next' });
    if (type === 'Choice' && Array.isArray(state.Choices)) {
      for (const rule of state.Choices) {
        if (isObject(rule) && typeof rule.Next === 'string')
          graph.edges.push({ from, to: stateNodeId(rule.Next), kind: 'choice', label: describeRule(rule) });
      }
      if (typeof state.Default === 'string')
        graph.edges.push({ from, to: stateNodeId(state.Default), kind: 'default', label: 'Default' });
    }
    if (Array.isArray(state.Catch)) {
      for (const catcher of state.Catch) {
        if (isObject(catcher) && typeof catcher.Next === 'string') {
          const errors = Array.isArray(catcher.ErrorEquals) ? catcher.ErrorEquals.join(', ') : '';
          graph.edges.push({ from, to: stateNodeId(catcher.Next), kind: 'catch', label: `catch ${errors}` });
        }
      }
    }
  }
}

const COMPARISONS: Record<string, string> = {
  Equals: '==',
  LessThan: '<',
  GreaterThan: '>',
  LessThanEquals: '<=',
  GreaterThanEquals: '>=',
};

/** A Choice rule in a few words: `$.approvalRequired == true`. */
export function describeRule(rule: Json): string {
  if (Array.isArray(rule.And)) return rule.And.map((r) => describeRule(r as Json)).join(' and ');
  if (Array.isArray(rule.Or)) return rule.Or.map((r) => describeRule(r as Json)).join(' or ');
  if (isObject(rule.Not)) return `not (${describeRule(rule.Not)})`;
  if (typeof rule.Condition === 'string') return rule.Condition;
  const variable = typeof rule.Variable === 'string' ? rule.Variable : '';
  for (const [key, value] of Object.entries(rule)) {
    if (key === 'Variable' || key === 'Next' || key === 'Comment') continue;
    const op = Object.entries(COMPARISONS).find(([suffix]) => key.endsWith(suffix));
    const operand = key.endsWith('Path') ? String(value) : JSON.stringify(value);
    if (op) return `${variable} ${op[1]} ${operand}`;
    return `${variable} ${key} ${operand}`;
  }
  return variable;
}

/** One stored history event (what local/stepfunctions/engine.ts writes). */
export interface HistoryEventLike extends HistoryEventFields {
  id?: number;
  type: string;
  timestamp: string;
}

/** What happened to one state (or one Map iteration of it). */
export interface StateOutcome {
  status: StateStatus;
  retries: number;
  error?: string;
  cause?: string;
  enteredAt?: string;
  exitedAt?: string;
}

export interface StateRun extends StateOutcome {
  /** For a state inside a Map: one outcome per iteration index. */
  iterations: ({ index: number } & StateOutcome)[];
}

interface Tracker {
  entered: boolean;
  exited: boolean;
  failed?: { error?: string; cause?: string };
  caught: boolean;
  retries: number;
  enteredAt?: string;
  exitedAt?: string;
}

/** Live states come first: a group is running while any iteration is. */
const PRECEDENCE: StateStatus[] = [
  'waiting',
  'running',
  'failed',
  'stopped',
  'caught',
  'retried',
  'succeeded',
  'not-reached',
];

/**
 * What happened to each state of a run, by state name, from its history: StateEntered, StateExited,
 * StateFailed, StateRetried and StateCaught (with `index` for Map iterations). A state entered and not
 * yet left is `running` (`waiting` when it waits for a task token) while the run runs, `stopped` after.
 */
export function stateRuns(
  history: readonly HistoryEventLike[],
  options: { running: boolean; waitsForToken?: (state: string) => boolean },
): Map<string, StateRun> {
  const trackers = new Map<string, Map<number, Tracker>>();
  for (const event of history) {
    if (event.type === 'ExecutionRedriven') {
      // The earlier attempt's states that never exited (its Fail state, what was in flight) are over: the
      // redrive enters again those it runs.
      for (const byIndex of trackers.values()) {
        for (const [index, t] of byIndex) if (!t.exited) byIndex.delete(index);
      }
      continue;
    }
    if (!event.state || !event.type.startsWith('State')) continue;
    const byIndex = trackers.get(event.state) ?? new Map<number, Tracker>();
    trackers.set(event.state, byIndex);
    const index = event.index ?? -1;
    let t = byIndex.get(index);
    if (event.type === 'StateEntered' || !t) {
      t = {
        entered: true,
        exited: false,
        caught: false,
        retries: t?.retries ?? 0,
        enteredAt: event.timestamp,
      };
      byIndex.set(index, t);
      if (event.type === 'StateEntered') continue;
    }
    if (event.type === 'StateExited') {
      t.exited = true;
      t.exitedAt = event.timestamp;
    } else if (event.type === 'StateFailed') {
      t.failed = {
        ...(event.error ? { error: event.error } : {}),
        ...(event.cause ? { cause: event.cause } : {}),
      };
    } else if (event.type === 'StateCaught') {
      t.caught = true;
    } else if (event.type === 'StateRetried') {
      t.retries += 1;
      delete t.failed;
    }
  }
  const runs = new Map<string, StateRun>();
  for (const [state, byIndex] of trackers) {
    const waits = options.waitsForToken?.(state) ?? false;
    const outcomes = [...byIndex.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, t]) => ({ index, ...outcome(t, options.running, waits) }));
    const status = PRECEDENCE.find((s) => outcomes.some((o) => o.status === s)) ?? 'not-reached';
    const withError = outcomes.filter((o) => o.error !== undefined).at(-1);
    const iterated = outcomes.some((o) => o.index >= 0);
    runs.set(state, {
      status,
      retries: outcomes.reduce((sum, o) => sum + o.retries, 0),
      ...(withError?.error ? { error: withError.error } : {}),
      ...(withError?.cause ? { cause: withError.cause } : {}),
      ...(outcomes[0]?.enteredAt ? { enteredAt: outcomes[0].enteredAt } : {}),
      ...(outcomes.at(-1)?.exitedAt ? { exitedAt: outcomes.at(-1)?.exitedAt } : {}),
      iterations: iterated ? outcomes.filter((o) => o.index >= 0) : [],
    });
  }
  return runs;
}

function outcome(t: Tracker, running: boolean, waits: boolean): StateOutcome {
  const status: StateStatus = t.failed
    ? t.caught
      ? 'caught'
      : 'failed'
    : t.exited
      ? t.retries > 0
        ? 'retried'
        : 'succeeded'
      : running
        ? waits
          ? 'waiting'
          : 'running'
        : 'stopped';
  return {
    status,
    retries: t.retries,
    ...(t.failed?.error ? { error: t.failed.error } : {}),
    ...(t.failed?.cause ? { cause: t.failed.cause } : {}),
    ...(t.enteredAt ? { enteredAt: t.enteredAt } : {}),
    ...(t.exitedAt ? { exitedAt: t.exitedAt } : {}),
  };
}

/**
 * A failure's cause in one line a person reads first. A failed CodeBuild build's cause is the build JSON:
 * its failed phase and that phase's message; a Lambda error's cause is `{errorType, errorMessage}`.
 */
export function causeSummary(cause: string | undefined): string | undefined {
  if (!cause) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(cause);
  } catch {
    return cause.split('\n')[0];
  }
  if (isObject(parsed) && Array.isArray(parsed.Phases)) {
    const phase = parsed.Phases.find(
      (p) => isObject(p) && p.PhaseStatus !== 'SUCCEEDED' && Array.isArray(p.Contexts) && p.Contexts.length,
    ) as Json | undefined;
    const context = Array.isArray(phase?.Contexts) ? (phase.Contexts[0] as Json) : undefined;
    const build = `Build ${String(parsed.Id ?? '')} ${String(parsed.BuildStatus ?? 'failed')}`;
    return context ? `${build} in ${String(phase?.PhaseType)}: ${String(context.Message)}` : build;
  }
  if (isObject(parsed) && typeof parsed.errorMessage === 'string')
    return `${String(parsed.errorType ?? 'Error')}: ${parsed.errorMessage}`;
  return cause.split('\n')[0];
}

/**
 * Names for a Map's iterations when its items are readable from the run input (`ItemsPath` of the plain
 * `$.a.b` form, items with a `name` or plain strings): `dev`, `prod`; else none.
 */
export function iterationNames(definition: Json, input: unknown): Map<string, string[]> {
  const names = new Map<string, string[]>();
  const visit = (machine: unknown): void => {
    if (!isObject(machine) || !isObject(machine.States)) return;
    for (const state of Object.values(machine.States)) {
      if (!isObject(state)) continue;
      const processor = isObject(state.ItemProcessor) ? state.ItemProcessor : state.Iterator;
      if (state.Type === 'Map' && isObject(processor)) {
        const items = typeof state.ItemsPath === 'string' ? readPath(input, state.ItemsPath) : undefined;
        const labels = Array.isArray(items)
          ? items.map((item, i) =>
              typeof item === 'string'
                ? item
                : isObject(item) && typeof item.name === 'string'
                  ? item.name
                  : `#${i}`,
            )
          : [];
        for (const inside of stateNames(processor)) names.set(inside, labels);
        visit(processor);
      }
      if (Array.isArray(state.Branches)) for (const branch of state.Branches) visit(branch);
    }
  };
  visit(definition);
  return names;
}

function stateNames(machine: Json): string[] {
  if (!isObject(machine.States)) return [];
  return Object.keys(machine.States);
}

function readPath(value: unknown, path: string): unknown {
  if (!/^\$(\.[A-Za-z_][\w-]*)*$/.test(path)) return undefined;
  return path
    .split('.')
    .slice(1)
    .reduce<unknown>((at, key) => (isObject(at) ? at[key] : undefined), value);
}

/** A duration as the console shows it, one decimal under a minute: `1.4s`, `2m 5s`, `1h 3m`. */
export function formatDuration(ms: number): string {
  return Number.isFinite(ms) && ms >= 0 ? formatText(ms, { tenths: true }) : '';
}

/**
 * The address to link, when `text` is an `http:` or `https:` URL; undefined for anything else. Deployed
 * services' URLs are exported by the pushed buildspec: a `javascript:` or `data:` URL must stay text.
 *
 * @example
 * ```ts
 * webLink('http://127.0.0.1:4811/'); // 'http://127.0.0.1:4811/'
 * webLink(' javascript:alert(1)'); // undefined
 * ```
 */
export function webLink(text: string): string | undefined {
  if (!URL.canParse(text)) return undefined;
  const url = new URL(text);
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
}

/**
 * A release task waits for a task token too (Enter environment: resumed when the run holds the
 * environment), but for another run to leave, not for a person: it is no approval gate.
 */
function takesAHold(state: Record<string, unknown>): boolean {
  const parameters = state.Parameters as { FunctionName?: unknown } | undefined;
  return typeof parameters?.FunctionName === 'string' && parameters.FunctionName.endsWith('-holds');
}
