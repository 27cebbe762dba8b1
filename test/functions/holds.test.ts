import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHoldsHandler } from '#shared/handlers/holds.ts';
import { createLogger } from '#shared/logger.ts';
import { lambdaContext } from '../helpers/lambda.ts';
import { aPush } from '../helpers/push.ts';
import { recordingLedger } from '../helpers/release.ts';

const TOKEN = 'AQB4AAAAKgAAAAMAAAAAAAAAAd0secret-task-token';
const push = aPush();
const run = (n: number, mode = 'QUEUED') => ({
  executionArn: `arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-${n}`,
  push,
  sequence: n,
  commit: String(n).repeat(40),
  mode,
});
const PLAN = [
  { name: 'dev', approval: false },
  { name: 'prod', approval: true },
];

let logged: string[];
beforeEach(() => {
  logged = [];
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'INFO');
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      logged.push(String(chunk));
      return true;
    });
  }
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

function holds() {
  const { ledger, record } = recordingLedger();
  const handler = createHoldsHandler({ ledger, logger: createLogger('holds'), now: () => new Date() });
  return { invoke: (event: unknown) => handler(event, lambdaContext('stepline-test-holds')), record };
}

describe('the holds function', () => {
  it('resumes a run entering a free environment with its own task token, and logs no token', async () => {
    const { invoke, record } = holds();
    await invoke({ action: 'join', ...run(1), environments: PLAN });

    const result = await invoke({ action: 'enter', ...run(1), environment: 'dev', taskToken: TOKEN });

    expect(record.resumed).toEqual([{ token: TOKEN, output: { environment: 'dev', entered: true } }]);
    expect(result).toEqual({ line: 'github:acme/shop:refs/heads/main', actions: ['resume run-1'] });
    expect(logged.join('')).toContain('Release task done');
    expect(logged.join('')).not.toContain(TOKEN);
  });

  it('logs no task token even when event logging is asked for at DEBUG', async () => {
    vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'DEBUG');
    vi.stubEnv('POWERTOOLS_LOGGER_LOG_EVENT', 'true');
    const { invoke } = holds();

    await invoke({ action: 'enter', ...run(1), environment: 'dev', taskToken: TOKEN });

    expect(logged.join('')).toContain('Release task done');
    expect(logged.join('')).not.toContain(TOKEN);
  });

  it('refuses an older commit with Environment.Behind and a notification naming both commits', async () => {
    const { invoke, record } = holds();
    for (const n of [2, 1]) await invoke({ action: 'join', ...run(n), environments: PLAN });
    await invoke({ action: 'enter', ...run(2), environment: 'prod', taskToken: 'token-2' });
    await invoke({ action: 'leave', ...run(2), environment: 'prod' });

    await invoke({ action: 'enter', ...run(1), environment: 'prod', taskToken: TOKEN });

    expect(record.refused).toEqual([
      {
        token: TOKEN,
        error: 'Environment.Behind',
        cause: expect.stringContaining('prod already runs a newer commit'),
      },
    ]);
    expect(record.published.map((n) => n.subject)).toEqual(['Refused: run-1 is older than prod']);
    expect(record.published[0]?.body).not.toContain(TOKEN);
  });

  it('in PARALLEL mode resumes at once and holds nothing', async () => {
    const { invoke, record } = holds();
    await invoke({ action: 'enter', ...run(1, 'PARALLEL'), environment: 'dev', taskToken: 'token-1' });
    await invoke({ action: 'enter', ...run(2, 'PARALLEL'), environment: 'dev', taskToken: 'token-2' });
    expect(record.resumed.map((r) => r.token)).toEqual(['token-1', 'token-2']);
  });

  it('fails the task on a malformed request, naming what is wrong', async () => {
    const { invoke } = holds();
    await expect(invoke({ action: 'enter', ...run(1), environment: 'dev' })).rejects.toThrow(
      /Invalid holds request at taskToken/,
    );
    await expect(invoke({ action: 'hold', ...run(1) })).rejects.toMatchObject({ name: 'InvalidInputError' });
    await expect(invoke({ action: 'join', ...run(1), mode: 'LATEST', environments: PLAN })).rejects.toThrow(
      /at mode/,
    );
  });
});
