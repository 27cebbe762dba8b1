import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** A module → the project modules it imports, by path relative to the project (`local/runtime.ts`). */
export type ImportGraph = Map<string, string[]>;

/** The `imports` map of package.json: `#shared/*` → `./shared/*`. */
export type SubpathImports = Record<string, string>;

/** Every `.ts` file under the given folders of the project, relative to it. */
export function projectModules(projectDir: string, folders: string[]): string[] {
  return folders.flatMap((folder) =>
    (readdirSync(join(projectDir, folder), { recursive: true, encoding: 'utf8' }) as string[])
      .filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))
      .map((file) => join(folder, file))
      .sort(),
  );
}

/**
 * Where an import specifier points inside the project, or undefined for a package or a Node built-in.
 * Relative specifiers resolve against the importer; `#…` ones through package.json's `imports` map.
 */
export function resolveSpecifier(
  specifier: string,
  importer: string,
  imports: SubpathImports,
): string | undefined {
  if (specifier.startsWith('.')) return relative('.', join(dirname(importer), specifier));
  if (!specifier.startsWith('#')) return undefined;
  for (const [pattern, target] of Object.entries(imports)) {
    const star = pattern.indexOf('*');
    const matches =
      star === -1
        ? specifier === pattern
        : specifier.startsWith(pattern.slice(0, star)) && specifier.endsWith(pattern.slice(star + 1));
    if (!matches) continue;
    const hole = star === -1 ? '' : specifier.slice(star, specifier.length - (pattern.length - star - 1));
    return relative('.', target.replace('*', hole));
  }
  return undefined;
}

/**
 * The import graph of the given modules: every static `import`/`export … from` and every `import('…')`
 * with a literal specifier, type-only ones included (a cycle of types is still a cycle of the design).
 * Edges to modules outside the given set (packages, tests) are left out.
 */
export function importGraph(projectDir: string, modules: string[], imports: SubpathImports): ImportGraph {
  const known = new Set(modules);
  const graph: ImportGraph = new Map();
  for (const module of modules) {
    const source = readFileSync(resolve(projectDir, module), 'utf8');
    const { importedFiles } = ts.preProcessFile(source, true, true);
    const targets = importedFiles
      .map((file) => resolveSpecifier(file.fileName, module, imports))
      .filter((target): target is string => target !== undefined && known.has(target));
    graph.set(module, [...new Set(targets)].sort());
  }
  return graph;
}

/** Modules that import each other, directly or not: a strongly connected component of the graph. */
export interface ImportCycle {
  /** The shortest path around it from its first module (sorted): `['a.ts', 'b.ts']` is a → b → a. */
  path: string[];
  /** Every module of the component, sorted; more than the path when several loops share modules. */
  members: string[];
}

/** Every import cycle, one per strongly connected component of the graph (Tarjan's algorithm). */
export function findCycles(graph: ImportGraph): ImportCycle[] {
  const index = new Map<string, number>();
  const lowLink = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;

  const connect = (node: string): void => {
    index.set(node, next);
    lowLink.set(node, next);
    next += 1;
    stack.push(node);
    onStack.add(node);
    for (const target of graph.get(node) ?? []) {
      if (!index.has(target)) {
        connect(target);
        lowLink.set(node, Math.min(lowLink.get(node) ?? 0, lowLink.get(target) ?? 0));
      } else if (onStack.has(target)) {
        lowLink.set(node, Math.min(lowLink.get(node) ?? 0, index.get(target) ?? 0));
      }
    }
    if (lowLink.get(node) !== index.get(node)) return;
    const component: string[] = [];
    for (let member = stack.pop(); member !== undefined; member = stack.pop()) {
      onStack.delete(member);
      component.push(member);
      if (member === node) break;
    }
    const selfImport = component.length === 1 && (graph.get(node) ?? []).includes(node);
    if (component.length > 1 || selfImport) components.push(component);
  };

  for (const node of [...graph.keys()].sort()) if (!index.has(node)) connect(node);
  return components
    .map((component) => ({ path: cyclePath(graph, new Set(component)), members: component.sort() }))
    .sort((a, b) => (a.members[0] ?? '').localeCompare(b.members[0] ?? ''));
}

/** The shortest path around a strongly connected component, from its first member (sorted) back to it. */
function cyclePath(graph: ImportGraph, members: Set<string>): string[] {
  const start = [...members].sort()[0] ?? '';
  const cameFrom = new Map<string, string>();
  const queue = [start];
  for (let node = queue.shift(); node !== undefined; node = queue.shift()) {
    for (const target of graph.get(node) ?? []) {
      if (!members.has(target)) continue;
      if (target === start) {
        const path: string[] = [];
        for (let at: string | undefined = node; at !== undefined && at !== start; at = cameFrom.get(at))
          path.unshift(at);
        return [start, ...path];
      }
      if (!cameFrom.has(target) && target !== start) {
        cameFrom.set(target, node);
        queue.push(target);
      }
    }
  }
  return [...members].sort();
}
