import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import * as z from 'zod';
import { InvalidInputError } from '#shared/errors.ts';
import type { Logger } from '#shared/logger.ts';
import { PushSchema } from '#shared/push.ts';
import {
  ExecutionModeSchema,
  enterEnvironment,
  joinLine,
  leaveEnvironment,
  lineOf,
} from '#shared/release.ts';
import type { ReleaseLedger } from '#shared/release-ledger.ts';

/** What the state machine's release tasks send (`lambda:invoke` of the holds function). */
const RunFields = {
  executionArn: z.string().min(1),
  push: PushSchema.pick({ provider: true, repository: true, ref: true }),
  sequence: z.number().int().positive(),
  commit: z.string().min(1),
  mode: ExecutionModeSchema,
};
const PlanSchema = z.array(z.object({ name: z.string().min(1), approval: z.boolean() }));

export const HoldsRequestSchema = z.discriminatedUnion('action', [
  /** At the start of a run: it joins its line (SUPERSEDED: older runs it overtakes are retired). */
  z.object({ action: z.literal('join'), ...RunFields, environments: PlanSchema }),
  /** Before an environment's Infrastructure (`waitForTaskToken`): resumed once it holds it. */
  z.object({
    action: z.literal('enter'),
    ...RunFields,
    environment: z.string().min(1),
    taskToken: z.string().min(1),
  }),
  /** After the environment's Deploy: it now runs this commit, and the next run may enter. */
  z.object({ action: z.literal('leave'), ...RunFields, environment: z.string().min(1) }),
]);
export type HoldsRequest = z.infer<typeof HoldsRequestSchema>;

export interface HoldsDeps {
  ledger: ReleaseLedger;
  logger: Logger;
  now: () => Date;
}

/**
 * The state machine's release tasks: join the line, enter an environment, leave it. An `enter` returns at
 * once; the task resumes when the ledger sends its token success (it holds the environment) or failure
 * (`Environment.Behind`: the environment already runs a newer commit), which may be now or when the run
 * ahead leaves. A malformed request fails the task, naming what is wrong.
 */
export function createHoldsHandler(deps: HoldsDeps) {
  const { ledger, logger } = deps;

  async function run(event: unknown): Promise<{ line: string; actions: string[] }> {
    const parsed = HoldsRequestSchema.safeParse(event);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InvalidInputError(
        `Invalid holds request at ${issue?.path.join('.') || 'the root'}: ${issue?.message ?? 'invalid'}`,
        { cause: parsed.error },
      );
    }
    const request = parsed.data;
    const line = lineOf(request.push);
    const now = deps.now().toISOString();
    // The task token stays out of the log keys.
    logger.appendKeys({ executionArn: request.executionArn, line, sequence: request.sequence });
    const run = {
      executionArn: request.executionArn,
      sequence: request.sequence,
      commit: request.commit,
    };
    const actions = await ledger.apply(line, request.mode, (state) => {
      if (request.action === 'join') {
        return joinLine(state, { ...run, plan: request.environments }, request.mode);
      }
      if (request.action === 'enter') {
        return enterEnvironment(
          state,
          { ...run, plan: [], environment: request.environment, taskToken: request.taskToken, now },
          request.mode,
        );
      }
      return leaveEnvironment(
        state,
        { executionArn: request.executionArn, environment: request.environment, now },
        request.mode,
      );
    });
    const summary = actions.map(
      (a) => `${a.kind} ${a.executionArn.slice(a.executionArn.lastIndexOf(':') + 1)}`,
    );
    logger.info('Release task done', {
      action: request.action,
      ...('environment' in request ? { environment: request.environment } : {}),
      decided: summary,
    });
    return { line, actions: summary };
  }

  // An `enter` event holds the run's task token: never log it, whatever POWERTOOLS_LOGGER_LOG_EVENT says.
  return middy(run).use(injectLambdaContext(logger, { resetKeys: true, logEvent: false }));
}
