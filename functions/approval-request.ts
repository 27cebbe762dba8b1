import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { SfnTestOutcomes } from '#shared/aws/sfn.ts';
import { SnsNotifier, SnsSubscriberCounter } from '#shared/aws/sns.ts';
import { SsmSecretReader } from '#shared/aws/ssm.ts';
import { requireEnv } from '#shared/config.ts';
import { type ApprovalRequestDeps, createApprovalRequestHandler } from '#shared/handlers/approval-request.ts';
import { createLogger } from '#shared/logger.ts';
import { secretFor } from '#shared/secrets.ts';

function awsDeps(): ApprovalRequestDeps {
  const topicArn = requireEnv('APPROVALS_TOPIC_ARN');
  const sns = new SNSClient({});
  return {
    // This function publishes approval requests only; a notification would fail on the empty ARN.
    notifier: new SnsNotifier(sns, { approvals: topicArn, notifications: '' }),
    subscribers: new SnsSubscriberCounter(sns, topicArn),
    testOutcomes: new SfnTestOutcomes(new SFNClient({})),
    approvalKey: secretFor('approvalKey', process.env, () => new SsmSecretReader(new SSMClient({}))),
    baseUrl: requireEnv('APPROVAL_BASE_URL'),
    logger: createLogger('approvalRequest'),
    now: () => new Date(),
  };
}

export const handler = createApprovalRequestHandler(awsDeps());
