import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunDetail } from '#local/runs/read-model.ts';
import { ForgeServer } from '../helpers/forge-server.ts';
import { freeDeployPortBase, getJson, git, LocalTestScope, pollUntil } from '../helpers/local-process.ts';
import { breakSampleApp, copySampleApp } from '../helpers/sample-app.ts';

const GITLAB_SECRET = 'gitlab-webhook-secret-for-this-test';
const GITLAB_TOKEN = 'glpat-local-e2e-token';

interface StatusBody {
  state: string;
  name: string;
  target_url: string;
  description: string;
}

describe('commit statuses in the local mode, with a token configured', () => {
  it('posts the run and stage statuses of a GitLab push to its self-managed GitLab, and shows them', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-status-', onTestFinished);
    const { stateDir, root } = scope;

    // A self-managed GitLab on this machine: the repository served over git's dumb HTTP, the status API
    // answered and recorded. The app's tests fail, so the run ends at its Test stage.
    const forge = await ForgeServer.start();
    onTestFinished(() => forge.close());
    const work = await copySampleApp(join(root, 'shop'));
    await breakSampleApp(work);
    await git(['init', '--quiet', '--initial-branch', 'master'], work);
    await git(['add', '--all'], work);
    await git(['commit', '--quiet', '-m', 'Break the health check'], work);
    const commit = (await git(['rev-parse', 'HEAD'], work)).trim();
    await git(['clone', '--quiet', '--bare', work, join(root, 'forge', 'platform', 'shop.git')]);
    await git(['update-server-info'], join(root, 'forge', 'platform', 'shop.git'));
    forge.serveFiles(join(root, 'forge'));

    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await writeFile(
      join(stateDir, 'parameters.json'),
      JSON.stringify({ '/stepline/local/status-token/gitlab': GITLAB_TOKEN }),
      { mode: 0o600 },
    );
    const stepline = scope.cli(['start', '--port', '0', '--state-dir', stateDir], {
      env: {
        STEPLINE_WEBHOOK_SECRET_GITLAB: GITLAB_SECRET,
        STEPLINE_DEPLOY_PORT_BASE: String(await freeDeployPortBase()),
      },
    });
    const url =
      (await stepline.waitForLine(/^stepline is running at (http:\/\/127\.0\.0\.1:\d+) /)).match[1] ?? '';
    // The sample app's own run (a local path, no forge: no statuses) goes first; then the GitLab push.
    await stepline.waitForLine(/^\s+approve: (http:\/\/\S+)$/, { timeoutMs: 60_000 });

    const payload = JSON.parse(
      await readFile(new URL('../fixtures/gitlab/gitlab-docs-push-hook.json', import.meta.url), 'utf8'),
    );
    const project = {
      ...payload.project,
      web_url: `${forge.url}/platform/shop`,
      git_http_url: `${forge.url}/platform/shop.git`,
      http_url: `${forge.url}/platform/shop.git`,
      homepage: `${forge.url}/platform/shop`,
      path_with_namespace: 'platform/shop',
      default_branch: 'master',
    };
    const delivery = await fetch(`${url}/webhooks/gitlab`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-gitlab-event': 'Push Hook',
        'x-gitlab-token': GITLAB_SECRET,
      },
      body: JSON.stringify({
        ...payload,
        after: commit,
        checkout_sha: commit,
        project,
        repository: { ...payload.repository, homepage: project.web_url, git_http_url: project.git_http_url },
      }),
    });
    expect(delivery.status, await delivery.clone().text()).toBe(202);
    const [run] = ((await delivery.json()) as { started: string[] }).started;

    const posted = () => forge.requests.filter((r) => r.method === 'POST');
    await pollUntil(
      'the run failure status',
      async () =>
        posted().find(
          (r) => (r.body as StatusBody).name === 'stepline' && (r.body as StatusBody).state === 'failed',
        ),
      90_000,
    );
    const runLink = `${url}/#/runs/${encodeURIComponent(run ?? '')}`;
    for (const request of posted()) {
      expect(request.path).toBe(`/api/v4/projects/platform%2Fshop/statuses/${commit}`);
      expect(request.headers['private-token']).toBe(GITLAB_TOKEN);
      expect((request.body as StatusBody).target_url).toBe(runLink);
    }
    const states = posted().map((r) => `${(r.body as StatusBody).name} ${(r.body as StatusBody).state}`);
    // Each context goes from running to its outcome; the run's and the stage's events are delivered apart (as
    // EventBridge does, in no set order), so their statuses may interleave.
    for (const context of ['stepline', 'stepline/test']) {
      const own = states.filter((state) => state.startsWith(`${context} `));
      expect(own, context).toEqual([`${context} running`, `${context} failed`]);
    }

    // The run's page and `stepline show` list them, the latest per context.
    const detail = await pollUntil(
      'the statuses in the run',
      async () => {
        const found = await getJson<RunDetail>(`${url}/api/runs/${encodeURIComponent(run ?? '')}`, stateDir);
        return found.statuses.some((s) => s.context === 'stepline' && s.state === 'failure')
          ? found
          : undefined;
      },
      10_000,
    );
    expect(detail.statuses.map((s) => [s.context, s.state, s.outcome])).toEqual([
      ['stepline', 'failure', 'posted'],
      ['stepline/test', 'failure', 'posted'],
    ]);
    const show = scope.cli(['show', run ?? '', '--port', new URL(url).port, '--state-dir', stateDir]);
    expect((await show.waitForExit(20_000)).code, show.output).toBe(0);
    expect(show.output).toMatch(/status failure stepline {2}Failed/);
    expect(show.output).toMatch(/status failure stepline\/test {2}\d+ passed, 1 failed/);
    expect(stepline.output).not.toContain(GITLAB_TOKEN);
    await stepline.stop();
  }, 150_000);
});
