// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${AWS::Region} and friends are CloudFormation Fn::Sub syntax
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listStates } from '#local/stepfunctions/definition.ts';
import { STAGE_FAILED_LOG_MESSAGE } from '#shared/handlers/notify.ts';
import {
  allStatements,
  asList,
  type CfnResource,
  type CfnTemplate,
  PACKAGE_PARAMS,
  type PackagedStack,
  type PolicyStatement,
  packagedStack,
  resource,
  resourcesOfType,
  roleStatements,
  runServerlessPackage,
  zipEntryNames,
} from '../helpers/package-template.ts';

/** `serverless package` of the whole stack, offline, with every optional parameter set. */
let stack: PackagedStack;
let template: CfnTemplate;

beforeAll(async () => {
  stack = await packagedStack();
  template = stack.template;
}, 180_000);

afterAll(async () => {
  await stack?.remove();
});

const PREFIX = 'stepline-test';
const FUNCTION_KEYS = [
  'webhook',
  'codecommit',
  'approvalRequest',
  'approval',
  'notify',
  'buildEvents',
  'pipelineEvents',
  'holds',
  'commitStatus',
] as const;
type FunctionKey = (typeof FUNCTION_KEYS)[number];
/** The image project, and each environment's (dev and prod by default) Infrastructure, Deploy and Teardown. */
const PROJECTS = [
  'test',
  'image',
  ...['dev', 'prod'].flatMap((environment) =>
    ['infrastructure', 'deploy', 'teardown'].map((stage) => `${environment}-${stage}`),
  ),
];
const ENVIRONMENT_PROJECTS = PROJECTS.filter((name) => name !== 'image' && name !== 'test');

const logicalId = (key: FunctionKey) => `${key[0]?.toUpperCase()}${key.slice(1)}LambdaFunction`;
const fn = (key: FunctionKey) => resource(template, logicalId(key));
const props = (item: CfnResource) => item.Properties as Record<string, unknown>;
const sub = (text: string) => ({ 'Fn::Sub': text });
const getAtt = (id: string, attribute: string) => ({ 'Fn::GetAtt': [id, attribute] });

function environmentOf(key: FunctionKey): Record<string, unknown> {
  return (props(fn(key)).Environment as { Variables: Record<string, unknown> }).Variables;
}

function roleOf(key: FunctionKey): string {
  const role = props(fn(key)).Role as { 'Fn::GetAtt': [string, string] };
  return role['Fn::GetAtt'][0];
}

function rulesTargeting(key: FunctionKey): Record<string, unknown>[] {
  return resourcesOfType(template, 'AWS::Events::Rule')
    .map(([, rule]) => props(rule))
    .filter((rule) =>
      (rule.Targets as { Arn: unknown }[]).some(
        (target) => JSON.stringify(target.Arn) === JSON.stringify(getAtt(logicalId(key), 'Arn')),
      ),
    );
}

function onlyRuleTargeting(key: FunctionKey): Record<string, unknown> {
  const rules = rulesTargeting(key);
  expect(rules).toHaveLength(1);
  return rules[0] as Record<string, unknown>;
}

const lambdaLogs = (key: FunctionKey): PolicyStatement => ({
  Sid: 'Logs',
  Effect: 'Allow',
  Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
  Resource: sub(
    `arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/lambda/${PREFIX}-${key}:*`,
  ),
});
const parameter = (name: string) =>
  sub(`arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/stepline/test/${name}`);
const decryptSecrets: PolicyStatement = {
  Sid: 'DecryptSecrets',
  Effect: 'Allow',
  Action: 'kms:Decrypt',
  Resource: PACKAGE_PARAMS.secretsKmsKeyArn,
  Condition: { StringEquals: { 'kms:ViaService': sub('ssm.${AWS::Region}.amazonaws.com') } },
};
const publishNotification: PolicyStatement = {
  Sid: 'PublishNotification',
  Effect: 'Allow',
  Action: 'sns:Publish',
  Resource: { Ref: 'NotificationsTopic' },
};
const emitMilestone: PolicyStatement = {
  Sid: 'EmitMilestone',
  Effect: 'Allow',
  Action: 'events:PutEvents',
  Resource: getAtt('SteplineEventBus', 'Arn'),
};
const recordFailedEvent = (queue: string): PolicyStatement => ({
  Sid: 'RecordFailedEvent',
  Effect: 'Allow',
  Action: 'sqs:SendMessage',
  Resource: getAtt(queue, 'Arn'),
});
const startPipeline: PolicyStatement = {
  Sid: 'StartPipeline',
  Effect: 'Allow',
  Action: 'states:StartExecution',
  Resource: { Ref: 'PipelineStateMachine' },
};

/**
 * What each function may do, exactly. A permission added to serverless.yml fails this test until it is
 * added here on purpose.
 */
/** The pipeline's executions: what the release functions may stop and read. */
const pipelineExecutions = {
  'Fn::Sub':
    'arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:stepline-test-pipeline:*',
};
const releaseTable = { 'Fn::GetAtt': ['ReleaseTable', 'Arn'] };
const numberPushes: PolicyStatement = {
  Sid: 'NumberPushes',
  Effect: 'Allow',
  Action: 'dynamodb:UpdateItem',
  Resource: releaseTable,
};
/** Taking and releasing holds: the line's item only, read and conditionally updated; no scan, no delete. */
const releaseStatements: PolicyStatement[] = [
  {
    Sid: 'ReleaseLines',
    Effect: 'Allow',
    Action: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
    Resource: releaseTable,
  },
  {
    Sid: 'ResumeWaitingRuns',
    Effect: 'Allow',
    Action: ['states:SendTaskSuccess', 'states:SendTaskFailure'],
    Resource: '*',
  },
  { Sid: 'RetireRuns', Effect: 'Allow', Action: 'states:StopExecution', Resource: pipelineExecutions },
];

const FUNCTION_PERMISSIONS: Record<FunctionKey, PolicyStatement[]> = {
  webhook: [
    lambdaLogs('webhook'),
    startPipeline,
    // A pull request's newer head stops the runs of its older heads.
    {
      Sid: 'SupersedePullRequestRuns',
      Effect: 'Allow',
      Action: 'states:ListExecutions',
      Resource: { Ref: 'PipelineStateMachine' },
    },
    {
      Sid: 'StopSupersededRuns',
      Effect: 'Allow',
      Action: 'states:StopExecution',
      Resource: sub(
        'arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:stepline-test-pipeline:*',
      ),
    },
    numberPushes,
    {
      // The listed providers' secrets only (webhookProviders: github,gitlab); the third entry is unused.
      Sid: 'ReadWebhookSecrets',
      Effect: 'Allow',
      Action: 'ssm:GetParameter',
      Resource: [0, 1, 2].map((index) => ({
        'Fn::Sub': [
          'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/stepline/test/webhook-secret/${Provider}',
          { Provider: { 'Fn::Select': [index, { 'Fn::Split': [',', 'github,gitlab,,'] }] } },
        ],
      })),
    },
    decryptSecrets,
  ],
  codecommit: [
    lambdaLogs('codecommit'),
    startPipeline,
    numberPushes,
    recordFailedEvent('CodecommitDeadLetterQueue'),
  ],
  approvalRequest: [
    lambdaLogs('approvalRequest'),
    {
      Sid: 'PublishApprovalRequest',
      Effect: 'Allow',
      Action: 'sns:Publish',
      Resource: { Ref: 'ApprovalsTopic' },
    },
    // ListSubscriptionsByTopic takes the topic as its resource:
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsns.html
    {
      Sid: 'CountApprovalSubscribers',
      Effect: 'Allow',
      Action: 'sns:ListSubscriptionsByTopic',
      Resource: { Ref: 'ApprovalsTopic' },
    },
    // GetExecutionHistory is an execution-level action, so it takes the pipeline's executions as resource:
    // https://docs.aws.amazon.com/step-functions/latest/dg/concept-create-iam-advanced.html
    {
      Sid: 'ReadRunHistory',
      Effect: 'Allow',
      Action: 'states:GetExecutionHistory',
      Resource: pipelineExecutions,
    },
    {
      Sid: 'ReadApprovalKey',
      Effect: 'Allow',
      Action: 'ssm:GetParameter',
      Resource: parameter('approval-key'),
    },
    decryptSecrets,
  ],
  approval: [
    lambdaLogs('approval'),
    {
      Sid: 'DecideApproval',
      Effect: 'Allow',
      Action: ['states:SendTaskSuccess', 'states:SendTaskFailure'],
      Resource: '*',
    },
    // A link of a retired run answers "superseded by": its status and cause.
    {
      Sid: 'ReadRunStatus',
      Effect: 'Allow',
      Action: 'states:DescribeExecution',
      Resource: pipelineExecutions,
    },
    {
      Sid: 'ReadApprovalKey',
      Effect: 'Allow',
      Action: 'ssm:GetParameter',
      Resource: parameter('approval-key'),
    },
    decryptSecrets,
  ],
  notify: [lambdaLogs('notify'), publishNotification],
  buildEvents: [
    lambdaLogs('buildEvents'),
    publishNotification,
    emitMilestone,
    recordFailedEvent('BuildEventsDeadLetterQueue'),
  ],
  pipelineEvents: [
    lambdaLogs('pipelineEvents'),
    ...releaseStatements,
    // Automatic rollback: StartExecution of the rollback machine only (its resource is the state machine:
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html).
    {
      Sid: 'StartAutomaticRollback',
      Effect: 'Allow',
      Action: 'states:StartExecution',
      Resource: sub(
        `arn:\${AWS::Partition}:states:\${AWS::Region}:\${AWS::AccountId}:stateMachine:${PREFIX}-rollback`,
      ),
    },
    // Which stage the failed run failed at (only a failed Deploy is rolled back): the pipeline's executions.
    {
      Sid: 'ReadFailedStage',
      Effect: 'Allow',
      Action: 'states:DescribeExecution',
      Resource: pipelineExecutions,
    },
    publishNotification,
    emitMilestone,
    recordFailedEvent('PipelineEventsDeadLetterQueue'),
  ],
  holds: [lambdaLogs('holds'), ...releaseStatements, publishNotification],
  commitStatus: [
    lambdaLogs('commitStatus'),
    // DescribeExecution takes the execution as its resource:
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html
    {
      Sid: 'ReadRunInput',
      Effect: 'Allow',
      Action: 'states:DescribeExecution',
      Resource: sub(
        `arn:\${AWS::Partition}:states:\${AWS::Region}:\${AWS::AccountId}:execution:${PREFIX}-pipeline:*`,
      ),
    },
    // The Test build's reports, for the test counts of its status: that project and its report groups only
    // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscodebuild.html).
    {
      Sid: 'ReadTestReports',
      Effect: 'Allow',
      Action: 'codebuild:BatchGetBuilds',
      Resource: sub(
        `arn:\${AWS::Partition}:codebuild:\${AWS::Region}:\${AWS::AccountId}:project/${PREFIX}-test`,
      ),
    },
    {
      Sid: 'ReadTestReportCounts',
      Effect: 'Allow',
      Action: 'codebuild:BatchGetReports',
      Resource: sub(
        `arn:\${AWS::Partition}:codebuild:\${AWS::Region}:\${AWS::AccountId}:report-group/${PREFIX}-test-*`,
      ),
    },
    publishNotification,
    {
      // The listed providers' tokens only (statusProviders: github,bitbucket); the third entry is unused.
      Sid: 'ReadStatusTokens',
      Effect: 'Allow',
      Action: 'ssm:GetParameter',
      Resource: [0, 1, 2].map((index) => ({
        'Fn::Sub': [
          'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/stepline/test/status-token/${Provider}',
          { Provider: { 'Fn::Select': [index, { 'Fn::Split': [',', 'github,bitbucket,,'] }] } },
        ],
      })),
    },
    decryptSecrets,
    recordFailedEvent('CommitStatusDeadLetterQueue'),
  ],
};

/** The only actions allowed on `"Resource": "*"`, each because AWS gives it no resource-level permission. */
const STAR_RESOURCE_EXCEPTIONS: Record<string, string> = {
  'states:SendTaskSuccess': 'authorized by the task token itself; the action has no resource type',
  'states:SendTaskFailure': 'authorized by the task token itself; the action has no resource type',
  'ecr:GetAuthorizationToken': 'signs in to the registry, not to a repository; no resource type',
  'logs:CreateLogDelivery': 'Step Functions logging: the log delivery APIs have no resource type',
  'logs:GetLogDelivery': 'Step Functions logging: the log delivery APIs have no resource type',
  'logs:UpdateLogDelivery': 'Step Functions logging: the log delivery APIs have no resource type',
  'logs:DeleteLogDelivery': 'Step Functions logging: the log delivery APIs have no resource type',
  'logs:ListLogDeliveries': 'Step Functions logging: the log delivery APIs have no resource type',
  'logs:PutResourcePolicy': 'Step Functions logging: resource policies are account-wide',
  'logs:DescribeResourcePolicies': 'Step Functions logging: resource policies are account-wide',
  'logs:DescribeLogGroups': 'Step Functions logging: lists log groups, no resource type',
};

function definitionOf(stateMachineLogicalId: string): {
  text: string;
  substitutions: Record<string, unknown>;
} {
  const definition = props(resource(template, stateMachineLogicalId)).DefinitionString as
    | string
    | { 'Fn::Sub': string | [string, Record<string, unknown>] };
  if (typeof definition === 'string') return { text: definition, substitutions: {} };
  const body = definition['Fn::Sub'];
  return typeof body === 'string'
    ? { text: body, substitutions: {} }
    : { text: body[0], substitutions: body[1] };
}

/** True when the definition invokes the function: by Fn::GetAtt substitution, or by its literal name or ARN. */
function invokes(stateMachineLogicalId: string, key: FunctionKey): boolean {
  const { text, substitutions } = definitionOf(stateMachineLogicalId);
  const byGetAtt = Object.entries(substitutions).some(
    ([name, value]) =>
      JSON.stringify(value) === JSON.stringify(getAtt(logicalId(key), 'Arn')) && text.includes(`\${${name}}`),
  );
  return byGetAtt || new RegExp(`"(arn:[^"]*:function:)?${PREFIX}-${key}(:[^"]*)?"`).test(text);
}

describe('serverless package', () => {
  it('packages offline into the given folder', async () => {
    const file = await stat(join(stack.outputDir, 'cloudformation-template-update-stack.json'));

    expect(file.isFile()).toBe(true);
    console.info(`serverless package took ${(stack.durationMs / 1000).toFixed(1)} s`);
  });

  it('refuses to package without the managed policy the Terraform builds run with, naming the environments', async () => {
    const { infrastructurePolicyArn: _, ...withoutPolicy } = PACKAGE_PARAMS;

    const run = await runServerlessPackage(withoutPolicy);
    await rm(run.workDir, { recursive: true, force: true });

    expect(run.exitCode).not.toBe(0);
    expect(run.output).toContain('Parameter infrastructurePolicyArn: required');
    expect(run.output).toContain('environment dev, prod names no infrastructurePolicyArn in settings');
  }, 120_000);

  it.each(FUNCTION_KEYS)(
    'zips %s as its handler bundled into one CommonJS file, and nothing else',
    async (key) => {
      const zip = await readFile(join(stack.outputDir, `${key}.zip`));
      const handler = props(fn(key)).Handler as string;

      expect(handler).toMatch(/^functions\/[a-z-]+\.handler$/);
      expect(zipEntryNames(zip)).toEqual([`${handler.replace(/\.handler$/, '')}.js`]);
    },
  );
});

describe('functions', () => {
  it('declares exactly the nine functions, named after the stage', () => {
    const names = resourcesOfType(template, 'AWS::Lambda::Function').map(
      ([, item]) => props(item).FunctionName,
    );

    expect(names.sort()).toEqual(FUNCTION_KEYS.map((key) => `${PREFIX}-${key}`).sort());
  });

  it.each(FUNCTION_KEYS)('runs %s on nodejs24.x and arm64', (key) => {
    expect(props(fn(key)).Runtime).toBe('nodejs24.x');
    expect(props(fn(key)).Architectures).toEqual(['arm64']);
  });

  it('gives each function the environment variables its handler reads', () => {
    const approvalKey = '/stepline/test/approval-key';
    const stateMachine = { Ref: 'PipelineStateMachine' };
    const notifications = { Ref: 'NotificationsTopic' };
    const bus = { Ref: 'SteplineEventBus' };

    expect(environmentOf('webhook')).toMatchObject({
      STATE_MACHINE_ARN: stateMachine,
      WEBHOOK_PROVIDERS: 'github,gitlab',
      WEBHOOK_SECRET_PARAMETER_PREFIX: '/stepline/test/webhook-secret',
      STEPLINE_TRIGGERS: PACKAGE_PARAMS.triggers,
      STEPLINE_SETTINGS: PACKAGE_PARAMS.settings,
    });
    expect(environmentOf('codecommit')).toMatchObject({
      STATE_MACHINE_ARN: stateMachine,
      STEPLINE_TRIGGERS: PACKAGE_PARAMS.triggers,
      STEPLINE_SETTINGS: PACKAGE_PARAMS.settings,
    });
    expect(environmentOf('codecommit')).not.toHaveProperty('WEBHOOK_SECRET_PARAMETER_PREFIX');
    expect(environmentOf('approvalRequest')).toMatchObject({
      APPROVALS_TOPIC_ARN: { Ref: 'ApprovalsTopic' },
      APPROVAL_KEY_PARAMETER: approvalKey,
    });
    expect(environmentOf('approval')).toMatchObject({ APPROVAL_KEY_PARAMETER: approvalKey });
    expect(environmentOf('notify')).toMatchObject({ NOTIFICATIONS_TOPIC_ARN: notifications });
    expect(environmentOf('buildEvents')).toMatchObject({
      NOTIFICATIONS_TOPIC_ARN: notifications,
      EVENT_BUS_NAME: bus,
    });
    expect(environmentOf('pipelineEvents')).toMatchObject({
      NOTIFICATIONS_TOPIC_ARN: notifications,
      EVENT_BUS_NAME: bus,
      STATE_MACHINE_ARN: stateMachine,
      ROLLBACK_STATE_MACHINE_ARN: { Ref: 'RollbackStateMachine' },
      RELEASE_TABLE: { Ref: 'ReleaseTable' },
    });
    expect(environmentOf('holds')).toMatchObject({
      IMAGE_REPOSITORY_URI: { 'Fn::GetAtt': ['ImageRepository', 'RepositoryUri'] },
    });
    expect(environmentOf('commitStatus')).toEqual({
      POWERTOOLS_SERVICE_NAME: 'stepline',
      NOTIFICATIONS_TOPIC_ARN: notifications,
      STATE_MACHINE_ARN: stateMachine,
      TEST_PROJECT_NAME: 'stepline-test-test',
      STATUS_PROVIDERS: 'github,bitbucket',
      STATUS_TOKEN_PARAMETER_PREFIX: '/stepline/test/status-token',
    });
    expect(environmentOf('holds')).toMatchObject({
      RELEASE_TABLE: { Ref: 'ReleaseTable' },
      NOTIFICATIONS_TOPIC_ARN: notifications,
    });
    for (const key of ['webhook', 'codecommit'] as const) {
      expect(environmentOf(key)).toMatchObject({ RELEASE_TABLE: { Ref: 'ReleaseTable' } });
    }
  });

  it('builds the approval base URL from the HTTP API of this stack', () => {
    expect(environmentOf('approvalRequest').APPROVAL_BASE_URL).toEqual({
      'Fn::Join': [
        '',
        [
          'https://',
          { Ref: 'HttpApi' },
          '.execute-api.',
          { Ref: 'AWS::Region' },
          '.',
          { Ref: 'AWS::URLSuffix' },
          '/approvals',
        ],
      ],
    });
  });
});

describe('HTTP API', () => {
  it('is an HTTP API', () => {
    expect(props(resource(template, 'HttpApi')).ProtocolType).toBe('HTTP');
  });

  it('routes webhooks and approvals to their functions with payload format 2.0', () => {
    const routes = resourcesOfType(template, 'AWS::ApiGatewayV2::Route').map(([, route]) => {
      const target = props(route).Target as { 'Fn::Join': [string, [string, { Ref: string }]] };
      const integration = props(resource(template, target['Fn::Join'][1][1].Ref));
      const uri = integration.IntegrationUri as { 'Fn::GetAtt': [string, string] };
      expect(integration.PayloadFormatVersion).toBe('2.0');
      return `${props(route).RouteKey} -> ${uri['Fn::GetAtt'][0]}`;
    });

    expect(routes.sort()).toEqual([
      'GET /approvals/{token} -> ApprovalLambdaFunction',
      'POST /approvals/{token} -> ApprovalLambdaFunction',
      'POST /webhooks/{provider} -> WebhookLambdaFunction',
    ]);
  });
});

describe('EventBridge rules', () => {
  it('sends CodeCommit pushes of the configured repositories to codecommit', () => {
    const rule = onlyRuleTargeting('codecommit');

    expect(rule.EventBusName).toBeUndefined();
    expect(rule.EventPattern).toEqual({
      source: ['aws.codecommit'],
      'detail-type': ['CodeCommit Repository State Change'],
      detail: {
        event: ['referenceCreated', 'referenceUpdated', 'referenceDeleted'],
        repositoryName: ['shop', 'billing'],
      },
    });
  });

  it("sends every project's build state and phase changes to buildEvents", () => {
    expect(onlyRuleTargeting('buildEvents').EventPattern).toEqual({
      source: ['aws.codebuild'],
      'detail-type': ['CodeBuild Build State Change', 'CodeBuild Build Phase Change'],
      detail: { 'project-name': PROJECTS.map((project) => `${PREFIX}-${project}`) },
    });
  });

  it("sends the pipeline's and the rollback machine's execution status changes to pipelineEvents", () => {
    expect(onlyRuleTargeting('pipelineEvents').EventPattern).toEqual({
      source: ['aws.states'],
      'detail-type': ['Step Functions Execution Status Change'],
      detail: { stateMachineArn: [{ Ref: 'PipelineStateMachine' }, { Ref: 'RollbackStateMachine' }] },
    });
  });

  it("sends the pipeline's execution status changes and its builds' state changes to commitStatus", () => {
    const patterns = rulesTargeting('commitStatus').map((rule) => rule.EventPattern);
    expect(patterns).toEqual([
      {
        source: ['aws.states'],
        'detail-type': ['Step Functions Execution Status Change'],
        detail: { stateMachineArn: [{ Ref: 'PipelineStateMachine' }] },
      },
      {
        source: ['aws.codebuild'],
        'detail-type': ['CodeBuild Build State Change'],
        detail: { 'project-name': PROJECTS.map((project) => `${PREFIX}-${project}`) },
      },
    ]);
  });

  it("lets EventBridge put commitStatus's undelivered events in its queue, from its two rules only", () => {
    const rules = resourcesOfType(template, 'AWS::Events::Rule')
      .map(([, rule]) => props(rule))
      .filter((rule) => rulesTargeting('commitStatus').includes(rule))
      .map((rule) => rule.Name);
    expect(rules).toEqual([`${PREFIX}-commitStatus-rule-1`, `${PREFIX}-commitStatus-rule-2`]);
    const statement = (
      props(resource(template, 'CommitStatusDeadLetterQueuePolicy')).PolicyDocument as {
        Statement: PolicyStatement[];
      }
    ).Statement[0];
    expect(statement?.Condition).toEqual({
      ArnEquals: {
        'aws:SourceArn': rules.map((name) =>
          sub(`arn:\${AWS::Partition}:events:\${AWS::Region}:\${AWS::AccountId}:rule/${name}`),
        ),
      },
    });
    for (const rule of rulesTargeting('commitStatus')) {
      expect((rule.Targets as { DeadLetterConfig?: unknown }[])[0]?.DeadLetterConfig).toEqual({
        Arn: getAtt('CommitStatusDeadLetterQueue', 'Arn'),
      });
    }
  });

  it.each(['webhook', 'approvalRequest', 'approval', 'notify', 'holds'] as const)(
    'triggers %s by no rule',
    (key) => {
      expect(rulesTargeting(key)).toEqual([]);
    },
  );
});

describe('the release table', () => {
  const table = () => props(resource(template, 'ReleaseTable'));

  it('is a DynamoDB table keyed by line alone, billed on demand, with point-in-time recovery', () => {
    expect(resource(template, 'ReleaseTable').Type).toBe('AWS::DynamoDB::Table');
    expect(table()).toMatchObject({
      TableName: `${PREFIX}-release`,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'line', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'line', AttributeType: 'S' }],
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });

  it('is written by no function but the ones that number pushes and take or release holds', () => {
    const writers = FUNCTION_KEYS.filter((key) =>
      roleStatements(template, roleOf(key)).some((statement) =>
        JSON.stringify(statement.Resource).includes('ReleaseTable'),
      ),
    );
    expect(writers.sort()).toEqual(['codecommit', 'holds', 'pipelineEvents', 'webhook']);
  });
});

describe('IAM', () => {
  it.each(FUNCTION_KEYS)('lets %s do exactly its own job', (key) => {
    expect(roleStatements(template, roleOf(key))).toEqual(FUNCTION_PERMISSIONS[key]);
  });

  it('gives every function a role of its own, assumable by Lambda only, with no managed policy', () => {
    const roles = FUNCTION_KEYS.map(roleOf);

    expect(new Set(roles).size).toBe(FUNCTION_KEYS.length);
    for (const role of roles) {
      const roleProps = props(resource(template, role));
      expect(roleProps.ManagedPolicyArns).toBeUndefined();
      expect(roleProps.AssumeRolePolicyDocument).toEqual({
        Version: '2012-10-17',
        Statement: [
          { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
        ],
      });
    }
  });

  it('drops kms:Decrypt when no customer key encrypts the secrets', () => {
    const withoutKey: CfnTemplate = {
      ...template,
      Conditions: { ...template.Conditions, UseSecretsKmsKey: { 'Fn::Equals': ['a', 'b'] } },
    };

    expect(roleStatements(withoutKey, roleOf('webhook'))).toEqual(
      FUNCTION_PERMISSIONS.webhook.filter((statement) => statement !== decryptSecrets),
    );
  });

  it('allows no wildcard action anywhere', () => {
    const wildcards = allStatements(template)
      .filter(({ statement }) => statement.Effect === 'Allow')
      .flatMap(({ where, statement }) =>
        asList(statement.Action)
          .filter((action) => action.includes('*'))
          .map((action) => `${where}: ${action}`),
      );

    expect(wildcards).toEqual([]);
  });

  it("denies s3:* over plain HTTP on the framework's deployment bucket, and the rest only to builds", () => {
    const denials = allStatements(template).filter(({ statement }) => statement.Effect === 'Deny');
    const buildRoles = resourcesOfType(template, 'AWS::IAM::Role')
      .filter(([, item]) =>
        JSON.stringify(props(item).AssumeRolePolicyDocument).includes('codebuild.amazonaws.com'),
      )
      .map(([id]) => id);

    expect(
      denials.filter(({ where }) => where !== 'BuildGuardrailsPolicy' && !buildRoles.includes(where)),
    ).toEqual([
      {
        where: 'ServerlessDeploymentBucketPolicy',
        statement: expect.objectContaining({
          Action: 's3:*',
          Condition: { Bool: { 'aws:SecureTransport': false } },
        }),
      },
    ]);
    expect(buildRoles).toHaveLength(PROJECTS.length);
    for (const role of buildRoles) {
      expect(props(resource(template, role)).ManagedPolicyArns).toContainEqual({
        Ref: 'BuildGuardrailsPolicy',
      });
    }
  });

  it('allows "Resource": "*" only for the actions AWS gives no resource-level permission', () => {
    const unjustified = allStatements(template)
      .filter(({ statement }) => statement.Effect === 'Allow' && asList(statement.Resource).includes('*'))
      .flatMap(({ where, statement }) =>
        asList(statement.Action)
          .filter((action) => !(action in STAR_RESOURCE_EXCEPTIONS))
          .map((action) => `${where}: ${action}`),
      );

    expect(unjustified).toEqual([]);
  });

  it("lets the pipeline state machine run only the stack's projects and invoke only its three functions", () => {
    const statements = roleStatements(template, 'PipelineStateMachineRole');
    const resourcesFor = (action: string) =>
      statements.filter((s) => asList(s.Action).includes(action)).flatMap((s) => asList(s.Resource));

    const projectArn = (project: string) =>
      sub(`arn:\${AWS::Partition}:codebuild:\${AWS::Region}:\${AWS::AccountId}:project/${PREFIX}-${project}`);
    const projectsRun = PROJECTS.filter((project) => !project.endsWith('-teardown'));
    for (const action of ['codebuild:StartBuild', 'codebuild:StopBuild', 'codebuild:BatchGetBuilds']) {
      expect(resourcesFor(action)).toEqual(expect.arrayContaining(projectsRun.map(projectArn)));
      expect(resourcesFor(action)).toHaveLength(projectsRun.length);
    }
    const managedRule = sub(
      'arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/StepFunctionsGetEventForCodeBuildStartBuildRule',
    );
    for (const action of ['events:PutTargets', 'events:PutRule', 'events:DescribeRule']) {
      expect(resourcesFor(action)).toEqual([managedRule]);
    }
    const invoked = JSON.stringify(resourcesFor('lambda:InvokeFunction'));
    const functionsInvoked = FUNCTION_KEYS.filter(
      (key) =>
        invoked.includes(`"${logicalId(key)}"`) ||
        new RegExp(`function:${PREFIX}-${key}(:\\*)?"`).test(invoked),
    );
    expect(functionsInvoked.sort()).toEqual(['approvalRequest', 'holds', 'notify']);
  });
});

describe('state machines', () => {
  it('names the two state machines after the stage', () => {
    expect(props(resource(template, 'PipelineStateMachine')).StateMachineName).toBe(`${PREFIX}-pipeline`);
    expect(props(resource(template, 'TeardownStateMachine')).StateMachineName).toBe(`${PREFIX}-teardown`);
  });

  it.each(['PipelineStateMachine', 'TeardownStateMachine'])(
    '%s has its framework variables resolved',
    (stateMachine) => {
      const { text, substitutions } = definitionOf(stateMachine);
      const placeholders = [...text.matchAll(/\$\{([^}]*)\}/g)].map((match) => match[1] ?? '');

      expect(text).not.toMatch(/\$\{(self|sls|param|opt|env|file):/);
      expect(placeholders.filter((name) => !(name in substitutions) && !name.startsWith('AWS::'))).toEqual(
        [],
      );
    },
  );

  it('runs the real CodeBuild projects of the stage, the environment choosing its own', () => {
    const pipeline = definitionOf('PipelineStateMachine').text;
    const teardown = definitionOf('TeardownStateMachine').text;

    expect(pipeline).toContain(`"ProjectName": "${PREFIX}-image"`);
    for (const stage of ['infrastructure', 'deploy']) {
      expect(pipeline).toContain(`"ProjectName.$": "States.Format('${PREFIX}-{}-${stage}', $.environment)"`);
    }
    expect(teardown).toContain(`"ProjectName.$": "States.Format('${PREFIX}-{}-teardown', $.environment)"`);
  });

  it('invokes the approval request and notify functions of this stack', () => {
    expect(invokes('PipelineStateMachine', 'approvalRequest')).toBe(true);
    expect(invokes('PipelineStateMachine', 'notify')).toBe(true);
  });

  it.each(['PipelineStateMachine', 'TeardownStateMachine'])(
    '%s logs errors to its own log group without execution data',
    (stateMachine) => {
      const logging = props(resource(template, stateMachine)).LoggingConfiguration as Record<string, unknown>;

      expect(['ERROR', 'ALL']).toContain(logging.Level);
      expect(logging.IncludeExecutionData).toBe(false);
      expect(logging.Destinations).toEqual([
        { CloudWatchLogsLogGroup: { LogGroupArn: getAtt(`${stateMachine}LogGroup`, 'Arn') } },
      ]);
      expect(props(resource(template, `${stateMachine}LogGroup`)).LogGroupName).toBe(
        `/aws/vendedlogs/states/${PREFIX}-${stateMachine === 'PipelineStateMachine' ? 'pipeline' : 'teardown'}`,
      );
    },
  );

  // A rejected or expired approval fails the execution as surely as a failed build, but it is a decision
  // people made: the alarm counts the Fail states that end a stage failure, read from the ERROR-level log
  // (https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html), not AWS/States ExecutionsFailed.
  it('alarms on failed pipeline stages, not on every failed execution', () => {
    const alarms = resourcesOfType(template, 'AWS::CloudWatch::Alarm').map(([, item]) => props(item));
    const onPipelineExecutions = alarms.filter(
      (item) =>
        item.Namespace === 'AWS/States' && JSON.stringify(item.Dimensions).includes('"PipelineStateMachine"'),
    );
    const filter = metricFilterOn('PipelineStateMachineLogGroup');
    const [transformation] = props(filter as CfnResource).MetricTransformations as Record<string, unknown>[];
    const alarm = alarms.find(
      (item) =>
        item.Namespace === transformation?.MetricNamespace && item.MetricName === transformation?.MetricName,
    );

    expect(onPipelineExecutions).toEqual([]);
    expect(props(filter as CfnResource).LogGroupName).toEqual({ Ref: 'PipelineStateMachineLogGroup' });
    expect(transformation).toMatchObject({ MetricNamespace: PREFIX, MetricValue: '1' });
    expect(alarm).toMatchObject({
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: 'NotificationsTopic' }],
    });
  });

  /** The metric filter on this log group. */
  function metricFilterOn(logGroup: string): CfnResource | undefined {
    return resourcesOfType(template, 'AWS::Logs::MetricFilter')
      .map(([, item]) => item)
      .find((item) => JSON.stringify(props(item).LogGroupName) === JSON.stringify({ Ref: logGroup }));
  }

  it('counts into the same metric each failed build, from the line the notify function logs as it ends the run', () => {
    const stateMachineFilter = props(metricFilterOn('PipelineStateMachineLogGroup') as CfnResource);
    const filter = props(metricFilterOn('NotifyLogGroup') as CfnResource);

    expect(resource(template, 'NotifyLogGroup')).toBeDefined();
    expect(filter.FilterPattern).toBe(
      `{ ($.level = "ERROR") && ($.message = "${STAGE_FAILED_LOG_MESSAGE}") }`,
    );
    expect(filter.MetricTransformations).toEqual(stateMachineFilter.MetricTransformations);
  });

  it("counts every Fail state of the pipeline but those that end a person's decision", () => {
    const filter = metricFilterOn('PipelineStateMachineLogGroup');
    const pattern = String(props(filter as CfnResource).FilterPattern);
    const excluded = [...pattern.matchAll(/\$\.details\.name != "([^"]+)"/g)].map((match) => match[1]);
    const fails = listStates(JSON.parse(definitionOf('PipelineStateMachine').text)).filter(
      ({ state }) => state.Type === 'Fail',
    );
    const decisions = fails.filter(({ state }) => String(state.Error).startsWith('Approval.'));

    expect(pattern).toMatch(/^\{ \(\$\.type = "FailStateEntered"\) && /);
    expect(pattern).not.toContain('||');
    expect(decisions.map(({ name }) => name).sort()).toEqual(['Expired', 'Rejected']);
    expect(excluded.sort()).toEqual(decisions.map(({ name }) => name).sort());
    expect(fails.length).toBeGreaterThan(decisions.length);
    // FailStateEntered is logged from level ERROR up.
    const logging = props(resource(template, 'PipelineStateMachine')).LoggingConfiguration as {
      Level: string;
    };
    expect(['ERROR', 'ALL']).toContain(logging.Level);
  });

  it('still alarms on every failed teardown execution: none is a decision', () => {
    const alarm = resourcesOfType(template, 'AWS::CloudWatch::Alarm')
      .map(([, item]) => props(item))
      .find(
        (item) =>
          item.MetricName === 'ExecutionsFailed' &&
          JSON.stringify(item.Dimensions).includes('"Ref":"TeardownStateMachine"'),
      );

    expect(alarm).toMatchObject({ Namespace: 'AWS/States', AlarmActions: [{ Ref: 'NotificationsTopic' }] });
  });

  it('lets CloudWatch alarms of this account publish to the notifications topic', () => {
    const policy = props(resource(template, 'NotificationsTopicPolicy'));

    expect(policy.Topics).toEqual([{ Ref: 'NotificationsTopic' }]);
    expect(JSON.stringify(policy.PolicyDocument)).toContain('cloudwatch.amazonaws.com');
  });
});

describe('CodeBuild', () => {
  const project = (name: string) =>
    resourcesOfType(template, 'AWS::CodeBuild::Project')
      .map(([, item]) => props(item))
      .find((item) => item.Name === `${PREFIX}-${name}`) as Record<string, unknown>;
  const environment = (name: string) => project(name).Environment as Record<string, unknown>;
  const serviceRole = (name: string) =>
    (project(name).ServiceRole as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];

  it.each(PROJECTS)(
    'declares the %s project with no source of its own, a timeout and its own role',
    (name) => {
      expect(project(name)).toBeDefined();
      expect((project(name).Source as { Type: string }).Type).toBe('NO_SOURCE');
      expect(project(name).TimeoutInMinutes).toBeGreaterThan(0);
      expect(environment(name).Image).toMatch(/^aws\/codebuild\/amazonlinux/);
    },
  );

  it('gives each project a different role', () => {
    expect(new Set(PROJECTS.map(serviceRole)).size).toBe(PROJECTS.length);
  });

  it('runs Docker only in the image project', () => {
    expect(PROJECTS.filter((name) => environment(name).PrivilegedMode === true)).toEqual(['image']);
  });

  it('hands the buildspecs the repository, the state bucket, the cluster name and the environment', () => {
    const variables = (name: string) => environment(name).EnvironmentVariables;

    expect((variables('image') as unknown[])[0]).toEqual({
      Name: 'IMAGE_REPOSITORY_URI',
      Type: 'PLAINTEXT',
      Value: getAtt('ImageRepository', 'RepositoryUri'),
    });
    for (const env of ['dev', 'prod']) {
      const own = { Name: 'STEPLINE_PROJECT_ENVIRONMENT', Type: 'PLAINTEXT', Value: env };
      for (const stage of ['infrastructure', 'teardown']) {
        expect(variables(`${env}-${stage}`)).toEqual([
          own,
          { Name: 'TF_STATE_BUCKET', Type: 'PLAINTEXT', Value: PACKAGE_PARAMS.terraformStateBucket },
        ]);
      }
      expect(variables(`${env}-deploy`)).toEqual([
        own,
        { Name: 'EKS_CLUSTER_NAME', Type: 'PLAINTEXT', Value: PACKAGE_PARAMS.eksClusterName },
      ]);
    }
  });

  it('runs Terraform with the managed policy the user supplies, and only there', () => {
    const managed = (name: string) => props(resource(template, serviceRole(name))).ManagedPolicyArns;
    const guardrails = { Ref: 'BuildGuardrailsPolicy' };

    for (const name of ENVIRONMENT_PROJECTS) {
      expect(managed(name)).toEqual(
        name.endsWith('-deploy') ? [guardrails] : [PACKAGE_PARAMS.infrastructurePolicyArn, guardrails],
      );
    }
    expect(managed('image')).toEqual([guardrails]);
  });

  it('lets the image project push to its one repository, pull through the Docker Hub cache, and nothing else', () => {
    const statements = roleStatements(template, serviceRole('image'));
    const repository = getAtt('ImageRepository', 'Arn');

    expect(statements.map((s) => [s.Sid, s.Resource])).toEqual([
      [
        'Logs',
        sub(
          `arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/codebuild/${PREFIX}-image:*`,
        ),
      ],
      [
        'PullSource',
        ['shop', 'billing'].map((name) =>
          sub(`arn:\${AWS::Partition}:codecommit:\${AWS::Region}:\${AWS::AccountId}:${name}`),
        ),
      ],
      [
        'UseGitLabConnections',
        [PACKAGE_PARAMS.gitlabConnectionArn, PACKAGE_PARAMS.gitlabSelfManagedConnectionArn],
      ],
      ['RegistryLogin', '*'],
      ['PushImage', repository],
      [
        'PullThroughDockerHubCache',
        sub(
          `arn:\${AWS::Partition}:ecr:\${AWS::Region}:\${AWS::AccountId}:repository/${PACKAGE_PARAMS.dockerHubCachePrefix}/*`,
        ),
      ],
    ]);
    expect(statements.find((s) => s.Sid === 'RegistryLogin')?.Action).toBe('ecr:GetAuthorizationToken');
  });

  it('keeps commit-tagged images immutable and scans them on push', () => {
    const repository = props(resource(template, 'ImageRepository'));

    expect(repository.RepositoryName).toBe(PREFIX);
    expect(repository.ImageTagMutability).toBe('IMMUTABLE');
    expect(repository.ImageScanningConfiguration).toEqual({ ScanOnPush: true });
  });
});

describe('topics, bus and outputs', () => {
  it('subscribes every configured address, and only those, to its topic', () => {
    const subscriptions = resourcesOfType(template, 'AWS::SNS::Subscription')
      .map(([, item]) => props(item))
      .map((item) => `${(item.TopicArn as { Ref: string }).Ref} ${item.Protocol} ${item.Endpoint}`);

    expect(subscriptions.sort()).toEqual([
      'ApprovalsTopic email lead@example.com',
      'ApprovalsTopic email second.approver@example.org',
      'NotificationsTopic email team@example.com',
    ]);
  });

  it('names the topics and the milestone bus after the stage', () => {
    expect(props(resource(template, 'ApprovalsTopic')).TopicName).toBe(`${PREFIX}-approvals`);
    expect(props(resource(template, 'NotificationsTopic')).TopicName).toBe(`${PREFIX}-notifications`);
    expect(props(resource(template, 'SteplineEventBus')).Name).toBe(PREFIX);
  });

  it('creates no SSM parameter: the secrets are SecureStrings the user creates', () => {
    expect(resourcesOfType(template, 'AWS::SSM::Parameter')).toEqual([]);
  });

  it('outputs the webhook URLs, the approval base URL, the state machine and the image repository', () => {
    const outputs = template.Outputs ?? {};

    expect(Object.keys(outputs)).toEqual(
      expect.arrayContaining([
        'GitHubWebhookUrl',
        'GitLabWebhookUrl',
        'BitbucketWebhookUrl',
        'ApprovalBaseUrl',
        'PipelineStateMachineArn',
        'ImageRepositoryUri',
      ]),
    );
    expect(JSON.stringify(outputs.GitHubWebhookUrl?.Value)).toContain('"/webhooks/github"');
    expect(outputs.ApprovalBaseUrl?.Value).toEqual(environmentOf('approvalRequest').APPROVAL_BASE_URL);
    expect(outputs.PipelineStateMachineArn?.Value).toEqual({ Ref: 'PipelineStateMachine' });
    expect(outputs.ImageRepositoryUri?.Value).toEqual(getAtt('ImageRepository', 'RepositoryUri'));
  });
});

describe('the Test stage', () => {
  it('has a project of its own, with a role of its own and no Docker', () => {
    const project = props(resource(template, 'TestProject'));

    expect(project).toMatchObject({
      Name: `${PREFIX}-test`,
      ServiceRole: { 'Fn::GetAtt': ['TestProjectRole', 'Arn'] },
      Source: { Type: 'NO_SOURCE' },
    });
    expect((project.Environment as Record<string, unknown>).PrivilegedMode).toBeUndefined();
  });

  it('creates the junit report group of the test project, whose reports go with it', () => {
    expect(props(resource(template, 'TestReportGroup'))).toEqual({
      Name: `${PREFIX}-test-junit`,
      Type: 'TEST',
      ExportConfig: { ExportConfigType: 'NO_EXPORT' },
      DeleteReports: true,
    });
  });

  it('lets the test role write reports to the test report groups only', () => {
    const reports = roleStatements(template, 'TestProjectRole').find(
      (statement) => statement.Sid === 'WriteTestReports',
    );

    expect(reports).toEqual({
      Sid: 'WriteTestReports',
      Effect: 'Allow',
      Action: [
        'codebuild:CreateReportGroup',
        'codebuild:CreateReport',
        'codebuild:UpdateReport',
        'codebuild:BatchPutTestCases',
      ],
      Resource: sub(
        `arn:\${AWS::Partition}:codebuild:\${AWS::Region}:\${AWS::AccountId}:report-group/${PREFIX}-test-*`,
      ),
    });
  });

  it('lets the pipeline read those reports for the notifications', () => {
    const read = roleStatements(template, 'PipelineStateMachineRole').find(
      (statement) => statement.Sid === 'ReadTestReports',
    );

    expect(read).toMatchObject({
      Effect: 'Allow',
      Action: ['codebuild:BatchGetReports', 'codebuild:DescribeTestCases'],
      Resource: sub(
        `arn:\${AWS::Partition}:codebuild:\${AWS::Region}:\${AWS::AccountId}:report-group/${PREFIX}-test-*`,
      ),
    });
  });
});
