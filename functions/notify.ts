import { SNSClient } from '@aws-sdk/client-sns';
import { SnsNotifier } from '#shared/aws/sns.ts';
import { requireEnv } from '#shared/config.ts';
import { createNotifyHandler, type NotifyDeps } from '#shared/handlers/notify.ts';
import { createLogger } from '#shared/logger.ts';

function awsDeps(): NotifyDeps {
  const topicArn = requireEnv('NOTIFICATIONS_TOPIC_ARN');
  return {
    // This function publishes to the notifications topic only; it has no approvals topic to publish to.
    notifier: new SnsNotifier(new SNSClient({}), { notifications: topicArn, approvals: '' }),
    logger: createLogger('notify'),
    region: requireEnv('AWS_REGION'),
  };
}

export const handler = createNotifyHandler(awsDeps());
