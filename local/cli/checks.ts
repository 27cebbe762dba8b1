import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SteplineError } from '#shared/errors.ts';

const execFileAsync = promisify(execFile);

/** The command line itself is wrong (a malformed `--param`, a port that is no port): exit code 2. */
export class UsageError extends SteplineError {
  override readonly name: string = 'UsageError';
}

/** What stepline needs from the machine is missing (git), or the machine refused (the port is taken). */
export class EnvironmentError extends SteplineError {
  override readonly name: string = 'EnvironmentError';
}

/** A `--param name=value` as `serverless deploy --param` takes it; the name as serverless.yml spells it. */
const PARAM = /^[A-Za-z][A-Za-z0-9_-]*=/;

/**
 * Checks that every `--param` reads `name=value`, and returns them unchanged. What the value must be (the
 * JSON of `settings` or `triggers`) is the runtime's to check, where it names the parameter too.
 *
 * @example
 * ```ts
 * checkParams(['triggers={"push":[]}']); // ['triggers={"push":[]}']
 * checkParams(['triggers']);              // throws UsageError: --param "triggers" is not name=value …
 * ```
 */
export function checkParams(params: readonly string[]): string[] {
  for (const param of params) {
    if (!PARAM.test(param)) {
      throw new UsageError(
        `--param ${JSON.stringify(param)} is not name=value (e.g. --param 'triggers={"push":[{"branches":{"includes":["**"]}}]}')`,
      );
    }
  }
  return [...params];
}

/**
 * Reads a port number (0 picks a free one), from `--port` or STEPLINE_PORT.
 *
 * @example
 * ```ts
 * parsePort('4700'); // 4700
 * parsePort('http'); // throws UsageError
 * ```
 */
export function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(port) || port > 65_535)
    throw new UsageError(`--port must be a port number from 0 to 65535, not "${value}"`);
  return port;
}

/** Checks that git is on the PATH: the local remote, its push hook and every build's checkout use it. */
export async function checkGit(): Promise<void> {
  try {
    await execFileAsync('git', ['--version']);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new EnvironmentError(
      code === 'ENOENT'
        ? 'git was not found on the PATH: stepline needs it for its local remote and for every build checkout; install git and start again'
        : `git --version failed (${(error as Error).message.split('\n')[0]}): stepline needs a working git`,
    );
  }
}

/** Turns the server's failure to listen into a line that names the port and says what to do. */
export function explainListenError(error: NodeJS.ErrnoException, port: number): Error {
  if (error.code === 'EADDRINUSE')
    return new EnvironmentError(
      `port ${port} is in use (is stepline already running?): choose another with --port or STEPLINE_PORT`,
    );
  if (error.code === 'EACCES')
    return new EnvironmentError(
      `port ${port} may not be used by this user: choose another with --port or STEPLINE_PORT`,
    );
  return error;
}

/**
 * The one line a failure prints and the exit code it ends with: stepline's own errors and the system's
 * (a folder that cannot be written) print their message; anything else is a fault of stepline itself, and
 * keeps its stack so that it can be reported.
 */
export function describeFailure(error: unknown): { text: string; exitCode: number } {
  if (error instanceof UsageError) return { text: `stepline: ${error.message}`, exitCode: 2 };
  if (error instanceof SteplineError) return { text: `stepline: ${oneLine(error.message)}`, exitCode: 1 };
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (error instanceof Error && typeof code === 'string' && /^E[A-Z]+$/.test(code))
    return { text: `stepline: ${oneLine(error.message)}`, exitCode: 1 };
  const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return { text: `stepline: unexpected failure, please report it: ${stack}`, exitCode: 1 };
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ');
}
