import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  InvalidToken,
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  type SFNClient,
  StartExecutionCommand,
  TaskDoesNotExist,
  TaskTimedOut,
} from '@aws-sdk/client-sfn';
import { TaskNoLongerWaitingError } from '../errors.ts';
import type {
  ExecutionDescription,
  ExecutionInputs,
  PipelineInput,
  PipelineStarter,
  StartPipelineResult,
  TaskDecider,
} from '../ports.ts';

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

function parseInput(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
