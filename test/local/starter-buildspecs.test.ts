import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { starterFiles } from '#local/cli/init.ts';
import { runBuild } from '#local/codebuild/build-runner.ts';
import { parseBuildspec } from '#local/codebuild/buildspec.ts';

let root: string;

beforeEach(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), 'stepline-starter-')));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The starter buildspec of `init` at `path`, run by the local build runner in `workDir`. */
async function runStarter(path: string, workDir: string, env: Record<string, string> = {}) {
  const file = (await starterFiles()).find((f) => f.path === path);
  if (!file) throw new Error(`init writes no ${path}`);
  const lines: string[] = [];
  const result = await runBuild({
    buildspec: parseBuildspec(file.content),
    workDir,
    env,
    log: (line) => lines.push(line),
  });
  return {
    status: result.status,
    output: lines.filter((l) => !l.startsWith('[Container]')).join('\n'),
    result,
  };
}

async function nodeApp(test: string): Promise<string> {
  const app = join(root, 'app');
  await mkdir(join(app, 'test'), { recursive: true });
  await writeFile(
    join(app, 'package.json'),
    JSON.stringify({ name: 'app', scripts: { test: 'node --test' } }),
  );
  await writeFile(
    join(app, 'test', 'app.test.mjs'),
    `import test from 'node:test';\ntest('app', () => { ${test} });\n`,
  );
  return app;
}

describe("init's starter buildspecs, as they stand", () => {
  it('test.yml runs a Node project\'s "test" script: passes when it passes, fails when it fails', async () => {
    const passing = await runStarter('buildspecs/test.yml', await nodeApp(''));
    expect(passing.status, passing.output).toBe('SUCCEEDED');
    expect(passing.output).toMatch(/^(# |ℹ )pass 1$/m);
    await rm(join(root, 'app'), { recursive: true });
    const failing = await runStarter('buildspecs/test.yml', await nodeApp("throw new Error('broken');"));
    expect(failing.status).toBe('FAILED');
    expect(failing.output).toMatch(/^(# |ℹ )fail 1$/m);
  });

  it('test.yml passes a static site, which has nothing to test', async () => {
    await writeFile(join(root, 'index.html'), '<h1>site</h1>\n');
    const { status, output } = await runStarter('buildspecs/test.yml', root);
    expect(status).toBe('SUCCEEDED');
    expect(output).toContain('No "test" script in package.json: nothing to test');
  });

  it('image.yml packs the repository per commit and exports IMAGE_URI; without the local deploy folder it says what to change', async () => {
    const site = join(root, 'site');
    const deploy = join(root, 'deploy');
    await mkdir(site);
    await writeFile(join(site, 'index.html'), '<h1>site</h1>\n');
    const commit = 'a'.repeat(40);
    const packed = await runStarter('buildspecs/image.yml', site, {
      STEPLINE_DEPLOY_DIR: deploy,
      STEPLINE_COMMIT: commit,
      STEPLINE_REPOSITORY: 'acme/site',
    });
    expect(packed.status, packed.output).toBe('SUCCEEDED');
    const image = join(deploy, 'images', 'acme_site', `${'a'.repeat(12)}.tgz`);
    expect(packed.result.exportedVariables).toEqual(
      expect.arrayContaining([{ name: 'IMAGE_URI', value: `file://${image}` }]),
    );
    expect((await readFile(image)).length).toBeGreaterThan(0);

    const onAws = await runStarter('buildspecs/image.yml', site, { STEPLINE_COMMIT: commit });
    expect(onAws.status).toBe('FAILED');
    expect(onAws.output).toContain('on AWS, build a Docker image instead');
  });
});
