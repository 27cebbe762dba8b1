import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { breakSampleApp, copySampleApp, SAMPLE_APP_DIR } from '../helpers/sample-app.ts';

const run = promisify(execFile);

/** Runs `node --test` in a folder; resolves with its exit code and output instead of throwing on failure. */
async function nodeTest(cwd: string): Promise<{ exitCode: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--test'], { cwd, timeout: 20_000 });
    return { exitCode: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { exitCode: failed.code ?? -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

describe('the sample app hello-service', () => {
  let scratch: string;

  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'stepline-hello-'));
  });

  afterEach(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  it('passes its own node --test suite', async () => {
    const result = await nodeTest(SAMPLE_APP_DIR);

    expect(result.output).toMatch(/^(?:#|ℹ) pass [1-9]/m);
    expect(result.output).toMatch(/^(?:#|ℹ) fail 0$/m);
    expect(result.exitCode).toBe(0);
  });

  it('fails its own tests once breakSampleApp makes /health answer 500', async () => {
    const app = await copySampleApp(join(scratch, 'app'));

    await breakSampleApp(app);
    const result = await nodeTest(app);

    expect(result.exitCode).not.toBe(0);
    expect(result.output).toContain('answers /health with 200');
    expect(result.output).toMatch(/^(?:#|ℹ) fail [1-9]/m);
  });

  it('refuses to break a server.mjs that no longer holds the /health answer it edits', async () => {
    const app = join(scratch, 'app');
    await copySampleApp(app);
    await breakSampleApp(app);

    await expect(breakSampleApp(app)).rejects.toThrow(/does not contain the \/health answer/);
  });
});
