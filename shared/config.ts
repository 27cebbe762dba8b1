import type { z } from 'zod';
import { ConfigurationError } from './errors.ts';

type Env = Record<string, string | undefined>;

/**
 * Reads a required environment variable, failing fast with its name. Call it at module scope, once.
 *
 * @example
 * ```ts
 * const stateMachineArn = requireEnv('STATE_MACHINE_ARN');
 * ```
 */
export function requireEnv(name: string, env: Env = process.env): string {
  const value = env[name];
  if (value === undefined || value.trim() === '') {
    throw new ConfigurationError(`Missing required environment variable ${name}`);
  }
  return value;
}

/** Reads an optional environment variable; empty counts as absent. */
export function optionalEnv(name: string, env: Env = process.env): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value;
}

/**
 * Reads an environment variable holding JSON and validates it with a zod schema. An absent variable
 * parses as `fallback` (give one only where the default cannot decide where a deploy goes).
 */
export function jsonEnv<S extends z.ZodType>(
  name: string,
  schema: S,
  fallback: z.input<S> | undefined,
  env: Env = process.env,
): z.output<S> {
  const raw = optionalEnv(name, env);
  let value: unknown = fallback;
  if (raw !== undefined) {
    try {
      value = JSON.parse(raw);
    } catch (cause) {
      throw new ConfigurationError(`Environment variable ${name} is not valid JSON`, { cause });
    }
  } else if (fallback === undefined) {
    throw new ConfigurationError(`Missing required environment variable ${name}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new ConfigurationError(`Environment variable ${name} is invalid${where}: ${issue?.message}`);
  }
  return parsed.data;
}
