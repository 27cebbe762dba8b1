import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  InvalidToken,
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  type SFNClient,
  StartExecutionCommand,
  StopExecutionCommand,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { TaskNoLongerWaitingError } from '../errors.ts';
import type {
  ExecutionStopper,
  PipelineInput,
  PipelineStarter,
  RunStatusReader,
  StartPipelineResult,
  TaskDecider,
} from '../ports.ts';
import { SUPERSEDED_ERROR } from '../release.ts';

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
    try {
      await this.#client.send(new StopExecutionCommand({ executionArn, error, cause }));
    } catch (failure) {
      if (failure instanceof ExecutionDoesNotExist) return;
      throw failure;
    }
  }
}

/**
 * Reads whether a run was retired: DescribeExecution gives an ABORTED execution's `error` and `cause`
 * (https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html).
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
}
