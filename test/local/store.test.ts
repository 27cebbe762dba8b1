import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  appendFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ExecutionAlreadyExistsError,
  type ExecutionRecord,
  LocalStore,
  type NewHistoryEvent,
  type StoreChange,
  StoreInUseError,
} from '#local/state/store.ts';

let dir: string;
const opened: LocalStore[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stepline-store-'));
});

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function openStore(): Promise<LocalStore> {
  const store = await LocalStore.open(dir);
  opened.push(store);
  return store;
}

/** Closes a store and opens the folder again, as a restart does. */
async function reopen(store: LocalStore): Promise<LocalStore> {
  await store.close();
  return openStore();
}

function execution(name: string, overrides: Partial<ExecutionRecord> = {}): ExecutionRecord {
  return {
    executionArn: `arn:aws:states:local:000000000000:execution:pipeline:${name}`,
    name,
    stateMachine: 'pipeline',
    status: 'RUNNING',
    input: {
      push: {
        repository: 'octo/app',
        ref: 'refs/heads/main',
        after: '6113728f27ae82c7b1a177c8d03f9e96e0adf246',
      },
    },
    startDate: '2026-05-01T10:00:00.000Z',
    ...overrides,
  };
}

function started(record: ExecutionRecord): NewHistoryEvent {
  return {
    type: 'ExecutionStarted',
    timestamp: record.startDate,
    stateMachine: record.stateMachine,
    executionArn: record.executionArn,
    input: record.input,
  };
}

function entered(state: string, timestamp = '2026-05-01T10:00:01.000Z'): NewHistoryEvent {
  return { type: 'StateEntered', timestamp, state, stateType: 'Task' };
}

function exited(state: string, timestamp = '2026-05-01T10:00:02.000Z'): NewHistoryEvent {
  return { type: 'StateExited', timestamp, state, stateType: 'Task' };
}

function delivery(id: string) {
  return {
    id,
    receivedAt: '2026-05-01T09:59:59.000Z',
    provider: 'github',
    headers: { 'x-github-event': 'push', 'x-github-delivery': id },
    body: JSON.stringify({ ref: 'refs/heads/main', id }),
  };
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

describe('LocalStore round trip', () => {
  it('keeps executions, history and outcomes across a reopen, newest first', async () => {
    const store = await openStore();
    const first = execution('first', { startDate: '2026-05-01T10:00:00.000Z' });
    const second = execution('second', { startDate: '2026-05-01T11:00:00.000Z' });
    const third = execution('third', {
      startDate: '2026-05-01T12:00:00.000Z',
      restartOf: first.executionArn,
    });
    for (const record of [second, first, third]) await store.createExecution(record);
    await store.appendHistory(first.executionArn, [started(first), entered('Build')]);
    await store.appendHistory(first.executionArn, [exited('Build')]);
    await store.appendHistory(second.executionArn, [started(second)]);
    await store.finishExecution(first.executionArn, {
      status: 'SUCCEEDED',
      output: { deployed: ['dev', 'prod'] },
      stopDate: '2026-05-01T10:05:00.000Z',
    });
    await store.finishExecution('second', { status: 'FAILED', error: 'Build.Failed', cause: 'exit 2' });
    await store.finishExecution(third.executionArn, { status: 'ABORTED' });
    const before = { executions: store.executions(), history: store.history(first.executionArn) };

    const reopened = await reopen(store);

    expect(reopened.executions()).toEqual(before.executions);
    expect(reopened.executions().map((record) => record.name)).toEqual(['third', 'second', 'first']);
    expect(reopened.history(first.executionArn)).toEqual(before.history);
    expect(reopened.history(first.executionArn).map((event) => [event.id, event.type])).toEqual([
      [1, 'ExecutionStarted'],
      [2, 'StateEntered'],
      [3, 'StateExited'],
    ]);
    expect(reopened.execution('first')).toMatchObject({
      status: 'SUCCEEDED',
      output: { deployed: ['dev', 'prod'] },
    });
    expect(reopened.execution(third.executionArn)?.restartOf).toBe(first.executionArn);
    expect(reopened.recoveryReport).toMatchObject({ skippedLines: 0, interrupted: [], repaired: [] });
  });

  it('lays the state out as files a person can read', async () => {
    const store = await openStore();
    const record = execution('readable');
    await store.createExecution(record);
    await store.appendHistory(record.name, [started(record)]);

    const onDisk = JSON.parse(await readFile(join(dir, 'executions', 'readable', 'execution.json'), 'utf8'));
    const history = lines(await readFile(join(dir, 'executions', 'readable', 'history.jsonl'), 'utf8'));

    expect(onDisk).toEqual(record);
    expect(history.map((line) => JSON.parse(line))).toEqual([{ id: 1, ...started(record) }]);
  });

  it('refuses a second execution with a name already used, as Step Functions does', async () => {
    const store = await openStore();
    await store.createExecution(execution('once'));

    const again = store.createExecution(execution('once', { executionArn: 'arn:other' }));

    await expect(again).rejects.toBeInstanceOf(ExecutionAlreadyExistsError);
    await expect(again).rejects.toMatchObject({ name: 'ExecutionAlreadyExists' });
  });

  it('lets only one of two concurrent creations with the same name succeed', async () => {
    const store = await openStore();

    const results = await Promise.allSettled([
      store.createExecution(execution('race')),
      store.createExecution(execution('race')),
    ]);

    expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(store.executions()).toHaveLength(1);
  });

  it('refuses a name that cannot be a folder or a Step Functions execution name', async () => {
    const store = await openStore();

    for (const name of ['..', 'a/b', 'with space', '', 'x'.repeat(81)]) {
      await expect(store.createExecution(execution(name))).rejects.toMatchObject({
        name: 'InvalidInputError',
      });
    }
    expect(await readdir(join(dir, 'executions'))).toEqual([]);
  });

  it('ends a run only once', async () => {
    const store = await openStore();
    await store.createExecution(execution('ends'));
    await store.finishExecution('ends', { status: 'SUCCEEDED' });

    await expect(store.finishExecution('ends', { status: 'FAILED' })).rejects.toMatchObject({
      name: 'ConflictError',
    });
    expect(store.execution('ends')?.status).toBe('SUCCEEDED');
  });

  it('keeps deliveries with their answers and never stores a signature or token', async () => {
    const store = await openStore();
    await store.recordDelivery({
      ...delivery('d-1'),
      headers: {
        'X-Hub-Signature-256': 'sha256=deadbeef',
        'X-Gitlab-Token': 's3cret',
        'x-github-event': 'push',
      },
    });
    await store.recordDeliveryResponse('d-1', { status: 202, body: { started: 'run-1' } });
    await store.recordDelivery(delivery('d-2'));

    const reopened = await reopen(store);
    const file = await readFile(join(dir, 'deliveries.jsonl'), 'utf8');

    expect(reopened.deliveries().map((entry) => entry.id)).toEqual(['d-2', 'd-1']);
    expect(reopened.deliveries()[1]).toMatchObject({
      headers: {
        'X-Hub-Signature-256': '[redacted]',
        'X-Gitlab-Token': '[redacted]',
        'x-github-event': 'push',
      },
      response: { status: 202, body: { started: 'run-1' } },
    });
    expect(file).not.toContain('deadbeef');
    expect(file).not.toContain('s3cret');
  });
});

describe('LocalStore torn writes', () => {
  it('skips a half-written last history line, keeps the events before it and appends after it', async () => {
    const store = await openStore();
    const record = execution('torn-history');
    await store.createExecution(record);
    await store.appendHistory(record.name, [started(record)]);
    await store.appendHistory(record.name, [entered('Build'), exited('Build')]);
    await store.finishExecution(record.name, { status: 'SUCCEEDED' });
    await store.close();
    const historyPath = join(dir, 'executions', 'torn-history', 'history.jsonl');
    await appendFile(historyPath, '{"id":4,"type":"StateEntered","timest');

    const reopened = await openStore();
    await reopened.appendHistory(record.name, [entered('Deploy')]);

    expect(reopened.history(record.name).map((event) => event.id)).toEqual([1, 2, 3, 4]);
    expect(reopened.history(record.name).at(-1)?.state).toBe('Deploy');
    expect(reopened.recoveryReport.skippedLines).toBe(1);
    expect(reopened.recoveryReport.repaired).toContain('executions/torn-history/history.jsonl');
    const onDisk = lines(await readFile(historyPath, 'utf8')).map((line) => JSON.parse(line));
    expect(onDisk.map((event) => event.id)).toEqual([1, 2, 3, 4]);
  });

  it('keeps a whole last line that only lacks its newline, and appends after it on a new line', async () => {
    const store = await openStore();
    const record = execution('no-newline');
    await store.createExecution(record);
    await store.finishExecution(record.name, { status: 'SUCCEEDED' });
    await store.close();
    const historyPath = join(dir, 'executions', 'no-newline', 'history.jsonl');
    await appendFile(historyPath, JSON.stringify({ id: 1, ...started(record) }));

    const reopened = await openStore();
    await reopened.appendHistory(record.name, [entered('Build')]);

    expect(reopened.history(record.name).map((event) => event.id)).toEqual([1, 2]);
    expect(reopened.recoveryReport.skippedLines).toBe(0);
    expect(reopened.recoveryReport.repaired).toEqual(['executions/no-newline/history.jsonl']);
    expect(lines(await readFile(historyPath, 'utf8')).map((line) => JSON.parse(line).id)).toEqual([1, 2]);
  });

  it('skips a history line cut short by truncation', async () => {
    const store = await openStore();
    const record = execution('cut-history');
    await store.createExecution(record);
    await store.appendHistory(record.name, [started(record)]);
    await store.appendHistory(record.name, [entered('Build')]);
    await store.finishExecution(record.name, { status: 'FAILED' });
    await store.close();
    const historyPath = join(dir, 'executions', 'cut-history', 'history.jsonl');
    await truncate(historyPath, (await stat(historyPath)).size - 10);

    const reopened = await openStore();

    expect(reopened.history(record.name).map((event) => event.type)).toEqual(['ExecutionStarted']);
    expect(reopened.recoveryReport.skippedLines).toBe(1);
  });

  it('skips a delivery line cut short and keeps every earlier delivery', async () => {
    const store = await openStore();
    for (const id of ['d-1', 'd-2', 'd-3']) await store.recordDelivery(delivery(id));
    await store.close();
    const path = join(dir, 'deliveries.jsonl');
    await truncate(path, (await stat(path)).size - 20);

    const reopened = await openStore();

    expect(reopened.deliveries().map((entry) => entry.id)).toEqual(['d-2', 'd-1']);
    expect(reopened.recoveryReport.skippedLines).toBe(1);
    expect(readFileSync(`${path}.torn`, 'utf8')).toContain('"id":"d-3"');
  });

  it('skips a corrupt line in the middle of a journal and counts it', async () => {
    const store = await openStore();
    await store.recordDelivery(delivery('d-1'));
    await store.close();
    await appendFile(join(dir, 'deliveries.jsonl'), '\u0000\u0000\u0000\n');

    const reopened = await openStore();
    await reopened.recordDelivery(delivery('d-2'));

    expect(reopened.deliveries().map((entry) => entry.id)).toEqual(['d-2', 'd-1']);
    expect(reopened.recoveryReport.skippedLines).toBe(1);
  });

  it('rebuilds a truncated execution.json from history as INTERRUPTED with its input', async () => {
    const store = await openStore();
    const record = execution('corrupt-record');
    await store.createExecution(record);
    await store.appendHistory(record.executionArn, [started(record), entered('Build')]);
    await store.close();
    const recordPath = join(dir, 'executions', 'corrupt-record', 'execution.json');
    await truncate(recordPath, 40);

    const reopened = await openStore();
    const recovered = reopened.execution('corrupt-record');

    expect(recovered).toMatchObject({
      executionArn: record.executionArn,
      stateMachine: 'pipeline',
      status: 'INTERRUPTED',
      input: record.input,
      startDate: record.startDate,
    });
    expect(recovered?.cause).toContain('stepline stopped while this run was in flight (at Build)');
    expect(recovered?.cause).toContain('rebuilt from history.jsonl');
    expect(reopened.recoveryReport.interrupted).toEqual(['corrupt-record']);
    expect(reopened.recoveryReport.repaired).toContain('executions/corrupt-record/execution.json');
    expect(JSON.parse(await readFile(recordPath, 'utf8'))).toMatchObject({ status: 'INTERRUPTED' });
    expect((await readFile(`${recordPath}.corrupt`, 'utf8')).length).toBe(40);
  });

  it('reads a history holding an event type it does not know, and appends after it', async () => {
    const store = await openStore();
    const record = execution('newer-history');
    await store.createExecution(record);
    await store.appendHistory(record.name, [started(record)]);
    await store.finishExecution(record.name, { status: 'SUCCEEDED' });
    await store.close();
    const historyPath = join(dir, 'executions', 'newer-history', 'history.jsonl');
    await appendFile(
      historyPath,
      `${JSON.stringify({ id: 2, type: 'FromANewerVersion', timestamp: 't', x: 1 })}\n`,
    );

    const reopened = await openStore();
    await reopened.appendHistory(record.name, [entered('Late')]);

    expect(reopened.history(record.name).map((event) => [event.id, event.type])).toEqual([
      [1, 'ExecutionStarted'],
      [2, 'Unrecognized'],
      [3, 'StateEntered'],
    ]);
    expect(reopened.history(record.name)[1]).toMatchObject({ recordedType: 'FromANewerVersion', x: 1 });
    expect(reopened.recoveryReport.skippedLines).toBe(0);
  });

  it('refuses to append an event the history schema does not know', async () => {
    const store = await openStore();
    await store.createExecution(execution('strict'));

    const appended = store.appendHistory('strict', [{ type: 'Made-up', timestamp: 't' } as never]);

    await expect(appended).rejects.toThrow(/Not a history event/);
    expect(store.history('strict')).toEqual([]);
  });

  it('removes an execution folder whose creation never completed', async () => {
    const folder = join(dir, 'executions', 'half-created');
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'history.jsonl'), '');
    await writeFile(join(folder, 'execution.json.4242-1.tmp'), '{"executionArn":"arn:x","na');

    const store = await openStore();

    expect(store.execution('half-created')).toBeUndefined();
    expect(await readdir(join(dir, 'executions'))).toEqual([]);
    expect(store.recoveryReport.interrupted).toEqual([]);
  });
});

describe('LocalStore crash recovery', () => {
  it('marks a run left RUNNING as INTERRUPTED, says where it was, and records it in the history', async () => {
    const store = await openStore();
    const record = execution('in-flight');
    await store.createExecution(record);
    await store.appendHistory(record.name, [
      started(record),
      entered('Infrastructure'),
      exited('Infrastructure'),
      entered('Image', '2026-05-01T10:03:00.000Z'),
    ]);

    const reopened = await reopen(store);
    const recovered = reopened.execution(record.executionArn);
    const last = reopened.history(record.name).at(-1);

    expect(recovered).toMatchObject({
      status: 'INTERRUPTED',
      cause: 'stepline stopped while this run was in flight (at Image)',
      stopDate: '2026-05-01T10:03:00.000Z',
      input: record.input,
    });
    expect(last).toMatchObject({
      id: 5,
      type: 'ExecutionInterrupted',
      error: 'Stepline.Interrupted',
      cause: 'stepline stopped while this run was in flight (at Image)',
    });
    expect(reopened.recoveryReport.interrupted).toEqual(['in-flight']);
  });

  it('does not interrupt a run twice when opened again', async () => {
    const store = await openStore();
    await store.createExecution(execution('once-interrupted'));
    const firstReopen = await reopen(store);

    const secondReopen = await reopen(firstReopen);

    expect(secondReopen.recoveryReport.interrupted).toEqual([]);
    expect(secondReopen.history('once-interrupted').map((event) => event.type)).toEqual([
      'ExecutionInterrupted',
    ]);
    expect(secondReopen.execution('once-interrupted')?.cause).toBe(
      'stepline stopped while this run was in flight (at the start)',
    );
  });

  it('finishes a run left RUNNING whose history already shows how it ended', async () => {
    const store = await openStore();
    const record = execution('ended-in-history');
    await store.createExecution(record);
    await store.appendHistory(record.name, [
      started(record),
      { type: 'ExecutionSucceeded', timestamp: '2026-05-01T10:09:00.000Z', output: { ok: true } },
    ]);

    const reopened = await reopen(store);

    expect(reopened.execution(record.name)).toMatchObject({
      status: 'SUCCEEDED',
      output: { ok: true },
      stopDate: '2026-05-01T10:09:00.000Z',
    });
    expect(reopened.recoveryReport.interrupted).toEqual([]);
  });

  it('gives an interrupted run a new unique name to restart under', async () => {
    const store = await openStore();
    const record = execution('octo-app-main-6113728');
    await store.createExecution(record);
    const reopened = await reopen(store);

    const firstRestart = reopened.restartName(record.name);
    await reopened.createExecution(
      execution(firstRestart, {
        executionArn: `arn:restart:${firstRestart}`,
        restartOf: record.executionArn,
      }),
    );

    expect(firstRestart).toBe('octo-app-main-6113728-r1');
    expect(reopened.restartName(record.name)).toBe('octo-app-main-6113728-r2');
    expect(reopened.restartName(firstRestart)).toBe('octo-app-main-6113728-r2');
    expect(reopened.restartName('x'.repeat(80))).toHaveLength(80);
  });

  it('keeps every delivery a killed process had acknowledged (SIGKILL)', async () => {
    const storeUrl = new URL('../../local/state/store.ts', import.meta.url).href;
    const script = `
      const { LocalStore } = await import(${JSON.stringify(storeUrl)});
      const store = await LocalStore.open(process.env.STORE_DIR);
      const pad = 'x'.repeat(3000);
      async function loop(worker) {
        for (let n = 0; ; n += 1) {
          const id = worker + '-' + n;
          await store.recordDelivery({ id, receivedAt: new Date().toISOString(), provider: 'github',
            headers: { 'x-github-event': 'push' }, body: JSON.stringify({ id, pad }) });
          process.stdout.write(id + '\\n');
        }
      }
      await Promise.all(['a', 'b', 'c', 'd'].map(loop));
    `;
    const wanted = 400;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, STORE_DIR: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const printed: string[] = [];
    let stderr = '';
    let partial = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout.on('data', (chunk: Buffer) => {
      const parts = (partial + chunk.toString()).split('\n');
      partial = parts.pop() ?? '';
      printed.push(...parts);
      if (printed.length >= wanted) child.kill('SIGKILL');
    });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => {
      child.on('close', (_code, closedBy) => resolve(closedBy));
    });

    expect(signal, stderr).toBe('SIGKILL');
    expect(printed.length).toBeGreaterThanOrEqual(wanted);
    const reopened = await openStore();
    const recorded = new Set(reopened.deliveries().map((entry) => entry.id));
    expect(printed.filter((id) => !recorded.has(id))).toEqual([]);
    for (const entry of reopened.deliveries()) expect(JSON.parse(entry.body).id).toBe(entry.id);
  });

  it('refuses to open a folder another live store has open, and opens it once closed', async () => {
    const store = await openStore();

    await expect(LocalStore.open(dir)).rejects.toBeInstanceOf(StoreInUseError);
    await store.close();
    await expect(openStore()).resolves.toBeInstanceOf(LocalStore);
  });
});

describe('LocalStore outbox', () => {
  function parseEmail(text: string): { headers: Map<string, string>; rawHeaders: string[]; body: string } {
    const split = text.indexOf('\r\n\r\n');
    const rawHeaders = text.slice(0, split).split('\r\n');
    const unfolded = text.slice(0, split).replace(/\r\n[ \t]/g, ' ');
    const headers = new Map<string, string>();
    for (const line of unfolded.split('\r\n')) {
      const colon = line.indexOf(':');
      headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
    }
    return { headers, rawHeaders, body: text.slice(split + 4) };
  }

  function decodeWords(value: string): string {
    return value
      .split(/\s+/)
      .map((word) => {
        const match = /^=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=$/i.exec(word);
        expect(match, `an encoded word: ${word}`).not.toBeNull();
        expect(word.length).toBeLessThanOrEqual(75);
        return Buffer.from(match?.[1] ?? '', 'base64').toString('utf8');
      })
      .join('');
  }

  it('writes each message as JSON and, for email, as an RFC 5322 .eml with an encoded subject', async () => {
    const store = await openStore();
    const subject = '✔ Deployed octo/app 6113728 to prod — approved by Zoë Müller';

    const message = await store.addOutbox(
      {
        topic: 'notifications',
        subject,
        body: 'Déployé.\nLog: http://localhost/builds/1',
        executionArn: 'arn:x',
      },
      { email: true },
    );
    const files = (await readdir(join(dir, 'outbox'))).sort();
    const email = parseEmail(await readFile(join(dir, 'outbox', files[0] ?? ''), 'utf8'));

    expect(files).toEqual([
      `${message.createdAt.replaceAll(':', '-')}-${message.id}.eml`,
      `${message.createdAt.replaceAll(':', '-')}-${message.id}.json`,
    ]);
    expect(JSON.parse(await readFile(join(dir, 'outbox', files[1] ?? ''), 'utf8'))).toEqual(message);
    expect(email.headers.get('from')).toMatch(/<[^@\s]+@[^>\s]+>$/);
    expect(email.headers.get('to')).toBe('notifications@localhost');
    expect(email.headers.get('subject')).toMatch(/^=\?UTF-8\?B\?/);
    expect(decodeWords(email.headers.get('subject') ?? '')).toBe(subject);
    expect(Date.parse(email.headers.get('date') ?? '')).toBe(
      Math.floor(Date.parse(message.createdAt) / 1000) * 1000,
    );
    expect(email.headers.get('message-id')).toMatch(/^<[^@\s]+@[^>\s]+>$/);
    expect(email.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(email.body).toBe('Déployé.\r\nLog: http://localhost/builds/1\r\n');
    for (const line of email.rawHeaders) expect(line.length).toBeLessThanOrEqual(78);
  });

  it('leaves an ASCII subject as it is and writes no .eml unless asked', async () => {
    const store = await openStore();

    const plain = await store.addOutbox({
      topic: 'approvals',
      subject: 'Approve prod deploy',
      body: 'Open the link',
    });
    const email = await store.addOutbox(
      { topic: 'approvals', subject: 'Approve prod deploy', body: 'Open the link' },
      { email: true },
    );
    const files = await readdir(join(dir, 'outbox'));
    const eml = parseEmail(
      await readFile(join(dir, 'outbox', files.find((file) => file.endsWith('.eml')) ?? ''), 'utf8'),
    );

    expect(files.filter((file) => file.includes(plain.id))).toHaveLength(1);
    expect(files.filter((file) => file.includes(email.id))).toHaveLength(2);
    expect(eml.headers.get('subject')).toBe('Approve prod deploy');
  });

  it('lists messages newest first, the same after a reopen', async () => {
    const store = await openStore();
    for (const subject of ['one', 'two', 'three'])
      await store.addOutbox({ topic: 'notifications', subject, body: '' });
    const before = store.outbox();

    const reopened = await reopen(store);

    expect(before.map((message) => message.subject)).toEqual(['three', 'two', 'one']);
    expect(reopened.outbox()).toEqual(before);
  });
});

describe('LocalStore concurrency and files', () => {
  it('writes 20 concurrent runs of 100 events each without interleaving, ids 1..100 per run', async () => {
    const store = await openStore();
    const records = Array.from({ length: 20 }, (_, index) => execution(`run-${index}`));
    await Promise.all(records.map((record) => store.createExecution(record)));

    await Promise.all(
      records.flatMap((record) =>
        Array.from({ length: 100 }, (_, n) =>
          store.appendHistory(record.executionArn, [
            {
              type: 'StateEntered',
              timestamp: new Date().toISOString(),
              state: `S${n}`,
              stateType: 'Task',
              payload: 'y'.repeat(n * 40),
            } as NewHistoryEvent,
          ]),
        ),
      ),
    );

    const expectedIds = Array.from({ length: 100 }, (_, index) => index + 1);
    for (const record of records) {
      expect(store.history(record.name).map((event) => event.id)).toEqual(expectedIds);
      expect(store.history(record.name).map((event) => Number(event.state?.slice(1)) + 1)).toEqual(
        expectedIds,
      );
      const fileLines = lines(await readFile(join(dir, 'executions', record.name, 'history.jsonl'), 'utf8'));
      expect(fileLines.map((line) => JSON.parse(line).id)).toEqual(expectedIds);
    }
  });

  it('appends build logs to one file per build, kept after close', async () => {
    const store = await openStore();
    const buildId = 'stepline-deploy:0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0';

    store.appendBuildLog(buildId, '[Container] Entering phase INSTALL\n');
    store.appendBuildLog(buildId, '[Container] Phase complete: INSTALL State: SUCCEEDED\n');
    store.appendBuildLog('other', 'unrelated\n');
    const path = store.buildLogPath(buildId);
    const whileOpen = readFileSync(path, 'utf8');
    await store.close();

    expect(path.startsWith(join(dir, 'builds'))).toBe(true);
    expect(path).not.toContain(':');
    expect(store.buildLogPath('other')).toBe(join(dir, 'builds', 'other.log'));
    expect(whileOpen).toBe(readFileSync(path, 'utf8'));
    expect(whileOpen).toBe(
      '[Container] Entering phase INSTALL\n[Container] Phase complete: INSTALL State: SUCCEEDED\n',
    );
  });

  it('gives build ids that differ only in unsafe characters different files', async () => {
    const store = await openStore();

    expect(store.buildLogPath('project:1')).not.toBe(store.buildLogPath('project/1'));
  });
});

describe('LocalStore change feed', () => {
  it('tells a subscriber of each change after it is written, and nothing after it unsubscribes', async () => {
    const store = await openStore();
    const changes: StoreChange[] = [];
    const unsubscribe = store.subscribe((change) => changes.push(change));
    const record = execution('watched');

    await store.recordDelivery(delivery('d-1'));
    await store.recordDeliveryResponse('d-1', { status: 202, body: {} });
    await store.createExecution(record);
    await store.appendHistory(record.name, [started(record)]);
    store.appendBuildLog('build-1', 'hello\n');
    const message = await store.addOutbox({ topic: 'notifications', subject: 's', body: 'b' });
    await store.finishExecution(record.name, { status: 'SUCCEEDED' });
    unsubscribe();
    await store.recordDelivery(delivery('d-2'));

    expect(changes).toEqual([
      { kind: 'delivery', id: 'd-1' },
      { kind: 'delivery', id: 'd-1' },
      { kind: 'execution', id: record.executionArn },
      { kind: 'history', id: record.executionArn },
      { kind: 'log', id: 'build-1' },
      { kind: 'outbox', id: message.id },
      { kind: 'execution', id: record.executionArn },
    ]);
  });
});

describe('LocalStore redrive', () => {
  async function failedRun(store: LocalStore, name: string): Promise<ExecutionRecord> {
    const record = execution(name);
    await store.createExecution(record);
    await store.appendHistory(record.executionArn, [started(record), entered('Deploy')]);
    await store.appendHistory(record.executionArn, [
      {
        type: 'ExecutionFailed',
        timestamp: '2026-05-01T10:01:00.000Z',
        error: 'States.TaskFailed',
        cause: 'x',
      },
    ]);
    await store.finishExecution(record.executionArn, {
      status: 'FAILED',
      error: 'States.TaskFailed',
      cause: 'x',
      stopDate: '2026-05-01T10:01:00.000Z',
    });
    return record;
  }

  it('puts an ended run back to RUNNING with its outcome cleared and the redrive counted, once at a time', async () => {
    const store = await openStore();
    const record = await failedRun(store, 'run');
    const refuseRunning = (current: ExecutionRecord) => {
      if (current.status === 'RUNNING') throw new Error('running');
    };

    const redriven = await store.redriveExecution(record.executionArn, refuseRunning);

    expect(redriven).toMatchObject({ name: 'run', status: 'RUNNING', redriveCount: 1 });
    expect(redriven.error).toBeUndefined();
    expect(redriven.cause).toBeUndefined();
    expect(redriven.stopDate).toBeUndefined();
    await expect(store.redriveExecution('run', refuseRunning)).rejects.toThrow('running');
  });

  it('after a crash during a redrive, marks the run INTERRUPTED, not the outcome of the attempt before', async () => {
    const store = await openStore();
    const record = await failedRun(store, 'run');
    await store.redriveExecution('run', () => undefined);
    await store.appendHistory(record.executionArn, [
      { type: 'ExecutionRedriven', timestamp: '2026-05-01T11:00:00.000Z', redriveCount: 1 },
      entered('Deploy', '2026-05-01T11:00:01.000Z'),
    ]);

    const reopened = await reopen(store);

    expect(reopened.execution('run')).toMatchObject({ status: 'INTERRUPTED', redriveCount: 1 });
    expect(reopened.execution('run')?.cause).toContain('(at Deploy)');
  });

  it('rebuilds a lost record of a redriven run with its redrive count and outcome', async () => {
    const store = await openStore();
    const record = await failedRun(store, 'run');
    await store.redriveExecution('run', () => undefined);
    await store.appendHistory(record.executionArn, [
      { type: 'ExecutionRedriven', timestamp: '2026-05-01T11:00:00.000Z', redriveCount: 1 },
      { type: 'ExecutionSucceeded', timestamp: '2026-05-01T11:02:00.000Z', output: { ok: true } },
    ]);
    await store.finishExecution('run', { status: 'SUCCEEDED', output: { ok: true } });
    await store.close();
    await rm(join(dir, 'executions', 'run', 'execution.json'));

    const reopened = await openStore();

    expect(reopened.execution('run')).toMatchObject({
      status: 'SUCCEEDED',
      redriveCount: 1,
      redriveDate: '2026-05-01T11:00:00.000Z',
      output: { ok: true },
    });
  });

  it('reads the restarted run of a record written as redriveOf by earlier versions as restartOf', async () => {
    const store = await openStore();
    const record = execution('restarted', { status: 'FAILED' });
    await store.createExecution(execution('restarted'));
    await store.finishExecution('restarted', { status: 'FAILED' });
    await store.close();
    const file = join(dir, 'executions', 'restarted', 'execution.json');
    const stored = JSON.parse(await readFile(file, 'utf8'));
    await writeFile(file, JSON.stringify({ ...stored, redriveOf: 'original' }));

    const reopened = await openStore();

    expect(reopened.execution(record.executionArn)).toMatchObject({ restartOf: 'original' });
    expect(reopened.execution(record.executionArn)).not.toHaveProperty('redriveOf');
  });
});
