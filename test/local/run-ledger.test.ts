import { describe, expect, it } from 'vitest';
import { terminalLine } from '#local/cli/terminal.ts';
import type { CodeBuildBuild } from '#local/codebuild/service.ts';
import { BUILD_HISTORY_EVENT, type RunStatus, statusesFromHistory } from '#local/runs/read-model.ts';
import { type BuildStateEvent, type LedgerStore, RunLedger } from '#local/runs/run-ledger.ts';
import type { HistoryEvent } from '#local/state/store.ts';
import { aPush } from '../helpers/push.ts';

const ARN = 'arn:aws:states:local:000000000000:execution:pipeline:main-2222222';

/** The store's history, in memory, as a restart would find it. */
class MemoryHistory implements LedgerStore {
  readonly events = new Map<string, HistoryEvent[]>();
  history(executionArn: string): HistoryEvent[] {
    return [...(this.events.get(executionArn) ?? [])];
  }
  async appendHistory(executionArn: string, events: { type: string; timestamp: string }[]): Promise<void> {
    const list = this.events.get(executionArn) ?? [];
    for (const event of events) list.push({ ...event, id: list.length + 1 } as HistoryEvent);
    this.events.set(executionArn, list);
  }
  buildLogPath(buildId: string): string {
    return `/state/builds/${buildId}.log`;
  }
}

function aBuildEvent(
  project: string,
  status: string,
  environment: Record<string, string> = {},
  exported: { Name: string; Value: string }[] = [],
): BuildStateEvent {
  const build: CodeBuildBuild = {
    Id: `${project}:1`,
    Arn: `arn:aws:codebuild:local:000000000000:build/${project}:1`,
    BuildNumber: 1,
    BuildStatus: 'SUCCEEDED',
    BuildComplete: status !== 'IN_PROGRESS',
    CurrentPhase: 'COMPLETED',
    ProjectName: project,
    SourceVersion: '2222222',
    ResolvedSourceVersion: '2222222',
    StartTime: 1_000,
    EndTime: 3_500,
    Phases: [],
    Environment: { EnvironmentVariables: [] },
    ExportedEnvironmentVariables: exported,
    Logs: { DeepLink: 'http://127.0.0.1:4700/api/builds/x/log', GroupName: 'g', StreamName: 's' },
  };
  return { kind: 'state', build, status, environment };
}

describe('RunLedger', () => {
  it('keeps builds with their stage labels, in memory and in the history, and reads them back after a restart', async () => {
    const store = new MemoryHistory();
    const ledger = new RunLedger(store);
    await ledger.recordBuild(ARN, aBuildEvent('stepline-local-image', 'IN_PROGRESS'));
    await ledger.recordBuild(ARN, aBuildEvent('stepline-local-image', 'SUCCEEDED'));
    await ledger.recordBuild(
      ARN,
      aBuildEvent('stepline-local-deploy', 'SUCCEEDED', { STEPLINE_ENVIRONMENT: 'dev' }, [
        { Name: 'SERVICE_URL', Value: 'http://127.0.0.1:4801/' },
      ]),
    );
    const expected = [
      {
        stage: 'Image',
        status: 'SUCCEEDED',
        endTime: 3_500,
        logPath: '/state/builds/stepline-local-image:1.log',
      },
      { stage: 'dev: Deploy', environment: 'dev', status: 'SUCCEEDED' },
    ].map((b) => expect.objectContaining(b));
    expect(ledger.builds(ARN)).toEqual(expected);
    expect(ledger.deployments(ARN)).toEqual({ dev: 'http://127.0.0.1:4801/' });
    expect(store.history(ARN).map((e) => e.type)).toEqual(Array(3).fill(BUILD_HISTORY_EVENT));

    const afterRestart = new RunLedger(store);
    expect(afterRestart.builds(ARN)).toEqual(expected);
    expect(afterRestart.deployments(ARN)).toEqual({ dev: 'http://127.0.0.1:4801/' });
    expect(afterRestart.builds('arn:other')).toEqual([]);
  });

  it('lists pending approvals newest first and forgets a closed one', () => {
    const ledger = new RunLedger(new MemoryHistory());
    const approval = (executionArn: string) => ({
      executionArn,
      environment: 'prod',
      approve: 'a',
      reject: 'r',
      expiresAt: '2026-01-02T10:00:00.000Z',
    });
    ledger.approvalRequested(approval('one'));
    ledger.approvalRequested(approval('two'));
    expect(ledger.pendingApprovals().map((a) => a.executionArn)).toEqual(['two', 'one']);
    ledger.approvalClosed('two');
    expect(ledger.pendingApprovals().map((a) => a.executionArn)).toEqual(['one']);
    expect(ledger.pendingApproval('two')).toBeUndefined();
    expect(ledger.pendingApproval('one')?.environment).toBe('prod');
  });
});

describe('terminalLine', () => {
  it('reads the run line from the execution input and labels builds by stage', () => {
    const record = {
      executionArn: ARN,
      name: 'main-2222222',
      stateMachine: 'pipeline',
      status: 'RUNNING' as const,
      input: { push: aPush() },
      startDate: '2026-01-01T10:00:00.000Z',
    };
    expect(terminalLine({ kind: 'execution', record }, '/')).toBe(
      '▶ main-2222222: acme/shop main @ 2222222 Fix the checkout',
    );
    const deploy = aBuildEvent('stepline-local-deploy', 'SUCCEEDED', { STEPLINE_ENVIRONMENT: 'dev' }, [
      { Name: 'SERVICE_URL', Value: 'http://127.0.0.1:4801/' },
    ]);
    expect(terminalLine({ kind: 'build', event: deploy, executionArn: ARN, logPath: '/x.log' }, '/')).toBe(
      '  ✔ dev: Deploy succeeded in 2.5s — answers at http://127.0.0.1:4801/',
    );
  });
});

describe('commit statuses of a run', () => {
  it("says once in the terminal that a forge's statuses are skipped, and why", () => {
    const skipped = {
      ...status('stepline', 'pending', 'skipped'),
      reason: 'no GitLab status token is configured',
    };
    expect(terminalLine({ kind: 'status-skipped', status: skipped }, '/')).toBe(
      '  ◦ commit statuses to gitlab skipped: no GitLab status token is configured (README, "Commit statuses")',
    );
  });

  const status = (
    context: string,
    state: RunStatus['state'],
    outcome: RunStatus['outcome'] = 'posted',
  ): RunStatus => ({
    context,
    state,
    description: state,
    targetUrl: 'http://127.0.0.1:4700/#/runs/main-2222222',
    provider: 'gitlab',
    repository: 'acme/shop',
    commit: '2'.repeat(40),
    outcome,
  });

  it('keeps them in the history, the latest per context, in the order the contexts came', async () => {
    const store = new MemoryHistory();
    const ledger = new RunLedger(store);
    await ledger.recordStatus(ARN, status('stepline', 'pending'));
    await ledger.recordStatus(ARN, status('stepline/image', 'pending'));
    await ledger.recordStatus(ARN, status('stepline/image', 'failure', 'failed'));
    await ledger.recordStatus(ARN, status('stepline', 'failure'));

    expect(statusesFromHistory(store.history(ARN))).toEqual([
      status('stepline', 'failure'),
      status('stepline/image', 'failure', 'failed'),
    ]);
  });

  it("counts a finished build's test reports together, by the build's ARN", async () => {
    const ledger = new RunLedger(new MemoryHistory());
    const event = aBuildEvent('stepline-local-test', 'FAILED');
    const report = {
      name: 'unit',
      fileFormat: 'JUNITXML' as const,
      files: ['a.xml'],
      status: 'FAILED' as const,
    };
    await ledger.recordBuild(ARN, {
      ...event,
      reports: [
        { ...report, tests: 10, failures: 1, errors: 1, skipped: 2 },
        { ...report, name: 'e2e', tests: 5, failures: 0, errors: 0, skipped: 0, status: 'SUCCEEDED' },
      ],
    });
    expect(ledger.testCounts(event.build.Arn, ARN)).toEqual({ passed: 11, failed: 2, skipped: 2 });
    expect(ledger.testCounts('arn:aws:codebuild:local:000000000000:build/other:1', ARN)).toBeUndefined();
  });

  it('skips a recorded status it cannot read', () => {
    expect(
      statusesFromHistory([
        { type: 'CommitStatusReported', status: { context: 'stepline', state: 'green' } },
      ]),
    ).toEqual([]);
  });
});
