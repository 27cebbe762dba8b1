import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { SteplineError } from '#shared/errors.ts';
import { PipelineSettingsSchema } from '#shared/pipeline.ts';
import { REPOSITORY_SETTINGS_FILE } from '#shared/repository-settings.ts';

/**
 * `stepline init [path]`: the starter kit. Writes a buildspec per stage (local/cli/starter/, each runnable
 * as it stands on a plain Node or static project, with comments on what to change for Terraform, Docker
 * and Helm) where the default settings look for them, and a `stepline.json` with the defaults spelled out.
 * Nothing is overwritten without `force`: when a file is there, nothing is written.
 */

/** The starter buildspecs, one per stage, copied from this folder. */
const STARTER_DIR = new URL('./starter/', import.meta.url);

/** What each file is for, as `init` prints it. */
const PURPOSE: Record<string, string> = {
  test: 'Test stage: node --run test when package.json has a "test" script',
  image: 'Image stage: packs the repository (Docker: see its comments)',
  infrastructure: 'Infrastructure stage, per environment (Terraform: see its comments)',
  deploy: 'Deploy stage, per environment (Helm: see its comments)',
};

/** The stages in the order they run; a stage this list does not know comes last. */
const STAGES = ['test', 'image', 'infrastructure', 'deploy'];
const stageOrder = (stage: string) => (STAGES.includes(stage) ? STAGES.indexOf(stage) : STAGES.length);

export interface InitOptions {
  /** The repository's folder (default: the current directory). */
  path: string;
  force: boolean;
  print: (line: string) => void;
}

/** The files `init` writes, relative to the repository, with their content and what they are for. */
export async function starterFiles(): Promise<{ path: string; content: string; purpose: string }[]> {
  const defaults = PipelineSettingsSchema.parse({});
  // In the order the stages run.
  const named: Record<string, string> = defaults.buildspecs;
  const buildspecs = Object.fromEntries(
    Object.entries(named).sort(([a], [b]) => stageOrder(a) - stageOrder(b)),
  ) as Record<string, string>;
  const files = await Promise.all(
    Object.entries(buildspecs).map(async ([stage, path]) => ({
      path,
      content: await readFile(new URL(`${stage}.yml`, STARTER_DIR), 'utf8'),
      purpose: PURPOSE[stage] ?? `the ${stage} stage`,
    })),
  );
  files.push({
    path: REPOSITORY_SETTINGS_FILE,
    content: `${JSON.stringify({ ...defaults, buildspecs }, null, 2)}\n`,
    purpose: "this repository's pipeline: the defaults spelled out (environments, approval, buildspecs)",
  });
  return files;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Writes the starter kit into `options.path`; prints each file written and what to do next. */
export async function init(options: InitOptions): Promise<void> {
  const root = resolve(options.path);
  if (
    !(await stat(root).then(
      (s) => s.isDirectory(),
      () => false,
    ))
  ) {
    throw new SteplineError(`init: there is no folder ${root} (create it, or name your repository's folder)`);
  }
  const files = await starterFiles();
  if (!options.force) {
    const present: string[] = [];
    for (const file of files) if (await exists(join(root, file.path))) present.push(file.path);
    if (present.length > 0) {
      throw new SteplineError(
        `init: ${root} already has ${present.join(', ')}: nothing was written (--force overwrites them)`,
      );
    }
  }
  const shown = relative(process.cwd(), root) || '.';
  const width = Math.max(...files.map((file) => join(shown, file.path).length));
  for (const file of files) {
    const target = join(root, file.path);
    await mkdir(dirname(target), { recursive: true });
    // Without --force, `wx` refuses a file that appeared since the check rather than replace it.
    await writeFile(target, file.content, { flag: options.force ? 'w' : 'wx' });
    options.print(`wrote ${join(shown, file.path).padEnd(width)}  ${file.purpose}`);
  }
  const isRepository = await exists(join(root, '.git'));
  const paths = [...new Set(files.map((file) => file.path.split('/')[0]))].join(' ');
  options.print(
    isRepository
      ? `next: commit them (git -C ${shown} add ${paths} && git -C ${shown} commit -m "Add stepline"), then npx stepline start --repo ${shown}`
      : `next: ${shown} is not a git repository yet: git init it, commit these files, then npx stepline start --repo ${shown}`,
  );
}
