import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '#local/state/atomic-file.ts';
import { LocalStore } from '#local/state/store.ts';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

const mode = async (path: string) => ((await stat(path)).mode & 0o777).toString(8);

describe('the state folder’s permissions', () => {
  it('are 0700 for the folder and its folders, 0600 for what the store writes', async () => {
    dir = await mkdtemp(join(tmpdir(), 'stepline-perm-'));
    const stateDir = join(dir, 'state');
    const store = await LocalStore.open(stateDir);
    try {
      const message = await store.addOutbox(
        { topic: 'approvals', subject: 'Approve', body: 'b' },
        { email: true },
      );
      store.appendBuildLog('p:1', 'line\n');
      await store.recordDelivery({
        id: 'd-1',
        receivedAt: new Date().toISOString(),
        provider: 'github',
        headers: {},
        body: '{}',
      });
      expect(await mode(stateDir)).toBe('700');
      for (const folder of ['executions', 'outbox', 'builds'])
        expect(await mode(join(stateDir, folder))).toBe('700');
      const base = join(stateDir, 'outbox', `${message.createdAt.replaceAll(':', '-')}-${message.id}`);
      expect(await mode(`${base}.json`)).toBe('600');
      expect(await mode(`${base}.eml`)).toBe('600');
      expect(await mode(join(stateDir, 'deliveries.jsonl'))).toBe('600');
      expect(await mode(join(stateDir, 'lock'))).toBe('600');
    } finally {
      await store.close();
    }
    expect(await mode(store.buildLogPath('p:1'))).toBe('600');
  });

  it('are tightened at start on a folder an older version left open (0755 folders, 0644 files)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'stepline-perm-'));
    const stateDir = join(dir, 'state');
    await mkdir(join(stateDir, 'outbox'), { recursive: true, mode: 0o755 });
    await chmod(stateDir, 0o755);
    await writeFile(join(stateDir, 'approval-key'), 'k', { mode: 0o644 });
    await writeFile(join(stateDir, 'outbox', 'old.eml'), 'approve: http://127.0.0.1/approvals/x', {
      mode: 0o644,
    });
    await chmod(join(stateDir, 'outbox', 'old.eml'), 0o644);
    const store = await LocalStore.open(stateDir);
    await store.close();
    expect(await mode(stateDir)).toBe('700');
    expect(await mode(join(stateDir, 'outbox'))).toBe('700');
    expect(await mode(join(stateDir, 'approval-key'))).toBe('600');
    expect(await mode(join(stateDir, 'outbox', 'old.eml'))).toBe('600');
  });

  it('are 0600 for a file replaced atomically unless a mode is asked for', async () => {
    dir = await mkdtemp(join(tmpdir(), 'stepline-perm-'));
    await writeFileAtomic(join(dir, 'record.json'), '{}');
    await writeFileAtomic(join(dir, 'hook'), '#!/bin/sh\n', { mode: 0o755 });
    expect(await mode(join(dir, 'record.json'))).toBe('600');
    expect(await mode(join(dir, 'hook'))).toBe('755');
  });
});
