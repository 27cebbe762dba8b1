import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory } from '#local/state/atomic-file.ts';
import { reportJournal, type StoreContext } from '#local/state/context.ts';
import { Journal, readJournal, readJournalSync } from '#local/state/journal.ts';
import { PRIVATE_FILE_MODE } from '#local/state/permissions.ts';
import { InvalidInputError, NotFoundError } from '#shared/errors.ts';
import * as z from '#shared/zod.ts';

/** An accepted webhook delivery and, once sent, the answer it got. */
export interface Delivery {
  id: string;
  receivedAt: string;
  provider: string;
  headers: Record<string, string>;
  body: string;
  response?: { status: number; body: unknown };
}

/** Header names whose values are secrets or signatures: stored as `[redacted]`, never on disk. */
const SECRET_HEADER = /token|signature|secret|authorization|cookie|password|api[-_]?key/i;
const REDACTED = '[redacted]';

const DeliveryFields = {
  id: z.string().check(z.minLength(1)),
  receivedAt: z.string(),
  provider: z.string(),
  headers: z.record(z.string(), z.string()),
  body: z.string(),
};
const DeliverySchema = z.object(DeliveryFields);
const ResponseSchema = z.object({ status: z.number().check(z.int()), body: z.unknown() });
const DeliveryLineSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('DeliveryReceived'), ...DeliveryFields }),
  z.object({
    type: z.literal('DeliveryAnswered'),
    id: z.string(),
    answeredAt: z.string(),
    response: ResponseSchema,
  }),
]);

/**
 * `deliveries.jsonl`: every accepted webhook delivery, then its answer (append-only). Opening repairs a
 * torn last line but reads no delivery: the ones stored before are read when first asked for, so opening
 * does not grow with the deliveries kept.
 */
export class Deliveries {
  readonly #context: StoreContext;
  readonly #journal: Journal;
  /** The file's size once opened (and repaired): the deliveries before it are read on demand. */
  #storedLength = 0;
  /** The deliveries stored before this open, once read; then every delivery, in order. */
  #earlier: Delivery[] | undefined;
  /** The deliveries recorded since this open, in order. */
  readonly #recent: Delivery[] = [];

  constructor(context: StoreContext) {
    this.#context = context;
    this.#journal = new Journal(join(context.dir, 'deliveries.jsonl'));
  }

  /** Creates the file if needed and cuts a torn last line; the deliveries themselves are read later. */
  async load(): Promise<void> {
    const path = this.#journal.path;
    await writeFile(path, '', { flag: 'a', mode: PRIVATE_FILE_MODE });
    await syncDirectory(this.#context.dir);
    if (!(await endsWithNewline(path))) {
      reportJournal(this.#context, 'deliveries.jsonl', await readJournal(path));
    }
    this.#storedLength = await statSize(path);
  }

  /**
   * Records an accepted delivery durably. Call it before sending the HTTP answer: once it resolves, the
   * delivery survives a crash. Header values that are secrets or signatures are stored as `[redacted]`.
   */
  async record(delivery: Omit<Delivery, 'response'>): Promise<void> {
    const parsed = DeliverySchema.safeParse(delivery);
    if (!parsed.success) throw new InvalidInputError(`Not a delivery: ${z.prettifyError(parsed.error)}`);
    const stored: Delivery = { ...parsed.data, headers: redactHeaders(parsed.data.headers) };
    const line = `${JSON.stringify({ type: 'DeliveryReceived', ...stored })}\n`;
    await this.#journal.append({ render: () => line, committed: () => this.#recent.push(stored) });
    this.#context.emit({ kind: 'delivery', id: stored.id });
  }

  /** Records the answer sent for a delivery (the latest delivery with that id). */
  async recordResponse(id: string, response: Delivery['response']): Promise<void> {
    const parsed = ResponseSchema.safeParse(response);
    if (!parsed.success) throw new InvalidInputError(`Not a response: ${z.prettifyError(parsed.error)}`);
    const delivery =
      this.#recent.findLast((candidate) => candidate.id === id) ??
      this.#readEarlier().findLast((candidate) => candidate.id === id);
    if (!delivery) throw new NotFoundError(`No delivery ${id} was recorded`);
    const answered = parsed.data;
    const line = `${JSON.stringify({ type: 'DeliveryAnswered', id, answeredAt: this.#context.now(), response: answered })}\n`;
    await this.#journal.append({
      render: () => line,
      committed: () => {
        delivery.response = answered;
      },
    });
    this.#context.emit({ kind: 'delivery', id });
  }

  /** The recorded deliveries, newest first. */
  list(): Delivery[] {
    return [...this.#readEarlier(), ...this.#recent].toReversed().map((delivery) => ({ ...delivery }));
  }

  /** The deliveries stored before this open (read once, from the part of the file that existed then). */
  #readEarlier(): Delivery[] {
    if (this.#earlier) return this.#earlier;
    const earlier: Delivery[] = [];
    const contents = readJournalSync(this.#journal.path, this.#storedLength);
    // Told to the recovery report when found, which is now: the file was not read at open.
    reportJournal(this.#context, 'deliveries.jsonl', { skipped: contents.skipped });
    for (const [index, record] of contents.records.entries()) {
      const parsed = DeliveryLineSchema.safeParse(record);
      if (!parsed.success) {
        this.#context.report.skippedLines += 1;
        this.#context.note(`deliveries.jsonl: record ${index + 1} is not a delivery and was skipped`);
        continue;
      }
      const line = parsed.data;
      if (line.type === 'DeliveryReceived') {
        const { type: _type, ...delivery } = line;
        earlier.push(delivery);
      } else {
        const delivery = earlier.findLast((candidate) => candidate.id === line.id);
        if (delivery) delivery.response = line.response;
      }
    }
    this.#earlier = earlier;
    return earlier;
  }
}

async function statSize(path: string): Promise<number> {
  const handle = await open(path, 'r');
  try {
    return (await handle.stat()).size;
  } finally {
    await handle.close();
  }
}

/** Whether a file is empty or ends with a newline (a journal a crash did not cut short). */
async function endsWithNewline(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    if (size === 0) return true;
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    return last[0] === 0x0a;
  } finally {
    await handle.close();
  }
}

function redactHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).map(([name, value]) => [name, SECRET_HEADER.test(name) ? REDACTED : value]),
  );
}
