import { ConfigurationError } from './errors.ts';
import type { SecretReader } from './ports.ts';

/**
 * Reads secrets from environment variables: the tests' and the local mode's binding of {@link SecretReader}.
 * `names` maps a secret's name to the variable that holds it.
 *
 * @example
 * ```ts
 * new EnvSecretReader({ webhook: 'STEPLINE_WEBHOOK_SECRET' }).read('webhook');
 * ```
 */
export class EnvSecretReader implements SecretReader {
  readonly #names: Record<string, string>;
  readonly #env: Record<string, string | undefined>;

  constructor(names: Record<string, string>, env: Record<string, string | undefined> = process.env) {
    this.#names = names;
    this.#env = env;
  }

  async read(name: string): Promise<string> {
    const variable = this.#names[name] ?? name;
    const value = this.#env[variable];
    if (value === undefined || value === '') {
      throw new ConfigurationError(`Missing secret: set the environment variable ${variable}`);
    }
    return value;
  }
}
