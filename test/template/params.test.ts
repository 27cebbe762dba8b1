// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${AWS::Region} and friends are CloudFormation Fn::Sub syntax
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

type Resolver = (context: { resolveVariable: (address: string) => Promise<unknown> }) => Promise<unknown>;

const params = createRequire(import.meta.url)('../../serverless.params.cjs') as Record<
  'emailSubscriptions' | 'codecommitEventDetail' | 'codecommitPullResources',
  Resolver
>;

/** What the framework's `resolveVariable` answers for `param:<name>`. */
function withParams(values: Record<string, string>) {
  return {
    resolveVariable: async (address: string) => {
      const name = address.replace(/^param:/, '');
      if (!(name in values)) throw new Error(`unexpected variable ${address}`);
      return values[name];
    },
  };
}

const NO_EMAILS = { approvalEmails: '', notificationEmails: '' };

describe('serverless.params.cjs', () => {
  it('subscribes no one when both email lists are empty', async () => {
    expect(await params.emailSubscriptions(withParams(NO_EMAILS))).toEqual({ Resources: {} });
  });

  it('subscribes each address once, trimmed, with a logical id made from it', async () => {
    const resources = await params.emailSubscriptions(
      withParams({ approvalEmails: ' a.lead@example.com ,, ', notificationEmails: 'ops+ci@example.org' }),
    );

    expect(resources).toEqual({
      Resources: {
        ApprovalsTopicEmailaleadexamplecom: {
          Type: 'AWS::SNS::Subscription',
          Properties: {
            TopicArn: { Ref: 'ApprovalsTopic' },
            Protocol: 'email',
            Endpoint: 'a.lead@example.com',
          },
        },
        NotificationsTopicEmailopsciexampleorg: {
          Type: 'AWS::SNS::Subscription',
          Properties: {
            TopicArn: { Ref: 'NotificationsTopic' },
            Protocol: 'email',
            Endpoint: 'ops+ci@example.org',
          },
        },
      },
    });
  });

  it('refuses an entry that is not an email address, naming the parameter', async () => {
    await expect(
      params.emailSubscriptions(withParams({ ...NO_EMAILS, notificationEmails: 'team@example.com;boss' })),
    ).rejects.toThrow('Parameter notificationEmails: "team@example.com;boss" is not an email address');
  });

  it('listens to every repository when none is configured', async () => {
    const values = withParams({ codecommitRepositories: '' });

    expect(await params.codecommitEventDetail(values)).toEqual({
      event: ['referenceCreated', 'referenceUpdated', 'referenceDeleted'],
    });
    expect(await params.codecommitPullResources(values)).toEqual([
      { 'Fn::Sub': 'arn:${AWS::Partition}:codecommit:${AWS::Region}:${AWS::AccountId}:*' },
    ]);
  });

  it('limits events and clones to the configured repositories', async () => {
    const values = withParams({ codecommitRepositories: 'shop, billing' });

    expect(await params.codecommitEventDetail(values)).toMatchObject({ repositoryName: ['shop', 'billing'] });
    expect(await params.codecommitPullResources(values)).toEqual([
      { 'Fn::Sub': 'arn:${AWS::Partition}:codecommit:${AWS::Region}:${AWS::AccountId}:shop' },
      { 'Fn::Sub': 'arn:${AWS::Partition}:codecommit:${AWS::Region}:${AWS::AccountId}:billing' },
    ]);
  });

  it('refuses a repository name CodeCommit would not accept', async () => {
    await expect(
      params.codecommitEventDetail(withParams({ codecommitRepositories: 'shop,bad name' })),
    ).rejects.toThrow('"bad name" is not a CodeCommit repository name');
  });
});
