// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the strings are shell commands, whose ${…} is shell syntax
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Buildspec, parseBuildspec } from '#local/codebuild/buildspec.ts';

const SHIPPED = ['infrastructure', 'image', 'deploy', 'teardown'] as const;

function shipped(name: (typeof SHIPPED)[number]): Buildspec {
  const path = `buildspecs/${name}.yml`;
  return parseBuildspec(readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8'), path);
}

/** Every command of the buildspec, phase by phase, in the order CodeBuild runs them. */
function commands(spec: Buildspec): string[] {
  const { install, pre_build, build, post_build } = spec.phases;
  return [install, pre_build, build, post_build].flatMap((phase) => phase?.commands ?? []);
}

function indexOfCommand(spec: Buildspec, pattern: RegExp): number {
  const index = commands(spec).findIndex((command) => pattern.test(command));
  expect(index, `no command matches ${pattern}`).toBeGreaterThanOrEqual(0);
  return index;
}

describe('the shipped buildspecs', () => {
  it.each(SHIPPED)('%s.yml is a valid version 0.2 buildspec run by bash', (name) => {
    const spec = shipped(name);

    expect(spec.version).toBe('0.2');
    expect(spec.env.shell).toBe('bash');
    expect(spec.phases.build?.commands.length).toBeGreaterThan(0);
  });

  it.each(['infrastructure', 'teardown'] as const)(
    '%s.yml keeps one Terraform state per environment in the configured bucket',
    (name) => {
      const init = commands(shipped(name)).find((command) => command.startsWith('terraform init'));

      expect(init).toContain('-backend-config="key=${STEPLINE_ENVIRONMENT}/terraform.tfstate"');
      expect(init).toContain('-backend-config="bucket=${TF_STATE_BUCKET}"');
    },
  );

  // Without a lock two runs, or a run and a teardown, can write one state at once. The S3 backend locks with a
  // lock file beside the state from Terraform 1.10 (use_lockfile; DynamoDB locking is deprecated):
  // https://developer.hashicorp.com/terraform/language/backend/s3, "State Locking".
  it.each(['infrastructure', 'teardown'] as const)(
    '%s.yml locks the state with the S3 lock file, on a Terraform that has one, and waits for the lock',
    (name) => {
      const spec = shipped(name);
      const init = commands(spec).find((command) => command.startsWith('terraform init'));
      const [major = 0, minor = 0] = String(spec.env.variables.TF_VERSION).split('.').map(Number);
      const writes = commands(spec).filter((command) => /^terraform (plan|apply|destroy) /.test(command));

      expect(init).toContain('-backend-config="use_lockfile=true"');
      expect(init).not.toContain('dynamodb_table');
      expect(major * 100 + minor).toBeGreaterThanOrEqual(110);
      expect(writes.length).toBeGreaterThan(0);
      for (const command of writes) expect(command).toContain('-lock-timeout="$TF_LOCK_TIMEOUT"');
      expect(spec.env.variables.TF_LOCK_TIMEOUT).toMatch(/^\d+m$/);
    },
  );

  it('infrastructure.yml plans before it applies that plan', () => {
    const spec = shipped('infrastructure');

    const init = indexOfCommand(spec, /^terraform init/);
    const plan = indexOfCommand(spec, /^terraform plan .*-out=tfplan/);
    const apply = indexOfCommand(spec, /^terraform apply .*-auto-approve tfplan$/);

    expect(init).toBeLessThan(plan);
    expect(plan).toBeLessThan(apply);
  });

  it('teardown.yml destroys the environment and applies nothing', () => {
    const spec = shipped('teardown');

    indexOfCommand(spec, /^terraform destroy .*-auto-approve/);
    expect(commands(spec).some((command) => command.startsWith('terraform apply'))).toBe(false);
  });

  it('image.yml pushes the image tagged with the commit and exports its URI', () => {
    const spec = shipped('image');

    expect(spec.env.exportedVariables).toEqual(['IMAGE_URI']);
    expect(commands(spec)).toContain('IMAGE_TAG="${STEPLINE_COMMIT:-$CODEBUILD_RESOLVED_SOURCE_VERSION}"');
    expect(commands(spec)).toContain('IMAGE_URI="${IMAGE_REPOSITORY_URI}:${IMAGE_TAG}"');
    const login = indexOfCommand(spec, /docker login --username AWS --password-stdin/);
    const build = indexOfCommand(spec, /docker build .*--tag "\$IMAGE_URI"/);
    const push = indexOfCommand(spec, /docker push "\$IMAGE_URI"/);
    expect(login).toBeLessThan(build);
    expect(build).toBeLessThan(push);
  });

  it.each([
    ['without the cache', {}, ''],
    [
      'through the cache',
      { DOCKER_HUB_MIRROR: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub' },
      '--build-arg DOCKER_HUB=123456789012.dkr.ecr.eu-west-1.amazonaws.com/docker-hub',
    ],
  ])('image.yml pulls Docker Hub images %s', (_, environment, expected) => {
    const spec = shipped('image');
    const choose = indexOfCommand(spec, /^HUB_ARG=/);
    const build = indexOfCommand(spec, /docker build .*\$HUB_ARG/);

    const hubArg = execFileSync(
      'bash',
      ['-c', `${commands(spec)[choose]} >/dev/null; printf %s "$HUB_ARG"`],
      {
        env: { PATH: process.env.PATH, ...environment },
        encoding: 'utf8',
      },
    );

    expect(hubArg).toBe(expected);
    expect(choose).toBeLessThan(build);
  });

  it('deploy.yml points kubectl at the cluster, then installs the image with Helm', () => {
    const spec = shipped('deploy');

    const kubeconfig = indexOfCommand(spec, /^aws eks update-kubeconfig /);
    const helm = indexOfCommand(spec, /^helm upgrade --install /);
    expect(kubeconfig).toBeLessThan(helm);
    expect(commands(spec)[helm]).toContain('--set "image.tag=${IMAGE_URI##*:}"');
    expect(commands(spec)[helm]).toContain('--namespace "$STEPLINE_ENVIRONMENT"');
  });

  it.each(SHIPPED)('%s.yml stops early, naming the variable, when a required one is missing', (name) => {
    const checks = commands(shipped(name)).filter((command) => /^: "\$\{[A-Z_]+:\?/.test(command));

    expect(checks.length).toBeGreaterThan(0);
  });
});

describe('the per-environment buildspecs', () => {
  const ENVIRONMENT_STAGES = ['infrastructure', 'deploy', 'teardown'] as const;

  /** Runs a buildspec's commands up to and including the one matching `until`, then prints `report`. */
  function runUntil(
    name: (typeof ENVIRONMENT_STAGES)[number],
    until: RegExp,
    environment: Record<string, string>,
    report: string,
  ): { status: number; output: string } {
    const all = commands(shipped(name));
    const last = all.findIndex((command) => until.test(command));
    expect(last, `no command matches ${until}`).toBeGreaterThanOrEqual(0);
    const script = [
      ...all
        .slice(0, last + 1)
        .filter(
          (command) =>
            command.startsWith(': ') ||
            command.startsWith('[') ||
            command.startsWith('if [ -n "${STEPLINE_ASSUME'),
        ),
      report,
    ].join('\n');
    try {
      const output = execFileSync('bash', ['-c', script], {
        env: { PATH: process.env.PATH, ...environment },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      return { status: 0, output };
    } catch (error) {
      const failed = error as { status: number; stdout: string; stderr: string };
      return { status: failed.status, output: failed.stdout + failed.stderr };
    }
  }

  const REQUIRED = {
    STEPLINE_ENVIRONMENT: 'prod',
    TF_STATE_BUCKET: 'acme-terraform-state',
    IMAGE_URI: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/stepline-prod:a1b2c3',
    EKS_CLUSTER_NAME: 'apps-{environment}',
  };

  it.each(ENVIRONMENT_STAGES)('%s.yml stops when its project belongs to another environment', (name) => {
    const run = runUntil(
      name,
      /STEPLINE_PROJECT_ENVIRONMENT/,
      { ...REQUIRED, STEPLINE_PROJECT_ENVIRONMENT: 'dev' },
      'echo went on',
    );

    expect(run.status).not.toBe(0);
    expect(run.output).toContain('This project builds dev, not prod');
    expect(run.output).not.toContain('went on');
  });

  it.each(ENVIRONMENT_STAGES)(
    '%s.yml assumes the environment role before anything else, without printing its credentials',
    (name) => {
      // A stand-in for the AWS CLI: prints what `aws sts assume-role --query … --output text` prints.
      const bin = mkdtempSync(join(tmpdir(), 'stepline-aws-'));
      writeFileSync(
        join(bin, 'aws'),
        '#!/bin/sh\n[ "$1 $2" = "sts assume-role" ] && [ "$4" = "arn:aws:iam::210987654321:role/deployer" ] || exit 3\nprintf "ASIAEXAMPLE\\tsecret-key\\tsession-token\\n"\n',
        { mode: 0o755 },
      );
      try {
        const run = runUntil(
          name,
          /STEPLINE_ASSUME_ROLE_ARN/,
          {
            ...REQUIRED,
            PATH: `${bin}:${process.env.PATH}`,
            STEPLINE_PROJECT_ENVIRONMENT: 'prod',
            STEPLINE_ASSUME_ROLE_ARN: 'arn:aws:iam::210987654321:role/deployer',
          },
          'echo "as $AWS_ACCESS_KEY_ID/${#AWS_SECRET_ACCESS_KEY}/${#AWS_SESSION_TOKEN}/${CREDENTIALS:-none}"',
        );

        expect(run.status).toBe(0);
        expect(run.output).toContain('as ASIAEXAMPLE/10/13/none');
        expect(run.output).not.toContain('secret-key');
        const all = commands(shipped(name));
        const assume = all.findIndex((command) => command.includes('STEPLINE_ASSUME_ROLE_ARN'));
        const firstAwsUse = all.findIndex((command) => /^(terraform init|aws eks)/.test(command));
        expect(assume).toBeLessThan(firstAwsUse);
      } finally {
        rmSync(bin, { recursive: true, force: true });
      }
    },
  );

  it.each(ENVIRONMENT_STAGES)('%s.yml keeps the build role when the environment names none', (name) => {
    const run = runUntil(
      name,
      /STEPLINE_ASSUME_ROLE_ARN/,
      REQUIRED,
      'echo "as ${AWS_ACCESS_KEY_ID:-the build role}"',
    );

    expect(run.status).toBe(0);
    expect(run.output).toContain('as the build role');
  });
});
