import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { projectModules, resolveSpecifier, type SubpathImports } from './import-graph.ts';

/**
 * Every schema is written with zod/mini through shared/zod.ts, which sets English messages once. Classic
 * `zod` would put all of itself back into each Lambda bundle (~105 KB that every cold start compiles), a
 * direct `zod/mini` import would skip the messages, and a named `{ z }` import keeps all of zod and every
 * locale in an esbuild bundle (only a namespace import is tree-shaken).
 */

const PROJECT_DIR = fileURLToPath(new URL('../..', import.meta.url));
const { imports } = JSON.parse(readFileSync(`${PROJECT_DIR}/package.json`, 'utf8')) as {
  imports: SubpathImports;
};
const ZOD_MODULE = 'shared/zod.ts';
const ZOD_SPECIFIER = '#shared/zod.ts';
/** What shared/zod.ts itself may import of the zod package: the mini build and the locales (English). */
const ZOD_MODULE_IMPORTS = ['zod/mini', 'zod/locales'];

const isZodPackage = (specifier: string) => specifier === 'zod' || specifier.startsWith('zod/');

/** The ways a module breaks the rule, one line each (`local/x.ts:3 imports 'zod'`). */
function zodImportProblems(module: string, source: string): string[] {
  const file = ts.createSourceFile(module, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const problems: string[] = [];
  const at = (node: ts.Node) =>
    `${module}:${file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1}`;

  const visit = (node: ts.Node): void => {
    let specifier: ts.Expression | undefined;
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) specifier = node.moduleSpecifier;
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword)
      specifier = node.arguments[0];
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument))
      specifier = node.argument.literal;

    if (specifier && ts.isStringLiteralLike(specifier)) {
      const name = specifier.text;
      if (isZodPackage(name)) {
        if (module !== ZOD_MODULE)
          problems.push(`${at(node)} imports '${name}' instead of '${ZOD_SPECIFIER}'`);
        else if (!ZOD_MODULE_IMPORTS.includes(name)) problems.push(`${at(node)} imports '${name}'`);
      } else if (resolveSpecifier(name, module, imports) === ZOD_MODULE) {
        if (name !== ZOD_SPECIFIER)
          problems.push(`${at(node)} imports '${name}' instead of '${ZOD_SPECIFIER}'`);
        const clause = ts.isImportDeclaration(node) ? node.importClause : undefined;
        const bindings = clause?.namedBindings;
        if (!(bindings && ts.isNamespaceImport(bindings)) || clause?.name)
          problems.push(`${at(node)} imports '${name}' other than as \`import * as z\``);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return problems;
}

describe('the schemas of shared/, local/ and functions/', () => {
  const modules = projectModules(PROJECT_DIR, ['shared', 'local', 'functions']);

  it('are read: the modules that define schemas import shared/zod.ts', () => {
    const users = modules.filter((module) =>
      readFileSync(`${PROJECT_DIR}/${module}`, 'utf8').includes(`from '${ZOD_SPECIFIER}'`),
    );
    expect(modules).toContain(ZOD_MODULE);
    expect(users).toEqual(expect.arrayContaining(['shared/pipeline.ts', 'shared/providers/github.ts']));
    expect(users.length).toBeGreaterThanOrEqual(20);
  });

  it("use zod/mini through shared/zod.ts, as a namespace import, and never classic 'zod'", () => {
    const problems = modules.flatMap((module) =>
      zodImportProblems(module, readFileSync(`${PROJECT_DIR}/${module}`, 'utf8')),
    );
    expect(problems).toEqual([]);
  });
});

describe('the zod import check', () => {
  it.each([
    ["import * as z from 'zod';", "imports 'zod' instead of '#shared/zod.ts'"],
    ["import { z } from 'zod/v4';", "imports 'zod/v4' instead"],
    ["import * as z from 'zod/mini';", "imports 'zod/mini' instead"],
    ["export { z } from 'zod';", "imports 'zod' instead"],
    ["const z = await import('zod');", "imports 'zod' instead"],
    ["type T = import('zod').ZodType;", "imports 'zod' instead"],
    ["import { z } from '#shared/zod.ts';", 'other than as `import * as z`'],
    ["import * as z from '../shared/zod.ts';", "imports '../shared/zod.ts' instead of '#shared/zod.ts'"],
  ])('finds %s', (source, problem) => {
    const problems = zodImportProblems('local/example.ts', source);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(problem);
    expect(problems[0]).toMatch(/^local\/example\.ts:1 /);
  });

  it('accepts the namespace import, type-only or not, and classic zod nowhere but in shared/zod.ts', () => {
    expect(zodImportProblems('shared/x.ts', "import * as z from '#shared/zod.ts';")).toEqual([]);
    expect(zodImportProblems('shared/x.ts', "import type * as z from '#shared/zod.ts';")).toEqual([]);
    expect(zodImportProblems(ZOD_MODULE, "import { config } from 'zod/mini';")).toEqual([]);
    expect(zodImportProblems(ZOD_MODULE, "import * as z from 'zod';")).toEqual([
      `${ZOD_MODULE}:1 imports 'zod'`,
    ]);
  });
});
