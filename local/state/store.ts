import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BuildLogs } from '#local/state/build-logs.ts';
import type { RecoveryReport, StoreChange, StoreContext } from '#local/state/context.ts';
import { Deliveries, type Delivery } from '#local/state/deliveries.ts';
import { Executions } from '#local/state/executions.ts';
import { acquireLock, releaseLock, StoreInUseError } from '#local/state/lock.ts';
import { Outbox, type OutboxMessage } from '#local/state/outbox.ts';
import type { ExecutionRecord } from '#local/state/records.ts';
import type { HistoryEvent, NewHistoryEvent } from '#local/stepfunctions/history.ts';
import { ConflictError } from '#shared/errors.ts';
import type { Logger } from '#shared/logger.ts';
import { PRIVATE_DIR_MODE, tightenStateFolder } from './permissions.ts';

export type { RecoveryReport, StoreChange } from '#local/state/context.ts';
export type { Delivery } from '#local/state/deliveries.ts';
export type { OutboxMessage } from '#local/state/outbox.ts';
export {
  ExecutionAlreadyExistsError,
  ExecutionNotRedrivableError,
  type ExecutionRecord,
  type ExecutionStatus,
  INTERRUPTED_ERROR,
} from '#local/state/records.ts';
export type { HistoryEvent, NewHistoryEvent } from '#local/stepfunctions/history.ts';
export { StoreInUseError };

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
 * half-written last line, an unreadable execution.json, runs that were in flight. It reads the runs'
 * records only; histories, stored deliveries and messages are read when first asked for, so opening
 * does not grow with what is stored.
 */

export interface LocalStoreOptions {
  /** Told about every repair made on open. */
  logger?: Pick<Logger, 'warn'>;
  clock?: () => Date;
}

/**
 * The local mode's durable state. Open one per folder and process; every write resolves once durable.
 * A facade over its parts: executions and their histories, deliveries, the outbox and build logs.
 *
 * @example
 * ```ts
 * const store = await LocalStore.open('.stepline');
 * await store.recordDelivery({ id, receivedAt, provider: 'github', headers, body }); // before answering
 * await store.createExecution({ executionArn, name, stateMachine: 'pipeline', status: 'RUNNING', input, startDate });
 * await store.appendHistory(executionArn, [{ type: 'ExecutionStarted', timestamp, stateMachine: 'pipeline', input }]);
 * ```
 */
export class LocalStore {
  readonly dir: string;
  /**
   * What opening found and fixed (see {@link RecoveryReport}). Lines skipped in what is read on demand
   * (stored deliveries) are added when they are read.
   */
  readonly recoveryReport: RecoveryReport = { skippedLines: 0, interrupted: [], repaired: [], notes: [] };

  readonly #context: StoreContext;
  readonly #executions: Executions;
  readonly #deliveries: Deliveries;
  readonly #outbox: Outbox;
  #logs: BuildLogs | undefined;
  readonly #inFlight = new Set<Promise<unknown>>();
  readonly #listeners = new Set<(change: StoreChange) => void>();
  #closed = false;

  private constructor(dir: string, options: LocalStoreOptions) {
    this.dir = dir;
    const clock = options.clock ?? (() => new Date());
    const report = this.recoveryReport;
    const logger = options.logger;
    this.#context = {
      dir,
      report,
      logger,
      clock,
      now: () => clock().toISOString(),
      emit: (change) => this.#emit(change),
      note: (note) => {
        report.notes.push(note);
        logger?.warn('Local state recovered', { note });
      },
      repaired: (path) => {
        if (!report.repaired.includes(path)) report.repaired.push(path);
      },
    };
    this.#executions = new Executions(this.#context);
    this.#deliveries = new Deliveries(this.#context);
    this.#outbox = new Outbox(this.#context);
  }

  /**
   * Opens (creating if needed) the store in `dir` and recovers from a crash: torn last lines are cut,
   * unreadable execution.json files rebuilt from history.jsonl, runs left RUNNING finished as their
   * history proves or marked INTERRUPTED. Never throws over content it can skip or repair; throws
   * {@link StoreInUseError} when another live process has the folder open.
   */
  static async open(dir: string, options: LocalStoreOptions = {}): Promise<LocalStore> {
    const absolute = resolve(dir);
    await mkdir(absolute, { recursive: true, mode: PRIVATE_DIR_MODE });
    for (const folder of ['executions', 'outbox', 'builds']) {
      await mkdir(join(absolute, folder), { recursive: true, mode: PRIVATE_DIR_MODE });
    }
    await acquireLock(absolute);
    // A folder an older version left open to other users is closed before anything is read from it.
    await tightenStateFolder(absolute);
    const store = new LocalStore(absolute, options);
    try {
      await store.#deliveries.load();
      await store.#executions.load();
    } catch (error) {
      await releaseLock(absolute);
      throw error;
    }
    store.#logs = new BuildLogs(store.#context);
    return store;
  }

  // ---- deliveries ----

  /**
   * Records an accepted delivery durably. Call it before sending the HTTP answer: once it resolves, the
   * delivery survives a crash. Header values that are secrets or signatures are stored as `[redacted]`.
   */
  async recordDelivery(delivery: Omit<Delivery, 'response'>): Promise<void> {
    this.#assertOpen();
    return this.#track(this.#deliveries.record(delivery));
  }

  /** Records the answer sent for a delivery (the latest delivery with that id). */
  async recordDeliveryResponse(id: string, response: Delivery['response']): Promise<void> {
    this.#assertOpen();
    return this.#track(this.#deliveries.recordResponse(id, response));
  }

  /** The recorded deliveries, newest first. */
  deliveries(): Delivery[] {
    return this.#deliveries.list();
  }

  // ---- executions ----

  /** Creates a run. Throws ExecutionAlreadyExistsError when its name (or ARN) is taken. */
  async createExecution(record: ExecutionRecord): Promise<void> {
    this.#assertOpen();
    return this.#track(this.#executions.create(record));
  }

  /**
   * Appends events to a run's history, durably, giving them the next ids (1, 2, … per run) in the order
   * the calls were made. Concurrent calls are written one after another, never interleaved. Each event
   * must match the history schema (local/stepfunctions/history.ts).
   */
  async appendHistory(executionArn: string, events: NewHistoryEvent[]): Promise<void> {
    this.#assertOpen();
    return this.#track(this.#executions.appendHistory(executionArn, events));
  }

  /** Ends a RUNNING run with its outcome; `stopDate` defaults to now. A run ends once (ConflictError). */
  async finishExecution(
    executionArn: string,
    patch: Pick<ExecutionRecord, 'status' | 'output' | 'error' | 'cause' | 'stopDate'>,
  ): Promise<void> {
    this.#assertOpen();
    return this.#track(this.#executions.finish(executionArn, patch));
  }

  /**
   * Puts an ended run back to RUNNING for a redrive (its outcome cleared, `redriveCount` + 1, `redriveDate`
   * now), after `check` accepted the record as it is at that moment (it refuses by throwing).
   */
  async redriveExecution(
    executionArn: string,
    check: (record: ExecutionRecord) => void,
  ): Promise<ExecutionRecord> {
    this.#assertOpen();
    return this.#track(this.#executions.redrive(executionArn, check));
  }

  /** A run by its ARN or its name. */
  execution(arnOrName: string): ExecutionRecord | undefined {
    return this.#executions.get(arnOrName);
  }

  /** Every run, newest first (by start date, then name). */
  executions(): ExecutionRecord[] {
    return this.#executions.list();
  }

  /** A run's history (by ARN or name), oldest first; empty for an unknown run. */
  history(executionArn: string): HistoryEvent[] {
    return this.#executions.history(executionArn);
  }

  /**
   * A new execution name for restarting `name`: the original run's name (following `restartOf` back)
   * with the first free `-r<n>` suffix, within 80 characters.
   */
  restartName(name: string): string {
    return this.#executions.restartName(name);
  }

  // ---- build logs ----

  /** The file a build's log is written to: `<dir>/builds/<safe id>.log`. */
  buildLogPath(buildId: string): string {
    return this.#buildLogs().path(buildId);
  }

  /**
   * Appends to a build's log file. The text goes to the operating system at once (a crash of the process
   * loses nothing); it is fsynced every second and on close. Nothing is kept in memory.
   */
  appendBuildLog(buildId: string, text: string): void {
    this.#assertOpen();
    this.#buildLogs().append(buildId, text);
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
    return this.#track(this.#outbox.add(message, options));
  }

  /** The published messages, newest first. */
  outbox(): OutboxMessage[] {
    return this.#outbox.list();
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
    await this.#logs?.close();
    this.#listeners.clear();
    await releaseLock(this.dir);
  }

  #assertOpen(): void {
    if (this.#closed) throw new ConflictError(`The local store in ${this.dir} is closed`);
  }

  #buildLogs(): BuildLogs {
    if (!this.#logs) throw new ConflictError(`The local store in ${this.dir} is not open`);
    return this.#logs;
  }

  #track<T>(promise: Promise<T>): Promise<T> {
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
        this.#context.logger?.warn('A store change listener threw', { error, change });
      }
    }
  }
}
