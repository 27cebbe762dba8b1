import { readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  isNotFound,
  removeTemporaryFiles,
  syncDirectory,
  writeFileAtomic,
} from '#local/state/atomic-file.ts';
import { reportJournal, type StoreContext } from '#local/state/context.ts';
import { Journal, KeyedSerializer, readJournal, readJournalSync } from '#local/state/journal.ts';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '#local/state/permissions.ts';
import {
  EXECUTION_STATUSES,
  ExecutionAlreadyExistsError,
  type ExecutionRecord,
  ExecutionRecordSchema,
  formatRecord,
  INTERRUPTED_ERROR,
  NAME_MAX_LENGTH,
  parseRecord,
  validateExecutionName,
} from '#local/state/records.ts';
import { outcomeFromHistory, recordFromHistory, whereInFlight } from '#local/state/recovery.ts';
import {
  type HistoryEvent,
  type NewHistoryEvent,
  NewHistoryEventSchema,
  parseHistoryEvent,
} from '#local/stepfunctions/history.ts';
import { ConflictError, InvalidInputError, NotFoundError } from '#shared/errors.ts';
import * as z from '#shared/zod.ts';

interface ExecutionState {
  record: ExecutionRecord;
  recordPath: string;
  journal: Journal;
  /** The history, once read: read on demand, never at open unless the run needs recovering. */
  events?: HistoryEvent[];
  /** Set once the history file was read back with repair, so appends land on a whole line. */
  nextId?: number;
  /** The read-with-repair under way before the first append to a run loaded from disk. */
  preparing?: Promise<void>;
  /** Whether problems of its history file were already told (a history read on demand is read again). */
  warned?: boolean;
  /** Set when this open rebuilt the run's lost record: said in the cause of the run's interruption. */
  rebuiltNote?: string;
}

/**
 * The runs: `executions/<name>/execution.json` (the record, replaced atomically) and `history.jsonl` (its
 * events, appended). Opening reads the records only; a history is read when asked for, or when its run
 * must be recovered (left RUNNING, or its record lost), so opening does not grow with stored history.
 */
export class Executions {
  readonly #context: StoreContext;
  readonly #root: string;
  readonly #byName = new Map<string, ExecutionState>();
  readonly #namesByArn = new Map<string, string>();
  /** Names whose creation is under way, so two concurrent creations cannot both succeed. */
  readonly #reserved = new Set<string>();
  readonly #records = new KeyedSerializer();

  constructor(context: StoreContext) {
    this.#context = context;
    this.#root = join(context.dir, 'executions');
  }

  /** Creates a run. Throws {@link ExecutionAlreadyExistsError} when its name (or ARN) is taken. */
  async create(record: ExecutionRecord): Promise<void> {
    validateExecutionName(record.name);
    const parsed = ExecutionRecordSchema.safeParse(record);
    if (!parsed.success) throw new InvalidInputError(`Not an execution: ${z.prettifyError(parsed.error)}`);
    const { name, executionArn } = record;
    if (this.#byName.has(name) || this.#reserved.has(name) || this.#namesByArn.has(executionArn)) {
      throw new ExecutionAlreadyExistsError(name);
    }
    // What is kept in memory is exactly what reading the file back gives.
    const stored = JSON.parse(JSON.stringify(record)) as ExecutionRecord;
    this.#reserved.add(name);
    try {
      const folder = join(this.#root, name);
      try {
        await mkdir(folder, { mode: PRIVATE_DIR_MODE });
      } catch (error) {
        // A name differing only in case on a case-insensitive file system.
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new ExecutionAlreadyExistsError(name);
        throw error;
      }
      const historyPath = join(folder, 'history.jsonl');
      await writeFile(historyPath, '', { flag: 'a', mode: PRIVATE_FILE_MODE });
      const recordPath = join(folder, 'execution.json');
      // Also makes the folder's entries (history.jsonl, execution.json) durable.
      await writeFileAtomic(recordPath, formatRecord(stored));
      await syncDirectory(this.#root);
      this.#byName.set(name, {
        record: stored,
        recordPath,
        journal: new Journal(historyPath),
        events: [],
        nextId: 1,
      });
      this.#namesByArn.set(executionArn, name);
    } finally {
      this.#reserved.delete(name);
    }
    this.#context.emit({ kind: 'execution', id: executionArn });
  }

  /**
   * Appends events to a run's history, durably, giving them the next ids (1, 2, … per run) in the order
   * the calls were made. Concurrent calls are written one after another, never interleaved.
   */
  async appendHistory(arnOrName: string, events: NewHistoryEvent[]): Promise<void> {
    const state = this.#state(arnOrName);
    const serialized = events.map(serializeEvent);
    if (serialized.length === 0) return;
    if (state.nextId === undefined) {
      state.preparing ??= this.#readForAppend(state);
      await state.preparing;
    }
    let appended: HistoryEvent[] = [];
    let firstId = 0;
    await state.journal.append({
      render: () => {
        firstId = state.nextId ?? 1;
        appended = serialized.map(
          (json, offset) => JSON.parse(withId(firstId + offset, json)) as HistoryEvent,
        );
        state.nextId = firstId + appended.length;
        return appended.map((event) => `${JSON.stringify(event)}\n`).join('');
      },
      committed: () => state.events?.push(...appended),
      failed: () => {
        state.nextId = firstId;
      },
    });
    this.#context.emit({ kind: 'history', id: state.record.executionArn });
  }

  /** Ends a RUNNING run with its outcome; `stopDate` defaults to now. A run ends once (ConflictError). */
  async finish(
    arnOrName: string,
    patch: Pick<ExecutionRecord, 'status' | 'output' | 'error' | 'cause' | 'stopDate'>,
  ): Promise<void> {
    const state = this.#state(arnOrName);
    if (!EXECUTION_STATUSES.includes(patch.status) || patch.status === 'RUNNING') {
      throw new InvalidInputError(`A run cannot finish as ${String(patch.status)}`);
    }
    await this.#records.run(state.recordPath, async () => {
      if (state.record.status !== 'RUNNING') {
        throw new ConflictError(`Execution ${state.record.name} already ended as ${state.record.status}`);
      }
      const next = JSON.parse(
        JSON.stringify({ ...state.record, ...patch, stopDate: patch.stopDate ?? this.#context.now() }),
      ) as ExecutionRecord;
      await writeFileAtomic(state.recordPath, formatRecord(next));
      state.record = next;
    });
    this.#context.emit({ kind: 'execution', id: state.record.executionArn });
  }

  /**
   * Puts an ended run back to RUNNING for a redrive: its outcome (output, error, cause, stop date) cleared,
   * its `redriveCount` one more and its `redriveDate` now. `check` runs first, on the record as it is then,
   * and refuses by throwing (two redrives at once: the second finds the run RUNNING).
   */
  async redrive(arnOrName: string, check: (record: ExecutionRecord) => void): Promise<ExecutionRecord> {
    const state = this.#state(arnOrName);
    await this.#records.run(state.recordPath, async () => {
      check({ ...state.record });
      const { output: _output, error: _error, cause: _cause, stopDate: _stopDate, ...kept } = state.record;
      const next: ExecutionRecord = {
        ...kept,
        status: 'RUNNING',
        redriveCount: (state.record.redriveCount ?? 0) + 1,
        redriveDate: this.#context.now(),
      };
      await writeFileAtomic(state.recordPath, formatRecord(next));
      state.record = next;
    });
    this.#context.emit({ kind: 'execution', id: state.record.executionArn });
    return { ...state.record };
  }

  /** A run by its ARN or its name. */
  get(arnOrName: string): ExecutionRecord | undefined {
    const state = this.#find(arnOrName);
    return state && { ...state.record };
  }

  /** Every run, newest first (by start date, then name). */
  list(): ExecutionRecord[] {
    return [...this.#byName.values()]
      .map((state) => ({ ...state.record }))
      .sort((a, b) => compareDates(b.startDate, a.startDate) || compare(b.name, a.name));
  }

  /** A run's history (by ARN or name), oldest first; empty for an unknown run. Read from disk when first asked. */
  history(arnOrName: string): HistoryEvent[] {
    const state = this.#find(arnOrName);
    if (!state) return [];
    if (state.events) return [...state.events];
    const relative = `executions/${state.record.name}/history.jsonl`;
    const contents = readJournalSync(state.journal.path);
    const { events, skipped } = parseEvents(contents.records);
    if (!state.warned) {
      // Told to the recovery report when found, which is now: the history was not read at open.
      state.warned = true;
      reportJournal(this.#context, relative, { skipped: contents.skipped });
      if (contents.torn !== undefined) {
        this.#context.report.skippedLines += 1;
        this.#context.note(`${relative}: the last line was cut short by a crash and is skipped when read`);
      }
      this.#reportSkipped(relative, skipped);
    }
    // Kept: a finished run's history does not change unless it is appended to, which reads it again.
    state.events = events;
    return [...events];
  }

  /**
   * A new execution name for restarting `name`: the original run's name (following `restartOf` back) with
   * the first free `-r<n>` suffix, within 80 characters. It is free now; it is taken by the
   * {@link create} that uses it.
   */
  restartName(name: string): string {
    let original = this.#find(name)?.record;
    const seen = new Set<string>();
    while (original?.restartOf !== undefined && !seen.has(original.name)) {
      seen.add(original.name);
      const parent = this.#find(original.restartOf)?.record;
      if (!parent) break;
      original = parent;
    }
    const base = original?.name ?? name;
    for (let attempt = 1; ; attempt += 1) {
      const suffix = `-r${attempt}`;
      const candidate = `${base.slice(0, NAME_MAX_LENGTH - suffix.length)}${suffix}`;
      if (!this.#byName.has(candidate) && !this.#reserved.has(candidate)) return candidate;
    }
  }

  /**
   * Loads every run's record and recovers what a crash left: unreadable or missing records rebuilt from
   * history, runs left RUNNING finished as their history proves or marked INTERRUPTED. Only the histories
   * of those runs are read.
   */
  async load(): Promise<void> {
    const names = (await readdir(this.#root, { withFileTypes: true }))
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name);
    const unsettled: ExecutionState[] = [];
    for (const name of names) {
      // Read one after another, synchronously: for thousands of small files this is several times faster
      // than as many concurrent reads through the thread pool, and nothing else runs while the store opens.
      const text = this.#readRecordText(name);
      const record = text === undefined ? undefined : parseRecord(text, name);
      if (record && record.status !== 'RUNNING') this.#register(name, record);
      else {
        const state = await this.#recover(name, text, record);
        if (state) unsettled.push(state);
      }
    }
    for (const state of unsettled) await this.#settleRunning(state);
  }

  #readRecordText(name: string): string | undefined {
    try {
      return readFileSync(join(this.#root, name, 'execution.json'), 'utf8');
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  #register(name: string, record: ExecutionRecord): ExecutionState {
    const folder = join(this.#root, name);
    const state: ExecutionState = {
      record,
      recordPath: join(folder, 'execution.json'),
      journal: new Journal(join(folder, 'history.jsonl')),
    };
    this.#byName.set(name, state);
    this.#namesByArn.set(record.executionArn, name);
    return state;
  }

  /**
   * A run whose record is RUNNING, unreadable or missing: its history is read (with repair); a lost record
   * is rebuilt from it. Returns the run when it is still RUNNING, to be settled.
   */
  async #recover(
    name: string,
    recordText: string | undefined,
    record: ExecutionRecord | undefined,
  ): Promise<ExecutionState | undefined> {
    const folder = join(this.#root, name);
    const relative = `executions/${name}`;
    await removeTemporaryFiles(folder);
    const { events, nextId } = await this.#readWithRepair(name);
    if (record) {
      const state = this.#register(name, record);
      Object.assign(state, { events, nextId });
      return state;
    }
    const recordPath = join(folder, 'execution.json');
    if (recordText === undefined && events.length === 0) {
      const entries = await readdir(folder);
      if (entries.every((entry) => entry === 'history.jsonl')) {
        // The process stopped inside create, before it resolved: the run was never accepted.
        await rm(folder, { recursive: true, force: true });
        this.#context.note(`${relative}: an execution whose creation never completed was removed`);
      } else {
        this.#context.note(`${relative}: neither execution.json nor history; not an execution, left alone`);
      }
      return undefined;
    }
    if (recordText !== undefined) await rename(recordPath, `${recordPath}.corrupt`);
    const how = recordText === undefined ? 'missing' : 'unreadable (kept as execution.json.corrupt)';
    const rebuilt = recordFromHistory(name, events, this.#context.now());
    const note = `execution.json was ${how}; rebuilt from history.jsonl`;
    await writeFileAtomic(recordPath, formatRecord(rebuilt));
    this.#context.repaired(`${relative}/execution.json`);
    this.#context.note(
      `${relative}/execution.json: ${note}${rebuilt.status === 'RUNNING' ? '' : ` (${rebuilt.status})`}`,
    );
    const state = this.#register(name, rebuilt);
    Object.assign(state, { events, nextId, rebuiltNote: note });
    return rebuilt.status === 'RUNNING' ? state : undefined;
  }

  /** A run left RUNNING: finished as its history proves, else INTERRUPTED with an event saying where. */
  async #settleRunning(state: ExecutionState): Promise<void> {
    const { name } = state.record;
    const events = state.events ?? [];
    const { rebuiltNote } = state;
    const outcome = outcomeFromHistory(events);
    if (outcome) {
      state.record = { ...state.record, ...outcome };
      await writeFileAtomic(state.recordPath, formatRecord(state.record));
      this.#context.repaired(`executions/${name}/execution.json`);
      this.#context.note(`executions/${name}: its history shows it ended ${outcome.status}; record updated`);
      return;
    }
    const cause = [`stepline stopped while this run was in flight (at ${whereInFlight(events)})`, rebuiltNote]
      .filter((part) => part !== undefined)
      .join('; ');
    // The last moment the run is known to have been alive.
    const lastSeen = events.at(-1)?.timestamp ?? state.record.startDate;
    await this.appendHistory(name, [
      { type: 'ExecutionInterrupted', timestamp: this.#context.now(), error: INTERRUPTED_ERROR, cause },
    ]);
    state.record = {
      ...state.record,
      status: 'INTERRUPTED',
      error: INTERRUPTED_ERROR,
      cause,
      stopDate: lastSeen,
    };
    await writeFileAtomic(state.recordPath, formatRecord(state.record));
    this.#context.report.interrupted.push(name);
    this.#context.note(`executions/${name}: ${cause}; marked INTERRUPTED`);
  }

  /** Before the first append to a run loaded from disk: its history read back, a torn last line cut. */
  async #readForAppend(state: ExecutionState): Promise<void> {
    const { events, nextId } = await this.#readWithRepair(state.record.name);
    state.events = events;
    state.nextId = nextId;
  }

  /** A history read back with its torn last line cut (told to the recovery report). */
  async #readWithRepair(name: string): Promise<{ events: HistoryEvent[]; nextId: number }> {
    const relative = `executions/${name}/history.jsonl`;
    const contents = await readJournal(join(this.#root, name, 'history.jsonl'));
    reportJournal(this.#context, relative, contents);
    const { events, skipped, lastId } = parseEvents(contents.records);
    this.#reportSkipped(relative, skipped);
    return { events, nextId: lastId + 1 };
  }

  #reportSkipped(relative: string, reasons: string[]): void {
    this.#context.report.skippedLines += reasons.length;
    for (const reason of reasons) this.#context.note(`${relative}: ${reason}; skipped`);
  }

  #find(arnOrName: string): ExecutionState | undefined {
    return this.#byName.get(arnOrName) ?? this.#byName.get(this.#namesByArn.get(arnOrName) ?? '');
  }

  #state(arnOrName: string): ExecutionState {
    const state = this.#find(arnOrName);
    if (!state) throw new NotFoundError(`No execution ${arnOrName}`);
    return state;
  }
}

/** The events of a history's records, why others were skipped, and the highest id stored. */
function parseEvents(records: unknown[]): { events: HistoryEvent[]; skipped: string[]; lastId: number } {
  const events: HistoryEvent[] = [];
  const skipped: string[] = [];
  let lastId = 0;
  for (const [index, record] of records.entries()) {
    const id = (record as { id?: unknown }).id;
    if (typeof id === 'number' && Number.isInteger(id)) lastId = Math.max(lastId, id);
    const parsed = parseHistoryEvent(record);
    if ('event' in parsed) events.push(parsed.event);
    else skipped.push(`record ${index + 1} is ${parsed.skipped}`);
  }
  return { events, skipped, lastId };
}

function serializeEvent(event: NewHistoryEvent): string {
  const { id: _ignored, ...fields } = event as NewHistoryEvent & { id?: unknown };
  const parsed = NewHistoryEventSchema.safeParse(fields);
  if (!parsed.success) {
    throw new InvalidInputError(`Not a history event: ${z.prettifyError(parsed.error)}`);
  }
  // Written as given: fields the schema does not name (a newer writer's) are kept.
  return JSON.stringify(fields);
}

/** Puts `"id"` first in an event serialized without it. */
function withId(id: number, json: string): string {
  return `{"id":${id},${json.slice(1)}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareDates(a: string, b: string): number {
  return (Date.parse(a) || 0) - (Date.parse(b) || 0);
}
