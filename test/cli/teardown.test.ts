import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalServer, startServer } from '#local/http/server.ts';
import { LocalRuntime } from '#local/runtime.ts';
import type { Wiring } from '#local/wiring.ts';
import { git, type LocalProcess, LocalTestScope } from '../helpers/local-process.ts';

/**
 * `stepline teardown <env> --repo`, the real CLI against a running stepline (its runtime and HTTP server,
 * in this process) that holds runs of two repositories: each teardown starts from the latest run of the
 * repository named, by folder or by owner/name, and hands the teardown build that repository.
 */

const projectDir = fileURLToPath(new URL('../..', import.meta.url));

/** Machines that only pass their input on: what is asserted is the input stepline starts them with. */
const passing = (name: string) => ({
  id: `${name}StateMachine`,
  name: `stepline-local-${name}`,
  definition: { StartAt: 'Done', States: { Done: { Type: 'Succeed' } } },
});
const wiring: Wiring = {
  service: 'stepline',
  stage: 'local',
  region: 'us-east-1',
  functions: [],
  buildTimeouts: {},
  machines: { pipeline: passing('pipeline'), teardown: passing('teardown') },
};

const run = (fullName: string, version: string) => ({
  push: { repository: { fullName }, ref: 'refs/heads/main', after: version },
  source: { type: 'GITHUB', location: `https://github.com/${fullName}.git`, version },
});

let scope: LocalTestScope;
let runtime: LocalRuntime;
let server: LocalServer;
let shopFolder: string;
const finish: (() => Promise<void>)[] = [];

beforeAll(async () => {
  scope = await LocalTestScope.create('stepline-cli-teardown-', (cleanup) => finish.push(cleanup));
  server = await startServer({ port: 0 });
  runtime = await LocalRuntime.start({ projectDir, stateDir: scope.stateDir, baseUrl: server.url, wiring });
  server.attach(runtime);
  // Oldest first: two runs of acme/shop, then one of local/my-api.
  for (const [name, input] of [
    ['a-shop-old', run('acme/shop', '1'.repeat(40))],
    ['b-shop-new', run('acme/shop', '2'.repeat(40))],
    ['c-api', run('local/my-api', '3'.repeat(40))],
  ] as const) {
    const started = await runtime.engine.start('pipeline', name, input);
    await runtime.engine.wait(started.executionArn);
  }
  // A clone of acme/shop: `--repo <folder>` names it by its origin, as `start --repo` does.
  shopFolder = join(scope.root, 'shop');
  await mkdir(shopFolder);
  await git(['init', '--quiet', shopFolder]);
  await git(['remote', 'add', 'origin', 'https://github.com/acme/shop.git'], shopFolder);
}, 60_000);

afterAll(async () => {
  await runtime?.stop();
  await server?.close();
  for (const cleanup of finish) await cleanup();
});

function teardown(...args: string[]): LocalProcess {
  return scope.cli(['teardown', ...args, '--port', new URL(server.url).port, '--state-dir', scope.stateDir]);
}

async function started(cli: LocalProcess): Promise<unknown> {
  expect(await cli.waitForExit(30_000), cli.output).toEqual({ code: 0, signal: null });
  const name = /^started (teardown-dev-\d+)/m.exec(cli.output)?.[1] ?? '';
  const record = runtime.store.execution(name);
  expect(record?.stateMachine).toBe('teardown');
  return record?.input;
}

async function refused(cli: LocalProcess): Promise<string> {
  expect((await cli.waitForExit(30_000)).code).not.toBe(0);
  const errors = cli.lines.filter((line) => line.startsWith('stderr: stepline: '));
  expect(errors, cli.output).toHaveLength(1);
  return errors[0] ?? '';
}

describe('stepline teardown --repo', () => {
  it("tears down the named folder's repository, from its latest run, and hands the build its name", async () => {
    const cli = teardown('dev', '--repo', shopFolder);
    expect(await started(cli)).toEqual({
      environment: 'dev',
      repository: 'acme/shop',
      source: run('acme/shop', '2'.repeat(40)).source,
    });
    expect(cli.output).toMatch(/^started teardown-dev-\d+ \(acme\/shop\)$/m);
  });

  it('takes the owner/name runs carry, too', async () => {
    expect(await started(teardown('dev', '--repo', 'local/my-api'))).toMatchObject({
      repository: 'local/my-api',
      source: { version: '3'.repeat(40) },
    });
  });

  it('asks which repository when several have runs and none is the sample app', async () => {
    const line = await refused(teardown('dev'));
    expect(line).toContain('Runs of several repositories (acme/shop, local/my-api)');
    expect(line).toContain('--repo');
  });

  it('names a repository without runs, and a --repo that is neither a folder nor owner/name', async () => {
    expect(await refused(teardown('dev', '--repo', 'acme/unknown'))).toContain(
      'No pipeline run of acme/unknown yet',
    );
    expect(await refused(teardown('dev', '--repo', 'no such thing'))).toContain(
      '--repo no such thing: neither a folder nor',
    );
  });

  it('takes the sample app by default once it has runs beside the others', async () => {
    const sample = await runtime.engine.start(
      'pipeline',
      'd-sample',
      run('local/hello-service', '4'.repeat(40)),
    );
    await runtime.engine.wait(sample.executionArn);

    expect(await started(teardown('dev'))).toMatchObject({
      repository: 'local/hello-service',
      source: { version: '4'.repeat(40) },
    });
  });
});
