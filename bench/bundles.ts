import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build } from 'esbuild';
import { parse } from 'yaml';
import { type BenchSection, kilobytes, median, milliseconds } from './table.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const FLOOR_LABEL = 'floor: one SDK client';
const RUNS = 15;

/** serverless-esbuild's own options: not esbuild's, so they are dropped or translated before bundling. */
const PLUGIN_OPTIONS = [
  'concurrency',
  'zipConcurrency',
  'exclude',
  'nativeZip',
  'packager',
  'packagePath',
  'watch',
  'keepOutputDirectory',
  'packagerOptions',
  'installExtraArgs',
  'outputFileExtension',
  'outputBuildFolder',
  'outputWorkFolder',
  'nodeExternals',
  'skipBuild',
  'skipRebuild',
  'skipBuildExcludeFns',
  'stripEntryResolveExtensions',
  'disposeContext',
];

/** Dummy values for every variable a handler's module scope reads. No real ARN, no credentials. */
const DUMMY_ENVIRONMENT: Record<string, string> = {
  AWS_REGION: 'eu-west-1',
  STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-bench-pipeline',
  RELEASE_TABLE: 'stepline-bench-release',
  TEST_PROJECT_NAME: 'stepline-bench-test',
  ROLLBACK_STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-bench-rollback',
  IMAGE_REPOSITORY_URI: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/stepline-bench',
  WEBHOOK_PROVIDERS: 'github',
  STATUS_PROVIDERS: 'github',
  STATUS_TOKEN_PARAMETER_PREFIX: '/stepline/bench/status-token',
  WEBHOOK_SECRET_PARAMETER_PREFIX: '/stepline/bench/webhook-secret',
  STEPLINE_TRIGGERS: '{}',
  STEPLINE_SETTINGS: '{}',
  APPROVALS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:stepline-bench-approvals',
  APPROVAL_KEY_PARAMETER: '/stepline/bench/approval-key',
  APPROVAL_BASE_URL: 'https://abc.execute-api.eu-west-1.amazonaws.com/approvals',
  NOTIFICATIONS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:stepline-bench-notifications',
  EVENT_BUS_NAME: 'stepline-bench',
  POWERTOOLS_SERVICE_NAME: 'stepline',
};

interface Wiring {
  handlers: { name: string; entry: string }[];
  esbuild: Record<string, unknown>;
}

/** The functions and the esbuild settings, as serverless.yml declares them (so the bench cannot drift). */
async function readWiring(): Promise<Wiring> {
  const config = parse(await readFile(join(ROOT, 'serverless.yml'), 'utf8'), { logLevel: 'error' }) as {
    functions: Record<string, { handler: string }>;
    custom: { esbuild: Record<string, unknown> };
  };
  const handlers = Object.entries(config.functions).map(([name, { handler }]) => {
    const module = handler.slice(0, handler.lastIndexOf('.'));
    const entry = ['.ts', '.js']
      .map((extension) => `${module}${extension}`)
      .find((file) => existsSync(join(ROOT, file)));
    if (entry === undefined) throw new Error(`No source file for the handler of ${name} (${handler})`);
    return { name, entry };
  });
  return { handlers, esbuild: config.custom.esbuild };
}

/**
 * How a bundle is built: as serverless.yml says, or the same without its `alias` of SDK parts no function
 * reaches on Lambda (the whole default credential chain and the event-stream support, as the SDK is
 * published and as the bundles were built before), so that one bench run prints both.
 */
type Variant = 'configured' | 'whole-sdk';

/** The esbuild options serverless-esbuild derives from `custom.esbuild`, for one entry point. */
function buildOptions(
  esbuild: Record<string, unknown>,
  entry: string,
  outdir: string,
  variant: Variant,
): BuildOptions {
  const configured = variant === 'configured';
  const options = Object.fromEntries(
    Object.entries(esbuild).filter(
      ([key]) => !PLUGIN_OPTIONS.includes(key) && (configured || key !== 'alias'),
    ),
  );
  const exclude = (esbuild.exclude as string[] | undefined) ?? [];
  const extension = outputExtension(esbuild);
  return {
    ...options,
    external: [...((esbuild.external as string[] | undefined) ?? []), ...exclude],
    ...(extension === '.js' ? {} : { outExtension: { '.js': extension } }),
    entryPoints: [join(ROOT, entry)],
    outdir: join(outdir, dirname(entry)),
    absWorkingDir: ROOT,
    logLevel: 'error',
  } as BuildOptions;
}

function outputExtension(esbuild: Record<string, unknown>): string {
  return (esbuild.outputFileExtension as string | undefined) ?? '.js';
}

/** Wall-clock milliseconds of one fresh Node process running `args`. */
function timeProcess(args: string[], env: NodeJS.ProcessEnv): number {
  const started = performance.now();
  const result = spawnSync(process.execPath, args, {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 30_000,
  });
  const elapsed = performance.now() - started;
  if (result.status !== 0) {
    throw new Error(`node ${args.join(' ')} failed (${result.status ?? result.signal}): ${result.stderr}`);
  }
  return elapsed;
}

function benchEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('AWS_') && name !== 'NODE_OPTIONS') env[name] = value;
  }
  return { ...env, ...DUMMY_ENVIRONMENT };
}

/**
 * Bundles each handler the way `serverless package` does, then measures the bundle's size and how much
 * longer a fresh `node <bundle>` takes than a bare `node -e ''` (median of {@link RUNS}, runs interleaved),
 * also as a ratio to that bare start. Each handler is bundled twice: as serverless.yml configures it, and
 * without its `alias` (the whole SDK, as the bundles were built before), so the gain is measured under the
 * same load.
 */
export async function bundles(): Promise<BenchSection> {
  const { handlers, esbuild } = await readWiring();
  const outdir = await mkdtemp(join(tmpdir(), 'stepline-bench-'));
  // A package serverless.yml excludes resolves from node_modules, as Lambda resolves the runtime's SDK.
  await symlink(join(ROOT, 'node_modules'), join(outdir, 'node_modules'), 'dir');
  // As in the zip, no package.json of the project's says how to read a `.js` file: CommonJS.
  await writeFile(join(outdir, 'package.json'), '{"type":"commonjs"}\n');
  const env = benchEnvironment();
  try {
    const variants: { variant: Variant; suffix: string }[] = [
      { variant: 'configured', suffix: '' },
      { variant: 'whole-sdk', suffix: ' (before: whole SDK, no alias)' },
    ];
    const targets = handlers.flatMap((handler) =>
      variants.map(({ variant, suffix }) => ({
        label: `${handler.name}${suffix}`,
        ...handler,
        variant,
        dir: join(outdir, variant),
      })),
    );
    // The floor of any function here: one SDK client, constructed, and nothing else, bundled the same way.
    const floorEntry = join(outdir, 'floor', 'one-sdk-client.ts');
    await mkdir(dirname(floorEntry), { recursive: true });
    await writeFile(
      floorEntry,
      "import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';\n" +
        'export const client = new SFNClient({});\nexport const command = StartExecutionCommand;\n',
    );
    targets.push({
      label: FLOOR_LABEL,
      name: FLOOR_LABEL,
      entry: relative(ROOT, floorEntry),
      variant: 'configured',
      dir: join(outdir, 'floor-out'),
    });
    const bundlesBuilt: ((typeof targets)[number] & { file: string; bytes: number })[] = [];
    for (const target of targets) {
      await build(buildOptions(esbuild, target.entry, target.dir, target.variant));
      const file = join(
        target.dir,
        dirname(target.entry),
        `${basename(target.entry).replace(/\.[cm]?[jt]s$/, '')}${outputExtension(esbuild)}`,
      );
      bundlesBuilt.push({ ...target, file, bytes: (await stat(file)).size });
    }

    const bare: number[] = [];
    const samples = new Map<string, number[]>(bundlesBuilt.map((bundle) => [bundle.label, []]));
    timeProcess(['-e', ''], env); // warm the file system cache
    for (const bundle of bundlesBuilt) timeProcess([bundle.file], env);
    for (let run = 0; run < RUNS; run++) {
      bare.push(timeProcess(['-e', ''], env));
      for (const bundle of bundlesBuilt) samples.get(bundle.label)?.push(timeProcess([bundle.file], env));
    }
    const baseline = median(bare);
    const floorRuns = samples.get(FLOOR_LABEL) ?? [];
    const floorBeyond = median(floorRuns) - baseline;
    // The fastest run of each is the one least slowed by whatever else the machine runs at the time.
    const fastestBare = Math.min(...bare);
    const withRequireShim: string[] = [];
    for (const bundle of bundlesBuilt) {
      // esbuild's stand-in for require() in an ES module: it throws unless the bundle defines `require`.
      if ((await readFile(bundle.file, 'utf8')).includes('Dynamic require of'))
        withRequireShim.push(bundle.label);
    }
    const sdk = (esbuild.exclude as string[] | undefined)?.some((name) => name.startsWith('@aws-sdk/'))
      ? "excluded from the bundles (loaded from node_modules, as Lambda loads the runtime's copy)"
      : 'bundled (tree-shaken to the clients and commands each handler imports)';
    return {
      title: 'Lambda bundles (esbuild as serverless.yml configures it)',
      columns: [
        'function',
        'bundle',
        'init beyond bare node',
        '× bare node',
        '× bare node, fastest runs',
        'init (whole process)',
        '× one SDK client',
      ],
      rows: bundlesBuilt.map((bundle) => {
        const runs = samples.get(bundle.label) ?? [];
        const whole = median(runs);
        const beyond = whole - baseline;
        const fastestBeyond = Math.min(...runs) - fastestBare;
        return [
          bundle.label,
          kilobytes(bundle.bytes),
          milliseconds(beyond),
          `${(beyond / baseline).toFixed(2)}×`,
          `${(fastestBeyond / fastestBare).toFixed(2)}×`,
          milliseconds(whole),
          `${(beyond / floorBeyond).toFixed(2)}×`,
        ];
      }),
      notes: [
        `bare \`node -e ''\`: ${milliseconds(baseline)} (median of ${RUNS}), fastest ${milliseconds(fastestBare)}; Node ${process.version}`,
        `init: a fresh \`node <bundle>\` with dummy environment variables, median of ${RUNS} runs minus the bare median; × bare node: that over the bare median; fastest runs: the same with each one's fastest run (the least disturbed by other load)`,
        `the AWS SDK v3 is ${sdk}; format ${String(esbuild.format ?? 'esm')}`,
        `bundles calling require() at run time (need a createRequire banner): ${withRequireShim.join(', ') || 'none'}`,
        "targets: bundle ≤ 600 KB, init beyond bare Node ≤ 1× bare Node's own start",
        `${FLOOR_LABEL}: a bundle that constructs one SFNClient and does nothing else (the SDK's own start: node:crypto, node:https, the client's configuration), ${milliseconds(floorBeyond)} beyond bare node, ${(floorBeyond / baseline).toFixed(2)}× bare node; × one SDK client: each function's init over it`,
      ],
    };
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}
