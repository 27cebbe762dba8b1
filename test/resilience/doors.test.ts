import { createHmac, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import fc from 'fast-check';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { LocalTaskTokens } from '#local/stepfunctions/engine.ts';
import { mintApprovalLinks } from '#shared/approval.ts';
import { isClientError } from '#shared/errors.ts';
import { MAX_BODY_BYTES } from '#shared/handlers/webhook.ts';
import { createLogger } from '#shared/logger.ts';
import { type ApprovalRequest, ExecutionInputSchema, PipelineSettingsSchema } from '#shared/pipeline.ts';
import type { Notification, PipelineStarter, TaskDecider } from '#shared/ports.ts';
import { TriggersSchema } from '#shared/triggers.ts';
import { httpEvent, lambdaContext } from '../helpers/lambda.ts';
import { aPush } from '../helpers/push.ts';
import { MemoryLineStore, recordingLedger } from '../helpers/release.ts';
import { record } from './figures.ts';

/**
 * Bad input at every door, in this process, against the handlers Lambda runs (built by their
 * create…Handler factories with counting fakes): generated with fast-check (fixed seed) and hand-picked.
 * At every door: the documented 4xx or 2xx, never a 5xx, and nothing started or decided by bad input.
 * For the EventBridge handlers, "4xx" is a rejection with a client error (InvalidInputError), which
 * EventBridge retries and then sends to the DLQ; anything else thrown counts as a 5xx.
 */

const SEED = 20_261_123;
const SECRET = 'resilience-webhook-secret-0123456789';
const KEY = 'resilience-approval-key-0123456789abcdef';
const BASE_URL = 'https://api.example.com/approvals';

type HttpHandler = (event: unknown, context: unknown) => Promise<APIGatewayProxyStructuredResultV2>;
type EventHandler = (event: unknown, context: unknown) => Promise<unknown>;

let factories: {
  webhook: typeof import('#shared/handlers/webhook.ts').createWebhookHandler;
  approval: typeof import('#shared/handlers/approval.ts').createApprovalHandler;
  codecommit: typeof import('#shared/handlers/codecommit.ts').createCodeCommitHandler;
  buildEvents: typeof import('#shared/handlers/build-events.ts').createBuildEventsHandler;
  pipelineEvents: typeof import('#shared/handlers/pipeline-events.ts').createPipelineEventsHandler;
};

beforeAll(async () => {
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
  factories = {
    webhook: (await import('#shared/handlers/webhook.ts')).createWebhookHandler,
    approval: (await import('#shared/handlers/approval.ts')).createApprovalHandler,
    codecommit: (await import('#shared/handlers/codecommit.ts')).createCodeCommitHandler,
    buildEvents: (await import('#shared/handlers/build-events.ts')).createBuildEventsHandler,
    pipelineEvents: (await import('#shared/handlers/pipeline-events.ts')).createPipelineEventsHandler,
  };
});

// ---- fakes that count what the handlers do ----

/** Step Functions' rules for an execution name: 1–80 characters, none of these, no control characters. */
function validExecutionName(name: string): boolean {
  return (
    name.length >= 1 &&
    name.length <= 80 &&
    !/[\s<>{}[\]?*"#%\\^|~`$&,;:/]/u.test(name) &&
    ![...name].some(
      (c) =>
        (c.codePointAt(0) ?? 0) <= 0x1f ||
        ((c.codePointAt(0) ?? 0) >= 0x7f && (c.codePointAt(0) ?? 0) <= 0x9f),
    )
  );
}

/** A starter that behaves like StartExecution (a name starts once) and keeps every input it started. */
function countingStarter() {
  const names = new Set<string>();
  const started: { name: string; input: unknown }[] = [];
  const starter: PipelineStarter = {
    start: async ({ name, input }) => {
      if (!validExecutionName(name)) throw new Error(`InvalidName: ${name}`);
      if (names.has(name)) return { outcome: 'already-started', executionName: name };
      names.add(name);
      started.push({ name, input: JSON.parse(JSON.stringify(input)) });
      return {
        outcome: 'started',
        executionName: name,
        executionArn: `arn:aws:states:::execution:p:${name}`,
      };
    },
  };
  return { starter, started };
}

const ALL_REFS = TriggersSchema.parse({
  push: [{ branches: { includes: ['**'] } }, { tags: { includes: ['**'] } }],
});
const SETTINGS = PipelineSettingsSchema.parse({});

function ingestDeps(service: string) {
  const { starter, started } = countingStarter();
  return {
    deps: {
      starter,
      lines: new MemoryLineStore(),
      triggers: ALL_REFS,
      settings: SETTINGS,
      logger: createLogger(service),
    },
    started,
  };
}

/** Tally of a group of cases: cases per door, 5xx, and bad input that had an effect. */
class Door {
  readonly cases: Record<string, number> = {};
  serverErrors = 0;
  invalidEffects = 0;
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
  count(door = this.name, n = 1) {
    this.cases[door] = (this.cases[door] ?? 0) + n;
  }
  figures() {
    return { cases: this.cases, serverErrors: this.serverErrors, invalidEffects: this.invalidEffects };
  }
}

const hex = (length: number) =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: length, maxLength: length });

// ---- the webhook ----

const fixture = (path: string) => readFileSync(new URL(`../fixtures/${path}`, import.meta.url), 'utf8');

type Provider = 'github' | 'gitlab' | 'bitbucket-cloud' | 'bitbucket-dc';

const TEMPLATES: Record<Provider, { body: string; headers: Record<string, string> }> = {
  github: { body: fixture('github/go-playground-push.json'), headers: { 'x-github-event': 'push' } },
  gitlab: { body: fixture('gitlab/gitlab-docs-push-hook.json'), headers: { 'x-gitlab-event': 'Push Hook' } },
  'bitbucket-cloud': {
    body: fixture('bitbucket/go-playground-repo-push.json'),
    headers: { 'x-event-key': 'repo:push' },
  },
  'bitbucket-dc': {
    body: fixture('bitbucket/go-playground-server-repo-refs-changed.json'),
    headers: { 'x-event-key': 'repo:refs_changed' },
  },
};
const PROVIDERS = Object.keys(TEMPLATES) as Provider[];
const routeOf = (provider: Provider) => (provider.startsWith('bitbucket') ? 'bitbucket' : provider);

/** The authentication header the provider sends for `body`, with `secret`. */
function authHeaders(provider: Provider, body: string | Buffer, secret = SECRET): Record<string, string> {
  const hmac = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
  if (provider === 'github') return { 'x-hub-signature-256': hmac };
  if (provider === 'gitlab') return { 'x-gitlab-token': secret };
  return { 'x-hub-signature': hmac };
}

interface Delivery {
  provider: Provider | string;
  body?: string;
  isBase64Encoded?: boolean;
  headers: Record<string, string>;
}

function webhookDoor() {
  const { deps, started } = ingestDeps('webhook');
  const handler = factories.webhook({
    ...deps,
    runStopper: { stopRunning: async () => [] },
    // One secret for every provider here: this suite fuzzes each door, not which secret opens which.
    webhookSecrets: Object.fromEntries(
      ['github', 'gitlab', 'bitbucket'].map((p) => [
        p,
        { current: async () => SECRET, fetchAgain: async () => SECRET },
      ]),
    ),
    builds: 'local',
  }) as unknown as HttpHandler;
  const deliver = async (delivery: Delivery) => {
    const before = started.length;
    const provider = PROVIDERS.includes(delivery.provider as Provider)
      ? routeOf(delivery.provider as Provider)
      : delivery.provider;
    const result = await handler(
      httpEvent({
        path: `/webhooks/${provider}`,
        pathParameters: { provider },
        headers: delivery.headers,
        ...(delivery.body === undefined ? {} : { body: delivery.body }),
        isBase64Encoded: delivery.isBase64Encoded ?? false,
      }),
      lambdaContext('stepline-test-webhook'),
    );
    const status = result.statusCode ?? 200;
    const route = ['github', 'gitlab', 'bitbucket'].includes(provider) ? provider : 'unknown provider';
    return { status, started: started.slice(before), body: result.body ?? '', route };
  };
  return { deliver, started };
}

/** Checks one webhook answer against the door's contract, and counts it. */
function judgeWebhook(
  door: Door,
  answer: { status: number; started: { input: unknown }[]; route: string },
  expectation: { allowed: number[]; mayStart: boolean },
): boolean {
  door.count(`webhook/${answer.route}`);
  if (answer.status >= 500) door.serverErrors += 1;
  const startedSomething = answer.started.length > 0;
  const badStart =
    (startedSomething && !expectation.mayStart) ||
    answer.started.some((s) => !ExecutionInputSchema.safeParse(s.input).success);
  if (badStart) door.invalidEffects += 1;
  return (
    expectation.allowed.includes(answer.status) && !badStart && (answer.status !== 202 || startedSomething)
  );
}

/** Every path (key or index list) of a JSON value. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== 'object') return [prefix];
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  return [prefix, ...entries.flatMap(([key, item]) => pathsOf(item, [...prefix, key]))];
}

/** A copy of `value` with the thing at `path` deleted or replaced. */
function mutate(
  value: unknown,
  path: (string | number)[],
  replacement: { delete: true } | { with: unknown },
): unknown {
  if (path.length === 0) return 'delete' in replacement ? undefined : replacement.with;
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  const last = path.at(-1) as string | number;
  if ('delete' in replacement) {
    if (Array.isArray(at)) at.splice(Number(last), 1);
    else delete at[last];
  } else at[last] = replacement.with;
  return copy;
}

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/x-www-form-urlencoded',
  'text/plain',
  'multipart/form-data; boundary=x',
  'application/xml',
  '',
];

describe('the webhook door', () => {
  it('answers arbitrary bodies, correctly signed, with 4xx and starts nothing', async ({ task }) => {
    const { deliver } = webhookDoor();
    const door = new Door('webhook: arbitrary signed bodies');
    const body = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.json({ maxDepth: 3 }),
      fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? ''),
      // Truncated JSON: a real payload cut anywhere.
      fc
        .tuple(fc.constantFrom(...PROVIDERS), fc.double({ min: 0, max: 0.999, noNaN: true }))
        .map(([p, at]) => TEMPLATES[p].body.slice(0, Math.floor(TEMPLATES[p].body.length * at))),
    );

    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PROVIDERS),
        body,
        fc.constantFrom(...CONTENT_TYPES),
        async (provider, text, type) => {
          const answer = await deliver({
            provider,
            body: text,
            headers: {
              ...TEMPLATES[provider].headers,
              ...(type ? { 'content-type': type } : {}),
              ...authHeaders(provider, text),
            },
          });
          // 200: a Bitbucket body saying {"test": true} is a ping.
          return judgeWebhook(door, answer, { allowed: [200, 400], mayStart: false });
        },
      ),
      { seed: SEED, numRuns: 600 },
    );
    record(task, door.figures());
    expect(door.serverErrors).toBe(0);
    expect(door.invalidEffects).toBe(0);
  });

  it('answers a real payload with a field missing, null or of another type with 400 or a valid run', async ({
    task,
  }) => {
    const { deliver } = webhookDoor();
    const door = new Door('webhook: mutated payloads');
    const mutation = fc.constantFrom(...PROVIDERS).chain((provider) => {
      const payload = JSON.parse(TEMPLATES[provider].body) as unknown;
      const paths = pathsOf(payload).filter((p) => p.length > 0);
      return fc.tuple(
        fc.constant(provider),
        fc.constant(payload),
        fc.constantFrom(...paths),
        fc.oneof(
          fc.constant({ delete: true } as const),
          fc.constant({ with: null }),
          fc.jsonValue({ maxDepth: 2 }).map((v) => ({ with: v })),
          fc.string({ unit: 'grapheme', maxLength: 50 }).map((v) => ({ with: v })),
        ),
        // An extra unknown field somewhere: accepted and ignored.
        fc.boolean(),
      );
    });

    await fc.assert(
      fc.asyncProperty(mutation, async ([provider, payload, path, replacement, extra]) => {
        let changed = mutate(payload, path, replacement) as Record<string, unknown> | undefined;
        if (extra && changed && typeof changed === 'object')
          changed = { ...changed, [`x-unknown-${path.join('.')}`]: [1, { a: null }] };
        const text = JSON.stringify(changed) ?? '';
        const answer = await deliver({
          provider,
          body: text,
          headers: {
            ...TEMPLATES[provider].headers,
            'content-type': 'application/json',
            'x-github-delivery': randomUUID(),
            ...authHeaders(provider, text),
          },
        });
        // A change the push model tolerates still starts a run, with an input that is valid.
        return judgeWebhook(door, answer, { allowed: [200, 202, 400], mayStart: true });
      }),
      { seed: SEED, numRuns: 800 },
    );
    record(task, door.figures());
    expect(door.serverErrors).toBe(0);
    expect(door.invalidEffects).toBe(0);
  });

  it('starts runs with valid names for unicode and very long branch names, and refuses refs that are neither branch nor tag', async ({
    task,
  }) => {
    const { deliver } = webhookDoor();
    const door = new Door('webhook: refs');
    const payload = JSON.parse(TEMPLATES.github.body) as Record<string, unknown>;
    const name = fc.oneof(
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 80 }),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
      fc.string({ minLength: 200, maxLength: 4000 }),
    );
    const ref = fc.oneof(
      name.map((n) => ({ ref: `refs/heads/${n}`, valid: true })),
      name.map((n) => ({ ref: `refs/tags/${n}`, valid: true })),
      fc
        .constantFrom(
          'refs/heads/',
          'refs/tags/',
          'main',
          'refs/pull/1/head',
          'refs/notes/commits',
          'refs/remotes/origin/main',
          'HEAD',
          ' refs/heads/x',
        )
        .map((r) => ({ ref: r, valid: false })),
      name.map((n) => ({ ref: n, valid: n.startsWith('refs/heads/') || n.startsWith('refs/tags/') })),
    );

    await fc.assert(
      fc.asyncProperty(ref, hex(40), async ({ ref: r, valid }, after) => {
        const text = JSON.stringify({ ...payload, ref: r, after, deleted: false });
        const answer = await deliver({
          provider: 'github',
          body: text,
          headers: {
            'x-github-event': 'push',
            'content-type': 'application/json',
            ...authHeaders('github', text),
          },
        });
        const ok = judgeWebhook(door, answer, { allowed: valid ? [202] : [400], mayStart: valid });
        return ok && answer.started.every((s) => validExecutionName((s as unknown as { name: string }).name));
      }),
      { seed: SEED, numRuns: 400 },
    );
    record(task, door.figures());
    expect(door.serverErrors).toBe(0);
    expect(door.invalidEffects).toBe(0);
  });

  it('answers every missing, forged, replayed or malformed signature with 401 and starts nothing', async ({
    task,
  }) => {
    const { deliver } = webhookDoor();
    const door = new Door('webhook: signatures');
    const forgery = fc.oneof(
      fc.constant({ kind: 'missing' as const }),
      fc.constant({ kind: 'empty' as const }),
      hex(64).map((hex) => ({ kind: 'random' as const, hex })),
      fc.string({ minLength: 1, maxLength: 40 }).map((secret) => ({ kind: 'other-secret' as const, secret })),
      fc.integer({ min: 0, max: 10_000 }).map((at) => ({ kind: 'replayed-on-changed-body' as const, at })),
      fc
        .constantFrom('uppercase', 'sha1', 'no-prefix', 'padded', 'truncated')
        .map((how) => ({ kind: 'malformed' as const, how })),
    );

    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...PROVIDERS), forgery, async (provider, f) => {
        const original = TEMPLATES[provider].body;
        let body = original;
        let auth: Record<string, string> = authHeaders(provider, original);
        const [name = '', value = ''] = Object.entries(auth)[0] ?? [];
        if (f.kind === 'missing') auth = {};
        else if (f.kind === 'empty') auth = { [name]: '' };
        else if (f.kind === 'random') auth = { [name]: provider === 'gitlab' ? f.hex : `sha256=${f.hex}` };
        else if (f.kind === 'other-secret') {
          if (f.secret === SECRET) return true;
          auth = authHeaders(provider, original, f.secret);
        } else if (f.kind === 'replayed-on-changed-body') {
          // The signature of the real body, sent with a body changed by one character.
          const at = f.at % original.length;
          const replaced = original[at] === 'a' ? 'b' : 'a';
          body = `${original.slice(0, at)}${replaced}${original.slice(at + 1)}`;
          if (provider === 'gitlab') return true; // GitLab sends a token, not a signature over the body.
        } else {
          const transform: Record<string, (v: string) => string> = {
            uppercase: (v) =>
              provider === 'gitlab' ? v.toUpperCase() : `sha256=${v.slice(7).toUpperCase()}`,
            sha1: (v) => (provider === 'gitlab' ? `${v}x` : `sha1=${v.slice(7, 47)}`),
            'no-prefix': (v) => (provider === 'gitlab' ? `x${v}` : v.slice(7)),
            padded: (v) => ` ${v}`,
            truncated: (v) => v.slice(0, -1),
          };
          auth = { [name]: (transform[f.how] as (v: string) => string)(value) };
        }
        const answer = await deliver({
          provider,
          body,
          headers: { ...TEMPLATES[provider].headers, 'content-type': 'application/json', ...auth },
        });
        return judgeWebhook(door, answer, { allowed: [401], mayStart: false });
      }),
      { seed: SEED, numRuns: 500 },
    );
    record(task, door.figures());
    expect(door.serverErrors).toBe(0);
    expect(door.invalidEffects).toBe(0);
  });

  it('refuses bodies over 4 MiB with 413, plain or base64, before verifying or parsing them', async ({
    task,
  }) => {
    const { deliver } = webhookDoor();
    const door = new Door('webhook: huge bodies');
    const huge = `{"ref":"refs/heads/main","padding":"${'x'.repeat(MAX_BODY_BYTES)}"}`;
    const hugeUnicode = 'é'.repeat(MAX_BODY_BYTES / 2 + 1);
    const cases: Delivery[] = PROVIDERS.flatMap((provider) => [
      { provider, body: huge, headers: { ...TEMPLATES[provider].headers, ...authHeaders(provider, huge) } },
      {
        provider,
        body: hugeUnicode,
        headers: { ...TEMPLATES[provider].headers, ...authHeaders(provider, hugeUnicode) },
      },
      {
        provider,
        body: Buffer.from(huge).toString('base64'),
        isBase64Encoded: true,
        headers: { ...TEMPLATES[provider].headers, ...authHeaders(provider, huge) },
      },
    ]);
    const statuses: number[] = [];
    for (const delivery of cases) {
      const answer = await deliver(delivery);
      statuses.push(answer.status);
      judgeWebhook(door, answer, { allowed: [413], mayStart: false });
    }
    record(task, door.figures());
    expect(statuses).toEqual(Array(cases.length).fill(413));
    expect(door.invalidEffects).toBe(0);
  });

  it('answers unknown providers with 404 and wrong content types with 400', async ({ task }) => {
    const { deliver } = webhookDoor();
    const door = new Door('webhook: providers and content types');
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }), async (provider) => {
        if (['github', 'gitlab', 'bitbucket'].includes(provider)) return true;
        const body = TEMPLATES.github.body;
        const answer = await deliver({
          provider,
          body,
          headers: { 'x-github-event': 'push', ...authHeaders('github', body) },
        });
        return judgeWebhook(door, answer, { allowed: [404], mayStart: false });
      }),
      { seed: SEED, numRuns: 100 },
    );
    // A JSON body declared as a form has no `payload` field.
    for (const provider of PROVIDERS) {
      const body = TEMPLATES[provider].body;
      const answer = await deliver({
        provider,
        body,
        headers: {
          ...TEMPLATES[provider].headers,
          'content-type': 'application/x-www-form-urlencoded',
          ...authHeaders(provider, body),
        },
      });
      expect(judgeWebhook(door, answer, { allowed: [400], mayStart: false })).toBe(true);
    }
    record(task, door.figures());
    expect(door.serverErrors).toBe(0);
    expect(door.invalidEffects).toBe(0);
  });
});

// ---- the approval links ----

/** A decider over real local task tokens, counting the decisions it passed on. */
function approvalDoor(now: () => Date = () => new Date()) {
  const tokens = new LocalTaskTokens();
  const decided: string[] = [];
  const decider: TaskDecider = {
    succeed: async (token, output) => {
      await tokens.succeed(token, output);
      decided.push(token);
    },
    fail: async (token, error, cause) => {
      await tokens.fail(token, error, cause);
      decided.push(token);
    },
  };
  const handler = factories.approval({
    decider,
    runs: { supersededCause: async () => null, failedStage: async () => null },
    approvalKey: async () => KEY,
    logger: createLogger('approval'),
    now,
  }) as unknown as HttpHandler;
  /** A gate waiting for a decision, and its two links. */
  const gate = (enteredAt = new Date()) => {
    const executionArn = `arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:${randomUUID()}`;
    const taskToken = tokens.mint(executionArn);
    void tokens.wait(taskToken).catch(() => undefined);
    const request: ApprovalRequest = {
      taskToken,
      executionArn,
      enteredAt: enteredAt.toISOString(),
      timeoutSeconds: 3600,
      environment: 'prod',
      push: aPush(),
      passed: ['Image'],
    };
    const links = mintApprovalLinks(request, KEY, BASE_URL);
    const segment = (url: string) => url.slice(BASE_URL.length + 1);
    return { taskToken, links, approve: segment(links.approve), reject: segment(links.reject) };
  };
  const call = async (method: string, segment: string, body?: string) => {
    const result = await handler(
      httpEvent({
        method,
        path: `/approvals/${segment}`,
        pathParameters: { token: segment },
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        ...(body === undefined ? {} : { body }),
      }),
      lambdaContext('stepline-test-approval'),
    );
    return result.statusCode ?? 200;
  };
  return { gate, call, decided };
}

function judgeApproval(
  door: Door,
  method: string,
  status: number,
  allowed: number[],
  decidedNow: number,
): boolean {
  door.count(['GET', 'POST'].includes(method) ? `approval ${method}` : 'approval (other methods)');
  if (status >= 500) door.serverErrors += 1;
  if (decidedNow > 0) door.invalidEffects += 1;
  return allowed.includes(status) && decidedNow === 0;
}

const REGIONS = ['version byte', 'IV', 'ciphertext', 'tag'] as const;

describe('the approval door', () => {
  it('refuses a link changed in any part (version byte, IV, ciphertext, tag) with 403, and decides nothing', async ({
    task,
  }) => {
    const { gate, call, decided } = approvalDoor();
    const door = new Door('approval GET/POST: tampered links');
    const { approve, reject } = gate();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(approve, reject),
        fc.constantFrom(...REGIONS),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.constantFrom('GET', 'POST'),
        async (segment, region, offset, xor, method) => {
          const bytes = Buffer.from(segment, 'base64url');
          const range = {
            'version byte': [0, 1],
            IV: [1, 13],
            ciphertext: [13, bytes.length - 16],
            tag: [bytes.length - 16, bytes.length],
          }[region] as [number, number];
          const at = range[0] + (offset % (range[1] - range[0]));
          bytes[at] = (bytes[at] as number) ^ xor;
          const before = decided.length;
          const status = await call(method, bytes.toString('base64url'), 'name=mallory');
          return judgeApproval(door, method, status, [403], decided.length - before);
        },
      ),
      { seed: SEED, numRuns: 600 },
    );
    record(task, door.figures());
    expect(door.serverErrors).toBe(0);
    expect(door.invalidEffects).toBe(0);
  });

  it('refuses characters outside base64url, non-canonical spellings, truncations and random segments with 403', async ({
    task,
  }) => {
    const { gate, call, decided } = approvalDoor();
    const door = new Door('approval GET/POST: malformed links');
    const { approve } = gate();
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const change = fc.oneof(
      fc
        .tuple(fc.nat(), fc.constantFrom('+', '/', '=', '.', '~', '%', '!', ' ', 'é', '\u0000', '%2F'))
        .map(([at, c]) => {
          const i = at % approve.length;
          return `${approve.slice(0, i)}${c}${approve.slice(i + 1)}`;
        }),
      // The same bytes spelled another way: a different last character whose spare bits differ.
      fc.constantFrom(...alphabet).map((c) => `${approve.slice(0, -1)}${c}`),
      fc.constantFrom('=', '==').map((pad) => `${approve}${pad}`),
      fc.nat().map((n) => approve.slice(0, n % approve.length)),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.base64String({ maxLength: 400 }),
    );
    await fc.assert(
      fc.asyncProperty(change, fc.constantFrom('GET', 'POST'), async (segment, method) => {
        if (segment === approve) return true;
        const before = decided.length;
        const status = await call(method, segment, 'name=mallory');
        return judgeApproval(door, method, status, [403], decided.length - before);
      }),
      { seed: SEED, numRuns: 500 },
    );
    record(task, door.figures());
    expect(door.serverErrors).toBe(0);
    expect(door.invalidEffects).toBe(0);
  });

  it('refuses a link from its deadline on with 403, and decides nothing', async ({ task }) => {
    let clock = new Date();
    const { gate, call, decided } = approvalDoor(() => clock);
    const door = new Door('approval GET/POST: expired links');
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 400 * 24 * 3600 }),
        fc.constantFrom('GET', 'POST'),
        async (late, method) => {
          const { approve, links } = gate(new Date(clock.getTime()));
          clock = new Date(links.expiresAt.getTime() + late * 1000);
          const before = decided.length;
          const status = await call(method, approve, 'name=late');
          clock = new Date();
          return judgeApproval(door, method, status, [403], decided.length - before);
        },
      ),
      { seed: SEED, numRuns: 100 },
    );
    record(task, door.figures());
    expect(door.serverErrors).toBe(0);
    expect(door.invalidEffects).toBe(0);
  });

  it('decides once: a replay after the decision, the other link, and a second POST at the same instant get 409', async ({
    task,
  }) => {
    const { gate, call, decided } = approvalDoor();
    const door = new Door('approval GET/POST: replays and races');
    let duplicated = 0;
    for (let i = 0; i < 50; i += 1) {
      const { approve, reject } = gate();
      const first = await call('POST', i % 2 ? approve : reject, 'name=ada');
      expect(first).toBe(200);
      door.count('approval POST');
      const before = decided.length;
      const replays = await Promise.all([
        call('POST', approve, 'name=ada'),
        call('POST', reject, 'name=bob'),
        call('GET', approve),
      ]);
      for (const [index, status] of replays.entries()) {
        // GET shows the confirmation page and never decides.
        expect(
          judgeApproval(door, index === 2 ? 'GET' : 'POST', status, index === 2 ? [200] : [409], 0),
        ).toBe(true);
      }
      duplicated += decided.length - before;
    }
    for (let i = 0; i < 50; i += 1) {
      const { approve, reject } = gate();
      const before = decided.length;
      const statuses = await Promise.all([
        call('POST', approve, 'name=ada'),
        call('POST', i % 2 ? approve : reject, 'name=bob'),
      ]);
      door.count('approval POST', 2);
      door.serverErrors += statuses.filter((s) => s >= 500).length;
      expect(statuses.sort()).toEqual([200, 409]);
      duplicated += decided.length - before - 1;
    }
    record(task, { ...door.figures(), duplicated });
    expect(duplicated).toBe(0);
    expect(door.serverErrors).toBe(0);
  });

  it('answers other methods with 405, oversized forms with 413 or 400, and decides nothing', async ({
    task,
  }) => {
    const { gate, call, decided } = approvalDoor();
    const door = new Door('approval GET/POST: methods and forms');
    const { approve } = gate();
    const before = decided.length;
    for (const method of ['PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']) {
      expect(
        judgeApproval(door, method, await call(method, approve, 'name=x'), [405], decided.length - before),
      ).toBe(true);
    }
    expect(
      judgeApproval(
        door,
        'POST',
        await call('POST', approve, `comment=${'x'.repeat(17 * 1024)}`),
        [413],
        decided.length - before,
      ),
    ).toBe(true);
    expect(
      judgeApproval(
        door,
        'POST',
        await call('POST', approve, `name=${'n'.repeat(201)}`),
        [400],
        decided.length - before,
      ),
    ).toBe(true);
    expect(
      judgeApproval(
        door,
        'POST',
        await call('POST', approve, `comment=${'c'.repeat(2001)}`),
        [400],
        decided.length - before,
      ),
    ).toBe(true);
    record(task, door.figures());
    expect(door.serverErrors).toBe(0);
  });
});

// ---- the EventBridge handlers ----

const event = (path: string) => JSON.parse(fixture(path)) as Record<string, unknown>;
const eventFiles = (folder: string, pattern: RegExp) =>
  readdirSync(new URL(`../fixtures/${folder}/`, import.meta.url))
    .filter((file) => pattern.test(file))
    .map((file) => event(`${folder}/${file}`));

/** An outcome of an EventBridge handler as the door's status: resolved 200, client error 400, else 500. */
async function outcomeOf(invoke: () => Promise<unknown>): Promise<number> {
  try {
    await invoke();
    return 200;
  } catch (error) {
    return isClientError(error) ? 400 : 500;
  }
}

/** Mutations of real events: a field missing, null, replaced, or an unknown field added. */
function eventMutations(events: Record<string, unknown>[]) {
  return fc
    .constantFrom(...events)
    .chain((original) => {
      const paths = pathsOf(original).filter((p) => p.length > 0);
      return fc.tuple(
        fc.constant(original),
        fc.constantFrom(...paths),
        fc.oneof(
          fc.constant({ delete: true } as const),
          fc.constant({ with: null }),
          fc.jsonValue({ maxDepth: 2 }).map((v) => ({ with: v })),
          fc.string({ unit: 'grapheme', maxLength: 30 }).map((v) => ({ with: v })),
          fc.constant({ extra: true } as const),
        ),
      );
    })
    .map(([original, path, change]) =>
      'extra' in change
        ? {
            ...original,
            detail: { ...(original.detail as object), 'x-unknown-field': { nested: [1, 'two'] } },
            'x-extra': true,
          }
        : mutate(original, path, change),
    );
}

describe('the EventBridge doors', () => {
  it('codecommit: starts a valid run or throws a client error, never anything else', async ({ task }) => {
    const { deps, started } = ingestDeps('codecommit');
    const handler = factories.codecommit(deps) as unknown as EventHandler;
    const door = new Door('eventbridge/codecommit');
    const events = eventFiles('codecommit', /\.json$/);
    await fc.assert(
      fc.asyncProperty(fc.oneof(eventMutations(events), fc.jsonValue({ maxDepth: 3 })), async (input) => {
        const before = started.length;
        const status = await outcomeOf(() => handler(input, lambdaContext('stepline-test-codecommit')));
        const fresh = started.slice(before);
        door.count();
        if (status >= 500) door.serverErrors += 1;
        const bad =
          (status !== 200 && fresh.length > 0) ||
          fresh.some((s) => !ExecutionInputSchema.safeParse(s.input).success);
        if (bad) door.invalidEffects += 1;
        return status < 500 && !bad;
      }),
      { seed: SEED, numRuns: 500 },
    );
    record(task, door.figures());
    expect(door.serverErrors).toBe(0);
    expect(door.invalidEffects).toBe(0);
  });

  it('buildEvents and pipelineEvents: notify for a valid event or throw a client error, never anything else', async ({
    task,
  }) => {
    const published: Notification[] = [];
    const emitted: unknown[] = [];
    const sinks = {
      notifier: { publish: async (n: Notification) => void published.push(n) },
      emitter: { emit: async (m: unknown) => void emitted.push(m) },
      region: 'eu-west-1',
    };
    const sfnEvents = eventFiles('aws-events', /Step-Functions/);
    const stateMachineArn =
      (sfnEvents[0]?.detail as { stateMachineArn: string } | undefined)?.stateMachineArn ?? '';
    const doors = [
      {
        door: new Door('eventbridge/buildEvents'),
        handler: factories.buildEvents({
          ...sinks,
          logger: createLogger('buildEvents'),
        }) as unknown as EventHandler,
        events: eventFiles('aws-events', /[Cc]ode[Bb]uild/),
      },
      {
        door: new Door('eventbridge/pipelineEvents'),
        handler: factories.pipelineEvents({
          ...sinks,
          ledger: recordingLedger().ledger,
          logger: createLogger('pipelineEvents'),
          stateMachineArn,
        }) as unknown as EventHandler,
        events: sfnEvents,
      },
    ];
    for (const { door, handler, events } of doors) {
      await fc.assert(
        fc.asyncProperty(fc.oneof(eventMutations(events), fc.jsonValue({ maxDepth: 3 })), async (input) => {
          const before = published.length + emitted.length;
          const status = await outcomeOf(() => handler(input, lambdaContext('stepline-test-events')));
          door.count();
          if (status >= 500) door.serverErrors += 1;
          const bad = status !== 200 && published.length + emitted.length > before;
          if (bad) door.invalidEffects += 1;
          return status < 500 && !bad;
        }),
        { seed: SEED, numRuns: 500 },
      );
      record(task, door.figures());
      expect(door.serverErrors, door.name).toBe(0);
      expect(door.invalidEffects, door.name).toBe(0);
    }
  });
});
