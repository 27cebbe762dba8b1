import type * as z from '#shared/zod.ts';
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
 * Parses configuration given as JSON text and validates it with a zod schema; errors name the setting as
 * the person who wrote it knows it (`label`): an environment variable on AWS, a `--param` locally.
 * An absent value parses as `fallback` (give one only where the default cannot decide where a deploy goes).
 *
 * @example
 * ```ts
 * parseJsonSetting('--param settings', '{"environments":[]}', PipelineSettingsSchema, {});
 * // throws ConfigurationError: "--param settings is invalid at environments: …"
 * ```
 */
export function parseJsonSetting<S extends z.ZodMiniType>(
  label: string,
  raw: string | undefined,
  schema: S,
  fallback: z.input<S>,
): z.output<S> {
  let value: unknown = fallback;
  if (raw !== undefined && raw.trim() !== '') {
    try {
      value = JSON.parse(raw);
    } catch (cause) {
      throw new ConfigurationError(`${label} is not valid JSON: ${(cause as Error).message}`, { cause });
    }
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new ConfigurationError(`${label} is invalid${where}: ${issue?.message}`, { cause: parsed.error });
  }
  return parsed.data;
}

/**
 * Reads an environment variable holding JSON and validates it with a zod schema (see
 * {@link parseJsonSetting}). An absent variable parses as `fallback`, or fails naming it when there is none.
 */
export function jsonEnv<S extends z.ZodMiniType>(
  name: string,
  schema: S,
  fallback: z.input<S> | undefined,
  env: Env = process.env,
): z.output<S> {
  const raw = optionalEnv(name, env);
  if (raw === undefined && fallback === undefined) {
    throw new ConfigurationError(`Missing required environment variable ${name}`);
  }
  return parseJsonSetting(`Environment variable ${name}`, raw, schema, fallback as z.input<S>);
}
