import { TaskNoLongerWaitingError } from './errors.ts';
import type { Logger } from './logger.ts';
import {
  type ExecutionStopper,
  type LineStore,
  type Notifier,
  SUBJECT_MAX_LENGTH,
  type TaskDecider,
} from './ports.ts';
import {
  BEHIND_ERROR,
  type ExecutionMode,
  type LineState,
  type ReleaseAction,
  runName,
  SUPERSEDED_ERROR,
  type Transition,
} from './release.ts';
import { oneLine } from './text.ts';

export interface ReleaseLedgerDeps {
  store: LineStore;
  decider: TaskDecider;
  stopper: ExecutionStopper;
  notifier: Notifier;
  logger: Logger;
}

/** How many times a transition is tried again when another writer changed the line first. */
const MAX_ATTEMPTS = 20;

/**
 * Applies release transitions (shared/release.ts) to a line with optimistic concurrency: read, decide,
 * write only if the line is unchanged, else read again. What a transition decides (resume a waiting run,
 * refuse one, retire one) is done after its write landed, so a crash between the two leaves at worst a
 * run that waits: the run's end (any end) releases it, and a waiting run's own retry asks again.
 *
 * @example
 * ```ts
 * await ledger.apply(lineOf(push), 'QUEUED', (state) => leaveEnvironment(state, request, 'QUEUED'));
 * ```
 */
export class ReleaseLedger {
  readonly #deps: ReleaseLedgerDeps;

  constructor(deps: ReleaseLedgerDeps) {
    this.#deps = deps;
  }

  /** The line's next push number. */
  nextSequence(line: string): Promise<number> {
    return this.#deps.store.nextSequence(line);
  }

  /** The line's state as stored. */
  async read(line: string): Promise<LineState> {
    return (await this.#deps.store.read(line)).state;
  }

  /** Applies one transition to a line and carries out its actions; returns what it decided. */
  async apply(
    line: string,
    mode: ExecutionMode,
    transition: (state: LineState) => Transition,
  ): Promise<ReleaseAction[]> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const { state, version } = await this.#deps.store.read(line);
      const next = transition(state);
      if (await this.#deps.store.write(line, next.state, version)) {
        for (const action of next.actions) await this.#carryOut(action, mode);
        return next.actions;
      }
      // Another run wrote the line between the read and the write: back off a little, then read again.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
    }
    throw new Error(`The release state of ${line} kept changing; gave up after ${MAX_ATTEMPTS} attempts`);
  }

  async #carryOut(action: ReleaseAction, mode: ExecutionMode): Promise<void> {
    const { decider, stopper, notifier, logger } = this.#deps;
    const keys = { executionArn: action.executionArn, action: action.kind, mode };
    try {
      if (action.kind === 'resume') {
        await decider.succeed(action.taskToken, { environment: action.environment, entered: true });
      } else if (action.kind === 'refuse') {
        await decider.fail(action.taskToken, action.error ?? BEHIND_ERROR, action.cause);
        await notifier.publish({
          topic: 'notifications',
          subject: oneLine(
            action.error === undefined
              ? `Refused: ${runName(action.executionArn)} is older than ${action.environment}`
              : `Refused: rollback ${runName(action.executionArn)} of ${action.environment}`,
            SUBJECT_MAX_LENGTH,
          ),
          body: `${runName(action.executionArn)} was refused at ${action.environment}.\n\n${action.cause}\n`,
        });
      } else {
        // Its notification comes from its end (pipelineEvents reads the ABORTED status and this cause).
        await stopper.stop(action.executionArn, SUPERSEDED_ERROR, action.cause);
      }
      logger.info('Release action done', keys);
    } catch (error) {
      // A run that already ended cannot be resumed or stopped: its end releases what it held.
      if (error instanceof TaskNoLongerWaitingError) {
        logger.info('Release action found the run gone', { ...keys, reason: error.reason });
        return;
      }
      logger.error('Release action failed', { ...keys, error: (error as Error).message });
      throw error;
    }
  }
}
