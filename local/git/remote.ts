import { cp, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { shellQuote } from '#local/codebuild/shell-quote.ts';
import { writeFileAtomic } from '#local/state/atomic-file.ts';
import { SteplineError } from '#shared/errors.ts';
import type { WebhookProvider } from '#shared/push.ts';
import { webhookSecretVariable } from '#shared/secrets.ts';
import { git, gitSucceeds } from './command.ts';
import type { HookConfig } from './post-receive.ts';

/**
 * The local git trigger: a bare repository on this machine whose `post-receive` hook posts each pushed
 * ref to the local stepline server as a signed GitHub `push` webhook, so a plain `git push` starts a run.
 *
 * The hook is local/git/post-receive.ts, copied into the repository's hooks folder with a small JSON file
 * naming the webhook URL, and started by a short shell launcher; it never holds the secret. It posts as
 * GitHub, so it reads the GitHub webhook secret from `<stateDir>/webhook-secret-github` (mode 0600, see
 * {@link writeWebhookSecret}), which a `git push` from any terminal can read, or else from the pusher's
 * environment variable (`STEPLINE_WEBHOOK_SECRET_GITHUB` unless told otherwise).
 */

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The sample app's local remote (`.stepline/git/hello-service.git`) and the name its runs carry. */
export const SAMPLE_APP_REMOTE = { name: 'hello-service', fullName: 'local/hello-service' } as const;

/** The provider the push hook posts as: its deliveries are GitHub push webhooks. */
export const HOOK_PROVIDER: WebhookProvider = 'github';

/**
 * Where the local mode keeps a provider's webhook secret (`<stateDir>/webhook-secret-<provider>`); the
 * push hook signs with GitHub's.
 */
export function webhookSecretPath(stateDir: string, provider: WebhookProvider = HOOK_PROVIDER): string {
  return join(resolve(stateDir), `webhook-secret-${provider}`);
}

/**
 * Writes a provider's webhook secret to `<stateDir>/webhook-secret-<provider>` with mode 0600, where the
 * push hook reads GitHub's (a user's own `git push` from another terminal has no stepline environment
 * variables). Returns the path.
 */
export async function writeWebhookSecret(
  stateDir: string,
  secret: string,
  provider: WebhookProvider = HOOK_PROVIDER,
): Promise<string> {
  if (secret === '') throw new SteplineError('The webhook secret is empty');
  const path = webhookSecretPath(stateDir, provider);
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, secret, { mode: 0o600 });
  return path;
}

export interface LocalRemoteOptions {
  /** The local mode's state folder; the repository is `<stateDir>/git/<name>.git`. */
  stateDir: string;
  /** The repository's name: letters, digits, dots, dashes and underscores. */
  name: string;
  /** The full name its pushes carry (runs, console, notifications); default `local/<name>`. */
  fullName?: string;
  /** The branch a new remote's HEAD names: the default branch, which the default trigger runs. Default `main`. */
  defaultBranch?: string;
  /** The local server's GitHub webhook route, e.g. `http://127.0.0.1:3000/webhooks/github`. */
  webhookUrl: string;
  /** The pusher's environment variable the hook reads the secret from when the secret file is absent. */
  secretEnvVar?: string;
}

const REPOSITORY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** The file names of the hook in the repository's hooks folder. */
export const HOOK_FILES = {
  /** The launcher git runs. */
  hook: 'post-receive',
  /** A copy of local/git/post-receive.ts; `.mts` so Node reads it as a module wherever the folder is. */
  script: 'stepline-post-receive.mts',
  config: 'stepline-hook.json',
} as const;

/** The hook's source, copied at each install so the repository holds everything its hook needs. */
const HOOK_SOURCE = new URL('./post-receive.ts', import.meta.url);

/**
 * Creates (or updates, if it exists) a bare repository at `<stateDir>/git/<name>.git` whose `post-receive`
 * hook posts each pushed ref to `webhookUrl` as a signed GitHub push webhook. Calling it again with another
 * URL (the server started on another port) points the hook at the new URL; pushed history is kept.
 *
 * @example
 * ```ts
 * await writeWebhookSecret('.stepline', secret);
 * const { remotePath } = await createLocalRemote({
 *   stateDir: '.stepline', name: 'hello-service', webhookUrl: 'http://127.0.0.1:3000/webhooks/github',
 * });
 * // git push <remotePath> main  →  remote: stepline: started hello-service-main-1a2b3c4-…
 * ```
 */
export async function createLocalRemote(options: LocalRemoteOptions): Promise<{ remotePath: string }> {
  if (!REPOSITORY_NAME.test(options.name) || options.name.endsWith('.git')) {
    throw new SteplineError(
      `Repository name "${options.name}" is not usable: letters, digits, dots, dashes and underscores, not ending in .git`,
    );
  }
  const url = URL.canParse(options.webhookUrl) ? new URL(options.webhookUrl) : undefined;
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
    throw new SteplineError(`The webhook URL "${options.webhookUrl}" is not an http(s) URL`);
  }
  const secretEnvVar = options.secretEnvVar ?? webhookSecretVariable(HOOK_PROVIDER);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(secretEnvVar)) {
    throw new SteplineError(`"${secretEnvVar}" is not an environment variable name`);
  }

  const stateDir = resolve(options.stateDir);
  const remotePath = join(stateDir, 'git', `${options.name}.git`);
  const defaultBranch = options.defaultBranch ?? 'main';
  if (
    options.defaultBranch !== undefined &&
    !(await gitSucceeds(['check-ref-format', `refs/heads/${defaultBranch}`]))
  ) {
    throw new SteplineError(`"${defaultBranch}" is not a valid branch name`);
  }
  await initBareRepository(remotePath, defaultBranch);
  // Named on purpose (a repository of the person's): its branch of the moment is the one pushes run on.
  if (options.defaultBranch !== undefined) {
    await git(['--git-dir', remotePath, 'symbolic-ref', 'HEAD', `refs/heads/${defaultBranch}`]);
  }

  const hooksDir = join(remotePath, 'hooks');
  await mkdir(hooksDir, { recursive: true });
  // A global core.hooksPath (husky, company templates) would hide this repository's hooks. Relative: git
  // runs a bare repository's hooks from the repository's folder, wherever it has been moved.
  await git(['--git-dir', remotePath, 'config', 'core.hooksPath', 'hooks']);

  const config: HookConfig = {
    webhookUrl: url.href,
    secretFile: webhookSecretPath(stateDir, HOOK_PROVIDER),
    secretEnvVar,
    fullName: options.fullName ?? `local/${options.name}`,
    cloneUrl: remotePath,
  };
  await writeFileAtomic(join(hooksDir, HOOK_FILES.config), `${JSON.stringify(config, null, 2)}\n`, {
    mode: 0o644,
  });
  await writeFileAtomic(join(hooksDir, HOOK_FILES.script), await readFile(HOOK_SOURCE, 'utf8'), {
    mode: 0o644,
  });
  await writeFileAtomic(join(hooksDir, HOOK_FILES.hook), hookLauncher(), { mode: 0o755 });
  // The JavaScript hook that earlier versions wrote; the launcher no longer names it.
  await rm(join(hooksDir, 'stepline-post-receive.mjs'), { force: true });
  return { remotePath };
}

async function initBareRepository(remotePath: string, defaultBranch: string): Promise<void> {
  if (await exists(join(remotePath, 'HEAD'))) {
    if (!(await gitSucceeds(['--git-dir', remotePath, 'rev-parse', '--is-bare-repository']))) {
      throw new SteplineError(`${remotePath} exists but is not a git repository`);
    }
    return;
  }
  if (await exists(remotePath)) {
    const entries = await readdir(remotePath);
    if (entries.length > 0) {
      throw new SteplineError(`${remotePath} exists, is not empty and is not a git repository`);
    }
  }
  await mkdir(remotePath, { recursive: true });
  await git(['init', '--quiet', '--bare', remotePath]);
  // Set explicitly rather than with --initial-branch (git 2.28+) or the user's init.defaultBranch.
  await git(['--git-dir', remotePath, 'symbolic-ref', 'HEAD', `refs/heads/${defaultBranch}`]);
}

/**
 * The hook git runs: a shell script that starts the hook with the Node that installed it (stepline's own
 * Node 22, which runs TypeScript by stripping its types), or with the `node` on the PATH when that one has
 * gone (which must then be Node 22.18 or later, as stepline requires). It names the hook and its
 * configuration by its own folder, so the repository can be moved.
 */
function hookLauncher(): string {
  return [
    '#!/bin/sh',
    '# stepline: posts each pushed ref to the local stepline server as a signed GitHub push webhook.',
    `NODE=${shellQuote(process.execPath)}`,
    '[ -x "$NODE" ] || NODE=node',
    'HOOKS=$(dirname "$0")',
    `exec "$NODE" "$HOOKS/${HOOK_FILES.script}" "$HOOKS/${HOOK_FILES.config}"`,
    '',
  ].join('\n');
}

export interface PushSampleAppOptions {
  /** The bare repository to push to (from {@link createLocalRemote}). */
  remotePath: string;
  /** The working clone: created when absent, reused (and its files replaced) when present. */
  workDir: string;
  /** The folder whose files become the whole content of the pushed commit (e.g. examples/hello-service). */
  sourceDir: string;
  /** The branch to push; default `main`. */
  branch?: string;
  /** The commit message; default "Update <folder name>". */
  message?: string;
}

/** Identity and settings for commits made here, so they work with no global git configuration. */
const COMMIT_SETTINGS = [
  '-c',
  'user.name=stepline',
  '-c',
  'user.email=stepline@localhost',
  '-c',
  'commit.gpgSign=false',
  // The working clone is stepline's own: no user or template hooks run on its commits.
  '-c',
  'core.hooksPath=/dev/null',
];

const SKIPPED_WHEN_COPYING = new Set(['.git', 'node_modules']);

/**
 * Commits the content of `sourceDir` (without `.git` and `node_modules`) on top of the remote branch in a
 * working clone, and pushes it. The commit's tree is the source folder (less what its own .gitignore
 * ignores): files that left the folder are removed. A commit is made even when nothing changed, so every call pushes a new commit and starts a
 * run. Resolves with the pushed commit and git's output, which holds the hook's `remote: stepline: …` lines.
 *
 * @example
 * ```ts
 * const { commit } = await pushSampleApp({ remotePath, workDir: '.stepline/work/hello-service',
 *   sourceDir: 'examples/hello-service' });
 * ```
 */
export async function pushSampleApp(
  options: PushSampleAppOptions,
): Promise<{ commit: string; output: string }> {
  const branch = options.branch ?? 'main';
  const remotePath = resolve(options.remotePath);
  const sourceDir = resolve(options.sourceDir);
  const workDir = resolve(options.workDir);
  const inside = relative(sourceDir, workDir);
  if (inside === '' || (!inside.startsWith('..') && !inside.startsWith(sep))) {
    throw new SteplineError(`The working clone ${workDir} must not be inside the source folder ${sourceDir}`);
  }
  if (!(await exists(sourceDir))) {
    throw new SteplineError(`The source folder ${sourceDir} does not exist`);
  }
  if (!(await gitSucceeds(['check-ref-format', `refs/heads/${branch}`]))) {
    throw new SteplineError(`"${branch}" is not a valid branch name`);
  }

  if (!(await exists(join(workDir, '.git')))) {
    await mkdir(workDir, { recursive: true });
    await git(['init', '--quiet', workDir]);
    await git(['remote', 'add', 'origin', remotePath], workDir);
  } else {
    await git(['remote', 'set-url', 'origin', remotePath], workDir);
  }
  await git(['fetch', '--quiet', 'origin', '--prune', '+refs/heads/*:refs/remotes/origin/*'], workDir);
  const remoteBranch = `refs/remotes/origin/${branch}`;
  await git(['symbolic-ref', 'HEAD', `refs/heads/${branch}`], workDir);
  if (await gitSucceeds(['rev-parse', '--verify', '--quiet', `${remoteBranch}^{commit}`], workDir)) {
    await git(['update-ref', `refs/heads/${branch}`, remoteBranch], workDir);
    await git(['read-tree', remoteBranch], workDir);
  } else {
    await git(['update-ref', '-d', `refs/heads/${branch}`], workDir);
    await git(['read-tree', '--empty'], workDir);
  }

  for (const entry of await readdir(workDir)) {
    if (entry !== '.git') await rm(join(workDir, entry), { recursive: true, force: true });
  }
  await cp(sourceDir, workDir, {
    recursive: true,
    filter: (source) => source === sourceDir || !SKIPPED_WHEN_COPYING.has(basename(source)),
  });

  const message = options.message ?? `Update ${basename(sourceDir)}`;
  // The user's global excludes do not apply: the commit holds what the folder (and its own .gitignore) holds.
  await git(['-c', 'core.excludesFile=/dev/null', 'add', '--all', '.'], workDir);
  await git(
    [...COMMIT_SETTINGS, 'commit', '--quiet', '--allow-empty', '--no-verify', '-m', message],
    workDir,
  );
  const commit = (await git(['rev-parse', 'HEAD'], workDir)).stdout.trim();
  const pushed = await git(['push', '--porcelain', 'origin', `HEAD:refs/heads/${branch}`], workDir);
  return { commit, output: `${pushed.stderr}${pushed.stdout}` };
}
