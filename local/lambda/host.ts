import { AsyncLocalStorage } from 'node:async_hooks';
import type { Context } from 'aws-lambda';
import type { LocalFunction } from '../wiring.ts';
import { lambdaContext } from './context.ts';
import { matchRoute } from './routes.ts';

/** A composed handler, as Lambda calls it: the event its trigger sends, and a context. */
export type LocalHandler = (event: unknown, context: Context) => Promise<unknown>;

/** The function serving an HTTP route, with its path parameters. */
export interface RouteMatch {
  fn: LocalFunction;
  handler: LocalHandler;
  params: Record<string, string>;
}

/** What `lambda:invoke` returns to Step Functions. */
export interface LambdaInvokeResult {
  ExecutedVersion: '$LATEST';
  Payload: unknown;
  StatusCode: 200;
}

/**
 * The local stand-in for Lambda: it holds one composed handler per serverless.yml function, invokes them
 * as Step Functions' `lambda:invoke` task does, serves HTTP routes, and remembers for which run an
 * invocation works, so that what a handler publishes is attributed to that run (a local outbox has no
 * other way to tell two concurrent runs' notifications apart).
 */
export class LocalLambda {
  readonly #functions: LocalFunction[];
  readonly #handlers = new Map<string, LocalHandler>();
  readonly #attribution = new AsyncLocalStorage<string | undefined>();

  constructor(functions: LocalFunction[]) {
    this.#functions = functions;
  }

  /** Binds a function of serverless.yml to its composed handler. */
  register(key: string, handler: LocalHandler): void {
    this.#handlers.set(key, handler);
  }

  /** The run the current invocation works for, if any. */
  currentRun(): string | undefined {
    return this.#attribution.getStore();
  }

  /** Invokes a function with an event, on behalf of a run (`executionArn`) when it works for one. */
  async invokeFor(fn: LocalFunction, event: unknown, executionArn: string | undefined): Promise<unknown> {
    const handler = this.#handlers.get(fn.key);
    if (!handler) throw new Error(`No handler is registered for function ${fn.key}`);
    return this.#attribution.run(executionArn, () => handler(event, lambdaContext(fn)));
  }

  /**
   * Step Functions' `lambda:invoke`: finds the function by name, key or ARN, passes it a copy of the
   * payload, and names a function error as Step Functions does (the error's name, Lambda's error JSON as
   * its message), so the state machine's Retry and Catch match `ErrorEquals` the same way.
   */
  async invoke(input: Record<string, unknown>): Promise<unknown> {
    const name = String(input.FunctionName ?? '');
    const fn = this.#functions.find(
      (f) => f.name === name || f.key === name || name.endsWith(`:function:${f.name}`),
    );
    if (!fn || !this.#handlers.has(fn.key)) {
      throw Object.assign(new Error(`Function not found: ${name}`), {
        name: 'Lambda.ResourceNotFoundException',
      });
    }
    const payload = (input.Payload ?? {}) as { executionArn?: unknown };
    const executionArn = typeof payload.executionArn === 'string' ? payload.executionArn : undefined;
    try {
      return await this.invokeFor(fn, structuredClone(payload), executionArn);
    } catch (error) {
      const e = error as Error;
      throw Object.assign(new Error(JSON.stringify({ errorType: e.name, errorMessage: e.message })), {
        name: e.name,
      });
    }
  }

  /** The function serving an HTTP route (`POST /webhooks/github`), with its path parameters. */
  route(method: string, path: string): RouteMatch | undefined {
    for (const fn of this.#functions) {
      const handler = this.#handlers.get(fn.key);
      if (!handler) continue;
      for (const route of fn.http) {
        if (route.method !== method.toUpperCase()) continue;
        const params = matchRoute(route.path, path);
        if (params) return { fn, handler, params };
      }
    }
    return undefined;
  }
}

/** What `lambda:invoke` (without a task token) gives the state machine: the payload in Lambda's envelope. */
export function lambdaInvokeResult(payload: unknown): LambdaInvokeResult {
  return { ExecutedVersion: '$LATEST', Payload: payload ?? null, StatusCode: 200 };
}
