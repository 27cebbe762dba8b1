import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const PROJECT_DIR = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The paths of the README's layout tree (the code block under "### Layout"), each as written from the
 * project root: `local/`, `local/stepfunctions/`, `local/runtime.ts`. An entry's depth is its indent.
 */
function layoutPaths(readme: string): string[] {
  const section = readme.split(/^### Layout$/m)[1];
  const block = section?.match(/```\n([\s\S]*?)```/)?.[1];
  if (!block) throw new Error('README.md has no code block under "### Layout"');
  const parents: string[] = [];
  const paths: string[] = [];
  for (const line of block.split('\n')) {
    const entry = /^( *)(\S+\/|\S+\.\w+)\s/.exec(`${line} `);
    if (!entry?.[2] || line.startsWith(' '.repeat(23))) continue;
    const depth = (entry[1] ?? '').length / 2;
    parents.length = depth;
    const path = `${parents.join('')}${entry[2]}`;
    paths.push(path);
    if (entry[2].endsWith('/')) parents[depth] = entry[2];
  }
  return paths;
}

function folders(dir: string): string[] {
  return readdirSync(join(PROJECT_DIR, dir))
    .filter((name) => statSync(join(PROJECT_DIR, dir, name)).isDirectory())
    .map((name) => `${dir}${name}/`);
}

describe("the README's layout tree", () => {
  const paths = layoutPaths(readFileSync(join(PROJECT_DIR, 'README.md'), 'utf8'));

  it('is read as paths from the project root', () => {
    expect(paths).toContain('local/stepfunctions/');
    expect(paths).toContain('local/runtime.ts');
    expect(paths).toContain('shared/handlers/');
  });

  it('names only what exists', () => {
    expect(paths.filter((path) => !existsSync(join(PROJECT_DIR, path)))).toEqual([]);
  });

  it('lists every folder of local/ and shared/, and every top-level source folder', () => {
    const expected = [
      ...folders('local/'),
      ...folders('shared/'),
      ...['functions/', 'shared/', 'statemachines/', 'buildspecs/', 'examples/', 'local/', 'test/', 'bench/'],
    ];
    expect(expected.filter((folder) => !paths.includes(folder))).toEqual([]);
  });

  it('fails on a tree that names a folder the code does not have', () => {
    const readme = '### Layout\n\n```\nlocal/  the local mode\n  sns/  a folder that is not there\n```\n';
    const listed = layoutPaths(readme);
    expect(listed).toEqual(['local/', 'local/sns/']);
    expect(listed.filter((path) => !existsSync(join(PROJECT_DIR, path)))).toEqual(['local/sns/']);
  });
});
