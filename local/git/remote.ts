import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, cp, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { SteplineError } from '#shared/errors.ts';

/**
 * The local git trigger: a bare repository on this machine whose `post-receive` hook posts each pushed
 * ref to the local stepline server as a signed GitHub `push` webhook, so a plain `git push` starts a run.
 *
 * The hook is a Node script (written next to the repository's hooks, with a small JSON file naming the
 * webhook URL); it never holds the secret. It reads the secret from `<stateDir>/webhook-secret` (mode 0600,
 * see {@link writeWebhookSecret}), which a `git push` from any terminal can read, or else from the pusher's
 * environment variable (`STEPLINE_WEBHOOK_SECRET` unless told otherwise).
 */

const execFileAsync = promisify(execFile);

/** A git command that could not run or failed; the message names the command and what git said. */
export class GitCommandError extends SteplineError {
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

function gitEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of GIT_LOCATION_VARIABLES) delete env[name];
  return env;
}

/** Runs git with an argument list (never a shell string) and returns its stdout. */
async function git(args: string[], cwd?: string): Promise<{ stdout: string; stderr: string }> {
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

/** True when git exits 0, false when it exits 1; anything else throws. */
async function gitSucceeds(args: string[], cwd?: string): Promise<boolean> {
  try {
    await git(args, cwd);
    return true;
  } catch (error) {
    if (error instanceof GitCommandError && (error.cause as { code?: unknown }).code === 1) return false;
    throw error;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Writes a file through a temporary name, so a concurrent reader (a push's hook) never sees half of it. */
async function writeFileAtomically(path: string, content: string, mode: number): Promise<void> {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temporary, content, { mode });
  await chmod(temporary, mode);
  await rename(temporary, path);
}

/** Where the local mode keeps the webhook secret that the push hook signs with. */
export function webhookSecretPath(stateDir: string): string {
  return join(resolve(stateDir), 'webhook-secret');
}

/**
 * Writes the webhook secret to `<stateDir>/webhook-secret` with mode 0600, where the push hook reads it
 * (a user's own `git push` from another terminal has no stepline environment variables). Returns the path.
 */
export async function writeWebhookSecret(stateDir: string, secret: string): Promise<string> {
  if (secret === '') throw new SteplineError('The webhook secret is empty');
  const path = webhookSecretPath(stateDir);
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomically(path, secret, 0o600);
  return path;
}

export interface LocalRemoteOptions {
  /** The local mode's state folder; the repository is `<stateDir>/git/<name>.git`. */
  stateDir: string;
  /** The repository's name: letters, digits, dots, dashes and underscores. Its full name is `local/<name>`. */
  name: string;
  /** The local server's GitHub webhook route, e.g. `http://127.0.0.1:3000/webhooks/github`. */
  webhookUrl: string;
  /** The pusher's environment variable the hook reads the secret from when the secret file is absent. */
  secretEnvVar?: string;
}

/** What the hook script reads at each push; never the secret itself. */
interface HookConfig {
  webhookUrl: string;
  secretFile: string;
  secretEnvVar: string;
  fullName: string;
  cloneUrl: string;
}

const REPOSITORY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** The file names of the hook in the repository's hooks folder. */
export const HOOK_FILES = {
  hook: 'post-receive',
  script: 'stepline-post-receive.mjs',
  config: 'stepline-hook.json',
} as const;

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
  const secretEnvVar = options.secretEnvVar ?? 'STEPLINE_WEBHOOK_SECRET';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(secretEnvVar)) {
    throw new SteplineError(`"${secretEnvVar}" is not an environment variable name`);
  }

  const stateDir = resolve(options.stateDir);
  const remotePath = join(stateDir, 'git', `${options.name}.git`);
  await initBareRepository(remotePath);

  const hooksDir = join(remotePath, 'hooks');
  await mkdir(hooksDir, { recursive: true });
  // A global core.hooksPath (husky, company templates) would hide this repository's hooks.
  await git(['--git-dir', remotePath, 'config', 'core.hooksPath', hooksDir]);

  const config: HookConfig = {
    webhookUrl: url.href,
    secretFile: webhookSecretPath(stateDir),
    secretEnvVar,
    fullName: `local/${options.name}`,
    cloneUrl: remotePath,
  };
  await writeFileAtomically(join(hooksDir, HOOK_FILES.config), `${JSON.stringify(config, null, 2)}\n`, 0o644);
  await writeFileAtomically(join(hooksDir, HOOK_FILES.script), POST_RECEIVE_SCRIPT, 0o644);
  await writeFileAtomically(
    join(hooksDir, HOOK_FILES.hook),
    hookLauncher(join(hooksDir, HOOK_FILES.script)),
    0o755,
  );
  return { remotePath };
}

async function initBareRepository(remotePath: string): Promise<void> {
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
  await git(['--git-dir', remotePath, 'symbolic-ref', 'HEAD', 'refs/heads/main']);
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The hook git runs: a shell script that starts the hook script with the Node that created it (stepline's
 * own Node 22), or with the `node` on the PATH when that one has gone.
 */
function hookLauncher(scriptPath: string): string {
  return [
    '#!/bin/sh',
    '# stepline: posts each pushed ref to the local stepline server as a signed GitHub push webhook.',
    `NODE=${shellQuote(process.execPath)}`,
    '[ -x "$NODE" ] || NODE=node',
    `exec "$NODE" ${shellQuote(scriptPath)}`,
    '',
  ].join('\n');
}

/**
 * The hook script (plain JavaScript for any Node 18 or later, no dependencies). For each `<old> <new> <ref>`
 * line on stdin it describes the push as GitHub would (commits with their added/modified/removed files,
 * created/deleted/forced, head_commit, repository, pusher), signs the exact body with HMAC-SHA256 and posts
 * it. It prints one line per ref for the pusher and always exits 0: the push itself has succeeded.
 */
const POST_RECEIVE_SCRIPT = String.raw`// Written by stepline (local/git-remote.ts); rewritten each time the local mode starts.
import { execFileSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

const ZERO = '0000000000000000000000000000000000000000';
const MAX_COMMITS = 2048;
const TIMEOUT_MS = 15000;
const config = JSON.parse(readFileSync(new URL('./stepline-hook.json', import.meta.url), 'utf8'));

function say(line) {
  process.stdout.write('stepline: ' + line + '\n');
}

function git(args) {
  return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
}

function gitTry(args) {
  try {
    return git(args).trim();
  } catch {
    return '';
  }
}

function isAncestor(older, newer) {
  try {
    git(['merge-base', '--is-ancestor', older, newer]);
    return true;
  } catch (error) {
    if (error.status === 1) return false;
    throw error;
  }
}

function readSecret() {
  try {
    const secret = readFileSync(config.secretFile, 'utf8').replace(/\r?\n$/, '');
    if (secret !== '') return secret;
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  }
  const fromEnvironment = process.env[config.secretEnvVar];
  return fromEnvironment ? fromEnvironment : undefined;
}

const FIELDS = ['%H', '%T', '%P', '%an', '%ae', '%aI', '%cn', '%ce', '%cI', '%B'];

function commitsOf(revisions) {
  const text = git(['log', '--reverse', '--max-count=' + MAX_COMMITS, '--format=' + FIELDS.join('%x00') + '%x1e', ...revisions]);
  return text
    .split('\x1e')
    .map((record) => record.replace(/^\n/, ''))
    .filter((record) => record !== '')
    .map(describeCommit);
}

function describeCommit(record) {
  const [id, tree, parents, authorName, authorEmail, authorDate, committerName, committerEmail, committerDate, message] =
    record.split('\x00');
  const firstParent = parents.split(' ').filter(Boolean)[0];
  const diff = firstParent
    ? git(['diff-tree', '-r', '-z', '--no-renames', '--no-commit-id', '--name-status', firstParent, id])
    : git(['diff-tree', '-r', '-z', '--no-renames', '--no-commit-id', '--name-status', '--root', id]);
  const added = [];
  const modified = [];
  const removed = [];
  const parts = diff.split('\x00').filter((part) => part !== '');
  for (let index = 0; index + 1 < parts.length; index += 2) {
    const status = parts[index];
    const path = parts[index + 1];
    if (status === 'A') added.push(path);
    else if (status === 'D') removed.push(path);
    else modified.push(path);
  }
  return {
    id,
    tree_id: tree,
    distinct: true,
    message: message.replace(/\n+$/, ''),
    timestamp: authorDate,
    author: { name: authorName, email: authorEmail },
    committer: { name: committerName, email: committerEmail, date: committerDate },
    added,
    removed,
    modified,
  };
}

function pushPayload(update, updates) {
  const created = update.before === ZERO;
  const deleted = update.after === ZERO;
  // A tag object is described by the commit it names: that is what a build checks out.
  const after = deleted ? ZERO : git(['rev-parse', update.after + '^{commit}']).trim();
  const forced = !created && !deleted && !isAncestor(update.before, after);
  let commits = [];
  if (!deleted) {
    if (created) {
      // New to the repository: not reachable from any ref as it was before this push.
      const pushedRefs = new Set(updates.map((other) => other.ref));
      const others = git(['for-each-ref', '--format=%(objectname) %(refname)'])
        .split('\n')
        .filter((line) => line !== '' && !pushedRefs.has(line.slice(line.indexOf(' ') + 1)))
        .map((line) => line.slice(0, line.indexOf(' ')));
      const previous = updates.filter((other) => other.before !== ZERO).map((other) => other.before);
      commits = commitsOf([after, '--not', ...others, ...previous, '--']);
    } else {
      commits = commitsOf([update.before + '..' + after, '--']);
    }
  }
  const headCommit = deleted
    ? null
    : (commits.find((commit) => commit.id === after) ?? commitsOf(['--max-count=1', after, '--'])[0] ?? null);
  const defaultBranch = gitTry(['symbolic-ref', '--short', 'HEAD']) || 'main';
  const pusherName = gitTry(['config', 'user.name']) || process.env.USER || process.env.USERNAME || 'stepline';
  const pusherEmail = gitTry(['config', 'user.email']);
  const name = config.fullName.split('/').pop();
  return {
    ref: update.ref,
    before: update.before,
    after,
    created,
    deleted,
    forced,
    base_ref: null,
    compare: '',
    commits,
    head_commit: headCommit,
    repository: {
      name,
      full_name: config.fullName,
      private: true,
      owner: { name: 'local', login: 'local' },
      clone_url: config.cloneUrl,
      url: config.cloneUrl,
      default_branch: defaultBranch,
      master_branch: defaultBranch,
    },
    pusher: pusherEmail ? { name: pusherName, email: pusherEmail } : { name: pusherName },
    sender: { login: pusherName },
  };
}

function describeAnswer(ref, status, text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (status >= 200 && status < 300 && body) {
    const lines = [];
    for (const name of body.started ?? []) lines.push('started ' + name);
    for (const name of body.alreadyStarted ?? []) lines.push('already started ' + name);
    for (const skipped of body.skipped ?? []) lines.push('nothing started for ' + skipped.ref + ': ' + skipped.reason);
    if (lines.length === 0) lines.push((body.message ?? 'nothing started') + ' (' + ref + ')');
    return lines;
  }
  const reason = body && typeof body.message === 'string' ? body.message : text.slice(0, 200).trim();
  return ['the server refused the push of ' + ref + ' (HTTP ' + status + ')' + (reason ? ': ' + reason : '')];
}

async function deliver(ref, payload, secret) {
  const body = JSON.stringify(payload);
  const signature = 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
  try {
    const response = await fetch(config.webhookUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'stepline-git-hook',
        'x-github-event': 'push',
        'x-github-delivery': randomUUID(),
        'x-hub-signature-256': signature,
      },
      body,
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    for (const line of describeAnswer(ref, response.status, await response.text())) say(line);
    return true;
  } catch (error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError') {
      say('stepline did not answer at ' + config.webhookUrl + ' within ' + TIMEOUT_MS / 1000 + ' s: the push of ' + ref + ' may not have started a run');
      return true;
    }
    return false;
  }
}

async function main() {
  const updates = readFileSync(0, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [before, after, ref] = line.trim().split(' ');
      return { before, after, ref };
    });
  if (updates.length === 0) return;
  const secret = readSecret();
  if (secret === undefined) {
    say('no webhook secret in ' + config.secretFile + ' or $' + config.secretEnvVar + ': nothing was sent; start stepline with npm start');
    return;
  }
  for (const update of updates) {
    let payload;
    try {
      payload = pushPayload(update, updates);
    } catch (error) {
      const detail = String((error.stderr && error.stderr.toString().trim()) || error.message);
      say('could not describe the push of ' + update.ref + ': ' + detail);
      continue;
    }
    if (!(await deliver(update.ref, payload, secret))) {
      say('stepline is not running at ' + config.webhookUrl + ': start it with npm start (the push of ' + update.ref + ' started no run)');
    }
  }
}

main().catch((error) => {
  say('the push hook failed: ' + error.message);
});
`;

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
