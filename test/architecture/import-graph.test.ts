import { describe, expect, it } from 'vitest';
import { findCycles, type ImportGraph, resolveSpecifier } from './import-graph.ts';

function graphOf(edges: Record<string, string[]>): ImportGraph {
  return new Map(Object.entries(edges));
}

describe('findCycles', () => {
  it('finds none in a graph without a cycle', () => {
    expect(findCycles(graphOf({ a: ['b', 'c'], b: ['c'], c: [] }))).toEqual([]);
  });

  it('reports a cycle as the path around it', () => {
    const graph = graphOf({ a: ['b'], b: ['c'], c: ['a'], d: ['a'] });
    expect(findCycles(graph)).toEqual([{ path: ['a', 'b', 'c'], members: ['a', 'b', 'c'] }]);
  });

  it('reports each cycle once, and a module that imports itself', () => {
    const graph = graphOf({ a: ['b'], b: ['a'], c: ['d'], d: ['c', 'e'], e: ['e'] });
    expect(findCycles(graph).map((cycle) => cycle.path)).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
  });

  it('takes the shortest way around a component with several loops', () => {
    const graph = graphOf({ a: ['b', 'c'], b: ['c'], c: ['a'] });
    expect(findCycles(graph)).toEqual([{ path: ['a', 'c'], members: ['a', 'b', 'c'] }]);
  });
});

describe('resolveSpecifier', () => {
  const imports = { '#shared/*': './shared/*', '#local/*': './local/*' };

  it('resolves relative and package.json subpath imports to project paths', () => {
    expect(resolveSpecifier('./eventbridge/bus.ts', 'local/runtime.ts', imports)).toBe(
      'local/eventbridge/bus.ts',
    );
    expect(resolveSpecifier('../wiring.ts', 'local/lambda/host.ts', imports)).toBe('local/wiring.ts');
    expect(resolveSpecifier('#shared/handlers/webhook.ts', 'functions/webhook.ts', imports)).toBe(
      'shared/handlers/webhook.ts',
    );
  });

  it('leaves packages and Node built-ins out', () => {
    expect(resolveSpecifier('zod', 'shared/config.ts', imports)).toBeUndefined();
    expect(resolveSpecifier('node:fs', 'shared/config.ts', imports)).toBeUndefined();
  });
});
