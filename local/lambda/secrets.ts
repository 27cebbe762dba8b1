import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigurationError } from '#shared/errors.ts';
import { WEBHOOK_PROVIDERS, type WebhookProvider } from '#shared/push.ts';
import {
  checkApprovalKey,
  STATUS_TOKEN_PREFIX_VARIABLE,
  statusTokenParameter,
  webhookSecretVariable,
} from '#shared/secrets.ts';
import type { StatusTokens } from '#shared/status/publisher.ts';
import { HOOK_PROVIDER, webhookSecretPath, writeWebhookSecret } from '../git/remote.ts';

/**
 * The secrets the functions read from SSM on AWS, held in memory by the local mode: never put in
 * process.env, so build shells and deployed services do not inherit them. One webhook secret per provider,
 * as on AWS: GitLab sends its token in clear text, and it must not sign a GitHub delivery.
 */
export interface LocalSecrets {
  webhookSecrets: Record<WebhookProvider, string>;
  approvalKey: string;
}

/** The file the single webhook secret of earlier versions was kept in; the hook signed GitHub pushes with it. */
const LEGACY_WEBHOOK_SECRET = 'webhook-secret';

/**
 * Each provider's webhook secret (`STEPLINE_WEBHOOK_SECRET_<PROVIDER>`) and the approval key
 * (`STEPLINE_APPROVAL_KEY`): from the host's environment when set there, else created once under the state
 * folder, mode 0600. A `webhook-secret` file from an earlier version becomes GitHub's (the git hook signed
 * with it). The approval key must hold 32 random bytes ({@link checkApprovalKey}), or start-up fails naming
 * where it came from. The git hook reads GitHub's secret from its own file.
 */
export async function loadSecrets(stateDir: string): Promise<LocalSecrets> {
  if (process.env.STEPLINE_WEBHOOK_SECRET) {
    throw new ConfigurationError(
      `STEPLINE_WEBHOOK_SECRET served every provider and is no longer read: set ${WEBHOOK_PROVIDERS.map(webhookSecretVariable).join(', ')}`,
    );
  }
  await adoptLegacyWebhookSecret(stateDir);
  const entries = await Promise.all(
    WEBHOOK_PROVIDERS.map(async (provider) => {
      const secret =
        process.env[webhookSecretVariable(provider)] ||
        (await readOrCreateSecret(webhookSecretPath(stateDir, provider)));
      // The file the hook reads holds the secret the server checks, whichever of the two it came from.
      if (provider === HOOK_PROVIDER) await writeWebhookSecret(stateDir, secret, provider);
      return [provider, secret] as const;
    }),
  );
  const fromEnvironment = process.env.STEPLINE_APPROVAL_KEY;
  const keyPath = join(stateDir, 'approval-key');
  const approvalKey = checkApprovalKey(
    fromEnvironment || (await readOrCreateSecret(keyPath)),
    fromEnvironment ? 'STEPLINE_APPROVAL_KEY' : keyPath,
  );
  return { webhookSecrets: Object.fromEntries(entries) as Record<WebhookProvider, string>, approvalKey };
}

async function adoptLegacyWebhookSecret(stateDir: string): Promise<void> {
  try {
    await readFile(webhookSecretPath(stateDir, HOOK_PROVIDER));
  } catch {
    await rename(join(stateDir, LEGACY_WEBHOOK_SECRET), webhookSecretPath(stateDir, HOOK_PROVIDER)).catch(
      (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      },
    );
  }
}

async function readOrCreateSecret(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    const secret = randomBytes(32).toString('hex');
    await writeFile(path, `${secret}\n`, { mode: 0o600 });
    return secret;
  }
}

/** Where status tokens live when serverless.yml names no prefix (the stack's default stage). */
const DEFAULT_STATUS_TOKEN_PREFIX = '/stepline/local/status-token';

/**
 * The forges' status tokens locally: `.stepline/parameters.json`, the local Parameter Store, under the
 * names they have on AWS (`<STATUS_TOKEN_PARAMETER_PREFIX>/<provider>`: `/stepline/local/status-token/github` for the local stage).
 * Read at each use, so a token added while stepline runs is used from the next status on.
 */
export function localStatusTokens(
  environment: Record<string, unknown> | undefined,
  parameters: () => Promise<Record<string, string>>,
): StatusTokens {
  const configured = environment?.[STATUS_TOKEN_PREFIX_VARIABLE];
  const prefix =
    typeof configured === 'string' && configured !== '' ? configured : DEFAULT_STATUS_TOKEN_PREFIX;
  return {
    tokenFor: async (provider) => {
      const value = (await parameters())[statusTokenParameter(prefix, provider)];
      return typeof value === 'string' && value !== '' ? value : undefined;
    },
  };
}
