import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeWebhookSecret } from '../git/remote.ts';

/**
 * The two secrets the functions read from SSM on AWS, held in memory by the local mode: never put in
 * process.env, so build shells and deployed services do not inherit them.
 */
export interface LocalSecrets {
  webhookSecret: string;
  approvalKey: string;
}

/**
 * The webhook secret and approval key: from the host's environment when set there, else created once
 * under the state folder. The git hook reads the webhook secret from its own file.
 */
export async function loadSecrets(stateDir: string): Promise<LocalSecrets> {
  const webhookSecret =
    process.env.STEPLINE_WEBHOOK_SECRET || (await readOrCreateSecret(join(stateDir, 'webhook-secret')));
  const approvalKey =
    process.env.STEPLINE_APPROVAL_KEY || (await readOrCreateSecret(join(stateDir, 'approval-key')));
  await writeWebhookSecret(stateDir, webhookSecret);
  return { webhookSecret, approvalKey };
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
