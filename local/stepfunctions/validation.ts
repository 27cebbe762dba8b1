import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StateMachineDefinition as EngineDefinition } from 'aws-local-stepfunctions';
import { writeFileAtomic } from '#local/state/atomic-file.ts';
import { adaptToLocalEngine, type StateMachineDefinition } from '#local/stepfunctions/definition.ts';

/**
 * Validation of the state machines at start-up, remembered beside the wiring cache: the validator
 * (asl-validator on ajv, loaded with aws-local-stepfunctions) costs a few hundred ms of schema compiling,
 * more than the rest of a warm start, and its verdict on a definition does not change from one start to
 * the next. A start whose definitions were all seen valid before loads neither.
 */

/** The file, in the state folder, that lists the hashes of the definitions found valid. */
export const VALIDATION_FILE = 'wiring-validation.json';

/** Bump when what "valid" means changes (the engine or its validator upgraded in a way that matters). */
const VALIDATION_VERSION = 1;

function definitionHash(definition: StateMachineDefinition): string {
  return createHash('sha256')
    .update(`${VALIDATION_VERSION}\n${JSON.stringify(definition)}`)
    .digest('hex');
}

async function knownValid(file: string): Promise<Set<string>> {
  try {
    const hashes: unknown = JSON.parse(await readFile(file, 'utf8'));
    return new Set(Array.isArray(hashes) ? hashes.filter((hash) => typeof hash === 'string') : []);
  } catch {
    // No file yet, or a damaged one: validate again, which rewrites it.
    return new Set();
  }
}

/**
 * Throws if a definition is not one the local engine runs (aws-local-stepfunctions' validator, and the
 * local adaptation of TimeoutSecondsPath). Definitions validated before in this state folder are skipped.
 */
export async function validateMachines(
  definitions: StateMachineDefinition[],
  stateDir: string,
): Promise<void> {
  const file = join(stateDir, VALIDATION_FILE);
  const valid = await knownValid(file);
  const hashes = definitions.map(definitionHash);
  if (hashes.every((hash) => valid.has(hash))) return;
  const { StateMachine } = await import('aws-local-stepfunctions');
  for (const definition of definitions) {
    new StateMachine(structuredClone(adaptToLocalEngine(definition)) as unknown as EngineDefinition);
  }
  await writeFileAtomic(file, `${JSON.stringify(hashes)}\n`);
}
