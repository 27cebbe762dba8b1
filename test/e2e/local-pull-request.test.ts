import { createHmac } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunDetail } from '#local/runs/read-model.ts';
import { getJson, git, LocalTestScope, pollUntil, processesOf } from '../helpers/local-process.ts';
import { breakSampleApp } from '../helpers/sample-app.ts';

/** GitHub's documented `pull_request` example, pointed at the local remote's branch and head commit. */
async function pullRequestDelivery(options: {
  action: string;
  remote: string;
  branch: string;
  head: string;
}): Promise<string> {
  const payload = JSON.parse(
    await readFile(new URL('../fixtures/github/octokit-pull_request.opened.json', import.meta.url), 'utf8'),
  );
  const repository = {
    ...payload.repository,
    full_name: 'local/hello-service',
    html_url: 'http://127.0.0.1/local/hello-service',
    clone_url: options.remote,
    default_branch: 'main',
  };
  payload.action = options.action;
  payload.number = 5;
  payload.repository = repository;
  payload.pull_request.number = 5;
  payload.pull_request.title = 'Greet in more words';
  payload.pull_request.head = {
    ...payload.pull_request.head,
    ref: options.branch,
    sha: options.head,
    repo: repository,
  };
  payload.pull_request.base = { ...payload.pull_request.base, ref: 'main', repo: repository };
  return JSON.stringify(payload);
}

async function postPullRequest(url: string, stateDir: string, body: string, delivery: string) {
  const secret = (await readFile(join(stateDir, 'webhook-secret-github'), 'utf8')).trim();
  const response = await fetch(`${url}/webhooks/github`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'pull_request',
      'x-github-delivery': delivery,
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    },
    body,
  });
  return { status: response.status, body: (await response.json()) as { started: string[] } };
}

async function finishedRun(url: string, stateDir: string, name: string): Promise<RunDetail> {
  return pollUntil(`the run ${name} to end`, async () => {
    const run = await getJson<RunDetail>(`${url}/api/runs/${name}`, stateDir);
    return run.status === 'RUNNING' ? undefined : run;
  });
}

describe('a pull request of the sample app, through the local webhook', () => {
  it('runs the Test stage only; a failing test fails the run, named in the notification and the console', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-pull-request-', onTestFinished);
    const { stateDir } = scope;
    // Pushes start nothing here (no branch matches): only the pull request does.
    const stepline = scope.cli([
      'start',
      '--port',
      '0',
      '--state-dir',
      stateDir,
      '--param',
      'triggers={"push":[{"branches":{"includes":["no-branch-is-named-so"]}}]}',
    ]);
    const url =
      (await stepline.waitForLine(/^stepline is running at (http:\/\/127\.0\.0\.1:\d+) /)).match[1] ?? '';
    const remote = (await stepline.waitForLine(/^git remote of the sample app: (\S+)$/)).match[1] ?? '';
    // The sample app is on main once start says how many runs there are.
    await stepline.waitForLine(/^\d+ run\(s\) so far;/);

    // A branch with a change, pushed to the local remote.
    const work = join(scope.root, 'work');
    await git(['clone', '--quiet', remote, work]);
    await git(['checkout', '--quiet', '-b', 'feature/greeting'], work);
    await writeFile(join(work, 'NOTES.md'), 'Greet in more words.\n');
    await git(['add', 'NOTES.md'], work);
    await git(['commit', '--quiet', '-m', 'Add notes'], work);
    await git(['push', '--quiet', 'origin', 'feature/greeting'], work);
    const head = (await git(['rev-parse', 'HEAD'], work)).trim();

    // The request is opened: a CI run of its head, the Test stage only.
    const opened = await postPullRequest(
      url,
      stateDir,
      await pullRequestDelivery({ action: 'opened', remote, branch: 'feature/greeting', head }),
      'pr-delivery-1',
    );
    expect(opened.status, JSON.stringify(opened.body)).toBe(202);
    const [passingName = ''] = opened.body.started;
    expect(passingName).toMatch(/^hello-service-pr5-[0-9a-f]{8}-[0-9a-f]{7}-[0-9a-f]{12}$/);
    const passing = await finishedRun(url, stateDir, passingName);
    expect(passing.status, `${passing.error}: ${passing.cause}`).toBe('SUCCEEDED');
    expect(passing.builds.map((build) => `${build.stage} ${build.status}`)).toEqual(['Test SUCCEEDED']);
    const [report] = passing.builds[0]?.reports ?? [];
    expect(report).toMatchObject({ name: 'junit', fileFormat: 'JUNITXML', status: 'SUCCEEDED', failures: 0 });
    expect(report?.tests).toBeGreaterThan(3);
    expect(passing.notifications.map((message) => message.subject)).toContain(
      `✔ local/hello-service #5 feature/greeting passed: ${report?.tests} passed`,
    );

    // A new head whose test fails: the run fails at Test, naming the failed test.
    await breakSampleApp(work);
    await git(['commit', '--quiet', '-am', 'Answer /health with 500'], work);
    await git(['push', '--quiet', 'origin', 'feature/greeting'], work);
    const broken = (await git(['rev-parse', 'HEAD'], work)).trim();
    const updated = await postPullRequest(
      url,
      stateDir,
      await pullRequestDelivery({ action: 'synchronize', remote, branch: 'feature/greeting', head: broken }),
      'pr-delivery-2',
    );
    expect(updated.status, JSON.stringify(updated.body)).toBe(202);
    const failingName = updated.body.started[0] ?? '';
    // The same request: the same name prefix, another head.
    expect(failingName.slice(0, failingName.length - 20)).toBe(passingName.slice(0, passingName.length - 20));
    const failing = await finishedRun(url, stateDir, failingName);
    expect(failing).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(failing.builds.map((build) => `${build.stage} ${build.status}`)).toEqual(['Test FAILED']);
    const failedTest = 'answers /health with 200, the environment and the version';
    // The console's run page shows the report's failed test, with its message.
    expect(failing.builds[0]?.reports[0]?.failedCases).toEqual([
      expect.objectContaining({
        name: failedTest,
        prefix: 'hello-service',
        status: 'FAILED',
        message: expect.any(String),
      }),
    ]);
    const notification = failing.notifications.find((message) => message.subject.includes('failed at Test'));
    expect(notification?.subject, failing.notifications.map((m) => m.subject).join('\n')).toMatch(
      /^✖ local\/hello-service #5 feature\/greeting failed at Test: \d+ passed, 1 failed$/,
    );
    expect(notification?.body).toContain(`✖ hello-service › ${failedTest}`);
    expect(notification?.body).toContain('Pull request: #5 Greet in more words');

    // Nothing was deployed, nothing asked for approval, nothing is left running.
    expect(failing.notifications.some((message) => message.topic === 'approvals')).toBe(false);
    expect(await stepline.stop()).toMatchObject({ code: 0 });
    expect(await processesOf(stateDir)).toEqual([]);
  }, 90_000);
});
