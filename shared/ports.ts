import type { TestOutcome } from './pipeline.ts';
import type { Push } from './push.ts';
import type { LineState } from './release.ts';

/**
 * The ports: the small interfaces through which handlers and the domain reach the outside world.
 * AWS adapters (shared/aws/) implement them over the AWS SDK v3; the local mode binds its own.
 * The choice is made once, where the program starts.
 */

/** What a pipeline execution is started with. Never carries a secret. */
export interface PipelineInput {
  push: Push;
  /** The provider's delivery id (or EventBridge event id) that carried the push, for correlation. */
  deliveryId?: string;
}

export type StartPipelineResult =
  | { outcome: 'started'; executionName: string; executionArn: string }
  | { outcome: 'already-started'; executionName: string };

/** Starts the pipeline state machine. A name already used means "already started", not an error. */
export interface PipelineStarter {
  start(request: { name: string; input: PipelineInput }): Promise<StartPipelineResult>;
}

/**
 * Stops runs of the pipeline state machine (StopExecution on AWS): a pull request's newer head supersedes
 * the runs of its older heads.
 */
export interface RunStopper {
  /**
   * Stops every running execution whose name starts with `namePrefix`, except the one named `keep`, with
   * the given error and cause. Resolves with the names it stopped.
   */
  stopRunning(request: { namePrefix: string; keep: string; error: string; cause: string }): Promise<string[]>;
}

/** Reads a secret by its name (an SSM SecureString parameter on AWS). */
export interface SecretReader {
  read(name: string): Promise<string>;
}

/** Resolves a task token waiting in the state machine (SendTaskSuccess / SendTaskFailure). */
export interface TaskDecider {
  succeed(taskToken: string, output: unknown): Promise<void>;
  fail(taskToken: string, error: string, cause: string): Promise<void>;
}

/** SNS takes subjects of "less than 100 characters" (Publish API), one line, no control characters. */
export const SUBJECT_MAX_LENGTH = 99;

/** A notification for people: an SNS message (email subscribers read subject and body). */
export interface Notification {
  /** Which topic: approval requests, or pipeline and build notifications. */
  topic: 'approvals' | 'notifications';
  /** At most {@link SUBJECT_MAX_LENGTH} characters (SNS's limit). */
  subject: string;
  body: string;
  /**
   * On an approval request: the gate and its links as data, for a notifier that shows them beyond the
   * text (the local runtime lists the pending approval from it). SNS publishes subject and body only.
   */
  approval?: ApprovalRequested;
}

/** An approval gate waiting for a decision, and the signed links that decide it. */
export interface ApprovalRequested {
  executionArn: string;
  /** The environment waiting for approval. */
  environment: string;
  /** The approve link. */
  approve: string;
  /** The reject link. */
  reject: string;
  /** When the gate stops waiting and the links expire, ISO 8601. */
  expiresAt: string;
}

export interface Notifier {
  publish(notification: Notification): Promise<void>;
}

/** How many of a topic's subscribers receive its messages (confirmed), and how many still have to click. */
export interface Subscribers {
  confirmed: number;
  pending: number;
}

/** Counts the approvals topic's subscribers: an email subscription delivers nothing until it is confirmed. */
export interface SubscriberCounter {
  count(): Promise<Subscribers>;
}

/** A milestone put on stepline's custom EventBridge bus for integrators (source `stepline`). */
export interface Milestone {
  detailType: string;
  detail: Record<string, unknown>;
}

export interface MilestoneEmitter {
  emit(milestone: Milestone): Promise<void>;
}

/**
 * Where each line's release state lives (shared/release.ts): one document per line, replaced only if
 * nobody wrote it since it was read. On AWS a DynamoDB item written with a condition; locally a file.
 */
export interface LineStore {
  /** The line's next push number (1, 2, …), taken atomically. */
  nextSequence(line: string): Promise<number>;
  /** The line's state and its version (0 when the line has none yet). */
  read(line: string): Promise<{ state: LineState; version: number }>;
  /** Writes the state if the stored version is still `version`; false when another writer came first. */
  write(line: string, state: LineState, version: number): Promise<boolean>;
}

/** Stops an execution (StopExecution), with an error and a cause that say why. */
export interface ExecutionStopper {
  stop(executionArn: string, error: string, cause: string): Promise<void>;
}

/** How an execution ended, as far as an approval link needs it: whether a newer run retired it. */
export interface RunStatusReader {
  /** The cause it was stopped with, when it was retired by a newer run; null otherwise. */
  supersededCause(executionArn: string): Promise<string | null>;
  /** The stage a failed run failed at (`prod: Deploy`), when its error and cause name one; null otherwise. */
  failedStage(executionArn: string): Promise<string | null>;
}

/** An execution as its ARN describes it now: its input, parsed, and its status (`RUNNING`, `SUCCEEDED`, …). */
export interface ExecutionDescription {
  input: unknown;
  status: string;
}

/** What a finished build's test reports counted (the local build runner's JUnit summaries). */
export interface TestReports {
  /** Undefined when the build has no test report. */
  countsOf(
    buildArn: string,
    executionArn: string,
  ): Promise<{ passed: number; failed: number; skipped: number } | undefined>;
}

/** A run's Test stage outcome, read from its history (GetExecutionHistory on AWS, the local history locally). */
export interface TestOutcomes {
  /** Undefined when the run's history holds no Test outcome (the stage has not ended, or no such run). */
  of(executionArn: string): Promise<TestOutcome | undefined>;
}

/** Describes an execution by its ARN (DescribeExecution on AWS, the local store locally). */
export interface ExecutionInputs {
  /** Undefined when there is no such execution; `input` undefined when it is not JSON. */
  describe(executionArn: string): Promise<ExecutionDescription | undefined>;
}
