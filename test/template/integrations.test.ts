// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${AWS::Region} and friends are CloudFormation Fn::Sub syntax
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  asList,
  type CfnResource,
  type CfnTemplate,
  PACKAGE_PARAMS,
  type PackagedStack,
  type PolicyStatement,
  packagedStack,
  resolveConditionals,
  resource,
  resourcesOfType,
  roleStatements,
} from '../helpers/package-template.ts';

/**
 * Where the stack meets what AWS does not run for it: events EventBridge and Lambda give up on, GitLab
 * reached through AWS CodeConnections, Docker Hub images through an ECR pull-through cache.
 */

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
const props = (item: CfnResource) => item.Properties as Record<string, unknown>;
const getAtt = (id: string, attribute: string) => ({ 'Fn::GetAtt': [id, attribute] });

/** The template with every optional feature's condition forced off, as with empty parameters. */
function withConditionsOff(...names: string[]): CfnTemplate {
  const off = Object.fromEntries(names.map((name) => [name, { 'Fn::Equals': ['a', 'b'] }]));
  return { ...template, Conditions: { ...template.Conditions, ...off } };
}

// ---------------------------------------------------------------------------------------------------------

const ASYNC_FUNCTIONS = [
  { key: 'codecommit', fn: 'CodecommitLambdaFunction', queue: 'CodecommitDeadLetterQueue' },
  { key: 'buildEvents', fn: 'BuildEventsLambdaFunction', queue: 'BuildEventsDeadLetterQueue' },
  { key: 'pipelineEvents', fn: 'PipelineEventsLambdaFunction', queue: 'PipelineEventsDeadLetterQueue' },
  // Two rules: the pipeline's execution status changes and its builds' state changes.
  { key: 'commitStatus', fn: 'CommitStatusLambdaFunction', queue: 'CommitStatusDeadLetterQueue' },
] as const;

function rulesTargeting(fn: string): { name: string; target: Record<string, unknown> }[] {
  const rules = resourcesOfType(template, 'AWS::Events::Rule').flatMap(([, rule]) =>
    (props(rule).Targets as Record<string, unknown>[])
      .filter((target) => JSON.stringify(target.Arn) === JSON.stringify(getAtt(fn, 'Arn')))
      .map((target) => ({ name: String(props(rule).Name), target })),
  );
  expect(rules.length).toBeGreaterThan(0);
  return rules;
}

// EventBridge invokes these functions asynchronously. An event it cannot deliver goes to the rule target's
// dead-letter queue (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-event-delivery.html); one the
// function fails on every attempt goes to its on-failure destination
// (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html).
describe.each(ASYNC_FUNCTIONS)('events $key cannot handle', ({ key, fn, queue }) => {
  it('are kept 14 days in a queue of their own, encrypted', () => {
    expect(props(resource(template, queue))).toEqual({
      QueueName: `${PREFIX}-${key}-dlq`,
      MessageRetentionPeriod: 1_209_600,
      SqsManagedSseEnabled: true,
    });
  });

  it('reach that queue when EventBridge cannot deliver them', () => {
    for (const { target } of rulesTargeting(fn)) {
      expect(target.DeadLetterConfig).toEqual({ Arn: getAtt(queue, 'Arn') });
    }
  });

  it('reach that queue when the function failed them after its retries', () => {
    const configs = resourcesOfType(template, 'AWS::Lambda::EventInvokeConfig')
      .map(([, item]) => props(item))
      .filter((item) => JSON.stringify(item.FunctionName) === JSON.stringify({ Ref: fn }));

    expect(configs).toEqual([
      {
        FunctionName: { Ref: fn },
        Qualifier: '$LATEST',
        DestinationConfig: { OnFailure: { Destination: getAtt(queue, 'Arn') } },
      },
    ]);
  });

  it("let only EventBridge, for this function's rules, send to the queue", () => {
    const policies = resourcesOfType(template, 'AWS::SQS::QueuePolicy')
      .map(([, item]) => props(item))
      .filter((item) => JSON.stringify(item.Queues) === JSON.stringify([{ Ref: queue }]));
    const sources = rulesTargeting(fn).map(({ name }) => ({
      'Fn::Sub': `arn:\${AWS::Partition}:events:\${AWS::Region}:\${AWS::AccountId}:rule/${name}`,
    }));

    expect(policies).toHaveLength(1);
    expect((policies[0]?.PolicyDocument as { Statement: unknown[] } | undefined)?.Statement).toEqual([
      {
        Sid: 'UndeliveredEvents',
        Effect: 'Allow',
        Principal: { Service: 'events.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: getAtt(queue, 'Arn'),
        Condition: {
          ArnEquals: { 'aws:SourceArn': sources.length === 1 ? sources[0] : sources },
        },
      },
    ]);
  });

  it('raise an alarm to the notifications topic as soon as one is waiting', () => {
    const alarms = resourcesOfType(template, 'AWS::CloudWatch::Alarm')
      .map(([, item]) => props(item))
      .filter((item) => JSON.stringify(item.Dimensions ?? []).includes(`"${queue}"`));

    expect(alarms).toEqual([
      expect.objectContaining({
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: getAtt(queue, 'QueueName') }],
        Statistic: 'Maximum',
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        AlarmActions: [{ Ref: 'NotificationsTopic' }],
      }),
    ]);
  });
});

describe('functions invoked synchronously', () => {
  it('have no asynchronous failure destination, and no queue is left without an alarm', () => {
    const destinations = resourcesOfType(template, 'AWS::Lambda::EventInvokeConfig').map(
      ([, item]) => (props(item).FunctionName as { Ref: string }).Ref,
    );
    const queues = resourcesOfType(template, 'AWS::SQS::Queue').map(([id]) => id);

    expect(destinations.sort()).toEqual(ASYNC_FUNCTIONS.map(({ fn }) => fn).sort());
    expect(queues.sort()).toEqual(ASYNC_FUNCTIONS.map(({ queue }) => queue).sort());
  });
});

// ---------------------------------------------------------------------------------------------------------

const PROJECT_ROLES = [
  'ImageProjectRole',
  ...['Dev', 'Prod'].flatMap((environment) =>
    ['Infrastructure', 'Deploy', 'Teardown'].map((stage) => `${stage}ProjectRole${environment}`),
  ),
] as const;
const CONNECTION_ACTIONS = [
  'codeconnections:GetConnection',
  'codeconnections:GetConnectionToken',
  'codeconnections:UseConnection',
];

function connectionStatements(source: CfnTemplate, role: string): PolicyStatement[] {
  return roleStatements(source, role).filter((s) =>
    asList(s.Action).some((action) => action.startsWith('codeconnections:')),
  );
}

// CodeBuild clones GitLab only through AWS CodeConnections
// (https://docs.aws.amazon.com/codebuild/latest/userguide/connections-gitlab.html).
describe('GitLab sources', () => {
  it.each(PROJECT_ROLES)('let %s use the two GitLab connections, and no other', (role) => {
    expect(connectionStatements(template, role)).toEqual([
      {
        Sid: 'UseGitLabConnections',
        Effect: 'Allow',
        Action: CONNECTION_ACTIONS,
        Resource: [PACKAGE_PARAMS.gitlabConnectionArn, PACKAGE_PARAMS.gitlabSelfManagedConnectionArn],
      },
    ]);
  });

  it('name each connection as the CodeBuild source credential of its server type', () => {
    const credentials = resourcesOfType(template, 'AWS::CodeBuild::SourceCredential').map(([, item]) => ({
      condition: item.Condition,
      ...props(item),
    }));

    expect(credentials).toEqual([
      {
        condition: 'UseGitLabConnection',
        ServerType: 'GITLAB',
        AuthType: 'CODECONNECTIONS',
        Token: PACKAGE_PARAMS.gitlabConnectionArn,
      },
      {
        condition: 'UseGitLabSelfManagedConnection',
        ServerType: 'GITLAB_SELF_MANAGED',
        AuthType: 'CODECONNECTIONS',
        Token: PACKAGE_PARAMS.gitlabSelfManagedConnectionArn,
      },
    ]);
  });

  it('grant only the connection that is configured', () => {
    const gitlabComOnly = withConditionsOff('UseGitLabSelfManagedConnection');

    expect(connectionStatements(gitlabComOnly, 'ImageProjectRole')[0]?.Resource).toEqual([
      PACKAGE_PARAMS.gitlabConnectionArn,
    ]);
  });

  it('grant nothing on CodeConnections without a connection', () => {
    const none = withConditionsOff('UseGitLabConnection', 'UseGitLabSelfManagedConnection');

    for (const role of PROJECT_ROLES) expect(connectionStatements(none, role)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------

const CACHE_REPOSITORIES = {
  'Fn::Sub': `arn:\${AWS::Partition}:ecr:\${AWS::Region}:\${AWS::AccountId}:repository/${PACKAGE_PARAMS.dockerHubCachePrefix}/*`,
};

// Docker Hub limits anonymous pulls per address; CodeBuild's are shared
// (https://docs.aws.amazon.com/AmazonECR/latest/userguide/pull-through-cache-iam.html).
describe('the Docker Hub pull-through cache', () => {
  const imageEnvironment = (source: CfnTemplate) =>
    (
      (resolveConditionals(source, resource(source, 'ImageProject')) as CfnResource).Properties as {
        Environment: { EnvironmentVariables: Record<string, unknown>[] };
      }
    ).Environment.EnvironmentVariables;

  it('lets the image role pull, and import into, the cache repositories only', () => {
    const statement = roleStatements(template, 'ImageProjectRole').find(
      (s) => s.Sid === 'PullThroughDockerHubCache',
    );

    expect(statement).toEqual({
      Sid: 'PullThroughDockerHubCache',
      Effect: 'Allow',
      Action: [
        'ecr:BatchGetImage',
        'ecr:GetDownloadUrlForLayer',
        'ecr:BatchImportUpstreamImage',
        'ecr:CreateRepository',
      ],
      Resource: CACHE_REPOSITORIES,
    });
  });

  it('tells the image build where the cache is', () => {
    expect(imageEnvironment(template)).toContainEqual({
      Name: 'DOCKER_HUB_MIRROR',
      Type: 'PLAINTEXT',
      Value: {
        'Fn::Sub': `\${AWS::AccountId}.dkr.ecr.\${AWS::Region}.\${AWS::URLSuffix}/${PACKAGE_PARAMS.dockerHubCachePrefix}`,
      },
    });
  });

  it('creates the cache rule with the Docker Hub credentials when they are given', () => {
    const [[, rule] = []] = resourcesOfType(template, 'AWS::ECR::PullThroughCacheRule');

    expect(rule?.Condition).toBe('CreateDockerHubCacheRule');
    expect(props(rule as CfnResource)).toEqual({
      EcrRepositoryPrefix: PACKAGE_PARAMS.dockerHubCachePrefix,
      UpstreamRegistry: 'docker-hub',
      UpstreamRegistryUrl: 'registry-1.docker.io',
      CredentialArn: PACKAGE_PARAMS.dockerHubCredentialArn,
    });
  });

  it('is off, with no grant and no variable, without a prefix', () => {
    const off = withConditionsOff('UseDockerHubCache');

    expect(roleStatements(off, 'ImageProjectRole').map((s) => s.Sid)).not.toContain(
      'PullThroughDockerHubCache',
    );
    expect(imageEnvironment(off).map((variable) => variable.Name)).toEqual(['IMAGE_REPOSITORY_URI']);
  });
});
