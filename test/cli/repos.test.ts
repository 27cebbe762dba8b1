import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { starterFiles } from '#local/cli/init.ts';
import { parseBuildspec } from '#local/codebuild/buildspec.ts';
import { git, type LocalProcess, LocalTestScope } from '../helpers/local-process.ts';

/** The runtime's own start reads serverless.yml through `serverless print`, which takes seconds here. */
const SLOW_MS = 120_000;

/** What the process wrote on stderr, one entry per non-empty line. */
function stderrLines(process: LocalProcess): string[] {
  return process.lines
    .filter((line) => line.startsWith('stderr: '))
    .map((line) => line.slice('stderr: '.length))
    .filter((line) => line.trim() !== '');
}

/** Runs the CLI to its end and checks it failed in one line, without a stack, before saying it runs. */
async function expectOneLineFailure(stepline: LocalProcess, timeoutMs = 30_000) {
  const exit = await stepline.waitForExit(timeoutMs);
  const lines = stderrLines(stepline);
  expect(lines, stepline.output).toHaveLength(1);
  expect(lines[0]).toMatch(/^stepline: /);
  expect(stepline.output).not.toMatch(/^(stderr: )?\s+at /m);
  expect(stepline.output).not.toMatch(/^stepline is running at /m);
  expect(exit.signal).toBeNull();
  return { line: lines[0] ?? '', code: exit.code };
}

async function gitRepository(folder: string): Promise<void> {
  await mkdir(folder, { recursive: true });
  await git(['init', '--quiet', folder]);
}

describe('stepline start and run --repo on a repository they cannot run', () => {
  it('names a folder that is not a git repository, before starting anything', async ({ onTestFinished }) => {
    const scope = await LocalTestScope.create('stepline-cli-repo-', onTestFinished);
    const folder = join(scope.root, 'not-a-repo');
    await mkdir(folder);
    const { line, code } = await expectOneLineFailure(
      scope.cli(['start', '--port', '0', '--state-dir', scope.stateDir, '--repo', folder]),
    );
    expect(line).toBe(
      `stepline: --repo ${folder}: ${folder} is not a git repository (run \`git init\` there, or name your repository's folder)`,
    );
    expect(code).toBe(1);
  });

  it(
    'names the repository and the buildspecs it lacks, and says how to write them',
    async ({ onTestFinished }) => {
      const scope = await LocalTestScope.create('stepline-cli-repo-', onTestFinished);
      const folder = join(scope.root, 'bare-app');
      await gitRepository(folder);
      const { line, code } = await expectOneLineFailure(
        scope.cli(['start', '--port', '0', '--state-dir', scope.stateDir, '--repo', folder]),
        SLOW_MS,
      );
      expect(line).toContain(
        `stepline: local/bare-app (${folder}) has no buildspecs/test.yml, buildspecs/infrastructure.yml, buildspecs/image.yml, buildspecs/deploy.yml`,
      );
      expect(line).toContain(`npx stepline init ${folder}`);
      expect(code).toBe(1);
    },
    SLOW_MS,
  );

  it(
    'names the repository and the field of an invalid override in the settings',
    async ({ onTestFinished }) => {
      const scope = await LocalTestScope.create('stepline-cli-repo-', onTestFinished);
      const folder = join(scope.root, 'app');
      await gitRepository(folder);
      const settings = { repositories: { 'local/app': { approvalTimeoutSeconds: 5 } } };
      const { line, code } = await expectOneLineFailure(
        scope.cli([
          'start',
          '--port',
          '0',
          '--state-dir',
          scope.stateDir,
          '--repo',
          folder,
          '--param',
          `settings=${JSON.stringify(settings)}`,
        ]),
        SLOW_MS,
      );
      expect(line).toMatch(
        /^stepline: --param settings is invalid at repositories\.local\/app\.approvalTimeoutSeconds: /,
      );
      expect(code).toBe(1);
    },
    SLOW_MS,
  );

  it(
    "names an invalid stepline.json in the repository's work tree, and the field",
    async ({ onTestFinished }) => {
      const scope = await LocalTestScope.create('stepline-cli-repo-', onTestFinished);
      const folder = join(scope.root, 'app');
      await gitRepository(folder);
      await writeFile(join(folder, 'stepline.json'), '{"environments":[{"name":"dev","approval":"yes"}]}');
      const { line, code } = await expectOneLineFailure(
        scope.cli(['start', '--port', '0', '--state-dir', scope.stateDir, '--repo', folder]),
        SLOW_MS,
      );
      expect(line).toMatch(
        new RegExp(`^stepline: ${folder}/stepline\\.json is invalid at environments\\.0\\.approval: `),
      );
      expect(code).toBe(1);
    },
    SLOW_MS,
  );

  it(
    'run --repo names the buildspecs that are written but not committed, since HEAD is what runs',
    async ({ onTestFinished }) => {
      const scope = await LocalTestScope.create('stepline-cli-repo-', onTestFinished);
      const folder = join(scope.root, 'app');
      await gitRepository(folder);
      await writeFile(join(folder, 'README.md'), 'app\n');
      await git(['add', 'README.md'], folder);
      await git(['commit', '--quiet', '-m', 'First'], folder);
      const init = scope.cli(['init', folder]);
      expect((await init.waitForExit()).code).toBe(0);
      const { line, code } = await expectOneLineFailure(
        scope.cli(['run', '--port', '0', '--state-dir', scope.stateDir, '--repo', folder]),
        SLOW_MS,
      );
      expect(line).toBe(
        `stepline: local/app (${folder}) has buildspecs/test.yml, buildspecs/infrastructure.yml, buildspecs/image.yml, buildspecs/deploy.yml in its work tree but not in HEAD, which is what runs: commit them, then run again`,
      );
      expect(code).toBe(1);
    },
    SLOW_MS,
  );

  it('takes one --repo for run, and says so as a command-line mistake', async ({ onTestFinished }) => {
    const scope = await LocalTestScope.create('stepline-cli-repo-', onTestFinished);
    const { line, code } = await expectOneLineFailure(
      scope.cli(['run', '--port', '0', '--state-dir', scope.stateDir, '--repo', 'a', '--repo', 'b']),
    );
    expect(line).toBe('stepline: run takes one --repo (start takes several)');
    expect(code).toBe(2);
  });
});

describe('stepline init', () => {
  it('writes a buildspec per stage and stepline.json, prints each, and never overwrites without --force', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-cli-init-', onTestFinished);
    const folder = join(scope.root, 'site');
    await gitRepository(folder);

    const first = scope.cli(['init'], { cwd: folder });
    expect(await first.waitForExit(), first.output).toEqual({ code: 0, signal: null });
    const written = first.lines
      .filter((line) => line.startsWith('wrote '))
      .map((line) => line.split(/\s+/)[1]);
    expect(written).toEqual([
      'buildspecs/test.yml',
      'buildspecs/image.yml',
      'buildspecs/infrastructure.yml',
      'buildspecs/deploy.yml',
      'stepline.json',
    ]);
    expect(first.output).toContain('next: commit them');
    expect((await readdir(join(folder, 'buildspecs'))).sort()).toEqual([
      'deploy.yml',
      'image.yml',
      'infrastructure.yml',
      'test.yml',
    ]);

    // A person's own change to a file survives a second init.
    await writeFile(join(folder, 'buildspecs', 'deploy.yml'), 'version: 0.2\n# mine\n');
    const second = scope.cli(['init', folder]);
    const { line, code } = await expectOneLineFailure(second);
    expect(line).toBe(
      `stepline: init: ${folder} already has buildspecs/test.yml, buildspecs/image.yml, buildspecs/infrastructure.yml, buildspecs/deploy.yml, stepline.json: nothing was written (--force overwrites them)`,
    );
    expect(code).toBe(1);
    expect(await readFile(join(folder, 'buildspecs', 'deploy.yml'), 'utf8')).toBe('version: 0.2\n# mine\n');

    const forced = scope.cli(['init', folder, '--force']);
    expect(await forced.waitForExit()).toEqual({ code: 0, signal: null });
    expect(await readFile(join(folder, 'buildspecs', 'deploy.yml'), 'utf8')).toContain('Deploy stage');
  });

  it('names a folder that does not exist', async ({ onTestFinished }) => {
    const scope = await LocalTestScope.create('stepline-cli-init-', onTestFinished);
    const missing = join(scope.root, 'nowhere');
    const { line, code } = await expectOneLineFailure(scope.cli(['init', missing]));
    expect(line).toBe(
      `stepline: init: there is no folder ${missing} (create it, or name your repository's folder)`,
    );
    expect(code).toBe(1);
  });

  it('writes buildspecs the local build runner reads, and the defaults as the settings parse them', async () => {
    const files = await starterFiles();
    for (const file of files.filter((f) => f.path.endsWith('.yml'))) {
      const spec = parseBuildspec(file.content);
      expect([file.path, spec.version]).toEqual([file.path, '0.2']);
      expect(file.content).toMatch(/^# .* stage \(written by `stepline init`\)/);
    }
    const settings = JSON.parse(files.find((f) => f.path === 'stepline.json')?.content ?? '');
    expect(settings).toMatchObject({
      environments: [
        { name: 'dev', approval: false },
        { name: 'prod', approval: true },
      ],
      buildspecs: { test: 'buildspecs/test.yml', image: 'buildspecs/image.yml' },
      approvalTimeoutSeconds: 86_400,
    });
  });
});
