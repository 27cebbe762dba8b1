import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SteplineError } from '#shared/errors.ts';

const execFileAsync = promisify(execFile);

/** A git command that could not run or failed; the message names the command and what git said. */
export class GitCommandError extends SteplineError {
  override readonly name: string = 'GitCommandError';
  readonly args: readonly string[];

  constructor(args: readonly string[], detail: string, options?: ErrorOptions) {
    super(`git ${args.join(' ')} failed: ${detail}`, options);
    this.args = args;
  }
}

/** Variables that point git at another repository; a caller running inside a git hook may carry them. */
const GIT_LOCATION_VARIABLES = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_QUARANTINE_PATH',
  'GIT_PREFIX',
  'GIT_COMMON_DIR',
];

/** This process's environment without the variables that would point git at another repository. */
export function gitEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of GIT_LOCATION_VARIABLES) delete env[name];
  return env;
}

/**
 * Runs git with an argument list (never a shell string) and returns its output. Throws
 * {@link GitCommandError} with git's own message when git is missing or fails.
 *
 * @example
 * ```ts
 * const { stdout } = await git(['rev-parse', 'HEAD'], workDir);
 * ```
 */
export async function git(args: string[], cwd?: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await execFileAsync('git', args, {
      ...(cwd === undefined ? {} : { cwd }),
      env: gitEnvironment(),
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    const failed = error as NodeJS.ErrnoException & { stderr?: string; stdout?: string };
    if (failed.code === 'ENOENT') {
      throw new GitCommandError(args, 'git is not installed or not on the PATH', { cause: error });
    }
    const detail = (failed.stderr || failed.stdout || failed.message).trim();
    throw new GitCommandError(args, detail, { cause: error });
  }
}

/** True when git exits 0, false when it exits 1; anything else throws {@link GitCommandError}. */
export async function gitSucceeds(args: string[], cwd?: string): Promise<boolean> {
  try {
    await git(args, cwd);
    return true;
  } catch (error) {
    if (error instanceof GitCommandError && (error.cause as { code?: unknown }).code === 1) return false;
    throw error;
  }
}
