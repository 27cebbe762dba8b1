import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isNotFound, writeFileAtomic } from '#local/state/atomic-file.ts';
import type { StateMachineDefinition } from '#local/stepfunctions/definition.ts';
import { ConfigurationError } from '#shared/errors.ts';
import type { EventPattern } from './eventbridge/event-pattern.ts';

const exec = promisify(execFile);

/** One function of serverless.yml, as the local mode runs it. */
export interface LocalFunction {
  key: string;
  /** The deployed name (`stepline-local-webhook`). */
  name: string;
  /** The module file, relative to the project (`functions/webhook.ts`). */
  module: string;
  environment: Record<string, unknown>;
  http: { method: string; path: string }[];
  eventBridge: EventPattern[];
}

export interface Wiring {
  service: string;
  stage: string;
  region: string;
  functions: LocalFunction[];
  machines: Record<string, { id: string; name: string; definition: StateMachineDefinition }>;
  /** CodeBuild project name → build timeout in minutes, from the stack's projects. */
  buildTimeouts: Record<string, number>;
}

/**
 * Parameters serverless.yml requires with no default. Locally nothing is deployed, so a placeholder
 * satisfies the framework's resolution; it reaches no local code.
 */
const LOCAL_PARAMS = ['infrastructurePolicyArn=arn:aws:iam::000000000000:policy/stepline-local'];

type ResourceBlock = { Resources?: Record<string, { Type: string; Properties?: Record<string, unknown> }> };

type Printed = {
  service: string;
  provider: { stage: string; region: string };
  functions: Record<
    string,
    {
      name: string;
      handler: string;
      environment?: Record<string, unknown>;
      events?: Record<string, unknown>[];
    }
  >;
  stepFunctions?: {
    stateMachines?: Record<string, { id?: string; name: string; definition: StateMachineDefinition }>;
  };
  resources?: ResourceBlock[] | ResourceBlock;
};

export interface ReadWiringOptions {
  stage?: string;
  region?: string;
  /** `name=value` pairs, as `serverless deploy --param`. */
  params?: string[];
  /**
   * A folder to keep the resolved wiring in (`wiring-cache.json`, the state folder in the local mode):
   * reused while {@link wiringCacheKey} is unchanged, so a start skips `serverless print` (~3 s).
   */
  cacheDir?: string;
}

/** The file the resolved wiring is cached in, under `cacheDir`. */
export const WIRING_CACHE_FILE = 'wiring-cache.json';
/** Changed when the cached shape changes, so an older cache is not read as this one. */
const CACHE_FORMAT = 1;
/** The packages whose versions change how serverless.yml resolves. */
const RESOLVING_PACKAGES = ['osls', 'serverless-step-functions', 'serverless-esbuild'];

/**
 * Reads the project's wiring from serverless.yml through the Serverless Framework itself (`serverless
 * print`), so that variables, files and parameters resolve exactly as they do for a deploy, and the
 * laptop and the cloud cannot drift apart. With `cacheDir`, a wiring resolved from the same inputs
 * before is reused (see {@link wiringCacheKey}).
 */
export async function readWiring(projectDir: string, options: ReadWiringOptions = {}): Promise<Wiring> {
  const { stage = 'local', region = 'us-east-1', params = [], cacheDir } = options;
  if (cacheDir === undefined) return printWiring(projectDir, stage, region, params);
  const key = await wiringCacheKey(projectDir, { stage, region, params });
  const cachePath = join(cacheDir, WIRING_CACHE_FILE);
  const cached = await readCachedWiring(cachePath, key);
  if (cached) return cached;
  const wiring = await printWiring(projectDir, stage, region, params);
  await mkdir(cacheDir, { recursive: true });
  await writeFileAtomic(cachePath, `${JSON.stringify({ key, wiring })}\n`);
  return wiring;
}

/**
 * What the resolved wiring depends on, hashed: serverless.yml, serverless.params.cjs and the state
 * machine files it includes (statemachines/*.json), the stage, region and parameters, and the versions
 * of the framework and its plugins. Equal keys resolve to the same wiring.
 */
export async function wiringCacheKey(
  projectDir: string,
  options: { stage?: string; region?: string; params?: string[] } = {},
): Promise<string> {
  const { stage = 'local', region = 'us-east-1', params = [] } = options;
  const hash = createHash('sha256');
  const add = (label: string, value: string | Buffer) => {
    hash.update(`${label}\0${value.length}\0`);
    hash.update(value);
  };
  add('format', String(CACHE_FORMAT));
  add('arguments', JSON.stringify({ stage, region, params: [...LOCAL_PARAMS, ...params] }));
  const stateMachines = (await readdir(join(projectDir, 'statemachines')).catch(() => [] as string[]))
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => join('statemachines', file));
  for (const file of ['serverless.yml', 'serverless.params.cjs', ...stateMachines]) {
    add(
      file,
      await readFile(join(projectDir, file)).catch((error: unknown) => {
        if (isNotFound(error)) return 'absent';
        throw error;
      }),
    );
  }
  const require = createRequire(import.meta.url);
  for (const name of RESOLVING_PACKAGES) {
    const manifest = await readFile(require.resolve(`${name}/package.json`), 'utf8').catch(() => '{}');
    add(name, String((JSON.parse(manifest) as { version?: unknown }).version ?? 'absent'));
  }
  return hash.digest('hex');
}

async function readCachedWiring(path: string, key: string): Promise<Wiring | undefined> {
  try {
    const cached = JSON.parse(await readFile(path, 'utf8')) as { key?: unknown; wiring?: Wiring };
    return cached.key === key && cached.wiring ? cached.wiring : undefined;
  } catch {
    // Absent or unreadable: resolved again, and rewritten.
    return undefined;
  }
}

async function printWiring(
  projectDir: string,
  stage: string,
  region: string,
  params: string[],
): Promise<Wiring> {
  const bin = createRequire(import.meta.url).resolve('osls/bin/serverless.js');
  const args = [bin, 'print', '--format', 'json', '--stage', stage, '--region', region];
  for (const param of [...LOCAL_PARAMS, ...params]) args.push('--param', param);
  let stdout: string;
  try {
    ({ stdout } = await exec(process.execPath, args, {
      cwd: projectDir,
      maxBuffer: 64 * 1024 * 1024,
      env: {
        ...process.env,
        SLS_TELEMETRY_DISABLED: '1',
        SLS_NOTIFICATIONS_MODE: 'off',
        SLS_DEPRECATION_DISABLE: '*',
      },
    }));
  } catch (error) {
    const output = error as { stdout?: string; stderr?: string };
    const detail = `${output.stderr ?? ''}\n${output.stdout ?? ''}`.trim() || (error as Error).message;
    // serverless.params.cjs refuses a parameter it cannot expand (`Parameter settings: …`): that is the
    // user's input, and its one line says what to fix.
    const refused = /Received rejection: Error: (Parameter [^\n]+)/.exec(detail)?.[1];
    if (refused !== undefined) throw new ConfigurationError(refused);
    throw new Error(`Could not read serverless.yml: ${detail}`);
  }
  return wiringFrom(JSON.parse(stdout) as Printed);
}

/** The wiring of a resolved configuration (`serverless print` output). */
export function wiringFrom(printed: Printed): Wiring {
  const functions = Object.entries(printed.functions).map(([key, fn]): LocalFunction => {
    const [file = '', exportName = 'handler'] = splitHandler(fn.handler);
    if (exportName !== 'handler')
      throw new Error(`Function ${key}: the local mode expects handlers named "handler"`);
    const events = fn.events ?? [];
    return {
      key,
      name: fn.name,
      module: `${file}.ts`,
      environment: fn.environment ?? {},
      http: events.flatMap((event) => {
        const http = event.httpApi as { method?: string; path?: string } | undefined;
        return http?.method && http.path ? [{ method: http.method.toUpperCase(), path: http.path }] : [];
      }),
      eventBridge: events.flatMap((event) => {
        const rule = event.eventBridge as { pattern?: EventPattern } | undefined;
        return rule?.pattern ? [rule.pattern] : [];
      }),
    };
  });
  const machines: Wiring['machines'] = {};
  for (const [key, machine] of Object.entries(printed.stepFunctions?.stateMachines ?? {})) {
    machines[key] = { id: machine.id ?? key, name: machine.name, definition: machine.definition };
  }
  const buildTimeouts: Record<string, number> = {};
  const resourceBlocks = Array.isArray(printed.resources)
    ? printed.resources
    : printed.resources
      ? [printed.resources]
      : [];
  for (const resources of resourceBlocks) {
    for (const resource of Object.values(resources.Resources ?? {})) {
      if (resource.Type !== 'AWS::CodeBuild::Project') continue;
      const name = resource.Properties?.Name;
      const minutes = resource.Properties?.TimeoutInMinutes;
      if (typeof name === 'string') buildTimeouts[name] = typeof minutes === 'number' ? minutes : 60;
    }
  }
  return {
    service: printed.service,
    stage: printed.provider.stage,
    region: printed.provider.region,
    functions,
    machines,
    buildTimeouts,
  };
}

function splitHandler(handler: string): [string, string] {
  const dot = handler.lastIndexOf('.');
  return [handler.slice(0, dot), handler.slice(dot + 1)];
}

/**
 * Replaces CloudFormation references in a resolved value with their local stand-ins: `{Ref: X}` and
 * `{Fn::GetAtt: [X, …]}` become `refs[X]` (or `local:X` when the local mode has none).
 */
export function resolveReferences(value: unknown, refs: Record<string, string>): unknown {
  if (Array.isArray(value)) return value.map((item) => resolveReferences(item, refs));
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (typeof record.Ref === 'string') return refs[record.Ref] ?? `local:${record.Ref}`;
    const getAtt = record['Fn::GetAtt'];
    if (Array.isArray(getAtt) && typeof getAtt[0] === 'string')
      return refs[getAtt[0]] ?? `local:${getAtt[0]}`;
    if ('Fn::Join' in record || 'Fn::Sub' in record) return 'local:computed';
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, resolveReferences(v, refs)]));
  }
  return value;
}
