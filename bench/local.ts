import { readFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { type FloorSample, Floors } from './floors.ts';
import { benchWiring, git, type RuntimeChild, withRuntime, workingClone } from './local-child.ts';
import type { Probe, ProbeOf } from './local-runtime.ts';
import { type BenchSection, median } from './table.ts';

/**
 * The local mode measured end to end with builds that take no time (bench/fixtures/trivial-app): what
 * a push costs until the first build command runs and what the pipeline around the commands costs per
 * run, each beside its floor (bench/floors.ts) sampled in the same run. The runtime runs in a child
 * process of the bench (bench/local-runtime.ts), exactly as `npm start` composes it; the bench drives it
 * with real `git push`es and hears, over the IPC channel, timestamps taken in the runtime's process.
 * 20 pushes at once: bench/local-concurrent.ts.
 */

const WARM_UP_RUNS = 1;
const MEASURED_RUNS = 7;
const RUN_DEADLINE_MS = 60_000;
/** Aims as ratios to the floors measured in the same run (bench/floors.ts). */
const AIMS = { pushToFirstOutput: 2, overheadPerStage: 1.5 };

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
      `after ${WARM_UP_RUNS} warm-up push, each push once the previous run has ended; runtime in a child process, settings dev and prod without approval and without the Test stage, triggers on every branch`,
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
