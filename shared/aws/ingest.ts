import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SFNClient } from '@aws-sdk/client-sfn';
import { jsonEnv, requireEnv } from '../config.ts';
import type { IngestDeps } from '../ingest.ts';
import { createLogger } from '../logger.ts';
import { StackSettingsSchema, settingsForRepository } from '../repository-settings.ts';
import { TriggersSchema } from '../triggers.ts';
import { DynamoLineStore } from './dynamodb.ts';
import { SfnPipelineStarter, SfnRunStopper } from './sfn.ts';

/**
 * What the webhook and CodeCommit Lambdas need to start runs in AWS, read once from their environment:
 * `STATE_MACHINE_ARN`, `RELEASE_TABLE` (the lines' push counters), `STEPLINE_TRIGGERS` (JSON, default: the
 * default branch only) and `STEPLINE_SETTINGS` (JSON, default: dev then prod with approval; per-repository
 * overrides under `repositories`). A repository's own `stepline.json` is not read on AWS: the stack's
 * settings alone decide its environments and gates.
 */
export function awsIngestDeps(
  serviceName: string,
  env: Record<string, string | undefined> = process.env,
  client: SFNClient = new SFNClient({}),
): IngestDeps {
  const stack = jsonEnv('STEPLINE_SETTINGS', StackSettingsSchema, {}, env);
  return {
    starter: new SfnPipelineStarter(client, requireEnv('STATE_MACHINE_ARN', env)),
    lines: new DynamoLineStore(new DynamoDBClient({}), requireEnv('RELEASE_TABLE', env)),
    triggers: jsonEnv('STEPLINE_TRIGGERS', TriggersSchema, {}, env),
    settings: stack.defaults,
    settingsFor: async (push) => settingsForRepository(stack, push.repository.fullName),
    logger: createLogger(serviceName),
  };
}

/**
 * What the webhook Lambda needs besides {@link awsIngestDeps}: it also stops a pull request's older runs, with
 * the same client.
 */
export function awsRunStopper(
  client: SFNClient,
  env: Record<string, string | undefined> = process.env,
): SfnRunStopper {
  return new SfnRunStopper(client, requireEnv('STATE_MACHINE_ARN', env));
}
