/**
 * The reaper of one local runtime, run by it as `node process-reaper.ts <owner id>` in a process group and
 * session of its own, with a pipe on stdin whose only writer is the runtime. When the runtime ends, however
 * it ends (a crash, SIGKILL, the machine's OOM killer), the pipe closes and the reaper kills every process
 * the runtime's builds started, deployed services included, then exits. A runtime that stops cleanly has
 * already ended them and kills the reaper itself.
 */
import { endOwnedProcesses } from './owned-processes.ts';

const ownerId = process.argv[2];
if (ownerId === undefined || ownerId === '') {
  process.stderr.write('usage: process-reaper.ts <owner id>\n');
  process.exit(2);
}

// Signals meant for a terminal's foreground group or a service manager's stop must not cut the watch short.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);

let reaping = false;
const reap = () => {
  if (reaping) return;
  reaping = true;
  void endOwnedProcesses(ownerId, 0).finally(() => process.exit(0));
};
process.stdin.on('end', reap);
process.stdin.on('close', reap);
process.stdin.on('error', reap);
process.stdin.resume();
