import { readFile, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { SteplineError } from '#shared/errors.ts';
import type { PipelineSettings } from '#shared/pipeline.ts';
import type { Push } from '#shared/push.ts';
import {
  parseRepositorySettingsFile,
  REPOSITORY_SETTINGS_FILE,
  type StackSettings,
  settingsForRepository,
} from '#shared/repository-settings.ts';
import { git } from './command.ts';

/**
 * A person's own repository run by the local mode (`stepline start --repo ../my-app`): where it is, the
 * name its local remote and its runs carry, and the branch its pushes run on by default.
 */
export interface LocalRepository {
  /** The top folder of its work tree. */
  path: string;
  /** The local remote's name (`.stepline/git/<name>.git`): the folder's name. */
  name: string;
  /** The name runs, the console and notifications show: `owner/name` of its `origin`, else `local/<name>`. */
  fullName: string;
  /** Its current branch (the local remote's default branch, which the default trigger runs). */
  branch: string;
}

/** A repository's name as a remote's file name: letters, digits, dots, dashes and underscores. */
function remoteName(folder: string): string {
  const name = folder.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return (name.endsWith('.git') ? name.slice(0, -4) : name).slice(0, 100) || 'repository';
}

/**
 * `owner/name` from a forge URL (`https://github.com/acme/shop.git`, `git@gitlab.com:group/sub/app.git`),
 * so that the overrides keyed `acme/*` apply locally as they do on AWS; undefined for anything else.
 */
export function fullNameOfRemote(url: string): string | undefined {
  const path = URL.canParse(url) ? new URL(url).pathname : /^[^/@:\s]+@[^/:\s]+:(.+)$/.exec(url)?.[1]; // scp-like: user@host:path
  if (path === undefined || !/^(https?|ssh|git):|@/.test(url)) return undefined;
  const segments = path
    .replace(/\.git\/?$/, '')
    .split('/')
    .filter((segment) => segment !== '');
  if (segments.length < 2 || segments.some((s) => !/^[\w.-]+$/.test(s))) return undefined;
  return segments.join('/');
}

/**
 * Looks at the folder `--repo` names: a git work tree, its name, its `origin`'s full name and its branch.
 * Throws a one-line SteplineError when it is no folder or no git repository.
 */
export async function inspectRepository(given: string): Promise<LocalRepository> {
  const folder = resolve(given);
  const found = await stat(folder).catch(() => undefined);
  if (!found?.isDirectory()) throw new SteplineError(`--repo ${given}: there is no folder ${folder}`);
  let path: string;
  try {
    path = (await git(['rev-parse', '--show-toplevel'], folder)).stdout.trim();
  } catch {
    throw new SteplineError(
      `--repo ${given}: ${folder} is not a git repository (run \`git init\` there, or name your repository's folder)`,
    );
  }
  if (path === '') {
    throw new SteplineError(`--repo ${given}: ${folder} is a bare git repository; name a clone of it`);
  }
  const name = remoteName(basename(path));
  const origin = await git(['config', '--get', 'remote.origin.url'], path).then(
    (result) => result.stdout.trim(),
    () => '',
  );
  const branch = await git(['symbolic-ref', '--short', '-q', 'HEAD'], path).then(
    (result) => result.stdout.trim(),
    () => '',
  );
  return {
    path,
    name,
    fullName: fullNameOfRemote(origin) ?? `local/${name}`,
    branch: branch || 'main',
  };
}

/**
 * The repository's `stepline.json` in its work tree (what it will push), checked; undefined when it has
 * none. Throws InvalidInputError naming the file and the field.
 */
export async function workTreeSettingsFile(
  repository: LocalRepository,
): Promise<Record<string, unknown> | undefined> {
  const file = join(repository.path, REPOSITORY_SETTINGS_FILE);
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  return text === undefined ? undefined : parseRepositorySettingsFile(text, file);
}

/** The buildspecs a run reads, in stage order: the Test stage's only when the stage is on. */
function stageBuildspecs(settings: PipelineSettings): string[] {
  const { test, ...others } = settings.buildspecs;
  return [...new Set([...(settings.test ? [test] : []), ...Object.values(others)])];
}

/**
 * Checks that the repository has a buildspec for every stage its settings name, in its work tree. Throws
 * one line naming the missing files and how to write them.
 */
export async function checkBuildspecs(
  repository: LocalRepository,
  settings: PipelineSettings,
): Promise<void> {
  const paths = stageBuildspecs(settings);
  const missing: string[] = [];
  for (const path of paths) {
    if (
      !(await stat(join(repository.path, path)).then(
        (s) => s.isFile(),
        () => false,
      ))
    )
      missing.push(path);
  }
  if (missing.length > 0) {
    throw new SteplineError(
      `${repository.fullName} (${repository.path}) has no ${missing.join(', ')}: ` +
        `write starter buildspecs with \`npx stepline init ${repository.path}\`, or name yours in its ${REPOSITORY_SETTINGS_FILE} (buildspecs)`,
    );
  }
}

/**
 * Checks that the repository's HEAD holds a buildspec for every stage (what `run --repo` pushes): one line
 * naming those that are only in the work tree, or that there is no commit yet.
 */
export async function checkCommittedBuildspecs(
  repository: LocalRepository,
  settings: PipelineSettings,
): Promise<void> {
  const paths = stageBuildspecs(settings);
  const listed = await git(['ls-tree', '-r', '--name-only', 'HEAD', '--', ...paths], repository.path).catch(
    () => undefined,
  );
  if (listed === undefined) {
    throw new SteplineError(
      `${repository.fullName} (${repository.path}) has no commit yet: commit its files, then run again`,
    );
  }
  const committed = new Set(listed.stdout.split('\n'));
  const missing = paths.filter((path) => !committed.has(path));
  if (missing.length > 0) {
    throw new SteplineError(
      `${repository.fullName} (${repository.path}) has ${missing.join(', ')} in its work tree but not in HEAD, which is what runs: commit them, then run again`,
    );
  }
}

/**
 * The settings a pushed commit runs with locally: the stack's (defaults and override) and, when the clone
 * URL is a repository on this machine, the `stepline.json` of the pushed commit itself.
 */
export async function pushedRepositorySettings(stack: StackSettings, push: Push): Promise<PipelineSettings> {
  const { cloneUrl, fullName } = push.repository;
  let file: Record<string, unknown> | undefined;
  if (push.after !== null && isAbsolute(cloneUrl)) {
    // A path that is no repository holding the commit: the build's checkout says so; nothing to read here.
    const listed = await git(
      ['ls-tree', '--name-only', push.after, '--', REPOSITORY_SETTINGS_FILE],
      cloneUrl,
    ).catch(() => undefined);
    if (listed !== undefined && listed.stdout.trim() !== '') {
      const text = (await git(['cat-file', 'blob', `${push.after}:${REPOSITORY_SETTINGS_FILE}`], cloneUrl))
        .stdout;
      file = parseRepositorySettingsFile(
        text,
        `${REPOSITORY_SETTINGS_FILE} of ${fullName} at ${push.after.slice(0, 7)}`,
      );
    }
  }
  return settingsForRepository(stack, fullName, file);
}
