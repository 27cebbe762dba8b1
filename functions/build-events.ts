import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SNSClient } from '@aws-sdk/client-sns';
import { EventBridgeMilestoneEmitter } from '#shared/aws/eventbridge.ts';
import { SnsNotifier } from '#shared/aws/sns.ts';
import { requireEnv } from '#shared/config.ts';
import { type BuildEventsDeps, createBuildEventsHandler } from '#shared/handlers/build-events.ts';
import { createLogger } from '#shared/logger.ts';

function awsDeps(): BuildEventsDeps {
  const topicArn = requireEnv('NOTIFICATIONS_TOPIC_ARN');
  return {
    // This function publishes to the notifications topic only; it has no approvals topic to publish to.
    notifier: new SnsNotifier(new SNSClient({}), { notifications: topicArn, approvals: '' }),
    emitter: new EventBridgeMilestoneEmitter(new EventBridgeClient({}), requireEnv('EVENT_BUS_NAME')),
    logger: createLogger('buildEvents'),
    region: requireEnv('AWS_REGION'),
  };
}

export const handler = createBuildEventsHandler(awsDeps());
