import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createLocalRemote } from '#local/git/remote.ts';
import { startServer } from '#local/http/server.ts';
import { LocalRuntime, type RuntimeEvent } from '#local/runtime.ts';
import { readWiring, type Wiring } from '#local/wiring.ts';
import { type FloorSample, Floors } from './floors.ts';
import { type BenchSection, median } from './table.ts';

/**
 * The local mode measured end to end with builds that take no time (bench/fixtures/trivial-app): what
 * a push costs until the first build command runs, what the pipeline around the commands costs per run,
 * and 20 pushes at once. The runtime runs in a child process of the bench (this file, started with
 * `--runtime`), exactly as `npm start` composes it (local server + LocalRuntime); the bench drives it
 * with real `git push`es and hears, over the IPC channel, timestamps taken in the runtime's process.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/trivial-app/', import.meta.url));
const WARM_UP_RUNS = 1;
const MEASURED_RUNS = 7;
const CONCURRENT_PUSHES = 20;
const RUN_DEADLINE_MS = 60_000;
const CONCURRENT_DEADLINE_MS = 120_000;
const RSS_SAMPLE_MS = 100;
/** Aims as ratios to the floors measured in the same run (bench/floors.ts), and one in MB. */
const AIMS = { pushToFirstOutput: 2, overheadPerStage: 1.5, concurrentRssMb: 300 };

/** Every push starts a run; two environments, no approval, so a run goes to its end unattended. */
const PARAMS = [
  `triggers=${JSON.stringify({ push: [{ branches: { includes: ['**'] } }] })}`,
  `settings=${JSON.stringify({ environments: [{ name: 'dev' }, { name: 'prod' }] })}`,
];

/** The environment before other sections ran (the webhook section sets dummy AWS variables in-process). */
const HOST_ENV = { ...process.env };

/** What the runtime's process tells the bench, each with the runtime's own clock (`Date.now()`). */
type Probe =
  | { type: 'ready'; url: string; remotePath: string; startMs: number; cpu: CpuTime }
  | { type: 'post'; at: number; after: string; ref: string }
  | { type: 'recorded'; at: number; after: string }
  | { type: 'start-call'; at: number; name: string }
  | { type: 'start-result'; at: number; name: string; outcome: string }
  | { type: 'execution-started'; at: number; arn: string; name: string; after: string; ref: string }
  | {
      type: 'execution-ended';
      at: number;
      arn: string;
      name: string;
      after: string;
      ref: string;
      status: string;
      startDate: string;
      stopDate: string;
    }
  | { type: 'build-started'; at: number; arn: string; buildId: string; project: string; logPath: string }
  | { type: 'phase'; buildId: string; phase: string; start: number; end: number }
  | { type: 'build-ended'; at: number; buildId: string; status: string }
  | { type: 'first-command'; at: number; buildId: string }
  | { type: 'first-output'; at: number; buildId: string }
  | {
      type: 'report';
      cpu: CpuTime;
      vmHwmKb: number | undefined;
      maxRssKb: number;
      deliveries: (number | null)[];
      executions: { name: string; status: string; ref: string; stateEntered: number }[];
    };

type ProbeOf<T extends Probe['type']> = Extract<Probe, { type: T }>;

/** CPU time so far, in ms: this process's, and its finished children's (build shells, git). */
interface CpuTime {
  self: number;
  children: number;
}

// ---------------------------------------------------------------------------------------------------
// The runtime's process
// ---------------------------------------------------------------------------------------------------

/** `VmHWM` of /proc/self/status (peak resident set), in KiB; undefined where there is no /proc. */
function peakRssKb(): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match?.[1] ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function cpuTime(): CpuTime {
  const { user, system } = process.cpuUsage();
  let children = 0;
  try {
    // /proc/self/stat after the command name: field 3 (state) first; cutime and cstime are fields 16 and 17,
    // in clock ticks (USER_HZ, 100 a second on Linux).
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    children = (Number(fields[13]) + Number(fields[14])) * 10;
  } catch {
    // No /proc: children's time unknown.
  }
  return { self: (user + system) / 1000, children };
}

/** The runtime as `npm start` composes it, instrumented: run in the child process. */
async function runtimeProcess(stateDir: string, wiringFile: string): Promise<void> {
  const send = (probe: Probe) => process.send?.(probe);
  const wiring = JSON.parse(await readFile(wiringFile, 'utf8')) as Wiring;
  // The image builds whose log is watched for their first command and its first line of output.
  const watched = new Map<string, { path: string; offset: number; rest: string; commandAt?: number }>();

  const report = (event: RuntimeEvent) => {
    const at = Date.now();
    if (event.kind === 'execution') {
      const { record } = event;
      const push = (record.input as { push: { after: string; ref: string } }).push;
      const common = { at, arn: record.executionArn, name: record.name, after: push.after, ref: push.ref };
      if (record.status === 'RUNNING') send({ type: 'execution-started', ...common });
      else
        send({
          type: 'execution-ended',
          ...common,
          status: record.status,
          startDate: record.startDate,
          stopDate: record.stopDate ?? new Date(at).toISOString(),
        });
    } else if (event.kind === 'build') {
      const { build } = event.event;
      if (event.event.kind === 'phase') {
        const { phase } = event.event;
        send({
          type: 'phase',
          buildId: build.Id,
          phase: phase.name,
          start: phase.start.getTime(),
          end: phase.end.getTime(),
        });
      } else if (event.event.status === 'IN_PROGRESS') {
        if (build.ProjectName.endsWith('-image'))
          watched.set(build.Id, { path: event.logPath, offset: 0, rest: '' });
        send({
          type: 'build-started',
          at,
          arn: event.executionArn ?? '',
          buildId: build.Id,
          project: build.ProjectName,
          logPath: event.logPath,
        });
      } else {
        send({ type: 'build-ended', at, buildId: build.Id, status: event.event.status });
      }
    }
  };

  const server = await startServer({ port: 0 });
  const startedAt = performance.now();
  const runtime = await LocalRuntime.start({
    projectDir: ROOT,
    stateDir,
    baseUrl: server.url,
    wiring,
    report,
  });
  const startMs = performance.now() - startedAt;
  server.attach(runtime);
  const { store, engine } = runtime;

  // The log is written line by line, synchronously, before the change is announced: reading it in the
  // listener gives the moment each line reached the log.
  store.subscribe((change) => {
    const log = change.kind === 'log' ? watched.get(change.id) : undefined;
    if (!log) return;
    const at = Date.now();
    const fd = openSync(log.path, 'r');
    const size = fstatSync(fd).size;
    const bytes = Buffer.alloc(size - log.offset);
    readSync(fd, bytes, 0, bytes.length, log.offset);
    closeSync(fd);
    log.offset = size;
    const lines = (log.rest + bytes.toString('utf8')).split('\n');
    log.rest = lines.pop() ?? '';
    for (const line of lines) {
      if (log.commandAt === undefined && /^\[Container\] \S+ \S+ Running command /.test(line)) {
        log.commandAt = at;
        send({ type: 'first-command', at, buildId: change.id });
      } else if (log.commandAt !== undefined && !line.startsWith('[Container]')) {
        send({ type: 'first-output', at, buildId: change.id });
        watched.delete(change.id);
        return;
      }
    }
  });
  const recordDelivery = store.recordDelivery.bind(store);
  store.recordDelivery = async (delivery) => {
    const push = JSON.parse(delivery.body) as { after?: string; ref?: string };
    const after = push.after ?? '';
    send({ type: 'post', at: Date.now(), after, ref: push.ref ?? '' });
    await recordDelivery(delivery);
    send({ type: 'recorded', at: Date.now(), after });
  };
  // Every StartExecution the webhook handler makes reaches the engine here.
  const start = engine.start.bind(engine);
  engine.start = async (key, name, input, redriveOf) => {
    send({ type: 'start-call', at: Date.now(), name });
    try {
      const record = await start(key, name, input, redriveOf);
      send({ type: 'start-result', at: Date.now(), name, outcome: 'started' });
      return record;
    } catch (error) {
      send({ type: 'start-result', at: Date.now(), name, outcome: (error as Error).name });
      throw error;
    }
  };

  const { remotePath } = await createLocalRemote({
    stateDir,
    name: 'trivial-app',
    webhookUrl: `${server.url}/webhooks/github`,
  });
  process.on('message', async (message: { type?: string }) => {
    if (message.type !== 'stop') return;
    const executions = store.executions().map((record) => ({
      name: record.name,
      status: record.status,
      ref: (record.input as { push: { ref: string } }).push.ref,
      stateEntered: store.history(record.executionArn).filter((event) => event.type === 'StateEntered')
        .length,
    }));
    const deliveries = store.deliveries().map((delivery) => delivery.response?.status ?? null);
    await runtime.stop();
    await server.close();
    const probe: Probe = {
      type: 'report',
      cpu: cpuTime(),
      vmHwmKb: peakRssKb(),
      maxRssKb: process.resourceUsage().maxRSS,
      deliveries,
      executions,
    };
    process.send?.(probe, () => process.exit(0));
  });
  send({ type: 'ready', url: server.url, remotePath, startMs, cpu: cpuTime() });
}

// ---------------------------------------------------------------------------------------------------
// The bench's side: git, the child process, the figures
// ---------------------------------------------------------------------------------------------------

const exec = promisify(execFile);
const GIT_IDENTITY = [
  '-c',
  'user.name=stepline bench',
  '-c',
  'user.email=bench@localhost',
  '-c',
  'commit.gpgSign=false',
  '-c',
  'core.hooksPath=/dev/null',
];

function gitEnvironment(): NodeJS.ProcessEnv {
  const env = { ...HOST_ENV };
  for (const name of Object.keys(env)) if (name.startsWith('GIT_')) delete env[name];
  return env;
}

async function git(cwd: string, args: string[]): Promise<string> {
  const { stdout } = await exec('git', [...GIT_IDENTITY, ...args], { cwd, env: gitEnvironment() });
  return stdout.trim();
}

/** A working clone holding the fixture app in one commit, with the local remote as origin. */
async function workingClone(dir: string, remotePath: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await git(dir, ['init', '--quiet']);
  await cp(FIXTURE, dir, { recursive: true });
  await git(dir, ['add', '--all', '.']);
  await git(dir, ['commit', '--quiet', '-m', 'trivial-app']);
  await git(dir, ['remote', 'add', 'origin', remotePath]);
}

let wiringOnce: Promise<{ wiring: Wiring; printMs: number }> | undefined;

/** serverless.yml's wiring with the bench's parameters, read once (`serverless print` takes seconds). */
function benchWiring(): Promise<{ wiring: Wiring; printMs: number }> {
  wiringOnce ??= (async () => {
    const before = performance.now();
    const wiring = await readWiring(ROOT, { params: PARAMS });
    return { wiring, printMs: performance.now() - before };
  })();
  return wiringOnce;
}

/** The runtime's process, seen from the bench: its probes as they come, and a way to wait for one. */
class RuntimeChild {
  readonly probes: Probe[] = [];
  readonly child: ChildProcess;
  readonly dir: string;
  #output = '';
  #waiters = new Set<() => void>();
  #exited: { code: number | null } | undefined;

  private constructor(child: ChildProcess, dir: string) {
    this.child = child;
    this.dir = dir;
    child.on('message', (probe: Probe) => {
      this.probes.push(probe);
      for (const wake of this.#waiters) wake();
    });
    const keep = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString('utf8')).slice(-8000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('exit', (code) => {
      this.#exited = { code };
      for (const wake of this.#waiters) wake();
    });
  }

  /** Starts the runtime in a new process over a fresh state folder under `dir`. */
  static async start(dir: string): Promise<{ runtime: RuntimeChild; spawnToReadyMs: number }> {
    const { wiring } = await benchWiring();
    const wiringFile = join(dir, 'wiring.json');
    await writeFile(wiringFile, JSON.stringify(wiring));
    const before = Date.now();
    const child = spawn(
      process.execPath,
      [fileURLToPath(import.meta.url), '--runtime', join(dir, 'state'), wiringFile],
      { cwd: ROOT, env: HOST_ENV, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
    );
    const runtime = new RuntimeChild(child, dir);
    await runtime.next('ready', () => true, 30_000);
    return { runtime, spawnToReadyMs: Date.now() - before };
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  ready(): ProbeOf<'ready'> {
    return this.all('ready')[0] as ProbeOf<'ready'>;
  }

  all<T extends Probe['type']>(type: T, where: (probe: ProbeOf<T>) => boolean = () => true): ProbeOf<T>[] {
    return this.probes.filter(
      (probe): probe is ProbeOf<T> => probe.type === type && where(probe as ProbeOf<T>),
    );
  }

  /** Waits for the first probe of `type` that satisfies `where`. */
  async next<T extends Probe['type']>(
    type: T,
    where: (probe: ProbeOf<T>) => boolean,
    timeoutMs: number,
  ): Promise<ProbeOf<T>> {
    return this.until(() => this.all(type, where)[0], timeoutMs, `a ${type} probe`);
  }

  async until<R>(found: () => R | undefined, timeoutMs: number, what: string): Promise<R> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = found();
      if (result !== undefined) return result;
      if (this.#exited)
        throw new Error(
          `The runtime's process exited (${this.#exited.code}) before ${what}:\n${this.#output}`,
        );
      if (Date.now() > deadline) throw new Error(`No ${what} within ${timeoutMs} ms:\n${this.#output}`);
      const { promise, resolve } = Promise.withResolvers<void>();
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()) + 1);
      this.#waiters.add(resolve);
      await promise;
      clearTimeout(timer);
      this.#waiters.delete(resolve);
    }
  }

  /** Stops the runtime (runs, store, server) and returns its last report. */
  async stop(): Promise<ProbeOf<'report'>> {
    this.child.send({ type: 'stop' });
    const report = await this.next('report', () => true, 30_000);
    await this.until(() => this.#exited, 10_000, 'its exit');
    return report;
  }

  kill(): void {
    if (!this.#exited) this.child.kill('SIGKILL');
  }
}

/** Runs `work` with a fresh runtime process in a temporary folder, removed afterwards. */
async function withRuntime<T>(
  work: (runtime: RuntimeChild, dir: string, spawnToReadyMs: number) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'stepline-bench-'));
  let runtime: RuntimeChild | undefined;
  try {
    const started = await RuntimeChild.start(dir);
    runtime = started.runtime;
    return await work(runtime, dir, started.spawnToReadyMs);
  } finally {
    runtime?.kill();
    await rm(dir, { recursive: true, force: true });
  }
}

const CONTAINER_LINE = /^\[Container\] (\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{3})\d{3} (.*)$/;

/**
 * Milliseconds a build spent in its commands, from its log: each `Running command` line's timestamp to
 * the next `[Container]` line's (which the runner writes once the command has reported its exit status).
 */
function commandMilliseconds(log: string): number {
  let total = 0;
  let running: number | undefined;
  for (const line of log.split('\n')) {
    const match = CONTAINER_LINE.exec(line);
    if (!match) continue;
    const [, year, month, day, hours, minutes, seconds, millis, message = ''] = match;
    const at = Date.UTC(
      Number(year),
      Number(month) - 1,
      Number(day),
      Number(hours),
      Number(minutes),
      Number(seconds),
      Number(millis),
    );
    if (running !== undefined) total += at - running;
    running = message.startsWith('Running command ') ? at : undefined;
  }
  return total;
}

/** What one pushed commit's run cost, step by step, in milliseconds. */
interface RunFigures {
  push: {
    toPost: number;
    deliveryRecorded: number;
    handler: number;
    executionRecorded: number;
    toImageBuild: number;
    checkout: number;
    downloadSource: number;
    toFirstCommand: number;
    commandToOutput: number;
    firstCommand: number;
    total: number;
    fromPost: number;
    fromPushReturned: number;
  };
  run: {
    wall: number;
    commands: number;
    overhead: number;
    stages: number;
    checkouts: number;
    runnerOutsideCommands: number;
    outsideBuilds: number;
    toFirstBuild: number;
    betweenBuilds: number;
    afterLastBuild: number;
  };
}

function must<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`The runtime reported no ${what}`);
  return value;
}

async function runFigures(
  runtime: RuntimeChild,
  commit: string,
  pushedAt: number,
  pushReturnedAt: number,
): Promise<RunFigures> {
  const one = <T extends Probe['type']>(type: T, where: (probe: ProbeOf<T>) => boolean) =>
    must(runtime.all(type, where)[0], `${type} for ${commit.slice(0, 7)}`);
  const post = one('post', (p) => p.after === commit);
  const recorded = one('recorded', (p) => p.after === commit);
  const started = one('execution-started', (p) => p.after === commit);
  const call = one('start-call', (p) => p.name === started.name);
  const ended = one('execution-ended', (p) => p.arn === started.arn);
  const builds = runtime.all('build-started', (p) => p.arn === started.arn).sort((a, b) => a.at - b.at);
  const spans = await Promise.all(
    builds.map(async (build) => {
      const source = one('phase', (p) => p.buildId === build.buildId && p.phase === 'DOWNLOAD_SOURCE');
      const end = one('build-ended', (p) => p.buildId === build.buildId);
      const commands = commandMilliseconds(await readFile(build.logPath, 'utf8'));
      return { build, source, end, commands };
    }),
  );
  const image = must(
    spans.find((span) => span.build.project.endsWith('-image')),
    'image build',
  );
  const firstCommand = one('first-command', (p) => p.buildId === image.build.buildId);
  const firstOutput = one('first-output', (p) => p.buildId === image.build.buildId);

  const wall = Date.parse(ended.stopDate) - Date.parse(ended.startDate);
  const commands = spans.reduce((sum, span) => sum + span.commands, 0);
  const inBuilds = spans.reduce((sum, span) => sum + (span.end.at - span.build.at), 0);
  const gaps = spans.slice(1).map((span, index) => span.build.at - (spans[index]?.end.at ?? span.build.at));
  const first = must(spans[0], 'build');
  const last = must(spans.at(-1), 'build');
  return {
    push: {
      toPost: post.at - pushedAt,
      deliveryRecorded: recorded.at - post.at,
      handler: call.at - recorded.at,
      executionRecorded: started.at - call.at,
      toImageBuild: image.build.at - started.at,
      checkout: image.source.start - image.build.at,
      downloadSource: image.source.end - image.source.start,
      toFirstCommand: firstCommand.at - image.source.end,
      commandToOutput: firstOutput.at - firstCommand.at,
      firstCommand: firstCommand.at - pushedAt,
      total: firstOutput.at - pushedAt,
      fromPost: firstOutput.at - post.at,
      fromPushReturned: firstOutput.at - pushReturnedAt,
    },
    run: {
      wall,
      commands,
      overhead: wall - commands,
      stages: spans.length,
      checkouts: spans.reduce((sum, span) => sum + (span.source.start - span.build.at), 0),
      runnerOutsideCommands: spans.reduce(
        (sum, span) => sum + (span.end.at - span.source.start - span.commands),
        0,
      ),
      outsideBuilds: wall - inBuilds,
      toFirstBuild: first.build.at - Date.parse(ended.startDate),
      betweenBuilds: gaps.reduce((sum, gap) => sum + gap, 0),
      afterLastBuild: Date.parse(ended.stopDate) - last.end.at,
    },
  };
}

const ms = (value: number) => `${Math.round(value)} ms`;
const stats = (values: number[]) => [ms(median(values)), ms(Math.min(...values)), ms(Math.max(...values))];

let sequential:
  | Promise<{
      runs: RunFigures[];
      stateEntered: number[];
      spawnToReadyMs: number;
      startMs: number;
      printMs: number;
      load: number;
      floors: FloorSample[];
    }>
  | undefined;

/** Pushes one commit after another to main, each once the previous run has ended; the first warms up. */
function sequentialRuns() {
  sequential ??= withRuntime(async (runtime, dir, spawnToReadyMs) => {
    const load = loadavg()[0] ?? 0;
    const clone = join(dir, 'clone');
    const { remotePath } = runtime.ready();
    await workingClone(clone, remotePath);
    const { floors, hookRemote } = await Floors.start(dir);
    await git(clone, ['remote', 'add', 'floor', hookRemote]);
    const runs: RunFigures[] = [];
    for (let index = 0; index < WARM_UP_RUNS + MEASURED_RUNS; index++) {
      if (index > 0) await git(clone, ['commit', '--quiet', '--allow-empty', '-m', `bench run ${index}`]);
      const commit = await git(clone, ['rev-parse', 'HEAD']);
      const pushedAt = Date.now();
      await git(clone, ['push', '--quiet', 'origin', 'HEAD:refs/heads/main']);
      const pushReturnedAt = Date.now();
      const ended = await runtime.next('execution-ended', (p) => p.after === commit, RUN_DEADLINE_MS);
      if (ended.status !== 'SUCCEEDED') throw new Error(`The run of ${commit} ended ${ended.status}`);
      if (index >= WARM_UP_RUNS) runs.push(await runFigures(runtime, commit, pushedAt, pushReturnedAt));
      // Sampled between the runs, so the floors see the load the runs saw.
      await floors.sample(
        () => git(clone, ['push', '--quiet', 'floor', 'HEAD:refs/heads/main']),
        remotePath,
        commit,
      );
    }
    await floors.close();
    const report = await runtime.stop();
    return {
      runs,
      stateEntered: report.executions.map((execution) => execution.stateEntered),
      spawnToReadyMs,
      startMs: runtime.ready().startMs,
      printMs: (await benchWiring()).printMs,
      load,
      floors: floors.samples.slice(WARM_UP_RUNS),
    };
  });
  return sequential;
}

/** The floors' medians, and the two composite floors the aims are set against. */
function floorMedians(floors: FloorSample[]) {
  const of = (pick: (sample: FloorSample) => number) => median(floors.map(pick));
  return {
    nodeStart: of((f) => f.nodeStart),
    shell: of((f) => f.shell),
    gitClone: of((f) => f.gitClone),
    checkout: of((f) => f.checkout),
    stage: of((f) => f.stage),
    hook: of((f) => f.hook),
    push: of((f) => f.hook + f.stage),
  };
}

const ratio = (value: number, floor: number) => `${(value / floor).toFixed(2)}×`;

/** What the machine takes for the steps a run cannot skip: the floors the figures are divided by. */
export async function localFloors(): Promise<BenchSection> {
  const { floors } = await sequentialRuns();
  const row = (label: string, pick: (sample: FloorSample) => number) => [label, ...stats(floors.map(pick))];
  return {
    title: `Local mode: floors, sampled between the measured runs (${floors.length} samples)`,
    columns: ['floor', 'median', 'min', 'max'],
    rows: [
      row('node -e 0 (the Node the hook starts)', (f) => f.nodeStart),
      row('sh -c true (one shell)', (f) => f.shell),
      row('git clone of the pushed repository', (f) => f.gitClone),
      row('fresh checkout of the pushed commit', (f) => f.checkout),
      row('stage floor: fresh checkout + one shell in it', (f) => f.stage),
      row('hook floor: git push → POST read (server answers at once)', (f) => f.hook),
      row('push floor: hook floor + stage floor', (f) => f.hook + f.stage),
    ],
    notes: [
      'each floor is sampled once after each measured run, by the bench process, against the repository the runs are pushed to (the same commit), so it sees the load the runs saw',
      "fresh checkout = what each build does (local/codebuild/checkout.ts: a new repository borrowing the source's objects, HEAD detached at the commit, its files written), into a new folder; git clone (with its working tree) for comparison",
      "hook floor = a `git push` of the same new commit to a twin repository with stepline's post-receive hook, until a server that answers 202 at once has read the hook's POST (git push, receive-pack, the hook's Node and git commands, the POST)",
    ],
  };
}

/** The local mode from `git push` to the image build's first command, step by step. */
export async function localFirstCommand(): Promise<BenchSection> {
  const { runs, load, floors } = await sequentialRuns();
  const floor = floorMedians(floors);
  const step = (label: string, pick: (push: RunFigures['push']) => number, floorMs?: number) => {
    const values = runs.map((run) => pick(run.push));
    return [label, ...stats(values), floorMs === undefined ? '' : ratio(median(values), floorMs)];
  };
  const toFirstCommand = median(runs.map((run) => run.push.firstCommand));
  return {
    title: `Local mode, trivial builds: git push → first command of the image build (${MEASURED_RUNS} pushes)`,
    columns: ['step', 'median', 'min', 'max', '÷ floor'],
    rows: [
      step('git push started → webhook POST read by the server', (p) => p.toPost, floor.hook),
      step('  delivery written to the store (fsync)', (p) => p.deliveryRecorded),
      step('  webhook handler: verify, normalize, filter', (p) => p.handler),
      step('  execution record and first history event (fsync)', (p) => p.executionRecorded),
      step('  state machine → image build started', (p) => p.toImageBuild),
      step('  checkout of the commit', (p) => p.checkout, floor.checkout),
      step('  DOWNLOAD_SOURCE: buildspec, variables', (p) => p.downloadSource),
      step('  → first command (phases, shell spawned)', (p) => p.toFirstCommand),
      step('  first command → its first output line', (p) => p.commandToOutput),
      step('git push started → first command', (p) => p.firstCommand, floor.push),
      step('git push started → first output line', (p) => p.total, floor.push),
      step('webhook POST read → first output line', (p) => p.fromPost, floor.stage),
      step('git push returned → first output line', (p) => p.fromPushReturned),
    ],
    notes: [
      "latency = from the moment the bench spawns `git push` (a new commit on main of bench/fixtures/trivial-app) to the moment the image build's first command (`echo …`) is logged as running, and its first line of output is written to the build's log; the runtime runs in a child process, both clocks are the machine's wall clock (ms)",
      `÷ floor = the median divided by its floor's median (section "floors"): the hook floor ${ms(floor.hook)}, the checkout ${ms(floor.checkout)}, the push floor (hook + checkout + shell) ${ms(floor.push)}, the stage floor (checkout + shell) ${ms(floor.stage)}`,
      'the git hook posts the webhook before `git push` returns, so the run is under way when the push returns: "git push returned → …" is what is left after it (negative: the command ran before the push returned)',
      `aim: git push → first command ≤ ${AIMS.pushToFirstOutput}× the push floor: ${toFirstCommand <= AIMS.pushToFirstOutput * floor.push ? 'met' : 'missed'} (${ms(toFirstCommand)} ÷ ${ms(floor.push)} = ${ratio(toFirstCommand, floor.push)})`,
      `after ${WARM_UP_RUNS} warm-up push, each push once the previous run has ended; runtime in a child process, settings dev and prod without approval, triggers on every branch`,
      `times depend on the machine: ${availableParallelism()} CPUs, 1-minute load average ${load.toFixed(2)} when the runs started`,
    ],
  };
}

/** What the local mode costs per run around the build commands. */
export async function localOverhead(): Promise<BenchSection> {
  const { runs, stateEntered, spawnToReadyMs, startMs, printMs, floors } = await sequentialRuns();
  const floor = floorMedians(floors);
  const row = (label: string, pick: (run: RunFigures['run']) => number, floorMs?: number) => {
    const values = runs.map((run) => pick(run.run));
    return [label, ...stats(values), floorMs === undefined ? '' : ratio(median(values), floorMs)];
  };
  const stages = runs[0]?.run.stages ?? 0;
  const perStage = median(runs.map((run) => run.run.overhead / run.run.stages));
  return {
    title: `Local mode, trivial builds: orchestration overhead per run (${MEASURED_RUNS} runs, ${stages} stages each)`,
    columns: ['figure', 'median', 'min', 'max', '÷ floor'],
    rows: [
      row('run wall time (execution start → end)', (r) => r.wall),
      row('inside build commands (from the logs)', (r) => r.commands),
      row('overhead per run', (r) => r.overhead, floor.stage * stages),
      row('overhead per stage', (r) => r.overhead / r.stages, floor.stage),
      row('  checkouts (all builds)', (r) => r.checkouts, floor.checkout * stages),
      row(
        '  build runner outside commands (all builds)',
        (r) => r.runnerOutsideCommands,
        floor.shell * stages,
      ),
      row('  outside builds', (r) => r.outsideBuilds),
      row('    execution start → first build', (r) => r.toFirstBuild),
      row('    between builds (all gaps)', (r) => r.betweenBuilds),
      row('    last build → execution end', (r) => r.afterLastBuild),
    ],
    notes: [
      "wall time = the execution record's startDate → stopDate; inside build commands = for each `Running command` line of every build log, its timestamp → the next `[Container]` line's (this includes the runner's per-command round trip through the shell, so the overhead is if anything understated); overhead = wall − commands; per stage = overhead / builds in the run",
      'checkout = build started → DOWNLOAD_SOURCE start; runner outside commands = DOWNLOAD_SOURCE start → build ended, less its commands (buildspec, shell, phases, exported variables, log, clean-up); outside builds = wall − Σ build spans (state machine, in-process Lambda handlers, notifications, history writes)',
      `÷ floor = the median divided by its floor's median (section "floors"), times the ${stages} stages for a whole run: the stage floor (fresh checkout + one shell) ${ms(floor.stage)}, the checkout ${ms(floor.checkout)}, one shell ${ms(floor.shell)}`,
      `aim: overhead per stage ≤ ${AIMS.overheadPerStage}× the stage floor: ${perStage <= AIMS.overheadPerStage * floor.stage ? 'met' : 'missed'} (${ms(perStage)} ÷ ${ms(floor.stage)} = ${ratio(perStage, floor.stage)})`,
      `start-up, once per start: serverless print ${ms(printMs)}; runtime process spawned → ready ${ms(spawnToReadyMs)} (LocalRuntime.start ${ms(startMs)} of it)`,
      `state transitions in the stored history (StateEntered): ${[...new Set(stateEntered)].join(', ')} per run (dev, prod without the approval state)`,
    ],
  };
}

/** The resident set of a process and all its descendants now, in KiB (Linux /proc; 0 elsewhere). */
async function treeRssKb(root: number): Promise<number> {
  let entries: string[];
  try {
    entries = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry));
  } catch {
    return 0;
  }
  const children = new Map<number, number[]>();
  for (const entry of entries) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // Gone meanwhile.
    }
  }
  let total = 0;
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    try {
      const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += Number(match?.[1] ?? 0);
    } catch {
      // Gone meanwhile.
    }
    queue.push(...(children.get(pid) ?? []));
  }
  return total;
}

/** 20 pushes to 20 new branches at once, against a fresh runtime process. */
export async function localConcurrentPushes(): Promise<BenchSection> {
  return withRuntime(async (runtime, dir) => {
    const clone = join(dir, 'clone');
    await workingClone(clone, runtime.ready().remotePath);
    const tree = await git(clone, ['rev-parse', 'HEAD^{tree}']);
    const base = await git(clone, ['rev-parse', 'HEAD']);
    const branches: string[] = [];
    for (let index = 1; index <= CONCURRENT_PUSHES; index++) {
      const branch = `load-${String(index).padStart(2, '0')}`;
      const commit = await git(clone, ['commit-tree', tree, '-p', base, '-m', `load ${index}`]);
      await git(clone, ['update-ref', `refs/heads/${branch}`, commit]);
      branches.push(branch);
    }

    let peakTreeKb = 0;
    const sampler = setInterval(() => {
      void treeRssKb(runtime.pid).then((kb) => {
        peakTreeKb = Math.max(peakTreeKb, kb);
      });
    }, RSS_SAMPLE_MS);
    const loadBefore = loadavg()[0] ?? 0;
    const pushedAt = Date.now();
    let lastEndedAt = 0;
    let endedInTime = false;
    try {
      await Promise.all(
        branches.map((branch) =>
          git(clone, ['push', '--quiet', 'origin', `refs/heads/${branch}:refs/heads/${branch}`]),
        ),
      );
      const isLoad = (ref: string) => ref.startsWith('refs/heads/load-');
      // Runs still going at the deadline are stopped (INTERRUPTED) and show in the figures: never thrown.
      endedInTime = await runtime
        .until(
          () => {
            const ended = runtime.all('execution-ended', (p) => isLoad(p.ref));
            const started = runtime.all('execution-started', (p) => isLoad(p.ref));
            return ended.length >= CONCURRENT_PUSHES && ended.length >= started.length ? true : undefined;
          },
          CONCURRENT_DEADLINE_MS,
          `the end of ${CONCURRENT_PUSHES} runs`,
        )
        .catch(() => false);
      lastEndedAt = Math.max(pushedAt, ...runtime.all('execution-ended').map((p) => p.at));
    } finally {
      clearInterval(sampler);
    }
    const report = await runtime.stop();

    const calls = runtime.all('start-call');
    const outcomes = runtime.all('start-result');
    const started = outcomes.filter((outcome) => outcome.outcome === 'started').length;
    const executions = report.executions;
    const perBranch = branches.map(
      (branch) => executions.filter((execution) => execution.ref === `refs/heads/${branch}`).length,
    );
    const succeeded = executions.filter((execution) => execution.status === 'SUCCEEDED').length;
    const accepted = report.deliveries.filter((status) => status === 202).length;
    const walls = runtime
      .all('execution-ended')
      .map((ended) => Date.parse(ended.stopDate) - Date.parse(ended.startDate));
    const cpuAtReady = runtime.ready().cpu;
    const seconds = (value: number) => `${(value / 1000).toFixed(1)} s`;
    const peakKb = report.vmHwmKb ?? report.maxRssKb;
    const peakMb = peakKb / 1024;
    const complete =
      endedInTime &&
      succeeded === CONCURRENT_PUSHES &&
      executions.length === CONCURRENT_PUSHES &&
      perBranch.every((count) => count === 1) &&
      calls.length === CONCURRENT_PUSHES;
    return {
      title: `Local mode, trivial builds: ${CONCURRENT_PUSHES} concurrent pushes to ${CONCURRENT_PUSHES} branches`,
      columns: ['figure', 'value'],
      rows: [
        ['git push processes started at once', String(branches.length)],
        ['deliveries recorded / answered 202', `${report.deliveries.length} / ${accepted}`],
        [
          'StartExecution calls / started / refused',
          `${calls.length} / ${started} / ${outcomes.length - started}`,
        ],
        ['executions / SUCCEEDED', `${executions.length} / ${succeeded}`],
        ['runs per branch (min–max)', `${Math.min(...perBranch)}–${Math.max(...perBranch)}`],
        ['first push → last run ended', ms(lastEndedAt - pushedAt)],
        ['run wall time, median / max', `${ms(median(walls))} / ${ms(Math.max(...walls))}`],
        [
          `peak RSS of the runtime process (${report.vmHwmKb === undefined ? 'maxRSS' : 'VmHWM'})`,
          `${peakMb.toFixed(1)} MB`,
        ],
        [
          `peak RSS of runtime + builds (sum, every ${RSS_SAMPLE_MS} ms)`,
          `${(peakTreeKb / 1024).toFixed(1)} MB`,
        ],
        [
          'CPU: runtime process / its builds and checkouts',
          `${seconds(report.cpu.self - cpuAtReady.self)} / ${seconds(report.cpu.children - cpuAtReady.children)}`,
        ],
      ],
      notes: [
        `all ${CONCURRENT_PUSHES} runs complete, none lost or doubled: ${complete ? 'yes' : 'NO'} (one delivery, one StartExecution and one SUCCEEDED execution per branch)${endedInTime ? '' : `; runs still going after ${CONCURRENT_DEADLINE_MS / 1000} s were stopped`}`,
        'each branch holds its own empty commit on the fixture app; the pushes are separate `git push` processes started together, each firing the post-receive hook; StartExecution calls counted where the webhook handler reaches the local engine',
        `peak RSS: VmHWM from /proc/<pid>/status of the runtime's process (server, LocalRuntime, engine, handlers), read as it stops, fresh for this section; build shells and git clones are separate processes, summed in the second figure (sampled, so a lower bound)`,
        `aim: ${CONCURRENT_PUSHES} concurrent runs within ${AIMS.concurrentRssMb} MB: ${peakMb <= AIMS.concurrentRssMb ? 'met' : 'missed'}`,
        `times depend on the machine: ${availableParallelism()} CPUs, 1-minute load average ${loadBefore.toFixed(2)} when the pushes started; CPU from the runtime process's own usage and its reaped children's (/proc/self/stat), from ready to stop`,
      ],
    };
  });
}

if (process.argv[2] === '--runtime' && process.argv[1] === fileURLToPath(import.meta.url)) {
  const [stateDir, wiringFile] = process.argv.slice(3);
  if (!stateDir || !wiringFile || !process.send) {
    process.stderr.write('bench/local.ts --runtime <state dir> <wiring file>: started by the bench only\n');
    process.exit(2);
  }
  await runtimeProcess(stateDir, wiringFile);
}
