import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  InvalidToken,
  paginateGetExecutionHistory,
  paginateListExecutions,
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  type SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { StageFailedError, TaskNoLongerWaitingError } from '../errors.ts';
import type { TestOutcome } from '../pipeline.ts';
import type {
  ExecutionDescription,
  ExecutionInputs,
  ExecutionStopper,
  PipelineInput,
  PipelineStarter,
  RunStatusReader,
  RunStopper,
  StartPipelineResult,
  TaskDecider,
  TestOutcomes,
} from '../ports.ts';
import { SUPERSEDED_ERROR } from '../release.ts';
import { AFTER_TEST_STATE, testOutcomeIn } from '../test-reports.ts';

/** Starts executions of one state machine. `ExecutionAlreadyExists` means the run was already started. */
export class SfnPipelineStarter implements PipelineStarter {
  readonly #client: SFNClient;
  readonly #stateMachineArn: string;

  constructor(client: SFNClient, stateMachineArn: string) {
    this.#client = client;
    this.#stateMachineArn = stateMachineArn;
  }

  async start(request: { name: string; input: PipelineInput }): Promise<StartPipelineResult> {
    try {
      const output = await this.#client.send(
        new StartExecutionCommand({
          stateMachineArn: this.#stateMachineArn,
          name: request.name,
          input: JSON.stringify(request.input),
        }),
      );
      return { outcome: 'started', executionName: request.name, executionArn: output.executionArn ?? '' };
    } catch (error) {
      if (error instanceof ExecutionAlreadyExists) {
        return { outcome: 'already-started', executionName: request.name };
      }
      throw error;
    }
  }
}

/** Resolves task tokens with SendTaskSuccess / SendTaskFailure, naming why a token no longer waits. */
export class SfnTaskDecider implements TaskDecider {
  readonly #client: SFNClient;

  constructor(client: SFNClient) {
    this.#client = client;
  }

  async succeed(taskToken: string, output: unknown): Promise<void> {
    await this.#send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(output) }));
  }

  async fail(taskToken: string, error: string, cause: string): Promise<void> {
    await this.#send(new SendTaskFailureCommand({ taskToken, error, cause }));
  }

  async #send(command: SendTaskSuccessCommand | SendTaskFailureCommand): Promise<void> {
    try {
      // The union is split so each overload of send() type-checks.
      if (command instanceof SendTaskSuccessCommand) await this.#client.send(command);
      else await this.#client.send(command);
    } catch (error) {
      if (error instanceof TaskTimedOut) throw new TaskNoLongerWaitingError('timed-out', { cause: error });
      if (error instanceof TaskDoesNotExist)
        throw new TaskNoLongerWaitingError('not-waiting', { cause: error });
      if (error instanceof InvalidToken) throw new TaskNoLongerWaitingError('invalid', { cause: error });
      throw error;
    }
  }
}

/**
 * Stops running executions of one state machine by name prefix: ListExecutions with `statusFilter: RUNNING`
 * (https://docs.aws.amazon.com/step-functions/latest/apireference/API_ListExecutions.html), then
 * StopExecution with an error and cause, which the execution's ABORTED status and history keep
 * (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StopExecution.html). StopExecution of an
 * execution that has ended in the meantime changes nothing and is not an error; one that no longer exists
 * is skipped.
 */
export class SfnRunStopper implements RunStopper {
  readonly #client: SFNClient;
  readonly #stateMachineArn: string;
  readonly #stopper: SfnExecutionStopper;

  constructor(client: SFNClient, stateMachineArn: string) {
    this.#client = client;
    this.#stateMachineArn = stateMachineArn;
    this.#stopper = new SfnExecutionStopper(client);
  }

  async stopRunning(request: {
    namePrefix: string;
    keep: string;
    error: string;
    cause: string;
  }): Promise<string[]> {
    const stopped: string[] = [];
    const pages = paginateListExecutions(
      { client: this.#client },
      { stateMachineArn: this.#stateMachineArn, statusFilter: 'RUNNING' },
    );
    for await (const page of pages) {
      for (const execution of page.executions ?? []) {
        const name = execution.name ?? '';
        if (!name.startsWith(request.namePrefix) || name === request.keep || !execution.executionArn)
          continue;
        if (await this.#stopper.stopIfExists(execution.executionArn, request.error, request.cause))
          stopped.push(name);
      }
    }
    return stopped;
  }
}

/**
 * Retires a run with StopExecution: its status becomes ABORTED, with the `error` and `cause` given here
 * kept in the execution (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StopExecution.html).
 * A run already ended is left as it is (StopExecution on it changes nothing).
 */
export class SfnExecutionStopper implements ExecutionStopper {
  readonly #client: SFNClient;

  constructor(client: SFNClient) {
    this.#client = client;
  }

  async stop(executionArn: string, error: string, cause: string): Promise<void> {
    await this.stopIfExists(executionArn, error, cause);
  }

  /** True when the stop was sent; false when the execution no longer exists. */
  async stopIfExists(executionArn: string, error: string, cause: string): Promise<boolean> {
    try {
      await this.#client.send(new StopExecutionCommand({ executionArn, error, cause }));
      return true;
    } catch (failure) {
      if (failure instanceof ExecutionDoesNotExist) return false;
      throw failure;
    }
  }
}

/**
 * Reads whether a run was retired, or where it failed: DescribeExecution gives an ended execution's
 * `error` and `cause` (https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html).
 */
export class SfnRunStatusReader implements RunStatusReader {
  readonly #client: SFNClient;

  constructor(client: SFNClient) {
    this.#client = client;
  }

  async supersededCause(executionArn: string): Promise<string | null> {
    const output = await this.#client.send(new DescribeExecutionCommand({ executionArn }));
    return output.status === 'ABORTED' && output.error === SUPERSEDED_ERROR ? (output.cause ?? null) : null;
  }

  async failedStage(executionArn: string): Promise<string | null> {
    const output = await this.#client.send(new DescribeExecutionCommand({ executionArn }));
    return output.status === 'FAILED' ? StageFailedError.stageOf(output.error, output.cause) : null;
  }
}

/** An execution's input through DescribeExecution (states:DescribeExecution on the pipeline's executions). */
export class SfnExecutionInputs implements ExecutionInputs {
  readonly #client: SFNClient;

  constructor(client: SFNClient) {
    this.#client = client;
  }

  async describe(executionArn: string): Promise<ExecutionDescription | undefined> {
    try {
      const output = await this.#client.send(new DescribeExecutionCommand({ executionArn }));
      return { input: parseInput(output.input), status: output.status ?? 'RUNNING' };
    } catch (error) {
      if (error instanceof ExecutionDoesNotExist) return undefined;
      throw error;
    }
  }
}

/**
 * A run's Test outcome from its history (GetExecutionHistory, oldest first, with execution data): the input
 * of the state entered right after the Test stage holds it at `test`. That state comes early in the run,
 * so the first page (100 events) usually holds it; paging stops there.
 * https://docs.aws.amazon.com/step-functions/latest/apireference/API_GetExecutionHistory.html
 * (`includeExecutionData` defaults to true) and
 * https://docs.aws.amazon.com/step-functions/latest/apireference/API_StateEnteredEventDetails.html
 * (`name`, `input`). The role needs states:GetExecutionHistory on the pipeline's executions.
 */
export class SfnTestOutcomes implements TestOutcomes {
  readonly #client: SFNClient;

  constructor(client: SFNClient) {
    this.#client = client;
  }

  async of(executionArn: string): Promise<TestOutcome | undefined> {
    const pages = paginateGetExecutionHistory(
      { client: this.#client },
      { executionArn, includeExecutionData: true, reverseOrder: false },
    );
    for await (const page of pages) {
      for (const event of page.events ?? []) {
        const entered = event.stateEnteredEventDetails;
        if (entered?.name === AFTER_TEST_STATE) return testOutcomeIn(parseInput(entered.input));
      }
    }
    return undefined;
  }
}

function parseInput(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
