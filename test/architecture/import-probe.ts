/**
 * Imports one module and reports, as one JSON line on stdout, what importing it did: every `process.env`
 * variable the project's code read, and every AWS SDK client constructed, while the module (and what it
 * imports) loaded. Run by test/architecture/side-effects.test.ts as `node import-probe.ts <module path>`.
 *
 * A read counts as the project's when a project file (not node_modules) is on the stack: the module's own
 * top level, or a library it calls there (a logger or a client built at module scope). Libraries that read
 * a variable while they load themselves (Powertools reads AWS_EXECUTION_ENV) are listed apart: that is
 * not something the module chose to do, and no import could avoid it.
 *
 * The SDK clients are recorded by replacing each client class of the project's `@aws-sdk/client-*`
 * dependencies with a subclass that records its construction, before anything else loads them. These
 * packages are CommonJS, so an ES module importing them later receives the recording classes.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const target = process.argv[2];
if (!target) throw new Error('usage: node import-probe.ts <module path>');

const projectDir = process.cwd();
const requireFromProject = createRequire(resolve(projectDir, 'package.json'));
const manifest = JSON.parse(readFileSync(resolve(projectDir, 'package.json'), 'utf8')) as {
  dependencies?: Record<string, string>;
};

/** Variable → where project code read it (`shared/config.ts:18`). */
const envReads = new Map<string, string>();
const dependencyEnvReads = new Set<string>();
const clients: string[] = [];
let recording = false;

type Constructor = new (...args: unknown[]) => object;
for (const name of Object.keys(manifest.dependencies ?? {}).filter((n) => n.startsWith('@aws-sdk/client-'))) {
  const sdk = requireFromProject(name) as Record<string, unknown>;
  const base = sdk.__Client;
  for (const [exportName, value] of Object.entries(sdk)) {
    if (typeof value !== 'function' || !(value.prototype instanceof (base as Constructor))) continue;
    const Original = value as Constructor;
    sdk[exportName] = class extends Original {
      constructor(...args: unknown[]) {
        if (recording) clients.push(exportName);
        super(...args);
      }
    };
  }
}

Error.stackTraceLimit = 200;
const probeFile = pathToFileURL(import.meta.filename).href;

/** The first frame of the stack in a project file other than this one, if any: `shared/config.ts:18`. */
function projectFrame(stack: string): string | undefined {
  for (const match of stack.matchAll(/(file:\/\/[^\s)]+?|\/[^\s():]+?):(\d+):\d+/g)) {
    const [, location = '', line] = match;
    const url = location.startsWith('file:') ? location : pathToFileURL(location).href;
    if (url === probeFile || url.includes('/node_modules/')) continue;
    const path = decodeURIComponent(new URL(url).pathname);
    if (path.startsWith(`${projectDir}/`)) return `${path.slice(projectDir.length + 1)}:${line}`;
  }
  return undefined;
}

function recordRead(variable: string): void {
  if (!recording) return;
  const where = projectFrame(new Error().stack ?? '');
  if (where === undefined) dependencyEnvReads.add(variable);
  else if (!envReads.has(variable)) envReads.set(variable, where);
}

const realEnv = process.env;
process.env = new Proxy(realEnv, {
  get(env, key, receiver) {
    if (typeof key === 'string') recordRead(key);
    return Reflect.get(env, key, receiver);
  },
  has(env, key) {
    if (typeof key === 'string') recordRead(key);
    return Reflect.has(env, key);
  },
  ownKeys(env) {
    recordRead('(every variable)');
    return Reflect.ownKeys(env);
  },
});

let error: string | undefined;
recording = true;
try {
  await import(pathToFileURL(resolve(projectDir, target)).href);
} catch (cause) {
  error = (cause as Error).message;
} finally {
  recording = false;
}
const report = {
  module: target,
  envReads: Object.fromEntries([...envReads].sort(([a], [b]) => a.localeCompare(b))),
  clients,
  dependencyEnvReads: [...dependencyEnvReads].sort(),
  ...(error === undefined ? {} : { error }),
};
process.stdout.write(`${JSON.stringify(report)}\n`);
