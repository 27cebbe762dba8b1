import { SSMClient } from '@aws-sdk/client-ssm';
import { awsIngestDeps } from '#shared/aws/ingest.ts';
import { SsmSecretReader } from '#shared/aws/ssm.ts';
import { createWebhookHandler, type WebhookDeps } from '#shared/handlers/webhook.ts';
import { secretFor } from '#shared/secrets.ts';

function awsDeps(): WebhookDeps {
  return {
    ...awsIngestDeps('webhook'),
    webhookSecret: secretFor('webhook', process.env, () => new SsmSecretReader(new SSMClient({}))),
  };
}

export const handler = createWebhookHandler(awsDeps());
