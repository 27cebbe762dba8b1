import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readWiring, type Wiring } from '#local/wiring.ts';
import type { Probe, ProbeOf } from './local-runtime.ts';

/**
 * The bench's side of the local runtime's process (bench/local-runtime.ts): starting it over a fresh
 * state folder, hearing its probes, stopping it; and git for the working clone the bench pushes from.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/trivial-app/', import.meta.url));
const RUNTIME_SCRIPT = fileURLToPath(new URL('./local-runtime.ts', import.meta.url));

/**
 * Every push starts a run; two environments, no approval, so a run goes to its end unattended; no Test stage,
 * so that the figures stay those of the image build and the environments, comparable from run to run.
 */
const PARAMS = [
  `triggers=${JSON.stringify({ push: [{ branches: { includes: ['**'] } }] })}`,
  `settings=${JSON.stringify({ environments: [{ name: 'dev' }, { name: 'prod' }], test: false })}`,
];

/** The environment before other sections ran (the webhook section sets dummy AWS variables in-process). */
const HOST_ENV = { ...process.env };

const exec = promisify(execFile);
const GIT_IDENTITY = [
  '-c',
  'user.name=stepline bench',
  '-c',
  'user.email=bench@localhost',
  '-c',
  'commit.gpgSign=false',
  '-c',
  'core.hooksPath=/dev/null',
];

function gitEnvironment(): NodeJS.ProcessEnv {
  const env = { ...HOST_ENV };
  for (const name of Object.keys(env)) if (name.startsWith('GIT_')) delete env[name];
  return env;
}

export async function git(cwd: string, args: string[]): Promise<string> {
  const { stdout } = await exec('git', [...GIT_IDENTITY, ...args], { cwd, env: gitEnvironment() });
  return stdout.trim();
}

/** A working clone holding the fixture app in one commit, with the local remote as origin. */
export async function workingClone(dir: string, remotePath: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await git(dir, ['init', '--quiet']);
  await cp(FIXTURE, dir, { recursive: true });
  await git(dir, ['add', '--all', '.']);
  await git(dir, ['commit', '--quiet', '-m', 'trivial-app']);
  await git(dir, ['remote', 'add', 'origin', remotePath]);
}

let wiringOnce: Promise<{ wiring: Wiring; printMs: number }> | undefined;

/** serverless.yml's wiring with the bench's parameters, read once (`serverless print` takes seconds). */
export function benchWiring(): Promise<{ wiring: Wiring; printMs: number }> {
  wiringOnce ??= (async () => {
    const before = performance.now();
    const wiring = await readWiring(ROOT, { params: PARAMS });
    return { wiring, printMs: performance.now() - before };
  })();
  return wiringOnce;
}

/** The runtime's process, seen from the bench: its probes as they come, and a way to wait for one. */
export class RuntimeChild {
  readonly probes: Probe[] = [];
  readonly child: ChildProcess;
  readonly dir: string;
  #output = '';
  #waiters = new Set<() => void>();
  #exited: { code: number | null } | undefined;

  private constructor(child: ChildProcess, dir: string) {
    this.child = child;
    this.dir = dir;
    child.on('message', (probe: Probe) => {
      this.probes.push(probe);
      for (const wake of this.#waiters) wake();
    });
    const keep = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString('utf8')).slice(-8000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('exit', (code) => {
      this.#exited = { code };
      for (const wake of this.#waiters) wake();
    });
  }

  /** Starts the runtime in a new process over a fresh state folder under `dir`. */
  static async start(dir: string): Promise<{ runtime: RuntimeChild; spawnToReadyMs: number }> {
    const { wiring } = await benchWiring();
    const wiringFile = join(dir, 'wiring.json');
    await writeFile(wiringFile, JSON.stringify(wiring));
    const before = Date.now();
    const child = spawn(process.execPath, [RUNTIME_SCRIPT, '--runtime', join(dir, 'state'), wiringFile], {
      cwd: ROOT,
      env: HOST_ENV,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const runtime = new RuntimeChild(child, dir);
    await runtime.next('ready', () => true, 30_000);
    return { runtime, spawnToReadyMs: Date.now() - before };
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  ready(): ProbeOf<'ready'> {
    return this.all('ready')[0] as ProbeOf<'ready'>;
  }

  all<T extends Probe['type']>(type: T, where: (probe: ProbeOf<T>) => boolean = () => true): ProbeOf<T>[] {
    return this.probes.filter(
      (probe): probe is ProbeOf<T> => probe.type === type && where(probe as ProbeOf<T>),
    );
  }

  /** Waits for the first probe of `type` that satisfies `where`. */
  async next<T extends Probe['type']>(
    type: T,
    where: (probe: ProbeOf<T>) => boolean,
    timeoutMs: number,
  ): Promise<ProbeOf<T>> {
    return this.until(() => this.all(type, where)[0], timeoutMs, `a ${type} probe`);
  }

  async until<R>(found: () => R | undefined, timeoutMs: number, what: string): Promise<R> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = found();
      if (result !== undefined) return result;
      if (this.#exited)
        throw new Error(
          `The runtime's process exited (${this.#exited.code}) before ${what}:\n${this.#output}`,
        );
      if (Date.now() > deadline) throw new Error(`No ${what} within ${timeoutMs} ms:\n${this.#output}`);
      const { promise, resolve } = Promise.withResolvers<void>();
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()) + 1);
      this.#waiters.add(resolve);
      await promise;
      clearTimeout(timer);
      this.#waiters.delete(resolve);
    }
  }

  /** Stops the runtime (runs, store, server) and returns its last report. */
  async stop(): Promise<ProbeOf<'report'>> {
    this.child.send({ type: 'stop' });
    const report = await this.next('report', () => true, 30_000);
    await this.until(() => this.#exited, 10_000, 'its exit');
    return report;
  }

  kill(): void {
    if (!this.#exited) this.child.kill('SIGKILL');
  }
}

/** Runs `work` with a fresh runtime process in a temporary folder, removed afterwards. */
export async function withRuntime<T>(
  work: (runtime: RuntimeChild, dir: string, spawnToReadyMs: number) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'stepline-bench-'));
  let runtime: RuntimeChild | undefined;
  try {
    const started = await RuntimeChild.start(dir);
    runtime = started.runtime;
    return await work(runtime, dir, started.spawnToReadyMs);
  } finally {
    runtime?.kill();
    await rm(dir, { recursive: true, force: true });
  }
}
