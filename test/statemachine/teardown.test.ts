import { describe, expect, it } from 'vitest';
import {
  buildEnvironment,
  buildFailed,
  buildSucceeded,
  callsTo,
  type HandlersByResource,
  loadProjectStateMachine,
  RESOURCE,
  runStateMachine,
  stepFunctionsError,
  TEST_EXECUTION_ARN,
} from '../helpers/asl-harness.ts';

const teardown = loadProjectStateMachine('teardown');
const INPUT = {
  environment: 'qa',
  repository: 'acme/shop',
  source: { type: 'GITHUB', location: 'https://github.com/acme/shop.git', version: 'a1b2c3d4' },
};

function builds(handler: HandlersByResource[string]): HandlersByResource {
  return { [RESOURCE.startBuildSync]: handler };
}

describe('statemachines/teardown.asl.json', () => {
  it("destroys the given environment with that environment's teardown project, from the given commit", async () => {
    const run = await runStateMachine(teardown, INPUT, {
      handlers: builds((input) => buildSucceeded(input)),
    });

    expect(run.status).toBe('SUCCEEDED');
    const [build] = callsTo(run, 'Teardown');
    expect(build?.input).toMatchObject({
      ProjectName: 'stepline-test-qa-teardown',
      SourceTypeOverride: 'GITHUB',
      SourceLocationOverride: 'https://github.com/acme/shop.git',
      SourceVersion: 'a1b2c3d4',
      BuildspecOverride: 'buildspecs/teardown.yml',
    });
    expect(buildEnvironment(build?.input ?? {})).toEqual({
      STEPLINE_ENVIRONMENT: 'qa',
      STEPLINE_REPOSITORY: 'acme/shop',
      STEPLINE_COMMIT: 'a1b2c3d4',
      STEPLINE_EXECUTION_ID: TEST_EXECUTION_ARN,
    });
  });

  it('fails with Teardown.Failed when the destroy build fails, without retrying it', async () => {
    const run = await runStateMachine(teardown, INPUT, {
      handlers: builds((input) => {
        throw buildFailed(input);
      }),
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Teardown.Failed' });
    expect(run.cause).toMatch(/start the teardown again/);
    expect(callsTo(run, 'Teardown')).toHaveLength(1);
  });

  it('retries a StartBuild refused for the account build limit, then destroys', async () => {
    let refused = false;
    const run = await runStateMachine(teardown, INPUT, {
      handlers: builds((input) => {
        if (refused) return buildSucceeded(input);
        refused = true;
        throw stepFunctionsError(
          'CodeBuild.AccountLimitExceededException',
          'Cannot have more than 1 builds in queue',
        );
      }),
    });

    expect(run.status).toBe('SUCCEEDED');
    expect(callsTo(run, 'Teardown')).toHaveLength(2);
  });

  it('fails at once on a permission error instead of retrying it for minutes', async () => {
    const run = await runStateMachine(teardown, INPUT, {
      handlers: builds(() => {
        throw stepFunctionsError(
          'CodeBuild.AWSCodeBuildException',
          'not authorized to perform: codebuild:StartBuild',
        );
      }),
    });

    expect(run).toMatchObject({ status: 'FAILED', error: 'Teardown.Failed' });
    expect(callsTo(run, 'Teardown')).toHaveLength(1);
  });
});
