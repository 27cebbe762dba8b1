import { describe, expect, it } from 'vitest';
import { awsIngestDeps } from '#shared/aws/ingest.ts';
import { parseJsonSetting } from '#shared/config.ts';
import { InvalidInputError } from '#shared/errors.ts';
import { startPipelines } from '#shared/ingest.ts';
import { createLogger } from '#shared/logger.ts';
import type { ExecutionInput } from '#shared/pipeline.ts';
import {
  mergeSettings,
  overrideFor,
  parseRepositorySettingsFile,
  StackSettingsSchema,
  settingsForRepository,
} from '#shared/repository-settings.ts';
import { aPush } from '../helpers/push.ts';
import { MemoryLineStore } from '../helpers/release.ts';

const stack = (settings: unknown) =>
  parseJsonSetting('--param settings', JSON.stringify(settings), StackSettingsSchema, {});

const names = (settings: { environments: { name: string; approval: boolean }[] }) =>
  settings.environments.map((environment) => `${environment.name}${environment.approval ? '*' : ''}`);

describe('per-repository settings', () => {
  const settings = stack({
    environments: [{ name: 'dev' }, { name: 'qa' }, { name: 'prod', approval: true }],
    approvalTimeoutSeconds: 7200,
    repositories: {
      'acme/docs': { environments: [{ name: 'preview' }] },
      'acme/*': { buildspecs: { deploy: 'ci/deploy.yml' }, approvalTimeoutSeconds: 600 },
      'other/**': { environments: [{ name: 'dev' }, { name: 'prod', approval: true }] },
    },
  });

  it('gives a repository no override names the defaults', () => {
    const defaults = settingsForRepository(settings, 'someone/else');
    expect(names(defaults)).toEqual(['dev', 'qa', 'prod*']);
    expect(defaults.approvalTimeoutSeconds).toBe(7200);
  });

  it('applies the first key that matches, in the order written, exact names and globs alike', () => {
    expect(overrideFor(settings, 'acme/docs')).toBe('acme/docs');
    expect(overrideFor(settings, 'acme/shop')).toBe('acme/*');
    expect(overrideFor(settings, 'ACME/Shop')).toBe('acme/*');
    expect(overrideFor(settings, 'acme/shop/sub')).toBeUndefined();
    expect(overrideFor(settings, 'other/group/app')).toBe('other/**');
    expect(names(settingsForRepository(settings, 'acme/docs'))).toEqual(['preview']);
    expect(names(settingsForRepository(settings, 'other/group/app'))).toEqual(['dev', 'prod*']);
  });

  it('merges an override field by field: a buildspec path named keeps the others, a list replaces', () => {
    const shop = settingsForRepository(settings, 'acme/shop');
    expect(shop.buildspecs).toEqual({
      test: 'buildspecs/test.yml',
      image: 'buildspecs/image.yml',
      infrastructure: 'buildspecs/infrastructure.yml',
      deploy: 'ci/deploy.yml',
    });
    expect(shop.approvalTimeoutSeconds).toBe(600);
    expect(names(shop)).toEqual(['dev', 'qa', 'prod*']);
  });

  it('merges nothing through a __proto__ key', () => {
    const merged = mergeSettings(
      { buildspecs: { deploy: 'a.yml' } },
      JSON.parse('{"__proto__":{"polluted":true},"buildspecs":{"__proto__":{"image":"b.yml"}}}'),
    );
    expect(merged).toEqual({ buildspecs: { deploy: 'a.yml' } });
    expect(Object.getPrototypeOf(merged.buildspecs)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("lays the repository's own file over the defaults, and the override over the file", () => {
    const file = parseRepositorySettingsFile(
      JSON.stringify({ environments: [{ name: 'staging' }], approvalTimeoutSeconds: 3600 }),
      'stepline.json',
    );
    const elsewhere = settingsForRepository(settings, 'someone/else', file);
    expect(names(elsewhere)).toEqual(['staging']);
    expect(elsewhere.approvalTimeoutSeconds).toBe(3600);
    const shop = settingsForRepository(settings, 'acme/shop', file);
    expect(names(shop)).toEqual(['staging']);
    expect(shop.approvalTimeoutSeconds).toBe(600);
  });

  it('names the repository and the field of an invalid override when the settings are read', () => {
    const read = (repositories: unknown) => () => stack({ repositories });
    expect(read({ 'acme/shop': { environments: [{ name: 'Prod' }] } })).toThrow(
      /^--param settings is invalid at repositories\.acme\/shop\.environments\.0\.name: lower-case/,
    );
    expect(read({ 'acme/shop': { approvalTimeoutSeconds: 5 } })).toThrow(
      /^--param settings is invalid at repositories\.acme\/shop\.approvalTimeoutSeconds: /,
    );
    expect(read({ 'acme/shop': { enviroments: [] } })).toThrow(
      /^--param settings is invalid at repositories\.acme\/shop\.enviroments: not a setting \(a repository may set environments, /,
    );
    expect(read({ 'acme shop': {} })).toThrow(/at repositories\.acme shop: a repository name or glob/);
    expect(read(['acme/shop'])).toThrow(/at repositories: must be an object keyed by repository/);
    expect(read({ 'acme/shop': 'dev' })).toThrow(/at repositories\.acme\/shop: must be an object/);
  });

  it("refuses a repository's file that is not JSON, sets repositories or has an invalid field, naming it", () => {
    const where = 'stepline.json of local/app at 1a2b3c4';
    expect(() => parseRepositorySettingsFile('{', where)).toThrow(
      /^stepline\.json of local\/app at 1a2b3c4 is not valid JSON: /,
    );
    expect(() => parseRepositorySettingsFile('{"repositories":{}}', where)).toThrow(InvalidInputError);
    expect(() => parseRepositorySettingsFile('{"environments":[]}', where)).toThrow(
      /^stepline\.json of local\/app at 1a2b3c4 is invalid at environments: /,
    );
  });
});

describe('the AWS ingest with per-repository settings', () => {
  it('starts each repository with its own environments, from STEPLINE_SETTINGS', async () => {
    const deps = awsIngestDeps('webhook', {
      STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-dev-pipeline',
      RELEASE_TABLE: 'stepline-dev-release',
      STEPLINE_SETTINGS: JSON.stringify({
        repositories: { 'acme/docs': { environments: [{ name: 'preview' }] } },
      }),
    });
    const inputs: ExecutionInput[] = [];
    const starter = {
      start: async ({ name, input }: { name: string; input: ExecutionInput }) => {
        inputs.push(input);
        return { outcome: 'started' as const, executionName: name, executionArn: `arn:${name}` };
      },
    };
    const logger = createLogger('test', 'SILENT');
    for (const fullName of ['acme/docs', 'acme/shop']) {
      const push = aPush({
        repository: { fullName, cloneUrl: `https://github.com/${fullName}.git`, defaultBranch: 'main' },
      });
      await startPipelines([push], undefined, { ...deps, starter, lines: new MemoryLineStore(), logger });
    }
    expect(inputs.map((input) => names(input.settings))).toEqual([['preview'], ['dev', 'prod*']]);
  });
});
