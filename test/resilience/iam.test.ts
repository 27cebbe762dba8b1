import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  asList,
  type CfnTemplate,
  type PackagedStack,
  packagedStack,
  resource,
  resourcesOfType,
  roleStatements,
} from '../helpers/package-template.ts';
import { record } from './figures.ts';

/**
 * IAM over the packaged CloudFormation template: every role listed with its actions, each checked
 * against an allow-list. test/template/stack.test.ts already pins every function role's statements
 * exactly; this adds the roles it does not pin whole — the CodeBuild projects' and the state machines' —
 * and checks that no role exists outside the two lists.
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

const LOGS = ['logs:CreateLogStream', 'logs:PutLogEvents'];
// CodeCommit, and GitLab through its CodeConnections connections (gitlab*ConnectionArn).
const PULL = [
  'codecommit:GitPull',
  'codeconnections:GetConnection',
  'codeconnections:GetConnectionToken',
  'codeconnections:UseConnection',
];
const RUN_BUILDS = ['codebuild:StartBuild', 'codebuild:StopBuild', 'codebuild:BatchGetBuilds'];
const SYNC_RULE = ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'];
const STATE_MACHINE_LOGS = [
  'logs:CreateLogDelivery',
  'logs:GetLogDelivery',
  'logs:UpdateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:DescribeResourcePolicies',
  'logs:DescribeLogGroups',
];

/** Terraform state in the state bucket: each environment's own prefix (test/template/iam-model.test.ts). */
const STATE = ['s3:ListBucket', 's3:GetObject', 's3:PutObject', 's3:DeleteObject'];
/** The environments the template tests package (PACKAGE_PARAMS.settings). */
const ENVIRONMENTS = ['Dev', 'Prod'];
/** BuildGuardrailsPolicy, the explicit denials every build role carries; plus the Terraform policy. */
const GUARDRAILS = 1;

/** What each role that is not a function's may do, and who may assume it. */
const ALLOWED: Record<string, { service: string; actions: string[]; managedPolicies: number }> = {
  ...Object.fromEntries(
    ENVIRONMENTS.flatMap((environment) => [
      [
        `InfrastructureProjectRole${environment}`,
        { service: 'codebuild', actions: [...LOGS, ...PULL, ...STATE], managedPolicies: GUARDRAILS + 1 },
      ],
      [
        `DeployProjectRole${environment}`,
        {
          service: 'codebuild',
          actions: [...LOGS, ...PULL, 'eks:DescribeCluster'],
          managedPolicies: GUARDRAILS,
        },
      ],
      [
        `TeardownProjectRole${environment}`,
        { service: 'codebuild', actions: [...LOGS, ...PULL, ...STATE], managedPolicies: GUARDRAILS + 1 },
      ],
    ]),
  ),
  TestProjectRole: {
    service: 'codebuild',
    actions: [
      ...LOGS,
      ...PULL,
      'codebuild:CreateReportGroup',
      'codebuild:CreateReport',
      'codebuild:UpdateReport',
      'codebuild:BatchPutTestCases',
    ],
    managedPolicies: GUARDRAILS,
  },
  ImageProjectRole: {
    service: 'codebuild',
    actions: [
      ...LOGS,
      ...PULL,
      'ecr:GetAuthorizationToken',
      'ecr:BatchCheckLayerAvailability',
      'ecr:InitiateLayerUpload',
      'ecr:UploadLayerPart',
      'ecr:CompleteLayerUpload',
      'ecr:PutImage',
      'ecr:DescribeImages',
      // The Docker Hub pull-through cache (dockerHubCachePrefix).
      'ecr:BatchGetImage',
      'ecr:GetDownloadUrlForLayer',
      'ecr:BatchImportUpstreamImage',
      'ecr:CreateRepository',
    ],
    managedPolicies: GUARDRAILS,
  },
  PipelineStateMachineRole: {
    service: 'states',
    actions: [
      ...RUN_BUILDS,
      ...SYNC_RULE,
      'lambda:InvokeFunction',
      // The Test stage's reports, read for the notifications.
      'codebuild:BatchGetReports',
      'codebuild:DescribeTestCases',
      ...STATE_MACHINE_LOGS,
    ],
    managedPolicies: 0,
  },
  TeardownStateMachineRole: {
    service: 'states',
    actions: [...RUN_BUILDS, ...SYNC_RULE, ...STATE_MACHINE_LOGS],
    managedPolicies: 0,
  },
  RollbackStateMachineRole: {
    service: 'states',
    actions: [...RUN_BUILDS, ...SYNC_RULE, 'lambda:InvokeFunction', ...STATE_MACHINE_LOGS],
    managedPolicies: 0,
  },
};

const actionsOf = (roleId: string) =>
  [
    ...new Set(
      roleStatements(template, roleId).flatMap((s) => (s.Effect === 'Allow' ? asList(s.Action) : [])),
    ),
  ].sort();

describe('IAM roles of the packaged stack', () => {
  it('holds no role besides the functions’ and those allow-listed here', ({ task }) => {
    const roles = resourcesOfType(template, 'AWS::IAM::Role').map(([id]) => id);
    const functionRoles = resourcesOfType(template, 'AWS::Lambda::Function').map(
      ([, fn]) => (fn.Properties?.Role as { 'Fn::GetAtt': [string, string] } | undefined)?.['Fn::GetAtt'][0],
    );

    const listing = roles.map((id) => `${id}: ${actionsOf(id).join(', ')}`).join('\n');
    console.info(`Roles and their actions:\n${listing}`);
    record(task, { rolesChecked: roles.length });
    expect(roles.filter((id) => !functionRoles.includes(id) && !(id in ALLOWED))).toEqual([]);
    expect(Object.keys(ALLOWED).filter((id) => !roles.includes(id))).toEqual([]);
  });

  it.each(Object.keys(ALLOWED))(
    'lets %s do exactly its allow-listed actions, assumed by its service only',
    (roleId) => {
      const allowed = ALLOWED[roleId] as (typeof ALLOWED)[string];
      const properties = resource(template, roleId).Properties as Record<string, unknown>;
      const trust = JSON.stringify(properties.AssumeRolePolicyDocument);

      expect(actionsOf(roleId)).toEqual([...allowed.actions].sort());
      expect(asList(properties.ManagedPolicyArns ?? [])).toHaveLength(allowed.managedPolicies);
      expect(trust).toContain(`${allowed.service}.`);
      expect(trust.match(/"Service"/g)).toHaveLength(1);
    },
  );

  it('scopes every project role’s logs to its own log group', () => {
    const projects: [string, string][] = [
      ['TestProjectRole', 'test'],
      ['ImageProjectRole', 'image'],
      ...ENVIRONMENTS.flatMap((environment): [string, string][] =>
        ['Infrastructure', 'Deploy', 'Teardown'].map((stage) => [
          `${stage}ProjectRole${environment}`,
          `${environment.toLowerCase()}-${stage.toLowerCase()}`,
        ]),
      ),
    ];
    for (const [roleId, project] of projects) {
      const logs = roleStatements(template, roleId).filter((s) =>
        asList(s.Action).includes('logs:PutLogEvents'),
      );
      expect(JSON.stringify(logs.map((s) => s.Resource))).toContain(
        `/aws/codebuild/stepline-test-${project}:*`,
      );
    }
  });
});
