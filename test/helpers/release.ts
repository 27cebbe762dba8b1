import { createLogger } from '#shared/logger.ts';
import type { ExecutionStopper, LineStore, Notification, TaskDecider } from '#shared/ports.ts';
import { emptyLine, type LineState } from '#shared/release.ts';
import { ReleaseLedger } from '#shared/release-ledger.ts';

/**
 * The lines in memory, with the same conditional write as the DynamoDB and file stores (a write with a
 * stale version is refused). For tests of handlers that do not look at release control.
 */
export class MemoryLineStore implements LineStore {
  readonly lines = new Map<string, { sequence: number; version: number; state: LineState }>();

  async nextSequence(line: string): Promise<number> {
    const entry = this.#entry(line);
    entry.sequence += 1;
    return entry.sequence;
  }

  async read(line: string): Promise<{ state: LineState; version: number }> {
    const entry = this.#entry(line);
    return { state: structuredClone(entry.state), version: entry.version };
  }

  async write(line: string, state: LineState, version: number): Promise<boolean> {
    const entry = this.#entry(line);
    if (entry.version !== version) return false;
    entry.state = structuredClone(state);
    entry.version += 1;
    return true;
  }

  #entry(line: string) {
    let entry = this.lines.get(line);
    if (!entry) {
      entry = { sequence: 0, version: 0, state: emptyLine(line) };
      this.lines.set(line, entry);
    }
    return entry;
  }
}

/** What a ledger did, as tests read it. */
export interface LedgerRecord {
  resumed: { token: string; output: unknown }[];
  refused: { token: string; error: string; cause: string }[];
  stopped: { executionArn: string; error: string; cause: string }[];
  published: Notification[];
}

/** A ledger over `store` whose decisions, stops and notifications are recorded. */
export function recordingLedger(store: LineStore = new MemoryLineStore()): {
  ledger: ReleaseLedger;
  record: LedgerRecord;
  store: LineStore;
} {
  const record: LedgerRecord = { resumed: [], refused: [], stopped: [], published: [] };
  const decider: TaskDecider = {
    succeed: async (token, output) => void record.resumed.push({ token, output }),
    fail: async (token, error, cause) => void record.refused.push({ token, error, cause }),
  };
  const stopper: ExecutionStopper = {
    stop: async (executionArn, error, cause) => void record.stopped.push({ executionArn, error, cause }),
  };
  const ledger = new ReleaseLedger({
    store,
    decider,
    stopper,
    notifier: { publish: async (notification) => void record.published.push(notification) },
    logger: createLogger('holds', 'SILENT'),
  });
  return { ledger, record, store };
}
