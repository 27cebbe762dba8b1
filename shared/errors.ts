/**
 * stepline's named errors. Task Lambdas throw them so that the state machine's Retry and Catch can match
 * `ErrorEquals` by `name`; HTTP handlers map them to a status code and a message a person can act on.
 */
export class SteplineError extends Error {
  /**
   * The error's name, which Retry/Catch and the HTTP answers carry. Each subclass spells its own: the Lambda
   * bundles are minified, class names and all (serverless.yml, `keepNames: false`).
   */
  override name = 'SteplineError';
  /** The HTTP status an HTTP handler answers with when this error reaches it. */
  readonly status: number = 500;
}

/** The request is not well-formed or lacks what the operation needs (400). */
export class InvalidInputError extends SteplineError {
  override readonly name: string = 'InvalidInputError';
  override readonly status: number = 400;
}

/** A signature, token or link did not verify (401). */
export class UnauthorizedError extends SteplineError {
  override readonly name: string = 'UnauthorizedError';
  override readonly status: number = 401;
}

/** A signed link is valid in form but tampered with or expired (403). */
export class ForbiddenError extends SteplineError {
  override readonly name: string = 'ForbiddenError';
  override readonly status: number = 403;
}

/** The thing asked for does not exist (404). */
export class NotFoundError extends SteplineError {
  override readonly name: string = 'NotFoundError';
  override readonly status: number = 404;
}

/** A decision or action came after the thing was already decided or ended (409). */
export class ConflictError extends SteplineError {
  override readonly name: string = 'ConflictError';
  override readonly status: number = 409;
}

/** A rollback with nothing to go back to, or asked for an environment that moved on (409). */
export class RollbackRefusedError extends ConflictError {
  override readonly name: string = 'RollbackRefusedError';
}

/** The request body is over the accepted size (413). */
export class PayloadTooLargeError extends SteplineError {
  override readonly name: string = 'PayloadTooLargeError';
  override readonly status: number = 413;
}

/** A required configuration value is missing or malformed. Raised at start-up, never per request. */
export class ConfigurationError extends SteplineError {
  override readonly name: string = 'ConfigurationError';
}

/**
 * A stage of the pipeline failed: thrown by the notify function once it has sent the failure notification,
 * so that the run fails at that Task, which a redrive reruns (see statemachines/pipeline.asl.json). Its
 * name is the error Step Functions records for the run: `Pipeline.StageFailed`; its message starts with
 * the stage (`prod: Deploy failed (…)`), which {@link StageFailedError.stageOf} reads back.
 */
export class StageFailedError extends SteplineError {
  override readonly name: string = 'Pipeline.StageFailed';
  constructor(stage: string, detail: string) {
    super(
      `${stage} failed (${detail}). The failure notification names it and links to the build log; fix the cause and push again, or redrive this execution to run ${stage} again.`,
    );
  }

  /**
   * The stage a run failed at, from the `error` and `cause` its execution ended with; null for another
   * error, or a cause that does not name one. On AWS the cause of a Lambda task's error is the JSON the
   * runtime reports (`errorMessage`, `errorType`, `trace`:
   * https://docs.aws.amazon.com/step-functions/latest/dg/tutorial-handling-error-conditions.html), which the
   * execution ends with when nothing catches it; locally it is the message itself.
   */
  static stageOf(error: string | null | undefined, cause: string | null | undefined): string | null {
    if (error !== 'Pipeline.StageFailed' || !cause) return null;
    let message = cause;
    try {
      const reported: unknown = JSON.parse(cause);
      if (typeof reported === 'object' && reported !== null && 'errorMessage' in reported)
        message = String(reported.errorMessage);
    } catch {
      // Not JSON: the message itself.
    }
    return /^(.+?) failed \(/.exec(message)?.[1] ?? null;
  }
}

/** True for errors whose status is a client error (4xx): safe to show their message to the caller. */
export function isClientError(error: unknown): error is SteplineError {
  return error instanceof SteplineError && error.status >= 400 && error.status < 500;
}

/**
 * The task token no longer waits for a decision: it was already decided, the gate timed out, or the
 * execution ended (Step Functions' TaskTimedOut, TaskDoesNotExist, InvalidToken).
 */
export class TaskNoLongerWaitingError extends ConflictError {
  override readonly name: string = 'TaskNoLongerWaitingError';
  readonly reason: 'timed-out' | 'not-waiting' | 'invalid';

  constructor(reason: 'timed-out' | 'not-waiting' | 'invalid', options?: ErrorOptions) {
    super(
      reason === 'timed-out'
        ? 'The approval is no longer waiting: it expired'
        : 'The approval is no longer waiting: it was already decided or the run ended',
      options,
    );
    this.reason = reason;
  }
}
