import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createLocalRemote } from '#local/git/remote.ts';
import { startServer } from '#local/http/server.ts';
import type { RuntimeEvent } from '#local/runs/runtime-event.ts';
import { LocalRuntime } from '#local/runtime.ts';
import type { Wiring } from '#local/wiring.ts';

/**
 * The local mode's runtime as the bench runs it: in a child process of the bench (this file, started with
 * `--runtime` by bench/local-child.ts), exactly as `npm start` composes it (local server + LocalRuntime),
 * instrumented to tell the bench, over the IPC channel, the moments that matter with its own clock.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** What the runtime's process tells the bench, each with the runtime's own clock (`Date.now()`). */
export type Probe =
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

export type ProbeOf<T extends Probe['type']> = Extract<Probe, { type: T }>;

/** CPU time so far, in ms: this process's, and its finished children's (build shells, git). */
export interface CpuTime {
  self: number;
  children: number;
}

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
  engine.start = async (key, name, input, restartOf) => {
    send({ type: 'start-call', at: Date.now(), name });
    try {
      const record = await start(key, name, input, restartOf);
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

if (process.argv[2] === '--runtime' && process.argv[1] === fileURLToPath(import.meta.url)) {
  const [stateDir, wiringFile] = process.argv.slice(3);
  if (!stateDir || !wiringFile || !process.send) {
    process.stderr.write(
      'bench/local-runtime.ts --runtime <state dir> <wiring file>: started by the bench only\n',
    );
    process.exit(2);
  }
  await runtimeProcess(stateDir, wiringFile);
}
