import { readFileSync } from 'node:fs';
import { appendFile, open, readFile, truncate } from 'node:fs/promises';
import { isNotFound } from '#local/state/atomic-file.ts';
import { PRIVATE_FILE_MODE } from '#local/state/permissions.ts';

/**
 * The append-only files of the local mode's state: JSON Lines journals with group commit, and torn-tail
 * repair when a journal is read back. Whole files are replaced with `atomic-file.ts`.
 */

/** One entry waiting for its journal's next flush. */
export interface JournalEntry {
  /** Renders the entry's line(s), each ending in '\n'. Called at flush time, in append order. */
  render(): string;
  /** Called synchronously, in append order, once the entry's bytes are on disk. */
  committed?(): void;
  /** Called synchronously, in reverse append order, when the flush carrying the entry failed. */
  failed?(): void;
}

interface Pending {
  entry: JournalEntry;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * An append-only JSON Lines file. Appends are serialized: entries queued while a flush is in flight are
 * written together by the next flush with one write and one fdatasync (group commit), so no two appends
 * interleave and each resolves only once its bytes are durable. A failed flush cuts the file back to its
 * length before the flush, so no half line is left for the next append to land after.
 */
export class Journal {
  readonly path: string;
  #pending: Pending[] = [];
  #draining: Promise<void> | undefined;

  constructor(path: string) {
    this.path = path;
  }

  /** Queues an entry; resolves when it is durable, rejects when its flush failed. */
  append(entry: JournalEntry): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#pending.push({ entry, resolve, reject });
    this.#draining ??= this.#drain();
    return promise;
  }

  async #drain(): Promise<void> {
    // Let the appends of the current tick join the first flush.
    await null;
    for (;;) {
      // Checked and cleared in one step, so an append made while this returns starts a new drain.
      if (this.#pending.length === 0) {
        this.#draining = undefined;
        return;
      }
      await this.#flush(this.#pending.splice(0));
    }
  }

  async #flush(batch: Pending[]): Promise<void> {
    const rendered: Pending[] = [];
    try {
      let text = '';
      for (const pending of batch) {
        text += pending.entry.render();
        rendered.push(pending);
      }
      await appendDurably(this.path, text);
    } catch (error) {
      for (const pending of rendered.toReversed()) pending.entry.failed?.();
      for (const pending of batch) pending.reject(error);
      return;
    }
    for (const pending of batch) pending.entry.committed?.();
    for (const pending of batch) pending.resolve();
  }
}

async function appendDurably(path: string, text: string): Promise<void> {
  const handle = await open(path, 'a', PRIVATE_FILE_MODE);
  try {
    const { size } = await handle.stat();
    try {
      await handle.writeFile(text, 'utf8');
      await handle.datasync();
    } catch (error) {
      await handle.truncate(size).catch(() => undefined);
      throw error;
    }
  } finally {
    await handle.close();
  }
}

/** What reading a journal back found. */
export interface JournalContents {
  /** The parsed lines, in file order. */
  records: unknown[];
  /** Complete lines that are not a JSON object (corruption inside the file): skipped, left in place. */
  skipped: { line: number; text: string }[];
  /** An unterminated, unparseable last line (a write cut short): cut from the file, kept in `<path>.torn`. */
  torn?: string;
  /** True when the file was changed: a torn tail cut, or a newline added after a whole last record. */
  repaired: boolean;
}

/**
 * Reads a JSON Lines journal written by {@link Journal}, tolerating what a crash leaves behind. A last
 * line without its newline is a write the process did not finish: when it parses it is kept and the
 * newline added; otherwise it is cut off (its bytes appended to `<path>.torn` for a person to see) so the
 * next append starts on a fresh line. Other lines that do not parse are skipped and reported. A missing
 * file reads as empty.
 */
export async function readJournal(path: string): Promise<JournalContents> {
  let content: Buffer;
  try {
    content = await readFile(path);
  } catch (error) {
    if (isNotFound(error)) return { records: [], skipped: [], repaired: false };
    throw error;
  }
  const { records, skipped, tail } = parseJournal(content);
  const contents: JournalContents = { records, skipped, repaired: tail !== undefined };
  if (tail?.record !== undefined) {
    records.push(tail.record);
    await appendDurably(path, '\n');
  } else if (tail) {
    await appendFile(`${path}.torn`, `${tail.text}\n`, { mode: PRIVATE_FILE_MODE });
    await cutDurably(path, tail.start);
    contents.torn = tail.text;
  }
  return contents;
}

/**
 * Reads a journal without changing it, for a look at a run that may not be written again (a finished
 * run's history, read on demand). A last line without its newline is kept when it parses and counted as
 * skipped otherwise; {@link readJournal} is the reader that repairs, before a journal is appended to.
 * `length`: read only the first bytes.
 */
export function readJournalSync(path: string, length?: number): Omit<JournalContents, 'repaired'> {
  let content: Buffer;
  try {
    content = readFileSync(path);
    // A prefix known to be whole (the size at open): what was appended since is held in memory.
    if (length !== undefined) content = content.subarray(0, length);
  } catch (error) {
    if (isNotFound(error)) return { records: [], skipped: [] };
    throw error;
  }
  const { records, skipped, tail } = parseJournal(content);
  const contents: Omit<JournalContents, 'repaired'> = { records, skipped };
  if (tail?.record !== undefined) records.push(tail.record);
  else if (tail) contents.torn = tail.text;
  return contents;
}

/**
 * A journal's lines: the records, the complete lines that do not parse, and a last line without its
 * newline (a write cut short, or a whole record whose newline was not written yet) with where it starts.
 */
function parseJournal(content: Buffer): {
  records: unknown[];
  skipped: { line: number; text: string }[];
  tail?: { text: string; start: number; record?: object };
} {
  const records: unknown[] = [];
  const skipped: { line: number; text: string }[] = [];
  let start = 0;
  let line = 0;
  while (start < content.length) {
    const end = content.indexOf(0x0a, start);
    line += 1;
    const text = content.toString('utf8', start, end === -1 ? content.length : end);
    const record = parseObject(text);
    if (end === -1) {
      return { records, skipped, tail: record === undefined ? { text, start } : { text, start, record } };
    }
    if (record !== undefined) records.push(record);
    else if (text.trim() !== '') skipped.push({ line, text });
    start = end + 1;
  }
  return { records, skipped };
}

function parseObject(text: string): object | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

async function cutDurably(path: string, length: number): Promise<void> {
  await truncate(path, length);
  const handle = await open(path, 'r+');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/**
 * Runs tasks one after another per key (a file path): a promise chain per key, dropped when it drains.
 * Whole-file writes of one file go through it so the last write asked for is the last one done.
 */
export class KeyedSerializer {
  #chains = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#chains.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const chain = result.catch(() => undefined);
    this.#chains.set(key, chain);
    void chain.then(() => {
      if (this.#chains.get(key) === chain) this.#chains.delete(key);
    });
    return result;
  }
}
