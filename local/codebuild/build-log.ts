import type { BuildLogSink } from './build-result.ts';
import type { SecretMask } from './build-variables.ts';

/** A build's log: every line masked, then written to the sink; a broken sink never breaks the build. */
export class BuildLog {
  readonly #sink: BuildLogSink | undefined;
  readonly #mask: SecretMask;

  constructor(sink: BuildLogSink | undefined, mask: SecretMask) {
    this.#sink = sink;
    this.#mask = mask;
  }

  /** A `[Container]` line of the runner itself, with CodeBuild's time stamp. */
  container(message: string): void {
    const [first = '', ...rest] = message.split('\n');
    this.line(`[Container] ${logTime(new Date())} ${first}`);
    for (const line of rest) this.line(line);
  }

  /** A line of the build's own output. */
  line(line: string): void {
    const masked = this.#mask.apply(line);
    try {
      if (typeof this.#sink === 'function') this.#sink(masked);
      else this.#sink?.write(`${masked}\n`);
    } catch {
      // A broken log sink must not break the build.
    }
  }
}

/** A command's first line, ending in `…` when it has more. */
export function firstLine(command: string): string {
  const lines = command.trim().split('\n');
  const first = lines[0] ?? '';
  return lines.length > 1 ? `${first} …` : first;
}

/** `2025/07/31 05:37:55.831000`, in UTC, as CodeBuild's `[Container]` lines show time. */
function logTime(date: Date): string {
  const pad = (value: number, width = 2) => String(value).padStart(width, '0');
  return (
    `${date.getUTCFullYear()}/${pad(date.getUTCMonth() + 1)}/${pad(date.getUTCDate())} ` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())}.${pad(date.getUTCMilliseconds(), 3)}000`
  );
}
