import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigurationError } from '#shared/errors.ts';

/** What serverless.yml gives the functions on AWS, with the secrets set directly rather than in SSM. */
const LAMBDA_ENV = {
  AWS_REGION: 'eu-west-1',
  POWERTOOLS_LOG_LEVEL: 'SILENT',
  STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-test-pipeline',
  STEPLINE_TRIGGERS: '{}',
  STEPLINE_SETTINGS: '{}',
  STEPLINE_WEBHOOK_SECRET_GITHUB: 'webhook-secret-for-tests',
  STEPLINE_APPROVAL_KEY: '9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d1f',
  APPROVALS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:stepline-test-approvals',
  APPROVAL_BASE_URL: 'https://abc123.execute-api.eu-west-1.amazonaws.com/approvals',
  NOTIFICATIONS_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:stepline-test-notifications',
  EVENT_BUS_NAME: 'stepline-test',
  RELEASE_TABLE: 'stepline-test-release',
  ROLLBACK_STATE_MACHINE_ARN: 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-test-rollback',
  IMAGE_REPOSITORY_URI: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/stepline-test',
};

const FUNCTIONS = [
  'webhook',
  'codecommit',
  'approval-request',
  'approval',
  'notify',
  'build-events',
  'pipeline-events',
  'holds',
];

async function importFunction(name: string): Promise<{ handler: unknown }> {
  vi.resetModules();
  return import(`../../functions/${name}.ts`);
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('the Lambda module of each function', () => {
  it.each(FUNCTIONS)('%s builds its handler from the Lambda environment', async (name) => {
    for (const [variable, value] of Object.entries(LAMBDA_ENV)) vi.stubEnv(variable, value);
    const { handler } = await importFunction(name);
    expect(handler).toBeTypeOf('function');
  });

  it('fails at start-up naming the variable it misses', async () => {
    for (const [variable, value] of Object.entries(LAMBDA_ENV)) vi.stubEnv(variable, value);
    vi.stubEnv('NOTIFICATIONS_TOPIC_ARN', '');
    await expect(importFunction('notify')).rejects.toThrow(
      new ConfigurationError('Missing required environment variable NOTIFICATIONS_TOPIC_ARN'),
    );
  });

  it('names the variable of invalid JSON configuration', async () => {
    for (const [variable, value] of Object.entries(LAMBDA_ENV)) vi.stubEnv(variable, value);
    vi.stubEnv('STEPLINE_SETTINGS', '{"environments": [{"name": ""}]}');
    await expect(importFunction('webhook')).rejects.toThrow(
      /STEPLINE_SETTINGS is invalid at environments\.0\.name/,
    );
  });
});
