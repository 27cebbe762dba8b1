import { createHash, randomUUID } from 'node:crypto';
import { closeSync, fdatasync, fsyncSync, openSync, writeSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as z from 'zod';
import {
  isNotFound,
  Journal,
  KeyedSerializer,
  readJournal,
  syncDirectory,
  TEMPORARY_SUFFIX,
  writeFileAtomic,
} from '#local/state/journal.ts';
import { ConflictError, InvalidInputError, NotFoundError } from '#shared/errors.ts';
import type { Logger } from '#shared/logger.ts';

/**
 * The local mode's durable state, one folder (`.stepline/` by default) a person can read:
 *
 * ```
 * lock                               the pid of the process that has the folder open
 * deliveries.jsonl                   every accepted webhook delivery, then its answer (append-only)
 * executions/<name>/execution.json   the run's record, replaced atomically on each change
 * executions/<name>/history.jsonl    the run's event history, one event per line (append-only)
 * outbox/<createdAt>-<id>.json       each published message (+ .eml for email topics)
 * builds/<build id>.log              each build's log, appended as lines arrive
 * ```
 *
 * Every promise a write method returns resolves only once its bytes are on disk (fsync), so whatever
 * stepline has acknowledged survives a crash. {@link LocalStore.open} repairs what a crash can leave: a
 * half-written last line, an unreadable execution.json, runs that were in flight.
 */

/** One pipeline run. */
export interface ExecutionRecord {
  executionArn: string;
  name: string;
  /** The state machine's name, e.g. `pipeline`. */
  stateMachine: string;
  status: ExecutionStatus;
  input: unknown;
  output?: unknown;
  error?: string;
  cause?: string;
  /** ISO 8601. */
  startDate: string;
  /** ISO 8601. */
  stopDate?: string;
  /** The interrupted execution (ARN or name) this one restarts. */
  redriveOf?: string;
}

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED' | 'INTERRUPTED';

/** One event of an execution's history, Step Functions-like. `id` counts from 1 per execution. */
export interface HistoryEvent {
  id: number;
  timestamp: string;
  type: string;
  [key: string]: unknown;
}

/** An accepted webhook delivery and, once sent, the answer it got. */
export interface Delivery {
  id: string;
  receivedAt: string;
  provider: string;
  headers: Record<string, string>;
  body: string;
  response?: { status: number; body: unknown };
}

/** A message published to a local topic (the stand-in for SNS). */
export interface OutboxMessage {
  id: string;
  topic: string;
  subject: string;
  body: string;
  createdAt: string;
  executionArn?: string;
}

export interface StoreChange {
  kind: 'execution' | 'history' | 'outbox' | 'delivery' | 'log';
  /** The execution ARN, the message or delivery id, or the build id. */
  id: string;
}

/** What {@link LocalStore.open} found and fixed. Empty lists and zero after a clean stop. */
export interface RecoveryReport {
  /** Lines of .jsonl files that could not be read (a torn last line, or corruption) and were skipped. */
  skippedLines: number;
  /** Names of the executions marked INTERRUPTED by this open. */
  interrupted: string[];
  /** Files (relative to the store's folder) this open rewrote, cut or rebuilt. */
  repaired: string[];
  /** One sentence per thing found or done, for a person. */
  notes: string[];
}

export interface LocalStoreOptions {
  /** Told about every repair made on open. */
  logger?: Pick<Logger, 'warn'>;
  clock?: () => Date;
}

/**
 * A run with that name (or ARN) already exists. Its `name` is Step Functions' own `ExecutionAlreadyExists`,
 * so the code that starts runs treats the local and the cloud refusal alike: "already started".
 */
export class ExecutionAlreadyExistsError extends ConflictError {
  override readonly name = 'ExecutionAlreadyExists';
  readonly executionName: string;

  constructor(executionName: string) {
    super(`An execution named ${executionName} already exists`);
    this.executionName = executionName;
  }
}

/** Another live process has the store's folder open. */
export class StoreInUseError extends ConflictError {}

/** The `error` of a run that was in flight when stepline stopped. */
export const INTERRUPTED_ERROR = 'Stepline.Interrupted';

/** Step Functions' execution name limit, kept so that a local name is also a valid cloud name. */
const NAME_MAX_LENGTH = 80;
/** Build log files kept open at once; the least recently written is closed beyond that. */
const OPEN_LOGS_MAX = 64;
const LOG_SYNC_INTERVAL_MS = 1000;
/** Header names whose values are secrets or signatures: stored as `[redacted]`, never on disk. */
const SECRET_HEADER = /token|signature|secret|authorization|cookie|password|api[-_]?key/i;
const REDACTED = '[redacted]';

const STATUSES = ['RUNNING', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED', 'INTERRUPTED'] as const;

const ExecutionRecordSchema = z.looseObject({
  executionArn: z.string().min(1),
  name: z.string().min(1),
  stateMachine: z.string(),
  status: z.enum(STATUSES),
  input: z.unknown(),
  output: z.unknown().optional(),
  error: z.string().optional(),
  cause: z.string().optional(),
  startDate: z.string(),
  stopDate: z.string().optional(),
  redriveOf: z.string().optional(),
});

const HistoryEventSchema = z.looseObject({
  id: z.number().int().positive(),
  timestamp: z.string(),
  type: z.string().min(1),
});

const DeliveryFields = {
  id: z.string().min(1),
  receivedAt: z.string(),
  provider: z.string(),
  headers: z.record(z.string(), z.string()),
  body: z.string(),
};
const DeliverySchema = z.object(DeliveryFields);
const ResponseSchema = z.object({ status: z.number().int(), body: z.unknown() });
const DeliveryLineSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('DeliveryReceived'), ...DeliveryFields }),
  z.object({
    type: z.literal('DeliveryAnswered'),
    id: z.string(),
    answeredAt: z.string(),
    response: ResponseSchema,
  }),
]);

const OutboxMessageSchema = z.object({
  id: z.string().min(1),
  topic: z.string().min(1),
  subject: z.string(),
  body: z.string(),
  createdAt: z.string(),
  executionArn: z.string().optional(),
});

interface ExecutionState {
  record: ExecutionRecord;
  events: HistoryEvent[];
  /** The id the next appended event gets. */
  nextId: number;
  journal: Journal;
  recordPath: string;
}

interface BuildLog {
  fd: number;
  dirty: boolean;
}

/** Folders open in this process, so that a stale lock holding this process's own pid is told apart. */
const openDirectories = new Set<string>();

/**
 * The local mode's durable state. Open one per folder and process; every write resolves once durable.
 *
 * @example
 * ```ts
 * const store = await LocalStore.open('.stepline');
 * await store.recordDelivery({ id, receivedAt, provider: 'github', headers, body }); // before answering
 * await store.createExecution({ executionArn, name, stateMachine: 'pipeline', status: 'RUNNING', input, startDate });
 * await store.appendHistory(executionArn, [{ type: 'ExecutionStarted', timestamp, input }]);
 * ```
 */
export class LocalStore {
  readonly dir: string;
  /** What opening found and fixed (see {@link RecoveryReport}). */
  readonly recoveryReport: RecoveryReport = { skippedLines: 0, interrupted: [], repaired: [], notes: [] };

  readonly #clock: () => Date;
  readonly #logger: Pick<Logger, 'warn'> | undefined;
  readonly #executions = new Map<string, ExecutionState>();
  readonly #namesByArn = new Map<string, string>();
  /** Names whose creation is under way, so two concurrent creations cannot both succeed. */
  readonly #reserved = new Set<string>();
  /** Names whose execution.json this open rebuilt from history. */
  readonly #rebuilt = new Set<string>();
  readonly #deliveries: Delivery[] = [];
  readonly #deliveryJournal: Journal;
  readonly #outbox: OutboxMessage[] = [];
  #lastOutboxTime = 0;
  readonly #logs = new Map<string, BuildLog>();
  #logsCreated = false;
  #logTimer: NodeJS.Timeout | undefined;
  readonly #wholeFiles = new KeyedSerializer();
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #listeners = new Set<(change: StoreChange) => void>();
  #closed = false;

  private constructor(dir: string, options: LocalStoreOptions) {
    this.dir = dir;
    this.#clock = options.clock ?? (() => new Date());
    this.#logger = options.logger;
    this.#deliveryJournal = new Journal(join(dir, 'deliveries.jsonl'));
  }

  /**
   * Opens (creating if needed) the store in `dir`, loads it and recovers from a crash: torn last lines are
   * skipped, unreadable execution.json files rebuilt from history.jsonl, runs left RUNNING finished as
   * their history proves or marked INTERRUPTED. Never throws over content it can skip or repair; throws
   * {@link StoreInUseError} when another live process has the folder open.
   */
  static async open(dir: string, options: LocalStoreOptions = {}): Promise<LocalStore> {
    const absolute = resolve(dir);
    for (const folder of ['executions', 'outbox', 'builds']) {
      await mkdir(join(absolute, folder), { recursive: true });
    }
    await acquireLock(absolute);
    const store = new LocalStore(absolute, options);
    try {
      await store.#load();
    } catch (error) {
      await releaseLock(absolute);
      throw error;
    }
    store.#logTimer = setInterval(() => store.#syncLogs(), LOG_SYNC_INTERVAL_MS);
    store.#logTimer.unref();
    return store;
  }

  // ---- deliveries ----

  /**
   * Records an accepted delivery durably. Call it before sending the HTTP answer: once it resolves, the
   * delivery survives a crash. Header values that are secrets or signatures are stored as `[redacted]`.
   */
  async recordDelivery(delivery: Omit<Delivery, 'response'>): Promise<void> {
    this.#assertOpen();
    const parsed = DeliverySchema.safeParse(delivery);
    if (!parsed.success) throw new InvalidInputError(`Not a delivery: ${z.prettifyError(parsed.error)}`);
    const stored: Delivery = { ...parsed.data, headers: redactHeaders(parsed.data.headers) };
    const line = `${JSON.stringify({ type: 'DeliveryReceived', ...stored })}\n`;
    return this.#track(async () => {
      await this.#deliveryJournal.append({
        render: () => line,
        committed: () => this.#deliveries.push(stored),
      });
      this.#emit({ kind: 'delivery', id: stored.id });
    });
  }

  /** Records the answer sent for a delivery (the latest delivery with that id). */
  async recordDeliveryResponse(id: string, response: Delivery['response']): Promise<void> {
    this.#assertOpen();
    const parsed = ResponseSchema.safeParse(response);
    if (!parsed.success) throw new InvalidInputError(`Not a response: ${z.prettifyError(parsed.error)}`);
    const delivery = this.#deliveries.findLast((candidate) => candidate.id === id);
    if (!delivery) throw new NotFoundError(`No delivery ${id} was recorded`);
    const answered = parsed.data;
    const line = `${JSON.stringify({ type: 'DeliveryAnswered', id, answeredAt: this.#now(), response: answered })}\n`;
    return this.#track(async () => {
      await this.#deliveryJournal.append({
        render: () => line,
        committed: () => {
          delivery.response = answered;
        },
      });
      this.#emit({ kind: 'delivery', id });
    });
  }

  /** The recorded deliveries, newest first. */
  deliveries(): Delivery[] {
    return this.#deliveries.toReversed().map((delivery) => ({ ...delivery }));
  }

  // ---- executions ----

  /** Creates a run. Throws {@link ExecutionAlreadyExistsError} when its name (or ARN) is taken. */
  async createExecution(record: ExecutionRecord): Promise<void> {
    this.#assertOpen();
    validateExecutionName(record.name);
    const parsed = ExecutionRecordSchema.safeParse(record);
    if (!parsed.success) throw new InvalidInputError(`Not an execution: ${z.prettifyError(parsed.error)}`);
    const { name, executionArn } = record;
    if (this.#executions.has(name) || this.#reserved.has(name) || this.#namesByArn.has(executionArn)) {
      throw new ExecutionAlreadyExistsError(name);
    }
    // What is kept in memory is exactly what reading the file back gives.
    const stored = JSON.parse(JSON.stringify(record)) as ExecutionRecord;
    this.#reserved.add(name);
    return this.#track(async () => {
      try {
        const folder = join(this.dir, 'executions', name);
        try {
          await mkdir(folder);
        } catch (error) {
          // A name differing only in case on a case-insensitive file system.
          if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new ExecutionAlreadyExistsError(name);
          throw error;
        }
        const historyPath = join(folder, 'history.jsonl');
        await writeFile(historyPath, '', { flag: 'a' });
        const recordPath = join(folder, 'execution.json');
        // Also makes the folder's entries (history.jsonl, execution.json) durable.
        await writeFileAtomic(recordPath, formatRecord(stored));
        await syncDirectory(join(this.dir, 'executions'));
        this.#executions.set(name, {
          record: stored,
          events: [],
          nextId: 1,
          journal: new Journal(historyPath),
          recordPath,
        });
        this.#namesByArn.set(executionArn, name);
      } finally {
        this.#reserved.delete(name);
      }
      this.#emit({ kind: 'execution', id: executionArn });
    });
  }

  /**
   * Appends events to a run's history, durably, giving them the next ids (1, 2, … per run) in the order
   * the calls were made. Concurrent calls are written one after another, never interleaved.
   */
  async appendHistory(executionArn: string, events: Omit<HistoryEvent, 'id'>[]): Promise<void> {
    this.#assertOpen();
    const state = this.#state(executionArn);
    const serialized = events.map(serializeEvent);
    if (serialized.length === 0) return;
    let appended: HistoryEvent[] = [];
    let firstId = 0;
    return this.#track(async () => {
      await state.journal.append({
        render: () => {
          firstId = state.nextId;
          appended = serialized.map((json) => JSON.parse(withId(state.nextId++, json)) as HistoryEvent);
          return appended.map((event) => `${JSON.stringify(event)}\n`).join('');
        },
        committed: () => state.events.push(...appended),
        failed: () => {
          state.nextId = firstId;
        },
      });
      this.#emit({ kind: 'history', id: state.record.executionArn });
    });
  }

  /** Ends a RUNNING run with its outcome; `stopDate` defaults to now. A run ends once (ConflictError). */
  async finishExecution(
    executionArn: string,
    patch: Pick<ExecutionRecord, 'status' | 'output' | 'error' | 'cause' | 'stopDate'>,
  ): Promise<void> {
    this.#assertOpen();
    const state = this.#state(executionArn);
    if (!STATUSES.includes(patch.status) || patch.status === 'RUNNING') {
      throw new InvalidInputError(`A run cannot finish as ${String(patch.status)}`);
    }
    return this.#track(async () => {
      await this.#wholeFiles.run(state.recordPath, async () => {
        if (state.record.status !== 'RUNNING') {
          throw new ConflictError(`Execution ${state.record.name} already ended as ${state.record.status}`);
        }
        const next = JSON.parse(
          JSON.stringify({ ...state.record, ...patch, stopDate: patch.stopDate ?? this.#now() }),
        ) as ExecutionRecord;
        await writeFileAtomic(state.recordPath, formatRecord(next));
        state.record = next;
      });
      this.#emit({ kind: 'execution', id: state.record.executionArn });
    });
  }

  /** A run by its ARN or its name. */
  execution(arnOrName: string): ExecutionRecord | undefined {
    const state = this.#find(arnOrName);
    return state && { ...state.record };
  }

  /** Every run, newest first (by start date, then name). */
  executions(): ExecutionRecord[] {
    return [...this.#executions.values()]
      .map((state) => ({ ...state.record }))
      .sort((a, b) => compareDates(b.startDate, a.startDate) || compare(b.name, a.name));
  }

  /** A run's history (by ARN or name), oldest first; empty for an unknown run. */
  history(executionArn: string): HistoryEvent[] {
    return [...(this.#find(executionArn)?.events ?? [])];
  }

  /**
   * A new execution name for restarting `name`: the original run's name (following `redriveOf` back)
   * with the first free `-r<n>` suffix, within 80 characters. It is free now; it is taken by the
   * {@link createExecution} that uses it.
   */
  restartName(name: string): string {
    let original = this.#find(name)?.record;
    const seen = new Set<string>();
    while (original?.redriveOf !== undefined && !seen.has(original.name)) {
      seen.add(original.name);
      const parent = this.#find(original.redriveOf)?.record;
      if (!parent) break;
      original = parent;
    }
    const base = original?.name ?? name;
    for (let attempt = 1; ; attempt += 1) {
      const suffix = `-r${attempt}`;
      const candidate = `${base.slice(0, NAME_MAX_LENGTH - suffix.length)}${suffix}`;
      if (!this.#executions.has(candidate) && !this.#reserved.has(candidate)) return candidate;
    }
  }

  // ---- build logs ----

  /** The file a build's log is written to: `<dir>/builds/<safe id>.log`. */
  buildLogPath(buildId: string): string {
    if (buildId === '') throw new InvalidInputError('A build id is required');
    return join(this.dir, 'builds', `${safeFileName(buildId)}.log`);
  }

  /**
   * Appends to a build's log file. The text goes to the operating system at once (a crash of the process
   * loses nothing); it is fsynced every second and on close. Nothing is kept in memory.
   */
  appendBuildLog(buildId: string, text: string): void {
    this.#assertOpen();
    let log = this.#logs.get(buildId);
    if (log) {
      // Most recently written last, so the first is the one to close when too many are open.
      this.#logs.delete(buildId);
    } else {
      if (this.#logs.size >= OPEN_LOGS_MAX) this.#closeOldestLog();
      log = { fd: openSync(this.buildLogPath(buildId), 'a'), dirty: false };
      this.#logsCreated = true;
    }
    this.#logs.set(buildId, log);
    const bytes = Buffer.from(text, 'utf8');
    for (let offset = 0; offset < bytes.length; ) offset += writeSync(log.fd, bytes, offset);
    log.dirty = true;
    this.#emit({ kind: 'log', id: buildId });
  }

  // ---- outbox ----

  /**
   * Publishes a message to the local outbox: `outbox/<createdAt>-<id>.json`, and with `email` also an
   * RFC 5322 `.eml` beside it (written first, so a listed message always has its email).
   */
  async addOutbox(
    message: Omit<OutboxMessage, 'id' | 'createdAt'>,
    options: { email?: boolean } = {},
  ): Promise<OutboxMessage> {
    this.#assertOpen();
    const time = Math.max(this.#clock().getTime(), this.#lastOutboxTime + 1);
    this.#lastOutboxTime = time;
    const parsed = OutboxMessageSchema.safeParse({
      ...message,
      id: randomUUID(),
      createdAt: new Date(time).toISOString(),
    });
    if (!parsed.success) throw new InvalidInputError(`Not a message: ${z.prettifyError(parsed.error)}`);
    const stored = parsed.data;
    const base = join(this.dir, 'outbox', `${stored.createdAt.replaceAll(':', '-')}-${stored.id}`);
    return this.#track(async () => {
      if (options.email) await writeFileAtomic(`${base}.eml`, renderEmail(stored));
      await writeFileAtomic(`${base}.json`, `${JSON.stringify(stored, null, 2)}\n`);
      this.#outbox.push(stored);
      this.#emit({ kind: 'outbox', id: stored.id });
      return { ...stored };
    });
  }

  /** The published messages, newest first. */
  outbox(): OutboxMessage[] {
    return this.#outbox.toReversed().map((message) => ({ ...message }));
  }

  // ---- changes and lifecycle ----

  /** Calls `listener` after each change is written. Returns the function that unsubscribes. */
  subscribe(listener: (change: StoreChange) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Waits for the writes under way, syncs and closes the build logs, and releases the folder. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
    clearInterval(this.#logTimer);
    for (const log of this.#logs.values()) closeLog(log);
    this.#logs.clear();
    if (this.#logsCreated) await syncDirectory(join(this.dir, 'builds'));
    this.#listeners.clear();
    await releaseLock(this.dir);
  }

  // ---- internals ----

  #assertOpen(): void {
    if (this.#closed) throw new ConflictError(`The local store in ${this.dir} is closed`);
  }

  #now(): string {
    return this.#clock().toISOString();
  }

  #track<T>(work: () => Promise<T>): Promise<T> {
    const promise = work();
    this.#inFlight.add(promise);
    const forget = () => this.#inFlight.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  #emit(change: StoreChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch (error) {
        this.#logger?.warn('A store change listener threw', { error, change });
      }
    }
  }

  #find(arnOrName: string): ExecutionState | undefined {
    return this.#executions.get(arnOrName) ?? this.#executions.get(this.#namesByArn.get(arnOrName) ?? '');
  }

  #state(arnOrName: string): ExecutionState {
    const state = this.#find(arnOrName);
    if (!state) throw new NotFoundError(`No execution ${arnOrName}`);
    return state;
  }

  #closeOldestLog(): void {
    const [oldest] = this.#logs;
    if (!oldest) return;
    this.#logs.delete(oldest[0]);
    closeLog(oldest[1]);
  }

  #syncLogs(): void {
    for (const log of this.#logs.values()) {
      if (!log.dirty) continue;
      log.dirty = false;
      // A log closed meanwhile was fsynced by closeLog; the error of a closed descriptor is moot.
      fdatasync(log.fd, () => undefined);
    }
    if (this.#logsCreated) {
      this.#logsCreated = false;
      syncDirectory(join(this.dir, 'builds')).catch(() => undefined);
    }
  }

  #note(note: string): void {
    this.recoveryReport.notes.push(note);
    this.#logger?.warn('Local state recovered', { note });
  }

  #repaired(path: string): void {
    if (!this.recoveryReport.repaired.includes(path)) this.recoveryReport.repaired.push(path);
  }

  async #load(): Promise<void> {
    await this.#loadDeliveries();
    const executions = join(this.dir, 'executions');
    for (const entry of await readdir(executions, { withFileTypes: true })) {
      if (entry.isDirectory()) await this.#loadExecution(entry.name);
    }
    await this.#loadOutbox();
    for (const state of this.#executions.values()) {
      if (state.record.status === 'RUNNING') await this.#settleRunning(state);
    }
  }

  async #readJournal(relativePath: string): Promise<unknown[]> {
    const contents = await readJournal(join(this.dir, relativePath));
    for (const { line, text } of contents.skipped) {
      this.#note(`${relativePath}: line ${line} is not a JSON object and was skipped: ${preview(text)}`);
    }
    this.recoveryReport.skippedLines += contents.skipped.length;
    if (contents.torn !== undefined) {
      this.recoveryReport.skippedLines += 1;
      this.#note(
        `${relativePath}: the last line was cut short by a crash and was skipped (kept in ${relativePath}.torn): ${preview(contents.torn)}`,
      );
    } else if (contents.repaired) {
      this.#note(`${relativePath}: the last line lacked its newline; added`);
    }
    if (contents.repaired) this.#repaired(relativePath);
    return contents.records;
  }

  async #loadDeliveries(): Promise<void> {
    const path = join(this.dir, 'deliveries.jsonl');
    await writeFile(path, '', { flag: 'a' });
    await syncDirectory(this.dir);
    const records = await this.#readJournal('deliveries.jsonl');
    records.forEach((record, index) => {
      const parsed = DeliveryLineSchema.safeParse(record);
      if (!parsed.success) {
        this.recoveryReport.skippedLines += 1;
        this.#note(`deliveries.jsonl: record ${index + 1} is not a delivery and was skipped`);
        return;
      }
      const line = parsed.data;
      if (line.type === 'DeliveryReceived') {
        const { type: _type, ...delivery } = line;
        this.#deliveries.push(delivery);
      } else {
        const delivery = this.#deliveries.findLast((candidate) => candidate.id === line.id);
        if (delivery) delivery.response = line.response;
      }
    });
  }

  async #loadExecution(name: string): Promise<void> {
    const folder = join(this.dir, 'executions', name);
    const relative = `executions/${name}`;
    await removeTemporaryFiles(folder);
    const events: HistoryEvent[] = [];
    for (const [index, record] of (await this.#readJournal(`${relative}/history.jsonl`)).entries()) {
      const parsed = HistoryEventSchema.safeParse(record);
      if (parsed.success) events.push(parsed.data as HistoryEvent);
      else {
        this.recoveryReport.skippedLines += 1;
        this.#note(`${relative}/history.jsonl: record ${index + 1} is not a history event and was skipped`);
      }
    }
    const recordPath = join(folder, 'execution.json');
    let recordText: string | undefined;
    try {
      recordText = await readFile(recordPath, 'utf8');
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    let record = recordText === undefined ? undefined : parseRecord(recordText, name);
    if (record === undefined) {
      if (recordText === undefined && events.length === 0) {
        const entries = await readdir(folder);
        if (entries.every((entry) => entry === 'history.jsonl')) {
          // The process stopped inside createExecution, before it resolved: the run was never accepted.
          await rm(folder, { recursive: true, force: true });
          this.#note(`${relative}: an execution whose creation never completed was removed`);
        } else {
          this.#note(`${relative}: neither execution.json nor history; not an execution, left alone`);
        }
        return;
      }
      if (recordText !== undefined) await rename(recordPath, `${recordPath}.corrupt`);
      record = recordFromHistory(name, events, this.#now());
      record.cause = `execution.json was ${recordText === undefined ? 'missing' : 'unreadable (kept as execution.json.corrupt)'}; rebuilt from history.jsonl`;
      await writeFileAtomic(recordPath, formatRecord(record));
      this.#rebuilt.add(name);
      this.#repaired(`${relative}/execution.json`);
      this.#note(`${relative}/execution.json: ${record.cause}`);
    }
    const lastId = events.reduce((max, event) => Math.max(max, event.id), 0);
    this.#executions.set(name, {
      record,
      events,
      nextId: lastId + 1,
      journal: new Journal(join(folder, 'history.jsonl')),
      recordPath,
    });
    this.#namesByArn.set(record.executionArn, name);
  }

  /** A run left RUNNING: finished as its history proves, else INTERRUPTED with an event saying where. */
  async #settleRunning(state: ExecutionState): Promise<void> {
    const { name } = state.record;
    const rebuilt = this.#rebuilt.has(name) ? state.record.cause : undefined;
    const outcome = outcomeFromHistory(state.events);
    if (outcome) {
      const { cause: _rebuiltCause, ...known } = state.record;
      state.record = { ...(rebuilt === undefined ? state.record : known), ...outcome };
      await writeFileAtomic(state.recordPath, formatRecord(state.record));
      this.#repaired(`executions/${name}/execution.json`);
      this.#note(`executions/${name}: its history shows it ended ${outcome.status}; record updated`);
      return;
    }
    const cause = [
      `stepline stopped while this run was in flight (at ${whereInFlight(state.events)})`,
      rebuilt,
    ]
      .filter((part) => part !== undefined)
      .join('; ');
    // The last moment the run is known to have been alive.
    const lastSeen = state.events.at(-1)?.timestamp ?? state.record.startDate;
    await this.appendHistory(name, [
      {
        type: 'ExecutionInterrupted',
        timestamp: this.#now(),
        executionInterruptedEventDetails: { error: INTERRUPTED_ERROR, cause },
      },
    ]);
    state.record = {
      ...state.record,
      status: 'INTERRUPTED',
      error: INTERRUPTED_ERROR,
      cause,
      stopDate: lastSeen,
    };
    await writeFileAtomic(state.recordPath, formatRecord(state.record));
    this.recoveryReport.interrupted.push(name);
    this.#note(`executions/${name}: ${cause}; marked INTERRUPTED`);
  }

  async #loadOutbox(): Promise<void> {
    const folder = join(this.dir, 'outbox');
    await removeTemporaryFiles(folder);
    for (const file of (await readdir(folder)).filter((entry) => entry.endsWith('.json')).sort()) {
      const parsed = OutboxMessageSchema.safeParse(parseJson(await readFile(join(folder, file), 'utf8')));
      if (parsed.success) this.#outbox.push(parsed.data);
      else this.#note(`outbox/${file} is not a message and was skipped`);
    }
    this.#outbox.sort((a, b) => compare(a.createdAt, b.createdAt) || compare(a.id, b.id));
    const last = this.#outbox.at(-1);
    if (last) this.#lastOutboxTime = Date.parse(last.createdAt) || 0;
  }
}

// ---- the lock ----

async function acquireLock(dir: string): Promise<void> {
  const path = join(dir, 'lock');
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx' });
      openDirectories.add(dir);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && pid > 0 && isHeld(pid, dir)) {
      throw new StoreInUseError(
        `${dir} is in use by process ${pid}; if no stepline is running, delete ${path} and start again`,
      );
    }
    // A lock left by a process that is gone (killed or crashed): take it over.
    await unlink(path).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
  }
  throw new StoreInUseError(`${dir} is being opened by another process`);
}

function isHeld(pid: number, dir: string): boolean {
  if (pid === process.pid) return openDirectories.has(dir);
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function releaseLock(dir: string): Promise<void> {
  openDirectories.delete(dir);
  await unlink(join(dir, 'lock')).catch(() => undefined);
}

// ---- records and history ----

function validateExecutionName(name: unknown): void {
  const forbidden = /[\s<>{}[\]?*"#%\\^|~`$&,;:/]/u;
  const valid =
    typeof name === 'string' &&
    name.length >= 1 &&
    name.length <= NAME_MAX_LENGTH &&
    name !== '.' &&
    name !== '..' &&
    !forbidden.test(name) &&
    ![...name].some((character) => isControl(character.codePointAt(0) ?? 0));
  if (!valid) {
    throw new InvalidInputError(
      `Execution name ${JSON.stringify(name)} is not valid: 1 to 80 characters, no whitespace, brackets, wildcards or any of " # % \\ ^ | ~ \` $ & , ; : /`,
    );
  }
}

function isControl(code: number): boolean {
  return code <= 0x1f || (code >= 0x7f && code <= 0x9f);
}

function formatRecord(record: ExecutionRecord): string {
  return `${JSON.stringify(record, null, 2)}\n`;
}

function parseRecord(text: string, name: string): ExecutionRecord | undefined {
  const parsed = ExecutionRecordSchema.safeParse(parseJson(text));
  return parsed.success && parsed.data.name === name ? (parsed.data as ExecutionRecord) : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function serializeEvent(event: Omit<HistoryEvent, 'id'>): string {
  const { id: _ignored, ...fields } = event as Record<string, unknown>;
  if (typeof fields.type !== 'string' || fields.type === '' || typeof fields.timestamp !== 'string') {
    throw new InvalidInputError('A history event needs a type and an ISO timestamp');
  }
  return JSON.stringify(fields);
}

/** Puts `"id"` first in an event serialized without it. */
function withId(id: number, json: string): string {
  return `{"id":${id},${json.slice(1)}`;
}

type Fields = Record<string, unknown>;

function details(event: HistoryEvent, key: string): Fields {
  const value = event[key];
  return typeof value === 'object' && value !== null ? (value as Fields) : {};
}

function text(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A JSON string field of Step Functions' event details, or a value set directly on the event. */
function jsonField(direct: unknown, serialized: unknown): unknown {
  if (direct !== undefined) return direct;
  return typeof serialized === 'string' ? parseJson(serialized) : serialized;
}

/** An execution record rebuilt from its history: the ExecutionStarted event carries the input. */
function recordFromHistory(name: string, events: HistoryEvent[], now: string): ExecutionRecord {
  const started = events.find((event) => event.type === 'ExecutionStarted');
  const startedDetails = started ? details(started, 'executionStartedEventDetails') : {};
  const stateMachineArn = text(startedDetails.stateMachineArn ?? started?.stateMachineArn);
  const stateMachine = text(started?.stateMachine) ?? stateMachineArn?.split(':').at(-1) ?? 'unknown';
  const arnParts = stateMachineArn?.match(/^(arn:[^:]+:states:[^:]*:[^:]*:)stateMachine:(.+)$/);
  const executionArn =
    text(started?.executionArn ?? startedDetails.executionArn) ??
    (arnParts
      ? `${arnParts[1]}execution:${arnParts[2]}:${name}`
      : `arn:aws:states:local:000000000000:execution:${stateMachine}:${name}`);
  const redriveOf = text(started?.redriveOf ?? startedDetails.redriveOf);
  return {
    executionArn,
    name,
    stateMachine,
    status: 'RUNNING',
    input: jsonField(started?.input, startedDetails.input) ?? null,
    startDate: started?.timestamp ?? events[0]?.timestamp ?? now,
    ...(redriveOf === undefined ? {} : { redriveOf }),
  };
}

const TERMINAL_EVENTS: Record<string, Exclude<ExecutionStatus, 'RUNNING' | 'INTERRUPTED'>> = {
  ExecutionSucceeded: 'SUCCEEDED',
  ExecutionFailed: 'FAILED',
  ExecutionTimedOut: 'TIMED_OUT',
  ExecutionAborted: 'ABORTED',
  ExecutionTerminated: 'ABORTED',
};

/** The outcome a terminal event in the history proves (the record was not updated before a crash). */
function outcomeFromHistory(events: HistoryEvent[]): Partial<ExecutionRecord> | undefined {
  const end = events.findLast((event) => event.type in TERMINAL_EVENTS);
  const status = end && TERMINAL_EVENTS[end.type];
  if (!end || !status) return undefined;
  const key = `${end.type.charAt(0).toLowerCase()}${end.type.slice(1)}EventDetails`;
  const eventDetails = details(end, key);
  const outcome: Partial<ExecutionRecord> = { status, stopDate: end.timestamp };
  const output = jsonField(end.output, eventDetails.output);
  if (output !== undefined) outcome.output = output;
  const error = text(end.error ?? end.Error ?? eventDetails.error);
  if (error !== undefined) outcome.error = error;
  const cause = text(end.cause ?? end.Cause ?? eventDetails.cause);
  if (cause !== undefined) outcome.cause = cause;
  return outcome;
}

function stateName(event: HistoryEvent): string | undefined {
  const state = details(event, 'state');
  return text(
    details(event, 'stateEnteredEventDetails').name ??
      details(event, 'stateExitedEventDetails').name ??
      state.name ??
      event.stateName,
  );
}

/** The states entered and not exited when the history stops, else the last entered, else "the start". */
function whereInFlight(events: HistoryEvent[]): string {
  const inFlight: string[] = [];
  let lastEntered: string | undefined;
  for (const event of events) {
    const name = stateName(event);
    if (name === undefined) continue;
    if (event.type.endsWith('StateEntered')) {
      inFlight.push(name);
      lastEntered = name;
    } else if (event.type.endsWith('StateExited')) {
      const index = inFlight.lastIndexOf(name);
      if (index !== -1) inFlight.splice(index, 1);
    }
  }
  if (inFlight.length > 0) return inFlight.join(', ');
  return lastEntered ?? 'the start';
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareDates(a: string, b: string): number {
  return (Date.parse(a) || 0) - (Date.parse(b) || 0);
}

function preview(text: string): string {
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text);
}

// ---- files ----

async function removeTemporaryFiles(folder: string): Promise<void> {
  for (const entry of await readdir(folder)) {
    if (entry.endsWith(TEMPORARY_SUFFIX)) await unlink(join(folder, entry)).catch(() => undefined);
  }
}

function closeLog(log: BuildLog): void {
  try {
    fsyncSync(log.fd);
  } finally {
    closeSync(log.fd);
  }
}

/** A build id as a file name: unchanged when already safe, else made safe and told apart by a hash. */
function safeFileName(id: string): string {
  const safe = id
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^\.+/, '_')
    .slice(0, 120);
  return safe === id ? safe : `${safe}-${createHash('sha256').update(id).digest('hex').slice(0, 8)}`;
}

function redactHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).map(([name, value]) => [name, SECRET_HEADER.test(name) ? REDACTED : value]),
  );
}

// ---- email ----

/** An outbox message as an RFC 5322 email (UTF-8 plain text; the subject RFC 2047-encoded when needed). */
function renderEmail(message: OutboxMessage): string {
  const body = message.body.replace(/\r?\n/g, '\r\n');
  const lines = body.split('\r\n');
  // RFC 5322 limits a line to 998 octets; base64 keeps a body with longer lines valid.
  const tooLong = lines.some((line) => Buffer.byteLength(line, 'utf8') > 998);
  const ascii = /^[\x20-\x7e\t\r\n]*$/.test(body);
  const encoding = tooLong ? 'base64' : ascii ? '7bit' : '8bit';
  const topic = message.topic.toLowerCase().replace(/[^a-z0-9.-]+/g, '-') || 'topic';
  const headers = [
    'From: stepline <stepline@localhost>',
    `To: ${topic}@localhost`,
    `Subject: ${encodeHeaderText(message.subject)}`,
    `Date: ${new Date(message.createdAt).toUTCString().replace(/GMT$/, '+0000')}`,
    `Message-ID: <${message.id}@stepline.localhost>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${encoding}`,
  ];
  if (message.executionArn) headers.push(`X-Stepline-Execution: ${message.executionArn}`);
  const encodedBody = tooLong
    ? (Buffer.from(body, 'utf8')
        .toString('base64')
        .match(/.{1,76}/g)
        ?.join('\r\n') ?? '')
    : body;
  return `${headers.join('\r\n')}\r\n\r\n${encodedBody}\r\n`;
}

/**
 * A header value: as is when printable ASCII, else RFC 2047 encoded words (`=?UTF-8?B?…?=`), each at most
 * 75 characters and holding whole characters, folded onto continuation lines.
 */
function encodeHeaderText(value: string): string {
  const flat = value.replace(/[\r\n]+/g, ' ');
  if (/^[\x20-\x7e]*$/.test(flat)) return flat;
  // 42 bytes encode to 56 base64 characters: "Subject: " plus one word stays within 78.
  const words: string[] = [];
  let chunk = '';
  for (const character of flat) {
    if (Buffer.byteLength(chunk + character, 'utf8') > 42) {
      words.push(chunk);
      chunk = '';
    }
    chunk += character;
  }
  if (chunk !== '') words.push(chunk);
  return words.map((word) => `=?UTF-8?B?${Buffer.from(word, 'utf8').toString('base64')}?=`).join('\r\n ');
}
