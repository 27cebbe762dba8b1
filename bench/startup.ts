import { spawn } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { enableCompileCache, flushCompileCache } from '#local/cli/compile-cache.ts';
import type { Wiring } from '#local/wiring.ts';
import { type BenchSection, median } from './table.ts';

/**
 * How long the local mode takes to start, as `npm start` composes it (a new Node process loading the
 * runtime, reading the wiring, opening the state folder), against the floor of a bare `node -e 0`:
 * with a cold wiring cache, a warm one, and with 1,000 stored runs against an empty state folder.
 * Each start is a fresh process started with `--runtime` (this file), timed from spawn to its "ready".
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const FLOOR_RUNS = 7;
const COLD_RUNS = 3;
const WARM_RUNS = 7;
const STORED_RUNS = 1000;
/** Generous: the machine may be shared, and a cold start runs `serverless print`. */
const START_DEADLINE_MS = 300_000;

/** Runs `node <args>` and resolves with the ms from spawn until it prints `ready` (or exits, for the floor). */
function timeProcess(args: string[], untilReady: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const before = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`No start within ${START_DEADLINE_MS} ms:\n${output}`));
    }, START_DEADLINE_MS);
    let readyAfter: number | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (untilReady && readyAfter === undefined && output.includes('ready\n')) {
        readyAfter = performance.now() - before;
        // Ended at once: how it stops is not what is measured; the next start takes over its stale lock.
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (readyAfter !== undefined) resolve(readyAfter);
      else if (!untilReady && code === 0) resolve(performance.now() - before);
      else reject(new Error(`The process exited (${code}) before it was ready:\n${output}`));
    });
  });
}

/**
 * Starts a runtime over `stateDir` in a new process; the ms until it is ready (the process is then ended).
 * With `wiringFile`, the runtime is given that wiring instead of reading it (as the state comparison does,
 * so that `serverless print` weighs on neither side).
 */
async function timeStart(stateDir: string, wiringFile?: string): Promise<number> {
  const args = [fileURLToPath(import.meta.url), '--runtime', stateDir];
  return timeProcess(wiringFile ? [...args, wiringFile] : args, true);
}

/** Removes whatever wiring cache the runtime kept in the state folder (files other than executions etc.). */
async function clearWiringCache(stateDir: string): Promise<void> {
  for (const entry of await readdir(stateDir).catch(() => [] as string[])) {
    if (entry.startsWith('wiring')) await rm(join(stateDir, entry), { recursive: true, force: true });
  }
}

/**
 * A finished pipeline run as the local mode leaves it on disk: its record, a history of ~17 events, the
 * webhook delivery that started it (deliveries.jsonl) and the 4 notifications it published (outbox).
 */
async function writeStoredRun(stateDir: string, index: number): Promise<void> {
  const name = `push-${String(index).padStart(5, '0')}-0123456789abcdef`;
  const folder = join(stateDir, 'executions', name);
  await mkdir(folder, { recursive: true });
  const start = Date.UTC(2026, 0, 1) + index * 60_000;
  const at = (second: number) => new Date(start + second * 1000).toISOString();
  const input = {
    push: { provider: 'github', repo: 'acme/app', ref: 'refs/heads/main', after: 'a'.repeat(40) },
    source: { url: 'file:///tmp/remote.git', commit: 'a'.repeat(40) },
    settings: { environments: [{ name: 'dev' }, { name: 'prod' }] },
  };
  const record = {
    executionArn: `arn:aws:states:us-east-1:000000000000:execution:stepline-local-pipeline:${name}`,
    name,
    stateMachine: 'pipeline',
    status: 'SUCCEEDED',
    input,
    output: { ok: true },
    startDate: at(0),
    stopDate: at(30),
  };
  const events: Record<string, unknown>[] = [
    { type: 'ExecutionStarted', timestamp: at(0), stateMachine: 'pipeline', input },
  ];
  for (const [step, state] of ['Prepare', 'Test', 'Image', 'DeployDev', 'DeployProd'].entries()) {
    events.push({ type: 'StateEntered', timestamp: at(step * 5), state, stateType: 'Task' });
    events.push({
      type: 'BuildStateChanged',
      timestamp: at(step * 5 + 1),
      build: {
        id: `${state}:${index}`,
        project: `stepline-local-${state.toLowerCase()}`,
        stage: state,
        status: 'SUCCEEDED',
        startTime: start,
        endTime: start + 4000,
        logPath: `/tmp/builds/${state}-${index}.log`,
        logUrl: `http://127.0.0.1:4700/api/builds/${state}/log`,
        exportedVariables: [{ Name: 'IMAGE_TAG', Value: 'a'.repeat(12) }],
        phases: ['SUBMITTED', 'INSTALL', 'PRE_BUILD', 'BUILD', 'POST_BUILD', 'COMPLETED'].map((phase) => ({
          PhaseType: phase,
          PhaseStatus: 'SUCCEEDED',
          StartTime: start,
          EndTime: start + 500,
          DurationInSeconds: 0,
        })),
        reports: [],
      },
    });
    events.push({
      type: 'StateExited',
      timestamp: at(step * 5 + 4),
      state,
      stateType: 'Task',
      output: input,
    });
  }
  events.push({ type: 'ExecutionSucceeded', timestamp: at(30), output: { ok: true } });
  const history = events.map((event, id) => `${JSON.stringify({ id: id + 1, ...event })}\n`).join('');
  await writeFile(join(folder, 'history.jsonl'), history);
  await writeFile(join(folder, 'execution.json'), `${JSON.stringify(record, null, 2)}\n`);
  const delivery = {
    type: 'DeliveryReceived',
    id: `delivery-${index}`,
    receivedAt: at(0),
    provider: 'github',
    headers: { 'x-github-event': 'push', 'x-github-delivery': `delivery-${index}` },
    // A push payload is a few kilobytes (commits, repository, pusher).
    body: JSON.stringify({ ref: 'refs/heads/main', after: 'a'.repeat(40), padding: 'x'.repeat(6000) }),
  };
  const answered = {
    type: 'DeliveryAnswered',
    id: delivery.id,
    answeredAt: at(0),
    response: { status: 202, body: {} },
  };
  await appendFile(
    join(stateDir, 'deliveries.jsonl'),
    `${JSON.stringify(delivery)}\n${JSON.stringify(answered)}\n`,
  );
  for (let message = 0; message < 4; message += 1) {
    const createdAt = at(message * 8);
    const id = `${String(index).padStart(8, '0')}-0000-4000-8000-00000000000${message}`;
    const stored = {
      id,
      topic: 'notifications',
      subject: `Run ${name}: stage ${message}`,
      body: 'x'.repeat(600),
      createdAt,
      executionArn: record.executionArn,
    };
    const base = join(stateDir, 'outbox', `${createdAt.replaceAll(':', '-')}-${id}`);
    await writeFile(`${base}.eml`, `Subject: ${stored.subject}\r\n\r\n${stored.body}\r\n`);
    await writeFile(`${base}.json`, `${JSON.stringify(stored, null, 2)}\n`);
  }
}

async function medianOf(runs: number, measure: () => Promise<number>): Promise<number> {
  const times: number[] = [];
  for (let run = 0; run < runs; run += 1) times.push(await measure());
  return median(times);
}

/** The start-up figures: floor, cold and warm wiring cache, empty state against 1,000 stored runs. */
export async function startup(): Promise<BenchSection> {
  const dir = await mkdtemp(join(tmpdir(), 'stepline-bench-startup-'));
  try {
    const floor = await medianOf(FLOOR_RUNS, () => timeProcess(['-e', '0'], false));
    const empty = join(dir, 'empty');
    const cold = await medianOf(COLD_RUNS, async () => {
      await clearWiringCache(empty);
      return timeStart(empty);
    });
    const warm = await medianOf(WARM_RUNS, () => timeStart(empty));
    const stored = join(dir, 'stored');
    await mkdir(join(stored, 'executions'), { recursive: true });
    await mkdir(join(stored, 'outbox'), { recursive: true });
    for (let index = 0; index < STORED_RUNS; index += 1) await writeStoredRun(stored, index);
    const wiringFile = join(dir, 'wiring.json');
    const { readWiring } = await import('#local/wiring.ts');
    await writeFile(wiringFile, JSON.stringify(await readWiring(ROOT)));
    const given = join(dir, 'given');
    await timeStart(given, wiringFile);
    await timeStart(stored, wiringFile); // the first open of the generated folder (nothing to repair)
    // Alternate the two folders so that a busy moment of the machine weighs on both alike.
    const emptyTimes: number[] = [];
    const storedTimes: number[] = [];
    for (let run = 0; run < WARM_RUNS; run += 1) {
      emptyTimes.push(await timeStart(given, wiringFile));
      storedTimes.push(await timeStart(stored, wiringFile));
    }
    const withEmpty = median(emptyTimes);
    const withStored = median(storedTimes);
    const row = (label: string, ms: number) => [label, `${ms.toFixed(0)} ms`, `${(ms / floor).toFixed(1)}×`];
    return {
      title: 'Local start-up (spawn → runtime ready)',
      columns: ['start', 'time', '× floor'],
      rows: [
        row('node -e 0 (floor)', floor),
        row('cold wiring cache, empty state', cold),
        row('warm wiring cache, empty state', warm),
        row('wiring given, empty state', withEmpty),
        row(`wiring given, ${STORED_RUNS} stored runs`, withStored),
      ],
      notes: [
        `medians: floor of ${FLOOR_RUNS}, cold of ${COLD_RUNS}, warm of ${WARM_RUNS}; the "wiring given" rows alternate the two folders`,
        `${STORED_RUNS} stored runs: ${((withStored / withEmpty - 1) * 100).toFixed(1)}% over the empty state (aim: within 10%)`,
        'a start is a new process that loads the runtime, reads the wiring and opens the state folder',
      ],
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The child process: start a runtime over the state folder, say "ready", stay until killed. */
async function runtimeProcess(stateDir: string, wiringFile: string | undefined): Promise<void> {
  // As `stepline start` does (local/cli/main.ts): the caches first, then the runtime's modules.
  enableCompileCache();
  const { LocalRuntime } = await import('#local/runtime.ts');
  await mkdir(stateDir, { recursive: true });
  const wiring = wiringFile ? (JSON.parse(await readFile(wiringFile, 'utf8')) as Wiring) : undefined;
  await LocalRuntime.start({
    projectDir: ROOT,
    stateDir,
    baseUrl: 'http://127.0.0.1:0',
    ...(wiring ? { wiring } : {}),
  });
  process.stdout.write('ready\n');
  flushCompileCache();
  setInterval(() => undefined, 60_000);
}

if (process.argv[2] === '--runtime' && process.argv[3])
  await runtimeProcess(process.argv[3], process.argv[4]);
