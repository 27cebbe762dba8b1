import { createHash } from 'node:crypto';
import { closeSync, fdatasync, fsyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { syncDirectory } from '#local/state/atomic-file.ts';
import type { StoreContext } from '#local/state/context.ts';
import { PRIVATE_FILE_MODE } from '#local/state/permissions.ts';
import { InvalidInputError } from '#shared/errors.ts';

/** Build log files kept open at once; the least recently written is closed beyond that. */
const OPEN_LOGS_MAX = 64;
const LOG_SYNC_INTERVAL_MS = 1000;

interface BuildLog {
  fd: number;
  dirty: boolean;
}

/**
 * `builds/<build id>.log`: each build's log, appended as lines arrive. The text goes to the operating
 * system at once (a crash of the process loses nothing); it is fsynced every second and on close.
 */
export class BuildLogs {
  readonly #context: StoreContext;
  readonly #folder: string;
  readonly #logs = new Map<string, BuildLog>();
  #created = false;
  readonly #timer: NodeJS.Timeout;

  constructor(context: StoreContext) {
    this.#context = context;
    this.#folder = join(context.dir, 'builds');
    this.#timer = setInterval(() => this.#sync(), LOG_SYNC_INTERVAL_MS);
    this.#timer.unref();
  }

  /** The file a build's log is written to: `<dir>/builds/<safe id>.log`. */
  path(buildId: string): string {
    if (buildId === '') throw new InvalidInputError('A build id is required');
    return join(this.#folder, `${safeFileName(buildId)}.log`);
  }

  /** Appends to a build's log file. Nothing is kept in memory. */
  append(buildId: string, text: string): void {
    let log = this.#logs.get(buildId);
    if (log) {
      // Most recently written last, so the first is the one to close when too many are open.
      this.#logs.delete(buildId);
    } else {
      if (this.#logs.size >= OPEN_LOGS_MAX) this.#closeOldest();
      log = { fd: openSync(this.path(buildId), 'a', PRIVATE_FILE_MODE), dirty: false };
      this.#created = true;
    }
    this.#logs.set(buildId, log);
    const bytes = Buffer.from(text, 'utf8');
    for (let offset = 0; offset < bytes.length; ) offset += writeSync(log.fd, bytes, offset);
    log.dirty = true;
    this.#context.emit({ kind: 'log', id: buildId });
  }

  /** Syncs and closes every open log. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    for (const log of this.#logs.values()) closeLog(log);
    this.#logs.clear();
    if (this.#created) await syncDirectory(this.#folder);
  }

  #closeOldest(): void {
    const [oldest] = this.#logs;
    if (!oldest) return;
    this.#logs.delete(oldest[0]);
    closeLog(oldest[1]);
  }

  #sync(): void {
    for (const log of this.#logs.values()) {
      if (!log.dirty) continue;
      log.dirty = false;
      // A log closed meanwhile was fsynced by closeLog; the error of a closed descriptor is moot.
      fdatasync(log.fd, () => undefined);
    }
    if (this.#created) {
      this.#created = false;
      syncDirectory(this.#folder).catch(() => undefined);
    }
  }
}

function closeLog(log: BuildLog): void {
  try {
    fsyncSync(log.fd);
  } finally {
    closeSync(log.fd);
  }
}

/** A build id as a file name: unchanged when already safe, else made safe and told apart by a hash. */
function safeFileName(id: string): string {
  const safe = id
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^\.+/, '_')
    .slice(0, 120);
  return safe === id ? safe : `${safe}-${createHash('sha256').update(id).digest('hex').slice(0, 8)}`;
}
