import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { GitCommandError, git } from '#local/git/command.ts';
import { SteplineError } from '#shared/errors.ts';

/**
 * A build's source: a fresh git working tree of one exact commit, its own for the whole build, as
 * CodeBuild gives each build (a real repository, so `git rev-parse HEAD` and `git log` work in it).
 *
 * From a repository on this machine (the local remote, or any local clone) the checkout copies nothing:
 * the new repository borrows the source's objects through git's alternates (`objects/info/alternates`,
 * see gitrepository-layout), so its cost does not grow with the source's history, and one git process
 * (`checkout --detach`) writes the index and the files; a version other than a full commit id costs one
 * more, to resolve it in the source. What a build writes (objects, refs, config, index) stays in its own
 * repository, never in the source's, and builds of the same repository share no lock and no file, so any
 * number can check out at once (a `git worktree` per build would share refs and take the source's
 * worktree locks; a `git clone` copies or links every object). From anywhere else (a URL): `git clone`.
 */

/** The version could not be checked out: CodeBuild's `CLIENT_ERROR` of DOWNLOAD_SOURCE. */
export class CheckoutError extends SteplineError {
  override readonly name: string = 'CheckoutError';
}

export interface CheckoutRequest {
  /** The source repository: a path on this machine or a URL git can clone. */
  location: string;
  /** A commit, branch, tag or any revision git understands; the checkout is of the commit it names. */
  version: string;
  /** The new working tree; must not exist or be empty. Removed by {@link removeCheckout}. */
  dir: string;
}

/**
 * Checks out the commit `version` names into a new repository at `dir` and returns that commit's id.
 * Throws {@link CheckoutError} naming the version and the location when it cannot.
 *
 * @example
 * ```ts
 * const { commit } = await checkOutCommit({ location: remotePath, version: 'main', dir: workDir });
 * try { … } finally { await removeCheckout(workDir); }
 * ```
 */
export async function checkOutCommit(request: CheckoutRequest): Promise<{ commit: string }> {
  try {
    const source = await localRepository(request.location);
    return source
      ? await checkOutFromLocalRepository(source, request.version, request.dir)
      : await checkOutByCloning(request.location, request.version, request.dir);
  } catch (error) {
    const detail = (error as Error).message;
    throw new CheckoutError(`could not check out ${request.version} from ${request.location}: ${detail}`, {
      cause: error,
    });
  }
}

/** Removes a checkout and everything the build wrote in it; nothing of it is kept elsewhere. */
export async function removeCheckout(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

interface LocalRepository {
  /** The folder git commands are pointed at (`--git-dir`). */
  gitDir: string;
  /** Its object store, which the checkout borrows. */
  objectsDir: string;
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (found) => found.isDirectory(),
    () => false,
  );
}

/** The repository at a local path (bare, or a working tree with its `.git` folder), if it is one. */
async function localRepository(location: string): Promise<LocalRepository | undefined> {
  if (!isAbsolute(location) && !location.startsWith('.')) return undefined;
  const path = resolve(location);
  for (const gitDir of [path, join(path, '.git')]) {
    const objectsDir = join(gitDir, 'objects');
    if ((await isDirectory(objectsDir)) && (await isDirectory(join(gitDir, 'refs')))) {
      return { gitDir, objectsDir };
    }
  }
  return undefined;
}

async function checkOutFromLocalRepository(
  source: LocalRepository,
  version: string,
  dir: string,
): Promise<{ commit: string }> {
  // A full commit id (what a pushed run asks for) is found through the alternates; any other name (a
  // branch, a tag, HEAD) is one of the source's refs, which the new repository does not have.
  const target = FULL_OBJECT_ID.test(version) ? version : await resolveCommit(source, version);

  // The layout `git init` makes, less its sample hooks and description (which cost more than the rest).
  // The folders and files are independent of each other: made at once, not one after another.
  const gitDir = join(dir, '.git');
  await Promise.all([
    mkdir(join(gitDir, 'objects', 'info'), { recursive: true }).then(() =>
      writeFile(join(gitDir, 'objects', 'info', 'alternates'), `${source.objectsDir}\n`),
    ),
    mkdir(join(gitDir, 'refs', 'heads'), { recursive: true }).then(() =>
      Promise.all([
        mkdir(join(gitDir, 'refs', 'tags')),
        writeFile(join(gitDir, 'HEAD'), 'ref: refs/heads/main\n'),
        writeFile(join(gitDir, 'config'), repositoryConfig(source.gitDir)),
      ]),
    ),
  ]);
  // checkout --detach peels a tag to its commit, refuses a tree or a blob, and leaves HEAD holding the
  // commit's id: one process does the check, the index and the files.
  await git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', target, '--'], dir);
  const commit = (await readFile(join(gitDir, 'HEAD'), 'utf8')).trim();
  if (!FULL_OBJECT_ID.test(commit)) throw new Error(`git left HEAD at "${commit}", not at a commit`);
  return { commit };
}

const FULL_OBJECT_ID = /^[0-9a-f]{40}$/;

/** The commit a revision names in the source repository. */
async function resolveCommit(source: LocalRepository, version: string): Promise<string> {
  const resolved = await git([
    '--git-dir',
    source.gitDir,
    'rev-parse',
    '--verify',
    '--quiet',
    '--end-of-options',
    `${version}^{commit}`,
  ]).catch((error: unknown) => {
    // --verify --quiet answers a name that is no commit with exit status 1 and nothing else.
    if (error instanceof GitCommandError && (error.cause as { code?: unknown }).code === 1) return undefined;
    throw error;
  });
  const commit = resolved?.stdout.trim();
  if (!commit) throw new Error(`the repository has no commit ${version}`);
  return commit;
}

/** core settings as `git init` writes them on this kind of system, and the source as `origin`. */
function repositoryConfig(origin: string): string {
  const lines = [
    '[core]',
    '\trepositoryformatversion = 0',
    '\tfilemode = true',
    '\tbare = false',
    '\tlogallrefupdates = true',
  ];
  // A value git would read back differently (a line break) is better left out than written wrong.
  if (!/[\n\r\0]/.test(origin)) {
    const quoted = `"${origin.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
    lines.push('[remote "origin"]', `\turl = ${quoted}`, '\tfetch = +refs/heads/*:refs/remotes/origin/*');
  }
  return `${lines.join('\n')}\n`;
}

async function checkOutByCloning(
  location: string,
  version: string,
  dir: string,
): Promise<{ commit: string }> {
  await mkdir(dir, { recursive: true });
  await git(['clone', '--quiet', '--no-checkout', '--', location, dir]);
  const clone = { gitDir: join(dir, '.git'), objectsDir: join(dir, '.git', 'objects') };
  // A branch other than the default one is only origin's in a new clone.
  const commit =
    (await resolveCommit(clone, version).catch(() => undefined)) ??
    (await resolveCommit(clone, `refs/remotes/origin/${version}`).catch(() => undefined));
  if (!commit) throw new Error(`the repository has no commit ${version}`);
  await git(['-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', commit, '--'], dir);
  return { commit };
}
