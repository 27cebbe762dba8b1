/**
 * The local remote's `post-receive` hook (installed by local/git/remote.ts, which copies this file into
 * the repository's hooks folder as `stepline-post-receive.mts` at each start of the local mode).
 *
 * The launcher git runs (`post-receive`, a shell script) starts it with the path of its configuration
 * (`stepline-hook.json`, which names the webhook URL and where to read the secret).
 * For each `<old> <new> <ref>` line on stdin it describes the push as GitHub would (commits with their
 * added/modified/removed files, created/deleted/forced, head_commit, repository, pusher), signs the exact
 * body with HMAC-SHA256 and posts it to the local server. It prints one line per ref for the pusher and
 * always exits 0: the push itself has succeeded.
 *
 * It runs on its own, outside stepline, with the Node that installed it: so it imports nothing but Node's
 * own modules and uses only TypeScript that Node runs by stripping the types (no enums, no namespaces).
 */
import { execFileSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** What the hook reads at each push (the file its launcher names); never the secret itself. */
export interface HookConfig {
  webhookUrl: string;
  secretFile: string;
  secretEnvVar: string;
  fullName: string;
  cloneUrl: string;
}

interface RefUpdate {
  before: string;
  after: string;
  ref: string;
}

interface PushCommit {
  id: string;
  tree_id: string;
  distinct: boolean;
  message: string;
  timestamp: string;
  author: { name: string; email: string };
  committer: { name: string; email: string; date: string };
  added: string[];
  removed: string[];
  modified: string[];
}

/** The server's answer to a push (local/http's webhook route), as far as the hook tells the pusher. */
interface WebhookAnswer {
  message?: string;
  started?: string[];
  alreadyStarted?: string[];
  skipped?: { ref: string; reason: string }[];
}

/** What a failed `execFileSync` or fetch carries besides its message. */
interface ProcessFailure {
  name?: string;
  message?: string;
  status?: number | null;
  code?: string;
  stderr?: Buffer | string;
}

const ZERO = '0000000000000000000000000000000000000000';
const MAX_COMMITS = 2048;
const TIMEOUT_MS = 15000;
const FIELDS = ['%H', '%T', '%P', '%an', '%ae', '%aI', '%cn', '%ce', '%cI', '%B'];

function say(line: string): void {
  process.stdout.write(`stepline: ${line}\n`);
}

function git(args: string[]): string {
  return execFileSync('git', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
}

function gitTry(args: string[]): string {
  try {
    return git(args).trim();
  } catch {
    return '';
  }
}

function isAncestor(older: string, newer: string): boolean {
  try {
    git(['merge-base', '--is-ancestor', older, newer]);
    return true;
  } catch (error) {
    if ((error as ProcessFailure).status === 1) return false;
    throw error;
  }
}

function readSecret(config: HookConfig): string | undefined {
  try {
    const secret = readFileSync(config.secretFile, 'utf8').replace(/\r?\n$/, '');
    if (secret !== '') return secret;
  } catch (error) {
    if ((error as ProcessFailure).code !== 'ENOENT') throw error;
  }
  const fromEnvironment = process.env[config.secretEnvVar];
  return fromEnvironment ? fromEnvironment : undefined;
}

function commitsOf(revisions: string[]): PushCommit[] {
  const text = git([
    'log',
    '--reverse',
    `--max-count=${MAX_COMMITS}`,
    `--format=${FIELDS.join('%x00')}%x1e`,
    ...revisions,
  ]);
  return text
    .split('\x1e')
    .map((record) => record.replace(/^\n/, ''))
    .filter((record) => record !== '')
    .map(describeCommit);
}

function describeCommit(record: string): PushCommit {
  const [
    id = '',
    tree = '',
    parents = '',
    authorName = '',
    authorEmail = '',
    authorDate = '',
    committerName = '',
    committerEmail = '',
    committerDate = '',
    message = '',
  ] = record.split('\x00');
  const firstParent = parents.split(' ').filter(Boolean)[0];
  const diff = firstParent
    ? git(['diff-tree', '-r', '-z', '--no-renames', '--no-commit-id', '--name-status', firstParent, id])
    : git(['diff-tree', '-r', '-z', '--no-renames', '--no-commit-id', '--name-status', '--root', id]);
  const added: string[] = [];
  const modified: string[] = [];
  const removed: string[] = [];
  const parts = diff.split('\x00').filter((part) => part !== '');
  for (let index = 0; index + 1 < parts.length; index += 2) {
    const status = parts[index];
    const path = parts[index + 1] ?? '';
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

/** The commits a ref update brings, oldest first, as GitHub lists them in a push event. */
function pushedCommits(update: RefUpdate, after: string, updates: RefUpdate[]): PushCommit[] {
  if (update.after === ZERO) return [];
  if (update.before !== ZERO) return commitsOf([`${update.before}..${after}`, '--']);
  // New to the repository: not reachable from any ref as it was before this push.
  const pushedRefs = new Set(updates.map((other) => other.ref));
  const others = git(['for-each-ref', '--format=%(objectname) %(refname)'])
    .split('\n')
    .filter((line) => line !== '' && !pushedRefs.has(line.slice(line.indexOf(' ') + 1)))
    .map((line) => line.slice(0, line.indexOf(' ')));
  const previous = updates.filter((other) => other.before !== ZERO).map((other) => other.before);
  return commitsOf([after, '--not', ...others, ...previous, '--']);
}

function pushPayload(config: HookConfig, update: RefUpdate, updates: RefUpdate[]) {
  const created = update.before === ZERO;
  const deleted = update.after === ZERO;
  // A tag object is described by the commit it names: that is what a build checks out.
  const after = deleted ? ZERO : git(['rev-parse', `${update.after}^{commit}`]).trim();
  const forced = !created && !deleted && !isAncestor(update.before, after);
  const commits = pushedCommits(update, after, updates);
  const headCommit = deleted
    ? null
    : (commits.find((commit) => commit.id === after) ?? commitsOf(['--max-count=1', after, '--'])[0] ?? null);
  const defaultBranch = gitTry(['symbolic-ref', '--short', 'HEAD']) || 'main';
  const pusherName =
    gitTry(['config', 'user.name']) || process.env.USER || process.env.USERNAME || 'stepline';
  const pusherEmail = gitTry(['config', 'user.email']);
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
      name: config.fullName.split('/').pop(),
      full_name: config.fullName,
      private: true,
      owner: { name: config.fullName.split('/')[0], login: config.fullName.split('/')[0] },
      clone_url: config.cloneUrl,
      url: config.cloneUrl,
      default_branch: defaultBranch,
      master_branch: defaultBranch,
    },
    pusher: pusherEmail ? { name: pusherName, email: pusherEmail } : { name: pusherName },
    sender: { login: pusherName },
  };
}

function describeAnswer(ref: string, status: number, text: string): string[] {
  let body: WebhookAnswer | undefined;
  try {
    body = JSON.parse(text) as WebhookAnswer;
  } catch {
    body = undefined;
  }
  if (status >= 200 && status < 300 && body) {
    const lines: string[] = [];
    for (const name of body.started ?? []) lines.push(`started ${name}`);
    for (const name of body.alreadyStarted ?? []) lines.push(`already started ${name}`);
    for (const skipped of body.skipped ?? [])
      lines.push(`nothing started for ${skipped.ref}: ${skipped.reason}`);
    if (lines.length === 0) lines.push(`${body.message ?? 'nothing started'} (${ref})`);
    return lines;
  }
  const reason = body && typeof body.message === 'string' ? body.message : text.slice(0, 200).trim();
  return [`the server refused the push of ${ref} (HTTP ${status})${reason ? `: ${reason}` : ''}`];
}

/** Posts one ref's push; false when the server could not be reached at all. */
async function deliver(config: HookConfig, ref: string, payload: object, secret: string): Promise<boolean> {
  const body = JSON.stringify(payload);
  const signature = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
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
    const { name } = error as ProcessFailure;
    if (name === 'TimeoutError' || name === 'AbortError') {
      say(
        `stepline did not answer at ${config.webhookUrl} within ${TIMEOUT_MS / 1000} s: the push of ${ref} may not have started a run`,
      );
      return true;
    }
    return false;
  }
}

function readUpdates(): RefUpdate[] {
  return readFileSync(0, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [before = '', after = '', ref = ''] = line.trim().split(' ');
      return { before, after, ref };
    });
}

async function main(configFile: string): Promise<void> {
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as HookConfig;
  const updates = readUpdates();
  if (updates.length === 0) return;
  const secret = readSecret(config);
  if (secret === undefined) {
    say(
      `no webhook secret in ${config.secretFile} or $${config.secretEnvVar}: nothing was sent; start stepline with npm start`,
    );
    return;
  }
  for (const update of updates) {
    let payload: object;
    try {
      payload = pushPayload(config, update, updates);
    } catch (error) {
      const failure = error as ProcessFailure;
      const detail = String(failure.stderr?.toString().trim() || failure.message);
      say(`could not describe the push of ${update.ref}: ${detail}`);
      continue;
    }
    if (!(await deliver(config, update.ref, payload, secret))) {
      say(
        `stepline is not running at ${config.webhookUrl}: start it with npm start (the push of ${update.ref} started no run)`,
      );
    }
  }
}

// The launcher names the configuration file: `node stepline-post-receive.mts <config file>`.
main(process.argv[2] ?? '').catch((error: unknown) => {
  say(`the push hook failed: ${(error as Error).message}`);
});
