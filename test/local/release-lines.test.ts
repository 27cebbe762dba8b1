import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalLineStore } from '#local/state/release-lines.ts';
import { emptyLine, joinLine, type LineState } from '#shared/release.ts';

const LINE = 'github:acme/shop:refs/heads/main';
const state: LineState = joinLine(
  emptyLine(LINE),
  {
    executionArn: 'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-1',
    sequence: 1,
    commit: '1'.repeat(40),
    plan: [{ name: 'dev', approval: false }],
  },
  'QUEUED',
).state;

describe('LocalLineStore', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stepline-lines-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('numbers pushes per line, and keeps the numbers across a reopen', async () => {
    const store = await LocalLineStore.open(dir);
    expect(await store.nextSequence(LINE)).toBe(1);
    expect(await store.nextSequence(LINE)).toBe(2);
    expect(await store.nextSequence(`${LINE}-other`)).toBe(1);
    const reopened = await LocalLineStore.open(dir);
    expect(await reopened.nextSequence(LINE)).toBe(3);
  });

  it('writes only at the version read, like the conditional write on AWS', async () => {
    const store = await LocalLineStore.open(dir);
    expect(await store.write(LINE, state, 0)).toBe(true);
    expect(await store.write(LINE, state, 0)).toBe(false);
    expect(await store.read(LINE)).toEqual({ state, version: 1 });
    // The counter and the state live together without overwriting each other.
    await store.nextSequence(LINE);
    expect(await store.read(LINE)).toEqual({ state, version: 1 });
  });

  it('serializes concurrent writers of one line: exactly one of two at the same version wins', async () => {
    const store = await LocalLineStore.open(dir);
    const results = await Promise.all([store.write(LINE, state, 0), store.write(LINE, emptyLine(LINE), 0)]);
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('keeps each line in a private file under lines/, and lists every line', async () => {
    const store = await LocalLineStore.open(dir);
    await store.write(LINE, state, 0);
    const files = await readdir(join(dir, 'lines'));
    expect(files).toHaveLength(1);
    const file = join(dir, 'lines', files[0] ?? '');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ line: LINE, version: 1 });
    expect(await store.lines()).toEqual([state]);
  });

  it('names a damaged line file instead of reading it as empty', async () => {
    const store = await LocalLineStore.open(dir);
    await store.write(LINE, state, 0);
    const [name] = await readdir(join(dir, 'lines'));
    await writeFile(join(dir, 'lines', name ?? ''), '{"line":');
    await expect(store.read(LINE)).rejects.toThrow(/is not a release line file/);
  });
});
