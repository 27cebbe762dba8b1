import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { removeTemporaryFiles, TEMPORARY_SUFFIX, writeFileAtomic } from '#local/state/atomic-file.ts';
import type { StoreContext } from '#local/state/context.ts';
import { renderEmail } from '#local/state/email.ts';
import { parseJson } from '#local/state/records.ts';
import { InvalidInputError } from '#shared/errors.ts';

/** A message published to a local topic (the stand-in for SNS). */
export interface OutboxMessage {
  id: string;
  topic: string;
  subject: string;
  body: string;
  createdAt: string;
  executionArn?: string;
}

const OutboxMessageSchema = z.object({
  id: z.string().min(1),
  topic: z.string().min(1),
  subject: z.string(),
  body: z.string(),
  createdAt: z.string(),
  executionArn: z.string().optional(),
});

/**
 * `outbox/<createdAt>-<id>.json` (+ `.eml` for email topics): each published message. Opening lists the
 * folder and reads only its latest message (for the clock); the messages stored before are read when
 * first asked for, so opening does not grow with the messages kept.
 */
export class Outbox {
  readonly #context: StoreContext;
  readonly #folder: string;
  #lastTime = 0;
  /** The files stored before this open, in name (= time) order. */
  #storedFiles: string[] = [];
  /** Every message, once the stored ones were read. */
  #all: OutboxMessage[] | undefined;
  /** The messages published since this open, in order. */
  readonly #recent: OutboxMessage[] = [];

  constructor(context: StoreContext) {
    this.#context = context;
    this.#folder = join(context.dir, 'outbox');
  }

  async load(): Promise<void> {
    const entries = await readdir(this.#folder);
    await removeTemporaryFiles(this.#folder, entries);
    this.#storedFiles = entries
      .filter((entry) => entry.endsWith('.json') && !entry.endsWith(TEMPORARY_SUFFIX))
      .sort();
    const latest = this.#storedFiles.at(-1);
    const message = latest === undefined ? undefined : this.#read(latest);
    if (message) this.#lastTime = Date.parse(message.createdAt) || 0;
  }

  /**
   * Publishes a message: `outbox/<createdAt>-<id>.json`, and with `email` also an RFC 5322 `.eml` beside
   * it (written first, so a listed message always has its email).
   */
  async add(
    message: Omit<OutboxMessage, 'id' | 'createdAt'>,
    options: { email?: boolean } = {},
  ): Promise<OutboxMessage> {
    const time = Math.max(this.#context.clock().getTime(), this.#lastTime + 1);
    this.#lastTime = time;
    const parsed = OutboxMessageSchema.safeParse({
      ...message,
      id: randomUUID(),
      createdAt: new Date(time).toISOString(),
    });
    if (!parsed.success) throw new InvalidInputError(`Not a message: ${z.prettifyError(parsed.error)}`);
    const stored = parsed.data;
    const base = join(this.#folder, `${stored.createdAt.replaceAll(':', '-')}-${stored.id}`);
    if (options.email) await writeFileAtomic(`${base}.eml`, renderEmail(stored));
    await writeFileAtomic(`${base}.json`, `${JSON.stringify(stored, null, 2)}\n`);
    this.#recent.push(stored);
    this.#all?.push(stored);
    this.#context.emit({ kind: 'outbox', id: stored.id });
    return { ...stored };
  }

  /** The published messages, newest first. */
  list(): OutboxMessage[] {
    if (!this.#all) {
      const stored = this.#storedFiles.flatMap((file) => {
        const message = this.#read(file);
        return message ? [message] : [];
      });
      this.#all = [...stored, ...this.#recent];
      this.#all.sort((a, b) => compare(a.createdAt, b.createdAt) || compare(a.id, b.id));
    }
    return this.#all.toReversed().map((message) => ({ ...message }));
  }

  #read(file: string): OutboxMessage | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.#folder, file), 'utf8');
    } catch {
      return undefined;
    }
    const parsed = OutboxMessageSchema.safeParse(parseJson(text));
    if (parsed.success) return parsed.data;
    this.#context.note(`outbox/${file} is not a message and was skipped`);
    return undefined;
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
