import { parseJsonSetting } from '#shared/config.ts';
import { type StackSettings, StackSettingsSchema } from '#shared/repository-settings.ts';
import { type Triggers, TriggersSchema } from '#shared/triggers.ts';
import type { LocalFunction } from '../wiring.ts';

/** The functions' configuration, parsed once for every function of the local mode. */
export interface FunctionConfiguration {
  triggers: Triggers;
  /** The defaults and the per-repository overrides (shared/repository-settings.ts). */
  settings: StackSettings;
}

/**
 * serverless.yml hands the `triggers` and `settings` parameters to the functions as these variables.
 * Locally the person typed `--param settings=…`, so errors name the parameter, not the variable.
 */
const JSON_PARAMETERS = {
  triggers: 'STEPLINE_TRIGGERS',
  settings: 'STEPLINE_SETTINGS',
} as const;

/**
 * Parses the functions' JSON configuration out of the resolved wiring, once, at start-up. A value that is
 * not JSON or breaks its schema throws a ConfigurationError naming the `--param` and the field, e.g.
 * `--param settings is invalid at environments.0.name: …`, or for an override
 * `--param settings is invalid at repositories.acme/shop.environments.0.name: …`.
 */
export function functionConfiguration(functions: LocalFunction[]): FunctionConfiguration {
  const value = (variable: string): string | undefined => {
    const raw = functions.find((fn) => fn.environment[variable] !== undefined)?.environment[variable];
    return raw === undefined || typeof raw === 'string' ? raw : JSON.stringify(raw);
  };
  return {
    triggers: parseJsonSetting('--param triggers', value(JSON_PARAMETERS.triggers), TriggersSchema, {}),
    settings: parseJsonSetting('--param settings', value(JSON_PARAMETERS.settings), StackSettingsSchema, {}),
  };
}
