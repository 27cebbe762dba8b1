import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { forTerminal } from '#shared/text.ts';
import { endOwnedProcesses, OWNER_VARIABLE } from './owned-processes.ts';

/** How long a stop waits for aborted builds to end (their shells are killed at once; this bounds the rest). */
const BUILDS_END_WITHIN_MS = 10_000;
/** How long a deployed service has to close its port on SIGTERM before it is killed. */
const SERVICES_END_WITHIN_MS = 3_000;

const REAPER = fileURLToPath(new URL('./process-reaper.ts', import.meta.url));

/**
 * What a runtime's builds start, owned by the runtime from the moment it starts: the builds in flight,
 * and every process they start, deployed services included (they carry {@link OWNER_VARIABLE}). Before the
 * first build, a reaper process is started that ends them all should the runtime die without stopping.
 */
export class ProcessOwnership {
  readonly ownerId = randomUUID();
  readonly #builds = new Set<Promise<unknown>>();
  readonly #stopping = new AbortController();
  #reaper: ChildProcess | undefined;

  /** The variables every build gets, so that what it starts is known as this runtime's. */
  get environment(): Record<string, string> {
    return { [OWNER_VARIABLE]: this.ownerId };
  }

  /**
   * Runs one build as owned: it is aborted when `signal` aborts or the owner stops, and the owner's stop
   * waits for it to end before it looks for what the build left running.
   */
  async run<T>(signal: AbortSignal | undefined, build: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.#startReaper();
    const combined = signal ? AbortSignal.any([signal, this.#stopping.signal]) : this.#stopping.signal;
    const running = build(combined);
    this.#builds.add(running);
    try {
      return await running;
    } finally {
      this.#builds.delete(running);
    }
  }

  /**
   * Runs `cleanUp` (a build's checkout removed) after its build has answered, so that the next stage
   * need not wait for it; the owner's stop waits for it as for a build.
   */
  cleanUpAfter(cleanUp: () => Promise<unknown>): void {
    const running = cleanUp().catch((error: Error) => {
      process.stderr.write(forTerminal(`stepline: could not clean up after a build: ${error.message}\n`));
    });
    this.#builds.add(running);
    void running.finally(() => this.#builds.delete(running));
  }

  /**
   * Stops every build in flight, waits for them to end, then ends every process they started (SIGTERM,
   * then SIGKILL) and the reaper. Returns the pids it ended.
   */
  async stop(): Promise<number[]> {
    this.#stopping.abort(new Error('stepline is stopping'));
    // A build that ends adds its clean-up: wait until none is left, or the time is up.
    const deadline = Date.now() + BUILDS_END_WITHIN_MS;
    while (this.#builds.size > 0 && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.#builds]),
        new Promise((done) => {
          timer = setTimeout(done, deadline - Date.now());
        }),
      ]);
      clearTimeout(timer);
    }
    const ended = await endOwnedProcesses(this.ownerId, SERVICES_END_WITHIN_MS);
    this.#reaper?.kill('SIGKILL');
    this.#reaper = undefined;
    return ended;
  }

  #startReaper(): void {
    if (this.#reaper !== undefined) return;
    try {
      // Its own group and session: a terminal's Ctrl-C or hang-up does not reach it. Only PATH: the
      // runtime's environment holds stepline's secrets, and the reaper must not carry the owner variable.
      const reaper = spawn(process.execPath, [REAPER, this.ownerId], {
        detached: true,
        stdio: ['pipe', 'ignore', 'ignore'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      });
      reaper.on('error', () => {
        // Could not start: a clean stop still ends everything; a crash leaves the services' pid files.
      });
      reaper.stdin?.on('error', () => undefined);
      // It must not keep the runtime alive by itself.
      reaper.unref();
      (reaper.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null)?.unref?.();
      this.#reaper = reaper;
    } catch {
      this.#reaper = undefined;
    }
  }
}

/**
 * The folder of `stateDir` that builds share across stages and may write in a sandbox: the sample app's
 * images and `environments/<env>/` (with each deployed service's `service.pid`). Builds get it as
 * `STEPLINE_DEPLOY_DIR`; they never get the state folder itself.
 */
export function deployDirOf(stateDir: string): string {
  return join(resolve(stateDir), 'deploy');
}

/** The owners of the builds run on each state folder, so that a stop on that folder reaches them. */
const owners = new Map<string, Set<ProcessOwnership>>();

/** Makes `owner` one that {@link stopDeployedServices} on `stateDir` stops. */
export function registerOwnership(stateDir: string, owner: ProcessOwnership): void {
  const key = resolve(stateDir);
  const set = owners.get(key) ?? new Set();
  set.add(owner);
  owners.set(key, set);
}

/**
 * Stops every build running on `stateDir` and every process the builds started, deployed services
 * included, and waits for them to end; then the services recorded in
 * `$STEPLINE_DEPLOY_DIR/environments/<env>/service.pid` (a deploy of an earlier start, or one that cleared
 * its environment). Returns the pids it ended.
 */
export async function stopDeployedServices(stateDir: string): Promise<number[]> {
  const key = resolve(stateDir);
  const stopped: number[] = [];
  for (const owner of owners.get(key) ?? []) stopped.push(...(await owner.stop()));
  owners.delete(key);
  const environmentsDir = join(deployDirOf(stateDir), 'environments');
  let environments: string[] = [];
  try {
    environments = await readdir(environmentsDir);
  } catch {
    return stopped;
  }
  for (const environment of environments) {
    const pidFile = join(environmentsDir, environment, 'service.pid');
    const pid = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGTERM');
        stopped.push(pid);
        break;
      } catch {
        // Not a group leader, or already gone.
      }
    }
    await rm(pidFile, { force: true });
  }
  return stopped;
}
