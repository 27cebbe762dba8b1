import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StateMachineDefinition } from '#local/stepfunctions/definition.ts';
import { VALIDATION_FILE, validateMachines } from '#local/stepfunctions/validation.ts';

let stateDir: string;

beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'stepline-validation-'));
});

afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

const VALID = {
  StartAt: 'Done',
  States: { Done: { Type: 'Pass', End: true } },
} as unknown as StateMachineDefinition;

/** A Pass state pointing at a state that does not exist: the engine's validator refuses it. */
const INVALID = {
  StartAt: 'Done',
  States: { Done: { Type: 'Pass', Next: 'Nowhere' } },
} as unknown as StateMachineDefinition;

async function rememberedHashes(): Promise<string[]> {
  return JSON.parse(await readFile(join(stateDir, VALIDATION_FILE), 'utf8')) as string[];
}

describe('validateMachines', () => {
  it('refuses a definition the engine does not run, and remembers nothing', async () => {
    await expect(validateMachines([VALID, INVALID], stateDir)).rejects.toThrow();
    await expect(readFile(join(stateDir, VALIDATION_FILE), 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('remembers valid definitions by their hash', async () => {
    await validateMachines([VALID], stateDir);
    expect(await rememberedHashes()).toEqual([expect.stringMatching(/^[0-9a-f]{64}$/)]);
  });

  it('validates a changed definition again, though others were remembered', async () => {
    await validateMachines([VALID], stateDir);
    await expect(validateMachines([VALID, INVALID], stateDir)).rejects.toThrow();
  });

  it('validates again when the remembered list is damaged', async () => {
    await writeFile(join(stateDir, VALIDATION_FILE), '{not json');
    await validateMachines([VALID], stateDir);
    expect(await rememberedHashes()).toHaveLength(1);
  });
});
