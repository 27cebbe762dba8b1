import { chmod, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The state folder is the operator's alone: it holds the control token, the webhook secret, the approval
 * key and approval links. stepline makes it and its folders 0700 and its files 0600; these are the modes.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** The folders under the state folder whose files stepline writes (and tightens at start). */
const PRIVATE_FOLDERS = ['executions', 'outbox', 'builds'];

/**
 * Tightens a state folder an older version made with the umask's modes (0755 folders, 0644 files): the
 * folder itself, what lies directly in it, and the records, outbox and logs folders' entries. Files a
 * build or the git hook must execute keep their execute bit for the owner only. Children of the work,
 * git and environment folders are left alone: the folder above them is 0700 already.
 */
export async function tightenStateFolder(stateDir: string): Promise<void> {
  await chmod(stateDir, PRIVATE_DIR_MODE);
  await tightenEntries(stateDir);
  for (const folder of PRIVATE_FOLDERS) {
    await tightenEntries(join(stateDir, folder)).catch(() => undefined);
  }
  const executions = await readdir(join(stateDir, 'executions')).catch(() => []);
  for (const execution of executions) {
    await tightenEntries(join(stateDir, 'executions', execution)).catch(() => undefined);
  }
}

async function tightenEntries(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await chmod(path, PRIVATE_DIR_MODE).catch(() => undefined);
    else if (entry.isFile()) await chmod(path, PRIVATE_FILE_MODE).catch(() => undefined);
  }
}
