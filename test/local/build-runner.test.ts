import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type BuildPhase, type RunBuildOptions, runBuild } from '#local/codebuild/build-runner.ts';
import { parseBuildspec } from '#local/codebuild/buildspec.ts';
import { summariseJUnitXml } from '#local/codebuild/reports.ts';

let workDir: string;

beforeEach(async () => {
  workDir = await realpath(await mkdtemp(path.join(tmpdir(), 'stepline-build-runner-')));
});

afterEach(async () => {
  await rm(workDir, { recursive: true, force: true });
});

/** Runs a buildspec in the test's folder, collecting the log and the phase callbacks. */
async function build(yaml: string, options: Partial<RunBuildOptions> = {}) {
  const lines: string[] = [];
  const phaseEvents: BuildPhase[] = [];
  const result = await runBuild({
    buildspec: parseBuildspec(yaml),
    workDir,
    log: (line) => lines.push(line),
    onPhaseChange: (phase) => phaseEvents.push(phase),
    ...options,
  });
  const output = lines.filter((line) => !line.startsWith('[Container]'));
  const phases = Object.fromEntries(result.phases.map((phase) => [phase.name, phase.status]));
  return { result, lines, output, phases, phaseEvents };
}

/** True while the process exists and is not a zombie waiting to be reaped. */
async function isRunning(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat === undefined || stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

describe('runBuild: one shell for the whole build', () => {
  it('carries variables, the directory and functions from command to command and phase to phase', async () => {
    await mkdir(path.join(workDir, 'sub'));

    const { result, output } = await build(`
version: 0.2
phases:
  install:
    commands:
      - export X=1
      - PLAIN=kept
      - greet() { echo "hello $1"; }
      - cd sub
  build:
    commands:
      - echo "X=$X PLAIN=$PLAIN"
      - pwd
      - greet build
`);

    expect(result.status).toBe('SUCCEEDED');
    expect(output).toEqual(['X=1 PLAIN=kept', path.join(workDir, 'sub'), 'hello build']);
  });

  it('echoes each command to the log as CodeBuild does', async () => {
    const { lines } = await build('version: 0.2\nphases:\n  build:\n    commands:\n      - echo hi\n');

    const running = lines.find((line) => line.includes('Running command'));
    expect(running).toMatch(
      /^\[Container\] \d{4}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2}\.\d{6} Running command echo hi$/,
    );
    expect(lines[lines.indexOf(running ?? '') + 1]).toBe('hi');
  });

  it('runs the next command in a restored shell after a command exits the shell', async () => {
    await mkdir(path.join(workDir, 'sub'));

    const { result, output, phases } = await build(`
version: 0.2
phases:
  install:
    commands:
      - export KEEP=kept
      - cd sub
  build:
    commands:
      - exit 4
  post_build:
    commands:
      - echo "$KEEP $(pwd) $CODEBUILD_BUILD_SUCCEEDING"
`);

    expect(phases).toMatchObject({ BUILD: 'FAILED', POST_BUILD: 'SUCCEEDED' });
    expect(result.failure?.message).toBe(
      'Phase BUILD failed: Error while executing command: exit 4. Reason: exit status 4',
    );
    expect(output).toEqual([`kept ${path.join(workDir, 'sub')} 0`]);
  });

  it('runs in /bin/sh when env.shell asks for it', async () => {
    const { result, output } = await build(`
version: 0.2
env:
  shell: /bin/sh
phases:
  install:
    commands:
      - export X=from-sh
  build:
    commands:
      - echo "$X"
`);

    expect(result.status).toBe('SUCCEEDED');
    expect(output).toEqual(['from-sh']);
  });

  it('streams log lines while the build runs', async () => {
    const fifo = path.join(workDir, 'answer.fifo');
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [fifo]);
    let answered: Promise<void> | undefined;

    // The command waits for an answer the test only gives once it has seen "ready" in the log.
    const result = await runBuild({
      buildspec: parseBuildspec(
        `version: 0.2\nphases:\n  build:\n    commands:\n      - echo ready; read answer < answer.fifo; echo "got $answer"\n`,
      ),
      workDir,
      log: (line) => {
        if (line === 'ready') answered = writeFile(fifo, 'yes\n');
      },
    });
    await answered;

    expect(answered).toBeDefined();
    expect(result.status).toBe('SUCCEEDED');
  });
});

describe('runBuild: phases and failures', () => {
  it('never runs later phases after a failed install with on-failure ABORT', async () => {
    const { result, output, phases } = await build(`
version: 0.2
phases:
  install:
    on-failure: ABORT
    commands:
      - "false"
  build:
    commands:
      - echo build ran
  post_build:
    commands:
      - echo post_build ran
`);

    expect(result.status).toBe('FAILED');
    expect(phases).toEqual({ DOWNLOAD_SOURCE: 'SUCCEEDED', INSTALL: 'FAILED', FINALIZING: 'SUCCEEDED' });
    expect(output).toEqual([]);
    expect(result.failure).toEqual({
      phase: 'INSTALL',
      command: 'false',
      message: 'Phase INSTALL failed: Error while executing command: false. Reason: exit status 1',
    });
  });

  it('goes from a failed pre_build straight to FINALIZING by default', async () => {
    const { phases, output } = await build(`
version: 0.2
phases:
  pre_build:
    commands:
      - "false"
  build:
    commands:
      - echo build ran
`);

    expect(phases).toEqual({
      DOWNLOAD_SOURCE: 'SUCCEEDED',
      INSTALL: 'SUCCEEDED',
      PRE_BUILD: 'FAILED',
      FINALIZING: 'SUCCEEDED',
    });
    expect(output).toEqual([]);
  });

  it('still runs post_build after a failed build phase, with CODEBUILD_BUILD_SUCCEEDING=0', async () => {
    const { result, output, phases } = await build(`
version: 0.2
phases:
  build:
    commands:
      - echo "before $CODEBUILD_BUILD_SUCCEEDING"
      - "false"
      - echo never
  post_build:
    commands:
      - echo "after $CODEBUILD_BUILD_SUCCEEDING"
`);

    expect(result.status).toBe('FAILED');
    expect(phases).toEqual({
      DOWNLOAD_SOURCE: 'SUCCEEDED',
      INSTALL: 'SUCCEEDED',
      PRE_BUILD: 'SUCCEEDED',
      BUILD: 'FAILED',
      POST_BUILD: 'SUCCEEDED',
      UPLOAD_ARTIFACTS: 'SUCCEEDED',
      FINALIZING: 'SUCCEEDED',
    });
    expect(output).toEqual(['before 1', 'after 0']);
  });

  it('skips post_build after a failed build phase that says on-failure ABORT', async () => {
    const { output, phases } = await build(`
version: 0.2
phases:
  build:
    on-failure: ABORT
    commands:
      - "false"
  post_build:
    commands:
      - echo post_build ran
`);

    expect(phases).not.toHaveProperty('POST_BUILD');
    expect(phases).not.toHaveProperty('UPLOAD_ARTIFACTS');
    expect(output).toEqual([]);
  });

  it('goes on to the next phase with on-failure CONTINUE, and the build still fails', async () => {
    const { result, output, phases } = await build(`
version: 0.2
phases:
  install:
    on-failure: CONTINUE
    commands:
      - "false"
  build:
    commands:
      - echo "build ran, succeeding=$CODEBUILD_BUILD_SUCCEEDING"
`);

    expect(phases).toMatchObject({ INSTALL: 'FAILED', PRE_BUILD: 'SUCCEEDED', BUILD: 'SUCCEEDED' });
    expect(output).toEqual(['build ran, succeeding=0']);
    expect(result.status).toBe('FAILED');
    expect(result.failure?.phase).toBe('INSTALL');
  });

  it('runs finally after a failing command, skipping the rest of the commands', async () => {
    const { result, output, phases } = await build(`
version: 0.2
phases:
  build:
    commands:
      - echo first
      - "false"
      - echo never
    finally:
      - echo cleanup
`);

    expect(output).toEqual(['first', 'cleanup']);
    expect(phases.BUILD).toBe('FAILED');
    expect(result.failure?.command).toBe('false');
  });

  it('fails the phase when a finally command fails', async () => {
    const { phases, result } = await build(`
version: 0.2
phases:
  build:
    commands:
      - echo ok
    finally:
      - exit 3
`);

    expect(phases.BUILD).toBe('FAILED');
    expect(result.failure?.message).toBe(
      'Phase BUILD failed: Error while executing command: exit 3. Reason: exit status 3',
    );
  });

  it('runs a phase again with on-failure RETRY until it passes', async () => {
    const { result, output } = await build(`
version: 0.2
phases:
  build:
    on-failure: RETRY-2
    commands:
      - echo "attempt, succeeding=$CODEBUILD_BUILD_SUCCEEDING"
      - test -f once || { touch once; false; }
`);

    expect(result.status).toBe('SUCCEEDED');
    expect(output).toEqual(['attempt, succeeding=1', 'attempt, succeeding=1']);
  });

  it('fails naming the missing build tool', async () => {
    const { result, phases } = await build(`
version: 0.2
phases:
  build:
    commands:
      - stepline-no-such-tool init -input=false
`);

    expect(result.status).toBe('FAILED');
    expect(phases.BUILD).toBe('FAILED');
    expect(result.failure).toEqual({
      phase: 'BUILD',
      command: 'stepline-no-such-tool init -input=false',
      message:
        'Phase BUILD failed: Build tool "stepline-no-such-tool" is not installed on this machine (command: stepline-no-such-tool init -input=false)',
    });
  });

  it('reports a YAML_FILE_ERROR in DOWNLOAD_SOURCE when given buildspec text that is not valid', async () => {
    const result = await runBuild({
      buildspec: 'version: 0.2\nphases:\n  build:\n    commands: [a]\n  build:\n    commands: [b]\n',
      buildspecSource: 'buildspec.yml',
      workDir,
    });

    expect(result.status).toBe('FAILED');
    expect(result.phases.map((phase) => phase.name)).toEqual(['DOWNLOAD_SOURCE', 'FINALIZING']);
    expect(result.phases[0]?.context).toEqual({
      statusCode: 'YAML_FILE_ERROR',
      message: 'duplicate key "build" at line 5 in buildspec.yml',
    });
  });

  it('ends with FAULT when the shell cannot be started', async () => {
    const { result } = await build(`
version: 0.2
env:
  shell: /nonexistent/stepline-shell
phases:
  build:
    commands:
      - echo hi
`);

    expect(result.status).toBe('FAULT');
    expect(result.failure?.message).toMatch(/could not start the shell "\/nonexistent\/stepline-shell"/);
  });

  it('calls onPhaseChange for each phase as it ends, in CodeBuild order', async () => {
    const { result, phaseEvents } = await build(`
version: 0.2
phases:
  install:
    commands:
      - echo install
  build:
    commands:
      - echo build
`);

    expect(phaseEvents.map((phase) => [phase.name, phase.status])).toEqual([
      ['DOWNLOAD_SOURCE', 'SUCCEEDED'],
      ['INSTALL', 'SUCCEEDED'],
      ['PRE_BUILD', 'SUCCEEDED'],
      ['BUILD', 'SUCCEEDED'],
      ['POST_BUILD', 'SUCCEEDED'],
      ['UPLOAD_ARTIFACTS', 'SUCCEEDED'],
      ['FINALIZING', 'SUCCEEDED'],
    ]);
    expect(phaseEvents).toEqual(result.phases);
    for (const phase of phaseEvents) {
      expect(phase.end.getTime()).toBeGreaterThanOrEqual(phase.start.getTime());
      expect(phase.durationSeconds).toBeGreaterThanOrEqual(0);
    }
  });
});

describe('runBuild: variables', () => {
  it('injects a Parameter Store value and masks it in every log line', async () => {
    const { result, lines, output } = await build(
      `
version: 0.2
env:
  parameter-store:
    DB_PASSWORD: /ci/db-password
  exported-variables:
    - DB_PASSWORD
phases:
  build:
    commands:
      - echo "password is $DB_PASSWORD"
      - test "$DB_PASSWORD" = "hunter2-local" && echo matches
      - echo "hunter2-local" >&2
`,
      { parameters: { '/ci/db-password': 'hunter2-local' } },
    );

    expect(result.status).toBe('SUCCEEDED');
    expect(output).toEqual(['password is ***', 'matches', '***']);
    expect(lines.join('\n')).not.toContain('hunter2');
    expect(result.exportedVariables).toEqual([]);
  });

  it('reads a Secrets Manager JSON key and masks it', async () => {
    const { result, output } = await build(
      `
version: 0.2
env:
  secrets-manager:
    API_TOKEN: ci/api:token
phases:
  build:
    commands:
      - echo "token $API_TOKEN"
      - test "$API_TOKEN" = "tok-123456" && echo matches
`,
      { parameters: { 'ci/api': JSON.stringify({ token: 'tok-123456' }) } },
    );

    expect(result.status).toBe('SUCCEEDED');
    expect(output).toEqual(['token ***', 'matches']);
  });

  it('fails in DOWNLOAD_SOURCE naming a parameter that is missing, before any command runs', async () => {
    const { result, phases } = await build(
      `
version: 0.2
env:
  parameter-store:
    DB_PASSWORD: /ci/db-password
    API_KEY: /ci/api-key
phases:
  install:
    commands:
      - touch ran
`,
      { parameters: { '/ci/db-password': 'present' } },
    );

    expect(result.status).toBe('FAILED');
    expect(phases).toEqual({ DOWNLOAD_SOURCE: 'FAILED', FINALIZING: 'SUCCEEDED' });
    expect(result.phases[0]?.context).toEqual({
      statusCode: 'Decrypted Variables Error',
      message: 'parameter does not exist: /ci/api-key (for API_KEY; not among the local parameters)',
    });
    expect(result.failure?.message).toContain('/ci/api-key');
    await expect(readFile(path.join(workDir, 'ran'))).rejects.toThrow();
  });

  it('returns the exported variables as they are at the end of the build', async () => {
    const { result } = await build(`
version: 0.2
env:
  variables:
    STAGE: dev
  exported-variables:
    - IMAGE_TAG
    - COUNT
    - STAGE
    - NEVER_SET
    - AWS_REGION
phases:
  build:
    commands:
      - export IMAGE_TAG=v1
      - COUNT=3
      - export AWS_REGION=eu-west-1
  post_build:
    commands:
      - IMAGE_TAG="$IMAGE_TAG-final"
`);

    expect(result.exportedVariables).toEqual([
      { name: 'IMAGE_TAG', value: 'v1-final' },
      { name: 'COUNT', value: '3' },
      { name: 'STAGE', value: 'dev' },
    ]);
  });

  it('gives start-build overrides precedence and sets the CODEBUILD_* variables', async () => {
    const { result, output } = await build(
      `
version: 0.2
env:
  variables:
    STAGE: dev
phases:
  build:
    commands:
      - echo "$STAGE|$CODEBUILD_BUILD_ID|$CODEBUILD_SOURCE_VERSION|$CODEBUILD_RESOLVED_SOURCE_VERSION"
      - echo "$CODEBUILD_SRC_DIR|$CODEBUILD_BUILD_SUCCEEDING|$CODEBUILD_INITIATOR|$CODEBUILD_LOG_PATH"
      - echo "$CODEBUILD_BUILD_ARN" "$CODEBUILD_START_TIME" "$DEPLOY_KEY" "$HOME"
`,
      {
        env: {
          STAGE: 'prod',
          DEPLOY_KEY: { type: 'PARAMETER_STORE', value: '/ci/deploy-key' },
          CODEBUILD_BUILD_ID: 'app-build:0b6a7d2c',
          CODEBUILD_SOURCE_VERSION: 'refs/heads/main',
          CODEBUILD_RESOLVED_SOURCE_VERSION: 'a1b2c3d',
        },
        parameters: { '/ci/deploy-key': 'deploy-key-value' },
        hostEnv: { PATH: process.env.PATH, HOME: '/home/builder' },
      },
    );

    expect(result.buildId).toBe('app-build:0b6a7d2c');
    expect(output[0]).toBe('prod|app-build:0b6a7d2c|refs/heads/main|a1b2c3d');
    expect(output[1]).toBe(`${workDir}|1|stepline-local|0b6a7d2c`);
    expect(output[2]).toMatch(
      /^arn:aws:codebuild:local:000000000000:build\/app-build:0b6a7d2c \d{13} \*\*\* \/home\/builder$/,
    );
  });
});

describe('runBuild: timeout and stop', () => {
  it('times out a hanging command, killing the shell and its children', async () => {
    const { result, phases, output } = await build(
      `
version: 0.2
phases:
  build:
    commands:
      - sleep 60 & echo $! > sleep.pid; echo $$ > shell.pid; wait
  post_build:
    commands:
      - echo post_build ran
`,
      { timeoutSeconds: 1 },
    );

    expect(result.status).toBe('TIMED_OUT');
    expect(phases).toEqual({
      DOWNLOAD_SOURCE: 'SUCCEEDED',
      INSTALL: 'SUCCEEDED',
      PRE_BUILD: 'SUCCEEDED',
      BUILD: 'TIMED_OUT',
      FINALIZING: 'SUCCEEDED',
    });
    expect(result.failure).toMatchObject({
      phase: 'BUILD',
      message: expect.stringMatching(/^Build timed out in phase BUILD/),
    });
    expect(output).toEqual([]);
    const sleepPid = Number(await readFile(path.join(workDir, 'sleep.pid'), 'utf8'));
    const shellPid = Number(await readFile(path.join(workDir, 'shell.pid'), 'utf8'));
    expect(await isRunning(sleepPid)).toBe(false);
    expect(await isRunning(shellPid)).toBe(false);
  });

  it('stops when the signal aborts', async () => {
    const controller = new AbortController();

    const { result, phases } = await build(
      'version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 60\n',
      {
        signal: controller.signal,
        log: (line) => {
          if (line.endsWith('Running command sleep 60')) controller.abort();
        },
      },
    );

    expect(result.status).toBe('STOPPED');
    expect(phases.BUILD).toBe('STOPPED');
  });
});

describe('runBuild: artifacts and reports', () => {
  it('copies the artifacts from the base directory, honouring exclude-paths and discard-paths', async () => {
    const artifactsDir = path.join(workDir, '.out');

    const { result } = await build(
      `
version: 0.2
phases:
  build:
    commands:
      - mkdir -p dist/js && echo app > dist/app.js && echo lib > dist/js/lib.js && echo map > dist/js/lib.js.map
      - echo notes > notes.txt
      - VERSION=1.4.2
artifacts:
  files:
    - '**/*'
  base-directory: dist
  exclude-paths:
    - '**/*.map'
  name: app-$VERSION
  secondary-artifacts:
    flat:
      files:
        - dist/js/*
        - notes.txt
      discard-paths: yes
`,
      { artifactsDir },
    );

    expect(result.status).toBe('SUCCEEDED');
    expect(result.artifacts).toEqual([
      {
        primary: true,
        name: 'app-1.4.2',
        location: path.join(artifactsDir, 'primary'),
        files: ['app.js', 'js/lib.js'],
      },
      {
        primary: false,
        identifier: 'flat',
        location: path.join(artifactsDir, 'secondary', 'flat'),
        files: ['lib.js', 'lib.js.map', 'notes.txt'],
      },
    ]);
    expect(await readFile(path.join(artifactsDir, 'primary', 'js', 'lib.js'), 'utf8')).toBe('lib\n');
    expect(await readFile(path.join(artifactsDir, 'secondary', 'flat', 'notes.txt'), 'utf8')).toBe('notes\n');
  });

  it('fails UPLOAD_ARTIFACTS when no file matches', async () => {
    const { result, phases } = await build(
      'version: 0.2\nphases:\n  build:\n    commands:\n      - echo nothing\nartifacts:\n  files:\n    - target/*.jar\n',
    );

    expect(result.status).toBe('FAILED');
    expect(phases.UPLOAD_ARTIFACTS).toBe('FAILED');
    expect(result.failure?.message).toBe('Phase UPLOAD_ARTIFACTS failed: no matching artifact paths found');
  });

  it('summarises JUnit reports per report group, even when the build phase failed', async () => {
    const junit = [
      '<?xml version="1.0" encoding="UTF-8"?>',
      '<testsuites>',
      '  <testsuite name="api" tests="4" failures="1" errors="0" skipped="1">',
      '    <testcase name="a"/><testcase name="b"><failure message="boom"/></testcase>',
      '  </testsuite>',
      '  <testsuite name="ui" tests="2" failures="0" errors="1" skipped="0"></testsuite>',
      '</testsuites>',
    ].join('\n');
    await mkdir(path.join(workDir, 'reports'));
    await writeFile(path.join(workDir, 'reports', 'junit.xml.in'), junit);

    const { result } = await build(`
version: 0.2
phases:
  build:
    commands:
      - cp reports/junit.xml.in reports/unit.xml
      - "false"
reports:
  unit-tests:
    files:
      - '*.xml'
    base-directory: reports
  coverage:
    files:
      - coverage/clover.xml
    file-format: CLOVERXML
`);

    expect(result.status).toBe('FAILED');
    expect(result.reports).toEqual([
      {
        name: 'unit-tests',
        fileFormat: 'JUNITXML',
        files: ['reports/unit.xml'],
        status: 'FAILED',
        tests: 6,
        failures: 1,
        errors: 1,
        skipped: 1,
        // The failed test cases the files name, by suite, with their messages (a suite that counts an error
        // but lists no test case has none to name).
        failedCases: [{ name: 'b', prefix: 'api', status: 'FAILED', message: 'boom' }],
      },
      {
        name: 'coverage',
        fileFormat: 'CLOVERXML',
        files: [],
        status: 'INCOMPLETE',
        tests: 0,
        failures: 0,
        errors: 0,
        skipped: 0,
        message: 'no report files matched',
      },
    ]);
  });
});

describe('summariseJUnitXml', () => {
  it('uses the testsuites root when the suites carry no counts, and counts testcases when nothing does', () => {
    expect(
      summariseJUnitXml(
        '<testsuites tests="3" failures="2" errors="0"><testsuite name="x"></testsuite></testsuites>',
      ),
    ).toEqual({
      tests: 3,
      failures: 2,
      errors: 0,
      skipped: 0,
    });
    expect(
      summariseJUnitXml(
        '<testsuite><testcase/><testcase><skipped/></testcase><testcase><error/></testcase></testsuite>',
      ),
    ).toEqual({ tests: 3, failures: 0, errors: 1, skipped: 1 });
  });

  it('ignores comments and CDATA, and returns undefined for text that holds no test suite', () => {
    expect(
      summariseJUnitXml(
        '<!-- <testsuite tests="99"> --><testsuite tests="1" failures="0"><system-out><![CDATA[<testsuite tests="5">]]></system-out></testsuite>',
      ),
    ).toEqual({ tests: 1, failures: 0, errors: 0, skipped: 0 });
    expect(summariseJUnitXml('{"not":"xml"}')).toBeUndefined();
  });
});
