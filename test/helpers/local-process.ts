import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, realpath, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { controlHeaders } from '#local/cli/client.ts';
import { deployDirOf } from '#local/codebuild/deployed-services.ts';
import { isRunning, stopSampleAppInstances } from './sample-app.ts';

const execFileAsync = promisify(execFile);

/** The project root: where `node local/cli/main.ts` and `npx stepline` run. */
export const PROJECT_DIR = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = join(PROJECT_DIR, 'local', 'cli', 'main.ts');

/** How long a test waits for a line or an exit before it fails, unless told otherwise. */
const DEFAULT_DEADLINE_MS = 20_000;

/** Variables of the developer's shell that would point the process at another port, folder or deploy port. */
const INHERITED_SETTINGS = [
  'STEPLINE_PORT',
  'STEPLINE_STATE_DIR',
  'STEPLINE_DEPLOY_PORT',
  'STEPLINE_DEPLOY_PORT_BASE',
  'STEPLINE_SAMPLE_APP',
  'STEPLINE_WEBHOOK_SECRET',
  'STEPLINE_WEBHOOK_SECRET_GITHUB',
  'STEPLINE_WEBHOOK_SECRET_GITLAB',
  'STEPLINE_WEBHOOK_SECRET_BITBUCKET',
  'STEPLINE_APPROVAL_KEY',
  'STEPLINE_SANDBOX',
];

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LocalProcessOptions {
  /** Added to the environment (after the developer's own stepline settings are removed). */
  env?: Record<string, string>;
  cwd?: string;
  /** The program; default this Node (the project's Node 22). */
  command?: string;
}

/**
 * A stepline process started by a test: its output kept line by line, with ways to wait for a line or for
 * its exit against a deadline. It leads its own process group, so that clean-up reaches what it started
 * (an `npx` launcher's node, a git hook) even when the test failed half-way.
 */
export class LocalProcess {
  readonly child: ChildProcess;
  readonly args: readonly string[];
  /** stdout and stderr lines, in the order they arrived (stderr lines start with `stderr: `). */
  readonly lines: string[] = [];
  readonly exited: Promise<Exit>;
  #exit: Exit | undefined;
  readonly #listeners = new Set<() => void>();

  constructor(args: string[], options: LocalProcessOptions = {}) {
    this.args = args;
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of INHERITED_SETTINGS) delete env[name];
    // The project's Node first on the PATH: builds and the git hook run `node` too.
    env.PATH = `${dirname(process.execPath)}${delimiter}${env.PATH ?? ''}`;
    this.child = spawn(options.command ?? process.execPath, args, {
      cwd: options.cwd ?? PROJECT_DIR,
      env: { ...env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.#collect(this.child.stdout, '');
    this.#collect(this.child.stderr, 'stderr: ');
    this.exited = new Promise((resolve) => {
      this.child.once('error', (error) => {
        this.lines.push(`stderr: could not start: ${error.message}`);
        this.#exit = { code: -1, signal: null };
        this.#notify();
        resolve(this.#exit);
      });
      this.child.once('close', (code, signal) => {
        this.#exit = { code, signal };
        this.#notify();
        resolve(this.#exit);
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${this.describe()} has no pid`);
    return this.child.pid;
  }

  /** All output so far, for assertions and for failure messages. */
  get output(): string {
    return this.lines.join('\n');
  }

  /**
   * Waits for the first line at or after index `from` that matches, and returns it with its index and match.
   * Fails when the process exits first or the deadline passes, quoting the output.
   */
  async waitForLine(
    pattern: RegExp,
    options: { from?: number; timeoutMs?: number } = {},
  ): Promise<{ line: string; index: number; match: RegExpMatchArray }> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_DEADLINE_MS;
    let from = options.from ?? 0;
    const find = () => {
      for (; from < this.lines.length; from += 1) {
        const line = this.lines[from] ?? '';
        const match = line.match(pattern);
        if (match) return { line, index: from, match };
      }
      return undefined;
    };
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found) {
          done();
          resolve(found);
        } else if (this.#exit) {
          done();
          reject(
            this.#failure(`exited (${formatExit(this.#exit)}) before printing a line matching ${pattern}`),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(this.#failure(`printed no line matching ${pattern} within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
      check();
    });
  }

  /** Waits for the process to exit by itself. */
  async waitForExit(timeoutMs = DEFAULT_DEADLINE_MS): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.#failure(`was still running after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal` to the process itself (as Ctrl-C or a service manager would) and waits for its exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = DEFAULT_DEADLINE_MS): Promise<Exit> {
    if (!this.#exit) this.child.kill(signal);
    return this.waitForExit(timeoutMs);
  }

  /** Kills the process's whole group at once and waits until it has gone. For clean-up. */
  async killGroup(): Promise<void> {
    if (this.#exit || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      this.child.kill('SIGKILL');
    }
    await this.exited;
  }

  describe(): string {
    return `stepline ${this.args.filter((a) => a !== CLI).join(' ')}`;
  }

  #collect(stream: NodeJS.ReadableStream | null, prefix: string): void {
    if (!stream) return;
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop() ?? '';
      for (const part of parts) this.lines.push(prefix + part);
      this.#notify();
    });
    stream.on('end', () => {
      if (rest !== '') this.lines.push(prefix + rest);
      rest = '';
      this.#notify();
    });
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  #failure(what: string): Error {
    const tail = this.lines.slice(-60).join('\n');
    return new Error(`${this.describe()} ${what}. Its output:\n${tail}`);
  }
}

function formatExit(exit: Exit): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
}

/**
 * One test's temporary folder (`root`, with the state folder `stateDir` in it) and the processes it starts,
 * all stopped and removed by {@link LocalTestScope.cleanup} whether the test passed or not. Tests that run
 * concurrently each have their own, so one's clean-up never touches another's processes.
 */
export class LocalTestScope {
  readonly root: string;
  readonly stateDir: string;
  readonly #processes: LocalProcess[] = [];
  readonly #strays: { pid: number; command: string }[] = [];

  private constructor(root: string) {
    this.root = root;
    this.stateDir = join(root, 'state');
  }

  /** Creates the folder; `onFinished` is the test's own `onTestFinished` (from its context when concurrent). */
  static async create(
    prefix: string,
    onFinished: (cleanup: () => Promise<void>) => void,
  ): Promise<LocalTestScope> {
    const scope = new LocalTestScope(await temporaryFolder(prefix));
    onFinished(() => scope.cleanup());
    return scope;
  }

  /** Starts `node local/cli/main.ts <args…>`. */
  cli(args: string[], options: LocalProcessOptions = {}): LocalProcess {
    return this.process([CLI, ...args], options);
  }

  /** Starts any program (`npx …`). */
  process(args: string[], options: LocalProcessOptions = {}): LocalProcess {
    const started = new LocalProcess(args, options);
    this.#processes.push(started);
    return started;
  }

  /**
   * A process the test learnt of (a build's child) to kill at clean-up should it still run, and still run
   * `command` (its pid may have been reused by then).
   */
  killAtCleanup(pid: number, command: string): void {
    this.#strays.push({ pid, command });
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.#processes.map((p) => p.killGroup()));
    for (const { pid, command } of this.#strays) {
      const running = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (running.split('\0').join(' ').trim() === command) process.kill(pid, 'SIGKILL');
    }
    await stopSampleAppInstances(deployDirOf(this.stateDir));
    await removeFolder(this.root);
  }
}

/** A fresh folder under the system's temporary folder, by its real path (builds see that one). */
export async function temporaryFolder(prefix: string): Promise<string> {
  return realpath(await mkdtemp(join(tmpdir(), prefix)));
}

export async function removeFolder(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

async function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A base for STEPLINE_DEPLOY_PORT_BASE whose four environment ports (base+1 … base+4) are free now. Chosen
 * at random below Linux's ephemeral range (32768+), so the runtime's own `--port 0` never lands on them.
 */
export async function freeDeployPortBase(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    const ports = [1, 2, 3, 4].map((offset) => base + offset);
    if ((await Promise.all(ports.map(canListen))).every(Boolean)) return base;
  }
  throw new Error('Found no four free ports in a row between 20000 and 32000');
}

/** True when something accepts connections on 127.0.0.1:`port`. */
export async function isPortOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs` naming `what`.
 * Only for what gives no event to wait on (another process's files, pids and ports).
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = DEFAULT_DEADLINE_MS,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Gave up after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Live processes whose environment names `stateDir`'s deploy folder as STEPLINE_DEPLOY_DIR: every build
 * shell and deployed service a runtime on that folder started (Linux /proc; elsewhere, the command lines
 * that name the folder).
 */
export async function processesOf(stateDir: string): Promise<{ pid: number; command: string }[]> {
  const entries = await readdir('/proc').catch(() => undefined);
  if (!entries) {
    const { stdout } = await execFileAsync('ps', ['-A', '-ww', '-o', 'pid=', '-o', 'command=']);
    return stdout
      .split('\n')
      .map((line) => /^\s*(\d+)\s+(.*)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null && m[2]?.includes(stateDir) === true)
      .map((m) => ({ pid: Number(m[1]), command: m[2] ?? '' }))
      .filter((p) => p.pid !== process.pid);
  }
  const wanted = `\0STEPLINE_DEPLOY_DIR=${deployDirOf(stateDir)}\0`;
  const found: { pid: number; command: string }[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
    if (!`\0${environ}\0`.includes(wanted)) continue;
    const pid = Number(entry);
    if (!(await isRunning(pid))) continue;
    const command = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    found.push({ pid, command: command.split('\0').join(' ').trim() });
  }
  return found;
}

/**
 * The headers the CLI sends to the stepline running on `stateDir`: its control token, read from the state
 * folder (`Authorization: Bearer …`).
 */
export function authorized(stateDir: string): Promise<Record<string, string>> {
  return controlHeaders(stateDir);
}

/** The folder of a runtime's state folder its builds share (`STEPLINE_DEPLOY_DIR`): images, environments. */
export { deployDirOf };

/**
 * GETs JSON: from a running stepline's API with the control token of `stateDir` (as the CLI sends it), or
 * from a deployed service without one.
 */
export async function getJson<T>(url: string, stateDir?: string): Promise<T> {
  const response = await fetch(url, stateDir === undefined ? {} : { headers: await authorized(stateDir) });
  if (!response.ok) throw new Error(`GET ${url} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

/** Runs git with a fixed author and no signing, whatever the machine's configuration; stderr then stdout. */
export async function git(args: string[], cwd?: string): Promise<string> {
  const { stdout, stderr } = await promisify(execFile)(
    'git',
    [
      '-c',
      'user.name=Grace Hopper',
      '-c',
      'user.email=grace@example.com',
      '-c',
      'commit.gpgSign=false',
      ...args,
    ],
    cwd === undefined ? {} : { cwd },
  );
  return `${stderr}${stdout}`;
}
