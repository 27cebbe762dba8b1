import picomatch from 'picomatch';
import * as z from '#shared/zod.ts';
import { InvalidInputError } from './errors.ts';
import { type PipelineSettings, PipelineSettingsSchema } from './pipeline.ts';

/**
 * One pipeline per repository: the `settings` parameter may hold, beside the defaults, overrides keyed by
 * the repository's full name (`owner/name`, GitLab's `group/sub/name`, CodeCommit's `name`) or a glob of it
 * (`acme/*`, `acme/**`). A run's settings are the defaults, then the repository's own `stepline.json` where
 * the local mode reads one, then the first override whose key matches, merged field by field.
 *
 * @example
 * ```json
 * {
 *   "environments": [{ "name": "dev" }, { "name": "prod", "approval": true }],
 *   "repositories": {
 *     "acme/docs": { "environments": [{ "name": "preview" }] },
 *     "acme/*": { "approvalTimeoutSeconds": 3600 }
 *   }
 * }
 * ```
 */

/** The file a repository may carry, at its root, to set its own pipeline (read by the local mode only). */
export const REPOSITORY_SETTINGS_FILE = 'stepline.json';

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * `over` laid on `base`: objects are merged key by key (a repository that names only `buildspecs.deploy`
 * keeps the other paths), anything else (a list of environments, a number) replaces what was there.
 */
export function mergeSettings(base: JsonObject, over: JsonObject): JsonObject {
  const merged: JsonObject = { ...base };
  for (const [key, value] of Object.entries(over)) {
    // JSON.parse makes `__proto__` an own key; assigned, it would replace the merged object's prototype.
    if (key === '__proto__') continue;
    const current = Object.hasOwn(merged, key) ? merged[key] : undefined;
    merged[key] = isObject(current) && isObject(value) ? mergeSettings(current, value) : value;
  }
  return merged;
}

/** The settings' fields a repository may set: every field of {@link PipelineSettingsSchema}. */
function settingFields(): string[] {
  return Object.keys(PipelineSettingsSchema.shape);
}

/** Where a settings problem is, as a person reads it: `environments.0.name`. */
function fieldOf(path: readonly PropertyKey[]): string {
  return path.map(String).join('.');
}

/** The problem of a repository's settings, or undefined when they are valid. */
function problemOf(value: JsonObject): { field: string; message: string } | undefined {
  const unknown = Object.keys(value).filter((key) => !settingFields().includes(key));
  if (unknown.length > 0) {
    return {
      field: unknown[0] ?? '',
      message: `not a setting (a repository may set ${settingFields().join(', ')})`,
    };
  }
  const parsed = PipelineSettingsSchema.safeParse(value);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0];
  return { field: fieldOf(issue?.path ?? []), message: issue?.message ?? 'invalid' };
}

/** An override's key: a full name or a glob of one (picomatch, case-insensitive as the forges' names are). */
const RepositoryPatternSchema = z
  .string()
  .check(
    z.minLength(1),
    z.maxLength(300),
    z.regex(/^[^\s]+$/, 'a repository name or glob without spaces (e.g. acme/shop, acme/*)'),
  );

/**
 * The `settings` parameter: the pipeline's settings, which are every repository's defaults, and the
 * per-repository overrides under `repositories`. Each override is checked as the settings a matching
 * repository would run with; a problem names the repository's key and the field.
 */
export const StackSettingsSchema = z.pipe(
  z.unknown(),
  z.transform((value, context) => {
    if (value !== undefined && !isObject(value)) {
      context.issues.push({ code: 'custom', message: 'must be a JSON object', input: value });
      return z.NEVER;
    }
    const { repositories = {}, ...defaults } = (value ?? {}) as JsonObject;
    const base = PipelineSettingsSchema.safeParse(defaults);
    if (!base.success) {
      for (const issue of base.error.issues)
        context.issues.push({ code: 'custom', path: issue.path, message: issue.message, input: value });
      return z.NEVER;
    }
    if (!isObject(repositories)) {
      context.issues.push({
        code: 'custom',
        path: ['repositories'],
        message: 'must be an object keyed by repository (e.g. {"acme/shop": {…}})',
        input: repositories,
      });
      return z.NEVER;
    }
    const overrides: { pattern: string; matches: (name: string) => boolean; settings: JsonObject }[] = [];
    for (const [pattern, override] of Object.entries(repositories)) {
      const key = RepositoryPatternSchema.safeParse(pattern);
      if (!key.success) {
        context.issues.push({
          code: 'custom',
          path: ['repositories', pattern],
          message: key.error.issues[0]?.message ?? 'invalid key',
          input: value,
        });
        continue;
      }
      if (!isObject(override)) {
        context.issues.push({
          code: 'custom',
          path: ['repositories', pattern],
          message: 'must be an object',
          input: value,
        });
        continue;
      }
      const problem = problemOf(mergeSettings(defaults, override));
      if (problem) {
        context.issues.push({
          code: 'custom',
          path: ['repositories', pattern, ...problem.field.split('.').filter(Boolean)],
          message: problem.message,
          input: value,
        });
        continue;
      }
      overrides.push({
        pattern,
        matches: picomatch(pattern, { nocase: true, dot: true }),
        settings: override,
      });
    }
    return { defaults: base.data, raw: defaults, overrides };
  }),
);
export type StackSettings = z.output<typeof StackSettingsSchema>;

/** The first override whose key matches the repository's full name, in the order they are written. */
export function overrideFor(stack: StackSettings, fullName: string): string | undefined {
  return stack.overrides.find((override) => override.matches(fullName))?.pattern;
}

/**
 * Parses a repository's own `stepline.json` (its text). Throws InvalidInputError naming `where` (the file
 * and, for a pushed one, the repository and commit) and the field.
 */
export function parseRepositorySettingsFile(text: string, where: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new InvalidInputError(`${where} is not valid JSON: ${(error as Error).message}`);
  }
  if (!isObject(value)) throw new InvalidInputError(`${where} must hold a JSON object`);
  if ('repositories' in value) {
    throw new InvalidInputError(
      `${where} sets repositories, which only stepline's own settings may (a repository sets its own pipeline)`,
    );
  }
  const problem = problemOf(value);
  if (problem) throw new InvalidInputError(`${where} is invalid at ${problem.field}: ${problem.message}`);
  return value;
}

/**
 * The settings a run of `fullName` starts with: the defaults, then the repository's own file (when the
 * local mode read one from the pushed commit), then the first matching override. Throws
 * InvalidInputError, naming the repository and the field, when the combination is invalid.
 *
 * @example
 * ```ts
 * settingsForRepository(stack, 'acme/docs').environments; // [{ name: 'preview', approval: false }]
 * ```
 */
export function settingsForRepository(
  stack: StackSettings,
  fullName: string,
  repositoryFile?: JsonObject,
): PipelineSettings {
  const pattern = overrideFor(stack, fullName);
  if (pattern === undefined && repositoryFile === undefined) return stack.defaults;
  let merged = stack.raw;
  if (repositoryFile) merged = mergeSettings(merged, repositoryFile);
  const override = stack.overrides.find((o) => o.pattern === pattern);
  if (override) merged = mergeSettings(merged, override.settings);
  const parsed = PipelineSettingsSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InvalidInputError(
      `The settings of ${fullName} (${[
        'the defaults',
        ...(repositoryFile ? [REPOSITORY_SETTINGS_FILE] : []),
        ...(pattern === undefined ? [] : [`repositories["${pattern}"]`]),
      ].join(', then ')}) are invalid at ${fieldOf(issue?.path ?? [])}: ${issue?.message}`,
    );
  }
  return parsed.data;
}
