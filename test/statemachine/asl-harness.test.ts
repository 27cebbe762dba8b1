// biome-ignore-all lint/suspicious/noTemplateCurlyInString: state machine placeholders (${…}) are data here, not template literals
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { listStates, loadStateMachine } from '#local/stepfunctions/definition.ts';
import {
  buildFailed,
  buildSucceeded,
  codeBuildBuild,
  countTransitions,
  loadProjectStateMachine,
  RESOURCE,
  runStateMachine,
  statesEntered,
  type TaskInput,
} from '../helpers/asl-harness.ts';

const fixture = (name: string) =>
  fileURLToPath(new URL(`../fixtures/state-machines/${name}`, import.meta.url));
const codeBuildSample = JSON.parse(
  readFileSync(fixture('awsdocs-sample-project-codebuild.asl.json'), 'utf8'),
);

const BATCH_GET_REPORTS = 'arn:aws:states:::codebuild:batchGetReports';
const REPORT_ARN = 'arn:aws:codebuild:eu-west-1:123456789012:report/r1';

/** The sample reads `$.Build.ReportArns`, which builds with test reports carry. */
function buildWithReport(input: TaskInput) {
  return { Build: { ...buildSucceeded(input).Build, ReportArns: [REPORT_ARN] } };
}
const SNS_PUBLISH = 'arn:aws:states:::sns:publish';

describe('runStateMachine', () => {
  it('binds handlers by Resource on a state machine it was not written for', async () => {
    const published: unknown[] = [];
    const run = await runStateMachine(
      codeBuildSample,
      {},
      {
        handlers: {
          [RESOURCE.startBuildSync]: buildWithReport,
          [BATCH_GET_REPORTS]: (input) => ({
            Reports: (input.ReportArns as string[]).map((arn) => ({ Arn: arn, Status: 'SUCCEEDED' })),
          }),
          [SNS_PUBLISH]: (input) => {
            published.push(input.Message);
            return { MessageId: 'm-1' };
          },
        },
      },
    );

    expect(run.status).toBe('SUCCEEDED');
    expect(published).toEqual(['CodeBuild build tests succeeded']);
    expect(statesEntered(run)).toEqual([
      'Trigger CodeBuild Build',
      'Get Test Results',
      'All Tests Passed?',
      'Notify Success',
    ]);
    expect(countTransitions(run)).toBe(4);
  });

  it('fails a Task whose Resource has no handler, naming the Resource and the state', async () => {
    const run = await runStateMachine(
      codeBuildSample,
      {},
      {
        handlers: { [RESOURCE.startBuildSync]: buildWithReport },
      },
    );

    expect(run).toMatchObject({
      status: 'FAILED',
      cause: `No local handler for ${BATCH_GET_REPORTS} (state "Get Test Results")`,
    });
  });

  it('reports a failed build as Step Functions does: States.TaskFailed with the build as cause', async () => {
    const run = await runStateMachine(
      codeBuildSample,
      {},
      {
        handlers: {
          [RESOURCE.startBuildSync]: (input) => {
            throw buildFailed(input);
          },
        },
      },
    );

    expect(run.error).toBe('States.TaskFailed');
    expect(JSON.parse(run.cause ?? '')).toEqual(
      codeBuildBuild({ ProjectName: 'CodeBuildProject-Dtw1jBhEYGDf' }, { status: 'FAILED' }),
    );
  });
});

describe('codeBuildBuild', () => {
  it('describes the build of the task input: project, commit, variables, log link', () => {
    const build = codeBuildBuild(
      {
        ProjectName: 'stepline-test-image',
        SourceVersion: 'abc123',
        EnvironmentVariablesOverride: [{ Name: 'STEPLINE_COMMIT', Type: 'PLAINTEXT', Value: 'abc123' }],
      },
      { exported: { IMAGE_URI: 'repo:abc123' }, buildNumber: 12 },
    );

    expect(build).toMatchObject({
      Id: expect.stringMatching(/^stepline-test-image:[0-9a-f-]{36}$/),
      Arn: expect.stringMatching(/^arn:aws:codebuild:eu-west-1:123456789012:build\/stepline-test-image:/),
      BuildNumber: 12,
      BuildStatus: 'SUCCEEDED',
      ProjectName: 'stepline-test-image',
      ResolvedSourceVersion: 'abc123',
      Environment: {
        EnvironmentVariables: [{ Name: 'STEPLINE_COMMIT', Type: 'PLAINTEXT', Value: 'abc123' }],
      },
      ExportedEnvironmentVariables: [{ Name: 'IMAGE_URI', Value: 'repo:abc123' }],
    });
    expect(build.Logs.DeepLink).toContain(encodeURIComponent('/aws/codebuild/stepline-test-image'));
    expect(build.Logs.DeepLink).toContain(build.Logs.StreamName);
  });
});

describe('listStates', () => {
  it('finds the states inside the Map iterations', () => {
    const names = listStates(loadProjectStateMachine('pipeline')).map((entry) => entry.name);

    expect(names).toEqual(
      expect.arrayContaining(['Plan stages', 'Name stages', 'Image', 'Environments', 'Approval', 'Deploy']),
    );
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('loadStateMachine on a definition written for CloudFormation', () => {
  it('refuses the Fn::Sub placeholders it cannot resolve, naming them', () => {
    expect(() =>
      loadStateMachine(fixture('awsdocs-human-approval.asl.fnsub.json'), { service: 'shop', stage: 'prod' }),
    ).toThrow(
      'unresolved placeholders ${AWS::Partition}, ${LambdaHumanApprovalSendEmailFunction.Arn}, ${ExecutionApi}, ${AWS::Region}, ${Email}',
    );
  });
});
