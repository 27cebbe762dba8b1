import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const PROJECT_DIR = fileURLToPath(new URL('../..', import.meta.url));
const PROBE = fileURLToPath(new URL('./import-probe.ts', import.meta.url));

interface ImportReport {
  module: string;
  /** Variable → the project file and line that read it while the module loaded. */
  envReads: Record<string, string>;
  clients: string[];
  dependencyEnvReads: string[];
  error?: string;
}

/** Imports a module in a fresh Node (the project's Node 22) and reports what importing it did. */
async function importReport(module: string, env: Record<string, string> = {}): Promise<ImportReport> {
  const { stdout } = await exec(process.execPath, [PROBE, module], {
    cwd: PROJECT_DIR,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
  });
  return JSON.parse(stdout) as ImportReport;
}

const DEPENDENCIES: Record<string, string> =
  JSON.parse(readFileSync(`${PROJECT_DIR}/package.json`, 'utf8')).dependencies ?? {};

const HANDLER_MODULES = readdirSync(`${PROJECT_DIR}/shared/handlers`)
  .filter((file) => file.endsWith('.ts'))
  .map((file) => `shared/handlers/${file}`)
  .sort();

describe('importing a handler factory module', () => {
  it('finds the handler modules', () => {
    expect(HANDLER_MODULES).toContain('shared/handlers/webhook.ts');
    expect(HANDLER_MODULES).toHaveLength(9);
  });

  it.each(HANDLER_MODULES)('%s reads no environment variable and builds no SDK client', async (module) => {
    const report = await importReport(module);
    expect(report.error).toBeUndefined();
    expect(report.envReads).toEqual({});
    expect(report.clients).toEqual([]);
  });
});

describe('the probe', () => {
  it("sees a Lambda module's wiring read its environment and build its clients", async () => {
    const report = await importReport('functions/webhook.ts', {
      STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-test-pipeline',
      WEBHOOK_PROVIDERS: 'github',
      WEBHOOK_SECRET_PARAMETER_PREFIX: '/stepline/test/webhook-secret',
      RELEASE_TABLE: 'stepline-test-release',
    });
    expect(report.error).toBeUndefined();
    expect(report.envReads).toMatchObject({
      STATE_MACHINE_ARN: 'shared/config.ts:15',
      STEPLINE_SETTINGS: expect.stringMatching(/^shared\/config\.ts:/),
    });
    // The probe sees the clients of package.json's dependencies: DynamoDB's once it is listed there.
    const dynamo = Object.hasOwn(DEPENDENCIES, '@aws-sdk/client-dynamodb') ? ['DynamoDBClient'] : [];
    expect(report.clients.sort()).toEqual([...dynamo, 'SFNClient', 'SSMClient']);
  });

  it('sees a read that fails the import too', async () => {
    const report = await importReport('functions/webhook.ts');
    expect(report.error).toBe('Missing required environment variable STATE_MACHINE_ARN');
    expect(Object.keys(report.envReads)).toContain('STATE_MACHINE_ARN');
  });
});
