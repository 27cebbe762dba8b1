import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { InvalidInputError, RollbackRefusedError } from '#shared/errors.ts';
import type { Logger } from '#shared/logger.ts';
import { PushSchema } from '#shared/push.ts';
import {
  ExecutionModeSchema,
  enterEnvironment,
  enterForRollback,
  joinLine,
  leaveEnvironment,
  lineOf,
  RunPointSchema,
} from '#shared/release.ts';
import type { ReleaseLedger } from '#shared/release-ledger.ts';
import { planRollback, RollbackInputSchema } from '#shared/rollback.ts';
import * as z from '#shared/zod.ts';

/** What the state machine's release tasks send (`lambda:invoke` of the holds function). */
const RunFields = {
  executionArn: z.string().check(z.minLength(1)),
  push: z.pick(PushSchema, { provider: true, repository: true, ref: true }),
  sequence: z.number().check(z.int(), z.positive()),
  commit: z.string().check(z.minLength(1)),
  mode: ExecutionModeSchema,
};
const PlanSchema = z.array(z.object({ name: z.string().check(z.minLength(1)), approval: z.boolean() }));

export const HoldsRequestSchema = z.discriminatedUnion('action', [
  /** At the start of a run: it joins its line (SUPERSEDED: older runs it overtakes are retired). */
  z.object({ action: z.literal('join'), ...RunFields, environments: PlanSchema }),
  /** Before an environment's Infrastructure (`waitForTaskToken`): resumed once it holds it. */
  z.object({
    action: z.literal('enter'),
    ...RunFields,
    environment: z.string().check(z.minLength(1)),
    taskToken: z.string().check(z.minLength(1)),
  }),
  /**
   * After the environment's Deploy: it now runs this commit (and `imageUri`, kept to roll back to), and the
   * next run may enter.
   */
  z.object({
    action: z.literal('leave'),
    ...RunFields,
    environment: z.string().check(z.minLength(1)),
    imageUri: z.optional(z.string().check(z.minLength(1))),
  }),
  /** The rollback machine's first task: which recorded deployment it deploys again (read only). */
  z.object({
    action: z.literal('plan-rollback'),
    executionArn: z.string().check(z.minLength(1)),
    input: RollbackInputSchema,
  }),
  /** The rollback machine's hold (`waitForTaskToken`): resumed once it holds the environment. */
  z.object({
    action: z.literal('enter-rollback'),
    executionArn: z.string().check(z.minLength(1)),
    push: RunFields.push,
    mode: ExecutionModeSchema,
    environment: z.string().check(z.minLength(1)),
    taskToken: z.string().check(z.minLength(1)),
    plan: z.object({
      target: z.extend(RunPointSchema, { imageUri: z.string().check(z.minLength(1)) }),
      expected: z.nullable(z.string()),
      from: z.nullable(z.string()),
      automatic: z.boolean(),
    }),
  }),
]);
export type HoldsRequest = z.infer<typeof HoldsRequestSchema>;

export interface HoldsDeps {
  ledger: ReleaseLedger;
  logger: Logger;
  now: () => Date;
  /**
   * The image a run deployed, when its leave does not say: kept with the deployment, so that a rollback
   * can deploy it again. Absent: the deployment is recorded without an image (no rollback to it).
   */
  images?: { imageOf(run: { executionArn: string; commit: string }): Promise<string | undefined> };
}

/**
 * The state machine's release tasks: join the line, enter an environment, leave it. An `enter` returns at
 * once; the task resumes when the ledger sends its token success (it holds the environment) or failure
 * (`Environment.Behind`: the environment already runs a newer commit), which may be now or when the run
 * ahead leaves. A malformed request fails the task, naming what is wrong.
 */
export function createHoldsHandler(deps: HoldsDeps) {
  const { ledger, logger } = deps;

  async function run(event: unknown): Promise<unknown> {
    const parsed = HoldsRequestSchema.safeParse(event);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InvalidInputError(
        `Invalid holds request at ${issue?.path.join('.') || 'the root'}: ${issue?.message ?? 'invalid'}`,
        { cause: parsed.error },
      );
    }
    const request = parsed.data;
    if (request.action === 'plan-rollback') {
      const line = lineOf(request.input.push);
      const plan = planRollback(await ledger.read(line), request.input);
      logger.info('Rollback planned', {
        executionArn: request.executionArn,
        line,
        environment: request.input.environment,
        ...('refused' in plan ? { refused: plan.refused } : { target: plan.target.commit }),
      });
      if ('refused' in plan) throw new RollbackRefusedError(plan.refused);
      return plan;
    }
    if (request.action === 'enter-rollback') {
      const line = lineOf(request.push);
      const now = deps.now().toISOString();
      logger.appendKeys({ executionArn: request.executionArn, line });
      const actions = await ledger.apply(line, request.mode, (state) =>
        enterForRollback(
          state,
          {
            executionArn: request.executionArn,
            environment: request.environment,
            taskToken: request.taskToken,
            now,
            ...request.plan,
          },
          request.mode,
        ),
      );
      const decided = actions.map(
        (a) => `${a.kind} ${a.executionArn.slice(a.executionArn.lastIndexOf(':') + 1)}`,
      );
      logger.info('Release task done', { action: request.action, environment: request.environment, decided });
      return { line, actions: decided };
    }
    const line = lineOf(request.push);
    const now = deps.now().toISOString();
    // The task token stays out of the log keys.
    logger.appendKeys({ executionArn: request.executionArn, line, sequence: request.sequence });
    const run = {
      executionArn: request.executionArn,
      sequence: request.sequence,
      commit: request.commit,
    };
    const imageUri =
      request.action === 'leave'
        ? (request.imageUri ?? (await deps.images?.imageOf(run).catch(() => undefined)))
        : undefined;
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
        {
          executionArn: request.executionArn,
          environment: request.environment,
          now,
          imageUri,
          run: { sequence: request.sequence, commit: request.commit },
        },
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
