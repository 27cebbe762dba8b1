import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BUILDSPEC_PHASES, type Buildspec, parseBuildspec } from '#local/codebuild/buildspec.ts';
import { failedJUnitCases, summariseJUnitXml } from '#local/codebuild/reports.ts';
import { BuildspecPathsSchema } from '#shared/pipeline.ts';
import {
  breakSampleApp,
  copySampleApp,
  isRunning,
  SAMPLE_APP_DIR,
  stopSampleAppInstances,
} from '../helpers/sample-app.ts';

const run = promisify(execFile);

const STAGES = ['infrastructure', 'image', 'deploy', 'teardown'] as const;
type Stage = (typeof STAGES)[number] | 'test';

async function readBuildspec(stage: Stage): Promise<Buildspec> {
  const path = join(SAMPLE_APP_DIR, 'buildspecs', `${stage}.yml`);
  return parseBuildspec(await readFile(path, 'utf8'), path);
}

interface BuildResult {
  exitCode: number | null;
  output: string;
  exported: Record<string, string>;
}

/**
 * A minimal stand-in for the local build runner: the whole build in one `bash -e` process in the checkout,
 * phases in order, the buildspec's variables as defaults under the build's own (CodeBuild's precedence),
 * and the exported variables read back at the end. It resolves when the shell's output closes, so a
 * service that kept the build's output open would hang here as it would hang the real runner.
 */
async function runBuild(stage: Stage, checkout: string, env: Record<string, string>): Promise<BuildResult> {
  const spec = await readBuildspec(stage);
  const exportsFile = join(checkout, `.exports-${stage}-${Date.now()}`);
  const lines = ['set -e'];
  for (const phase of BUILDSPEC_PHASES) {
    lines.push(`# ${phase}`, ...(spec.phases[phase]?.commands ?? []));
  }
  for (const name of spec.env.exportedVariables) {
    lines.push(`printf '%s\\0%s\\0' ${name} "\${${name}-}" >> '${exportsFile}'`);
  }
  const child = spawn('bash', ['-c', lines.join('\n')], {
    cwd: checkout,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? checkout,
      ...spec.env.variables,
      CODEBUILD_SRC_DIR: checkout,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exitCode = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  const exported: Record<string, string> = {};
  if (existsSync(exportsFile)) {
    const fields = (await readFile(exportsFile, 'utf8')).split('\0');
    for (let index = 0; index + 1 < fields.length; index += 2) {
      exported[fields[index] as string] = fields[index + 1] as string;
    }
    await rm(exportsFile);
  }
  return { exitCode, output, exported };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function health(port: number): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://127.0.0.1:${port}/health`);
  return { status: response.status, body: await response.json() };
}

async function readPid(stateDir: string, environment: string): Promise<number> {
  return Number((await readFile(join(stateDir, 'environments', environment, 'service.pid'), 'utf8')).trim());
}

/** The parameters `npm start` adds to the local Parameter Store for the sample app. */
const SAMPLE_PARAMETERS = JSON.parse(readFileSync(join(SAMPLE_APP_DIR, 'parameters.json'), 'utf8')) as Record<
  string,
  string
>;

const COMMIT_1 = '1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d';
const COMMIT_2 = 'fedcba9876543210fedcba9876543210fedcba98';

describe('the sample app buildspecs', () => {
  it('sit where the pipeline settings look for them by default', () => {
    const paths = BuildspecPathsSchema.parse({});

    for (const path of Object.values(paths)) {
      expect(existsSync(join(SAMPLE_APP_DIR, path)), path).toBe(true);
    }
  });

  it('parse as buildspecs 0.2 with the phases the stages run', async () => {
    const specs = Object.fromEntries(
      await Promise.all(STAGES.map(async (stage) => [stage, await readBuildspec(stage)] as const)),
    ) as Record<Stage, Buildspec>;

    for (const stage of STAGES) {
      expect(specs[stage].version).toBe('0.2');
      expect(specs[stage].phases.pre_build?.commands.length, stage).toBeGreaterThan(0);
      expect(specs[stage].phases.build?.commands.length, stage).toBeGreaterThan(0);
    }
    // The tests run in the Test stage, before the image: the image build does not run them again.
    expect(specs.image.phases.build?.commands).not.toContain('node --test');
    expect(specs.image.phases.build?.onFailure).toEqual({ action: 'ABORT' });
  });

  it('test runs the app tests with a JUnit report that the buildspec hands to CodeBuild', async () => {
    const spec = await readBuildspec('test');

    expect(spec.phases.build?.commands.join('\n')).toMatch(
      /node --test .*--test-reporter=junit --test-reporter-destination=reports\/junit\.xml/,
    );
    expect(spec.reports).toEqual({
      junit: expect.objectContaining({ files: ['reports/junit.xml'], fileFormat: 'JUNITXML' }),
    });
  });

  it('export IMAGE_URI and IMAGE_TAG from the image stage, the port and the service URL from the others', async () => {
    expect((await readBuildspec('image')).env.exportedVariables).toEqual(['IMAGE_URI', 'IMAGE_TAG']);
    expect((await readBuildspec('infrastructure')).env.exportedVariables).toEqual(['DEPLOY_PORT']);
    expect((await readBuildspec('deploy')).env.exportedVariables).toEqual(['SERVICE_URL']);
  });
});

describe('the sample app stages, run for real', () => {
  let scratch: string;
  let stateDir: string;
  let checkout: string;
  let blocker: Server | undefined;

  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'stepline-stages-'));
    stateDir = join(scratch, 'state');
    checkout = await copySampleApp(join(scratch, 'checkout'));
  });

  afterEach(async () => {
    await stopSampleAppInstances(stateDir);
    if (blocker) {
      blocker.closeAllConnections();
      await new Promise((resolve) => blocker?.close(resolve));
      blocker = undefined;
    }
    await rm(scratch, { recursive: true, force: true });
  });

  function stageEnv(environment: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      STEPLINE_ENVIRONMENT: environment,
      STEPLINE_COMMIT: COMMIT_1,
      STEPLINE_REF_NAME: 'main',
      STEPLINE_DEPLOY_DIR: stateDir,
      CODEBUILD_RESOLVED_SOURCE_VERSION: COMMIT_1,
      // The deploy's parameter-store value, as the sample app's parameters.json gives it.
      FAILING_HEALTH_CHECKS: SAMPLE_PARAMETERS['/hello-service/failing-health-checks'] ?? '',
      ...extra,
    };
  }

  async function buildImage(commit = COMMIT_1): Promise<BuildResult> {
    const image = await runBuild(
      'image',
      checkout,
      stageEnv('dev', { STEPLINE_COMMIT: commit, CODEBUILD_RESOLVED_SOURCE_VERSION: commit }),
    );
    expect(image.exitCode, image.output).toBe(0);
    return image;
  }

  it('infrastructure records the fixed port of a known environment', async () => {
    const result = await runBuild('infrastructure', checkout, stageEnv('qa'));

    expect(result.exitCode, result.output).toBe(0);
    expect(await readFile(join(stateDir, 'environments', 'qa', 'port'), 'utf8')).toBe('4712\n');
    expect(result.exported).toEqual({ DEPLOY_PORT: '4712' });
  });

  it('infrastructure records STEPLINE_DEPLOY_PORT when it is given', async () => {
    const result = await runBuild(
      'infrastructure',
      checkout,
      stageEnv('prod', { STEPLINE_DEPLOY_PORT: '5999' }),
    );

    expect(result.exitCode, result.output).toBe(0);
    expect(await readFile(join(stateDir, 'environments', 'prod', 'port'), 'utf8')).toBe('5999\n');
  });

  it('infrastructure fails, naming the environment, when it has no port for it', async () => {
    const result = await runBuild('infrastructure', checkout, stageEnv('perf'));

    expect(result.exitCode).not.toBe(0);
    expect(result.output).toContain('no port for environment "perf"');
    expect(existsSync(join(stateDir, 'environments', 'perf'))).toBe(false);
  });

  it('infrastructure refuses an environment name that is not a plain name', async () => {
    const result = await runBuild(
      'infrastructure',
      checkout,
      stageEnv('../x', { STEPLINE_DEPLOY_PORT: '5999' }),
    );

    expect(result.exitCode).not.toBe(0);
    expect(result.output).toContain('"../x" is not a valid name');
  });

  it('test passes on the app as it is, with every test in its JUnit report', async () => {
    const result = await runBuild('test', checkout, stageEnv('dev'));

    expect(result.exitCode).toBe(0);
    expect(result.output).toMatch(/^(?:#|ℹ) fail 0$/m);
    const report = await readFile(join(checkout, 'reports', 'junit.xml'), 'utf8');
    expect(summariseJUnitXml(report)).toMatchObject({ failures: 0, errors: 0 });
    expect(summariseJUnitXml(report)?.tests).toBeGreaterThan(3);
  });

  it('test fails when the app tests fail, its JUnit report naming the failed test and why', async () => {
    await breakSampleApp(checkout);

    const result = await runBuild('test', checkout, stageEnv('dev'));

    expect(result.exitCode).not.toBe(0);
    const report = await readFile(join(checkout, 'reports', 'junit.xml'), 'utf8');
    expect(failedJUnitCases(report)).toEqual([
      expect.objectContaining({
        name: 'answers /health with 200, the environment and the version',
        prefix: 'hello-service',
        status: 'FAILED',
        message: expect.stringMatching(/./),
      }),
    ]);
  });

  it('image packs the app with its version and exports IMAGE_URI and IMAGE_TAG', async () => {
    const result = await buildImage();

    const artifact = join(stateDir, 'images', `hello-service-${COMMIT_1.slice(0, 12)}.tgz`);
    expect(result.exported).toEqual({ IMAGE_URI: `file://${artifact}`, IMAGE_TAG: COMMIT_1.slice(0, 12) });
    const { stdout: listing } = await run('tar', ['-tzf', artifact]);
    expect(listing.split('\n').filter(Boolean).sort()).toEqual([
      './',
      './VERSION',
      './package.json',
      './server.mjs',
    ]);
    const { stdout: version } = await run('tar', ['-xzOf', artifact, './VERSION']);
    expect(version).toBe(`${COMMIT_1.slice(0, 12)}\n`);
  });

  it('deploy starts the service detached, answering /health with its environment and version', async () => {
    const port = await freePort();
    const infrastructure = await runBuild(
      'infrastructure',
      checkout,
      stageEnv('dev', { STEPLINE_DEPLOY_PORT: `${port}` }),
    );
    expect(infrastructure.exitCode, infrastructure.output).toBe(0);
    const image = await buildImage();

    const deploy = await runBuild(
      'deploy',
      checkout,
      stageEnv('dev', { IMAGE_URI: image.exported.IMAGE_URI ?? '' }),
    );

    expect(deploy.exitCode, deploy.output).toBe(0);
    expect(deploy.output).toContain(`answers in dev at http://127.0.0.1:${port}/`);
    expect(deploy.exported).toEqual({ SERVICE_URL: `http://127.0.0.1:${port}/` });
    expect(await health(port)).toEqual({
      status: 200,
      body: { status: 'ok', environment: 'dev', version: COMMIT_1.slice(0, 12) },
    });
    expect(await isRunning(await readPid(stateDir, 'dev'))).toBe(true);
    expect(
      existsSync(join(stateDir, 'environments', 'dev', `release-${COMMIT_1.slice(0, 12)}`, 'server.mjs')),
    ).toBe(true);
  });

  it('a second deploy stops the previous instance and serves the new version', async () => {
    const port = await freePort();
    await runBuild('infrastructure', checkout, stageEnv('qa', { STEPLINE_DEPLOY_PORT: `${port}` }));
    const first = await buildImage(COMMIT_1);
    const second = await buildImage(COMMIT_2);
    const firstDeploy = await runBuild(
      'deploy',
      checkout,
      stageEnv('qa', { IMAGE_URI: first.exported.IMAGE_URI ?? '' }),
    );
    expect(firstDeploy.exitCode, firstDeploy.output).toBe(0);
    const firstPid = await readPid(stateDir, 'qa');

    const secondDeploy = await runBuild(
      'deploy',
      checkout,
      stageEnv('qa', { IMAGE_URI: second.exported.IMAGE_URI ?? '' }),
    );

    expect(secondDeploy.exitCode, secondDeploy.output).toBe(0);
    expect(secondDeploy.output).toContain(`Stopping the previous instance of qa (pid ${firstPid})`);
    expect(await isRunning(firstPid)).toBe(false);
    expect(await readPid(stateDir, 'qa')).not.toBe(firstPid);
    expect(await health(port)).toMatchObject({ status: 200, body: { version: COMMIT_2.slice(0, 12) } });
  });

  it('deploy fails its health check in an environment the parameter lists, and passes once it does not', async () => {
    const port = await freePort();
    await runBuild('infrastructure', checkout, stageEnv('prod', { STEPLINE_DEPLOY_PORT: `${port}` }));
    const image = await buildImage();
    const imageUri = image.exported.IMAGE_URI ?? '';
    const quick = { IMAGE_URI: imageUri, HEALTH_ATTEMPTS: '5', HEALTH_INTERVAL_MS: '50' };

    const failing = await runBuild(
      'deploy',
      checkout,
      stageEnv('prod', { ...quick, FAILING_HEALTH_CHECKS: '{"environments":["prod"]}' }),
    );
    expect(failing.exitCode).not.toBe(0);
    expect(failing.output).toContain('/hello-service/failing-health-checks lists prod');
    expect(failing.output).toContain('HTTP 503');

    // The default patience (50 × 0.1 s): under load a service can take more than the quick 0.25 s to start.
    const fixed = await runBuild('deploy', checkout, stageEnv('prod', { IMAGE_URI: imageUri }));
    expect(fixed.exitCode, fixed.output).toBe(0);
    expect(await health(port)).toMatchObject({ status: 200, body: { environment: 'prod' } });
  });

  it('deploy refuses a failing-health-checks parameter that is not the JSON it reads', async () => {
    const image = await buildImage();
    await runBuild(
      'infrastructure',
      checkout,
      stageEnv('dev', { STEPLINE_DEPLOY_PORT: `${await freePort()}` }),
    );
    const deploy = await runBuild(
      'deploy',
      checkout,
      stageEnv('dev', { IMAGE_URI: image.exported.IMAGE_URI ?? '', FAILING_HEALTH_CHECKS: 'prod' }),
    );
    expect(deploy.exitCode).not.toBe(0);
    expect(deploy.output).toContain('/hello-service/failing-health-checks must be JSON like');
  });

  it('deploy fails when the environment was never prepared', async () => {
    const image = await buildImage();

    const deploy = await runBuild(
      'deploy',
      checkout,
      stageEnv('staging', { IMAGE_URI: image.exported.IMAGE_URI ?? '' }),
    );

    expect(deploy.exitCode).not.toBe(0);
    expect(deploy.output).toContain('Environment staging is not prepared');
  });

  it('deploy fails, with the service log, when nothing healthy answers on the port', async () => {
    blocker = createServer((_request, response) => {
      response.writeHead(503, { 'content-type': 'application/json' });
      response.end('{"status":"busy"}');
    });
    await new Promise<void>((resolve) => blocker?.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as AddressInfo;
    await runBuild('infrastructure', checkout, stageEnv('dev', { STEPLINE_DEPLOY_PORT: `${port}` }));
    const image = await buildImage();

    const deploy = await runBuild(
      'deploy',
      checkout,
      stageEnv('dev', {
        IMAGE_URI: image.exported.IMAGE_URI ?? '',
        HEALTH_ATTEMPTS: '5',
        HEALTH_INTERVAL_MS: '50',
      }),
    );

    expect(deploy.exitCode).not.toBe(0);
    expect(deploy.output).toContain('No healthy answer of version');
    expect(deploy.output).toContain('HTTP 503');
    expect(deploy.output).toContain('EADDRINUSE');
  });

  it('teardown stops the instance and removes the environment folder', async () => {
    const port = await freePort();
    await runBuild('infrastructure', checkout, stageEnv('dev', { STEPLINE_DEPLOY_PORT: `${port}` }));
    const image = await buildImage();
    const deploy = await runBuild(
      'deploy',
      checkout,
      stageEnv('dev', { IMAGE_URI: image.exported.IMAGE_URI ?? '' }),
    );
    expect(deploy.exitCode, deploy.output).toBe(0);
    const pid = await readPid(stateDir, 'dev');

    const teardown = await runBuild('teardown', checkout, stageEnv('dev'));

    expect(teardown.exitCode, teardown.output).toBe(0);
    expect(await isRunning(pid)).toBe(false);
    expect(existsSync(join(stateDir, 'environments', 'dev'))).toBe(false);
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
  });

  it('teardown of an environment that has nothing deployed succeeds', async () => {
    await mkdir(join(stateDir, 'environments', 'qa'), { recursive: true });
    await writeFile(join(stateDir, 'environments', 'qa', 'port'), '4712\n');

    const teardown = await runBuild('teardown', checkout, stageEnv('qa'));

    expect(teardown.exitCode, teardown.output).toBe(0);
    expect(existsSync(join(stateDir, 'environments', 'qa'))).toBe(false);
  });
});
