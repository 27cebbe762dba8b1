import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import * as checks from '#local/cli/checks.ts';
import * as client from '#local/cli/client.ts';
import * as buildspec from '#local/codebuild/buildspec.ts';
import * as checkout from '#local/codebuild/checkout.ts';
import * as git from '#local/git/command.ts';
import * as lock from '#local/state/lock.ts';
import * as records from '#local/state/records.ts';
import * as errors from '#shared/errors.ts';
import * as forges from '#shared/status/forges.ts';

/**
 * An error's `name` is a contract: the state machines' Retry and Catch match it (`ErrorEquals`), the HTTP
 * answers and the notifications carry it. Each class spells its own, so that neither a minified bundle (class
 * names mangled) nor a subclass that forgot (its parent's name) changes it.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The names that are not the class's own: Step Functions' and stepline's error names. */
const NAMED_OTHERWISE: Record<string, string> = {
  StageFailedError: 'Pipeline.StageFailed',
  ExecutionAlreadyExistsError: 'ExecutionAlreadyExists',
  ExecutionNotRedrivableError: 'ExecutionNotRedrivable',
};

type ErrorClass = new (...args: never[]) => Error;

function errorClasses(module: Record<string, unknown>): [string, ErrorClass][] {
  return Object.entries(module).filter(
    (entry): entry is [string, ErrorClass] =>
      typeof entry[1] === 'function' && entry[1].prototype instanceof Error,
  );
}

/** An instance, whatever its constructor takes (a message, a stage, a list of problems). */
function instanceOf(ErrorClass: ErrorClass): Error {
  const Constructor = ErrorClass as unknown as new (...args: unknown[]) => Error;
  try {
    return new Constructor('detail', 'more detail');
  } catch {
    return new Constructor([{ message: 'detail', path: [] }]);
  }
}

describe('error names', () => {
  const modules = { errors, forges, buildspec, checkout, checks, client, git, lock, records };

  it('every error class of the project is named after itself, or as its contract says', () => {
    const classes = Object.values(modules).flatMap(errorClasses);
    expect(classes.length).toBeGreaterThanOrEqual(20);
    for (const [exported, ErrorClass] of classes) {
      expect(instanceOf(ErrorClass).name, exported).toBe(NAMED_OTHERWISE[exported] ?? exported);
    }
  });

  it('keeps every name of shared/errors.ts in a bundle minified as serverless.yml minifies the functions', async () => {
    const config = parse(await readFile(join(ROOT, 'serverless.yml'), 'utf8'), { logLevel: 'error' }) as {
      custom: { esbuild: { minify?: boolean; keepNames?: boolean; target?: string } };
    };
    const { minify, keepNames, target } = config.custom.esbuild;
    const result = await build({
      entryPoints: [join(ROOT, 'shared/errors.ts')],
      bundle: true,
      write: false,
      format: 'cjs',
      platform: 'node',
      ...(minify === undefined ? {} : { minify }),
      ...(keepNames === undefined ? {} : { keepNames }),
      ...(target === undefined ? {} : { target }),
      logLevel: 'error',
    });
    const module = { exports: {} as Record<string, unknown> };
    new Function('module', 'exports', 'require', result.outputFiles[0]?.text ?? '')(
      module,
      module.exports,
      createRequire(import.meta.url),
    );
    const bundled = errorClasses(module.exports);
    expect(bundled.map(([name]) => name).sort()).toEqual(
      errorClasses(errors)
        .map(([name]) => name)
        .sort(),
    );
    for (const [exported, ErrorClass] of bundled) {
      expect(instanceOf(ErrorClass).name, exported).toBe(NAMED_OTHERWISE[exported] ?? exported);
    }
  });
});
