import { type ChildProcess, spawn } from 'node:child_process';

/**
 * Kills the process group `pgid` when this process dies, however it dies. A build's shell leads its own
 * group, so when the runtime is killed (SIGKILL, a crash, Ctrl-C on a command with no handler) nothing
 * else stops it or what it runs: a `sleep 60` would outlive stepline. The watchdog, in a group of its own
 * (a terminal's Ctrl-C does not reach it), waits on a pipe whose only writer is this process; the pipe
 * closes when this process exits, and the watchdog then kills the group. {@link ShellSession.kill} kills
 * the watchdog with the group. What a build starts outside its group on purpose (a deployed service, in a
 * session of its own) outlives the build, so this watchdog cannot own it: the runtime's reaper does
 * (deployed-services.ts).
 */
export function startWatchdog(pgid: number): ChildProcess | undefined {
  try {
    const watchdog = spawn(
      'sh',
      ['-c', 'read _ 2>/dev/null; kill -KILL -"$1" 2>/dev/null', 'stepline-watchdog', String(pgid)],
      // Only PATH: the runtime's environment holds stepline's secrets, which builds never get either.
      {
        detached: true,
        stdio: ['pipe', 'ignore', 'ignore'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      },
    );
    watchdog.on('error', () => {
      // No sh to run it: the group is still killed when the build ends normally.
    });
    watchdog.stdin?.on('error', () => undefined);
    // It must not keep the runtime alive by itself.
    watchdog.unref();
    (watchdog.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null)?.unref?.();
    return watchdog;
  } catch {
    return undefined;
  }
}
