import { InvalidInputError } from './errors.ts';
import { executionName, pullRequestExecutionName } from './execution-name.ts';
import type { Logger } from './logger.ts';
import { type ExecutionInput, type PipelineSettings, sourceTypeOf } from './pipeline.ts';
import type { LineStore, PipelineStarter, RunStopper } from './ports.ts';
import { executionPullRequest, type PullRequest } from './pull-request.ts';
import { executionPush, type Push } from './push.ts';
import { lineOf, SUPERSEDED_ERROR } from './release.ts';
import { matchPullRequestTriggers, matchTriggers, type Triggers } from './triggers.ts';

/** What became of one push. */
export type PushOutcome =
  | { outcome: 'started' | 'already-started'; ref: string; executionName: string; reason: string }
  | { outcome: 'skipped'; ref: string; reason: string };

export interface IngestDeps {
  starter: PipelineStarter;
  /** Numbers the pushes of each line (repository and ref) in the order they are accepted. */
  lines: Pick<LineStore, 'nextSequence'>;
  triggers: Triggers;
  /** The defaults: what a run starts with when `settingsFor` is not given. */
  settings: PipelineSettings;
  /**
   * The settings of the pushed repository (shared/repository-settings.ts: its override, and locally its
   * own `stepline.json`). Throws InvalidInputError, naming the repository and the field, when invalid.
   */
  settingsFor?: (push: Push) => Promise<PipelineSettings>;
  logger: Logger;
}

/** The longest delivery id accepted, in characters (providers send UUIDs). */
export const MAX_DELIVERY_ID_LENGTH = 200;

/**
 * The execution input for a push: the push without its changed files and with its free text bounded
 * ({@link executionPush}), its exact source for CodeBuild, and the settings. No secret. Nothing in the
 * state machine reads the changed files; leaving them out keeps a push of any size under Step Functions'
 * 256 KiB input quota (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).
 */
export function executionInput(
  push: Push,
  deliveryId: string | undefined,
  settings: PipelineSettings,
  sequence: number,
  pullRequest: PullRequest | null = null,
): ExecutionInput {
  if (push.after === null) throw new Error('A deleted ref has no commit to build');
  return {
    push: executionPush(push),
    pullRequest: pullRequest === null ? null : executionPullRequest(pullRequest),
    ...(deliveryId === undefined ? {} : { deliveryId }),
    sequence,
    source: { type: sourceTypeOf(push), location: push.repository.cloneUrl, version: push.after },
    settings,
  };
}

/**
 * Applies the trigger filters to each push and starts one execution per matching push, named so that a
 * redelivery starts nothing new. Pushes are handled one after another, so a failure leaves the earlier
 * starts in place and the provider's retry finds them already started.
 */
export async function startPipelines(
  pushes: Push[],
  deliveryId: string | undefined,
  deps: IngestDeps,
): Promise<PushOutcome[]> {
  if (deliveryId !== undefined && deliveryId.length > MAX_DELIVERY_ID_LENGTH) {
    throw new InvalidInputError(`The delivery id is over ${MAX_DELIVERY_ID_LENGTH} characters`);
  }
  // Every push is checked before any starts: a refused one must not leave the others half started.
  for (const push of pushes) executionPush(push);
  const outcomes: PushOutcome[] = [];
  for (const push of pushes) {
    const decision = matchTriggers(deps.triggers, push);
    const context = {
      provider: push.provider,
      repository: push.repository.fullName,
      ref: push.ref,
      deliveryId,
    };
    if (!decision.matches) {
      deps.logger.info('Push starts no run', { ...context, reason: decision.reason });
      outcomes.push({ outcome: 'skipped', ref: push.ref, reason: decision.reason });
      continue;
    }
    if (push.commitsTruncated) {
      deps.logger.info('Push has a truncated commit list; changed files may be incomplete', context);
    }
    const name = executionName(push);
    const settings = deps.settingsFor ? await deps.settingsFor(push) : deps.settings;
    // Numbered when accepted, before the start: a redelivery takes a number it leaves unused (the name
    // starts nothing new), which keeps the order and costs nothing.
    const sequence = await deps.lines.nextSequence(lineOf(push));
    const result = await deps.starter.start({
      name,
      input: executionInput(push, deliveryId, settings, sequence),
    });
    deps.logger.info(result.outcome === 'started' ? 'Run started' : 'Run was already started', {
      ...context,
      commit: push.after,
      sequence,
      executionName: name,
    });
    outcomes.push({
      outcome: result.outcome,
      ref: push.ref,
      executionName: name,
      reason: result.outcome === 'started' ? decision.reason : 'this push already started a run',
    });
  }
  return outcomes;
}

/**
 * Starts the CI run of a pull request's head (the Test stage, and Image when `settings.pullRequests.image`
 * is true; never an environment), when the pull-request filters let it, under a name derived from the
 * request and its head so that a redelivery starts nothing new. Once started, the runs of the same request's
 * older heads that still run are stopped: the newest commit supersedes them.
 */
export async function startPullRequestRun(
  pullRequest: PullRequest,
  head: Push,
  deliveryId: string | undefined,
  deps: IngestDeps & { runStopper: RunStopper },
): Promise<PushOutcome> {
  if (deliveryId !== undefined && deliveryId.length > MAX_DELIVERY_ID_LENGTH) {
    throw new InvalidInputError(`The delivery id is over ${MAX_DELIVERY_ID_LENGTH} characters`);
  }
  const ref = head.ref;
  const context = {
    provider: pullRequest.provider,
    repository: pullRequest.target.repository,
    pullRequest: pullRequest.number,
    deliveryId,
  };
  const { settings } = deps;
  if (!settings.test && !settings.pullRequests.image) {
    const reason =
      'pull requests run the Test stage, which settings.test turns off, and no Image (settings.pullRequests.image is false)';
    deps.logger.info('Pull request starts no run', { ...context, reason });
    return { outcome: 'skipped', ref, reason };
  }
  const decision = matchPullRequestTriggers(deps.triggers, pullRequest);
  if (!decision.matches) {
    deps.logger.info('Pull request starts no run', { ...context, reason: decision.reason });
    return { outcome: 'skipped', ref, reason: decision.reason };
  }
  const { name, prefix } = pullRequestExecutionName(pullRequest);
  // Numbered on its head branch's line like a push; a pull-request run enters no environment, so the
  // number only keeps the order.
  const sequence = await deps.lines.nextSequence(lineOf(head));
  const input = executionInput(head, deliveryId, settings, sequence, pullRequest);
  const result = await deps.starter.start({ name, input });
  deps.logger.info(result.outcome === 'started' ? 'Run started' : 'Run was already started', {
    ...context,
    commit: pullRequest.head,
    executionName: name,
  });
  // Also after a redelivery: stopping is idempotent, and the first delivery's attempt may have failed.
  // A run that cannot be stopped is logged, not answered with an error: the new run has started.
  try {
    const stopped = await deps.runStopper.stopRunning({
      namePrefix: prefix,
      keep: name,
      error: SUPERSEDED_ERROR,
      cause: `Superseded by ${name} (pull request #${pullRequest.number} moved to ${pullRequest.head})`,
    });
    if (stopped.length > 0) deps.logger.info('Superseded runs stopped', { ...context, stopped });
  } catch (error) {
    deps.logger.error('Could not stop the superseded runs', { ...context, error: (error as Error).message });
  }
  return {
    outcome: result.outcome,
    ref,
    executionName: name,
    reason: result.outcome === 'started' ? decision.reason : 'this pull request head already started a run',
  };
}

/** The HTTP answer for a delivery: 202 when a run started, 200 with the reasons when none did. */
export function deliveryResponse(outcomes: PushOutcome[]): {
  statusCode: 200 | 202;
  body: Record<string, unknown>;
} {
  const started = outcomes.flatMap((o) => (o.outcome === 'started' ? [o.executionName] : []));
  const alreadyStarted = outcomes.flatMap((o) => (o.outcome === 'already-started' ? [o.executionName] : []));
  const skipped = outcomes.flatMap((o) =>
    o.outcome === 'skipped' ? [{ ref: o.ref, reason: o.reason }] : [],
  );
  const message =
    started.length > 0
      ? `Started ${started.length} run${started.length === 1 ? '' : 's'}`
      : alreadyStarted.length > 0
        ? 'Already started: this push was delivered before'
        : `Nothing started: ${skipped.map((s) => s.reason).join('; ') || 'the delivery holds no push'}`;
  return {
    statusCode: started.length > 0 ? 202 : 200,
    body: { message, started, alreadyStarted, skipped },
  };
}
