import { randomBytes } from 'node:crypto';
import type { StateMachineDefinition as EngineDefinition } from 'aws-local-stepfunctions';
import { ExecutionNotRedrivableError, type ExecutionRecord, type LocalStore } from '#local/state/store.ts';
import {
  adaptToLocalEngine,
  listStates,
  localContextObject,
  type StateMachineDefinition,
} from '#local/stepfunctions/definition.ts';
import type { NewHistoryEvent } from '#local/stepfunctions/history.ts';
import {
  notRedrivableReason,
  replayedStates,
  replayKey,
  TaskResults,
  taskInputDigest,
} from '#local/stepfunctions/redrive.ts';
import { ConflictError, NotFoundError, TaskNoLongerWaitingError } from '#shared/errors.ts';
import type { TaskDecider } from '#shared/ports.ts';
import { SUPERSEDED_ERROR } from '#shared/release.ts';
import { forTerminal } from '#shared/text.ts';

/** What a Task's local binding receives besides its resolved Parameters. */
export interface TaskContext {
  executionArn: string;
  stateName: string;
  /** The iteration of the enclosing Map, when there is one. */
  mapIndex?: number;
  signal: AbortSignal;
  /** For `.waitForTaskToken`: waits for SendTaskSuccess/SendTaskFailure on this token. */
  waitForToken: (token: string, timeoutSeconds?: number) => Promise<unknown>;
}

/** A local stand-in for one service integration, bound by the Task's Resource ARN. */
export type TaskBinding = (input: Record<string, unknown>, context: TaskContext) => Promise<unknown>;

export interface LocalMachine {
  /** The deployed name, e.g. `stepline-local-pipeline`. */
  name: string;
  definition: StateMachineDefinition;
}

export interface LocalStepFunctionsOptions {
  store: LocalStore;
  region: string;
  account: string;
  machines: Record<string, LocalMachine>;
  bindings: Record<string, TaskBinding>;
  /** Told when an execution starts and ends (the "Execution Status Change" events). */
  onStatusChange: (record: ExecutionRecord) => void;
  /** Told of every history event as it is written. */
  onHistory?: (record: ExecutionRecord, event: NewHistoryEvent) => void;
}

type Waiter = {
  executionArn: string;
  /** A decision sent before the task began to wait (a Lambda that resumes its own token at once). */
  early?: { output: unknown } | { error: Error };
  resolve: (output: unknown) => void;
  reject: (error: Error) => void;
  timer?: NodeJS.Timeout;
};

/**
 * Task tokens: minted per `.waitForTaskToken` state entered (unguessable, 256 bits), resolved once by
 * SendTaskSuccess or SendTaskFailure. A token that was decided, timed out, or whose run ended answers as
 * Step Functions does (TaskDoesNotExist / TaskTimedOut), never twice.
 */
export class LocalTaskTokens implements TaskDecider {
  readonly #pending = new Map<string, Waiter | { executionArn: string; early?: Waiter['early'] }>();
  readonly #finished = new Map<string, 'timed-out' | 'not-waiting'>();

  mint(executionArn: string): string {
    const token = randomBytes(32).toString('base64url');
    this.#pending.set(token, { executionArn });
    return token;
  }

  wait(token: string, timeoutSeconds?: number): Promise<unknown> {
    const entry = this.#pending.get(token);
    if (!entry) return Promise.reject(new Error(`Unknown task token`));
    if ('early' in entry && entry.early) {
      this.#settle(token, 'not-waiting');
      return 'error' in entry.early ? Promise.reject(entry.early.error) : Promise.resolve(entry.early.output);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { executionArn: entry.executionArn, resolve, reject };
      if (timeoutSeconds !== undefined) {
        waiter.timer = setTimeout(() => {
          this.#settle(token, 'timed-out');
          reject(
            Object.assign(new Error('The task timed out waiting for a decision'), { name: 'States.Timeout' }),
          );
        }, timeoutSeconds * 1000);
      }
      this.#pending.set(token, waiter);
    });
  }

  async succeed(taskToken: string, output: unknown): Promise<void> {
    if (this.#decideEarly(taskToken, { output: structuredClone(output) })) return;
    this.#take(taskToken).resolve(structuredClone(output));
  }

  async fail(taskToken: string, error: string, cause: string): Promise<void> {
    const failure = Object.assign(new Error(cause), { name: error });
    if (this.#decideEarly(taskToken, { error: failure })) return;
    this.#take(taskToken).reject(failure);
  }

  /**
   * On AWS a token is valid from the moment the Task invokes its Lambda, so the Lambda may decide it
   * before the Task waits; here the decision is kept until then. Once only, like any decision.
   */
  #decideEarly(token: string, early: NonNullable<Waiter['early']>): boolean {
    const entry = this.#pending.get(token);
    if (!entry || 'resolve' in entry) return false;
    if ('early' in entry && entry.early) throw new TaskNoLongerWaitingError('not-waiting');
    this.#pending.set(token, { ...entry, early } as Waiter);
    return true;
  }

  /** Every token of a run that ended stops waiting. */
  endExecution(executionArn: string): void {
    for (const [token, entry] of this.#pending) {
      if (entry.executionArn === executionArn) this.#settle(token, 'not-waiting');
    }
  }

  /** The run a token belongs to, while it is pending. */
  executionOf(token: string): string | undefined {
    return this.#pending.get(token)?.executionArn;
  }

  /** How many tokens wait for a decision. */
  get waiting(): number {
    return [...this.#pending.values()].filter((entry) => 'resolve' in entry).length;
  }

  #take(token: string): Waiter {
    const entry = this.#pending.get(token);
    if (entry && 'resolve' in entry) {
      this.#settle(token, 'not-waiting');
      return entry;
    }
    const finished = this.#finished.get(token);
    throw new TaskNoLongerWaitingError(finished ?? (entry ? 'not-waiting' : 'invalid'));
  }

  #settle(token: string, how: 'timed-out' | 'not-waiting'): void {
    const entry = this.#pending.get(token);
    if (entry && 'timer' in entry && entry.timer) clearTimeout(entry.timer);
    this.#pending.delete(token);
    this.#finished.set(token, how);
  }
}

/** Why a run was stopped from outside (StopExecution's error and cause), rather than by stepline stopping (INTERRUPTED). */
class StopRequest extends Error {
  readonly error: string;

  constructor(error: string, cause: string) {
    super(cause);
    this.error = error;
  }
}

/** Keys whose values never reach the stored history. */
const SECRET_KEYS = /^(taskToken|token)$/i;

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, SECRET_KEYS.test(key) ? '[redacted]' : redact(item)]),
    );
  }
  return value;
}

/** A JSONPath of the plain `$.a.b` form, read from a value. */
function readPath(value: unknown, path: string): unknown {
  return path
    .replace(/^\$\.?/, '')
    .split('.')
    .filter(Boolean)
    .reduce<unknown>(
      (at, key) => (at !== null && typeof at === 'object' ? (at as Record<string, unknown>)[key] : undefined),
      value,
    );
}

/**
 * Runs the project's state machines with aws-local-stepfunctions, each Task bound by its Resource to a
 * local stand-in, and keeps every execution and its history in the local store as it happens.
 */
export class LocalStepFunctions {
  readonly tokens = new LocalTaskTokens();
  readonly #options: LocalStepFunctionsOptions;
  readonly #running = new Map<string, { abort: AbortController; done: Promise<ExecutionRecord> }>();
  /** Starts and redrives between their first write and their entry in #running: stopAll waits for them. */
  readonly #starting = new Set<Promise<unknown>>();
  /** Set by stopAll: no execution starts after it. */
  #stopReason: string | undefined;

  constructor(options: LocalStepFunctionsOptions) {
    // The definitions are validated once, at start-up (validateMachines), so each run skips the validator
    // (asl-validator on ajv: ~100 ms of blocked event loop per execution otherwise).
    this.#options = options;
  }

  stateMachineArn(key: string): string {
    const machine = this.#machine(key);
    return `arn:aws:states:${this.#options.region}:${this.#options.account}:stateMachine:${machine.name}`;
  }

  executionArn(key: string, name: string): string {
    const machine = this.#machine(key);
    return `arn:aws:states:${this.#options.region}:${this.#options.account}:execution:${machine.name}:${name}`;
  }

  /**
   * Starts an execution and returns once it is recorded; it runs on in the background.
   * Throws the store's ExecutionAlreadyExists for a name already used.
   */
  async start(key: string, name: string, input: unknown, restartOf?: string): Promise<ExecutionRecord> {
    return this.#starts(async () => {
      const { store } = this.#options;
      const record: ExecutionRecord = {
        executionArn: this.executionArn(key, name),
        name,
        stateMachine: key,
        status: 'RUNNING',
        input,
        startDate: new Date().toISOString(),
        ...(restartOf ? { restartOf } : {}),
      };
      await store.createExecution(record);
      // Everything a lost execution.json is rebuilt with (local/state/recovery.ts).
      await this.#history(record, [
        {
          type: 'ExecutionStarted',
          timestamp: record.startDate,
          stateMachine: key,
          executionArn: record.executionArn,
          input: redact(input),
          ...(restartOf ? { restartOf } : {}),
        },
      ]);
      this.#options.onStatusChange(record);
      return this.#launch(record, (signal) => this.#run(key, record, signal));
    });
  }

  /**
   * Redrives an execution that failed, timed out, was aborted or was stopped with stepline (INTERRUPTED), as
   * Step Functions' RedriveExecution does: the same name, ARN, input and definition; an
   * `ExecutionRedriven` event with the new `redriveCount`; the Tasks that succeeded are answered with their
   * recorded results rather than run again, so the run goes on from the state that failed
   * (local/stepfunctions/redrive.ts). Returns once recorded; it runs on in the background.
   *
   * @throws NotFoundError for an unknown execution; ExecutionNotRedrivableError (Step Functions'
   *   `ExecutionNotRedrivable`) with the reason, for one that is running, succeeded, or ended over 14 days ago.
   */
  async redrive(arnOrName: string, now: Date = new Date()): Promise<ExecutionRecord> {
    return this.#starts(() => this.#redrive(arnOrName, now));
  }

  async #redrive(arnOrName: string, now: Date): Promise<ExecutionRecord> {
    const { store } = this.#options;
    const found = store.execution(arnOrName);
    if (!found) throw new NotFoundError(`No execution ${arnOrName}`);
    const key = found.stateMachine;
    if (!this.#options.machines[key]) {
      throw new ExecutionNotRedrivableError(found.name, `its state machine ${key} is not in serverless.yml.`);
    }
    const history = store.history(found.executionArn);
    const record = await store.redriveExecution(found.executionArn, (current) => {
      const reason = this.#running.has(current.executionArn)
        ? 'Execution is RUNNING and cannot be redriven.'
        : notRedrivableReason(current, history.length, now);
      if (reason) throw new ExecutionNotRedrivableError(current.name, reason);
    });
    await this.#history(record, [
      {
        type: 'ExecutionRedriven',
        timestamp: record.redriveDate ?? now.toISOString(),
        redriveCount: record.redriveCount ?? 1,
      },
    ]);
    this.#options.onStatusChange(record);
    return this.#launch(record, (signal) =>
      this.#run(key, record, signal, {
        results: new TaskResults(history),
        replayed: replayedStates(history),
      }),
    );
  }

  /**
   * Runs `begin` (an execution's first writes) unless stepline is stopping, and keeps it where stopAll
   * sees it until the execution is in #running, so that a start racing a stop is stopped too.
   */
  async #starts(begin: () => Promise<ExecutionRecord>): Promise<ExecutionRecord> {
    if (this.#stopReason !== undefined) throw new ConflictError('stepline is stopping: no run starts now');
    const starting = begin();
    this.#starting.add(starting);
    try {
      return await starting;
    } finally {
      this.#starting.delete(starting);
    }
  }

  /** Runs a recorded execution in the background, already stopped when stepline is stopping. */
  #launch(record: ExecutionRecord, run: (signal: AbortSignal) => Promise<ExecutionRecord>): ExecutionRecord {
    const abort = new AbortController();
    if (this.#stopReason !== undefined) abort.abort(new Error(this.#stopReason));
    const done = run(abort.signal);
    // Its end is awaited by wait() and stopAll; one that could not be recorded is said here, not lost.
    done.catch((error: Error) => {
      process.stderr.write(
        forTerminal(`stepline: could not record the end of ${record.name}: ${error.message}\n`),
      );
    });
    this.#running.set(record.executionArn, { abort, done });
    return record;
  }

  /** Resolves when the execution ends, with its final record. */
  async wait(executionArn: string): Promise<ExecutionRecord | undefined> {
    const running = this.#running.get(executionArn);
    return running ? running.done : this.#options.store.execution(executionArn);
  }

  /** The executions still running. */
  get running(): string[] {
    return [...this.#running.keys()];
  }

  /**
   * Stops one running execution, as StopExecution does, with an error and a cause kept in its record: it
   * ends SUPERSEDED when the error is Stepline.Superseded (a newer run retired it), else ABORTED. Returns
   * without waiting for it to end: a run may be stopped from its own task.
   */
  stop(executionArn: string, error: string, cause: string): void {
    this.#running.get(executionArn)?.abort.abort(new StopRequest(error, cause));
  }

  /**
   * StopExecution that waits: stops one running execution (see {@link stop}) and resolves when it has
   * ended; false when it was not running.
   */
  async stopExecution(executionArn: string, error: string, cause: string): Promise<boolean> {
    const run = this.#running.get(executionArn);
    if (!run) return false;
    this.stop(executionArn, error, cause);
    await run.done;
    return true;
  }

  /** Stops every running execution, recording it as interrupted. */
  async stopAll(reason: string): Promise<void> {
    this.#stopReason ??= reason;
    // A start under way when the stop came ends stopped too (#launch), once recorded.
    await Promise.allSettled([...this.#starting]);
    const runs = [...this.#running.entries()];
    for (const [, run] of runs) run.abort.abort(new Error(reason));
    await Promise.allSettled(runs.map(([, run]) => run.done));
  }

  async #run(
    key: string,
    record: ExecutionRecord,
    signal: AbortSignal,
    replay?: { results: TaskResults; replayed: ReadonlySet<string> },
  ): Promise<ExecutionRecord> {
    // Loaded at the first run rather than at start-up: it is a quarter of a start's module loading.
    const { StateMachine, ExecutionError } = await import('aws-local-stepfunctions');
    const definition = adaptToLocalEngine(this.#machine(key).definition);
    const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
    const mapIndex = new Map<string, number>();
    // What `$$` made for this run alone (task tokens, entered times): left out of the Tasks' input digests.
    const volatile = new Set<string>();
    for (const { name, state } of listStates(definition)) {
      if (state.Type !== 'Task') continue;
      const resource = String(state.Resource);
      const binding = this.#options.bindings[resource];
      const timeoutPath = typeof state.TimeoutSecondsPath === 'string' ? state.TimeoutSecondsPath : undefined;
      handlers[name] = async (input) => {
        const parameters = input as Record<string, unknown>;
        const index = mapIndex.get(name);
        const inputDigest = taskInputDigest(parameters, volatile);
        // A redrive answers a Task that succeeded before with its result: it is not run again.
        const recorded = replay?.results.take(name, inputDigest);
        if (recorded) return recorded.output;
        if (!binding)
          throw Object.assign(new Error(`No local binding for ${resource}`), { name: 'States.Runtime' });
        const output = await binding(parameters, {
          executionArn: record.executionArn,
          stateName: name,
          ...(index === undefined ? {} : { mapIndex: index }),
          signal,
          waitForToken: (token, timeout) =>
            this.tokens.wait(
              token,
              timeout ?? (timeoutPath ? Number(readPath(parameters, timeoutPath)) : undefined),
            ),
        });
        await this.#history(record, [
          {
            type: 'TaskSucceeded',
            timestamp: new Date().toISOString(),
            state: name,
            stateType: 'Task',
            inputDigest,
            output: redact(output),
          },
        ]);
        return output;
      };
    }
    const remember = (value: string): string => {
      volatile.add(value);
      return value;
    };
    const machine = new StateMachine(structuredClone(definition) as unknown as EngineDefinition, {
      validationOptions: { noValidate: true },
    });
    const execution = machine.run(record.input as never, {
      // Retry intervals are the definition's own (backoff and jitter), as in Step Functions.
      overrides: { taskResourceLocalHandlers: handlers as never },
      context: localContextObject({
        executionArn: record.executionArn,
        redriveCount: record.redriveCount ?? 0,
        mintTaskToken: () => remember(this.tokens.mint(record.executionArn)),
        now: () => {
          const date = new Date();
          remember(date.toISOString());
          return date;
        },
      }),
      noThrowOnAbort: false,
    });
    const onAbort = () => execution.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    // Stopped while the engine module was loading: the listener came too late to hear it.
    if (signal.aborted) onAbort();

    const logging = (async () => {
      for await (const event of execution.eventLogs) {
        // The run's own start and end are written by start() and #finish(), which know what the engine's
        // events do not: the state machine, the input, and that an abort is stepline stopping.
        if (event.type.startsWith('Execution')) continue;
        if ('state' in event && event.type === 'StateEntered' && typeof event.index === 'number') {
          mapIndex.set(event.state.name, event.index);
        }
        const stored = historyEvent(event);
        // A redrive does not write again what it replays: the states that completed before.
        const replayedKey = replay && replayKey(stored as Parameters<typeof replayKey>[0]);
        if (replayedKey !== undefined && replay?.replayed.has(replayedKey)) continue;
        await this.#history(record, [stored]);
      }
    })();

    let outcome: Pick<ExecutionRecord, 'status' | 'output' | 'error' | 'cause'>;
    try {
      outcome = { status: 'SUCCEEDED', output: await execution.result };
    } catch (error) {
      if (signal.aborted && signal.reason instanceof StopRequest) {
        const { error: stopError, message: cause } = signal.reason;
        outcome = {
          status: stopError === SUPERSEDED_ERROR ? 'SUPERSEDED' : 'ABORTED',
          error: stopError,
          cause,
        };
      } else if (signal.aborted) {
        const reason = signal.reason instanceof Error ? signal.reason.message : 'stopped';
        outcome = { status: 'INTERRUPTED', error: 'Stepline.Interrupted', cause: reason };
      } else {
        const failure =
          error instanceof ExecutionError && error.cause instanceof Error ? error.cause : (error as Error);
        outcome = { status: 'FAILED', error: failure.name, cause: failure.message };
      }
    }
    let finished: ExecutionRecord;
    try {
      signal.removeEventListener('abort', onAbort);
      // The states' last events are written before the run's end, so that the history reads in order (a
      // redrive continues it). One that could not be written (disk full, an event the schema refuses) is
      // said, not lost silently.
      await logging.catch((error: Error) => {
        process.stderr.write(
          forTerminal(`stepline: the history of ${record.name} is incomplete: ${error.message}\n`),
        );
      });
      finished = await this.#finish(record, outcome);
    } finally {
      this.tokens.endExecution(record.executionArn);
      this.#running.delete(record.executionArn);
    }
    return finished;
  }

  async #finish(
    record: ExecutionRecord,
    patch: Pick<ExecutionRecord, 'status' | 'output' | 'error' | 'cause'>,
  ): Promise<ExecutionRecord> {
    const stopDate = new Date().toISOString();
    const failure = {
      ...(patch.error === undefined ? {} : { error: patch.error }),
      ...(patch.cause === undefined ? {} : { cause: patch.cause }),
    };
    const end: NewHistoryEvent =
      patch.status === 'SUCCEEDED'
        ? {
            type: 'ExecutionSucceeded',
            timestamp: stopDate,
            ...(patch.output === undefined ? {} : { output: redact(patch.output) }),
          }
        : patch.status === 'FAILED'
          ? { type: 'ExecutionFailed', timestamp: stopDate, ...failure }
          : patch.status === 'INTERRUPTED'
            ? { type: 'ExecutionInterrupted', timestamp: stopDate, ...failure }
            : { type: 'ExecutionAborted', timestamp: stopDate, ...failure };
    await this.#history(record, [end]);
    await this.#options.store.finishExecution(record.executionArn, { ...patch, stopDate });
    const finished = this.#options.store.execution(record.executionArn) ?? { ...record, ...patch, stopDate };
    this.#options.onStatusChange(finished);
    return finished;
  }

  async #history(record: ExecutionRecord, events: NewHistoryEvent[]): Promise<void> {
    await this.#options.store.appendHistory(record.executionArn, events);
    for (const event of events) this.#options.onHistory?.(record, event);
  }

  #machine(key: string): LocalMachine {
    const machine = this.#options.machines[key];
    if (!machine) throw new Error(`No state machine named ${key} in serverless.yml`);
    return machine;
  }
}

/**
 * One aws-local-stepfunctions log event (a state's, a Map iteration's or a Parallel branch's) as a stored
 * history event, without task tokens. Checked against the history schema when the store writes it.
 */
function historyEvent(event: object): NewHistoryEvent {
  const e = event as { type: string; timestamp: number } & Record<string, unknown>;
  const state = e.state as { name: string; type: string; input?: unknown; output?: unknown } | undefined;
  const parent = e.parentState as { name: string } | undefined;
  return {
    type: e.type,
    timestamp: new Date(e.timestamp).toISOString(),
    ...(state ? { state: state.name, stateType: state.type } : {}),
    ...(parent ? { parentState: parent.name } : {}),
    ...(typeof e.index === 'number' ? { index: e.index } : {}),
    ...(e.type === 'StateExited' && state?.output !== undefined ? { output: redact(state.output) } : {}),
    ...(typeof e.Error === 'string'
      ? { error: e.Error, cause: typeof e.Cause === 'string' ? e.Cause : JSON.stringify(e.Cause) }
      : {}),
    ...(e.retry ? { attempt: (e.retry as { attempt: number }).attempt } : {}),
  } as NewHistoryEvent;
}
