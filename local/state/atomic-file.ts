import { open, readdir, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PRIVATE_FILE_MODE } from './permissions.ts';

/**
 * The local mode's one way to replace a file whole (state records, outbox messages, the wiring cache, the
 * git hook's files): a reader, or a crash, sees the old content or the new, never a mix.
 *
 * Why by hand rather than write-file-atomic (already installed, ISC, small): it fsyncs the temporary file
 * but not the directory after the rename, so a power loss can forget the rename itself; the directory
 * fsync is the one step the local state needs from it, and the rest is a dozen lines of node:fs/promises.
 */

let temporaryCounter = 0;

/** The suffix of the temporary files {@link writeFileAtomic} writes; leftovers from a crash match it. */
export const TEMPORARY_SUFFIX = '.tmp';

export interface AtomicWriteOptions {
  /**
   * The file's permission bits, set on the temporary file before the rename: 0600 unless told (the state
   * folder is the operator's alone; the git hook asks for its execute bit).
   */
  mode?: number;
}

/**
 * Replaces a file's content atomically and durably: writes a temporary file beside it, fsyncs it, renames
 * it over the file, fsyncs the folder.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  temporaryCounter += 1;
  const temporary = `${path}.${process.pid}-${temporaryCounter}${TEMPORARY_SUFFIX}`;
  try {
    const mode = options.mode ?? PRIVATE_FILE_MODE;
    const handle = await open(temporary, 'w', mode);
    try {
      // The mode given to open() is narrowed by the umask; the caller asked for exactly this one.
      await handle.chmod(mode);
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** Makes a folder's entries (files created, renamed or removed in it) durable. */
export async function syncDirectory(path: string): Promise<void> {
  // Windows cannot open a folder for fsync; its file system journals metadata itself.
  if (process.platform === 'win32') return;
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Removes the temporary files a crash in the middle of {@link writeFileAtomic} left in a folder. */
export async function removeTemporaryFiles(folder: string, entries?: string[]): Promise<void> {
  for (const entry of entries ?? (await readdir(folder))) {
    if (entry.endsWith(TEMPORARY_SUFFIX)) await unlink(join(folder, entry)).catch(() => undefined);
  }
}

export function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}
