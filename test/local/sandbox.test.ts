import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBuild } from '#local/codebuild/build-runner.ts';
import { allowedHostVariables } from '#local/codebuild/build-variables.ts';
import {
  BWRAP,
  bwrapArguments,
  chooseSandbox,
  sandboxMode,
  toolsUnderTmp,
} from '#local/codebuild/sandbox.ts';

const PATHS = {
  stateDir: '/home/ada/project/.stepline',
  deployDir: '/home/ada/project/.stepline/deploy',
  workDir: '/home/ada/project/.stepline/work/1234',
  runnerDir: '/tmp/stepline-build-abc',
};

const installed = await access(BWRAP).then(
  () => true,
  () => false,
);

describe('the build sandbox', () => {
  it('hides the state folder and /tmp, then binds back only what the build owns, in that order', () => {
    const args = bwrapArguments(PATHS);
    expect(args.slice(0, 3)).toEqual(['--unshare-user', '--cap-drop', 'ALL']);
    expect(args.join(' ')).toContain('--ro-bind / / --dev /dev --proc /proc --tmpfs /tmp');
    const hidden = args.indexOf(PATHS.stateDir);
    expect(args[hidden - 1]).toBe('--tmpfs');
    for (const dir of [PATHS.workDir, PATHS.deployDir, PATHS.runnerDir]) {
      const at = args.indexOf(dir);
      expect([dir, args[at - 1], args[at + 1]]).toEqual([dir, '--bind', dir]);
      expect(at).toBeGreaterThan(hidden);
    }
    // No new session: the shell must stay in the process group stepline kills.
    expect(args).not.toContain('--new-session');
    expect(args).not.toContain('--unshare-net');
  });

  it('binds back read-only the PATH tools the private /tmp would hide, before the state folder is hidden', () => {
    const path = '/tmp/clone/node_modules/.bin:/usr/local/bin:/tmp/tools/bin:/usr/bin';
    expect(toolsUnderTmp(path)).toEqual(['/tmp/clone/node_modules', '/tmp/tools/bin']);
    expect(toolsUnderTmp('/usr/bin:/bin')).toEqual([]);
    const args = bwrapArguments(PATHS, path);
    const tmp = args.indexOf('/tmp');
    const tool = args.indexOf('/tmp/clone/node_modules');
    expect(args.slice(tool - 1, tool + 2)).toEqual([
      '--ro-bind-try',
      '/tmp/clone/node_modules',
      '/tmp/clone/node_modules',
    ]);
    expect(tool).toBeGreaterThan(tmp);
    expect(tool).toBeLessThan(args.indexOf(PATHS.stateDir));
  });

  it('is off when asked, saying that a build then runs with the operator’s authority', async () => {
    const sandbox = await chooseSandbox({ mode: 'off', ...PATHS });
    expect(sandbox).toEqual({
      kind: 'none',
      note: expect.stringMatching(/STEPLINE_SANDBOX=off.*a local build runs with the operator's authority/),
    });
  });

  it('is none where bubblewrap is not installed, naming the package', async () => {
    const sandbox = await chooseSandbox({ mode: 'auto', ...PATHS, bwrap: '/nonexistent/bwrap' });
    expect(sandbox.kind).toBe('none');
    expect(sandbox.note).toContain('apt-get install bubblewrap');
    expect(sandbox.wrap).toBeUndefined();
  });

  it.runIf(installed)('wraps the shell in bubblewrap where it is installed and works', async () => {
    const works = await new Promise((resolve) =>
      execFile(BWRAP, ['--unshare-user', '--ro-bind', '/', '/', 'true'], (error) => resolve(error === null)),
    );
    const sandbox = await chooseSandbox({ mode: 'auto', ...PATHS });
    expect(sandbox.kind).toBe(works ? 'bwrap' : 'none');
    if (works) {
      expect(sandbox.wrap?.('bash', ['-s'], PATHS)).toEqual({
        command: BWRAP,
        args: [...bwrapArguments(PATHS), '--', 'bash', '-s'],
      });
    }
  });

  it('reads STEPLINE_SANDBOX as auto or off, and names a wrong value', () => {
    expect(sandboxMode(undefined)).toBe('auto');
    expect(sandboxMode('auto')).toBe('auto');
    expect(sandboxMode('off')).toBe('off');
    expect(() => sandboxMode('no')).toThrow('STEPLINE_SANDBOX is "no": it is auto (the default) or off');
  });
});

describe("a build's host variables", () => {
  it('are an allow-list: nothing of the runtime or of the operator’s shell passes', () => {
    const host = {
      PATH: '/usr/bin',
      HOME: '/root',
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      STEPLINE_PORT: '4700',
      STEPLINE_STATE_DIR: '/x/.stepline',
      STEPLINE_WEBHOOK_SECRET: 'w',
      STEPLINE_APPROVAL_KEY: 'k',
      STEPLINE_SANDBOX: 'off',
      STEPLINE_DEPLOY_PORT_BASE: '20000',
      AWS_SECRET_ACCESS_KEY: 'aws',
      GITHUB_TOKEN: 'gh',
      NODE_OPTIONS: '--require evil.js',
      UNSET: undefined,
    };
    expect(allowedHostVariables(host)).toEqual({
      PATH: '/usr/bin',
      HOME: '/root',
      LANG: 'C.UTF-8',
      LC_ALL: 'C.UTF-8',
      STEPLINE_DEPLOY_PORT_BASE: '20000',
    });
  });
});

describe('a build in the sandbox', () => {
  it.runIf(installed)(
    'cannot see the state folder or write outside its checkout and deploy folder, and says why',
    async ({ onTestFinished, skip }) => {
      const root = await realpath(await mkdtemp(join(tmpdir(), 'stepline-sandboxed-')));
      onTestFinished(() => rm(root, { recursive: true, force: true }));
      const stateDir = join(root, 'state');
      const deployDir = join(stateDir, 'deploy');
      const workDir = join(stateDir, 'work', 'b1');
      await mkdir(deployDir, { recursive: true });
      await mkdir(workDir, { recursive: true });
      await writeFile(join(stateDir, 'control-token'), 'the-token\n');
      const sandbox = await chooseSandbox({ mode: 'auto', stateDir, deployDir });
      if (!sandbox.wrap) return skip(`bubblewrap does not work here: ${sandbox.note}`);
      // Outside /tmp (the build's own): beside this test file, which only this process may write.
      const outside = join(import.meta.dirname, `.sandbox-probe-${process.pid}`);
      onTestFinished(() => rm(outside, { force: true }));
      const lines: string[] = [];
      const result = await runBuild({
        buildspec: [
          'version: 0.2',
          'phases:',
          '  build:',
          '    commands:',
          `      - if cat ${join(stateDir, 'control-token')}; then echo TOKEN-READ; else echo token-hidden; fi`,
          `      - if touch ${outside}; then echo OUTSIDE-WRITTEN; else echo outside-read-only; fi`,
          '      - echo built > in-checkout.txt',
          `      - echo deployed > ${join(deployDir, 'shared.txt')}`,
          '      - echo scratch > /tmp/scratch.txt && cat /tmp/scratch.txt',
        ].join('\n'),
        workDir,
        sandbox: sandbox.wrap,
        hostEnv: { PATH: process.env.PATH },
        log: (line) => lines.push(line),
      });
      expect(result.status, lines.join('\n')).toBe('SUCCEEDED');
      expect(lines).toContain('token-hidden');
      expect(lines).not.toContain('TOKEN-READ');
      expect(lines).not.toContain('the-token');
      expect(lines).toContain('outside-read-only');
      expect(lines).not.toContain('OUTSIDE-WRITTEN');
      expect(existsSync(outside)).toBe(false);
      expect(await readFile(join(workDir, 'in-checkout.txt'), 'utf8')).toBe('built\n');
      expect(await readFile(join(deployDir, 'shared.txt'), 'utf8')).toBe('deployed\n');
      // The build's /tmp was its own.
      expect(
        existsSync('/tmp/scratch.txt') && (await readFile('/tmp/scratch.txt', 'utf8')) === 'scratch\n',
      ).toBe(false);
    },
  );
});
