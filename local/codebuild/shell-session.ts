import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { shellQuote } from './shell-quote.ts';
import { watchProcessGroup } from './watchdog.ts';

/** How much of a command's output is kept for messages and retry patterns. */
export const OUTPUT_TAIL = 64 * 1024;

export interface ShellKind {
  path: string;
  /** bash snapshots all variables and functions; a POSIX sh only its exported variables. */
  bash: boolean;
}

export function shellKind(shell: string | undefined): ShellKind | undefined {
  if (shell === undefined || shell === 'bash') return { path: 'bash', bash: true };
  if (/\.exe$|^cmd$/i.test(shell)) return undefined;
  return { path: shell, bash: path.basename(shell) === 'bash' };
}

export interface CommandOutcome {
  exitCode: number;
  shellAlive: boolean;
  /** The command's output (stdout and stderr, last 64 KiB), for messages and retry patterns. */
  output: string;
}

/**
 * One shell process, in its own process group, fed through stdin. Each command is written to a file
 * and sourced, so it runs in this shell (variables, `cd`, functions stay) while a syntax error in it
 * cannot swallow what follows; a marker line with a random token then reports its exit status.
 * After each command the variables and directory are saved, so that a command which ends the shell
 * (`exit 1`, `set -e`) leaves a state the next shell can be restored from.
 */
export class ShellSession {
  alive = true;
  spawnError: Error | undefined;
  private readonly child: ChildProcess;
  /** Ends the watchdog's watch of this shell's group (which the watchdog kills should the runtime die). */
  private readonly unwatch: () => void;
  private readonly kind: ShellKind;
  private readonly stateDir: string;
  private readonly onLine: (line: string) => void;
  private readonly token = randomBytes(12).toString('hex');
  private readonly marker: RegExp;
  private readonly stdoutEnded: Promise<void>;
  private buffer = '';
  private sequence = 0;
  private exitStatus = 0;
  private finished = false;
  private pending:
    | { id: number; output: OutputTail; quiet: boolean; resolve: (outcome: CommandOutcome) => void }
    | undefined;

  constructor(options: {
    kind: ShellKind;
    cwd: string;
    env: Record<string, string>;
    stateDir: string;
    onLine: (line: string) => void;
    /** Puts the shell in a sandbox (sandbox.ts): the command line to spawn instead. */
    wrap?: (command: string, args: string[]) => { command: string; args: string[] };
  }) {
    this.kind = options.kind;
    this.stateDir = options.stateDir;
    this.onLine = options.onLine;
    this.marker = new RegExp(`\\x1e${this.token} (\\d+) (\\d+)\\x1e\\n`);
    const shellArgs = options.kind.bash ? ['--noprofile', '--norc', '-s'] : ['-s'];
    const { command, args } = options.wrap?.(options.kind.path, shellArgs) ?? {
      command: options.kind.path,
      args: shellArgs,
    };
    // detached: the shell (or the sandbox holding it, in the same group) leads its own process group, so
    // a timeout can kill it with all its children.
    this.child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.unwatch = this.child.pid === undefined ? () => undefined : watchProcessGroup(this.child.pid);
    const { stdin, stdout, stderr } = this.child as ChildProcess & {
      stdin: NodeJS.WritableStream;
      stdout: NodeJS.ReadableStream;
      stderr: NodeJS.ReadableStream;
    };
    stdin.on('error', () => {
      // The shell has gone; its exit is reported through the 'exit' event.
    });
    stdout.setEncoding('utf8');
    stderr.setEncoding('utf8');
    this.stdoutEnded = new Promise((resolve) => stdout.once('end', () => resolve()));
    stdout.on('data', (chunk: string) => this.receive(chunk));
    let stderrRest = '';
    stderr.on('data', (chunk: string) => {
      const lines = (stderrRest + chunk).split('\n');
      stderrRest = lines.pop() ?? '';
      for (const line of lines) this.onLine(line);
    });
    this.child.on('error', (error) => {
      this.spawnError = error;
      this.alive = false;
      this.finish(-1);
    });
    this.child.on('exit', (code, signal) => {
      const status = code ?? 128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0));
      this.alive = false;
      this.exitStatus = status;
      // Output written just before the exit may still be in the pipe; wait for it briefly. Background
      // processes may hold the pipe open, so the wait is bounded.
      let timer: NodeJS.Timeout | undefined;
      const drained = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 200);
      });
      void Promise.race([this.stdoutEnded, drained]).then(() => {
        clearTimeout(timer);
        this.finish(status);
      });
    });
    // Merge stderr into stdout, so the log keeps the order in which the build wrote.
    stdin.write('exec 2>&1\n');
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Runs a script in this shell and resolves with its exit status. */
  async run(script: string, options: { quiet?: boolean } = {}): Promise<CommandOutcome> {
    if (!this.alive) return { exitCode: this.exitStatus, shellAlive: false, output: '' };
    this.sequence += 1;
    const id = this.sequence;
    // One file for every command: each is sourced to its end before the next is written.
    const file = path.join(this.stateDir, 'step.sh');
    // Written in place, not through the thread pool, where it would queue behind the store's fsyncs:
    // a command is a few bytes, and it waits on this file.
    writeFileSync(file, `${script}\n`, { mode: 0o600 });
    const vars = shellQuote(path.join(this.stateDir, 'vars.sh'));
    const cwd = shellQuote(path.join(this.stateDir, 'cwd'));
    const snapshot = this.kind.bash ? '{ declare -p; declare -f; set +o; }' : '{ export -p; set +o; }';
    const chunk = [
      `. ${shellQuote(file)} </dev/null`,
      '__stepline_status=$?',
      `${snapshot} > ${vars} 2>/dev/null || :`,
      `pwd > ${cwd} 2>/dev/null || :`,
      `printf '\\036%s %s %s\\036\\n' '${this.token}' ${id} "$__stepline_status"`,
      '',
    ].join('\n');
    return new Promise((resolve) => {
      if (!this.alive) {
        resolve({ exitCode: this.exitStatus, shellAlive: false, output: '' });
        return;
      }
      this.pending = { id, output: new OutputTail(), quiet: options.quiet ?? false, resolve };
      (this.child.stdin as NodeJS.WritableStream).write(chunk);
    });
  }

  /** Kills the shell's whole process group. */
  kill(): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    this.unwatch();
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    for (let match = this.marker.exec(this.buffer); match !== null; match = this.marker.exec(this.buffer)) {
      this.emitText(this.buffer.slice(0, match.index), true);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const pending = this.pending;
      if (pending !== undefined && pending.id === Number(match[1])) {
        this.pending = undefined;
        pending.resolve({ exitCode: Number(match[2]), shellAlive: true, output: pending.output.text() });
      }
    }
    const lastNewline = this.buffer.lastIndexOf('\n');
    if (lastNewline >= 0) {
      this.emitText(this.buffer.slice(0, lastNewline + 1), false);
      this.buffer = this.buffer.slice(lastNewline + 1);
    } else if (this.buffer.length > OUTPUT_TAIL && !this.buffer.includes('\x1e')) {
      this.emitText(this.buffer, true);
      this.buffer = '';
    }
  }

  private emitText(text: string, flushPartial: boolean): void {
    if (text === '') return;
    const lines = text.split('\n');
    const last = lines.pop() ?? '';
    if (flushPartial && last !== '') lines.push(last);
    for (const raw of lines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (this.pending !== undefined) this.pending.output.add(line);
      if (!this.pending?.quiet) this.onLine(line);
    }
  }

  private finish(status: number): void {
    if (this.finished) return;
    this.finished = true;
    this.exitStatus = status;
    this.emitText(this.buffer, true);
    this.buffer = '';
    const pending = this.pending;
    this.pending = undefined;
    pending?.resolve({ exitCode: status, shellAlive: false, output: pending.output.text() });
  }
}

/** The last 64 KiB of a command's output, kept line by line. */
class OutputTail {
  private lines: string[] = [];
  private length = 0;

  add(line: string): void {
    this.lines.push(line);
    this.length += line.length + 1;
    while (this.length > OUTPUT_TAIL && this.lines.length > 1) {
      this.length -= (this.lines.shift() ?? '').length + 1;
    }
  }

  text(): string {
    return this.lines.map((line) => `${line}\n`).join('');
  }
}

/** The program the shell could not find, from its "not found" message, else the command's first word. */
export function missingTool(output: string, command: string): string | undefined {
  // bash: "…: line 1: terraform: command not found"; dash: "sh: 1: …: terraform: not found".
  const reported = /:\s*([^\s:]+): (?:command )?not found\s*$/m.exec(output);
  if (reported?.[1] !== undefined) return reported[1];
  return /^\s*([^\s;&|<>()]+)/.exec(command)?.[1];
}
