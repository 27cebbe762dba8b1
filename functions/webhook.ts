import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { awsIngestDeps, awsRunStopper } from '#shared/aws/ingest.ts';
import { SsmSecretReader } from '#shared/aws/ssm.ts';
import { createWebhookHandler, type WebhookDeps } from '#shared/handlers/webhook.ts';
import { webhookSecretsFor } from '#shared/secrets.ts';

function awsDeps(): WebhookDeps {
  const sfn = new SFNClient({});
  return {
    ...awsIngestDeps('webhook', process.env, sfn),
    webhookSecrets: webhookSecretsFor(process.env, () => new SsmSecretReader(new SSMClient({}))),
    builds: 'codebuild',
    runStopper: awsRunStopper(sfn),
  };
}

export const handler = createWebhookHandler(awsDeps());
