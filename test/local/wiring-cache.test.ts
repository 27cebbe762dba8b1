import { appendFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readWiring, WIRING_CACHE_FILE, type Wiring, wiringCacheKey } from '#local/wiring.ts';

const projectDir = fileURLToPath(new URL('../..', import.meta.url));
let project: string;
let cacheDir: string;

/** A copy of the files the wiring is resolved from, so that the test can change them. */
beforeEach(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stepline-wiring-'));
  project = join(dir, 'project');
  cacheDir = join(dir, 'state');
  for (const file of ['serverless.yml', 'serverless.params.cjs', 'statemachines']) {
    await cp(join(projectDir, file), join(project, file), { recursive: true });
  }
});

afterEach(async () => {
  await rm(join(project, '..'), { recursive: true, force: true });
});

const PARAMS = ['settings={"environments":[{"name":"dev"}]}'];

/** A wiring no `serverless print` would give: returned only from the cache. */
const CACHED: Wiring = {
  service: 'from-the-cache',
  stage: 'local',
  region: 'us-east-1',
  functions: [],
  machines: {},
  buildTimeouts: {},
};

async function primeCache(key: string): Promise<void> {
  await writeFile(join(cacheDir, WIRING_CACHE_FILE), JSON.stringify({ key, wiring: CACHED }));
}

describe('the wiring cache key', () => {
  it('is the same for the same files, parameters and framework', async () => {
    const first = await wiringCacheKey(project, { params: PARAMS });
    const second = await wiringCacheKey(project, { params: [...PARAMS] });

    expect(second).toBe(first);
  });

  it('changes when serverless.yml changes', async () => {
    const before = await wiringCacheKey(project, { params: PARAMS });
    await appendFile(join(project, 'serverless.yml'), '\n# a comment is a change too\n');

    expect(await wiringCacheKey(project, { params: PARAMS })).not.toBe(before);
  });

  it('changes when a parameter, the stage or the region changes', async () => {
    const before = await wiringCacheKey(project, { params: PARAMS });

    const otherParam = await wiringCacheKey(project, {
      params: ['settings={"environments":[{"name":"qa"}]}'],
    });
    const noParam = await wiringCacheKey(project, {});
    const otherStage = await wiringCacheKey(project, { params: PARAMS, stage: 'other' });
    const otherRegion = await wiringCacheKey(project, { params: PARAMS, region: 'eu-west-1' });

    expect(new Set([before, otherParam, noParam, otherStage, otherRegion]).size).toBe(5);
  });

  it('changes when a state machine file or serverless.params.cjs changes', async () => {
    const before = await wiringCacheKey(project);
    const machinePath = join(project, 'statemachines', 'pipeline.asl.json');
    await writeFile(machinePath, (await readFile(machinePath, 'utf8')).replace('"Comment"', '"Comment" '));
    const afterMachine = await wiringCacheKey(project);
    await appendFile(join(project, 'serverless.params.cjs'), '\n// changed\n');

    expect(afterMachine).not.toBe(before);
    expect(await wiringCacheKey(project)).not.toBe(afterMachine);
  });
});

describe('readWiring with a cache folder', () => {
  it('reuses the cached wiring while the key matches, without running serverless', async () => {
    await mkdir(cacheDir, { recursive: true });
    await primeCache(await wiringCacheKey(project, { params: PARAMS }));

    const wiring = await readWiring(project, { params: PARAMS, cacheDir });

    expect(wiring.service).toBe('from-the-cache');
  });

  it('resolves serverless.yml again when it changed, and caches the new wiring', async () => {
    await mkdir(cacheDir, { recursive: true });
    await primeCache(await wiringCacheKey(project, { params: PARAMS }));
    await appendFile(join(project, 'serverless.yml'), '\n# changed\n');

    const wiring = await readWiring(project, { params: PARAMS, cacheDir });

    expect(wiring.service).toBe('stepline');
    expect(wiring.machines.pipeline?.name).toBe('stepline-local-pipeline');
    const rewritten = JSON.parse(await readFile(join(cacheDir, WIRING_CACHE_FILE), 'utf8'));
    expect(rewritten.key).toBe(await wiringCacheKey(project, { params: PARAMS }));
    expect(rewritten.wiring).toEqual(wiring);
  }, 120_000);
});
