import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TEMPORARY_SUFFIX, writeFileAtomic } from '#local/state/atomic-file.ts';
import type { StoreContext } from '#local/state/context.ts';
import { type EmailMessage, renderEmail } from '#local/state/email.ts';
import { parseJson } from '#local/state/records.ts';
import { InvalidInputError } from '#shared/errors.ts';
import * as z from '#shared/zod.ts';

/** A message published to a local topic (the stand-in for SNS). */
export type OutboxMessage = EmailMessage;

const OutboxMessageSchema = z.object({
  id: z.string().check(z.minLength(1)),
  topic: z.string().check(z.minLength(1)),
  subject: z.string(),
  body: z.string(),
  createdAt: z.string(),
  executionArn: z.optional(z.string()),
});

/**
 * `outbox/<createdAt>-<id>.json` (+ `.eml` for email topics): each published message. Nothing is read at
 * open: the folder is listed when a message is first published or asked for, so opening does not grow
 * with the messages kept.
 */
export class Outbox {
  readonly #context: StoreContext;
  readonly #folder: string;
  #lastTime = 0;
  /** The files stored before this open, in name (= time) order, once listed. */
  #storedFiles: string[] | undefined;
  /** Every message, once the stored ones were read. */
  #all: OutboxMessage[] | undefined;
  /** The messages published since this open, in order. */
  readonly #recent: OutboxMessage[] = [];

  constructor(context: StoreContext) {
    this.#context = context;
    this.#folder = join(context.dir, 'outbox');
  }

  /**
   * The messages stored before this open, listed once (leftover temporary files removed); the latest is
   * read so that a new message is never dated before it.
   */
  #listStored(): string[] {
    if (this.#storedFiles) return this.#storedFiles;
    const entries = readdirSync(this.#folder);
    for (const entry of entries) {
      if (entry.endsWith(TEMPORARY_SUFFIX)) rmSync(join(this.#folder, entry), { force: true });
    }
    this.#storedFiles = entries.filter((entry) => entry.endsWith('.json')).sort();
    const latest = this.#storedFiles.at(-1);
    const message = latest === undefined ? undefined : this.#read(latest);
    if (message) this.#lastTime = Math.max(this.#lastTime, Date.parse(message.createdAt) || 0);
    return this.#storedFiles;
  }

  /**
   * Publishes a message: `outbox/<createdAt>-<id>.json`, and with `email` also an RFC 5322 `.eml` beside
   * it (written first, so a listed message always has its email).
   */
  async add(
    message: Omit<OutboxMessage, 'id' | 'createdAt'>,
    options: { email?: boolean } = {},
  ): Promise<OutboxMessage> {
    this.#listStored();
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
      const stored = this.#listStored().flatMap((file) => {
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
