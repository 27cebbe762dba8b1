import { ConfigurationError } from './errors.ts';
import type { SecretReader } from './ports.ts';
import { WEBHOOK_PROVIDERS, type WebhookProvider } from './push.ts';
import { STATUS_PROVIDERS, type StatusProvider } from './status/model.ts';
import type { StatusTokens } from './status/publisher.ts';

/** The secrets stepline reads by role, each from an environment variable when set, else from an SSM parameter. */
export const SECRETS = {
  /** The key that signs approval links: at least 32 random bytes (see {@link checkApprovalKey}). */
  approvalKey: { variable: 'STEPLINE_APPROVAL_KEY', parameterVariable: 'APPROVAL_KEY_PARAMETER' },
} as const;
export type SecretRole = keyof typeof SECRETS;

/**
 * A reader that can be asked to skip its cache (SsmSecretReader): after a signature fails, the secret may
 * have been rotated since it was cached.
 */
export interface RefreshingSecretReader extends SecretReader {
  read(name: string, options?: { forceFetch?: boolean }): Promise<string>;
}

/** A secret as a request reads it: the cached value, and a fresh read for when the cached one fails a check. */
export interface RotatingSecret {
  current(): Promise<string>;
  fetchAgain(): Promise<string>;
}

/** The webhook secret of each provider that has one; a provider without one has no webhook route. */
export type WebhookSecrets = Partial<Record<WebhookProvider, RotatingSecret>>;

/** `STEPLINE_WEBHOOK_SECRET_GITHUB`, `…_GITLAB`, `…_BITBUCKET`: a provider's secret set directly (tests, local). */
export function webhookSecretVariable(provider: WebhookProvider): string {
  return `STEPLINE_WEBHOOK_SECRET_${provider.toUpperCase()}`;
}

/** The providers with a secret parameter, comma-separated (`github,gitlab`); the stack's `webhookProviders`. */
export const WEBHOOK_PROVIDERS_VARIABLE = 'WEBHOOK_PROVIDERS';
/** `/stepline/<stage>/webhook-secret`: provider `p`'s secret is the SecureString parameter `<prefix>/<p>`. */
export const WEBHOOK_SECRET_PREFIX_VARIABLE = 'WEBHOOK_SECRET_PARAMETER_PREFIX';

const LEGACY_VARIABLES = ['STEPLINE_WEBHOOK_SECRET', 'WEBHOOK_SECRET_PARAMETER'];

function isSet(value: string | undefined): value is string {
  return value !== undefined && value !== '';
}

/** Parses `WEBHOOK_PROVIDERS`: known provider names, comma-separated, no spaces, no repeats ('' is none). */
function listedProviders(value: string): WebhookProvider[] {
  if (value === '') return [];
  const listed: WebhookProvider[] = [];
  for (const entry of value.split(',')) {
    const provider = WEBHOOK_PROVIDERS.find((p) => p === entry);
    if (provider === undefined || listed.includes(provider)) {
      throw new ConfigurationError(
        `${WEBHOOK_PROVIDERS_VARIABLE} lists ${JSON.stringify(entry)}: give each of ${WEBHOOK_PROVIDERS.join(', ')} ` +
          'at most once, comma-separated, without spaces',
      );
    }
    listed.push(provider);
  }
  return listed;
}

/**
 * One webhook secret per provider, so that a token GitLab sends in clear text cannot authenticate a
 * GitHub or Bitbucket delivery. Decided once at start-up:
 * - `STEPLINE_WEBHOOK_SECRET_<PROVIDER>` set: that value (tests, local runs);
 * - else a provider listed in `WEBHOOK_PROVIDERS` reads the SSM SecureString `<WEBHOOK_SECRET_PARAMETER_PREFIX>/<provider>`
 *   (AWS), through a reader whose cache has a max age, fetched again once when a delivery fails its check.
 *
 * A provider with neither has no secret, and its route answers 404. The single secret of earlier versions
 * (`STEPLINE_WEBHOOK_SECRET`, `WEBHOOK_SECRET_PARAMETER`) is refused with what to set instead; so is a
 * configuration naming no provider at all (`WEBHOOK_PROVIDERS=''` says "none" on purpose).
 *
 * @example
 * ```ts
 * const secrets = webhookSecretsFor(process.env, () => new SsmSecretReader(new SSMClient({})));
 * const github = secrets.github; // undefined: POST /webhooks/github answers 404
 * ```
 */
export function webhookSecretsFor(
  env: Record<string, string | undefined>,
  parameterStore: () => RefreshingSecretReader,
): WebhookSecrets {
  const legacy = LEGACY_VARIABLES.filter((name) => isSet(env[name]));
  if (legacy.length > 0) {
    throw new ConfigurationError(
      `${legacy.join(' and ')} named one webhook secret for every provider and is no longer read: set ` +
        `${WEBHOOK_PROVIDERS_VARIABLE} and ${WEBHOOK_SECRET_PREFIX_VARIABLE} (or ` +
        `${WEBHOOK_PROVIDERS.map(webhookSecretVariable).join(', ')}); README, "Webhook secrets"`,
    );
  }
  const listedValue = env[WEBHOOK_PROVIDERS_VARIABLE];
  const listed = listedValue === undefined ? [] : listedProviders(listedValue);
  const direct = WEBHOOK_PROVIDERS.filter((provider) => isSet(env[webhookSecretVariable(provider)]));
  if (listedValue === undefined && direct.length === 0) {
    throw new ConfigurationError(
      `Missing configuration: set ${WEBHOOK_PROVIDERS_VARIABLE} and ${WEBHOOK_SECRET_PREFIX_VARIABLE}, or ` +
        WEBHOOK_PROVIDERS.map(webhookSecretVariable).join(', '),
    );
  }
  const prefix = env[WEBHOOK_SECRET_PREFIX_VARIABLE];
  const fromStore = listed.filter((provider) => !direct.includes(provider));
  if (fromStore.length > 0 && !isSet(prefix)) {
    throw new ConfigurationError(
      `Missing configuration: ${WEBHOOK_PROVIDERS_VARIABLE} lists ${fromStore.join(', ')}; set ${WEBHOOK_SECRET_PREFIX_VARIABLE}`,
    );
  }
  const secrets: WebhookSecrets = {};
  for (const provider of direct) {
    const value = env[webhookSecretVariable(provider)] as string;
    secrets[provider] = { current: async () => value, fetchAgain: async () => value };
  }
  if (fromStore.length > 0) {
    const reader = parameterStore();
    for (const provider of fromStore) {
      const name = `${(prefix as string).replace(/\/+$/, '')}/${provider}`;
      secrets[provider] = {
        current: () => reader.read(name),
        fetchAgain: () => reader.read(name, { forceFetch: true }),
      };
    }
  }
  return secrets;
}

/**
 * Fewer distinct characters than this in a key is a placeholder, not a random key. Hex has only 16 digits,
 * and a random 64-digit hex key misses a few of them (about a quarter of such keys lack at least one):
 * hex keys need 12, which all but about one in five million random ones have.
 */
const MIN_DISTINCT_CHARACTERS = 16;
const MIN_DISTINCT_HEX_DIGITS = 12;
const HEX_KEY = /^[0-9a-fA-F]{64,}$/;
const BASE64_KEY = /^[A-Za-z0-9+/_-]+={0,2}$/;

/**
 * Checks that an approval key holds at least 32 random bytes: 64 or more hex digits, or base64 (standard or
 * URL-safe) decoding to 32 bytes or more, with at least 16 distinct characters (`aaaa…` or `0123…0123`
 * repeated are not keys). Throws {@link ConfigurationError} naming where the key came from, never the key.
 *
 * @example
 * ```ts
 * checkApprovalKey(await read(), 'SSM parameter /stepline/dev/approval-key'); // `openssl rand -hex 32` passes
 * ```
 */
export function checkApprovalKey(key: string, source: string): string {
  const hex = HEX_KEY.test(key);
  const base64Bytes = BASE64_KEY.test(key) ? Buffer.from(key, 'base64').length : 0;
  if (!hex && base64Bytes < 32) {
    throw new ConfigurationError(
      `The approval key in ${source} is too short or not encoded: give at least 32 random bytes as 64 hex ` +
        'digits or base64 (openssl rand -hex 32)',
    );
  }
  const distinct = new Set(key.replace(/=+$/, '').toLowerCase()).size;
  // A key that repeats a shorter part (`0123456789abcdef` four times) holds only that part's randomness.
  const repeats = `${key}${key}`.indexOf(key, 1) < key.length;
  if (distinct < (hex ? MIN_DISTINCT_HEX_DIGITS : MIN_DISTINCT_CHARACTERS) || repeats) {
    throw new ConfigurationError(
      `The approval key in ${source} is not random (${repeats ? 'a repeated pattern' : `${distinct} distinct characters`}): ` +
        'generate one with openssl rand -hex 32',
    );
  }
  return key;
}

/**
 * Where a secret comes from, decided once at start-up: the environment variable when it is set (tests, or a
 * deployment that sets it directly), else the SSM SecureString parameter whose name the deployment puts in
 * `…_PARAMETER` (AWS). Fails fast naming both variables when neither is set. The approval key is checked
 * each time it is read ({@link checkApprovalKey}): a weak key fails the request with a ConfigurationError
 * naming its source instead of signing links anyone could forge.
 *
 * @example
 * ```ts
 * const approvalKey = secretFor('approvalKey', process.env, () => new SsmSecretReader(new SSMClient({})));
 * const key = await approvalKey();
 * ```
 */
export function secretFor(
  role: SecretRole,
  env: Record<string, string | undefined>,
  parameterStore: () => SecretReader,
): () => Promise<string> {
  const { variable, parameterVariable } = SECRETS[role];
  const direct = env[variable];
  if (isSet(direct)) {
    checkApprovalKey(direct, variable);
    return async () => direct;
  }
  const parameterName = env[parameterVariable];
  if (!isSet(parameterName)) {
    throw new ConfigurationError(`Missing configuration: set ${parameterVariable} (or ${variable})`);
  }
  const reader = parameterStore();
  return async () => checkApprovalKey(await reader.read(parameterName), `SSM parameter ${parameterName}`);
}

/** The providers with a status token parameter, comma-separated (`github,gitlab`); the stack's `statusProviders`. */
export const STATUS_PROVIDERS_VARIABLE = 'STATUS_PROVIDERS';
/** `/stepline/<stage>/status-token`: provider `p`'s token is the SecureString parameter `<prefix>/<p>`. */
export const STATUS_TOKEN_PREFIX_VARIABLE = 'STATUS_TOKEN_PARAMETER_PREFIX';

/** A provider's status token parameter: `<prefix>/<provider>`. */
export function statusTokenParameter(prefix: string, provider: StatusProvider): string {
  return `${prefix.replace(/\/+$/, '')}/${provider}`;
}

/**
 * The forges' status tokens on AWS: a provider listed in `STATUS_PROVIDERS` reads the SSM SecureString
 * `<STATUS_TOKEN_PARAMETER_PREFIX>/<provider>` (cached by the reader); any other has no token, and its
 * statuses are skipped. Fails fast on an unknown provider or a listed one without the prefix.
 *
 * @example
 * ```ts
 * const tokens = statusTokensFor(process.env, () => new SsmSecretReader(new SSMClient({})));
 * await tokens.tokenFor('gitlab'); // undefined unless STATUS_PROVIDERS lists gitlab
 * ```
 */
export function statusTokensFor(
  env: Record<string, string | undefined>,
  parameterStore: () => SecretReader,
): StatusTokens {
  const listedValue = env[STATUS_PROVIDERS_VARIABLE] ?? '';
  const listed: StatusProvider[] = [];
  for (const entry of listedValue === '' ? [] : listedValue.split(',')) {
    const provider = STATUS_PROVIDERS.find((p) => p === entry);
    if (provider === undefined || listed.includes(provider)) {
      throw new ConfigurationError(
        `${STATUS_PROVIDERS_VARIABLE} lists ${JSON.stringify(entry)}: give each of ${STATUS_PROVIDERS.join(', ')} ` +
          'at most once, comma-separated, without spaces',
      );
    }
    listed.push(provider);
  }
  const prefix = env[STATUS_TOKEN_PREFIX_VARIABLE];
  if (listed.length > 0 && !isSet(prefix)) {
    throw new ConfigurationError(
      `Missing configuration: ${STATUS_PROVIDERS_VARIABLE} lists ${listed.join(', ')}; set ${STATUS_TOKEN_PREFIX_VARIABLE}`,
    );
  }
  let reader: SecretReader | undefined;
  return {
    tokenFor: async (provider) => {
      if (!listed.includes(provider) || !isSet(prefix)) return undefined;
      reader ??= parameterStore();
      return reader.read(statusTokenParameter(prefix, provider));
    },
  };
}
