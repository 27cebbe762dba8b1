import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isNotFound } from '#local/state/atomic-file.ts';
import { PRIVATE_FILE_MODE } from '#local/state/permissions.ts';
import { ConflictError } from '#shared/errors.ts';

/** Another live process has the store's folder open. */
export class StoreInUseError extends ConflictError {
  override readonly name: string = 'StoreInUseError';
}

/** Folders open in this process, so that a stale lock holding this process's own pid is told apart. */
const openDirectories = new Set<string>();

/**
 * Takes `<dir>/lock` (the pid of the process that has the folder open). A lock left by a process that is
 * gone (killed or crashed) is taken over; one held by a live process throws {@link StoreInUseError}.
 */
export async function acquireLock(dir: string): Promise<void> {
  const path = join(dir, 'lock');
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx', mode: PRIVATE_FILE_MODE });
      openDirectories.add(dir);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && pid > 0 && isHeld(pid, dir)) {
      throw new StoreInUseError(
        `${dir} is in use by process ${pid}; if no stepline is running, delete ${path} and start again`,
      );
    }
    await unlink(path).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
  }
  throw new StoreInUseError(`${dir} is being opened by another process`);
}

/** Gives the folder up. */
export async function releaseLock(dir: string): Promise<void> {
  openDirectories.delete(dir);
  await unlink(join(dir, 'lock')).catch(() => undefined);
}

function isHeld(pid: number, dir: string): boolean {
  if (pid === process.pid) return openDirectories.has(dir);
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
