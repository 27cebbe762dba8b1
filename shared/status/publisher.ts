import type { Logger } from '../logger.ts';
import { FORGE_CLIENTS, type ForgeClient, ForgeError } from './forges.ts';
import type { CommitStatus, StatusProvider, StatusTarget } from './model.ts';

/** Each forge's token: an SSM SecureString parameter on AWS, `.stepline/parameters.json` locally. */
export interface StatusTokens {
  /** The provider's token, or undefined when none is configured (its statuses are then skipped). */
  tokenFor(provider: StatusProvider): Promise<string | undefined>;
}

/** What became of one status. */
export type PostOutcome =
  | { outcome: 'posted'; attempts: number }
  | { outcome: 'skipped'; reason: string }
  | { outcome: 'failed'; reason: string; attempts: number };

/** How hard to try: bounded in attempts and in time, so a forge that is down costs a bounded wait. */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** The first wait; each next one doubles, with full jitter. */
  baseDelayMs: number;
  /** No single wait is longer, whatever Retry-After says. */
  maxDelayMs: number;
  /** No retry starts after this long since the first attempt. */
  budgetMs: number;
}

/** 4 attempts, waits of up to 1, 2 and 4 s (or the forge's Retry-After, up to 10 s), 25 s in all. */
export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 4,
  baseDelayMs: 1000,
  maxDelayMs: 10_000,
  budgetMs: 25_000,
};

export interface StatusPublisherDeps {
  tokens: StatusTokens;
  logger: Logger;
  clients?: Record<StatusProvider, ForgeClient>;
  retry?: RetryPolicy;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  random?: () => number;
}

const FORGE_NAMES: Record<StatusProvider, string> = {
  github: 'GitHub',
  gitlab: 'GitLab',
  bitbucket: 'Bitbucket',
};

/**
 * Posts commit statuses to their forge with that forge's token, retrying rate limits, 5xx and unanswered
 * requests with exponential backoff and full jitter, within a {@link RetryPolicy}. It never throws: a status
 * it cannot post is a `failed` outcome for the caller to log and notify. A provider without a token is
 * `skipped`, and said once per instance (one log line, not one per status).
 *
 * @example
 * ```ts
 * const publisher = new StatusPublisher({ tokens, logger });
 * await publisher.publish(target, { state: 'pending', context: 'stepline', description: 'Running', targetUrl });
 * ```
 */
export class StatusPublisher {
  readonly #deps: Required<Omit<StatusPublisherDeps, 'tokens' | 'logger'>> &
    Pick<StatusPublisherDeps, 'tokens' | 'logger'>;
  readonly #saidNoToken = new Set<StatusProvider>();

  constructor(deps: StatusPublisherDeps) {
    this.#deps = {
      clients: FORGE_CLIENTS,
      retry: DEFAULT_RETRY,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      now: Date.now,
      random: Math.random,
      ...deps,
    };
  }

  async publish(target: StatusTarget, status: CommitStatus): Promise<PostOutcome> {
    const { tokens, logger } = this.#deps;
    const forge = FORGE_NAMES[target.provider];
    let token: string | undefined;
    try {
      token = await tokens.tokenFor(target.provider);
    } catch (error) {
      return {
        outcome: 'failed',
        reason: `${forge}'s token could not be read: ${(error as Error).message}`,
        attempts: 0,
      };
    }
    if (!token) {
      const reason = `no ${forge} status token is configured`;
      if (!this.#saidNoToken.has(target.provider)) {
        this.#saidNoToken.add(target.provider);
        logger.info(`Commit statuses to ${forge} are skipped: no token is configured`, {
          provider: target.provider,
        });
      }
      return { outcome: 'skipped', reason };
    }
    return this.#post(target, status, token);
  }

  async #post(target: StatusTarget, status: CommitStatus, token: string): Promise<PostOutcome> {
    const { clients, retry, sleep, now, random, logger } = this.#deps;
    const client = clients[target.provider];
    const started = now();
    for (let attempt = 1; ; attempt += 1) {
      try {
        await client(target, status, token);
        return { outcome: 'posted', attempts: attempt };
      } catch (error) {
        const forgeError =
          error instanceof ForgeError
            ? error
            : new ForgeError((error as Error).message, { status: 0, retryable: false });
        const backoff = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1)) * random();
        const wait = Math.min(retry.maxDelayMs, forgeError.retryAfterMs ?? backoff);
        const left = retry.budgetMs - (now() - started);
        if (!forgeError.retryable || attempt >= retry.attempts || wait > left) {
          // A forge's error text is its own; should it ever echo the token, the token goes no further.
          const reason = forgeError.message.replaceAll(token, '[token]');
          return { outcome: 'failed', reason, attempts: attempt };
        }
        logger.warn('Commit status not taken, trying again', {
          provider: target.provider,
          context: status.context,
          httpStatus: forgeError.status,
          attempt,
          waitMs: Math.round(wait),
        });
        await sleep(wait);
      }
    }
  }
}
