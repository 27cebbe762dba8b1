import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { ConfigurationError } from '../errors.ts';
import type { RefreshingSecretReader } from '../secrets.ts';

/** How long a warm Lambda keeps a secret before reading it again (Powertools Parameters' default is 5 s). */
export const SECRET_MAX_AGE_MS = 5 * 60 * 1000;

/**
 * A forced read within this long of the last read is served from the cache: every forged delivery asks for
 * a fresh secret, and SSM's GetParameter is throttled per account.
 */
export const SECRET_MIN_REFETCH_MS = 10 * 1000;

interface CachedSecret {
  value: Promise<string>;
  fetchedAt: number;
}

/**
 * Reads SecureString parameters from SSM Parameter Store, decrypted, and keeps each for at most
 * `maxAgeMs` per Lambda instance, so that a rotated secret is picked up without a redeploy. Concurrent reads
 * share one request; a failed read is not kept. `forceFetch` reads again now (after a signature failed
 * with the cached value), unless the cached value is under {@link SECRET_MIN_REFETCH_MS} old. `@aws-lambda-powertools/parameters` (getParameter with maxAge and forceFetch)
 * does the same and could replace this class.
 */
export class SsmSecretReader implements RefreshingSecretReader {
  readonly #client: SSMClient;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, CachedSecret>();

  constructor(client: SSMClient, options: { maxAgeMs?: number; now?: () => number } = {}) {
    this.#client = client;
    this.#maxAgeMs = options.maxAgeMs ?? SECRET_MAX_AGE_MS;
    this.#now = options.now ?? Date.now;
  }

  read(name: string, options: { forceFetch?: boolean } = {}): Promise<string> {
    const cached = this.#cache.get(name);
    const age = cached === undefined ? Number.POSITIVE_INFINITY : this.#now() - cached.fetchedAt;
    if (cached !== undefined && age < (options.forceFetch ? SECRET_MIN_REFETCH_MS : this.#maxAgeMs)) {
      return cached.value;
    }
    const entry: CachedSecret = { value: this.#fetch(name), fetchedAt: this.#now() };
    this.#cache.set(name, entry);
    // A failed read is not kept: the next request tries again.
    entry.value.catch(() => {
      if (this.#cache.get(name) === entry) this.#cache.delete(name);
    });
    return entry.value;
  }

  async #fetch(name: string): Promise<string> {
    const output = await this.#client.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    const value = output.Parameter?.Value;
    if (value === undefined || value === '') {
      throw new ConfigurationError(`SSM parameter ${name} has no value`);
    }
    return value;
  }
}
