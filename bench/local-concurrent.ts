import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { git, withRuntime, workingClone } from './local-child.ts';
import { type BenchSection, median } from './table.ts';

/**
 * The local mode under 20 pushes at once (bench/fixtures/trivial-app, builds that take no time): every
 * run complete, none lost or doubled, and the memory and CPU the runtime and its builds took.
 */

const CONCURRENT_PUSHES = 20;
const CONCURRENT_DEADLINE_MS = 120_000;
const RSS_SAMPLE_MS = 100;
const AIM_RSS_MB = 300;
const ms = (value: number) => `${Math.round(value)} ms`;

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
        `peak RSS: VmHWM from /proc/<pid>/status of the runtime's process (server, LocalRuntime, engine, handlers), read as it stops, fresh for this section; build shells and checkouts are separate processes, summed in the second figure (sampled, so a lower bound)`,
        `aim: ${CONCURRENT_PUSHES} concurrent runs within ${AIM_RSS_MB} MB: ${peakMb <= AIM_RSS_MB ? 'met' : 'missed'}`,
        `times depend on the machine: ${availableParallelism()} CPUs, 1-minute load average ${loadBefore.toFixed(2)} when the pushes started; CPU from the runtime process's own usage and its reaped children's (/proc/self/stat), from ready to stop`,
      ],
    };
  });
}
