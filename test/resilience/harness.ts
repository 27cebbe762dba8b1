import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { terminalLine } from '#local/cli/terminal.ts';
import { readControlToken } from '#local/http/control-token.ts';
import { startServer } from '#local/http/server.ts';
import type { RuntimeEvent } from '#local/runs/runtime-event.ts';
import { LocalRuntime } from '#local/runtime.ts';
import { readWiring, type Wiring } from '#local/wiring.ts';

/**
 * What the resilience suite drives the local mode with: a git repository of the fixture app, GitHub push
 * deliveries signed like the provider signs them, the local runtime (in this process, or the CLI as its
 * own process), and waits that wake on the store's changes instead of sleeping.
 */

const run = promisify(execFile);

export const PROJECT_DIR = fileURLToPath(new URL('../../', import.meta.url));
export const ECHO_APP_DIR = fileURLToPath(new URL('./fixtures/echo-app/', import.meta.url));
export const FIXTURES_DIR = fileURLToPath(new URL('./fixtures/', import.meta.url));
export const ZERO_SHA = '0'.repeat(40);

/** Every branch and every tag starts a run. */
export const ANY_REF_TRIGGERS = `triggers=${JSON.stringify({
  push: [{ branches: { includes: ['**'] } }, { tags: { includes: ['**'] } }],
})}`;

/**
 * The `settings=` parameter for these environments. The echo app has no tests: its runs skip the Test stage
 * (`test: false`), and the suite measures the stages after it.
 */
export function settingsParam(environments: { name: string; approval?: boolean }[]): string {
  return `settings=${JSON.stringify({ environments, test: false })}`;
}

// ---- the fixture app's repository ----

const GIT_IDENTITY = [
  '-c',
  'user.name=resilience',
  '-c',
  'user.email=resilience@localhost',
  '-c',
  'commit.gpgSign=false',
  '-c',
  'core.hooksPath=/dev/null',
];

async function git(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await run('git', args, cwd === undefined ? {} : { cwd });
  return stdout.trim();
}

/** A working repository holding the echo app; builds clone it by path. */
export interface AppRepo {
  path: string;
  fullName: string;
  /** Writes files (path relative to the repository → content) and commits them; resolves with the SHA. */
  commit(files?: Record<string, string>, message?: string): Promise<string>;
}

export async function createAppRepo(dir: string, fullName = 'resilience/echo-app'): Promise<AppRepo> {
  await mkdir(dir, { recursive: true });
  await cp(ECHO_APP_DIR, dir, { recursive: true });
  await git(['init', '--quiet', dir]);
  await git(['symbolic-ref', 'HEAD', 'refs/heads/main'], dir);
  let count = 0;
  const repo: AppRepo = {
    path: dir,
    fullName,
    commit: async (files = {}, message) => {
      for (const [file, content] of Object.entries(files)) {
        await mkdir(dirname(join(dir, file)), { recursive: true });
        await writeFile(join(dir, file), content);
      }
      count += 1;
      await git(['add', '--all', '.'], dir);
      await git(
        [...GIT_IDENTITY, 'commit', '--quiet', '--allow-empty', '-m', message ?? `Change ${count}`],
        dir,
      );
      return git(['rev-parse', 'HEAD'], dir);
    },
  };
  await repo.commit({}, 'The echo app');
  return repo;
}

// ---- deliveries ----

/** A GitHub `push` payload for a commit of the fixture repository, as the provider sends it. */
export function githubPushPayload(options: {
  repo: AppRepo;
  after: string;
  ref?: string;
  before?: string;
  message?: string;
}): Record<string, unknown> {
  const message = options.message ?? 'Change';
  return {
    ref: options.ref ?? 'refs/heads/main',
    before: options.before ?? ZERO_SHA,
    after: options.after,
    created: options.before === undefined,
    deleted: false,
    forced: false,
    commits: [{ id: options.after, message, added: [], modified: ['mode'], removed: [] }],
    head_commit: { id: options.after, message },
    repository: {
      name: options.repo.fullName.split('/').pop(),
      full_name: options.repo.fullName,
      clone_url: options.repo.path,
      default_branch: 'main',
    },
    pusher: { name: 'resilience' },
  };
}

export function hubSignature(body: string | Buffer, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** The headers GitHub sends with a push delivery, signed with `secret`. */
export function githubHeaders(body: string, secret: string, deliveryId?: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'x-github-event': 'push',
    'x-github-delivery': deliveryId ?? randomUUID(),
    'x-hub-signature-256': hubSignature(body, secret),
  };
}

export interface Answer {
  status: number;
  text: string;
  json: unknown;
}

// ---- the control token ----

/** The control token of each local server the suite started, by origin (`http://127.0.0.1:port`). */
const controlTokens = new Map<string, string>();

/** Remembers the control token of the stepline at `url`, so that requests to it carry it. */
function rememberControlToken(url: string, token: string): void {
  controlTokens.set(new URL(url).origin, token);
}

/**
 * `init` with the control token of the stepline `url` points at, sent as the CLI sends it
 * (`Authorization: Bearer`), unless `init` names its own `authorization` (or is sent `anonymous`).
 */
export function withControlToken(url: string, init: RequestInit = {}, anonymous = false): RequestInit {
  const token = URL.canParse(url) ? controlTokens.get(new URL(url).origin) : undefined;
  const headers = new Headers(init.headers);
  if (token === undefined || anonymous || headers.has('authorization')) return init;
  headers.set('authorization', `Bearer ${token}`);
  return { ...init, headers };
}

/**
 * Sends a request and reads its answer. A request to a stepline the suite started carries its control
 * token, as the CLI's do; `anonymous` sends it without (as a build or another program would).
 */
export async function send(url: string, init: RequestInit = {}, anonymous = false): Promise<Answer> {
  const response = await fetch(url, withControlToken(url, init, anonymous));
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json };
}

/** Posts a signed GitHub push of `after` to the local server. */
export function pushTo(
  baseUrl: string,
  secret: string,
  options: Parameters<typeof githubPushPayload>[0] & { deliveryId?: string },
): Promise<Answer> {
  const body = JSON.stringify(githubPushPayload(options));
  return send(`${baseUrl}/webhooks/github`, {
    method: 'POST',
    headers: githubHeaders(body, secret, options.deliveryId),
    body,
  });
}

// ---- the local mode in this process ----

const wirings = new Map<string, Promise<Wiring>>();

/** The wiring `serverless print` resolves for these parameters, read once per test file. */
export function wiringFor(params: string[]): Promise<Wiring> {
  const key = JSON.stringify(params);
  let wiring = wirings.get(key);
  if (!wiring) {
    wiring = readWiring(PROJECT_DIR, { params });
    wirings.set(key, wiring);
  }
  return wiring;
}

export interface Local {
  runtime: LocalRuntime;
  url: string;
  stateDir: string;
  /** The terminal lines the runtime reported (what `npm start` prints). */
  lines: string[];
  /** Resolves with `check()`'s first defined value, re-checking at every store change and report. */
  until<T>(check: () => T | undefined, what: string, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

/**
 * Starts the local server and runtime in this process on a free port, as `npm start` does, with the
 * wiring of `params`. `buildTimeoutsMinutes` overrides projects' TimeoutInMinutes.
 */
export async function startLocal(options: {
  stateDir: string;
  params: string[];
  buildTimeoutsMinutes?: Record<string, number>;
}): Promise<Local> {
  const wiring = await wiringFor(options.params);
  const listeners = new Set<() => void>();
  const lines: string[] = [];
  const report = (event: RuntimeEvent) => {
    const line = terminalLine(event, options.stateDir);
    if (line) lines.push(line);
    for (const listener of listeners) listener();
  };
  const server = await startServer({ port: 0 });
  const runtime = await LocalRuntime.start({
    projectDir: PROJECT_DIR,
    stateDir: options.stateDir,
    baseUrl: server.url,
    report,
    wiring: {
      ...wiring,
      buildTimeouts: { ...wiring.buildTimeouts, ...options.buildTimeoutsMinutes },
    },
  });
  server.attach(runtime);
  rememberControlToken(server.url, runtime.controlToken);
  let stopped: Promise<void> | undefined;
  return {
    runtime,
    url: server.url,
    stateDir: options.stateDir,
    lines,
    until: (check, what, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        let unsubscribe: () => void = () => undefined;
        const settle = () => {
          const value = check();
          if (value === undefined) return false;
          clearTimeout(timer);
          listeners.delete(onChange);
          unsubscribe();
          resolve(value);
          return true;
        };
        const onChange = () => void settle();
        const timer = setTimeout(() => {
          listeners.delete(onChange);
          unsubscribe();
          reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        if (settle()) return;
        listeners.add(onChange);
        unsubscribe = runtime.store.subscribe(onChange);
      }),
    stop: () => {
      stopped ??= (async () => {
        await runtime.stop();
        await server.close();
      })();
      return stopped;
    },
  };
}

// ---- the CLI as its own process ----

export interface CliProcess {
  url: string;
  child: ChildProcess;
  output(): string;
  /** Resolves with the exit code or signal once the process has exited. */
  exited: Promise<number | NodeJS.Signals | null>;
}

/**
 * Makes `<stateDir>/git/hello-service.git` exist with a `main` branch, so `stepline start` finds the sample
 * app's remote already pushed and starts no run of its own: the suite's runs are the only ones.
 */
async function seedSampleRemote(stateDir: string): Promise<void> {
  const remote = join(stateDir, 'git', 'hello-service.git');
  await mkdir(remote, { recursive: true });
  await git(['init', '--quiet', '--bare', remote]);
  // git knows the empty tree without storing it.
  const emptyTree = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';
  const commit = await git([...GIT_IDENTITY, '--git-dir', remote, 'commit-tree', emptyTree, '-m', 'seed']);
  await git(['--git-dir', remote, 'update-ref', 'refs/heads/main', commit]);
}

/** Starts `stepline start --port 0` as its own process and resolves once it prints its URL. */
export async function startCli(options: {
  stateDir: string;
  params: string[];
  env?: Record<string, string>;
}): Promise<CliProcess> {
  await mkdir(options.stateDir, { recursive: true });
  await seedSampleRemote(options.stateDir);
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('STEPLINE_')) env[name] = value;
  }
  const child = spawn(
    process.execPath,
    [
      join(PROJECT_DIR, 'local', 'cli', 'main.ts'),
      'start',
      '--port',
      '0',
      '--state-dir',
      options.stateDir,
      ...options.params.flatMap((param) => ['--param', param]),
    ],
    { cwd: PROJECT_DIR, env: { ...env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const match = /stepline is running at (http:\/\/\S+)/.exec(output);
      if (match?.[1]) resolve(match[1]);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then((code) =>
      reject(new Error(`stepline exited (${String(code)}) before it ran:\n${output}`)),
    );
  });
  // Written before it says it runs; read as the CLI reads it.
  const token = await readControlToken(options.stateDir);
  if (token === undefined)
    throw new Error(`stepline at ${url} wrote no control token in ${options.stateDir}`);
  rememberControlToken(url, token);
  return { url, child, output: () => output, exited };
}

/**
 * Resolves with `check()`'s first defined value, re-checking at every change the server's event stream
 * (GET /api/events) announces.
 */
export async function untilApi<T>(
  baseUrl: string,
  check: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)),
    timeoutMs,
  );
  try {
    const response = await fetch(
      `${baseUrl}/api/events`,
      withControlToken(baseUrl, { signal: controller.signal }),
    );
    const reader = response.body?.getReader();
    if (!reader) throw new Error('The event stream has no body');
    for (;;) {
      const value = await check();
      if (value !== undefined) return value;
      const { done } = await reader.read();
      if (done) throw new Error(`The event stream ended while waiting for ${what}`);
    }
  } catch (error) {
    if (controller.signal.aborted) throw controller.signal.reason;
    throw error;
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

export async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, withControlToken(url));
  if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`);
  return (await response.json()) as T;
}

/** A run as `GET /api/runs` answers. */
export type { RunSummary } from '#local/runs/read-model.ts';

// ---- files ----

/** Every file under `dir` (recursively), as paths relative to it. */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

export async function readText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}

/** Where any of `secrets` occurs in `texts`: one `place: secret name` per occurrence found. */
export function findSecrets(
  texts: { place: string; text: string }[],
  secrets: { name: string; value: string }[],
): string[] {
  const found: string[] = [];
  for (const { place, text } of texts) {
    for (const secret of secrets) {
      if (secret.value !== '' && text.includes(secret.value)) found.push(`${place}: ${secret.name}`);
    }
  }
  return found;
}

/** True while a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
