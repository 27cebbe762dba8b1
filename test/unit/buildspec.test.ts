import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type Buildspec,
  BuildspecError,
  parseBuildspec,
  parseOnFailure,
} from '#local/codebuild/buildspec.ts';
import { SteplineError } from '#shared/errors.ts';

const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/buildspecs/${name}`, import.meta.url), 'utf8');
const parseFixture = (name: string) => parseBuildspec(fixture(name), name);

/** Which phases a buildspec has, with their command and finally counts. */
function phaseShape(spec: Buildspec) {
  return Object.fromEntries(
    Object.entries(spec.phases).map(([name, phase]) => [
      name,
      {
        commands: phase?.commands.length,
        finally: phase?.finally.length,
        onFailure: phase?.onFailure?.action,
      },
    ]),
  );
}

function parseError(text: string, source?: string): BuildspecError {
  try {
    parseBuildspec(text, source);
  } catch (error) {
    if (error instanceof BuildspecError) return error;
    throw error;
  }
  throw new Error('expected the buildspec to be refused');
}

describe('parseBuildspec on the real buildspecs', () => {
  it('reads the CodeBuild reference example: variables, a parameter, finally blocks, reports, artifacts, cache', () => {
    const spec = parseFixture('awsdocs-build-spec-ref.example.yml');

    expect(spec.version).toBe('0.2');
    expect(phaseShape(spec)).toEqual({
      install: { commands: 3, finally: 1, onFailure: undefined },
      pre_build: { commands: 2, finally: 1, onFailure: undefined },
      build: { commands: 3, finally: 1, onFailure: undefined },
      post_build: { commands: 2, finally: 0, onFailure: undefined },
    });
    expect(spec.phases.pre_build?.commands[1]).toBe('docker login -u User -p $LOGIN_PASSWORD');
    expect(spec.phases.build?.commands[1]).toBe('echo Build started on `date`');
    expect(spec.env.variables).toEqual({ JAVA_HOME: '/usr/lib/jvm/java-8-openjdk-amd64' });
    expect(spec.env.parameterStore).toEqual({ LOGIN_PASSWORD: '/CodeBuild/dockerLoginPassword' });
    expect(spec.env.exportedVariables).toEqual([]);
    expect(spec.reports).toEqual({
      'arn:aws:codebuild:your-region:your-aws-account-id:report-group/report-group-name-1': {
        files: ['**/*'],
        baseDirectory: 'target/tests/reports',
        discardPaths: false,
        fileFormat: 'JUNITXML',
      },
      reportGroupCucumberJson: {
        files: ['cucumber/target/cucumber-tests.xml'],
        discardPaths: true,
        fileFormat: 'CUCUMBERJSON',
      },
    });
    expect(spec.artifacts?.files).toEqual(['target/messageUtil-1.0.jar']);
    expect(spec.artifacts?.discardPaths).toBe(true);
    expect(Object.keys(spec.artifacts?.secondaryArtifacts ?? {})).toEqual(['artifact1', 'artifact2']);
    expect(spec.artifacts?.secondaryArtifacts.artifact2).toMatchObject({
      files: ['target/artifact-2.0.jar'],
      discardPaths: true,
    });
    expect(spec.cache?.paths).toEqual(['/root/.m2/**/*']);
  });

  it('refuses the syntax skeleton, naming its first duplicate key and line, and lists every duplicate', () => {
    const error = parseError(fixture('awsdocs-build-spec-ref.syntax-skeleton.yml'), 'buildspec.yml');

    expect(error).toBeInstanceOf(SteplineError);
    expect(error.code).toBe('YAML_FILE_ERROR');
    expect(error.message).toMatch(/^YAML_FILE_ERROR: duplicate key "key" at line 9 in buildspec\.yml/);
    expect(error.problems).toEqual([
      { message: 'duplicate key "key"', line: 9 },
      { message: 'duplicate key "key"', line: 12 },
      { message: 'duplicate key "runtime"', line: 36 },
      { message: 'duplicate key "artifactIdentifier"', line: 96 },
    ]);
  });

  it('reads the Docker sample: three phases, no env section', () => {
    const spec = parseFixture('awsdocs-sample-docker.buildspec.yml');

    expect(phaseShape(spec)).toEqual({
      pre_build: { commands: 2, finally: 0, onFailure: undefined },
      build: { commands: 4, finally: 0, onFailure: undefined },
      post_build: { commands: 3, finally: 0, onFailure: undefined },
    });
    expect(spec.phases.build?.commands[2]).toBe('docker build -t $IMAGE_REPO_NAME:$IMAGE_TAG .');
    expect(spec.env.variables).toEqual({});
    expect(spec.artifacts).toBeUndefined();
    expect(spec.reports).toEqual({});
  });

  it.each([
    ['aws-samples-codepipeline-terraform.buildspec_plan.yml', 3, 'terraform plan -out tfapply'],
    ['aws-samples-codepipeline-terraform.buildspec_apply.yml', 3, 'terraform apply -input=false tfapply'],
    ['aws-samples-codepipeline-terraform.buildspec_destroy.yml', 2, 'terraform destroy --auto-approve'],
  ])(
    'reads the Terraform %s: install with runtime-versions, build, all files as artifacts',
    (file, buildCommands, last) => {
      const spec = parseFixture(file);

      expect(phaseShape(spec)).toEqual({
        install: { commands: 4, finally: 0, onFailure: undefined },
        build: { commands: buildCommands, finally: 0, onFailure: undefined },
      });
      expect(spec.phases.install?.runtimeVersions).toEqual({ python: '3.9' });
      expect(spec.phases.build?.commands.at(-1)).toBe(last);
      expect(spec.env.variables).toEqual({ CODE_SRC_DIR: '.', TF_VERSION: '1.3.7' });
      expect(spec.artifacts?.files).toEqual(['**/*']);
      expect(spec.reports).toEqual({});
    },
  );

  it('reads the Terraform validate buildspec: ten variables, two runtimes kept as written, two JUnit reports', () => {
    const spec = parseFixture('aws-samples-codepipeline-terraform.buildspec_validate.yml');

    expect(phaseShape(spec)).toEqual({
      install: { commands: 11, finally: 0, onFailure: undefined },
      build: { commands: 8, finally: 0, onFailure: undefined },
    });
    expect(spec.phases.install?.runtimeVersions).toEqual({ python: '3.9', golang: '1.14' });
    expect(Object.keys(spec.env.variables)).toEqual([
      'CODE_SRC_DIR',
      'SCRIPT_DIR',
      'TF_VERSION',
      'ENVIRONMENT',
      'SKIPVALIDATIONFAILURE',
      'ENABLE_TFVALIDATE',
      'ENABLE_TFFORMAT',
      'ENABLE_TFCHECKOV',
      'ENABLE_TFSEC',
      'TFSEC_VERSION',
    ]);
    expect(spec.reports).toEqual({
      'checkov-reports': { files: ['./reports/checkov.xml'], discardPaths: false, fileFormat: 'JUNITXML' },
      'tfsec-reports': { files: ['./reports/tfsec-junit.xml'], discardPaths: false, fileFormat: 'JUNITXML' },
    });
    expect(spec.artifacts?.files).toEqual(['**/*']);
  });

  it('reads the AFT customizations runner: on-failure per phase and block commands kept whole', () => {
    const spec = parseFixture('aws-ia-aft.aft-global-customizations-terraform.yml');

    expect(phaseShape(spec)).toEqual({
      install: { commands: 27, finally: 0, onFailure: undefined },
      pre_build: { commands: 4, finally: 0, onFailure: 'ABORT' },
      build: { commands: 2, finally: 0, onFailure: 'CONTINUE' },
      post_build: { commands: 8, finally: 0, onFailure: 'ABORT' },
    });
    expect(spec.phases.install?.commands[0]).toBe('set -e');
    const sshBlock = spec.phases.install?.commands[12] ?? '';
    expect(sshBlock.trimEnd().split('\n')).toHaveLength(13);
    expect(sshBlock).toMatch(
      /^ssh_key_parameter=\$\(aws ssm get-parameter --name \/aft\/config\/aft-ssh-key/,
    );
    expect(spec.phases.post_build?.commands[4]).toBe(
      'if [[ $CODEBUILD_BUILD_SUCCEEDING == 0 ]]; then\n  exit 1\nfi\n',
    );
  });

  it('reads the AFT account-request runner: pre_build, build and post_build', () => {
    const spec = parseFixture('aws-ia-aft.ct-aft-account-request.yml');

    expect(phaseShape(spec)).toEqual({
      pre_build: { commands: 21, finally: 0, onFailure: undefined },
      build: { commands: 1, finally: 0, onFailure: undefined },
      post_build: { commands: 1, finally: 0, onFailure: undefined },
    });
    expect(spec.phases.post_build?.commands).toEqual(['echo "Post-Build"']);
  });

  it('reads the Terraform template buildspec, keeping its placeholders as values', () => {
    const spec = parseFixture('aws-samples-agentic-chatbot.buildspec-image.yml.tpl');

    // Terraform's `${name}` placeholders, literal text here.
    const placeholder = (name: string) => `\${${name}}`;
    expect(spec.env.variables).toEqual({
      ECR_REPO_URL: placeholder('ecr_repo_url'),
      AWS_DEFAULT_REGION: placeholder('aws_region'),
      AWS_ACCOUNT_ID: placeholder('account_id'),
    });
    expect(phaseShape(spec)).toEqual({
      pre_build: { commands: 4, finally: 0, onFailure: undefined },
      build: { commands: 3, finally: 0, onFailure: undefined },
      post_build: { commands: 3, finally: 0, onFailure: undefined },
    });
    expect(spec.phases.build?.commands[1]).toBe('docker build -t "$ECR_REPO_URL:$IMAGE_TAG" .');
  });
});

describe('parseBuildspec on written inputs', () => {
  const minimal = 'version: 0.2\nphases:\n  build:\n    commands:\n      - make\n';

  it('keeps numbers as written and reads yes/no switches', () => {
    const spec = parseBuildspec(
      [
        'version: 0.2',
        'env:',
        '  shell: bash',
        '  variables:',
        '    PYTHON: 3.10',
        '    PORT: 8080',
        '    DEBUG: true',
        '    EMPTY:',
        '  secrets-manager:',
        '    TOKEN: ci/token:value',
        '  exported-variables:',
        '    - IMAGE_TAG',
        '  git-credential-helper: yes',
        'phases:',
        '  build:',
        '    commands:',
        '      - true',
        'artifacts:',
        '  files: out/app.zip',
        '  exclude-paths: out/tmp/*',
        '  discard-paths: no',
        'batch:',
        '  fast-fail: true',
        'whatever-comes-next: ignored',
      ].join('\n'),
    );

    expect(spec.env.variables).toEqual({ PYTHON: '3.10', PORT: '8080', DEBUG: 'true', EMPTY: '' });
    expect(spec.env.secretsManager).toEqual({ TOKEN: 'ci/token:value' });
    expect(spec.env.exportedVariables).toEqual(['IMAGE_TAG']);
    expect(spec.env.gitCredentialHelper).toBe(true);
    expect(spec.env.shell).toBe('bash');
    expect(spec.phases.build?.commands).toEqual(['true']);
    expect(spec.artifacts).toMatchObject({
      files: ['out/app.zip'],
      excludePaths: ['out/tmp/*'],
      discardPaths: false,
    });
    expect(spec.batch).toEqual({ 'fast-fail': true });
    expect(spec).not.toHaveProperty('whatever-comes-next');
  });

  it('refuses invalid YAML with YAML_FILE_ERROR and the line', () => {
    // An unquoted command holding ": " is the classic buildspec YAML mistake.
    const error = parseError(
      'version: 0.2\nphases:\n  build:\n    commands:\n      - echo key: value: x\n      - make\n',
    );

    expect(error.code).toBe('YAML_FILE_ERROR');
    expect(error.message).toBe(
      'YAML_FILE_ERROR: nested mappings are not allowed in compact mappings at line 5',
    );
  });

  it('refuses a version other than 0.2, naming the version found', () => {
    expect(parseError(minimal.replace('0.2', '0.3')).message).toBe(
      'YAML_FILE_ERROR: version must be 0.2, got "0.3" at line 1',
    );
    expect(parseError(minimal.replace('0.2', '0.1')).message).toMatch(
      /^YAML_FILE_ERROR: version must be 0\.2: version 0\.1 runs every command in its own shell/,
    );
    expect(parseError(minimal.replace('version: 0.2\n', '')).message).toBe(
      'YAML_FILE_ERROR: version is required at line 1',
    );
  });

  it('names the phase and line of a schema error', () => {
    const error = parseError(
      minimal.replace('  build:\n', '  build:\n    on-failure: STOP\n'),
      'ci/buildspec.yml',
    );

    expect(error.message).toMatch(
      /^YAML_FILE_ERROR: phases\.build\.on-failure must be ABORT, CONTINUE, RETRY/,
    );
    expect(error.message).toMatch(/got "STOP" at line 4 in ci\/buildspec\.yml$/);
  });

  it('refuses an unknown phase name rather than skipping it', () => {
    expect(parseError(minimal.replace('  build:', '  test:')).message).toBe(
      'YAML_FILE_ERROR: unknown phase "test" in phases; phases are install, pre_build, build, post_build at line 3',
    );
  });

  it('requires commands in a build phase but not in install', () => {
    expect(parseError('version: 0.2\nphases:\n  build:\n    finally: [echo]\n').message).toBe(
      'YAML_FILE_ERROR: phases.build.commands is required at line 3',
    );
    const spec = parseBuildspec(
      'version: 0.2\nphases:\n  install:\n    runtime-versions:\n      nodejs: 22\n',
    );
    expect(spec.phases.install).toMatchObject({ commands: [], runtimeVersions: { nodejs: '22' } });
  });

  it('refuses a non-text command, a bad yes/no and an unknown report format, each at its line', () => {
    const error = parseError(
      [
        'version: 0.2',
        'phases:',
        '  build:',
        '    commands:',
        '      - {a: 1}',
        'artifacts:',
        '  files: ["**/*"]',
        '  discard-paths: maybe',
        'reports:',
        '  unit:',
        '    files: [r.xml]',
        '    file-format: xunit',
      ].join('\n'),
    );

    expect(error.problems.map(({ message, line }) => [message.split(',')[0], line])).toEqual([
      ['phases.build.commands[0]: expected a string', 5],
      ['artifacts.discard-paths must be yes or no', 8],
      ['reports.unit.file-format must be one of CUCUMBERJSON', 12],
    ]);
  });
});

describe('parseOnFailure', () => {
  it('reads ABORT, CONTINUE and the RETRY forms', () => {
    expect(parseOnFailure('ABORT')).toEqual({ action: 'ABORT' });
    expect(parseOnFailure('CONTINUE')).toEqual({ action: 'CONTINUE' });
    expect(parseOnFailure('RETRY')).toEqual({ action: 'RETRY', count: 3, pattern: '.*' });
    expect(parseOnFailure('RETRY-5')).toEqual({ action: 'RETRY', count: 5, pattern: '.*' });
    expect(parseOnFailure('RETRY-timed out')).toEqual({ action: 'RETRY', count: 3, pattern: 'timed out' });
    expect(parseOnFailure('RETRY-2-exit status [0-9]+')).toEqual({
      action: 'RETRY',
      count: 2,
      pattern: 'exit status [0-9]+',
    });
  });

  it('refuses other words, counts over 100 and broken patterns', () => {
    expect(parseOnFailure('abort')).toBeUndefined();
    expect(parseOnFailure('RETRY-101')).toBeUndefined();
    expect(parseOnFailure('RETRY-(')).toBeUndefined();
  });
});
