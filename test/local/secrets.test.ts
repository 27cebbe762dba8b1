import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadSecrets, localStatusTokens } from '#local/lambda/secrets.ts';
import { ConfigurationError } from '#shared/errors.ts';

let stateDir: string;

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'stepline-secrets-'));
  for (const name of [
    'STEPLINE_WEBHOOK_SECRET',
    'STEPLINE_WEBHOOK_SECRET_GITHUB',
    'STEPLINE_WEBHOOK_SECRET_GITLAB',
    'STEPLINE_WEBHOOK_SECRET_BITBUCKET',
    'STEPLINE_APPROVAL_KEY',
  ]) {
    vi.stubEnv(name, '');
  }
});

afterEach(async () => {
  vi.unstubAllEnvs();
  await rm(stateDir, { recursive: true, force: true });
});

describe('loadSecrets', () => {
  it('creates one webhook secret per provider, each different, in a 0600 file, and keeps them', async () => {
    const first = await loadSecrets(stateDir);
    const values = Object.values(first.webhookSecrets);
    expect(new Set(values).size).toBe(3);
    for (const provider of ['github', 'gitlab', 'bitbucket'] as const) {
      const path = join(stateDir, `webhook-secret-${provider}`);
      expect((await stat(path)).mode & 0o777).toBe(0o600);
      expect((await readFile(path, 'utf8')).trim()).toBe(first.webhookSecrets[provider]);
    }
    expect(await loadSecrets(stateDir)).toEqual(first);
  });

  it("makes an earlier version's single webhook-secret GitHub's, which the git hook signs with", async () => {
    await writeFile(join(stateDir, 'webhook-secret'), 'the-old-shared-secret\n', { mode: 0o600 });
    const secrets = await loadSecrets(stateDir);
    expect(secrets.webhookSecrets.github).toBe('the-old-shared-secret');
    expect(secrets.webhookSecrets.gitlab).not.toBe('the-old-shared-secret');
    expect(secrets.webhookSecrets.bitbucket).not.toBe('the-old-shared-secret');
  });

  it('takes a provider secret from the environment, and writes GitHub’s where the hook reads it', async () => {
    vi.stubEnv('STEPLINE_WEBHOOK_SECRET_GITHUB', 'gh-from-env');
    const secrets = await loadSecrets(stateDir);
    expect(secrets.webhookSecrets.github).toBe('gh-from-env');
    expect(await readFile(join(stateDir, 'webhook-secret-github'), 'utf8')).toBe('gh-from-env');
  });

  it('refuses the single STEPLINE_WEBHOOK_SECRET of earlier versions, naming the new variables', async () => {
    vi.stubEnv('STEPLINE_WEBHOOK_SECRET', 'shared');
    await expect(loadSecrets(stateDir)).rejects.toThrow(
      /^STEPLINE_WEBHOOK_SECRET served every provider and is no longer read: set STEPLINE_WEBHOOK_SECRET_GITHUB/,
    );
  });

  it('generates a strong approval key, and refuses a weak one from the environment naming it', async () => {
    const { approvalKey } = await loadSecrets(stateDir);
    expect(approvalKey).toMatch(/^[0-9a-f]{64}$/);
    vi.stubEnv('STEPLINE_APPROVAL_KEY', 'a'.repeat(64));
    const error = await loadSecrets(stateDir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(/^The approval key in STEPLINE_APPROVAL_KEY is not random/);
  });
});

describe('localStatusTokens', () => {
  it('reads each forge token from the parameters under the prefix serverless.yml names, at each use', async () => {
    const parameters: Record<string, string> = { '/stepline/local/status-token/gitlab': 'glpat-1' };
    const tokens = localStatusTokens(
      { STATUS_TOKEN_PARAMETER_PREFIX: '/stepline/local/status-token' },
      async () => parameters,
    );
    await expect(tokens.tokenFor('gitlab')).resolves.toBe('glpat-1');
    await expect(tokens.tokenFor('github')).resolves.toBeUndefined();
    parameters['/stepline/local/status-token/github'] = 'ghp-2';
    await expect(tokens.tokenFor('github')).resolves.toBe('ghp-2');
  });

  it('takes an empty value as no token', async () => {
    const tokens = localStatusTokens(undefined, async () => ({
      '/stepline/local/status-token/bitbucket': '',
    }));
    await expect(tokens.tokenFor('bitbucket')).resolves.toBeUndefined();
  });
});
