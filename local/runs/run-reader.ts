import type { ExecutionRecord, HistoryEvent, OutboxMessage } from '../state/store.ts';
import {
  type PendingApproval,
  type RunBuild,
  type RunDetail,
  type RunFacts,
  type RunHistoryEvent,
  type RunSummary,
  statusesFromHistory,
  summarizeRun,
} from './read-model.ts';

/**
 * Where a run's read model comes from: the store's records and history, the state machines'
 * definitions, and what the runtime's ledger knows (builds, pending approvals). The local runtime is one.
 */
export interface RunSources {
  store: {
    history(executionArn: string): HistoryEvent[];
    outbox(): OutboxMessage[];
  };
  wiring: { machines: Record<string, { definition: Record<string, unknown> }> };
  builds(executionArn: string): RunBuild[];
  pendingApprovals(): PendingApproval[];
  /** The environment a run waits to enter, and who holds it (release control). */
  waitingFor?(executionArn: string): { environment: string; heldBy: string | null } | undefined;
}

/** A stored run's summary, as `GET /api/runs` lists it. */
export function readRunSummary(sources: RunSources, record: ExecutionRecord): RunSummary {
  return summarizeRun(record, runFacts(sources, record, readHistory(sources, record)));
}

/** A stored run with its input, output, history, builds and notifications, as `GET /api/runs/<run>`. */
export function readRunDetail(sources: RunSources, record: ExecutionRecord): RunDetail {
  const history = readHistory(sources, record);
  const facts = runFacts(sources, record, history);
  return {
    ...summarizeRun(record, facts),
    input: record.input,
    output: record.output,
    history,
    builds: [...facts.builds],
    notifications: sources.store.outbox().filter((m) => m.executionArn === record.executionArn),
    statuses: statusesFromHistory(history),
  };
}

function readHistory(sources: RunSources, record: ExecutionRecord): RunHistoryEvent[] {
  // The store reads every event through the one history schema (local/stepfunctions/history.ts).
  return sources.store.history(record.executionArn);
}

function runFacts(sources: RunSources, record: ExecutionRecord, history: RunHistoryEvent[]): RunFacts {
  const approval = sources.pendingApprovals().find((a) => a.executionArn === record.executionArn);
  const waitingFor = sources.waitingFor?.(record.executionArn);
  return {
    ...(waitingFor ? { waitingFor } : {}),
    history,
    builds: sources.builds(record.executionArn),
    definition: sources.wiring.machines[record.stateMachine]?.definition ?? {},
    ...(approval ? { approval } : {}),
  };
}
