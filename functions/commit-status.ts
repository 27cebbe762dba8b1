import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { CodeBuildTestReports } from '#shared/aws/codebuild.ts';
import { SfnExecutionInputs } from '#shared/aws/sfn.ts';
import { SnsNotifier } from '#shared/aws/sns.ts';
import { SsmSecretReader } from '#shared/aws/ssm.ts';
import { requireEnv } from '#shared/config.ts';
import { type CommitStatusDeps, createCommitStatusHandler } from '#shared/handlers/commit-status.ts';
import { createLogger } from '#shared/logger.ts';
import { executionLink } from '#shared/notifications.ts';
import { statusTokensFor } from '#shared/secrets.ts';
import { StatusPublisher } from '#shared/status/publisher.ts';

function awsDeps(): CommitStatusDeps {
  const logger = createLogger('commitStatus');
  const region = requireEnv('AWS_REGION');
  return {
    publisher: new StatusPublisher({
      tokens: statusTokensFor(process.env, () => new SsmSecretReader(new SSMClient({}))),
      logger,
    }),
    executions: new SfnExecutionInputs(new SFNClient({})),
    // This function publishes to the notifications topic only; it has no approvals topic to publish to.
    notifier: new SnsNotifier(new SNSClient({}), {
      notifications: requireEnv('NOTIFICATIONS_TOPIC_ARN'),
      approvals: '',
    }),
    logger,
    runLink: (executionArn) => executionLink(region, executionArn),
    stateMachineArn: requireEnv('STATE_MACHINE_ARN'),
    testReports: new CodeBuildTestReports(requireEnv('TEST_PROJECT_NAME')),
  };
}

export const handler = createCommitStatusHandler(awsDeps());
