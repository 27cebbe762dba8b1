import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { requireEnv } from '../config.ts';
import type { Logger } from '../logger.ts';
import { ReleaseLedger } from '../release-ledger.ts';
import { DynamoLineStore } from './dynamodb.ts';
import { SfnExecutionStopper, SfnTaskDecider } from './sfn.ts';
import { SnsNotifier } from './sns.ts';

/**
 * The release ledger on AWS, for the functions that take and release holds: the lines in the
 * `RELEASE_TABLE` DynamoDB table, task tokens and StopExecution through Step Functions, refusals published
 * to `NOTIFICATIONS_TOPIC_ARN`. Called from a Lambda's module scope only.
 */
export function awsReleaseLedger(logger: Logger, env: Record<string, string | undefined> = process.env) {
  const sfn = new SFNClient({});
  return new ReleaseLedger({
    store: new DynamoLineStore(new DynamoDBClient({}), requireEnv('RELEASE_TABLE', env)),
    decider: new SfnTaskDecider(sfn),
    stopper: new SfnExecutionStopper(sfn),
    // These functions publish to the notifications topic only.
    notifier: new SnsNotifier(new SNSClient({}), {
      notifications: requireEnv('NOTIFICATIONS_TOPIC_ARN', env),
      approvals: '',
    }),
    logger,
  });
}
