import * as z from '#shared/zod.ts';
import { InvalidInputError } from './errors.ts';
import { ExecutionInputSchema } from './pipeline.ts';
import type { Milestone } from './ports.ts';
import type { Push } from './push.ts';
import { SUPERSEDED_ERROR, supersedingRun } from './release.ts';

/**
 * The EventBridge events stepline listens to (CodeBuild build state and phase changes, Step Functions
 * execution status changes), what it reads from them, and the milestones it puts on its own bus.
 *
 * Real events carry fields the docs omit and omit fields the docs show (an IN_PROGRESS build has no
 * `logs` or `phases`, a 2017 event has no `build-number`, a 2023 execution event has redrive fields), so
 * every schema here accepts unknown fields and tolerates absent or null optional ones.
 */

/**
 * The EventBridge envelope, field for field as Powertools parser's `EventBridgeSchema`. It is restated here
 * because that module imports zod as `{ z }`, which bundles all of zod's locales (~330 KB) into every
 * Lambda that uses it; `import * as z` lets esbuild keep only what is used.
 */
const EventBridgeSchema = z.object({
  version: z.string(),
  id: z.string(),
  source: z.string(),
  account: z.string(),
  time: z.iso.datetime(),
  region: z.string(),
  resources: z.array(z.string()),
  'detail-type': z.string(),
  detail: z.unknown(),
  'replay-name': z.optional(z.string()),
});

// ---------------------------------------------------------------------------------------------------------
// CodeBuild

const CodeBuildPhaseSchema = z.object({
  'phase-type': z.string(),
  'phase-status': z.nullish(z.string()),
  /** Messages such as `YAML_FILE_ERROR: …` or `COMMAND_EXECUTION_ERROR: …`. */
  'phase-context': z.nullish(z.array(z.unknown())),
  'start-time': z.nullish(z.string()),
  'end-time': z.nullish(z.string()),
  'duration-in-seconds': z.nullish(z.number()),
});
export type CodeBuildPhase = z.infer<typeof CodeBuildPhaseSchema>;

const CodeBuildAdditionalInformationSchema = z.object({
  'build-number': z.nullish(z.number()),
  'build-start-time': z.nullish(z.string()),
  'source-version': z.nullish(z.string()),
  initiator: z.nullish(z.string()),
  environment: z.nullish(
    z.object({
      'environment-variables': z.nullish(
        z.array(z.object({ name: z.string(), value: z.nullish(z.string()), type: z.nullish(z.string()) })),
      ),
    }),
  ),
  logs: z.nullish(
    z.object({
      'group-name': z.nullish(z.string()),
      'stream-name': z.nullish(z.string()),
      'deep-link': z.nullish(z.string()),
    }),
  ),
  phases: z.nullish(z.array(CodeBuildPhaseSchema)),
});

const codeBuildDetailFields = {
  'project-name': z.string().check(z.minLength(1)),
  'build-id': z.string().check(z.minLength(1)),
  'source-version': z.nullish(z.string()),
  'additional-information': z.nullish(CodeBuildAdditionalInformationSchema),
};

/** EventBridge "CodeBuild Build State Change". */
export const CodeBuildStateChangeEventSchema = z.extend(EventBridgeSchema, {
  source: z.literal('aws.codebuild'),
  'detail-type': z.literal('CodeBuild Build State Change'),
  detail: z.object({
    ...codeBuildDetailFields,
    /** IN_PROGRESS, SUCCEEDED, FAILED, STOPPED, FAULT, TIMED_OUT (kept open for statuses to come). */
    'build-status': z.string().check(z.minLength(1)),
    'current-phase': z.nullish(z.string()),
  }),
});
export type CodeBuildStateChangeEvent = z.infer<typeof CodeBuildStateChangeEventSchema>;

/** EventBridge "CodeBuild Build Phase Change". */
export const CodeBuildPhaseChangeEventSchema = z.extend(EventBridgeSchema, {
  source: z.literal('aws.codebuild'),
  'detail-type': z.literal('CodeBuild Build Phase Change'),
  detail: z.object({
    ...codeBuildDetailFields,
    'completed-phase': z.string().check(z.minLength(1)),
    'completed-phase-status': z.nullish(z.string()),
    'completed-phase-duration-seconds': z.nullish(z.number()),
    /** A JSON-encoded array of messages, as a string (`"[]"`). */
    'completed-phase-context': z.nullish(z.string()),
  }),
});
export type CodeBuildPhaseChangeEvent = z.infer<typeof CodeBuildPhaseChangeEventSchema>;

export const CodeBuildEventSchema = z.discriminatedUnion('detail-type', [
  CodeBuildStateChangeEventSchema,
  CodeBuildPhaseChangeEventSchema,
]);
export type CodeBuildEvent = z.infer<typeof CodeBuildEventSchema>;

/** Build statuses after which nothing more happens to the build. */
export const TERMINAL_BUILD_STATUSES: readonly string[] = [
  'SUCCEEDED',
  'FAILED',
  'STOPPED',
  'FAULT',
  'TIMED_OUT',
];

/** The build variable through which the pipeline tells a build which environment it works on. */
export const ENVIRONMENT_VARIABLE = 'STEPLINE_ENVIRONMENT';

/**
 * Validates a CodeBuild state or phase change event.
 *
 * @throws InvalidInputError when the event is not a CodeBuild build state or phase change at all.
 */
export function parseCodeBuildEvent(event: unknown): CodeBuildEvent {
  const parsed = CodeBuildEventSchema.safeParse(event);
  if (!parsed.success) {
    throw new InvalidInputError(
      `Not a CodeBuild build state or phase change event: ${describeIssue(parsed.error)}`,
      { cause: parsed.error },
    );
  }
  return parsed.data;
}

/** What a build state change says, in the terms notifications and milestones use. */
export interface BuildReport {
  project: string;
  /** The build's ARN, as the event names it. */
  buildId: string;
  buildNumber: number | null;
  status: string;
  terminal: boolean;
  /** The commit (or other source version) built. */
  commit: string | null;
  /** The pipeline environment the build worked on, from its `STEPLINE_ENVIRONMENT` variable. */
  environment: string | null;
  logLink: string | null;
  /** Seconds from the build's start to this event (or the sum of its phases). */
  durationSeconds: number | null;
  /** The first phase that did not succeed, with its context messages. */
  failedPhase: { type: string; status: string; context: string[] } | null;
}

/**
 * Reads a build state change into a {@link BuildReport}. `region` builds a log link from the log group and
 * stream when the event carries no `deep-link`.
 */
export function describeBuild(event: CodeBuildStateChangeEvent, region: string): BuildReport {
  const { detail } = event;
  const info = detail['additional-information'];
  const status = detail['build-status'];
  const terminal = TERMINAL_BUILD_STATUSES.includes(status);
  return {
    project: detail['project-name'],
    buildId: detail['build-id'],
    buildNumber: info?.['build-number'] ?? null,
    status,
    terminal,
    commit: buildCommit(detail),
    environment: buildEnvironment(detail),
    logLink: buildLogLink(detail, region),
    durationSeconds: terminal ? buildDuration(event) : null,
    failedPhase: failedPhase(info?.phases ?? []),
  };
}

/** The milestone of a build state change (`Build State Change`). */
export function buildStateMilestone(report: BuildReport): Milestone {
  const detail: BuildStateMilestoneDetail = {
    project: report.project,
    buildId: report.buildId,
    status: report.status,
    commit: report.commit,
    environment: report.environment,
    logLink: report.logLink,
    duration: report.durationSeconds,
  };
  return { detailType: MILESTONE_DETAIL_TYPES.buildState, detail };
}

/** The milestone of a build phase change (`Build Phase Change`). */
export function buildPhaseMilestone(event: CodeBuildPhaseChangeEvent, region: string): Milestone {
  const { detail } = event;
  const result: BuildPhaseMilestoneDetail = {
    project: detail['project-name'],
    buildId: detail['build-id'],
    phase: detail['completed-phase'],
    phaseStatus: detail['completed-phase-status'] ?? null,
    phaseContext: contextMessages(parseJsonArray(detail['completed-phase-context'])),
    duration: detail['completed-phase-duration-seconds'] ?? null,
    commit: buildCommit(detail),
    environment: buildEnvironment(detail),
    logLink: buildLogLink(detail, region),
  };
  return { detailType: MILESTONE_DETAIL_TYPES.buildPhase, detail: result };
}

type CodeBuildDetail = CodeBuildStateChangeEvent['detail'] | CodeBuildPhaseChangeEvent['detail'];

function buildCommit(detail: CodeBuildDetail): string | null {
  return detail['source-version'] ?? detail['additional-information']?.['source-version'] ?? null;
}

function buildEnvironment(detail: CodeBuildDetail): string | null {
  return plainBuildVariable(detail, ENVIRONMENT_VARIABLE);
}

/**
 * A plain-text variable of the build (`STEPLINE_ENVIRONMENT`, `STEPLINE_EXECUTION_ID`), or null. For
 * PARAMETER_STORE or SECRETS_MANAGER the value is a reference, which is never read.
 */
export function plainBuildVariable(detail: CodeBuildDetail, name: string): string | null {
  const variables = detail['additional-information']?.environment?.['environment-variables'] ?? [];
  const variable = variables.find((v) => v.name === name && (v.type ?? 'PLAINTEXT') === 'PLAINTEXT');
  return variable?.value || null;
}

function buildLogLink(detail: CodeBuildDetail, region: string): string | null {
  const logs = detail['additional-information']?.logs;
  if (logs?.['deep-link']) return logs['deep-link'];
  if (logs?.['group-name'] && logs['stream-name']) {
    return `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#logEvent:group=${logs['group-name']};stream=${logs['stream-name']}`;
  }
  return null;
}

function buildDuration(event: CodeBuildStateChangeEvent): number | null {
  const info = event.detail['additional-information'];
  const started = parseCodeBuildTime(info?.['build-start-time']);
  const ended = Date.parse(event.time);
  if (started !== undefined && !Number.isNaN(ended) && ended >= started) {
    return Math.round((ended - started) / 1000);
  }
  const phases = info?.phases ?? [];
  if (phases.length === 0) return null;
  return Math.round(phases.reduce((sum, phase) => sum + (phase['duration-in-seconds'] ?? 0), 0));
}

function failedPhase(phases: readonly CodeBuildPhase[]): BuildReport['failedPhase'] {
  const phase = phases.find((p) => p['phase-status'] && p['phase-status'] !== 'SUCCEEDED');
  if (!phase) return null;
  return {
    type: phase['phase-type'],
    status: phase['phase-status'] ?? 'UNKNOWN',
    context: contextMessages(phase['phase-context'] ?? []),
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * Parses CodeBuild's event times (`Sep 1, 2017 4:12:29 PM`, UTC) or an ISO time, to epoch milliseconds.
 * Parsed by hand because `Date.parse` reads that format in the host's time zone.
 */
export function parseCodeBuildTime(text: string | null | undefined): number | undefined {
  if (!text) return undefined;
  const match = /^([A-Z][a-z]{2}) (\d{1,2}), (\d{4}) (\d{1,2}):(\d{2}):(\d{2}) (AM|PM)$/.exec(text.trim());
  if (!match) {
    const iso = /^\d{4}-\d{2}-\d{2}T/.test(text) ? Date.parse(text) : Number.NaN;
    return Number.isNaN(iso) ? undefined : iso;
  }
  const [, monthName, day, year, hour, minute, second, half] = match;
  const month = MONTHS.indexOf(monthName ?? '');
  if (month < 0) return undefined;
  const hour12 = Number(hour) % 12;
  const hours = half === 'PM' ? hour12 + 12 : hour12;
  return Date.UTC(Number(year), month, Number(day), hours, Number(minute), Number(second));
}

function parseJsonArray(text: string | null | undefined): unknown[] {
  if (!text) return [];
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value : [text];
  } catch {
    return [text];
  }
}

function contextMessages(context: readonly unknown[]): string[] {
  return context.filter((item): item is string => typeof item === 'string' && item.trim() !== '');
}

// ---------------------------------------------------------------------------------------------------------
// Step Functions

/** EventBridge "Step Functions Execution Status Change". */
export const ExecutionStatusChangeEventSchema = z.extend(EventBridgeSchema, {
  source: z.literal('aws.states'),
  'detail-type': z.literal('Step Functions Execution Status Change'),
  detail: z.object({
    executionArn: z.string().check(z.minLength(1)),
    stateMachineArn: z.string().check(z.minLength(1)),
    name: z.string().check(z.minLength(1)),
    /** RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE. */
    status: z.string().check(z.minLength(1)),
    /** Epoch milliseconds. */
    startDate: z.nullish(z.number()),
    stopDate: z.nullish(z.number()),
    /** The execution input as a JSON string; null when it was too large to include. */
    input: z.nullish(z.string()),
    output: z.nullish(z.string()),
    error: z.nullish(z.string()),
    cause: z.nullish(z.string()),
    /**
     * How many times the execution was redriven (0 or absent: never). A redriven execution runs again under
     * the same name and ARN, so its events repeat RUNNING for that name, each time with a higher count
     * (https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html, redriveCount).
     */
    redriveCount: z.nullish(z.number()),
    /** Epoch milliseconds of the last redrive. */
    redriveDate: z.nullish(z.number()),
  }),
});
export type ExecutionStatusChangeEvent = z.infer<typeof ExecutionStatusChangeEventSchema>;

/**
 * Validates a Step Functions execution status change event.
 *
 * @throws InvalidInputError when the event is not one.
 */
export function parseExecutionStatusChangeEvent(event: unknown): ExecutionStatusChangeEvent {
  const parsed = ExecutionStatusChangeEventSchema.safeParse(event);
  if (!parsed.success) {
    throw new InvalidInputError(
      `Not a Step Functions execution status change event: ${describeIssue(parsed.error)}`,
      { cause: parsed.error },
    );
  }
  return parsed.data;
}

/** What an execution status change says, in the terms notifications and milestones use. */
export interface ExecutionReport {
  executionArn: string;
  name: string;
  status: string;
  /** The push the run is for; null when the input is not a pipeline input (a run started by hand). */
  push: Push | null;
  startedAt: string | null;
  stoppedAt: string | null;
  durationSeconds: number | null;
  error: string | null;
  cause: string | null;
  /**
   * How many times the run was redriven: 0 for its first attempt. A RUNNING with a count above 0 is the
   * same run going on from where it failed, not a new run of the same name.
   */
  redriveCount: number;
}

const PushInputSchema = z.pick(ExecutionInputSchema, { push: true });

/** Reads an execution status change into an {@link ExecutionReport}, taking what it can from the input. */
export function describeExecution(event: ExecutionStatusChangeEvent): ExecutionReport {
  const { detail } = event;
  const start = detail.startDate ?? null;
  const stop = detail.stopDate ?? null;
  return {
    executionArn: detail.executionArn,
    name: detail.name,
    status: detail.status,
    push: pushFromInput(detail.input),
    startedAt: start === null ? null : new Date(start).toISOString(),
    stoppedAt: stop === null ? null : new Date(stop).toISOString(),
    durationSeconds:
      start !== null && stop !== null && stop >= start ? Math.round((stop - start) / 1000) : null,
    error: detail.error ?? null,
    cause: detail.cause ?? null,
    redriveCount: detail.redriveCount ?? 0,
  };
}

function pushFromInput(input: string | null | undefined): Push | null {
  if (!input) return null;
  let value: unknown;
  try {
    value = JSON.parse(input);
  } catch {
    return null;
  }
  const parsed = PushInputSchema.safeParse(value);
  return parsed.success ? parsed.data.push : null;
}

/** The milestone of an execution status change (`Pipeline Execution Status Change`). */
export function pipelineMilestone(report: ExecutionReport): Milestone {
  const detail: PipelineMilestoneDetail = {
    executionArn: report.executionArn,
    name: report.name,
    status: report.status,
    repository: report.push?.repository.fullName ?? null,
    ref: report.push?.ref ?? null,
    commit: report.push?.after ?? null,
    startedAt: report.startedAt,
    stoppedAt: report.stoppedAt,
    duration: report.durationSeconds,
    redriveCount: report.redriveCount,
  };
  const supersededBy = report.error === SUPERSEDED_ERROR ? supersedingRun(report.cause) : null;
  if (supersededBy) detail.supersededBy = supersededBy;
  return { detailType: MILESTONE_DETAIL_TYPES.pipeline, detail };
}

// ---------------------------------------------------------------------------------------------------------
// Milestones on stepline's bus (source `stepline`)

/** The `detail-type` of each milestone stepline emits. */
export const MILESTONE_DETAIL_TYPES = {
  buildState: 'Build State Change',
  buildPhase: 'Build Phase Change',
  pipeline: 'Pipeline Execution Status Change',
} as const;

/** Detail of `Build State Change`. Absent facts are null, so every key is always there. */
export const BuildStateMilestoneDetailSchema = z.object({
  project: z.string(),
  /** The build's ARN. */
  buildId: z.string(),
  status: z.string(),
  commit: z.nullable(z.string()),
  environment: z.nullable(z.string()),
  logLink: z.nullable(z.string()),
  /** Seconds, for finished builds. */
  duration: z.nullable(z.number()),
});
export type BuildStateMilestoneDetail = z.infer<typeof BuildStateMilestoneDetailSchema>;

/** Detail of `Build Phase Change`. */
export const BuildPhaseMilestoneDetailSchema = z.object({
  project: z.string(),
  buildId: z.string(),
  /** The phase that completed (`BUILD`, `POST_BUILD`, …). */
  phase: z.string(),
  phaseStatus: z.nullable(z.string()),
  phaseContext: z.array(z.string()),
  /** Seconds the phase took. */
  duration: z.nullable(z.number()),
  commit: z.nullable(z.string()),
  environment: z.nullable(z.string()),
  logLink: z.nullable(z.string()),
});
export type BuildPhaseMilestoneDetail = z.infer<typeof BuildPhaseMilestoneDetailSchema>;

/** Detail of `Pipeline Execution Status Change`. */
export const PipelineMilestoneDetailSchema = z.object({
  executionArn: z.string(),
  name: z.string(),
  status: z.string(),
  /** `owner/name`, when the execution input is a pipeline input. */
  repository: z.nullable(z.string()),
  /** The full ref, `refs/heads/main`. */
  ref: z.nullable(z.string()),
  commit: z.nullable(z.string()),
  /** ISO 8601. */
  startedAt: z.nullable(z.string()),
  stoppedAt: z.nullable(z.string()),
  /** Seconds, once the execution stopped. */
  duration: z.nullable(z.number()),
  /** For a run a newer push of its line retired (status ABORTED): the newer run. */
  supersededBy: z.optional(z.string()),
  /** How many times the run was redriven (0: its first attempt); a RUNNING above 0 is a redrive starting. */
  redriveCount: z.number(),
});
export type PipelineMilestoneDetail = z.infer<typeof PipelineMilestoneDetailSchema>;

function describeIssue(error: z.core.$ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  return issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message;
}
