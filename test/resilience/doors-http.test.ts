import { createHmac, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { record } from './figures.ts';
import {
  ANY_REF_TRIGGERS,
  type Answer,
  type AppRepo,
  createAppRepo,
  githubHeaders,
  githubPushPayload,
  type Local,
  pushTo,
  send,
  settingsParam,
  startLocal,
} from './harness.ts';

/**
 * A subset of the bad input of doors.test.ts, over HTTP against the real local server: what the
 * server adds (reading the body, the delivery journal written before the answer, the 6 MiB cap, the
 * routes) is in the way of every request here.
 */

const SEED = 20_261_123;

let dir: string;
let repo: AppRepo;
let local: Local;
let secret: string;
let validCommit: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stepline-doors-http-'));
  repo = await createAppRepo(join(dir, 'repo'));
  validCommit = await repo.commit({ mode: 'echo\n' }, 'A valid push, for reference');
  local = await startLocal({
    stateDir: join(dir, 'state'),
    params: [ANY_REF_TRIGGERS, settingsParam([{ name: 'dev', approval: true }])],
  });
  secret = local.runtime.webhookSecret;
});

afterAll(async () => {
  await local?.stop();
  await rm(dir, { recursive: true, force: true });
});

const runCount = () => local.runtime.store.executions().length;

function post(provider: string, body: string | Buffer, headers: Record<string, string>): Promise<Answer> {
  return send(`${local.url}/webhooks/${provider}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
}

describe('the webhook over HTTP', () => {
  it('answers hand-picked bad deliveries with their 4xx, records each before answering, and starts nothing', async ({
    task,
  }) => {
    const valid = JSON.stringify(githubPushPayload({ repo, after: validCommit }));
    const sign = (body: string | Buffer, key = secret) =>
      `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
    const github = (body: string | Buffer, extra: Record<string, string> = {}) => ({
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': sign(body),
      ...extra,
    });
    const over6MiB = `{"x":"${'a'.repeat(6 * 1024 * 1024)}"}`;
    const over5MiB = `{"x":"${'a'.repeat(5 * 1024 * 1024 + 10)}"}`;
    const changed = valid.replace('"Change"', '"Chang3"');
    const cases: {
      what: string;
      provider: string;
      body: string | Buffer;
      headers: Record<string, string>;
      expected: number;
    }[] = [
      {
        what: 'malformed JSON',
        provider: 'github',
        body: '{"ref": ',
        headers: github('{"ref": '),
        expected: 400,
      },
      {
        what: 'truncated payload',
        provider: 'github',
        body: valid.slice(0, 200),
        headers: github(valid.slice(0, 200)),
        expected: 400,
      },
      { what: 'empty body', provider: 'github', body: '', headers: github(''), expected: 400 },
      {
        what: 'not UTF-8',
        provider: 'github',
        body: Buffer.from([0xff, 0xfe, 0x00, 0x7b]),
        headers: github(Buffer.from([0xff, 0xfe, 0x00, 0x7b])),
        expected: 400,
      },
      {
        what: 'form without payload',
        provider: 'github',
        body: valid,
        headers: github(valid, { 'content-type': 'application/x-www-form-urlencoded' }),
        expected: 400,
      },
      {
        what: 'missing signature',
        provider: 'github',
        body: valid,
        headers: github(valid, { 'x-hub-signature-256': '' }),
        expected: 401,
      },
      {
        what: 'forged signature',
        provider: 'github',
        body: valid,
        headers: github(valid, { 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` }),
        expected: 401,
      },
      {
        what: 'signed with another secret',
        provider: 'github',
        body: valid,
        headers: github(valid, { 'x-hub-signature-256': sign(valid, `${secret}x`) }),
        expected: 401,
      },
      {
        what: 'signature replayed on a changed body',
        provider: 'github',
        body: changed,
        headers: github(changed, { 'x-hub-signature-256': sign(valid) }),
        expected: 401,
      },
      {
        what: 'gitlab without token',
        provider: 'gitlab',
        body: valid,
        headers: { 'content-type': 'application/json', 'x-gitlab-event': 'Push Hook' },
        expected: 401,
      },
      {
        what: 'gitlab with a wrong token',
        provider: 'gitlab',
        body: valid,
        headers: {
          'content-type': 'application/json',
          'x-gitlab-event': 'Push Hook',
          'x-gitlab-token': `${secret}x`,
        },
        expected: 401,
      },
      {
        what: 'bitbucket forged',
        provider: 'bitbucket',
        body: valid,
        headers: {
          'content-type': 'application/json',
          'x-event-key': 'repo:push',
          'x-hub-signature': `sha256=${'f'.repeat(64)}`,
        },
        expected: 401,
      },
      {
        what: 'bitbucket signed, not a bitbucket payload',
        provider: 'bitbucket',
        body: valid,
        headers: {
          'content-type': 'application/json',
          'x-event-key': 'repo:push',
          'x-hub-signature': sign(valid),
        },
        expected: 400,
      },
      {
        what: 'ref neither branch nor tag',
        provider: 'github',
        body: valid.replace('refs/heads/main', 'refs/pull/7/head'),
        headers: github(valid.replace('refs/heads/main', 'refs/pull/7/head')),
        expected: 400,
      },
      { what: 'unknown provider', provider: 'gitea', body: valid, headers: github(valid), expected: 404 },
      {
        what: 'body over 5 MiB',
        provider: 'github',
        body: over5MiB,
        headers: github(over5MiB),
        expected: 413,
      },
      {
        what: 'body over 6 MiB',
        provider: 'github',
        body: over6MiB,
        headers: github(over6MiB),
        expected: 413,
      },
      {
        what: 'empty delivery id',
        provider: 'github',
        body: '{',
        headers: github('{', { 'x-github-delivery': '' }),
        expected: 400,
      },
    ];
    const runsBefore = runCount();
    const results: string[] = [];
    for (const c of cases) {
      const answer = await post(c.provider, c.body, c.headers);
      results.push(`${c.what}: ${answer.status}`);
    }
    const serverErrors = results.filter((r) => / 5\d\d$/.test(r)).length;
    const started = runCount() - runsBefore;
    record(task, {
      cases: { 'http: webhook': cases.length },
      serverErrors,
      invalidEffects: started,
    });
    expect(results).toEqual(cases.map((c) => `${c.what}: ${c.expected}`));
    expect(started).toBe(0);
    // Every delivery the handler answered is in the journal with its answer (over 6 MiB is refused unread).
    const journal = (await readFile(join(local.stateDir, 'deliveries.jsonl'), 'utf8')).trim().split('\n');
    const answered = journal
      .map((line) => JSON.parse(line))
      .filter((line) => line.type === 'DeliveryAnswered');
    expect(answered.map((line) => line.response.status).sort()).toEqual(
      cases
        .filter((c) => !c.what.includes('6 MiB'))
        .map((c) => c.expected)
        .sort(),
    );
  });

  it('answers generated bodies and refs over HTTP with 4xx or a valid run, never 5xx', async ({ task }) => {
    let cases = 0;
    let serverErrors = 0;
    let invalidEffects = 0;
    const payload = githubPushPayload({ repo, after: validCommit });
    const input = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }).map((body) => ({ body, validRef: false })),
      fc.jsonValue({ maxDepth: 3 }).map((v) => ({ body: JSON.stringify(v) ?? '', validRef: false })),
      fc
        .string({ unit: 'grapheme', minLength: 1, maxLength: 300 })
        .map((name) => ({ body: JSON.stringify({ ...payload, ref: name }), validRef: false })),
    );
    await fc.assert(
      fc.asyncProperty(input, async ({ body }) => {
        const before = runCount();
        const answer = await post('github', body, githubHeaders(body, secret));
        cases += 1;
        if (answer.status >= 500) serverErrors += 1;
        if (runCount() > before) invalidEffects += 1;
        return [200, 400].includes(answer.status) && runCount() === before;
      }),
      { seed: SEED, numRuns: 300 },
    );
    record(task, { cases: { 'http: webhook': cases }, serverErrors, invalidEffects });
    expect(serverErrors).toBe(0);
    expect(invalidEffects).toBe(0);
  });
});

describe('the approval links over HTTP', () => {
  it('refuses tampered and expired-looking links, decides once, and refuses the replay', async ({ task }) => {
    const answer = await pushTo(local.url, secret, {
      repo,
      after: validCommit,
      ref: 'refs/heads/approve-me',
    });
    expect(answer.status).toBe(202);
    const [name] = (answer.json as { started: string[] }).started;
    const approval = await local.until(
      () => local.runtime.pendingApprovals().find((a) => a.executionArn.endsWith(`:${name}`)),
      'the approval of the run',
    );
    const segment = approval.approve.slice(approval.approve.lastIndexOf('/') + 1);
    const bytes = Buffer.from(segment, 'base64url');
    const flip = (at: number) => {
      const copy = Buffer.from(bytes);
      copy[at] = (copy[at] as number) ^ 0x01;
      return copy.toString('base64url');
    };
    const base = approval.approve.slice(0, approval.approve.lastIndexOf('/') + 1);
    const tampered = [
      flip(0),
      flip(5),
      flip(20),
      flip(bytes.length - 3),
      `${segment.slice(0, -1)}${segment.endsWith('A') ? 'B' : 'A'}`,
      `${segment}=`,
      segment.slice(0, 40),
      encodeURIComponent(`${segment.slice(0, 10)}/${segment.slice(10)}`),
      `${segment.slice(0, 10)}%2B${segment.slice(11)}`,
    ];
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const statuses: number[] = [];
    for (const t of tampered) {
      statuses.push((await send(`${base}${t}`)).status);
      statuses.push(
        (await send(`${base}${t}`, { method: 'POST', headers: form, body: 'name=mallory' })).status,
      );
    }
    const stillWaiting = local.runtime
      .pendingApprovals()
      .some((a) => a.executionArn === approval.executionArn);

    const decided = await send(approval.reject, { method: 'POST', headers: form, body: 'comment=not today' });
    const replays = [
      await send(approval.reject, { method: 'POST', headers: form, body: 'comment=again' }),
      await send(approval.approve, { method: 'POST', headers: form, body: 'comment=overrule' }),
    ];
    const outcome = await local.runtime.engine.wait(approval.executionArn);

    const all = [...statuses, decided.status, ...replays.map((r) => r.status)];
    record(task, {
      cases: { 'http: approval GET': tampered.length, 'http: approval POST': tampered.length + 3 },
      serverErrors: all.filter((s) => s >= 500).length,
      invalidEffects: stillWaiting ? 0 : 1,
      duplicated: replays.filter((r) => r.status === 200).length,
    });
    expect(statuses.every((s) => s === 403 || s === 404)).toBe(true);
    expect(stillWaiting).toBe(true);
    expect(decided.status).toBe(200);
    expect(replays.map((r) => r.status)).toEqual([409, 409]);
    expect(outcome).toMatchObject({ status: 'FAILED' });
  });
});
