'use strict';

/**
 * The parts of serverless.yml that come from list-valued parameters. `--param` values are strings, and
 * CloudFormation cannot turn a comma-separated string into one resource per item, so the lists are expanded
 * here, when the framework resolves `${file(./serverless.params.cjs):…}`.
 */

const EMAIL = /^[^\s@,;<>"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$/;
const REPOSITORY_NAME = /^[\w.-]{1,100}$/;

async function listParam(resolveVariable, name) {
  const raw = await resolveVariable(`param:${name}`);
  return String(raw ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function logicalIdPart(value) {
  return value.replace(/[^A-Za-z0-9]/g, '');
}

async function subscriptions(resolveVariable, paramName, topicLogicalId) {
  const emails = await listParam(resolveVariable, paramName);
  const resources = {};
  for (const email of emails) {
    if (!EMAIL.test(email)) {
      throw new Error(`Parameter ${paramName}: "${email}" is not an email address`);
    }
    resources[`${topicLogicalId}Email${logicalIdPart(email)}`] = {
      Type: 'AWS::SNS::Subscription',
      Properties: { TopicArn: { Ref: topicLogicalId }, Protocol: 'email', Endpoint: email },
    };
  }
  return resources;
}

async function codecommitRepositories(resolveVariable) {
  const names = await listParam(resolveVariable, 'codecommitRepositories');
  for (const name of names) {
    if (!REPOSITORY_NAME.test(name)) {
      throw new Error(`Parameter codecommitRepositories: "${name}" is not a CodeCommit repository name`);
    }
  }
  return names;
}

const codecommitArn = (name) => ({
  'Fn::Sub': `arn:\${AWS::Partition}:codecommit:\${AWS::Region}:\${AWS::AccountId}:${name}`,
});

module.exports = {
  /** One email subscription per address in `approvalEmails` and `notificationEmails` (none is fine). */
  emailSubscriptions: async ({ resolveVariable }) => ({
    Resources: {
      ...(await subscriptions(resolveVariable, 'approvalEmails', 'ApprovalsTopic')),
      ...(await subscriptions(resolveVariable, 'notificationEmails', 'NotificationsTopic')),
    },
  }),

  /** The CodeCommit event pattern's `detail`: limited to `codecommitRepositories` when it names any. */
  codecommitEventDetail: async ({ resolveVariable }) => {
    const names = await codecommitRepositories(resolveVariable);
    const detail = { event: ['referenceCreated', 'referenceUpdated', 'referenceDeleted'] };
    return names.length === 0 ? detail : { ...detail, repositoryName: names };
  },

  /** What the build projects may clone over CodeCommit: the named repositories, else any in the account and region. */
  codecommitPullResources: async ({ resolveVariable }) => {
    const names = await codecommitRepositories(resolveVariable);
    return names.length === 0 ? [codecommitArn('*')] : names.map(codecommitArn);
  },
};
