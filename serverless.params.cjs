// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${AWS::Region} and friends are CloudFormation Fn::Sub syntax
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

// --- Per-environment build authority ------------------------------------------------------------------------
// Each environment in `settings` gets its own Infrastructure, Deploy and Teardown CodeBuild projects, each
// with a role of its own, so the authority that changes an environment is held only by that environment's
// builds: its Terraform policy, its state objects (`<env>/` in the state bucket), its cluster, its assumed
// role. A dev build, which runs the pushed repository's buildspec before any approval, holds none of prod's.
// Everything another environment owns is also denied explicitly: an explicit Deny overrides any Allow, so it
// holds even when the Terraform policy grants `*:*`
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).

const ENVIRONMENT_NAME = /^[a-z][a-z0-9-]{0,30}$/;
const IAM_POLICY_ARN = /^arn:aws[a-z-]*:iam::(\d{12}|aws):policy\/[\w+=,.@/-]+$/;
const IAM_ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/;
const SETTINGS_MAX_BYTES = 3072;
const DEFAULT_ENVIRONMENTS = [
  { name: 'dev', approval: false },
  { name: 'prod', approval: true },
];
/** The stages that run once per environment, with what each project is for. */
const ENVIRONMENT_STAGES = {
  infrastructure: { id: 'Infrastructure', description: 'infrastructure stage (Terraform)', timeout: 60 },
  deploy: { id: 'Deploy', description: 'deploy stage (Helm to EKS)', timeout: 30 },
  teardown: { id: 'Teardown', description: 'teardown (Terraform destroy)', timeout: 60 },
};

/** One environment of `settings`, checked; `where` names it in errors (`Parameter settings: environments[1]`). */
function checkedEnvironment(environment, where) {
  if (environment === null || typeof environment !== 'object') throw new Error(`${where} is not an object`);
  const { name, approval = false, infrastructurePolicyArn, assumeRoleArn } = environment;
  if (typeof name !== 'string' || !ENVIRONMENT_NAME.test(name)) {
    throw new Error(
      `${where}.name: "${name}" is not lower-case letters, digits and dashes, starting with a letter`,
    );
  }
  if (typeof approval !== 'boolean') throw new Error(`${where}.approval: must be true or false`);
  if (infrastructurePolicyArn !== undefined && !IAM_POLICY_ARN.test(String(infrastructurePolicyArn))) {
    throw new Error(
      `${where}.infrastructurePolicyArn: "${infrastructurePolicyArn}" is not an IAM policy ARN`,
    );
  }
  if (assumeRoleArn !== undefined && !IAM_ROLE_ARN.test(String(assumeRoleArn))) {
    throw new Error(`${where}.assumeRoleArn: "${assumeRoleArn}" is not an IAM role ARN`);
  }
  return { name, id: pascalCase(name), approval, infrastructurePolicyArn, assumeRoleArn, where };
}

/** A non-empty list of environments, checked, with no two names that make one logical id. */
function checkedEnvironments(list, where) {
  if (!Array.isArray(list) || list.length === 0) {
    throw new Error(`Parameter settings: ${where} must be a non-empty list`);
  }
  const seen = new Map();
  return list.map((environment, index) => {
    const checked = checkedEnvironment(environment, `Parameter settings: ${where}[${index}]`);
    if (seen.has(checked.id) && seen.get(checked.id) !== checked.name) {
      throw new Error(`${checked.where}.name: "${checked.name}" clashes with "${seen.get(checked.id)}"`);
    }
    if (seen.has(checked.id)) throw new Error(`${checked.where}.name: "${checked.name}" is listed twice`);
    seen.set(checked.id, checked.name);
    return checked;
  });
}

/**
 * The environments of the `settings` parameter (shared/pipeline.ts, EnvironmentSchema), checked here because
 * they decide which projects and roles exist: the defaults' environments, then those that only the
 * per-repository overrides (`repositories`, shared/repository-settings.ts) name, so that every run, of any
 * repository, finds its environments' projects. An environment has one set of projects and roles, so one
 * authority: a name that two lists give different `infrastructurePolicyArn` or `assumeRoleArn` is refused,
 * naming both. (`approval` may differ: it is the run's, not the project's.) Unknown fields are left to the
 * handlers' schema.
 */
async function environments(resolveVariable) {
  const raw = String((await resolveVariable('param:settings')) ?? '{}').trim() || '{}';
  // The settings reach the webhook and CodeCommit functions whole, as STEPLINE_SETTINGS, and a function's
  // environment variables total at most 4 KB (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html);
  // the rest of their variables (ARNs, triggers, providers) keep the last kilobyte.
  if (Buffer.byteLength(raw) > SETTINGS_MAX_BYTES) {
    throw new Error(
      `Parameter settings: ${Buffer.byteLength(raw)} bytes, over the ${SETTINGS_MAX_BYTES} that fit in a function's 4 KB of environment variables ` +
        '(remove spaces, or cover several repositories with one glob)',
    );
  }
  let settings;
  try {
    settings = JSON.parse(raw);
  } catch (error) {
    throw new Error(`Parameter settings: not JSON (${error.message})`);
  }
  if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) {
    throw new Error('Parameter settings: must be a JSON object');
  }
  const all = checkedEnvironments(settings.environments ?? DEFAULT_ENVIRONMENTS, 'environments');
  const repositories = settings.repositories ?? {};
  if (repositories === null || typeof repositories !== 'object' || Array.isArray(repositories)) {
    throw new Error(
      'Parameter settings: repositories must be an object keyed by repository (e.g. {"acme/shop": {…}})',
    );
  }
  for (const [pattern, override] of Object.entries(repositories)) {
    if (override === null || typeof override !== 'object' || override.environments === undefined) continue;
    for (const environment of checkedEnvironments(
      override.environments,
      `repositories["${pattern}"].environments`,
    )) {
      const same = all.find((other) => other.id === environment.id);
      if (same === undefined) {
        all.push(environment);
        continue;
      }
      if (same.name !== environment.name) {
        throw new Error(
          `${environment.where}.name: "${environment.name}" clashes with "${same.name}" (${same.where})`,
        );
      }
      for (const field of ['infrastructurePolicyArn', 'assumeRoleArn']) {
        if (same[field] !== environment[field]) {
          throw new Error(
            `${environment.where}.${field}: ${environment.name} is also ${same.where} with another ${field} ` +
              `("${same[field] ?? ''}"); an environment has one set of build projects and roles: give it one ${field}, or another name`,
          );
        }
      }
    }
  }
  return all.map(({ where, ...environment }) => environment);
}

const CODEBUILD_ASSUME_ROLE = {
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { Service: 'codebuild.amazonaws.com' },
      Action: 'sts:AssumeRole',
      Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
    },
  ],
};
/** The projects have no source of their own: the state machine passes each push's source and buildspec. */
const PIPELINE_ONLY_SOURCE = {
  Type: 'NO_SOURCE',
  BuildSpec: [
    'version: 0.2',
    'phases:',
    '  build:',
    '    commands:',
    `      - echo "This project runs from the stepline state machine, which passes each push's source and buildspec." && exit 1`,
    '',
  ].join('\n'),
};

/** Cloning the pushed repository: CodeCommit, and GitLab through the configured CodeConnections connections. */
async function sourceStatements(resolveVariable) {
  const [repositories, gitlab, gitlabSelfManaged] = await Promise.all([
    codecommitRepositories(resolveVariable),
    resolveVariable('param:gitlabConnectionArn'),
    resolveVariable('param:gitlabSelfManagedConnectionArn'),
  ]);
  const connection = (condition, arn) => ({
    'Fn::If': [condition, String(arn ?? ''), { Ref: 'AWS::NoValue' }],
  });
  return [
    {
      Sid: 'PullSource',
      Effect: 'Allow',
      Action: 'codecommit:GitPull',
      Resource: repositories.length === 0 ? [codecommitArn('*')] : repositories.map(codecommitArn),
    },
    // (https://docs.aws.amazon.com/codebuild/latest/userguide/connections-gitlab.html)
    {
      'Fn::If': [
        'UseGitLabConnections',
        {
          Sid: 'UseGitLabConnections',
          Effect: 'Allow',
          Action: [
            'codeconnections:GetConnection',
            'codeconnections:GetConnectionToken',
            'codeconnections:UseConnection',
          ],
          Resource: [
            connection('UseGitLabConnection', gitlab),
            connection('UseGitLabSelfManagedConnection', gitlabSelfManaged),
          ],
        },
        { Ref: 'AWS::NoValue' },
      ],
    },
  ];
}

/** `pre-prod` → `PreProd`: the environment's part of a logical id. */
function pascalCase(name) {
  return name
    .split('-')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');
}

/** What every environment's builds are generated from: the names, the parameters, the environments. */
async function buildContext(resolveVariable) {
  const [service, stage, list, stateBucket, clusterName, sources] = await Promise.all([
    resolveVariable('self:service'),
    resolveVariable('sls:stage'),
    environments(resolveVariable),
    resolveVariable('param:terraformStateBucket'),
    resolveVariable('param:eksClusterName'),
    sourceStatements(resolveVariable),
  ]);
  const needsDefaultPolicy = list.some((environment) => environment.infrastructurePolicyArn === undefined);
  let defaultPolicyArn;
  if (needsDefaultPolicy) {
    defaultPolicyArn = await resolveVariable('param:infrastructurePolicyArn').catch(() => undefined);
    if (typeof defaultPolicyArn !== 'string' || !IAM_POLICY_ARN.test(defaultPolicyArn)) {
      const without = list.filter((environment) => environment.infrastructurePolicyArn === undefined);
      throw new Error(
        `Parameter infrastructurePolicyArn: required (an IAM policy ARN, got "${defaultPolicyArn ?? ''}"), ` +
          `since environment ${without.map((environment) => environment.name).join(', ')} names no infrastructurePolicyArn in settings`,
      );
    }
  }
  return {
    prefix: `${service}-${stage}`,
    list: list.map((environment) => ({
      ...environment,
      infrastructurePolicyArn: environment.infrastructurePolicyArn ?? defaultPolicyArn,
    })),
    stateBucket: String(stateBucket ?? ''),
    clusterName: String(clusterName ?? ''),
    sourceStatements: sources,
  };
}

const sub = (text) => ({ 'Fn::Sub': text });
const projectName = (prefix, environment, stage) => `${prefix}-${environment}-${stage}`;
const projectArn = (name) =>
  sub(`arn:\${AWS::Partition}:codebuild:\${AWS::Region}:\${AWS::AccountId}:project/${name}`);
const logGroupArn = (name) =>
  sub(`arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/codebuild/${name}:*`);
const clusterOf = (context, environment) => context.clusterName.replaceAll('{environment}', environment);
/** An EKS cluster and the resources EKS keeps under it (its node groups, add-ons, access entries, …). */
const EKS_CLUSTER_CHILDREN = [
  'nodegroup',
  'fargateprofile',
  'addon',
  'access-entry',
  'podidentityassociation',
  'identityproviderconfig',
];
const clusterArns = (cluster) => [
  sub(`arn:\${AWS::Partition}:eks:\${AWS::Region}:\${AWS::AccountId}:cluster/${cluster}`),
  ...EKS_CLUSTER_CHILDREN.map((child) =>
    sub(`arn:\${AWS::Partition}:eks:\${AWS::Region}:\${AWS::AccountId}:${child}/${cluster}/*`),
  ),
];
const stateObjects = (bucket, environment) => sub(`arn:\${AWS::Partition}:s3:::${bucket}/${environment}/*`);

/** What a build of `stage` for `environment` may do, and what it may never touch of the other environments. */
function buildStatements(context, environment, stage) {
  const name = projectName(context.prefix, environment.name, stage);
  const statements = [
    {
      Sid: 'Logs',
      Effect: 'Allow',
      Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      Resource: logGroupArn(name),
    },
    ...context.sourceStatements,
  ];
  if (stage !== 'deploy' && context.stateBucket !== '') {
    // Terraform's S3 backend with use_lockfile: list the bucket, read and write the state, and create and
    // delete the lock file beside it (https://developer.hashicorp.com/terraform/language/backend/s3).
    statements.push(
      {
        Sid: 'ListTerraformState',
        Effect: 'Allow',
        Action: 's3:ListBucket',
        // No s3:prefix condition: Terraform also lists the workspace prefix (`env:/`) at init, and a listing shows
        // key names only; the objects of the other environments are denied below.
        Resource: sub(`arn:\${AWS::Partition}:s3:::${context.stateBucket}`),
      },
      {
        Sid: 'ReadWriteTerraformState',
        Effect: 'Allow',
        Action: ['s3:GetObject', 's3:PutObject'],
        Resource: stateObjects(context.stateBucket, environment.name),
      },
      {
        Sid: 'ReleaseTerraformLock',
        Effect: 'Allow',
        Action: 's3:DeleteObject',
        Resource: sub(`arn:\${AWS::Partition}:s3:::${context.stateBucket}/${environment.name}/*.tflock`),
      },
    );
  }
  if (stage !== 'deploy' && context.stateBucket !== '') {
    // The bucket holds every environment's state: no build changes who may read it, or removes it.
    statements.push({
      Sid: 'KeepStateBucket',
      Effect: 'Deny',
      Action: [
        's3:PutBucket*',
        's3:DeleteBucket*',
        's3:PutLifecycleConfiguration',
        's3:PutReplicationConfiguration',
        's3:PutEncryptionConfiguration',
      ],
      Resource: sub(`arn:\${AWS::Partition}:s3:::${context.stateBucket}`),
    });
  }
  if (stage === 'deploy' && context.clusterName !== '') {
    // update-kubeconfig reads the cluster's endpoint; what the role may do inside the cluster is granted
    // there, by the cluster's access entry for this role.
    statements.push({
      Sid: 'FindCluster',
      Effect: 'Allow',
      Action: 'eks:DescribeCluster',
      Resource: clusterArns(clusterOf(context, environment.name))[0],
    });
  }
  if (environment.assumeRoleArn !== undefined) {
    statements.push({
      Sid: 'AssumeEnvironmentRole',
      Effect: 'Allow',
      Action: 'sts:AssumeRole',
      Resource: environment.assumeRoleArn,
    });
  }
  statements.push(...otherEnvironmentsDenied(context, environment));
  return statements;
}

/** Explicit denials of every other environment's state, cluster, assumed role and build logs. */
function otherEnvironmentsDenied(context, environment) {
  const others = context.list.filter((other) => other.name !== environment.name);
  if (others.length === 0) return [];
  const ownCluster = clusterOf(context, environment.name);
  const resources = others.flatMap((other) => [
    ...(context.stateBucket === '' ? [] : [stateObjects(context.stateBucket, other.name)]),
    ...(context.clusterName === '' || clusterOf(context, other.name) === ownCluster
      ? []
      : clusterArns(clusterOf(context, other.name))),
    ...(other.assumeRoleArn === undefined || other.assumeRoleArn === environment.assumeRoleArn
      ? []
      : [other.assumeRoleArn]),
    // Named one by one: `<prefix>-prod-*` would also match a `prod-eu` environment's own log groups.
    ...Object.keys(ENVIRONMENT_STAGES).map((stage) =>
      logGroupArn(projectName(context.prefix, other.name, stage)),
    ),
  ]);
  return [
    {
      Sid: 'NoOtherEnvironment',
      Effect: 'Deny',
      Action: ['s3:*', 'eks:*', 'sts:*', 'logs:*'],
      Resource: resources,
    },
  ];
}

/**
 * A role's inline policies may total 10,240 characters, white space not counted
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html). The denials grow with the
 * number of environments: refuse, naming the cause, what CloudFormation would fail to create.
 */
const ROLE_INLINE_POLICY_LIMIT = 10_240;
const LONGEST_PSEUDO = {
  'AWS::Partition': 'aws-iso-b',
  'AWS::Region': 'ap-southeast-5',
  'AWS::AccountId': '123456789012',
};

function inlinePolicySize(document) {
  return JSON.stringify(document)
    .replace(/\{"Fn::Sub":("(?:[^"\\]|\\.)*")\}/g, '$1')
    .replace(/\$\{(AWS::[A-Za-z]+)\}/g, (whole, name) => LONGEST_PSEUDO[name] ?? whole).length;
}

function roleFor(context, environment, stage) {
  const managed = [{ Ref: 'BuildGuardrailsPolicy' }];
  if (stage !== 'deploy') managed.unshift(environment.infrastructurePolicyArn);
  const document = { Version: '2012-10-17', Statement: buildStatements(context, environment, stage) };
  const size = inlinePolicySize(document);
  if (size > ROLE_INLINE_POLICY_LIMIT) {
    throw new Error(
      `Parameter settings: with ${context.list.length} environments, the ${environment.name} ${stage} role's policy ` +
        `could reach ${size} characters, over IAM's ${ROLE_INLINE_POLICY_LIMIT} for a role (use fewer environments or shorter names)`,
    );
  }
  return {
    Type: 'AWS::IAM::Role',
    Properties: {
      // Path /<prefix>/<environment>/: a role in a gated environment's account can trust exactly these
      // (aws:PrincipalArn), and the guardrails can name every build role of the stack.
      Path: `/${context.prefix}/${environment.name}/`,
      AssumeRolePolicyDocument: CODEBUILD_ASSUME_ROLE,
      ManagedPolicyArns: managed,
      Policies: [
        {
          PolicyName: `${environment.name}-${stage}-build`,
          PolicyDocument: document,
        },
      ],
    },
  };
}

function projectFor(context, environment, stage) {
  const { id, description, timeout } = ENVIRONMENT_STAGES[stage];
  const name = projectName(context.prefix, environment.name, stage);
  const variables = [{ Name: 'STEPLINE_PROJECT_ENVIRONMENT', Type: 'PLAINTEXT', Value: environment.name }];
  if (stage === 'deploy') {
    variables.push({ Name: 'EKS_CLUSTER_NAME', Type: 'PLAINTEXT', Value: context.clusterName });
  } else {
    variables.push({ Name: 'TF_STATE_BUCKET', Type: 'PLAINTEXT', Value: context.stateBucket });
  }
  if (environment.assumeRoleArn !== undefined) {
    variables.push({ Name: 'STEPLINE_ASSUME_ROLE_ARN', Type: 'PLAINTEXT', Value: environment.assumeRoleArn });
  }
  return {
    Type: 'AWS::CodeBuild::Project',
    Properties: {
      Name: name,
      Description: `stepline ${environment.name} ${description}`,
      ServiceRole: { 'Fn::GetAtt': [`${id}ProjectRole${environment.id}`, 'Arn'] },
      Source: PIPELINE_ONLY_SOURCE,
      Artifacts: { Type: 'NO_ARTIFACTS' },
      Environment: {
        Type: 'LINUX_CONTAINER',
        ComputeType: 'BUILD_GENERAL1_SMALL',
        Image: 'aws/codebuild/amazonlinux-x86_64-standard:5.0',
        EnvironmentVariables: variables,
      },
      TimeoutInMinutes: timeout,
      QueuedTimeoutInMinutes: 60,
      LogsConfig: {
        CloudWatchLogs: { Status: 'ENABLED', GroupName: { Ref: `${id}ProjectLogGroup${environment.id}` } },
      },
    },
  };
}

function startBuildStatements(names) {
  return [
    {
      Sid: 'RunBuilds',
      Effect: 'Allow',
      Action: ['codebuild:StartBuild', 'codebuild:StopBuild', 'codebuild:BatchGetBuilds'],
      Resource: names.map(projectArn),
    },
    {
      Sid: 'FollowBuilds',
      Effect: 'Allow',
      Action: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
      Resource: sub(
        'arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/StepFunctionsGetEventForCodeBuildStartBuildRule',
      ),
    },
  ];
}

module.exports = {
  /**
   * Per environment of `settings`: its Infrastructure, Deploy and Teardown projects
   * (`<service>-<stage>-<environment>-<stage name>`), each with its own role and log group, and the roles'
   * ARNs as outputs (for the trust policy of a role in a gated environment's account).
   */
  environmentBuilds: async ({ resolveVariable }) => {
    const context = await buildContext(resolveVariable);
    const resources = {};
    const outputs = {};
    const retention = await resolveVariable('param:logRetentionInDays');
    for (const environment of context.list) {
      for (const [stage, { id }] of Object.entries(ENVIRONMENT_STAGES)) {
        const name = projectName(context.prefix, environment.name, stage);
        resources[`${id}Project${environment.id}`] = projectFor(context, environment, stage);
        resources[`${id}ProjectRole${environment.id}`] = roleFor(context, environment, stage);
        resources[`${id}ProjectLogGroup${environment.id}`] = {
          Type: 'AWS::Logs::LogGroup',
          Properties: { LogGroupName: `/aws/codebuild/${name}`, RetentionInDays: Number(retention) },
        };
        outputs[`${id}ProjectRole${environment.id}Arn`] = {
          Description: `The role ${environment.name}'s ${stage} builds run with`,
          Value: { 'Fn::GetAtt': [`${id}ProjectRole${environment.id}`, 'Arn'] },
        };
      }
    }
    return { Resources: resources, Outputs: outputs };
  },

  /** Every CodeBuild project of the stack, for the build events rule. */
  buildProjectNames: async ({ resolveVariable }) => {
    const context = await buildContext(resolveVariable);
    return [
      `${context.prefix}-test`,
      `${context.prefix}-image`,
      ...context.list.flatMap((environment) =>
        Object.keys(ENVIRONMENT_STAGES).map((stage) => projectName(context.prefix, environment.name, stage)),
      ),
    ];
  },

  /**
   * The state machines' grant to run, stop and follow builds (codebuild:startBuild.sync,
   * https://docs.aws.amazon.com/step-functions/latest/dg/codebuild-iam.html): exactly the projects each runs.
   * The framework's own grant is made from a literal `ProjectName`, which a project chosen per environment
   * (`ProjectName.$`) does not have.
   */
  pipelineBuildStatements: async ({ resolveVariable }) => {
    const context = await buildContext(resolveVariable);
    const names = [
      `${context.prefix}-test`,
      `${context.prefix}-image`,
      ...context.list.flatMap((environment) =>
        ['infrastructure', 'deploy'].map((stage) => projectName(context.prefix, environment.name, stage)),
      ),
    ];
    return startBuildStatements(names);
  },

  /** The rollback machine runs each environment's Infrastructure (when asked) and Deploy projects, and no other. */
  rollbackBuildStatements: async ({ resolveVariable }) => {
    const context = await buildContext(resolveVariable);
    return startBuildStatements(
      context.list.flatMap((environment) =>
        ['infrastructure', 'deploy'].map((stage) => projectName(context.prefix, environment.name, stage)),
      ),
    );
  },

  teardownBuildStatements: async ({ resolveVariable }) => {
    const context = await buildContext(resolveVariable);
    return startBuildStatements(
      context.list.map((environment) => projectName(context.prefix, environment.name, 'teardown')),
    );
  },

  /** Every environment's Terraform policy: no build may change one (BuildGuardrailsPolicy). */
  infrastructurePolicyArns: async ({ resolveVariable }) => {
    const context = await buildContext(resolveVariable);
    return [...new Set(context.list.map((environment) => environment.infrastructurePolicyArn))];
  },

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
