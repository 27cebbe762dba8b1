import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isNotFound, removeTemporaryFiles, writeFileAtomic } from '#local/state/atomic-file.ts';
import { KeyedSerializer } from '#local/state/journal.ts';
import { PRIVATE_DIR_MODE } from '#local/state/permissions.ts';
import type { LineStore } from '#shared/ports.ts';
import { emptyLine, type LineState, LineStateSchema } from '#shared/release.ts';
import * as z from '#shared/zod.ts';

const LineFileSchema = z.object({
  line: z.string(),
  sequence: z.number().check(z.int(), z.nonnegative()),
  version: z.number().check(z.int(), z.nonnegative()),
  state: LineStateSchema,
});
type LineFile = z.infer<typeof LineFileSchema>;

/**
 * The local stand-in for the release table: `.stepline/lines/<sha256 of the line>.json`, one file per line
 * holding its push counter, version and state, replaced whole and durably (writeFileAtomic: temporary
 * file, fsync, rename, folder fsync), so a SIGKILL leaves the last write or the one before, never a mix.
 * Each file's read-compare-write runs alone (one writer per line in this process; the state folder's lock
 * keeps other processes out), which gives the same conditional write DynamoDB does.
 */
export class LocalLineStore implements LineStore {
  readonly #dir: string;
  readonly #serial = new KeyedSerializer();
  /** The last state written (or read at open) of each line, for what the console and CLI show. */
  readonly #latest = new Map<string, LineState>();

  private constructor(dir: string) {
    this.#dir = dir;
  }

  static async open(stateDir: string): Promise<LocalLineStore> {
    const dir = join(stateDir, 'lines');
    await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    await removeTemporaryFiles(dir);
    const store = new LocalLineStore(dir);
    for (const state of await store.lines()) store.#latest.set(state.line, state);
    return store;
  }

  /** Every line as last written: holds, current commits and waiting runs, without reading the files. */
  snapshot(): LineState[] {
    return [...this.#latest.values()];
  }

  nextSequence(line: string): Promise<number> {
    return this.#serial.run(line, async () => {
      const file = await this.#load(line);
      const next = { ...file, sequence: file.sequence + 1 };
      await this.#save(next);
      return next.sequence;
    });
  }

  async read(line: string): Promise<{ state: LineState; version: number }> {
    const file = await this.#serial.run(line, () => this.#load(line));
    return { state: file.state, version: file.version };
  }

  write(line: string, state: LineState, version: number): Promise<boolean> {
    return this.#serial.run(line, async () => {
      const file = await this.#load(line);
      if (file.version !== version) return false;
      await this.#save({ ...file, state, version: version + 1 });
      return true;
    });
  }

  /** Every line's state, for the console, the CLI and recovery at start-up. */
  async lines(): Promise<LineState[]> {
    const names = (await readdir(this.#dir)).filter((name) => name.endsWith('.json'));
    const files = await Promise.all(names.map((name) => this.#readFile(join(this.#dir, name))));
    return files.flatMap((file) => (file ? [file.state] : []));
  }

  #path(line: string): string {
    return join(this.#dir, `${createHash('sha256').update(line).digest('hex')}.json`);
  }

  async #load(line: string): Promise<LineFile> {
    return (
      (await this.#readFile(this.#path(line))) ?? { line, sequence: 0, version: 0, state: emptyLine(line) }
    );
  }

  async #readFile(path: string): Promise<LineFile | undefined> {
    try {
      return LineFileSchema.parse(JSON.parse(await readFile(path, 'utf8')));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw new Error(`${path} is not a release line file: ${(error as Error).message}`);
    }
  }

  async #save(file: LineFile): Promise<void> {
    await writeFileAtomic(this.#path(file.line), `${JSON.stringify(file)}\n`);
    this.#latest.set(file.line, file.state);
  }
}
