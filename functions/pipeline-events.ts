import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { EventBridgeMilestoneEmitter } from '#shared/aws/eventbridge.ts';
import { awsReleaseLedger } from '#shared/aws/release.ts';
import { SfnPipelineStarter } from '#shared/aws/sfn.ts';
import { SnsNotifier } from '#shared/aws/sns.ts';
import { requireEnv } from '#shared/config.ts';
import { createPipelineEventsHandler, type PipelineEventsDeps } from '#shared/handlers/pipeline-events.ts';
import { createLogger } from '#shared/logger.ts';

function awsDeps(): PipelineEventsDeps {
  const topicArn = requireEnv('NOTIFICATIONS_TOPIC_ARN');
  const logger = createLogger('pipelineEvents');
  return {
    // This function publishes to the notifications topic only; it has no approvals topic to publish to.
    notifier: new SnsNotifier(new SNSClient({}), { notifications: topicArn, approvals: '' }),
    emitter: new EventBridgeMilestoneEmitter(new EventBridgeClient({}), requireEnv('EVENT_BUS_NAME')),
    ledger: awsReleaseLedger(logger),
    logger,
    region: requireEnv('AWS_REGION'),
    stateMachineArn: requireEnv('STATE_MACHINE_ARN'),
    rollback: {
      stateMachineArn: requireEnv('ROLLBACK_STATE_MACHINE_ARN'),
      starter: new SfnPipelineStarter(new SFNClient({}), requireEnv('ROLLBACK_STATE_MACHINE_ARN')),
    },
  };
}

export const handler = createPipelineEventsHandler(awsDeps());
