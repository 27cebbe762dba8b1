import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findCycles, type ImportGraph, importGraph, projectModules } from './import-graph.ts';

const PROJECT_DIR = fileURLToPath(new URL('../..', import.meta.url));
const { imports } = JSON.parse(readFileSync(`${PROJECT_DIR}/package.json`, 'utf8')) as {
  imports: Record<string, string>;
};
const graph = importGraph(
  PROJECT_DIR,
  projectModules(PROJECT_DIR, ['local', 'shared', 'functions', 'bench']),
  imports,
);

/**
 * Cycles known today, each to be removed by the work that owns it; an entry here that no longer
 * occurs fails the test below, so the exception goes when the cycle does.
 */
const ALLOWED_CYCLES: string[][] = [];

function importsFrom(graph: ImportGraph, from: string, to: string[]): string[] {
  return [...graph].flatMap(([module, targets]) =>
    module.startsWith(from)
      ? targets
          .filter((target) => to.some((folder) => target.startsWith(folder)))
          .map((t) => `${module} → ${t}`)
      : [],
  );
}

describe('the import graph of local/, shared/, functions/ and bench/', () => {
  it('was read: it holds the modules and their imports', () => {
    expect(graph.get('local/runtime.ts')).toContain('local/lambda/registry.ts');
    expect(graph.get('functions/webhook.ts')).toContain('shared/handlers/webhook.ts');
  });

  it('has no import cycle beyond the known ones', () => {
    const cycles = findCycles(graph).map(
      ({ path, members }) =>
        `${[...path, path[0]].join(' → ')}${members.length > path.length ? ` (modules in this cycle: ${members.join(', ')})` : ''}`,
    );
    const allowed = ALLOWED_CYCLES.map((cycle) => [...cycle, cycle[0]].join(' → '));
    expect(
      cycles.filter((cycle) => !allowed.includes(cycle)),
      'import cycles',
    ).toEqual([]);
    expect(
      allowed.filter((cycle) => !cycles.includes(cycle)),
      'cycles allowed here that no longer occur: delete them from ALLOWED_CYCLES',
    ).toEqual([]);
  });

  it('keeps functions/ out of the local mode', () => {
    expect(importsFrom(graph, 'functions/', ['local/'])).toEqual([]);
  });

  it('keeps shared/ free of the local mode and of the Lambda wiring', () => {
    expect(importsFrom(graph, 'shared/', ['local/', 'functions/'])).toEqual([]);
  });
});
