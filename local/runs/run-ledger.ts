import type { TestCounts } from '#shared/status/model.ts';
import type { BuildEvent } from '../codebuild/service.ts';
import type { HistoryEvent } from '../state/store.ts';
import {
  BUILD_HISTORY_EVENT,
  buildAttempt,
  buildsFromHistory,
  deploymentsOf,
  type PendingApproval,
  type RunBuild,
  type RunStatus,
  STATUS_HISTORY_EVENT,
  stageLabel,
} from './read-model.ts';

/** A build's state change, as the local CodeBuild reports it. */
export type BuildStateEvent = Extract<BuildEvent, { kind: 'state' }>;

/** What the ledger needs of the store: a run's history, to keep builds in, and where build logs go. */
export interface LedgerStore {
  history(executionArn: string): HistoryEvent[];
  appendHistory(executionArn: string, events: { type: string; timestamp: string }[]): Promise<unknown>;
  buildLogPath(buildId: string): string;
}

/**
 * What each run did besides its state transitions: its builds (kept in its history too, so a restart
 * still shows them, and where its environments answer follows from them) and the approval it waits for.
 */
export class RunLedger {
  readonly #store: LedgerStore;
  readonly #builds = new Map<string, Map<string, RunBuild>>();
  readonly #pending = new Map<string, PendingApproval>();

  constructor(store: LedgerStore) {
    this.#store = store;
  }

  /**
   * Records a build's new state for its run, in memory and in the run's history. Resolves once the
   * history has it on disk; the in-memory view has it at once.
   */
  async recordBuild(executionArn: string, event: BuildStateEvent): Promise<void> {
    const builds = this.#builds.get(executionArn) ?? new Map<string, RunBuild>();
    this.#builds.set(executionArn, builds);
    const build = runBuild(event, this.#store.buildLogPath(event.build.Id));
    builds.set(build.id, build);
    const record = { type: BUILD_HISTORY_EVENT, timestamp: new Date().toISOString(), build };
    await this.#store.appendHistory(executionArn, [record]);
  }

  /** The builds of a run, in the order they started. */
  builds(executionArn: string): RunBuild[] {
    const inMemory = this.#builds.get(executionArn);
    if (inMemory) return [...inMemory.values()];
    // A run from before this start: its builds are in its history.
    return buildsFromHistory(this.#store.history(executionArn));
  }

  /** Where each environment's deployed service answers, for a run (from its deploy builds' SERVICE_URL). */
  deployments(executionArn: string): Record<string, string> {
    return deploymentsOf(this.builds(executionArn));
  }

  /** Records a commit status reported for a run, in its history (the read model takes the latest per context). */
  async recordStatus(executionArn: string, status: RunStatus): Promise<void> {
    const record = { type: STATUS_HISTORY_EVENT, timestamp: new Date().toISOString(), status };
    await this.#store.appendHistory(executionArn, [record]);
  }

  /**
   * What a finished build's test reports counted, all together (passed, failed or in error, skipped), by the
   * build's ARN; undefined for a build without a test report.
   */
  testCounts(buildArn: string, executionArn: string): TestCounts | undefined {
    const build = this.builds(executionArn).find((b) => buildArn.endsWith(`:build/${b.id}`));
    if (!build || build.reports.length === 0) return undefined;
    const sum = (pick: (r: RunBuild['reports'][number]) => number) =>
      build.reports.reduce((total, report) => total + pick(report), 0);
    const failed = sum((r) => r.failures + r.errors);
    const skipped = sum((r) => r.skipped);
    return { passed: sum((r) => r.tests) - failed - skipped, failed, skipped };
  }

  /** Records the approval a run's gate now waits for. */
  approvalRequested(approval: PendingApproval): void {
    this.#pending.set(approval.executionArn, approval);
  }

  /** The run's gate was decided, or the run ended: its approval is no longer pending. */
  approvalClosed(executionArn: string): void {
    this.#pending.delete(executionArn);
  }

  /** The approval a run waits for, if any. */
  pendingApproval(executionArn: string): PendingApproval | undefined {
    return this.#pending.get(executionArn);
  }

  /** Approvals waiting for a decision, newest first. */
  pendingApprovals(): PendingApproval[] {
    return [...this.#pending.values()].reverse();
  }
}

/** A build's state, as the read model keeps it. */
export function runBuild(event: BuildStateEvent, logPath: string): RunBuild {
  const b = event.build;
  const environment = event.environment.STEPLINE_ENVIRONMENT;
  const attempt = buildAttempt(event.environment);
  return {
    id: b.Id,
    project: b.ProjectName,
    stage: stageLabel(b.ProjectName, environment),
    ...(environment ? { environment } : {}),
    ...(attempt ? { attempt } : {}),
    status: event.status,
    startTime: b.StartTime,
    ...(event.status === 'IN_PROGRESS' ? {} : { endTime: b.EndTime }),
    logPath,
    logUrl: b.Logs.DeepLink,
    exportedVariables: b.ExportedEnvironmentVariables,
    phases: b.Phases,
    reports: event.reports ?? [],
  };
}
