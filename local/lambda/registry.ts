import type { Context } from 'aws-lambda';
import { ConfigurationError } from '#shared/errors.ts';
import { createApprovalHandler } from '#shared/handlers/approval.ts';
import { createApprovalRequestHandler } from '#shared/handlers/approval-request.ts';
import { createBuildEventsHandler } from '#shared/handlers/build-events.ts';
import { createCodeCommitHandler } from '#shared/handlers/codecommit.ts';
import { createCommitStatusHandler, type StatusRecorder } from '#shared/handlers/commit-status.ts';
import { createHoldsHandler } from '#shared/handlers/holds.ts';
import { createNotifyHandler } from '#shared/handlers/notify.ts';
import { createPipelineEventsHandler } from '#shared/handlers/pipeline-events.ts';
import { createWebhookHandler } from '#shared/handlers/webhook.ts';
import type { IngestDeps } from '#shared/ingest.ts';
import type { Logger } from '#shared/logger.ts';
import type { PipelineSettings } from '#shared/pipeline.ts';
import type {
  ExecutionInputs,
  LineStore,
  MilestoneEmitter,
  Notifier,
  PipelineStarter,
  RunStatusReader,
  RunStopper,
  TaskDecider,
  TestOutcomes,
  TestReports,
} from '#shared/ports.ts';
import type { Push } from '#shared/push.ts';
import type { ReleaseLedger } from '#shared/release-ledger.ts';
import type { WebhookSecrets } from '#shared/secrets.ts';
import { StatusPublisher, type StatusTokens } from '#shared/status/publisher.ts';
import type { LocalFunction } from '../wiring.ts';
import type { FunctionConfiguration } from './configuration.ts';
import type { LocalHandler } from './host.ts';

/** Every local adapter a handler may need, bound once by the composition root. */
export interface LocalPorts {
  starter: PipelineStarter;
  runStopper: RunStopper;
  /** The lines' release state (`.stepline/lines/`). */
  lines: LineStore;
  /** The release ledger over the local lines, engine and outbox, logging with the function's logger. */
  releaseLedger: (logger: Logger) => ReleaseLedger;
  configuration: FunctionConfiguration;
  /** The settings of a pushed repository: its override and its own stepline.json (local/runtime.ts). */
  settingsFor: (push: Push) => Promise<PipelineSettings>;
  /** One secret per webhook provider (a provider without one has no route). */
  webhookSecrets: WebhookSecrets;
  approvalKey: () => Promise<string>;
  /** The local approval route without the token: `http://127.0.0.1:4700/approvals`. */
  approvalBaseUrl: string;
  decider: TaskDecider;
  /** Whether a run was retired by a newer one (its record says SUPERSEDED). */
  runs: RunStatusReader;
  notifier: Notifier;
  emitter: MilestoneEmitter;
  logger: (functionKey: string) => Logger;
  now: () => Date;
  region: string;
  pipelineStateMachineArn: string;
  /** The rollback machine and how to start it (automatic rollback). */
  rollback?: { stateMachineArn: string; starter: PipelineStarter; runs: RunStatusReader };
  /** The image a run deployed (its Image build's IMAGE_URI), kept with each deployment. */
  images?: { imageOf(run: { executionArn: string; commit: string }): Promise<string | undefined> };
  /** The forges' status tokens (`.stepline/parameters.json`). */
  statusTokens: StatusTokens;
  /** Runs' inputs by execution ARN (the local store). */
  executionInputs: ExecutionInputs;
  /** A run's page in the local console. */
  runLink: (executionArn: string) => string;
  /** Keeps reported commit statuses in their run's history. */
  statusRecorder: StatusRecorder;
  /** The test counts of a run's finished builds (their JUnit summaries). */
  testReports: TestReports;
  /** A run's Test outcome, from its history. */
  testOutcomes: TestOutcomes;
}

/** One function the local mode can run: the module Lambda runs, and its factory with typed deps. */
export interface RegisteredFunction {
  /** The Lambda module serverless.yml names for this function (`functions/webhook.ts`). */
  module: string;
  compose(ports: LocalPorts, key: string): LocalHandler;
}

function registered<Deps, Event>(
  module: string,
  factory: (deps: Deps) => (event: Event, context: Context) => Promise<unknown>,
  deps: (ports: LocalPorts, key: string) => Deps,
): RegisteredFunction {
  return {
    module,
    compose: (ports, key) => {
      const handler = factory(deps(ports, key));
      // Lambda hands a function whatever its trigger sends; each handler validates its event at the edge.
      return (event, context) => handler(event as Event, context);
    },
  };
}

function ingestDeps(ports: LocalPorts, key: string): IngestDeps {
  return {
    starter: ports.starter,
    lines: ports.lines,
    triggers: ports.configuration.triggers,
    settings: ports.configuration.settings.defaults,
    settingsFor: ports.settingsFor,
    logger: ports.logger(key),
  };
}

/** serverless.yml's function keys → what the local mode runs for each, with the same factory as Lambda. */
export const FUNCTION_REGISTRY: Record<string, RegisteredFunction> = {
  webhook: registered('functions/webhook.ts', createWebhookHandler, (ports, key) => ({
    ...ingestDeps(ports, key),
    webhookSecrets: ports.webhookSecrets,
    // The local build runner clones by itself: Bitbucket Data Center pushes and local paths build here.
    builds: 'local' as const,
    runStopper: ports.runStopper,
  })),
  codecommit: registered('functions/codecommit.ts', createCodeCommitHandler, ingestDeps),
  approvalRequest: registered(
    'functions/approval-request.ts',
    createApprovalRequestHandler,
    (ports, key) => ({
      notifier: ports.notifier,
      approvalKey: ports.approvalKey,
      baseUrl: ports.approvalBaseUrl,
      logger: ports.logger(key),
      now: ports.now,
      testOutcomes: ports.testOutcomes,
    }),
  ),
  approval: registered('functions/approval.ts', createApprovalHandler, (ports, key) => ({
    decider: ports.decider,
    runs: ports.runs,
    approvalKey: ports.approvalKey,
    logger: ports.logger(key),
    now: ports.now,
  })),
  notify: registered('functions/notify.ts', createNotifyHandler, (ports, key) => ({
    notifier: ports.notifier,
    logger: ports.logger(key),
    region: ports.region,
  })),
  buildEvents: registered('functions/build-events.ts', createBuildEventsHandler, (ports, key) => ({
    notifier: ports.notifier,
    emitter: ports.emitter,
    logger: ports.logger(key),
    region: ports.region,
  })),
  pipelineEvents: registered('functions/pipeline-events.ts', createPipelineEventsHandler, (ports, key) => ({
    notifier: ports.notifier,
    emitter: ports.emitter,
    ledger: ports.releaseLedger(ports.logger(key)),
    logger: ports.logger(key),
    region: ports.region,
    stateMachineArn: ports.pipelineStateMachineArn,
    ...(ports.rollback ? { rollback: ports.rollback } : {}),
  })),
  holds: registered('functions/holds.ts', createHoldsHandler, (ports, key) => ({
    ledger: ports.releaseLedger(ports.logger(key)),
    logger: ports.logger(key),
    now: ports.now,
    ...(ports.images ? { images: ports.images } : {}),
  })),
  commitStatus: registered('functions/commit-status.ts', createCommitStatusHandler, (ports, key) => {
    const logger = ports.logger(key);
    return {
      publisher: new StatusPublisher({ tokens: ports.statusTokens, logger }),
      executions: ports.executionInputs,
      notifier: ports.notifier,
      logger,
      runLink: ports.runLink,
      stateMachineArn: ports.pipelineStateMachineArn,
      recorder: ports.statusRecorder,
      testReports: ports.testReports,
    };
  }),
};

/**
 * The registered function of each function serverless.yml declares. A function the registry does not
 * know, or one whose Lambda module is not the registered one, fails start-up naming it: the local mode
 * must run exactly what Lambda runs.
 */
export function registeredFunctions(
  functions: LocalFunction[],
  registry: Record<string, RegisteredFunction> = FUNCTION_REGISTRY,
): Map<string, RegisteredFunction> {
  const found = new Map<string, RegisteredFunction>();
  for (const fn of functions) {
    const entry = Object.hasOwn(registry, fn.key) ? registry[fn.key] : undefined;
    if (!entry) {
      throw new ConfigurationError(
        `serverless.yml declares function ${fn.key} (${fn.module}), which the local mode cannot run: ` +
          'register its handler factory in local/lambda/registry.ts',
      );
    }
    if (entry.module !== fn.module) {
      throw new ConfigurationError(
        `serverless.yml runs function ${fn.key} from ${fn.module}, but local/lambda/registry.ts ` +
          `registers ${entry.module} for it`,
      );
    }
    found.set(fn.key, entry);
  }
  return found;
}

/** Composes the handler of every function serverless.yml declares, over the local ports. */
export function composeHandlers(
  functions: LocalFunction[],
  ports: LocalPorts,
  registry: Record<string, RegisteredFunction> = FUNCTION_REGISTRY,
): Map<string, LocalHandler> {
  const handlers = new Map<string, LocalHandler>();
  for (const [key, entry] of registeredFunctions(functions, registry)) {
    handlers.set(key, entry.compose(ports, key));
  }
  return handlers;
}
