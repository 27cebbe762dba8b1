import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type LocalProcess, LocalTestScope } from '../helpers/local-process.ts';

/** The runtime's own start reads serverless.yml through `serverless print`, which takes seconds here. */
const SLOW_MS = 120_000;

const COMMANDS = [
  'start',
  'run',
  'init',
  'runs',
  'show',
  'logs',
  'approve',
  'reject',
  'redrive',
  'restart',
  'teardown',
  'help',
];

/** What the process wrote on stderr, one entry per non-empty line. */
function stderrLines(process: LocalProcess): string[] {
  return process.lines
    .filter((line) => line.startsWith('stderr: '))
    .map((line) => line.slice('stderr: '.length))
    .filter((line) => line.trim() !== '');
}

/** Runs the CLI to its end and checks it failed as a command line should: one line, no stack, no "running". */
async function expectOneLineFailure(
  stepline: LocalProcess,
  timeoutMs = 30_000,
): Promise<{ line: string; code: number | null }> {
  const exit = await stepline.waitForExit(timeoutMs);
  const lines = stderrLines(stepline);
  expect(lines, stepline.output).toHaveLength(1);
  expect(lines[0]).toMatch(/^stepline: /);
  expect(stepline.output).not.toMatch(/^(stderr: )?\s+at /m);
  expect(stepline.output).not.toMatch(/^stepline is running at /m);
  expect(exit.signal).toBeNull();
  expect(exit.code).not.toBe(0);
  return { line: lines[0] ?? '', code: exit.code };
}

describe('stepline help', () => {
  it('lists every command with --help, and exits 0', async ({ onTestFinished }) => {
    const scope = await LocalTestScope.create('stepline-cli-', onTestFinished);
    const stepline = scope.cli(['--help']);
    expect((await stepline.waitForExit()).code).toBe(0);
    for (const command of COMMANDS) expect(stepline.output).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
    expect(stderrLines(stepline)).toEqual([]);
  });

  it('shows the options of one command, as `help run` and as `run --help`', async ({ onTestFinished }) => {
    const scope = await LocalTestScope.create('stepline-cli-', onTestFinished);
    const byHelp = scope.cli(['help', 'run']);
    const byOption = scope.cli(['run', '--help']);
    expect((await byHelp.waitForExit()).code).toBe(0);
    expect((await byOption.waitForExit()).code).toBe(0);
    expect(byHelp.output).toBe(byOption.output);
    for (const option of ['--approve', '--port', '--state-dir', '--param', 'STEPLINE_PORT'])
      expect(byHelp.output).toContain(option);
  });
});

describe('stepline on a mistaken command line', () => {
  it('names an unknown command in one line with the usage, and exits 2', async ({ onTestFinished }) => {
    const scope = await LocalTestScope.create('stepline-cli-', onTestFinished);
    const { line, code } = await expectOneLineFailure(scope.cli(['deploy-everything']));
    expect(line).toContain("unknown command 'deploy-everything'");
    expect(line).toContain('usage: stepline <command> [options]');
    expect(code).toBe(2);
  });

  it('names an unknown option in one line with the usage, and exits 2', async ({ onTestFinished }) => {
    const scope = await LocalTestScope.create('stepline-cli-', onTestFinished);
    const { line, code } = await expectOneLineFailure(scope.cli(['run', '--aprove']));
    expect(line).toContain("unknown option '--aprove'");
    expect(line).toContain('usage: stepline run [options]');
    expect(code).toBe(2);
  });

  it('names a --param that is not name=value before starting anything, and exits 2', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-cli-', onTestFinished);
    const { line, code } = await expectOneLineFailure(
      scope.cli(['start', '--port', '0', '--state-dir', scope.stateDir, '--param', '{"environments":[]}']),
    );
    expect(line).toContain('--param "{\\"environments\\":[]}" is not name=value');
    expect(code).toBe(2);
  });

  it(
    'names an invalid settings parameter in one line, before saying it is running',
    async ({ onTestFinished }) => {
      const scope = await LocalTestScope.create('stepline-cli-', onTestFinished);
      const { line, code } = await expectOneLineFailure(
        scope.cli([
          'start',
          '--port',
          '0',
          '--state-dir',
          scope.stateDir,
          '--param',
          'settings={"environments":5}',
        ]),
        SLOW_MS,
      );
      expect(line.toLowerCase()).toContain('settings');
      expect(line).toContain('environments');
      expect(code).toBe(1);
    },
    SLOW_MS,
  );
});

describe('stepline start on a machine that is not ready', () => {
  it('says git is missing when it is not on the PATH', async ({ onTestFinished }) => {
    const scope = await LocalTestScope.create('stepline-cli-', onTestFinished);
    // Only the folder of this Node: the CLI itself starts, but finds no git.
    const stepline = scope.cli(['start', '--port', '0', '--state-dir', scope.stateDir], {
      env: { PATH: dirname(process.execPath) },
    });
    const { line, code } = await expectOneLineFailure(stepline);
    expect(line).toContain('git was not found on the PATH');
    expect(code).toBe(1);
  });

  it('names the port in use and --port', async ({ onTestFinished }) => {
    const scope = await LocalTestScope.create('stepline-cli-', onTestFinished);
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const address = taken.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const { line, code } = await expectOneLineFailure(
      scope.cli(['start', '--port', String(port), '--state-dir', scope.stateDir]),
    );
    expect(line).toContain(`port ${port} is in use`);
    expect(line).toContain('--port');
    expect(code).toBe(1);
  });

  it(
    'says the state folder is in use by another process',
    async ({ onTestFinished }) => {
      const scope = await LocalTestScope.create('stepline-cli-', onTestFinished);
      await mkdir(scope.stateDir, { recursive: true });
      // This test's own process is alive and is not the CLI: the lock is held.
      await writeFile(join(scope.stateDir, 'lock'), `${process.pid}\n`);
      const { line, code } = await expectOneLineFailure(
        scope.cli(['start', '--port', '0', '--state-dir', scope.stateDir]),
        SLOW_MS,
      );
      expect(line).toContain(`is in use by process ${process.pid}`);
      expect(code).toBe(1);
    },
    SLOW_MS,
  );
});
