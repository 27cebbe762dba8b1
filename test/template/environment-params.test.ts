import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { EnvironmentSchema, PipelineSettingsSchema } from '#shared/pipeline.ts';

type Resolver = (context: { resolveVariable: (address: string) => Promise<unknown> }) => Promise<unknown>;

const params = createRequire(import.meta.url)('../../serverless.params.cjs') as Record<
  'environmentBuilds' | 'buildProjectNames' | 'pipelineBuildStatements' | 'infrastructurePolicyArns',
  Resolver
>;

const BASE: Record<string, string> = {
  'self:service': 'stepline',
  'sls:stage': 'test',
  'param:infrastructurePolicyArn': 'arn:aws:iam::123456789012:policy/terraform',
  'param:terraformStateBucket': 'acme-terraform-state',
  'param:eksClusterName': 'apps-{environment}',
  'param:codecommitRepositories': '',
  'param:gitlabConnectionArn': '',
  'param:gitlabSelfManagedConnectionArn': '',
  'param:logRetentionInDays': '30',
};

/** What the framework's `resolveVariable` answers; a missing parameter fails as the framework does. */
function withSettings(settings: unknown, overrides: Record<string, string | undefined> = {}) {
  const values: Record<string, string | undefined> = {
    ...BASE,
    'param:settings': typeof settings === 'string' ? settings : JSON.stringify(settings),
    ...overrides,
  };
  return {
    resolveVariable: async (address: string) => {
      const value = values[address];
      if (value === undefined) throw new Error(`Value not found at "${address.split(':')[0]}" source`);
      return value;
    },
  };
}

describe('per-environment builds from the settings parameter', () => {
  it('names dev and prod when the settings name no environment', async () => {
    expect(await params.buildProjectNames(withSettings({}))).toEqual([
      'stepline-test-test',
      'stepline-test-image',
      'stepline-test-dev-infrastructure',
      'stepline-test-dev-deploy',
      'stepline-test-dev-teardown',
      'stepline-test-prod-infrastructure',
      'stepline-test-prod-deploy',
      'stepline-test-prod-teardown',
    ]);
  });

  it('generates a project, a role and a log group per stage of each environment, in the order given', async () => {
    const settings = {
      environments: [{ name: 'dev' }, { name: 'pre-prod' }, { name: 'prod', approval: true }],
    };
    const { Resources } = (await params.environmentBuilds(withSettings(settings))) as {
      Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
    };

    const projects = Object.entries(Resources)
      .filter(([, item]) => item.Type === 'AWS::CodeBuild::Project')
      .map(([id, item]) => [id, item.Properties.Name]);
    expect(projects).toEqual(
      ['Dev', 'PreProd', 'Prod'].flatMap((id) =>
        ['Infrastructure', 'Deploy', 'Teardown'].map((stage) => [
          `${stage}Project${id}`,
          `stepline-test-${id === 'PreProd' ? 'pre-prod' : id.toLowerCase()}-${stage.toLowerCase()}`,
        ]),
      ),
    );
    expect(Object.values(Resources).filter((item) => item.Type === 'AWS::IAM::Role')).toHaveLength(9);
    expect(Resources.DeployProjectLogGroupPreProd?.Properties).toEqual({
      LogGroupName: '/aws/codebuild/stepline-test-pre-prod-deploy',
      RetentionInDays: 30,
    });
  });

  it('lists every environment Terraform policy once, for the guardrails', async () => {
    const settings = {
      environments: [
        { name: 'dev' },
        { name: 'qa' },
        { name: 'prod', infrastructurePolicyArn: 'arn:aws:iam::123456789012:policy/terraform-prod' },
      ],
    };

    expect(await params.infrastructurePolicyArns(withSettings(settings))).toEqual([
      'arn:aws:iam::123456789012:policy/terraform',
      'arn:aws:iam::123456789012:policy/terraform-prod',
    ]);
  });

  it('needs no stack-wide Terraform policy when every environment names its own', async () => {
    const settings = {
      environments: [
        { name: 'dev', infrastructurePolicyArn: 'arn:aws:iam::123456789012:policy/terraform-dev' },
      ],
    };

    await expect(
      params.infrastructurePolicyArns(withSettings(settings, { 'param:infrastructurePolicyArn': undefined })),
    ).resolves.toEqual(['arn:aws:iam::123456789012:policy/terraform-dev']);
  });

  it.each([
    ['settings that are not JSON', '{environments', 'Parameter settings: not JSON'],
    ['an empty environment list', { environments: [] }, 'environments must be a non-empty list'],
    [
      'an upper-case name',
      { environments: [{ name: 'Prod' }] },
      'environments[0].name: "Prod" is not lower-case',
    ],
    [
      'two names with one logical id',
      { environments: [{ name: 'eu-prod' }, { name: 'eu--prod' }] },
      'environments[1].name: "eu--prod" clashes with "eu-prod"',
    ],
    [
      'an approval that is not a boolean',
      { environments: [{ name: 'prod', approval: 'yes' }] },
      'environments[0].approval: must be true or false',
    ],
    [
      'a Terraform policy that is not a policy ARN',
      { environments: [{ name: 'prod', infrastructurePolicyArn: 'arn:aws:iam::123456789012:role/x' }] },
      'environments[0].infrastructurePolicyArn: "arn:aws:iam::123456789012:role/x" is not an IAM policy ARN',
    ],
    [
      'a role to assume that is not a role ARN',
      { environments: [{ name: 'prod', assumeRoleArn: 'prod-deployer' }] },
      'environments[0].assumeRoleArn: "prod-deployer" is not an IAM role ARN',
    ],
  ])('refuses %s, naming what is wrong', async (_, settings, message) => {
    await expect(params.environmentBuilds(withSettings(settings))).rejects.toThrow(message);
  });

  it("refuses more environments than a role's policy can deny, before CloudFormation would", async () => {
    const many = Array.from({ length: 12 }, (_, index) => ({
      name: `environment-number-${index}`,
      assumeRoleArn: `arn:aws:iam::210987654321:role/stepline-environment-number-${index}`,
    }));

    await expect(params.environmentBuilds(withSettings({ environments: many }))).rejects.toThrow(
      /^Parameter settings: with 12 environments, the environment-number-0 infrastructure role's policy could reach \d+ characters, over IAM's 10240 for a role/,
    );
    await expect(
      params.environmentBuilds(withSettings({ environments: many.slice(0, 6) })),
    ).resolves.toBeDefined();
  });

  it('refuses to go without a Terraform policy, naming the environments that have none', async () => {
    const settings = {
      environments: [
        { name: 'dev' },
        { name: 'prod', infrastructurePolicyArn: 'arn:aws:iam::123456789012:policy/terraform-prod' },
      ],
    };

    await expect(
      params.environmentBuilds(withSettings(settings, { 'param:infrastructurePolicyArn': undefined })),
    ).rejects.toThrow(
      'Parameter infrastructurePolicyArn: required (an IAM policy ARN, got ""), since environment dev names no infrastructurePolicyArn in settings',
    );
  });

  // The handlers read the same settings through shared/pipeline.ts: both must accept and refuse alike.
  it.each([
    [{ name: 'prod', approval: true, infrastructurePolicyArn: 'arn:aws:iam::123456789012:policy/tf' }, true],
    [{ name: 'prod', assumeRoleArn: 'arn:aws:iam::210987654321:role/path/deployer' }, true],
    [{ name: 'prod', assumeRoleArn: 'arn:aws:iam::210987654321:policy/deployer' }, false],
    [{ name: 'prod', infrastructurePolicyArn: 'arn:aws:iam::aws:policy/AdministratorAccess' }, true],
    [{ name: '1prod' }, false],
  ])('agrees with EnvironmentSchema on %j', async (environment, valid) => {
    const generated = params.buildProjectNames(withSettings({ environments: [environment] })).then(
      () => true,
      () => false,
    );

    expect(EnvironmentSchema.safeParse(environment).success).toBe(valid);
    expect(await generated).toBe(valid);
    expect(PipelineSettingsSchema.safeParse({ environments: [environment] }).success).toBe(valid);
  });

  it("lets the pipeline start exactly the test and image projects and each environment's Infrastructure and Deploy", async () => {
    const [run] = (await params.pipelineBuildStatements(
      withSettings({ environments: [{ name: 'qa' }] }),
    )) as {
      Resource: { 'Fn::Sub': string }[];
    }[];

    expect(run?.Resource.map((arn) => arn['Fn::Sub'].split(':project/')[1])).toEqual([
      'stepline-test-test',
      'stepline-test-image',
      'stepline-test-qa-infrastructure',
      'stepline-test-qa-deploy',
    ]);
  });

  it("gives the environments only a repository's override names their own projects, after the defaults'", async () => {
    const settings = {
      environments: [{ name: 'dev' }, { name: 'prod', approval: true }],
      repositories: {
        'acme/docs': { environments: [{ name: 'preview' }, { name: 'prod' }] },
        'acme/*': { approvalTimeoutSeconds: 600 },
      },
    };
    const names = (await params.buildProjectNames(withSettings(settings))) as string[];
    expect(names.filter((name) => name.endsWith('-deploy'))).toEqual([
      'stepline-test-dev-deploy',
      'stepline-test-prod-deploy',
      'stepline-test-preview-deploy',
    ]);
    const [run] = (await params.pipelineBuildStatements(withSettings(settings))) as {
      Resource: { 'Fn::Sub': string }[];
    }[];
    expect(run?.Resource.map((arn) => arn['Fn::Sub'].split(':project/')[1])).toContain(
      'stepline-test-preview-deploy',
    );
  });

  it('refuses one environment name with two authorities, naming the repository and both places', async () => {
    const settings = {
      environments: [{ name: 'prod', assumeRoleArn: 'arn:aws:iam::210987654321:role/deployer' }],
      repositories: {
        'acme/shop': {
          environments: [{ name: 'prod', assumeRoleArn: 'arn:aws:iam::111111111111:role/other' }],
        },
      },
    };
    await expect(params.buildProjectNames(withSettings(settings))).rejects.toThrow(
      /^Parameter settings: repositories\["acme\/shop"\]\.environments\[0\]\.assumeRoleArn: prod is also Parameter settings: environments\[0\] with another assumeRoleArn/,
    );
  });

  it("names the repository and the field of an override's invalid environment", async () => {
    const settings = { repositories: { 'acme/shop': { environments: [{ name: 'QA' }] } } };
    await expect(params.buildProjectNames(withSettings(settings))).rejects.toThrow(
      'Parameter settings: repositories["acme/shop"].environments[0].name: "QA" is not lower-case',
    );
  });

  it("refuses settings that would not fit in a function's 4 KB of environment variables", async () => {
    const repositories = Object.fromEntries(
      Array.from({ length: 60 }, (_, i) => [`acme/service-${i}`, { environments: [{ name: 'dev' }] }]),
    );
    await expect(params.buildProjectNames(withSettings({ repositories }))).rejects.toThrow(
      /^Parameter settings: \d+ bytes, over the 3072 that fit in a function's 4 KB of environment variables/,
    );
  });
});
