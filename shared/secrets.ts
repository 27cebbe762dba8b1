import { ConfigurationError } from './errors.ts';
import type { SecretReader } from './ports.ts';

/** The secrets stepline reads, each from an environment variable when set, else from an SSM parameter. */
export const SECRETS = {
  /** The webhook secret shared with GitHub, GitLab and Bitbucket. */
  webhook: { variable: 'STEPLINE_WEBHOOK_SECRET', parameterVariable: 'WEBHOOK_SECRET_PARAMETER' },
  /** The key that signs approval links. */
  approvalKey: { variable: 'STEPLINE_APPROVAL_KEY', parameterVariable: 'APPROVAL_KEY_PARAMETER' },
} as const;
export type SecretRole = keyof typeof SECRETS;

/**
 * Where a secret comes from, decided once at start-up: the environment variable when it is set (tests, or a
 * deployment that sets it directly), else the SSM SecureString parameter whose name the deployment puts in
 * `…_PARAMETER` (AWS). Fails fast naming both variables when neither is set.
 *
 * @example
 * ```ts
 * const webhookSecret = secretFor('webhook', process.env, () => new SsmSecretReader(new SSMClient({})));
 * const secret = await webhookSecret();
 * ```
 */
export function secretFor(
  role: SecretRole,
  env: Record<string, string | undefined>,
  parameterStore: () => SecretReader,
): () => Promise<string> {
  const { variable, parameterVariable } = SECRETS[role];
  const direct = env[variable];
  if (direct !== undefined && direct !== '') {
    return async () => direct;
  }
  const parameterName = env[parameterVariable];
  if (parameterName === undefined || parameterName === '') {
    throw new ConfigurationError(`Missing configuration: set ${parameterVariable} (or ${variable})`);
  }
  const reader = parameterStore();
  return () => reader.read(parameterName);
}
