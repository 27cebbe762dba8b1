import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessOwnership } from '#local/codebuild/deployed-services.ts';
import { findOwnedProcesses, OWNER_VARIABLE } from '#local/codebuild/owned-processes.ts';
import { LocalProcess, PROJECT_DIR, pollUntil } from '../helpers/local-process.ts';
import { isRunning } from '../helpers/sample-app.ts';

const strays: number[] = [];

afterEach(() => {
  for (const pid of strays.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone, as it should be.
    }
  }
});

/** Starts `sleep 60` as a deploy starts a service: detached (its own session), carrying `env`. */
function detachedSleep(env: Record<string, string>): number {
  const child = spawn('sleep', ['60'], { detached: true, stdio: 'ignore', env: { ...process.env, ...env } });
  child.unref();
  if (child.pid === undefined) throw new Error('sleep did not start');
  strays.push(child.pid);
  return child.pid;
}

describe('ProcessOwnership', () => {
  it('ends, on stop, what a build started in a session of its own, after the build has ended', async () => {
    const owner = new ProcessOwnership();
    let service = 0;
    const { promise: started, resolve: onStarted } = Promise.withResolvers<void>();
    const build = owner.run(undefined, async (signal) => {
      service = detachedSleep(owner.environment);
      onStarted();
      // The build runs until it is stopped.
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      return 'stopped';
    });
    await started;
    expect(await findOwnedProcesses(owner.ownerId)).toEqual([service]);

    const ended = await owner.stop();

    expect(await build).toBe('stopped');
    expect(ended).toEqual([service]);
    expect(await isRunning(service)).toBe(false);
  });

  it('leaves alone processes that do not carry its owner id', async () => {
    const owner = new ProcessOwnership();
    const other = detachedSleep({ [OWNER_VARIABLE]: 'another-runtime' });
    await owner.run(undefined, async () => undefined);

    expect(await owner.stop()).toEqual([]);
    expect(await isRunning(other)).toBe(true);
  });

  it('has a stop wait for the clean-up a build left running', async () => {
    const owner = new ProcessOwnership();
    const { promise: removed, resolve: remove } = Promise.withResolvers<void>();
    const events: string[] = [];
    await owner.run(undefined, async () => {
      owner.cleanUpAfter(async () => {
        await removed;
        events.push('cleaned up');
      });
    });
    expect(events).toEqual([]);

    const stopped = owner.stop().then(() => events.push('stopped'));
    // A stop that did not wait would be done after its one scan for owned processes: scan twice.
    await findOwnedProcesses(owner.ownerId);
    await findOwnedProcesses(owner.ownerId);
    remove();
    await stopped;

    expect(events).toEqual(['cleaned up', 'stopped']);
  });

  it('has its reaper end what the builds started when the runtime is killed (SIGKILL)', async () => {
    // A runtime of its own: it starts a "service" through an owned build, prints its pid and waits.
    const script = join(PROJECT_DIR, 'test', 'fixtures', 'owning-runtime.ts');
    const runtime = new LocalProcess([script]);
    const { match } = await runtime.waitForLine(/^service (\d+)$/);
    const service = Number(match[1]);
    strays.push(service);
    expect(await isRunning(service)).toBe(true);

    expect(await runtime.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });

    await pollUntil(
      `the reaper to end service ${service}`,
      async () => ((await isRunning(service)) ? undefined : true),
      10_000,
    );
  });
});

describe('the watchdog of build process groups', () => {
  it('kills the groups still watched when the runtime is killed (SIGKILL), not the released ones', async () => {
    const script = join(PROJECT_DIR, 'test', 'fixtures', 'watching-runtime.ts');
    const runtime = new LocalProcess([script]);
    const released = Number((await runtime.waitForLine(/^released (\d+)$/)).match[1]);
    const watched = Number((await runtime.waitForLine(/^watched (\d+)$/)).match[1]);
    strays.push(released, watched);
    expect(await isRunning(watched)).toBe(true);

    expect(await runtime.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });

    await pollUntil(
      `the watchdog to kill group ${watched}`,
      async () => ((await isRunning(watched)) ? undefined : true),
      10_000,
    );
    expect(await isRunning(released)).toBe(true);
  });
});
