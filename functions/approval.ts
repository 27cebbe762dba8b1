import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { SfnRunStatusReader, SfnTaskDecider } from '#shared/aws/sfn.ts';
import { SsmSecretReader } from '#shared/aws/ssm.ts';
import { type ApprovalDeps, createApprovalHandler } from '#shared/handlers/approval.ts';
import { createLogger } from '#shared/logger.ts';
import { secretFor } from '#shared/secrets.ts';

function awsDeps(): ApprovalDeps {
  const sfn = new SFNClient({});
  return {
    decider: new SfnTaskDecider(sfn),
    runs: new SfnRunStatusReader(sfn),
    approvalKey: secretFor('approvalKey', process.env, () => new SsmSecretReader(new SSMClient({}))),
    logger: createLogger('approval'),
    now: () => new Date(),
  };
}

export const handler = createApprovalHandler(awsDeps());
