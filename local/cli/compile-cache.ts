import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import module from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * What makes a second start of stepline fast: its process loads ~80 of the project's .ts files, and Node 22
 * strips the types of each one on every start (its TypeScript stripper, a WebAssembly build of swc, takes
 * a third of a warm start to load and run), then compiles them and the libraries to V8 code. Both results
 * are kept on disk here, keyed by the source's content, so a start after the first does neither.
 * Modules loaded before {@link enableCompileCache} are not cached: call it first, then `import()` the rest.
 */

const CACHE_DIR = fileURLToPath(new URL('../../node_modules/.cache/stepline/', import.meta.url));
const STRIPPED_DIR = join(CACHE_DIR, 'stripped');
const PROJECT_URL = new URL('../../', import.meta.url).href;

/** The project's own TypeScript modules (not a dependency's, which Node does not strip anyway). */
function isProjectTypeScript(url: string): boolean {
  return url.startsWith(PROJECT_URL) && url.endsWith('.ts') && !url.includes('/node_modules/');
}

/** Node's own stripping (types replaced by spaces: lines and columns, hence stack traces, are unchanged). */
function stripTypes(source: string): string {
  // module.stripTypeScriptTypes warns once that it is experimental; it is the very stripper Node runs on a
  // .ts file itself, so the warning would only be noise on the first start after an edit.
  const emitWarning = process.emitWarning;
  process.emitWarning = () => undefined;
  try {
    return module.stripTypeScriptTypes(source, { mode: 'strip' });
  } finally {
    process.emitWarning = emitWarning;
  }
}

/** The JavaScript of a .ts file, from the cache when its content was stripped before. */
function strippedSource(url: string): string {
  const source = readFileSync(fileURLToPath(url), 'utf8');
  const file = join(STRIPPED_DIR, `${createHash('sha256').update(source).digest('hex')}.js`);
  try {
    return readFileSync(file, 'utf8');
  } catch {
    const stripped = stripTypes(source);
    // Written whole or not at all: another stepline starting at the same time may read it.
    const temporary = `${file}.${process.pid}.tmp`;
    mkdirSync(STRIPPED_DIR, { recursive: true });
    writeFileSync(temporary, stripped);
    renameSync(temporary, file);
    return stripped;
  }
}

/**
 * Turns both caches on: Node's compile cache (V8 code) and a cache of the project's stripped .ts files.
 * Where the cache cannot be used (a read-only node_modules, a file Node must report an error for), the
 * module loads as it would without it.
 */
export function enableCompileCache(): void {
  module.enableCompileCache(join(CACHE_DIR, 'v8'));
  module.registerHooks({
    load(url, context, nextLoad) {
      if (!isProjectTypeScript(url)) return nextLoad(url, context);
      try {
        return { format: 'module', source: strippedSource(url), shortCircuit: true };
      } catch {
        return nextLoad(url, context);
      }
    },
  });
}

/**
 * Writes what was compiled so far to the cache now rather than at exit: a process that is killed
 * (SIGKILL, a crash) never reaches the exit that would write it.
 */
export function flushCompileCache(): void {
  module.flushCompileCache();
}
