import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SFNClient } from '@aws-sdk/client-sfn';
import { jsonEnv, requireEnv } from '../config.ts';
import type { IngestDeps } from '../ingest.ts';
import { createLogger } from '../logger.ts';
import { PipelineSettingsSchema } from '../pipeline.ts';
import { TriggersSchema } from '../triggers.ts';
import { DynamoLineStore } from './dynamodb.ts';
import { SfnPipelineStarter } from './sfn.ts';

/**
 * What the webhook and CodeCommit Lambdas need to start runs in AWS, read once from their environment:
 * `STATE_MACHINE_ARN`, `RELEASE_TABLE` (the lines' push counters), `STEPLINE_TRIGGERS` (JSON, default: the default branch only) and `STEPLINE_SETTINGS`
 * (JSON, default: dev then prod with approval).
 */
export function awsIngestDeps(
  serviceName: string,
  env: Record<string, string | undefined> = process.env,
): IngestDeps {
  return {
    starter: new SfnPipelineStarter(new SFNClient({}), requireEnv('STATE_MACHINE_ARN', env)),
    lines: new DynamoLineStore(new DynamoDBClient({}), requireEnv('RELEASE_TABLE', env)),
    triggers: jsonEnv('STEPLINE_TRIGGERS', TriggersSchema, {}, env),
    settings: jsonEnv('STEPLINE_SETTINGS', PipelineSettingsSchema, {}, env),
    logger: createLogger(serviceName),
  };
}
