import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import picomatch from 'picomatch';

/** The files a buildspec's `artifacts` and `reports` select: globs, `base-directory`, `exclude-paths`. */

/** Relative paths of the files under `root` (symbolic links to files included), with `/` separators. */
async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  const files: string[] = [];
  for (const entry of entries) {
    const full = path.join(entry.parentPath, entry.name);
    const isFile =
      entry.isFile() || (entry.isSymbolicLink() && (await stat(full).catch(() => undefined))?.isFile());
    if (isFile) files.push(path.relative(root, full).split(path.sep).join('/'));
  }
  return files.sort();
}

function normalisePattern(pattern: string): string {
  return pattern
    .trim()
    .replace(/^(\.\/)+/, '')
    .replace(/\/+$/, '');
}

/** The folders `base-directory` names, relative to the source; a glob matches top-level folders. */
async function baseDirectories(
  workDir: string,
  baseDirectory: string | undefined,
): Promise<string[] | { problem: string }> {
  if (baseDirectory === undefined) return [workDir];
  const pattern = normalisePattern(baseDirectory);
  if (!picomatch.scan(pattern).isGlob) {
    const folder = path.resolve(workDir, pattern);
    if (folder !== workDir && !folder.startsWith(`${workDir}${path.sep}`)) {
      return { problem: `base-directory ${baseDirectory} is outside the source directory` };
    }
    return [folder];
  }
  const isMatch = picomatch(pattern, { dot: true });
  const entries = await readdir(workDir, { withFileTypes: true });
  return entries
    .filter((entry) => entry.isDirectory() && isMatch(entry.name))
    .map((entry) => path.join(workDir, entry.name))
    .sort();
}

/** The files a `files` / `base-directory` / `exclude-paths` selection names, with their output paths. */
export async function selectFiles(
  selection: {
    files: string[];
    baseDirectory?: string | undefined;
    excludePaths?: string[];
    discardPaths: boolean;
  },
  workDir: string,
): Promise<{ source: string; output: string }[] | { problem: string }> {
  const bases = await baseDirectories(workDir, selection.baseDirectory);
  if ('problem' in bases) return bases;
  const isIncluded = picomatch(selection.files.map(normalisePattern), { dot: true });
  const excludes = (selection.excludePaths ?? []).map(normalisePattern);
  const isExcluded = excludes.length === 0 ? () => false : picomatch(excludes, { dot: true });
  const selected: { source: string; output: string }[] = [];
  for (const base of bases) {
    for (const file of await listFiles(base)) {
      if (!isIncluded(file) || isExcluded(file)) continue;
      selected.push({
        source: path.join(base, file),
        output: selection.discardPaths ? path.posix.basename(file) : file,
      });
    }
  }
  return selected;
}
