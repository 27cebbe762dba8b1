import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

/**
 * Every process a local build starts carries this variable, set to its runtime's owner id: the build's
 * shell, what the shell runs, and what those start, however they detach (`setsid`, `nohup`, a double
 * fork). A deployed service leaves its build's process group and session on purpose, so neither the group
 * nor a pid file can find it reliably; its environment still names its owner. Only a process that clears
 * its own environment (`env -i`) escapes, and the deploy's `service.pid` remains for that case.
 */
export const OWNER_VARIABLE = 'STEPLINE_RUNTIME_ID';

const execFileAsync = promisify(execFile);

/**
 * The live processes whose environment holds `STEPLINE_RUNTIME_ID=<ownerId>`. On Linux from
 * `/proc/<pid>/environ` (a zombie's reads empty, so it does not count); elsewhere from `ps -E`, which
 * prints each process's environment after its command (macOS and the BSDs).
 */
export async function findOwnedProcesses(ownerId: string): Promise<number[]> {
  const marker = `${OWNER_VARIABLE}=${ownerId}`;
  const entries = await readdir('/proc').catch(() => undefined);
  if (entries === undefined) return findOwnedWithPs(marker);
  const owned: number[] = [];
  await Promise.all(
    entries.map(async (entry) => {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) return;
      const environ = await readFile(`/proc/${entry}/environ`, 'latin1').catch(() => '');
      if (`\0${environ}`.includes(`\0${marker}\0`)) owned.push(Number(entry));
    }),
  );
  return owned;
}

async function findOwnedWithPs(marker: string): Promise<number[]> {
  try {
    const { stdout } = await execFileAsync('ps', ['-A', '-ww', '-E', '-o', 'pid=', '-o', 'command='], {
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout
      .split('\n')
      .filter((line) => line.split(/\s+/).includes(marker))
      .map((line) => Number.parseInt(line, 10))
      .filter((pid) => Number.isInteger(pid) && pid > 0 && pid !== process.pid);
  } catch {
    return [];
  }
}

const ROUND_MS = 25;
const MAX_KILL_ROUNDS = 40;

/**
 * Ends every process `ownerId` owns and returns their pids: SIGTERM first, so a service can close its
 * port, then SIGKILL for what is still alive after `graceMs` (0: SIGKILL at once). It scans again after
 * each round until a scan finds none, so a process started by one that was being ended is found too; once
 * a scan is empty, no owned process is left to start another.
 */
export async function endOwnedProcesses(ownerId: string, graceMs: number): Promise<number[]> {
  const ended = new Set<number>();
  const deadline = Date.now() + graceMs;
  let killRounds = 0;
  for (;;) {
    const pids = await findOwnedProcesses(ownerId);
    if (pids.length === 0 || killRounds >= MAX_KILL_ROUNDS) return [...ended];
    const signal = Date.now() < deadline ? 'SIGTERM' : 'SIGKILL';
    if (signal === 'SIGKILL') killRounds += 1;
    for (const pid of pids) {
      try {
        process.kill(pid, signal);
        ended.add(pid);
      } catch {
        // Gone between the scan and the signal.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, ROUND_MS));
  }
}
