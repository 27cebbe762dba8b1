import { type ChildProcess, spawn } from 'node:child_process';

/**
 * Kills the process groups of this process's builds when this process dies, however it dies. A build's
 * shell leads its own group, so when the runtime is killed (SIGKILL, a crash, Ctrl-C on a command with no
 * handler) nothing else stops it or what it runs: a `sleep 60` would outlive stepline.
 *
 * One watchdog serves every build of this process (a process per build would cost a process start per
 * build): a shell, in a group and session of its own (a terminal's Ctrl-C does not reach it), that reads
 * `+ <pgid>` and `- <pgid>` lines from a pipe whose only writer is this process and keeps the set of
 * groups being watched. The pipe closes when this process exits, and the watchdog then kills every group
 * still in the set. What a build starts outside its group on purpose (a deployed service, in a session of
 * its own) outlives the build, so this watchdog cannot own it: the runtime's reaper does
 * (deployed-services.ts).
 */
const WATCHDOG_SCRIPT = [
  "groups=' '",
  'while read -r op pgid; do',
  '  case $op in',
  '    +) groups="$groups$pgid " ;;',
  // Removes the first occurrence only; parameter expansion, so no process is started per line.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the shell's parameter expansion, not a template literal
  '    -) case $groups in *" $pgid "*) groups="${groups%% $pgid *} ${groups#* $pgid }" ;; esac ;;',
  '  esac',
  'done',
  'for pgid in $groups; do kill -KILL -"$pgid" 2>/dev/null; done',
].join('\n');

const watched = new Set<number>();
let watchdog: ChildProcess | undefined;

/**
 * Has the process group `pgid` killed should this process die before the returned release is called.
 * Call the release once the group has been killed (or has ended) in the ordinary way.
 */
export function watchProcessGroup(pgid: number): () => void {
  watched.add(pgid);
  tell(`+ ${pgid}\n`);
  return () => {
    if (!watched.delete(pgid)) return;
    tell(`- ${pgid}\n`);
  };
}

/** Tells the watchdog of a change; one started now is told the whole set instead. */
function tell(line: string): void {
  if (watchdog === undefined) startWatchdog();
  else watchdog.stdin?.write(line);
}

/** Starts the watchdog, telling it the groups already watched (a watchdog that died is replaced). */
function startWatchdog(): void {
  try {
    const started = spawn('sh', ['-c', WATCHDOG_SCRIPT, 'stepline-watchdog'], {
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
      // Only PATH: the runtime's environment holds stepline's secrets, which builds never get either. The
      // root folder as working directory: the watchdog lives as long as the runtime and holds no folder.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      cwd: '/',
    });
    started.on('error', () => {
      // No sh to run it: a build's group is still killed when the build ends normally.
      if (watchdog === started) watchdog = undefined;
    });
    started.on('exit', () => {
      if (watchdog === started) watchdog = undefined;
    });
    started.stdin?.on('error', () => undefined);
    // It must not keep the runtime alive by itself.
    started.unref();
    (started.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null)?.unref?.();
    watchdog = started;
    const known = [...watched].map((pgid) => `+ ${pgid}\n`).join('');
    if (known !== '') started.stdin?.write(known);
  } catch {
    watchdog = undefined;
  }
}
