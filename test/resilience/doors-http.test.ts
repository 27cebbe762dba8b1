import { createHmac, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BODY_BYTES } from '#shared/handlers/webhook.ts';
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

async function journalLines(): Promise<{ type: string; id: string; response?: { status: number } }[]> {
  const text = await readFile(join(local.stateDir, 'deliveries.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line));
}

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
    const overLimit = `{"x":"${'a'.repeat(MAX_BODY_BYTES + 10)}"}`;
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
          'x-hub-signature': sign(valid, local.runtime.webhookSecretFor('bitbucket')),
        },
        expected: 400,
      },
      {
        // Each provider has its own secret: GitHub's does not open Bitbucket's door, nor GitLab's.
        what: "bitbucket signed with GitHub's secret",
        provider: 'bitbucket',
        body: valid,
        headers: {
          'content-type': 'application/json',
          'x-event-key': 'repo:push',
          'x-hub-signature': sign(valid),
        },
        expected: 401,
      },
      {
        what: "gitlab with GitHub's secret as its token",
        provider: 'gitlab',
        body: valid,
        headers: {
          'content-type': 'application/json',
          'x-gitlab-event': 'Push Hook',
          'x-gitlab-token': secret,
        },
        expected: 401,
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
        what: 'body over 4 MiB',
        provider: 'github',
        body: overLimit,
        headers: github(overLimit),
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
    // Every delivery whose signature verified is in the journal with its answer; the forged and unsigned
    // ones (401), the unknown provider's (nothing to verify it with) and the one over 6 MiB (refused
    // unread) are not written at all.
    const journal = await journalLines();
    const recorded = cases.filter(
      (c) => c.expected !== 401 && c.provider !== 'gitea' && !c.what.includes('6 MiB'),
    );
    expect(journal.filter((line) => line.type === 'DeliveryReceived')).toHaveLength(recorded.length);
    expect(
      journal
        .filter((line) => line.type === 'DeliveryAnswered')
        .map((line) => line.response?.status)
        .sort(),
    ).toEqual(recorded.map((c) => c.expected).sort());
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

/**
 * One request written byte for byte on a socket, so that the Host header and the request target go out
 * exactly as generated (fetch and node:http rewrite or refuse some). Resolves with the status of the
 * answer's first line, then closes the socket (the event stream at /api/events never ends).
 */
function rawRequest(request: {
  method: string;
  target: string;
  host: string;
  headers?: Record<string, string>;
  body?: string;
}): Promise<number> {
  const body = Buffer.from(request.body ?? '', 'utf8');
  const { port } = new URL(local.url);
  const lines = [
    `${request.method} ${request.target} HTTP/1.1`,
    `Host: ${request.host}`,
    ...Object.entries(request.headers ?? {}).map(([name, value]) => `${name}: ${value}`),
    `Content-Length: ${body.length}`,
    'Connection: close',
  ];
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    let received = '';
    socket.setTimeout(10_000, () => {
      socket.destroy();
      reject(
        new Error(`No answer within 10 s to ${request.method} ${request.target} (Host ${request.host})`),
      );
    });
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(received);
      if (statusLine || received.includes('\r\n')) {
        socket.destroy();
        if (statusLine) resolve(Number(statusLine[1]));
        else reject(new Error(`Not an HTTP answer: ${JSON.stringify(received.slice(0, 200))}`));
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`Closed without an answer: ${JSON.stringify(received)}`)));
    socket.write(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]));
  });
}

describe('the guards of the local server over HTTP', () => {
  const ownHost = () => new URL(local.url).host;
  const ownOrigin = () => new URL(local.url).origin;

  it('refuses requests under a rebound Host name (DNS rebinding) with 421, and they change nothing', async ({
    task,
  }) => {
    const body = JSON.stringify(githubPushPayload({ repo, after: validCommit, ref: 'refs/heads/rebound' }));
    const headers = githubHeaders(body, secret);
    const runsBefore = runCount();
    const journalBefore = (await journalLines()).length;
    const statuses = [
      await rawRequest({ method: 'GET', target: '/', host: 'evil.example' }),
      await rawRequest({ method: 'GET', target: '/api/runs', host: 'evil.example' }),
      await rawRequest({
        method: 'GET',
        target: '/api/approvals',
        host: `evil.example:${new URL(local.url).port}`,
      }),
      // A signed push, under the rebound name: refused before it is read.
      await rawRequest({ method: 'POST', target: '/webhooks/github', host: 'evil.example', headers, body }),
    ];
    const effects = runCount() - runsBefore + ((await journalLines()).length - journalBefore);
    record(task, {
      cases: { 'http: Host': statuses.length },
      serverErrors: statuses.filter((s) => s >= 500).length,
      invalidEffects: effects,
    });
    expect(statuses).toEqual([421, 421, 421, 421]);
    expect(effects).toBe(0);
  });

  it('refuses state changes from another origin (CSRF) with 403, and lets the console decide', async ({
    task,
  }) => {
    const answer = await pushTo(local.url, secret, { repo, after: validCommit, ref: 'refs/heads/csrf' });
    expect(answer.status).toBe(202);
    const [name] = (answer.json as { started: string[] }).started;
    const approval = await local.until(
      () => local.runtime.pendingApprovals().find((a) => a.executionArn.endsWith(`:${name}`)),
      'the approval of the run',
    );
    const evil = { origin: 'http://evil.example' };
    const crossSite = { 'sec-fetch-site': 'cross-site' };
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const body = JSON.stringify(githubPushPayload({ repo, after: validCommit, ref: 'refs/heads/forged' }));
    const runsBefore = runCount();
    const journalBefore = (await journalLines()).length;
    const attempts: [string, RequestInit][] = [
      [`${local.url}/api/runs/${name}/restart`, { method: 'POST', headers: evil }],
      [`${local.url}/api/runs/${name}/restart`, { method: 'POST', headers: crossSite }],
      [`${local.url}/api/runs/${name}/restart`, { method: 'POST', headers: { origin: 'null' } }],
      [`${local.url}/api/teardown/dev`, { method: 'POST', headers: evil }],
      [approval.approve, { method: 'POST', headers: { ...form, ...evil }, body: 'name=mallory' }],
      [approval.reject, { method: 'POST', headers: { ...form, ...crossSite }, body: 'comment=no' }],
      [
        `${local.url}/webhooks/github`,
        { method: 'POST', headers: { ...githubHeaders(body, secret), ...evil }, body },
      ],
    ];
    const statuses: number[] = [];
    for (const [url, init] of attempts) statuses.push((await send(url, init)).status);
    const stillWaiting = local.runtime
      .pendingApprovals()
      .some((a) => a.executionArn === approval.executionArn);
    const effects =
      runCount() - runsBefore + ((await journalLines()).length - journalBefore) + (stillWaiting ? 0 : 1);

    // The console's own page decides: Origin null (its no-referrer policy) with Sec-Fetch-Site same-origin.
    const decided = await send(approval.reject, {
      method: 'POST',
      headers: { ...form, origin: 'null', 'sec-fetch-site': 'same-origin' },
      body: 'comment=decided from the console',
    });
    record(task, {
      cases: { 'http: Origin': attempts.length + 1 },
      serverErrors: [...statuses, decided.status].filter((s) => s >= 500).length,
      invalidEffects: effects,
    });
    expect(statuses).toEqual(attempts.map(() => 403));
    expect(effects).toBe(0);
    expect(decided.status).toBe(200);
    expect(await local.runtime.engine.wait(approval.executionArn)).toMatchObject({ status: 'FAILED' });
    expect(
      await rawRequest({ method: 'GET', target: '/', host: ownHost(), headers: { origin: ownOrigin() } }),
    ).toBe(200);
  });

  it('refuses malformed percent-encodings in paths with 400', async ({ task }) => {
    const targets = ['/approvals/%E0%A4%A', '/webhooks/%E0%A4%A', '/api/runs/%E0%A4%A', '/api/builds/%/log'];
    const statuses: number[] = [];
    for (const target of targets) {
      for (const method of ['GET', 'POST'])
        statuses.push(await rawRequest({ method, target, host: ownHost() }));
    }
    record(task, {
      cases: { 'http: path': statuses.length },
      serverErrors: statuses.filter((s) => s >= 500).length,
    });
    expect(statuses).toEqual(statuses.map(() => 400));
  });

  it('answers generated paths, Host headers and origins with their 4xx or an answer, never 5xx', async ({
    task,
  }) => {
    const { port } = new URL(local.url);
    const loopback = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `LocalHost:${port}`];
    const printable = fc.constantFrom(
      ...Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)).filter(
        (c) => c !== '?' && c !== '#',
      ),
    );
    const segment = fc.oneof(
      fc.constantFrom('api', 'runs', 'builds', 'log', 'approvals', 'webhooks', 'github', 'gitlab', 'restart'),
      fc.constantFrom('statemachines', 'pipeline', 'outbox', 'console', 'app.js', '', '..', '.'),
      fc.string({ unit: 'binary', maxLength: 12 }).map(encodeURIComponent),
      fc.stringMatching(/^(%[0-9A-Fa-f]{0,2}|[a-z0-9])*$/, { size: 'small' }),
      fc.string({ unit: printable, maxLength: 12 }),
    );
    const target = fc
      .tuple(fc.array(segment, { maxLength: 5 }), fc.option(fc.string({ unit: printable, maxLength: 12 })))
      .map(([parts, query]) => `/${parts.join('/')}${query === null ? '' : `?${query}`}`);
    const host = fc.oneof(
      { arbitrary: fc.constantFrom(...loopback), weight: 3 },
      { arbitrary: fc.domain(), weight: 1 },
      { arbitrary: fc.tuple(fc.domain(), fc.nat(65_535)).map(([d, p]) => `${d}:${p}`), weight: 1 },
      { arbitrary: fc.ipV4().map((ip) => `${ip}:${port}`), weight: 1 },
      { arbitrary: fc.string({ unit: printable, maxLength: 30 }), weight: 1 },
    );
    const origin = fc.option(
      fc.oneof(
        fc.constant(ownOrigin()),
        fc.constant('null'),
        fc.webUrl().map((u) => new URL(u).origin),
      ),
    );
    // State changes always come from a foreign origin here, so that a generated path starts nothing.
    const request = fc.oneof(
      fc.record({ method: fc.constantFrom('GET', 'HEAD'), target, host, origin }),
      fc.record({
        method: fc.constantFrom('POST', 'PUT', 'DELETE'),
        target,
        host,
        origin: fc.constant('http://evil.example'),
      }),
    );
    let cases = 0;
    let serverErrors = 0;
    const runsBefore = runCount();
    const journalBefore = (await journalLines()).length;
    await fc.assert(
      fc.asyncProperty(request, async ({ method, target, host, origin }) => {
        const status = await rawRequest({
          method,
          target,
          host,
          headers: origin === null ? {} : { origin },
        });
        cases += 1;
        if (status >= 500) serverErrors += 1;
        const ours = loopback.some((name) => name.toLowerCase() === host.toLowerCase());
        if (status >= 500) return false;
        if (!ours) return status === 421 || status === 400;
        if (method !== 'GET' && method !== 'HEAD') return status === 403 || status === 400;
        return true;
      }),
      { seed: SEED, numRuns: 400 },
    );
    const effects = runCount() - runsBefore + ((await journalLines()).length - journalBefore);
    record(task, {
      cases: { 'http: path and Host': cases },
      serverErrors,
      invalidEffects: effects,
    });
    expect(serverErrors).toBe(0);
    expect(effects).toBe(0);
  });
});
