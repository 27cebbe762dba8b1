import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '#shared/errors.ts';
import { statusTokensFor } from '#shared/secrets.ts';
import { runCommitOf, stageContext, stageStatus, statusTargetOf } from '#shared/status/model.ts';
import { aPush } from '../helpers/push.ts';

const COMMIT = 'b'.repeat(40);

describe('where a push reports its statuses', () => {
  it.each([
    ['github', 'https://github.com/acme/shop.git', 'https://api.github.com'],
    ['github', 'https://ghe.acme.dev/acme/shop.git', 'https://ghe.acme.dev/api/v3'],
    ['gitlab', 'https://gitlab.com/acme/shop.git', 'https://gitlab.com'],
    ['gitlab', 'https://git.acme.dev:8443/acme/shop.git', 'https://git.acme.dev:8443'],
    ['gitlab', 'https://acme.dev/gitlab/acme/shop.git', 'https://acme.dev/gitlab'],
    ['bitbucket', 'https://bitbucket.org/acme/shop.git', 'https://api.bitbucket.org/2.0'],
  ] as const)('%s at %s → %s', (provider, cloneUrl, apiUrl) => {
    const push = aPush({ provider, repository: { fullName: 'acme/shop', cloneUrl } });
    expect(statusTargetOf(push, COMMIT)).toEqual({
      provider,
      apiUrl,
      repository: 'acme/shop',
      commit: COMMIT,
      ref: 'main',
    });
  });

  it.each([
    ['codecommit', 'https://git-codecommit.us-east-1.amazonaws.com/v1/repos/shop', /CodeCommit/],
    ['bitbucket', 'https://bitbucket.acme.dev/scm/shop/app.git', /Data Center/],
    ['github', '/home/ada/.stepline/git/hello-service.git', /not on a forge/],
  ] as const)('skips %s at %s, saying why', (provider, cloneUrl, reason) => {
    const push = aPush({ provider, repository: { fullName: 'acme/shop', cloneUrl } });
    expect(statusTargetOf(push, COMMIT)).toEqual({ skipped: expect.stringMatching(reason) });
  });

  it('reports on the commit the builds check out (source.version), else the pushed one', () => {
    const push = aPush();
    expect(runCommitOf({ push, source: { version: COMMIT } })).toEqual({ push, commit: COMMIT });
    expect(runCommitOf({ push })).toEqual({ push, commit: push.after });
    expect(runCommitOf({ environment: 'dev', source: { version: COMMIT } })).toBeNull();
  });
});

describe('the context of a stage', () => {
  it.each([
    ['stepline-dev-test', null, 'stepline/test'],
    ['stepline-dev-image', null, 'stepline/image'],
    ['stepline-dev-prod-deploy', 'prod', 'stepline/deploy-prod'],
    ['stepline-dev-eu-west-infrastructure', 'eu-west', 'stepline/infrastructure-eu-west'],
    ['stepline-local-lint', null, 'stepline/lint'],
  ])('%s (%s) → %s', (project, environment, context) => {
    expect(stageContext(project, environment)).toBe(context);
  });

  it("describes a finished build by its test reports' counts when it has any", () => {
    const report = {
      project: 'stepline-dev-test',
      buildId: 'b-1',
      buildNumber: 1,
      status: 'FAILED',
      terminal: true,
      commit: COMMIT,
      environment: null,
      logLink: null,
      durationSeconds: 63,
      failedPhase: { type: 'BUILD', status: 'FAILED', context: ['COMMAND_EXECUTION_ERROR: npm test'] },
    };
    expect(stageStatus(report, 'u', { passed: 12, failed: 1, skipped: 0 }).description).toBe(
      '12 passed, 1 failed in 1 min 3 s',
    );
    expect(
      stageStatus({ ...report, status: 'SUCCEEDED', failedPhase: null }, 'u', {
        passed: 40,
        failed: 0,
        skipped: 2,
      }).description,
    ).toBe('40 passed, 2 skipped in 1 min 3 s');
    // Tests that all passed say nothing of why the build failed: its phase does.
    expect(stageStatus(report, 'u', { passed: 3, failed: 0, skipped: 0 }).description).toBe(
      'Failed in BUILD in 1 min 3 s: COMMAND_EXECUTION_ERROR: npm test',
    );
  });

  it('describes a failed build by its phase and first message, within 140 characters', () => {
    const status = stageStatus(
      {
        project: 'stepline-dev-test',
        buildId: 'b-1',
        buildNumber: 1,
        status: 'FAILED',
        terminal: true,
        commit: COMMIT,
        environment: null,
        logLink: null,
        durationSeconds: 75,
        failedPhase: {
          type: 'BUILD',
          status: 'FAILED',
          context: [`COMMAND_EXECUTION_ERROR: ${'x'.repeat(300)}`],
        },
      },
      'https://console/run',
    );
    expect(status.state).toBe('failure');
    expect(status.description).toMatch(/^Failed in BUILD in 1 min 15 s: COMMAND_EXECUTION_ERROR: x+…$/);
    expect(Array.from(status.description)).toHaveLength(140);
  });
});

describe('status tokens on AWS', () => {
  const reads: string[] = [];
  const store = () => ({
    read: async (name: string) => {
      reads.push(name);
      return `token-of-${name}`;
    },
  });

  it('reads only the listed providers, from <prefix>/<provider>', async () => {
    const tokens = statusTokensFor(
      { STATUS_PROVIDERS: 'github,bitbucket', STATUS_TOKEN_PARAMETER_PREFIX: '/stepline/dev/status-token' },
      store,
    );
    await expect(tokens.tokenFor('github')).resolves.toBe('token-of-/stepline/dev/status-token/github');
    await expect(tokens.tokenFor('gitlab')).resolves.toBeUndefined();
    expect(reads).toEqual(['/stepline/dev/status-token/github']);
  });

  it('has no token at all when no provider is listed', async () => {
    const tokens = statusTokensFor({ STATUS_PROVIDERS: '' }, store);
    await expect(tokens.tokenFor('github')).resolves.toBeUndefined();
  });

  it('refuses an unknown provider or a listed one without the prefix, naming the variable', () => {
    expect(() => statusTokensFor({ STATUS_PROVIDERS: 'github, gitlab' }, store)).toThrow(ConfigurationError);
    expect(() => statusTokensFor({ STATUS_PROVIDERS: 'github' }, store)).toThrow(
      /STATUS_TOKEN_PARAMETER_PREFIX/,
    );
  });
});
