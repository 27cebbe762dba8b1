import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';

/**
 * What a fresh clone needs for `npm ci` (CI runs it: .ci/run) and for `npm start`: a lock file that holds
 * every platform's optional packages, and the local mode's run-time packages in `dependencies`.
 */

interface LockEntry {
  version?: string;
  dev?: boolean;
  optional?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}
interface Manifest {
  engines: { node: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}

const root = new URL('../../', import.meta.url);
const lock = JSON.parse(await readFile(new URL('package-lock.json', root), 'utf8')) as {
  packages: Record<string, LockEntry>;
};
const manifest = JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as Manifest;

/** The lock entry `name` resolves to from the package at `from`, as Node looks up node_modules. */
function resolveFrom(from: string, name: string): LockEntry | undefined {
  let base = from;
  for (;;) {
    const entry = lock.packages[`${base ? `${base}/` : ''}node_modules/${name}`];
    if (entry) return entry;
    if (!base) return undefined;
    const parent = base.lastIndexOf('/node_modules/');
    base = parent < 0 ? '' : base.slice(0, parent);
  }
}

describe('package-lock.json', () => {
  it('holds an entry for every optional dependency, whatever its platform (npm ci needs them all)', () => {
    const missing = Object.entries(lock.packages).flatMap(([path, entry]) =>
      Object.keys(entry.optionalDependencies ?? {})
        .filter((name) => resolveFrom(path, name) === undefined)
        .map((name) => `${path || '(root)'} → ${name}`),
    );

    expect(missing).toEqual([]);
  });

  it("holds Biome's and esbuild's binaries for macOS, Windows and musl Linux, not only this machine's", () => {
    for (const name of [
      '@biomejs/cli-darwin-arm64',
      '@biomejs/cli-win32-x64',
      '@biomejs/cli-linux-x64-musl',
      '@esbuild/darwin-arm64',
      '@esbuild/win32-x64',
      '@esbuild/linux-arm64',
    ]) {
      expect(lock.packages[`node_modules/${name}`], name).toMatchObject({ optional: true });
    }
  });

  it('locks the versions package.json pins', () => {
    const pinned = { ...manifest.dependencies, ...manifest.devDependencies };
    for (const [name, range] of Object.entries(pinned).filter(([, range]) => /^\d/.test(range))) {
      expect(lock.packages[`node_modules/${name}`]?.version, name).toBe(range);
    }
  });
});

describe('package.json', () => {
  it('lists what `npm start` loads at run time as dependencies, not devDependencies', () => {
    // local/console/serve.ts (esbuild), local/wiring.ts (`serverless print`, which loads serverless.yml's
    // plugins), local/stepfunctions (aws-local-stepfunctions), local/cli (commander).
    for (const name of [
      'esbuild',
      'osls',
      'serverless-esbuild',
      'serverless-step-functions',
      'aws-local-stepfunctions',
      'commander',
      'node',
    ]) {
      expect(manifest.dependencies[name], name).toBeDefined();
      expect(manifest.devDependencies[name], name).toBeUndefined();
      expect(lock.packages[`node_modules/${name}`]?.dev, name).toBeUndefined();
    }
  });

  it('runs on the Node the stack runs on: the `node` package is 24.x, and the engines ask for 24', () => {
    expect(manifest.dependencies.node).toMatch(/^24\./);
    expect(manifest.engines.node).toBe('>=24');
    expect(process.versions.node.split('.')[0]).toBe('24');
  });
});
