import { SFNClient } from '@aws-sdk/client-sfn';
import { jsonEnv, requireEnv } from '../config.ts';
import type { IngestDeps } from '../ingest.ts';
import { createLogger } from '../logger.ts';
import { StackSettingsSchema, settingsForRepository } from '../repository-settings.ts';
import { TriggersSchema } from '../triggers.ts';
import { SfnPipelineStarter } from './sfn.ts';

/**
 * What the webhook and CodeCommit Lambdas need to start runs in AWS, read once from their environment:
 * `STATE_MACHINE_ARN`, `STEPLINE_TRIGGERS` (JSON, default: the default branch only) and `STEPLINE_SETTINGS`
 * (JSON, default: dev then prod with approval; per-repository overrides under `repositories`). A repository's
 * own `stepline.json` is not read on AWS: the stack's settings alone decide its environments and gates.
 */
export function awsIngestDeps(
  serviceName: string,
  env: Record<string, string | undefined> = process.env,
): IngestDeps {
  const stack = jsonEnv('STEPLINE_SETTINGS', StackSettingsSchema, {}, env);
  return {
    starter: new SfnPipelineStarter(new SFNClient({}), requireEnv('STATE_MACHINE_ARN', env)),
    triggers: jsonEnv('STEPLINE_TRIGGERS', TriggersSchema, {}, env),
    settings: stack.defaults,
    settingsFor: async (push) => settingsForRepository(stack, push.repository.fullName),
    logger: createLogger(serviceName),
  };
}
