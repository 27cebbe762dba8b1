import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { jsonEnv, optionalEnv, parseJsonSetting, requireEnv } from '#shared/config.ts';
import { ConfigurationError } from '#shared/errors.ts';
import { secretFor } from '#shared/secrets.ts';

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
  const parameterStore = () => ({ read: async (name: string) => `from-ssm:${name}` });

  it('prefers the environment variable', async () => {
    const read = secretFor('webhook', { STEPLINE_WEBHOOK_SECRET: 's' }, parameterStore);
    expect(await read()).toBe('s');
  });

  it('reads the SSM parameter the deployment names', async () => {
    const read = secretFor(
      'approvalKey',
      { APPROVAL_KEY_PARAMETER: '/stepline/dev/approval-key' },
      parameterStore,
    );
    expect(await read()).toBe('from-ssm:/stepline/dev/approval-key');
  });

  it('names both variables when neither is set', () => {
    expect(() => secretFor('webhook', {}, parameterStore)).toThrow(
      'Missing configuration: set WEBHOOK_SECRET_PARAMETER (or STEPLINE_WEBHOOK_SECRET)',
    );
  });
});
