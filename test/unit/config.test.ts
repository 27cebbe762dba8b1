import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { jsonEnv, optionalEnv, parseJsonSetting, requireEnv } from '#shared/config.ts';
import { ConfigurationError } from '#shared/errors.ts';
import { checkApprovalKey, secretFor, webhookSecretsFor } from '#shared/secrets.ts';
import * as z from '#shared/zod.ts';

describe('config', () => {
  it('names the missing variable', () => {
    expect(() => requireEnv('STATE_MACHINE_ARN', {})).toThrow(
      new ConfigurationError('Missing required environment variable STATE_MACHINE_ARN'),
    );
  });

  it('treats an empty variable as absent', () => {
    expect(optionalEnv('X', { X: '  ' })).toBeUndefined();
    expect(() => requireEnv('X', { X: '' })).toThrow(/X/);
  });

  it('parses JSON configuration and names the invalid field', () => {
    const schema = z.object({ branches: z.array(z.string()) });
    expect(jsonEnv('T', schema, undefined, { T: '{"branches":["main"]}' })).toEqual({ branches: ['main'] });
    expect(() => jsonEnv('T', schema, undefined, { T: '{"branches":[1]}' })).toThrow(
      /Environment variable T is invalid at branches.0/,
    );
    expect(() => jsonEnv('T', schema, undefined, { T: '{' })).toThrow(/T is not valid JSON/);
    expect(jsonEnv('T', schema, { branches: [] }, {})).toEqual({ branches: [] });
  });

  it('names the setting as the person knows it, in one line', () => {
    const schema = z.object({ branches: z.array(z.string()) });
    expect(() => parseJsonSetting('--param triggers', '{"branches":[1]}', schema, { branches: [] })).toThrow(
      /^--param triggers is invalid at branches\.0: [^\n]+$/,
    );
    expect(() => parseJsonSetting('--param triggers', '{', schema, { branches: [] })).toThrow(
      /^--param triggers is not valid JSON: [^\n]+$/,
    );
    expect(parseJsonSetting('--param triggers', undefined, schema, { branches: [] })).toEqual({
      branches: [],
    });
  });
});

describe('secretFor', () => {
  const KEY = 'c2a7f0e4b9d1386a5e7c04f2b8d9a1e36f0c5b7a2d4e8f1093b6c5a7d2e4f8a1';
  const parameterStore = (value: string) => () => ({ read: async () => value });

  it('prefers the environment variable', async () => {
    const read = secretFor('approvalKey', { STEPLINE_APPROVAL_KEY: KEY }, parameterStore('unused'));
    expect(await read()).toBe(KEY);
  });

  it('reads the SSM parameter the deployment names', async () => {
    const read = secretFor(
      'approvalKey',
      { APPROVAL_KEY_PARAMETER: '/stepline/dev/approval-key' },
      parameterStore(KEY),
    );
    expect(await read()).toBe(KEY);
  });

  it('names both variables when neither is set', () => {
    expect(() => secretFor('approvalKey', {}, parameterStore(KEY))).toThrow(
      'Missing configuration: set APPROVAL_KEY_PARAMETER (or STEPLINE_APPROVAL_KEY)',
    );
  });

  it('refuses a weak approval key where it is read, naming the parameter and never the key', async () => {
    const read = secretFor(
      'approvalKey',
      { APPROVAL_KEY_PARAMETER: '/stepline/dev/approval-key' },
      parameterStore('a'.repeat(64)),
    );
    const error = await read().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(
      /^The approval key in SSM parameter \/stepline\/dev\/approval-key is not random/,
    );
    expect((error as Error).message).not.toContain('aaaa');
    expect(() => secretFor('approvalKey', { STEPLINE_APPROVAL_KEY: 'short' }, parameterStore(KEY))).toThrow(
      /^The approval key in STEPLINE_APPROVAL_KEY is too short or not encoded/,
    );
  });
});

describe('checkApprovalKey', () => {
  it.each([
    ['64 hex digits (openssl rand -hex 32)', randomBytes(32).toString('hex')],
    ['base64 of 32 bytes (openssl rand -base64 32)', randomBytes(32).toString('base64')],
    ['URL-safe base64 of 48 bytes', randomBytes(48).toString('base64url')],
  ])('accepts %s', (_what, key) => {
    expect(checkApprovalKey(key, 'K')).toBe(key);
  });

  it('accepts every one of a thousand random hex keys (hex has only 16 digits)', () => {
    for (let i = 0; i < 1000; i++) {
      const key = randomBytes(32).toString('hex');
      expect(checkApprovalKey(key, 'K')).toBe(key);
    }
  });

  it.each([
    ['too short', randomBytes(16).toString('hex')],
    ['base64 of 31 bytes', randomBytes(31).toString('base64')],
    ['a passphrase', 'correct horse battery staple and more words'],
    ['one character repeated', 'a'.repeat(64)],
    ['a repeated pattern', '0123456789abcdef'.repeat(4)],
    ['few distinct characters', 'abcdefab'.repeat(4) + 'badcfeab'.repeat(4)],
  ])('refuses a key that is %s', (_what, key) => {
    expect(() => checkApprovalKey(key, 'SSM parameter /p')).toThrow(ConfigurationError);
    expect(() => checkApprovalKey(key, 'SSM parameter /p')).toThrow(
      /^The approval key in SSM parameter \/p /,
    );
  });
});

describe('webhookSecretsFor', () => {
  const reads: { name: string; forceFetch: boolean }[] = [];
  const store = () => ({
    read: async (name: string, options?: { forceFetch?: boolean }) => {
      reads.push({ name, forceFetch: options?.forceFetch ?? false });
      return `ssm:${name}`;
    },
  });

  it('reads each listed provider from its own parameter, and nothing for the others', async () => {
    reads.length = 0;
    const secrets = webhookSecretsFor(
      {
        WEBHOOK_PROVIDERS: 'github,bitbucket',
        WEBHOOK_SECRET_PARAMETER_PREFIX: '/stepline/dev/webhook-secret',
      },
      store,
    );
    expect(Object.keys(secrets).sort()).toEqual(['bitbucket', 'github']);
    expect(await secrets.github?.current()).toBe('ssm:/stepline/dev/webhook-secret/github');
    expect(await secrets.bitbucket?.fetchAgain()).toBe('ssm:/stepline/dev/webhook-secret/bitbucket');
    expect(reads).toEqual([
      { name: '/stepline/dev/webhook-secret/github', forceFetch: false },
      { name: '/stepline/dev/webhook-secret/bitbucket', forceFetch: true },
    ]);
    expect(secrets.gitlab).toBeUndefined();
  });

  it('takes a provider secret set in the environment', async () => {
    const secrets = webhookSecretsFor({ STEPLINE_WEBHOOK_SECRET_GITLAB: 'g' }, store);
    expect(Object.keys(secrets)).toEqual(['gitlab']);
    expect(await secrets.gitlab?.current()).toBe('g');
  });

  it('accepts an explicitly empty list: no webhook route', () => {
    expect(webhookSecretsFor({ WEBHOOK_PROVIDERS: '' }, store)).toEqual({});
  });

  it('refuses the single secret of earlier versions, saying what to set instead', () => {
    expect(() =>
      webhookSecretsFor({ WEBHOOK_SECRET_PARAMETER: '/stepline/dev/webhook-secret' }, store),
    ).toThrow(
      /^WEBHOOK_SECRET_PARAMETER named one webhook secret for every provider and is no longer read: set WEBHOOK_PROVIDERS and WEBHOOK_SECRET_PARAMETER_PREFIX/,
    );
    expect(() => webhookSecretsFor({ STEPLINE_WEBHOOK_SECRET: 's' }, store)).toThrow(ConfigurationError);
  });

  it.each([['gitea'], ['github, gitlab'], ['github,github']])(
    'refuses WEBHOOK_PROVIDERS=%j naming it',
    (list) => {
      expect(() =>
        webhookSecretsFor({ WEBHOOK_PROVIDERS: list, WEBHOOK_SECRET_PARAMETER_PREFIX: '/p' }, store),
      ).toThrow(/^WEBHOOK_PROVIDERS lists /);
    },
  );

  it('fails fast when nothing is configured, or a listed provider has no parameter prefix', () => {
    expect(() => webhookSecretsFor({}, store)).toThrow(
      'Missing configuration: set WEBHOOK_PROVIDERS and WEBHOOK_SECRET_PARAMETER_PREFIX, or ' +
        'STEPLINE_WEBHOOK_SECRET_GITHUB, STEPLINE_WEBHOOK_SECRET_GITLAB, STEPLINE_WEBHOOK_SECRET_BITBUCKET',
    );
    expect(() => webhookSecretsFor({ WEBHOOK_PROVIDERS: 'gitlab' }, store)).toThrow(
      'Missing configuration: WEBHOOK_PROVIDERS lists gitlab; set WEBHOOK_SECRET_PARAMETER_PREFIX',
    );
  });
});
