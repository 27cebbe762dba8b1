import * as z from '#shared/zod.ts';

/**
 * The one schema of a run's stored history (`executions/<name>/history.jsonl`, one event per line): what
 * the local engine writes (its own execution events around aws-local-stepfunctions' state, Map and
 * Parallel events), what the runtime adds (`BuildStateChanged`, `CommitStatusReported`) and what recovery writes
 * (`ExecutionInterrupted`). Read back by recovery, the console and the server.
 *
 * Pure (zod only, no `node:` modules): the console's browser bundle imports it too.
 *
 * Reading tolerates what other versions write: unknown fields are kept, and an event of a type this
 * version does not know is kept as an {@link UnrecognizedHistoryEvent} rather than failing the history.
 */

const at = { timestamp: z.string().check(z.minLength(1)) };
const failure = { error: z.optional(z.string()), cause: z.optional(z.string()) };
/** A state's events: its name and type; `index` is the Map iteration, `parentState` its Map or Parallel. */
const stateFields = {
  ...at,
  state: z.string(),
  stateType: z.string(),
  index: z.optional(z.number().check(z.int())),
  parentState: z.optional(z.string()),
};
const iterationFields = { ...at, parentState: z.string(), index: z.number().check(z.int()) };
const branchFields = { ...at, parentState: z.string() };

/** The history event that records a build's state (local only: Step Functions keeps builds in CodeBuild). */
export const BUILD_STATE_CHANGED = 'BuildStateChanged';

/**
 * A build of a run as the history keeps it, so a run's builds are still shown after a restart. Only the
 * id is checked here, and the object is kept whole; the runtime owns the rest of the shape (`RunBuild`).
 */
export const StoredBuildSchema = z.custom<{ id: string }>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { id?: unknown }).id === 'string' &&
    (value as { id: string }).id !== '',
  { message: 'a build needs an id' },
);

/** The history event that records a commit status reported to the run's forge (local: shown by the console). */
export const COMMIT_STATUS_REPORTED = 'CommitStatusReported';

/** A reported commit status as the history keeps it: its context and state checked, the object kept whole. */
export const StoredCommitStatusSchema = z.looseObject({
  context: z.string().check(z.minLength(1)),
  state: z.string().check(z.minLength(1)),
  outcome: z.string().check(z.minLength(1)),
});

/** A history event as written (the store gives it its `id`). */
export const NewHistoryEventSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('ExecutionStarted'),
    ...at,
    input: z.unknown(),
    /** The state machine's key in serverless.yml (`pipeline`): what a lost execution.json is rebuilt with. */
    stateMachine: z.optional(z.string()),
    executionArn: z.optional(z.string()),
    /** The run this one restarts (a new run of the same input, under a new name). */
    restartOf: z.optional(z.string()),
  }),
  /**
   * The run was redriven: it continues under the same name from where it failed
   * (https://docs.aws.amazon.com/step-functions/latest/apireference/API_ExecutionRedrivenEventDetails.html).
   */
  z.object({
    type: z.literal('ExecutionRedriven'),
    ...at,
    redriveCount: z.number().check(z.int(), z.positive()),
  }),
  z.object({ type: z.literal('ExecutionSucceeded'), ...at, output: z.optional(z.unknown()) }),
  z.object({ type: z.literal('ExecutionFailed'), ...at, ...failure }),
  z.object({ type: z.literal('ExecutionAborted'), ...at, ...failure }),
  /** aws-local-stepfunctions' name for a run that hit its TimeoutSeconds. */
  z.object({ type: z.literal('ExecutionTimeout'), ...at, ...failure }),
  z.object({ type: z.literal('ExecutionTimedOut'), ...at, ...failure }),
  /** stepline stopped (or crashed) while the run was in flight; written on stop or by recovery. */
  z.object({ type: z.literal('ExecutionInterrupted'), ...at, ...failure }),
  z.object({ type: z.literal('StateEntered'), ...stateFields }),
  z.object({ type: z.literal('StateExited'), ...stateFields, output: z.optional(z.unknown()) }),
  z.object({ type: z.literal('StateFailed'), ...stateFields, ...failure }),
  z.object({
    type: z.literal('StateRetried'),
    ...stateFields,
    attempt: z.optional(z.number().check(z.int())),
  }),
  z.object({ type: z.literal('StateCaught'), ...stateFields }),
  /**
   * A Task's result as its integration returned it, before ResultSelector and ResultPath, with the digest of
   * its input: what a redrive answers the Task with instead of running it again (local/stepfunctions/redrive.ts).
   */
  z.object({
    type: z.literal('TaskSucceeded'),
    ...stateFields,
    inputDigest: z.string().check(z.minLength(1)),
    output: z.optional(z.unknown()),
  }),
  z.object({ type: z.literal('MapIterationStarted'), ...iterationFields }),
  z.object({ type: z.literal('MapIterationSucceeded'), ...iterationFields }),
  z.object({ type: z.literal('MapIterationFailed'), ...iterationFields, ...failure }),
  z.object({ type: z.literal('ParallelBranchStarted'), ...branchFields }),
  z.object({ type: z.literal('ParallelBranchSucceeded'), ...branchFields }),
  z.object({ type: z.literal('ParallelBranchFailed'), ...branchFields, ...failure }),
  z.object({ type: z.literal(BUILD_STATE_CHANGED), ...at, build: StoredBuildSchema }),
  z.object({ type: z.literal(COMMIT_STATUS_REPORTED), ...at, status: StoredCommitStatusSchema }),
]);

/** A history event as written, before the store numbers it. */
export type NewHistoryEvent = z.infer<typeof NewHistoryEventSchema>;

/** The types this version writes and understands. */
export type HistoryEventType = NewHistoryEvent['type'];

/** A stored event of a type this version does not know (written by another version): kept, not acted on. */
export interface UnrecognizedHistoryEvent {
  type: 'Unrecognized';
  /** The `type` the event was stored with. */
  recordedType: string;
  timestamp: string;
  [field: string]: unknown;
}

/**
 * The fields events of several types carry, as readers look at them across types (a state's name, its Map
 * iteration, an error): present on the types that have them, absent on the others.
 */
export interface HistoryEventFields {
  state?: string;
  stateType?: string;
  parentState?: string;
  index?: number;
  error?: string;
  cause?: string;
  attempt?: number;
}

/** One event of a run's stored history. `id` counts from 1 per run. Narrow it by `type`. */
export type HistoryEvent = (NewHistoryEvent | UnrecognizedHistoryEvent) & { id: number } & HistoryEventFields;

/** One event of a given type. */
export type HistoryEventOf<T extends HistoryEventType> = Extract<NewHistoryEvent, { type: T }> & {
  id: number;
};

const StoredFieldsSchema = z.looseObject({
  id: z.number().check(z.int(), z.positive()),
  type: z.string().check(z.minLength(1)),
  timestamp: z.string().check(z.minLength(1)),
});

const KNOWN_TYPES = new Set<string>(
  NewHistoryEventSchema.def.options.flatMap((option) => option.shape.type.def.values),
);

/** What reading one stored line gave: the event, or why it was skipped. */
export type ParsedHistoryLine = { event: HistoryEvent } | { skipped: string };

/**
 * Reads one stored history line (a parsed JSON object). Unknown fields are kept as they are; an unknown
 * type becomes an {@link UnrecognizedHistoryEvent}; a line without id, type and timestamp, or a known type
 * whose fields do not match, is skipped with the reason.
 */
export function parseHistoryEvent(value: unknown): ParsedHistoryLine {
  const stored = StoredFieldsSchema.safeParse(value);
  if (!stored.success) return { skipped: `not a history event (${summarize(stored.error)})` };
  const fields = stored.data;
  if (!KNOWN_TYPES.has(fields.type)) {
    return { event: { ...fields, type: 'Unrecognized', recordedType: fields.type } };
  }
  const known = NewHistoryEventSchema.safeParse(value);
  if (!known.success) return { skipped: `not a valid ${fields.type} event (${summarize(known.error)})` };
  // The schema's own fields checked; fields it does not name are kept as they were stored.
  return { event: { ...fields, ...known.data, id: fields.id } as HistoryEvent };
}

function summarize(error: z.core.$ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || 'event'}: ${issue.message}`).join('; ');
}
