import { forTerminal } from '#shared/text.ts';
import type { LocalFunction } from '../wiring.ts';
import { matchesPattern } from './event-pattern.ts';

/** Delivers an event to one target function, on behalf of a run when the event is about one. */
export type DeliverEvent = (
  fn: LocalFunction,
  event: Record<string, unknown>,
  executionArn: string | undefined,
) => Promise<unknown>;

/**
 * The local default event bus: the rules are the `eventBridge` patterns serverless.yml gives its
 * functions, and each function whose pattern matches an event gets it. As on EventBridge, a target's
 * failure does not fail the put, nor the other targets: it is reported on stderr.
 */
export class LocalEventBus {
  readonly #functions: LocalFunction[];
  readonly #deliver: DeliverEvent;
  readonly #onTargetError: (fn: LocalFunction, event: Record<string, unknown>, error: Error) => void;

  constructor(
    functions: LocalFunction[],
    deliver: DeliverEvent,
    onTargetError: (fn: LocalFunction, event: Record<string, unknown>, error: Error) => void = reportToStderr,
  ) {
    this.#functions = functions;
    this.#deliver = deliver;
    this.#onTargetError = onTargetError;
  }

  /** The functions whose rules match an event. */
  targets(event: Record<string, unknown>): LocalFunction[] {
    return this.#functions.filter((fn) => fn.eventBridge.some((pattern) => matchesPattern(pattern, event)));
  }

  /** Puts an event on the bus; resolves when every matching target has handled it (or failed). */
  async putEvent(event: Record<string, unknown>, executionArn?: string): Promise<void> {
    await Promise.all(
      this.targets(event).map(async (fn) => {
        try {
          await this.#deliver(fn, event, executionArn);
        } catch (error) {
          this.#onTargetError(fn, event, error as Error);
        }
      }),
    );
  }
}

function reportToStderr(fn: LocalFunction, event: Record<string, unknown>, error: Error): void {
  process.stderr.write(
    forTerminal(`stepline: ${fn.key} failed on ${String(event['detail-type'])}: ${error.message}\n`),
  );
}
