import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { ConfigurationError } from '../errors.ts';
import type { SecretReader } from '../ports.ts';

/**
 * Reads SecureString parameters from SSM Parameter Store, decrypted, once per name per Lambda instance.
 * Concurrent first reads share one request.
 */
export class SsmSecretReader implements SecretReader {
  readonly #client: SSMClient;
  readonly #cache = new Map<string, Promise<string>>();

  constructor(client: SSMClient) {
    this.#client = client;
  }

  read(name: string): Promise<string> {
    let value = this.#cache.get(name);
    if (value === undefined) {
      value = this.#fetch(name);
      this.#cache.set(name, value);
      // A failed read is not cached: the next request tries again.
      value.catch(() => this.#cache.delete(name));
    }
    return value;
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
