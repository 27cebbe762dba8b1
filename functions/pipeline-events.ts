import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { EventBridgeMilestoneEmitter } from '#shared/aws/eventbridge.ts';
import { awsReleaseLedger } from '#shared/aws/release.ts';
import { SfnPipelineStarter, SfnRunStatusReader } from '#shared/aws/sfn.ts';
import { SnsNotifier } from '#shared/aws/sns.ts';
import { requireEnv } from '#shared/config.ts';
import { createPipelineEventsHandler, type PipelineEventsDeps } from '#shared/handlers/pipeline-events.ts';
import { createLogger } from '#shared/logger.ts';

function awsDeps(): PipelineEventsDeps {
  const topicArn = requireEnv('NOTIFICATIONS_TOPIC_ARN');
  const logger = createLogger('pipelineEvents');
  const sfn = new SFNClient({});
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
      starter: new SfnPipelineStarter(sfn, requireEnv('ROLLBACK_STATE_MACHINE_ARN')),
      // Whether the failed run's Deploy is what failed (DescribeExecution on the pipeline's executions).
      runs: new SfnRunStatusReader(sfn),
    },
  };
}

export const handler = createPipelineEventsHandler(awsDeps());
