// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${AWS::Region} and friends are CloudFormation Fn::Sub syntax
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type EvaluationResult, runSimulation } from '@cloud-copilot/iam-simulate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listStates } from '#local/stepfunctions/definition.ts';
import { loadProjectStateMachine } from '../helpers/asl-harness.ts';
import {
  asList,
  type CfnTemplate,
  type CfnValue,
  PACKAGE_PARAMS,
  resolveConditionals,
  resource,
  resourcesOfType,
  runServerlessPackage,
} from '../helpers/package-template.ts';

/**
 * The IAM model of the packaged stack, evaluated offline with @cloud-copilot/iam-simulate over the roles'
 * real policies (their Fn::Sub resolved for account 123456789012 in eu-west-1): what each environment's
 * builds may do, and what no build may do. An explicit Deny overrides any Allow
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic_AccessPolicyLanguage_Interplay.html),
 * so the denials are checked with each Terraform policy simulated as `Allow *:*`.
 */

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const PREFIX = 'stepline-test';
const BUCKET = PACKAGE_PARAMS.terraformStateBucket as string;
const PROD_ACCOUNT = '210987654321';
const PROD_ASSUMED_ROLE = `arn:aws:iam::${PROD_ACCOUNT}:role/stepline-prod-deployer`;
const QA_POLICY = `arn:aws:iam::${ACCOUNT}:policy/stepline-test-terraform-qa`;
const PROD_POLICY = `arn:aws:iam::${ACCOUNT}:policy/stepline-test-terraform-prod`;
const ENVIRONMENTS = ['dev', 'qa', 'prod'] as const;
type EnvironmentName = (typeof ENVIRONMENTS)[number];
const STAGES = ['Infrastructure', 'Deploy', 'Teardown'] as const;

/** dev with the stack's Terraform policy; qa and prod with their own; prod in an account of its own. */
const SETTINGS = {
  environments: [
    { name: 'dev' },
    { name: 'qa', infrastructurePolicyArn: QA_POLICY },
    { name: 'prod', approval: true, infrastructurePolicyArn: PROD_POLICY, assumeRoleArn: PROD_ASSUMED_ROLE },
  ],
};

let template: CfnTemplate;
let workDir = '';

beforeAll(async () => {
  const run = await runServerlessPackage({ ...PACKAGE_PARAMS, settings: JSON.stringify(SETTINGS) });
  workDir = run.workDir;
  if (run.exitCode !== 0) throw new Error(`serverless package failed:\n${run.output}`);
  template = JSON.parse(
    await readFile(join(run.outputDir, 'cloudformation-template-update-stack.json'), 'utf8'),
  ) as CfnTemplate;
}, 180_000);

afterAll(async () => {
  if (workDir !== '') await rm(workDir, { recursive: true, force: true });
});

// --- From the template to concrete policies ---------------------------------------------------------------

const capitalised = (name: string) => name.charAt(0).toUpperCase() + name.slice(1);
const roleId = (stage: (typeof STAGES)[number], environment: EnvironmentName) =>
  `${stage}ProjectRole${capitalised(environment)}`;
const projectName = (environment: string, stage: string) => `${PREFIX}-${environment}-${stage.toLowerCase()}`;

/** The physical name CloudFormation gives a resource it names (`<stack>-<logical id>-<suffix>`). */
const generatedName = (logicalId: string) => `${PREFIX}-${logicalId}-1A2B3C4D5E6F`;

/** The ARN a role of the template gets: its Path, then its generated name. */
function roleArn(logicalId: string): string {
  const path = (resource(template, logicalId).Properties?.Path as string | undefined) ?? '/';
  return `arn:aws:iam::${ACCOUNT}:role${path}${generatedName(logicalId)}`;
}

function managedPolicyArn(logicalId: string): string {
  const path = (resource(template, logicalId).Properties?.Path as string | undefined) ?? '/';
  return `arn:aws:iam::${ACCOUNT}:policy${path}${generatedName(logicalId)}`;
}

const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': REGION,
  'AWS::AccountId': ACCOUNT,
  'AWS::URLSuffix': 'amazonaws.com',
};

/** Resolves Fn::If, Fn::Sub, Ref and the Fn::GetAtt the build roles use into concrete values. */
function concrete(value: CfnValue): CfnValue {
  const walk = (node: CfnValue): CfnValue => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== 'object') return node;
    const record = node as Record<string, CfnValue>;
    if ('Fn::Sub' in record) {
      const [text, variables = {}] = asList(
        record['Fn::Sub'] as string | [string, Record<string, CfnValue>],
      ) as [string, Record<string, CfnValue>?];
      return text.replace(/\$\{([^}]+)\}/g, (_, name: string) => {
        const found = PSEUDO[name] ?? walk((variables as Record<string, CfnValue>)[name]);
        if (typeof found !== 'string') throw new Error(`Cannot resolve \${${name}} in ${text}`);
        return found;
      });
    }
    if ('Fn::Select' in record) {
      const [index, list] = record['Fn::Select'] as [number, CfnValue];
      return (walk(list) as CfnValue[])[index];
    }
    if ('Fn::Split' in record) {
      const [separator, text] = record['Fn::Split'] as [string, CfnValue];
      return (walk(text) as string).split(separator);
    }
    if ('Ref' in record) {
      const name = record.Ref as string;
      if (PSEUDO[name]) return PSEUDO[name];
      if (resource(template, name).Type === 'AWS::IAM::ManagedPolicy') return managedPolicyArn(name);
      if (resource(template, name).Type === 'AWS::SNS::Topic') {
        return `arn:aws:sns:${REGION}:${ACCOUNT}:${resource(template, name).Properties?.TopicName}`;
      }
      throw new Error(`Cannot resolve Ref ${name}`);
    }
    if ('Fn::GetAtt' in record) {
      const [id, attribute] = record['Fn::GetAtt'] as [string, string];
      if (id === 'ImageRepository' && attribute === 'Arn') {
        return `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${PREFIX}`;
      }
      if (resource(template, id).Type === 'AWS::SQS::Queue' && attribute === 'Arn') {
        return `arn:aws:sqs:${REGION}:${ACCOUNT}:${resource(template, id).Properties?.QueueName}`;
      }
      throw new Error(`Cannot resolve Fn::GetAtt ${id}.${attribute}`);
    }
    return Object.fromEntries(Object.entries(record).map(([key, item]) => [key, walk(item)]));
  };
  return walk(resolveConditionals(template, value));
}

/** What a Terraform policy (an environment's infrastructurePolicyArn) is simulated as. */
type TerraformPolicy = 'allows everything' | 'allows nothing';

/** The identity policies of a role: its inline policies and its managed ones, the Terraform policy as told. */
function identityPolicies(logicalId: string, terraform: TerraformPolicy) {
  const properties = resource(template, logicalId).Properties ?? {};
  const inline = ((properties.Policies ?? []) as { PolicyName: string; PolicyDocument: CfnValue }[]).map(
    (policy) => ({ name: policy.PolicyName, policy: concrete(policy.PolicyDocument) }),
  );
  const managed = ((properties.ManagedPolicyArns ?? []) as CfnValue[]).map((arn, index) => {
    const ref = (arn as { Ref?: string }).Ref;
    if (ref !== undefined) {
      return { name: ref, policy: concrete(resource(template, ref).Properties?.PolicyDocument) };
    }
    const statement =
      terraform === 'allows everything' ? [{ Effect: 'Allow', Action: '*', Resource: '*' }] : [];
    return { name: `terraform-${index}`, policy: { Version: '2012-10-17', Statement: statement } };
  });
  return [...inline, ...managed];
}

interface Request {
  action: string;
  resource: string;
  context?: Record<string, string | string[]>;
  /** The policy of the resource (a role's trust policy), when it has one. */
  resourcePolicy?: unknown;
}

async function decide(
  logicalId: string,
  request: Request,
  terraform: TerraformPolicy,
): Promise<EvaluationResult> {
  const principal = roleArn(logicalId);
  const accountId = /^arn:aws:[^:]*:[^:]*:(\d{12}):/.exec(request.resource)?.[1] ?? ACCOUNT;
  const result = await runSimulation(
    {
      request: {
        principal,
        action: request.action,
        resource: { resource: request.resource, accountId },
        contextVariables: {
          'aws:PrincipalArn': principal,
          'aws:PrincipalAccount': ACCOUNT,
          ...request.context,
        },
      },
      identityPolicies: identityPolicies(logicalId, terraform),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: request.resourcePolicy,
    },
    {},
  );
  if (result.resultType === 'error') {
    throw new Error(`Simulation of ${request.action} failed: ${JSON.stringify(result.errors)}`);
  }
  return result.overallResult;
}

/** Every request, with its decision, that was not decided as expected. */
async function unexpected(
  logicalId: string,
  requests: Request[],
  expected: EvaluationResult,
  terraform: TerraformPolicy,
): Promise<string[]> {
  const decided = await Promise.all(
    requests.map(async (request) => ({ request, decision: await decide(logicalId, request, terraform) })),
  );
  return decided
    .filter(({ decision }) => decision !== expected)
    .map(({ request, decision }) => `${logicalId}: ${request.action} on ${request.resource} → ${decision}`);
}

// --- What belongs to an environment ---------------------------------------------------------------------

const stateObject = (environment: string, key: string) => `arn:aws:s3:::${BUCKET}/${environment}/${key}`;
const cluster = (environment: string) => `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/apps-${environment}`;
const projectArn = (name: string) => `arn:aws:codebuild:${REGION}:${ACCOUNT}:project/${name}`;
const logGroup = (name: string) =>
  `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:/aws/codebuild/${name}:log-stream:1`;

/** Everything a build could do to another environment: its state, cluster, projects, roles, logs, account. */
function otherEnvironmentRequests(other: EnvironmentName): Request[] {
  const requests: Request[] = [];
  for (const key of ['terraform.tfstate', 'terraform.tfstate.tflock']) {
    for (const action of ['s3:GetObject', 's3:PutObject', 's3:DeleteObject']) {
      requests.push({ action, resource: stateObject(other, key) });
    }
  }
  requests.push(
    { action: 'eks:DescribeCluster', resource: cluster(other) },
    { action: 'eks:UpdateClusterConfig', resource: cluster(other) },
    {
      action: 'eks:UpdateNodegroupConfig',
      resource: `arn:aws:eks:${REGION}:${ACCOUNT}:nodegroup/apps-${other}/workers/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0`,
    },
  );
  for (const stage of STAGES) {
    const name = projectName(other, stage);
    for (const action of ['codebuild:StartBuild', 'codebuild:UpdateProject', 'codebuild:BatchGetBuilds']) {
      requests.push({ action, resource: projectArn(name) });
    }
    requests.push({ action: 'logs:PutLogEvents', resource: logGroup(name) });
    for (const action of [
      'iam:PassRole',
      'iam:PutRolePolicy',
      'iam:UpdateAssumeRolePolicy',
      'sts:AssumeRole',
    ]) {
      requests.push({ action, resource: roleArn(roleId(stage, other)) });
    }
  }
  const policy = other === 'qa' ? QA_POLICY : other === 'prod' ? PROD_POLICY : undefined;
  if (policy) requests.push({ action: 'iam:CreatePolicyVersion', resource: policy });
  if (other === 'prod') requests.push({ action: 'sts:AssumeRole', resource: PROD_ASSUMED_ROLE });
  return requests;
}

/** What would let a build decide an approval, read stepline's secrets, or change stepline. */
function steplineRequests(ownProject: string): Request[] {
  const stateMachine = `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${PREFIX}-pipeline`;
  const execution = `arn:aws:states:${REGION}:${ACCOUNT}:execution:${PREFIX}-pipeline:github-a1b2c3`;
  const parameter = (name: string) => `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/stepline/test/${name}`;
  const fn = (name: string) => `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${PREFIX}-${name}`;
  return [
    ...['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'].map((action) => ({
      action,
      resource: '*',
    })),
    { action: 'states:StartExecution', resource: stateMachine },
    { action: 'states:UpdateStateMachine', resource: stateMachine },
    { action: 'states:DeleteStateMachine', resource: stateMachine },
    { action: 'states:DescribeExecution', resource: execution },
    { action: 'states:GetExecutionHistory', resource: execution },
    { action: 'states:StopExecution', resource: execution },
    { action: 'ssm:GetParameter', resource: parameter('approval-key') },
    { action: 'ssm:GetParameters', resource: parameter('approval-key') },
    { action: 'ssm:GetParameter', resource: parameter('webhook-secret') },
    // A forge token would let a build mark its own commit green.
    { action: 'ssm:GetParameter', resource: parameter('status-token/github') },
    { action: 'ssm:PutParameter', resource: parameter('approval-key') },
    // GetParametersByPath is authorized against the path asked for, not the parameters returned: a recursive
    // read of any ancestor of the secrets returns them
    // (https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-retrieval-authorization.html). The root
    // path `/` is denied too (serverless.yml, NoSteplineSecretsByPath); the simulator knows no resource type for
    // its ARN, so the structural test below checks it.
    ...['/stepline/test', '/stepline'].map((path) => ({
      action: 'ssm:GetParametersByPath',
      resource: `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter${path}`,
    })),
    { action: 'kms:Decrypt', resource: PACKAGE_PARAMS.secretsKmsKeyArn as string },
    { action: 'lambda:UpdateFunctionCode', resource: fn('approval') },
    { action: 'lambda:UpdateFunctionConfiguration', resource: fn('approval') },
    { action: 'lambda:AddPermission', resource: fn('approval') },
    { action: 'lambda:InvokeFunction', resource: fn('approvalRequest') },
    { action: 'iam:PutRolePolicy', resource: roleArn('ApprovalRole') },
    { action: 'iam:AttachRolePolicy', resource: roleArn('PipelineStateMachineRole') },
    { action: 'iam:CreatePolicyVersion', resource: managedPolicyArn('BuildGuardrailsPolicy') },
    { action: 'iam:DetachRolePolicy', resource: roleArn('ImageProjectRole') },
    { action: 'iam:CreatePolicyVersion', resource: PACKAGE_PARAMS.infrastructurePolicyArn as string },
    { action: 'codebuild:UpdateProject', resource: projectArn(ownProject) },
    { action: 'codebuild:CreateProject', resource: projectArn(`${PREFIX}-prod-deploy`) },
    { action: 'codebuild:DeleteProject', resource: projectArn(ownProject) },
    { action: 'codebuild:StartBuild', resource: projectArn(ownProject) },
    {
      action: 'cloudformation:UpdateStack',
      resource: `arn:aws:cloudformation:${REGION}:${ACCOUNT}:stack/${PREFIX}/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0`,
    },
    { action: 'sns:Publish', resource: `arn:aws:sns:${REGION}:${ACCOUNT}:${PREFIX}-approvals` },
    { action: 'events:PutEvents', resource: `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/${PREFIX}` },
    {
      action: 'events:DeleteRule',
      resource: `arn:aws:events:${REGION}:${ACCOUNT}:rule/StepFunctionsGetEventForCodeBuildStartBuildRule`,
    },
  ];
}

/** The trust policy of prod's role in its own account: prod's build roles of the pipeline account only. */
const PROD_TRUST_POLICY = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` },
      Action: 'sts:AssumeRole',
      Condition: { ArnLike: { 'aws:PrincipalArn': `arn:aws:iam::${ACCOUNT}:role/${PREFIX}/prod/*` } },
    },
  ],
};

// ---------------------------------------------------------------------------------------------------------

describe('per-environment builds', () => {
  it('gives each of the three environments its own Infrastructure, Deploy and Teardown projects and roles', () => {
    const projects = resourcesOfType(template, 'AWS::CodeBuild::Project')
      .map(([, item]) => item.Properties as { Name: string; ServiceRole: { 'Fn::GetAtt': [string, string] } })
      .map(({ Name, ServiceRole }) => ({ name: Name, role: ServiceRole['Fn::GetAtt'][0] }));

    expect(projects).toEqual(
      expect.arrayContaining(
        ENVIRONMENTS.flatMap((environment) =>
          STAGES.map((stage) => ({
            name: projectName(environment, stage),
            role: roleId(stage, environment),
          })),
        ),
      ),
    );
    // Besides them: the test and image projects, once per stack.
    expect(projects).toHaveLength(2 + ENVIRONMENTS.length * STAGES.length);
    const roles = projects.map((project) => project.role);
    expect(new Set(roles).size).toBe(roles.length);
    for (const environment of ENVIRONMENTS) {
      for (const stage of STAGES) {
        expect(resource(template, roleId(stage, environment)).Properties?.Path).toBe(
          `/${PREFIX}/${environment}/`,
        );
      }
    }
  });

  it("runs each environment's Terraform with its own policy, the stack's where it names none", () => {
    const managed = (id: string) => resource(template, id).Properties?.ManagedPolicyArns;

    expect(managed('InfrastructureProjectRoleDev')).toEqual([
      PACKAGE_PARAMS.infrastructurePolicyArn,
      { Ref: 'BuildGuardrailsPolicy' },
    ]);
    expect(managed('TeardownProjectRoleQa')).toEqual([QA_POLICY, { Ref: 'BuildGuardrailsPolicy' }]);
    expect(managed('InfrastructureProjectRoleProd')).toEqual([PROD_POLICY, { Ref: 'BuildGuardrailsPolicy' }]);
    expect(managed('DeployProjectRoleProd')).toEqual([{ Ref: 'BuildGuardrailsPolicy' }]);
  });

  it("lets the state machines start, stop and follow exactly the stack's projects", () => {
    const granted = (roleLogicalId: string) =>
      (
        concrete(resource(template, roleLogicalId).Properties?.Policies) as {
          PolicyDocument: { Statement: { Action: unknown; Resource: unknown }[] };
        }[]
      )
        .flatMap((policy) => policy.PolicyDocument.Statement)
        .filter((statement) => asList(statement.Action as string[]).includes('codebuild:StartBuild'))
        .flatMap((statement) => asList(statement.Resource as string[]));

    expect(granted('PipelineStateMachineRole').sort()).toEqual(
      [
        `${PREFIX}-test`,
        `${PREFIX}-image`,
        ...ENVIRONMENTS.flatMap((environment) => [
          projectName(environment, 'infrastructure'),
          projectName(environment, 'deploy'),
        ]),
      ]
        .map(projectArn)
        .sort(),
    );
    expect(granted('TeardownStateMachineRole').sort()).toEqual(
      ENVIRONMENTS.map((environment) => projectArn(projectName(environment, 'teardown'))).sort(),
    );
    // A rollback deploys (and, when asked, runs the Infrastructure of) an environment: never Test nor Image.
    expect(granted('RollbackStateMachineRole').sort()).toEqual(
      ENVIRONMENTS.flatMap((environment) => [
        projectArn(projectName(environment, 'infrastructure')),
        projectArn(projectName(environment, 'deploy')),
      ]).sort(),
    );
    for (const stateMachine of ['PipelineStateMachine', 'TeardownStateMachine', 'RollbackStateMachine']) {
      expect(resource(template, stateMachine).Properties?.RoleArn).toEqual({
        'Fn::GetAtt': [`${stateMachine}Role`, 'Arn'],
      });
    }
  });

  it("sends every project's build events to buildEvents", () => {
    const rule = resourcesOfType(template, 'AWS::Events::Rule').find(([, item]) =>
      JSON.stringify(item.Properties?.EventPattern).includes('aws.codebuild'),
    );
    const pattern = rule?.[1].Properties?.EventPattern as { detail: { 'project-name': string[] } };

    expect([...pattern.detail['project-name']].sort()).toEqual(
      [
        `${PREFIX}-test`,
        `${PREFIX}-image`,
        ...ENVIRONMENTS.flatMap((environment) => STAGES.map((stage) => projectName(environment, stage))),
      ].sort(),
    );
  });

  it("tells prod's builds the role to assume, and no other environment's", () => {
    const variables = (environment: EnvironmentName, stage: (typeof STAGES)[number]) =>
      Object.fromEntries(
        (
          (
            resource(template, `${stage}Project${capitalised(environment)}`).Properties as Record<
              string,
              unknown
            >
          ).Environment as {
            EnvironmentVariables: { Name: string; Value: unknown }[];
          }
        ).EnvironmentVariables.map((variable) => [variable.Name, variable.Value]),
      );

    for (const stage of STAGES) {
      expect(variables('prod', stage)).toMatchObject({
        STEPLINE_ASSUME_ROLE_ARN: PROD_ASSUMED_ROLE,
        STEPLINE_PROJECT_ENVIRONMENT: 'prod',
      });
      expect(variables('dev', stage).STEPLINE_ASSUME_ROLE_ARN).toBeUndefined();
    }
  });
});

// The state machine roles are written by hand (the framework cannot grant a `ProjectName.$`): a Task of a new
// kind, or a new function, must come with its grant.
describe('state machine roles', () => {
  const GRANTED_BY_KIND: Record<string, string> = {
    'arn:aws:states:::codebuild:startBuild.sync': 'codebuild:StartBuild',
    'arn:aws:states:::lambda:invoke': 'lambda:InvokeFunction',
    'arn:aws:states:::lambda:invoke.waitForTaskToken': 'lambda:InvokeFunction',
    'arn:aws:states:::codebuild:batchGetReports': 'codebuild:BatchGetReports',
    'arn:aws:states:::aws-sdk:codebuild:describeTestCases': 'codebuild:DescribeTestCases',
  };

  it.each([
    ['pipeline', 'PipelineStateMachineRole'],
    ['teardown', 'TeardownStateMachineRole'],
    ['rollback', 'RollbackStateMachineRole'],
  ] as const)(
    '%s: every Task is of a kind its role grants, on the function or projects it names',
    async (name, role) => {
      const tasks = listStates(loadProjectStateMachine(name)).filter(({ state }) => state.Type === 'Task');
      expect(tasks.length).toBeGreaterThan(0);
      const failures: string[] = [];
      for (const { name: stateName, state } of tasks) {
        const resourceKind = String(state.Resource);
        const action = GRANTED_BY_KIND[resourceKind];
        if (action === undefined) {
          failures.push(`${stateName}: ${resourceKind} has no grant in ${role}`);
          continue;
        }
        const parameters = state.Parameters as Record<string, unknown>;
        // The reports read are the test project's, in its report groups (`<project>-<report name>`).
        const target =
          action === 'codebuild:BatchGetReports' || action === 'codebuild:DescribeTestCases'
            ? `arn:aws:codebuild:${REGION}:${ACCOUNT}:report-group/${PREFIX}-test-junit`
            : action === 'lambda:InvokeFunction'
              ? `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${String(parameters.FunctionName)}`
              : projectArn(
                  String(parameters.ProjectName ?? '').replace(/^stepline-test-/, `${PREFIX}-`) ||
                    projectName('prod', stateName === 'Teardown' ? 'teardown' : stateName),
                );
        const decision = await decide(role, { action, resource: target }, 'allows nothing');
        if (decision !== 'Allowed') failures.push(`${stateName}: ${action} on ${target} → ${decision}`);
      }

      expect(failures).toEqual([]);
    },
  );
});

describe('the build guardrails', () => {
  it('deny GetParametersByPath on every ancestor path of the secrets, the root included', () => {
    const guardrails = resolveConditionals(template, resource(template, 'BuildGuardrailsPolicy')) as {
      Properties: {
        PolicyDocument: { Statement: { Sid?: string; Effect: string; Action: unknown; Resource: unknown }[] };
      };
    };
    const byPath = guardrails.Properties.PolicyDocument.Statement.find(
      (statement) =>
        statement.Effect === 'Deny' &&
        asList(statement.Action as string | string[]).includes('ssm:GetParametersByPath'),
    );
    const ssm = 'arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter';

    expect(byPath?.Resource).toEqual(
      ['/stepline/test', '/stepline', '/'].map((path) => ({ 'Fn::Sub': `${ssm}${path}` })),
    );
  });
});

describe('IAM, simulated', () => {
  const buildRoles = (environment: EnvironmentName) => STAGES.map((stage) => roleId(stage, environment));

  it.each(ENVIRONMENTS)(
    "denies %s's builds everything on the other environments' state, cluster, projects, roles and account, even with a Terraform policy of *:*",
    async (environment) => {
      const others = ENVIRONMENTS.filter((other) => other !== environment);
      const failures: string[] = [];
      for (const role of buildRoles(environment)) {
        const requests = others.flatMap(otherEnvironmentRequests);
        failures.push(...(await unexpected(role, requests, 'ExplicitlyDenied', 'allows everything')));
      }

      expect(failures).toEqual([]);
    },
  );

  it.each([
    'ImageProjectRole',
    ...ENVIRONMENTS.flatMap((environment) => STAGES.map((stage) => roleId(stage, environment))),
  ])(
    '%s can never decide an approval, read the approval key, or change stepline, even with *:*',
    async (role) => {
      const ownProject = role === 'ImageProjectRole' ? `${PREFIX}-image` : `${PREFIX}-dev-deploy`;

      expect(
        await unexpected(role, steplineRequests(ownProject), 'ExplicitlyDenied', 'allows everything'),
      ).toEqual([]);
    },
  );

  it("lets prod's builds do what the shipped buildspecs need, with nothing from the Terraform policy", async () => {
    const terraformNeeds: Request[] = [
      { action: 's3:ListBucket', resource: `arn:aws:s3:::${BUCKET}`, context: { 's3:prefix': 'env:/' } },
      { action: 's3:GetObject', resource: stateObject('prod', 'terraform.tfstate') },
      { action: 's3:PutObject', resource: stateObject('prod', 'terraform.tfstate') },
      { action: 's3:GetObject', resource: stateObject('prod', 'terraform.tfstate.tflock') },
      { action: 's3:PutObject', resource: stateObject('prod', 'terraform.tfstate.tflock') },
      { action: 's3:DeleteObject', resource: stateObject('prod', 'terraform.tfstate.tflock') },
    ];
    const common = (stage: string): Request[] => [
      { action: 'logs:CreateLogStream', resource: logGroup(projectName('prod', stage)) },
      { action: 'logs:PutLogEvents', resource: logGroup(projectName('prod', stage)) },
      { action: 'codecommit:GitPull', resource: `arn:aws:codecommit:${REGION}:${ACCOUNT}:shop` },
      { action: 'sts:AssumeRole', resource: PROD_ASSUMED_ROLE, resourcePolicy: PROD_TRUST_POLICY },
    ];
    const failures = [
      ...(await unexpected(
        'InfrastructureProjectRoleProd',
        [...terraformNeeds, ...common('infrastructure')],
        'Allowed',
        'allows nothing',
      )),
      ...(await unexpected(
        'TeardownProjectRoleProd',
        [...terraformNeeds, ...common('teardown')],
        'Allowed',
        'allows nothing',
      )),
      ...(await unexpected(
        'DeployProjectRoleProd',
        [{ action: 'eks:DescribeCluster', resource: cluster('prod') }, ...common('deploy')],
        'Allowed',
        'allows nothing',
      )),
      ...(await unexpected(
        'ImageProjectRole',
        [
          { action: 'ecr:GetAuthorizationToken', resource: '*' },
          { action: 'ecr:PutImage', resource: `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${PREFIX}` },
          { action: 'ecr:DescribeImages', resource: `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${PREFIX}` },
          { action: 'logs:PutLogEvents', resource: logGroup(`${PREFIX}-image`) },
        ],
        'Allowed',
        'allows nothing',
      )),
    ];

    expect(failures).toEqual([]);
  });

  it("keeps prod's account closed to dev's builds even where its trust policy would let them in", async () => {
    const trustsEveryone = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: 'sts:AssumeRole' },
      ],
    };

    for (const role of buildRoles('dev')) {
      expect(
        await decide(
          role,
          { action: 'sts:AssumeRole', resource: PROD_ASSUMED_ROLE, resourcePolicy: trustsEveryone },
          'allows everything',
        ),
      ).toBe('ExplicitlyDenied');
    }
  });

  it("lets the commit status function read the listed forges' tokens and its runs' inputs, and nothing else", async () => {
    const parameter = (name: string) => `arn:aws:ssm:${REGION}:${ACCOUNT}:parameter/stepline/test/${name}`;
    const execution = (machine: string) =>
      `arn:aws:states:${REGION}:${ACCOUNT}:execution:${PREFIX}-${machine}:github-a1b2c3`;
    const decisions = async (requests: Request[]) =>
      Promise.all(requests.map((request) => decide('CommitStatusRole', request, 'allows nothing')));

    // statusProviders is github,bitbucket in the packaged stack.
    expect(
      await decisions([
        { action: 'ssm:GetParameter', resource: parameter('status-token/github') },
        { action: 'ssm:GetParameter', resource: parameter('status-token/bitbucket') },
        { action: 'states:DescribeExecution', resource: execution('pipeline') },
      ]),
    ).toEqual(['Allowed', 'Allowed', 'Allowed']);
    expect(
      await decisions([
        { action: 'ssm:GetParameter', resource: parameter('status-token/gitlab') },
        { action: 'ssm:GetParameter', resource: parameter('approval-key') },
        { action: 'ssm:GetParameter', resource: parameter('webhook-secret/github') },
        { action: 'ssm:GetParametersByPath', resource: parameter('status-token') },
        { action: 'states:DescribeExecution', resource: execution('teardown') },
        {
          action: 'states:StartExecution',
          resource: `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${PREFIX}-pipeline`,
        },
      ]),
    ).toEqual(Array(6).fill('ImplicitlyDenied'));
  });

  it('lets the approval function, and no build, decide an approval', async () => {
    const request = { action: 'states:SendTaskSuccess', resource: '*' };

    expect(await decide('ApprovalRole', request, 'allows nothing')).toBe('Allowed');
    expect(await decide('DeployProjectRoleDev', request, 'allows nothing')).toBe('ExplicitlyDenied');
  });
});

describe('the test project', () => {
  const junit = `arn:aws:codebuild:${REGION}:${ACCOUNT}:report-group/${PREFIX}-test-junit`;

  it('writes test reports to its own report groups only', async () => {
    const reportActions = [
      'codebuild:CreateReportGroup',
      'codebuild:CreateReport',
      'codebuild:UpdateReport',
      'codebuild:BatchPutTestCases',
    ];
    const allowed = reportActions.map((action) => ({ action, resource: junit }));
    const elsewhere = reportActions.flatMap((action) => [
      { action, resource: `arn:aws:codebuild:${REGION}:${ACCOUNT}:report-group/${PREFIX}-image-junit` },
      { action, resource: `arn:aws:codebuild:${REGION}:${ACCOUNT}:report-group/other-project-junit` },
    ]);

    expect([
      ...(await unexpected('TestProjectRole', allowed, 'Allowed', 'allows nothing')),
      ...(await unexpected('TestProjectRole', elsewhere, 'ImplicitlyDenied', 'allows nothing')),
    ]).toEqual([]);
  });

  it("holds nothing of any environment, the image repository or stepline's decisions", async () => {
    const requests = [
      { action: 's3:PutObject', resource: `arn:aws:s3:::${BUCKET}/dev/terraform.tfstate` },
      { action: 'eks:DescribeCluster', resource: `arn:aws:eks:${REGION}:${ACCOUNT}:cluster/stepline-dev` },
      { action: 'ecr:PutImage', resource: `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${PREFIX}` },
      { action: 'sts:AssumeRole', resource: PROD_ASSUMED_ROLE },
      { action: 'codebuild:StartBuild', resource: projectArn(projectName('prod', 'deploy')) },
      { action: 'states:SendTaskSuccess', resource: '*' },
    ];

    const decisions = await Promise.all(
      requests.map(
        async (request) =>
          `${request.action} on ${request.resource} → ${await decide('TestProjectRole', request, 'allows nothing')}`,
      ),
    );

    expect(decisions.filter((decision) => decision.endsWith('→ Allowed'))).toEqual([]);
  });

  it('lets the pipeline read the reports of the test report groups, and of no other', async () => {
    const reads = ['codebuild:BatchGetReports', 'codebuild:DescribeTestCases'];

    expect([
      ...(await unexpected(
        'PipelineStateMachineRole',
        reads.map((action) => ({ action, resource: junit })),
        'Allowed',
        'allows nothing',
      )),
      ...(await unexpected(
        'PipelineStateMachineRole',
        reads.map((action) => ({
          action,
          resource: `arn:aws:codebuild:${REGION}:${ACCOUNT}:report-group/other-project-junit`,
        })),
        'ImplicitlyDenied',
        'allows nothing',
      )),
    ]).toEqual([]);
  });
});
