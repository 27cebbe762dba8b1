import * as z from '#shared/zod.ts';
import { BuildSourceSchema, PipelineSettingsSchema } from './pipeline.ts';
import { PushSchema } from './push.ts';
import { type LineState, type RunPoint, rollbackTarget, runName } from './release.ts';

/**
 * Rollback of one environment: what the rollback state machine (statemachines/rollback.asl.json) starts
 * with, and the plan its first task makes from the line's recorded deployments. A rollback redeploys a
 * recorded image with the environment's deploy project and buildspec at the recorded commit: no rebuild,
 * and no Infrastructure unless `infrastructure` is true.
 */

/**
 * The rollback machine's input: the line (from `push`), where to build from (`source`: its type and
 * location; the version is the target's), the settings (deploy buildspec, approval, execution mode), the
 * environment, and optionally the run or commit to go back to. A pipeline run's input plus `environment`
 * is one: `aws stepfunctions describe-execution … --query input` gives the rest.
 */
export const RollbackInputSchema = z.object({
  environment: z.string().check(z.minLength(1)),
  push: PushSchema,
  source: BuildSourceSchema,
  settings: PipelineSettingsSchema,
  /** A run name or a commit (7+ hex digits) among the environment's recorded deployments; else the previous one. */
  to: z.nullish(z.string().check(z.minLength(1))),
  /** Run the environment's Infrastructure (Terraform) at the target commit before its Deploy. */
  infrastructure: z._default(z.boolean(), false),
  /** Set when a failed deploy started it (`rollbackOnFailure`): the run that failed and its commit. */
  automatic: z.nullish(
    z.object({ failedRun: z.string().check(z.minLength(1)), commit: z.string().check(z.minLength(1)) }),
  ),
});
export type RollbackInput = z.input<typeof RollbackInputSchema>;

/** What the rollback machine's later states read from its plan (`$.plan`). */
export interface RollbackPlan {
  target: RunPoint & { run: string; imageUri: string };
  /** The run the environment runs now: if that changed when the rollback gets the hold, it is refused. */
  expected: string | null;
  /** The commit it goes back from. */
  from: string | null;
  automatic: boolean;
  approvalRequired: boolean;
  /** The source at the target commit, for the Deploy (and Infrastructure) builds. */
  source: z.infer<typeof BuildSourceSchema>;
  /** The push as the target commit: what the approval and the notifications name. */
  push: z.infer<typeof PushSchema>;
  /** What the approval request says was done: the rollback it asks for. */
  passed: string[];
}

/**
 * Plans a rollback from the line's state: the target deployment (see {@link rollbackTarget}), or why there
 * is none. An automatic rollback deploys again what the environment records as current (its failed deploy
 * never became current) and passes no approval gate: it restores what was approved before.
 */
export function planRollback(
  state: LineState,
  input: z.infer<typeof RollbackInputSchema>,
): RollbackPlan | { refused: string } {
  const automatic = input.automatic ?? null;
  const found = rollbackTarget(state, input.environment, input.to ?? undefined, {
    automatic: automatic !== null,
  });
  if ('refused' in found) return found;
  const { target, current } = found;
  const imageUri = target.imageUri;
  if (!imageUri) return { refused: `The deployment of ${target.commit} recorded no image` };
  const from = automatic ? automatic.commit : (current?.commit ?? null);
  const run = runName(target.rollback?.of ?? target.executionArn);
  const gate = input.settings.environments.find((e) => e.name === input.environment);
  return {
    target: { ...target, run, imageUri },
    expected: current?.executionArn ?? null,
    from,
    automatic: automatic !== null,
    approvalRequired: automatic === null && (gate?.approval ?? false),
    source: { ...input.source, version: target.commit },
    push: { ...input.push, after: target.commit },
    passed: [
      `Rollback of ${input.environment}${from ? ` from ${from.slice(0, 12)}` : ''} to ${target.commit.slice(0, 12)} (${run}), image ${imageUri}`,
    ],
  };
}

/** A deterministic name for the automatic rollback of `environment` after `failedRun`: started once. */
export function automaticRollbackName(environment: string, failedRun: string): string {
  // Execution names: at most 80 characters (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html).
  return `rollback-${environment}-${runName(failedRun)}`.slice(0, 80);
}
