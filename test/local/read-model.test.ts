import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { HistoryEventLike } from '#local/console/model.ts';
import {
  BUILD_HISTORY_EVENT,
  buildAttempt,
  buildsFromHistory,
  currentStage,
  deploymentsOf,
  type PendingApproval,
  type RunBuild,
  runOrigin,
  stageLabel,
  summarizeRun,
} from '#local/runs/read-model.ts';
import type { ExecutionRecord } from '#local/state/store.ts';
import { aPush } from '../helpers/push.ts';

/** A pipeline with one approval gate, the shape of statemachines/pipeline.asl.json around its gate. */
const DEFINITION = {
  StartAt: 'Image',
  States: {
    Image: { Type: 'Task', Resource: 'arn:aws:states:::codebuild:startBuild.sync', Next: 'Approval' },
    Approval: {
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
      Next: 'Deploy',
    },
    Deploy: { Type: 'Task', Resource: 'arn:aws:states:::codebuild:startBuild.sync', End: true },
  },
};

const ARN = 'arn:aws:states:local:000000000000:execution:pipeline:main-2222222';

function aRecord(overrides: Partial<ExecutionRecord> = {}): ExecutionRecord {
  return {
    executionArn: ARN,
    name: 'main-2222222',
    stateMachine: 'pipeline',
    status: 'RUNNING',
    input: { push: aPush(), source: { type: 'GITHUB', location: 'x', version: 'y' } },
    startDate: '2026-01-01T10:00:00.000Z',
    ...overrides,
  };
}

function aBuild(overrides: Partial<RunBuild> = {}): RunBuild {
  return {
    id: 'stepline-local-image:1',
    project: 'stepline-local-image',
    stage: 'Image',
    status: 'SUCCEEDED',
    startTime: 1,
    endTime: 2,
    logPath: '/tmp/x.log',
    logUrl: 'http://127.0.0.1:4700/api/builds/x/log',
    exportedVariables: [],
    phases: [],
    reports: [],
    ...overrides,
  };
}

const at = (second: number) => `2026-01-01T10:00:${String(second).padStart(2, '0')}.000Z`;
const entered = (state: string, second: number): HistoryEventLike => ({
  type: 'StateEntered',
  state,
  timestamp: at(second),
});
const exited = (state: string, second: number): HistoryEventLike => ({
  type: 'StateExited',
  state,
  timestamp: at(second),
});

const APPROVAL: PendingApproval = {
  executionArn: ARN,
  environment: 'prod',
  approve: 'http://127.0.0.1:4700/approvals/a',
  reject: 'http://127.0.0.1:4700/approvals/r',
  expiresAt: '2026-01-02T10:00:00.000Z',
};

describe('stageLabel', () => {
  it('names a stage by the last word of its project, after its environment', () => {
    expect(stageLabel('stepline-local-image')).toBe('Image');
    expect(stageLabel('stepline-local-deploy', 'dev')).toBe('dev: Deploy');
    expect(stageLabel('terraform')).toBe('Terraform');
  });
});

describe('buildAttempt', () => {
  it('reads the attempt of a stage that may be retried from the build variables the state machine sets', () => {
    expect(buildAttempt({ STEPLINE_ATTEMPT: '2', STEPLINE_ATTEMPTS: '3' })).toEqual({ number: 2, of: 3 });
  });

  it('says nothing for a stage with one attempt, or a build without the variables', () => {
    expect(buildAttempt({ STEPLINE_ATTEMPT: '1', STEPLINE_ATTEMPTS: '1' })).toBeUndefined();
    expect(buildAttempt({})).toBeUndefined();
    expect(buildAttempt({ STEPLINE_ATTEMPT: 'x', STEPLINE_ATTEMPTS: '3' })).toBeUndefined();
  });
});

describe('runOrigin', () => {
  it('reads repository, branch, commit, message and pusher from a pipeline input', () => {
    expect(runOrigin(aRecord().input)).toEqual({
      repository: 'acme/shop',
      ref: 'main',
      commit: '2222222222222222222222222222222222222222',
      message: 'Fix the checkout',
      pusher: 'octocat',
    });
  });

  it('finds nothing in a teardown input, an input without a push, or one that is not an object', () => {
    expect(runOrigin({ environment: 'dev', source: {} })).toEqual({});
    expect(runOrigin(null)).toEqual({});
    expect(runOrigin('push')).toEqual({});
  });

  it('keeps what it can read of an older push and leaves a deleted ref without a commit', () => {
    expect(runOrigin({ push: { refName: 'main', after: null, extra: 1 } })).toEqual({ ref: 'main' });
    // A push of the wrong shape is not half-read.
    expect(runOrigin({ push: { refName: 42 } })).toEqual({});
  });
});

describe('summarizeRun', () => {
  it('shows the pending approval, and the stage as its approval, while the gate waits', () => {
    const summary = summarizeRun(aRecord(), {
      history: [entered('Image', 1), exited('Image', 2), entered('Approval', 3)],
      builds: [aBuild()],
      definition: DEFINITION,
      approval: APPROVAL,
    });
    expect(summary).toMatchObject({
      name: 'main-2222222',
      status: 'RUNNING',
      repository: 'acme/shop',
      ref: 'main',
      commit: '2222222222222222222222222222222222222222',
      waitsForApproval: true,
      approval: APPROVAL,
      stage: 'prod: Approval',
      deployments: {},
    });
  });

  it('shows a run waiting for an environment as its stage, while it runs', () => {
    const facts = {
      history: [entered('Image', 1), exited('Image', 2), entered('Enter environment', 3)],
      builds: [aBuild()],
      definition: DEFINITION,
      waitingFor: { environment: 'dev', heldBy: 'main-1111111' },
    };
    expect(summarizeRun(aRecord(), facts)).toMatchObject({
      stage: 'dev: waiting',
      waitingFor: { environment: 'dev', heldBy: 'main-1111111' },
    });
    const ended = summarizeRun(aRecord({ status: 'ABORTED', stopDate: at(9) }), facts);
    expect(ended.waitingFor).toBeUndefined();
    expect(ended.stage).not.toBe('dev: waiting');
  });

  it('drops an approval once the gate is left or the run has ended', () => {
    const decided = summarizeRun(aRecord(), {
      history: [entered('Approval', 3), exited('Approval', 4), entered('Deploy', 5)],
      builds: [aBuild()],
      definition: DEFINITION,
      approval: APPROVAL,
    });
    expect(decided.waitsForApproval).toBe(false);
    expect(decided.approval).toBeUndefined();
    expect(decided.stage).toBe('Image');

    const ended = summarizeRun(aRecord({ status: 'ABORTED', stopDate: at(9) }), {
      history: [entered('Approval', 3)],
      builds: [],
      definition: DEFINITION,
      approval: APPROVAL,
    });
    expect(ended).toMatchObject({ waitsForApproval: false, stopDate: at(9), stage: 'Approval' });
    expect(ended.approval).toBeUndefined();
  });

  it('says where each environment answers, from its succeeded deploys', () => {
    const deploy = (environment: string, status: string, url: string) =>
      aBuild({
        id: `deploy-${environment}-${status}`,
        project: 'stepline-local-deploy',
        stage: `${environment}: Deploy`,
        environment,
        status,
        exportedVariables: [{ Name: 'SERVICE_URL', Value: url }],
      });
    const summary = summarizeRun(aRecord({ status: 'SUCCEEDED' }), {
      history: [],
      builds: [aBuild(), deploy('dev', 'SUCCEEDED', 'http://dev/'), deploy('prod', 'FAILED', 'http://prod/')],
      definition: DEFINITION,
    });
    expect(summary.deployments).toEqual({ dev: 'http://dev/' });
    expect(summary.stage).toBe('prod: Deploy');
  });

  it('carries the error, cause and restart of an ended run, and no push fields for a teardown', () => {
    const summary = summarizeRun(
      aRecord({
        stateMachine: 'teardown',
        input: { environment: 'dev' },
        status: 'FAILED',
        error: 'States.TaskFailed',
        cause: 'boom',
        restartOf: 'main-1111111',
      }),
      { history: [], builds: [], definition: {} },
    );
    expect(summary).toEqual({
      name: 'main-2222222',
      executionArn: ARN,
      stateMachine: 'teardown',
      status: 'FAILED',
      startDate: '2026-01-01T10:00:00.000Z',
      error: 'States.TaskFailed',
      cause: 'boom',
      restartOf: 'main-1111111',
      waitsForApproval: false,
      deployments: {},
    });
  });
});

describe('currentStage', () => {
  it('is the failed build, else the latest build, else the latest state entered', () => {
    const failed = aBuild({ id: 'b', stage: 'dev: Deploy', status: 'FAILED' });
    expect(currentStage([aBuild(), failed, aBuild({ id: 'c', stage: 'Test' })], [])).toBe('dev: Deploy');
    expect(currentStage([aBuild(), aBuild({ id: 'c', stage: 'Test' })], [])).toBe('Test');
    expect(currentStage([], [entered('Image', 1), entered('Approval', 2)])).toBe('Approval');
    expect(currentStage([], [])).toBeUndefined();
  });
});

describe('buildsFromHistory and deploymentsOf', () => {
  it('keeps each build at its latest recorded state, in the order they started, and skips unreadable ones', () => {
    const started = aBuild({ status: 'IN_PROGRESS', endTime: undefined });
    const history = [
      { type: 'StateEntered', state: 'Image' },
      { type: BUILD_HISTORY_EVENT, build: started },
      { type: BUILD_HISTORY_EVENT, build: aBuild({ id: 'other', stage: 'Test', status: 'IN_PROGRESS' }) },
      { type: BUILD_HISTORY_EVENT, build: aBuild() },
      { type: BUILD_HISTORY_EVENT, build: { id: 'broken' } },
    ];
    expect(buildsFromHistory(history).map((b) => `${b.id} ${b.status}`)).toEqual([
      'stepline-local-image:1 SUCCEEDED',
      'other IN_PROGRESS',
    ]);
  });

  it('takes the latest succeeded deploy of an environment', () => {
    const deploy = (id: string, url: string) =>
      aBuild({ id, environment: 'dev', exportedVariables: [{ Name: 'SERVICE_URL', Value: url }] });
    expect(deploymentsOf([deploy('1', 'http://old/'), deploy('2', 'http://new/')])).toEqual({
      dev: 'http://new/',
    });
  });
});

describe('the read model module', () => {
  it('bundles for the browser, as the console imports it: no node: modules', async () => {
    const { build } = await import('esbuild');
    const result = await build({
      entryPoints: [fileURLToPath(new URL('../../local/runs/read-model.ts', import.meta.url))],
      bundle: true,
      write: false,
      platform: 'browser',
      format: 'esm',
      logLevel: 'silent',
    });
    expect(result.errors).toEqual([]);
    expect(result.outputFiles[0]?.text).toContain('BuildStateChanged');
  });
});
