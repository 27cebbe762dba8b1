import { ConflictError, InvalidInputError } from '#shared/errors.ts';
import * as z from '#shared/zod.ts';

/**
 * A run's record (`executions/<name>/execution.json`): its schema, its name rules and its file format.
 * Pure (zod only), so any reader of the state can share it.
 */

export const EXECUTION_STATUSES = [
  'RUNNING',
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'ABORTED',
  'INTERRUPTED',
  // Stopped by a newer run of its line (release control); on AWS an ABORTED execution with that cause.
  'SUPERSEDED',
] as const;

export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

export const ExecutionRecordSchema = z.looseObject({
  executionArn: z.string().check(z.minLength(1)),
  name: z.string().check(z.minLength(1)),
  stateMachine: z.string(),
  status: z.enum(EXECUTION_STATUSES),
  input: z.unknown(),
  output: z.optional(z.unknown()),
  error: z.optional(z.string()),
  cause: z.optional(z.string()),
  startDate: z.string(),
  stopDate: z.optional(z.string()),
  restartOf: z.optional(z.string()),
  redriveCount: z.optional(z.number().check(z.int(), z.nonnegative())),
  redriveDate: z.optional(z.string()),
});

/** One pipeline run. */
export interface ExecutionRecord {
  executionArn: string;
  name: string;
  /** The state machine's key in serverless.yml, e.g. `pipeline`. */
  stateMachine: string;
  status: ExecutionStatus;
  input: unknown;
  output?: unknown;
  error?: string;
  cause?: string;
  /** ISO 8601. */
  startDate: string;
  /** ISO 8601. */
  stopDate?: string;
  /** The execution (ARN or name) this one restarts: a new run of the same input under a new name. */
  restartOf?: string;
  /** How many times this execution was redriven (DescribeExecution's `redriveCount`); absent for none. */
  redriveCount?: number;
  /** ISO 8601: when it was last redriven (DescribeExecution's `redriveDate`). */
  redriveDate?: string;
}

/** The `error` of a run that was in flight when stepline stopped. */
export const INTERRUPTED_ERROR = 'Stepline.Interrupted';

/** Step Functions' execution name limit, kept so that a local name is also a valid cloud name. */
export const NAME_MAX_LENGTH = 80;

/**
 * A run with that name (or ARN) already exists. Its `name` is Step Functions' own `ExecutionAlreadyExists`,
 * so the code that starts runs treats the local and the cloud refusal alike: "already started".
 */
export class ExecutionAlreadyExistsError extends ConflictError {
  override readonly name = 'ExecutionAlreadyExists';
  readonly executionName: string;

  constructor(executionName: string) {
    super(`An execution named ${executionName} already exists`);
    this.executionName = executionName;
  }
}

/**
 * The execution cannot be redriven (it is running, it succeeded, or its 14 days are over). Its `name` is
 * Step Functions' own `ExecutionNotRedrivable`, and its message the reason DescribeExecution gives
 * (`redriveStatusReason`, https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html).
 */
export class ExecutionNotRedrivableError extends ConflictError {
  override readonly name = 'ExecutionNotRedrivable';
  readonly executionName: string;

  constructor(executionName: string, reason: string) {
    super(`Execution ${executionName} cannot be redriven: ${reason}`);
    this.executionName = executionName;
  }
}

/** Throws {@link InvalidInputError} for a name that cannot be both a folder and a Step Functions name. */
export function validateExecutionName(name: unknown): void {
  const forbidden = /[\s<>{}[\]?*"#%\\^|~`$&,;:/]/u;
  const valid =
    typeof name === 'string' &&
    name.length >= 1 &&
    name.length <= NAME_MAX_LENGTH &&
    name !== '.' &&
    name !== '..' &&
    !forbidden.test(name) &&
    ![...name].some((character) => isControl(character.codePointAt(0) ?? 0));
  if (!valid) {
    throw new InvalidInputError(
      `Execution name ${JSON.stringify(name)} is not valid: 1 to 80 characters, no whitespace, brackets, wildcards or any of " # % \\ ^ | ~ \` $ & , ; : /`,
    );
  }
}

function isControl(code: number): boolean {
  return code <= 0x1f || (code >= 0x7f && code <= 0x9f);
}

export function formatRecord(record: ExecutionRecord): string {
  return `${JSON.stringify(record, null, 2)}\n`;
}

/** An execution.json's record, or undefined when it does not parse or names another run. */
export function parseRecord(text: string, name: string): ExecutionRecord | undefined {
  const parsed = ExecutionRecordSchema.safeParse(parseJson(text));
  if (!parsed.success || parsed.data.name !== name) return undefined;
  // Earlier versions named the restarted run `redriveOf`: a restart is not a redrive.
  const { redriveOf, ...record } = parsed.data as ExecutionRecord & { redriveOf?: unknown };
  return typeof redriveOf === 'string' && record.restartOf === undefined
    ? { ...record, restartOf: redriveOf }
    : (record as ExecutionRecord);
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
