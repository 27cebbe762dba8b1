import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PendingApproval, RunDetail, RunSummary } from '#local/runs/read-model.ts';
import { authorized, getJson, git, type LocalProcess, LocalTestScope } from '../helpers/local-process.ts';

/** A small application of the test's own, not the sample: a page, a package.json with a test script, a test. */
async function createApp(folder: string, title: string): Promise<void> {
  await mkdir(join(folder, 'test'), { recursive: true });
  await writeFile(
    join(folder, 'package.json'),
    `${JSON.stringify({ name: title, version: '1.0.0', private: true, scripts: { test: 'node --test' } }, null, 2)}\n`,
  );
  await writeFile(join(folder, 'index.html'), `<!doctype html><title>${title}</title><h1>${title}</h1>\n`);
  await writeFile(
    join(folder, 'test', 'page.test.mjs'),
    "import assert from 'node:assert';\nimport { readFileSync } from 'node:fs';\nimport test from 'node:test';\n" +
      `test('has a title', () => assert.match(readFileSync('index.html', 'utf8'), /<h1>${title}<\\/h1>/));\n`,
  );
  await git(['init', '--quiet', folder]);
  await git(['symbolic-ref', 'HEAD', 'refs/heads/main'], folder);
}

async function commitAll(folder: string, message: string): Promise<string> {
  await git(['add', '--all'], folder);
  await git(['commit', '--quiet', '-m', message], folder);
  return (await git(['rev-parse', 'HEAD'], folder)).trim();
}

async function outboxSubjects(stateDir: string): Promise<string[]> {
  const folder = join(stateDir, 'outbox');
  const files = (await readdir(folder)).filter((file) => file.endsWith('.json')).sort();
  return Promise.all(
    files.map(
      async (file) => (JSON.parse(await readFile(join(folder, file), 'utf8')) as { subject: string }).subject,
    ),
  );
}

/** Adds the remote exactly as `start` printed it (`cd <repo> && git remote add stepline <path>`). */
async function addPrintedRemote(stepline: LocalProcess, root: string, fullName: string): Promise<string> {
  const shown = await stepline.waitForLine(new RegExp(`^${fullName}: local remote (\\S+)$`));
  const { match } = await stepline.waitForLine(/^\s+cd (\S+) && git remote add stepline (\S+)$/, {
    from: shown.index,
  });
  expect(match[2]).toBe(shown.match[1]);
  await git(['remote', 'add', 'stepline', match[2] ?? ''], join(root, match[1] ?? ''));
  return match[2] ?? '';
}

describe('stepline on your own repositories, the real process', () => {
  it('init writes the starter kit into two fresh repositories; start --repo runs each push on its own buildspecs, under its own name, one with its own environments, at the same time', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-repos-', onTestFinished);
    const shop = join(scope.root, 'shop');
    const docs = join(scope.root, 'docs');
    await createApp(shop, 'shop');
    await createApp(docs, 'docs');

    // `stepline init` from the repositories' parent folder, as a person would after cloning stepline.
    for (const name of ['shop', 'docs']) {
      const init = scope.cli(['init', name], { cwd: scope.root });
      expect(await init.waitForExit(), init.output).toEqual({ code: 0, signal: null });
      for (const file of ['test', 'image', 'infrastructure', 'deploy'])
        expect(init.output).toMatch(new RegExp(`^wrote ${name}/buildspecs/${file}\\.yml `, 'm'));
      expect(init.output).toMatch(new RegExp(`^wrote ${name}/stepline\\.json `, 'm'));
    }
    const settings = JSON.parse(await readFile(join(shop, 'stepline.json'), 'utf8'));
    expect(settings.environments).toEqual([
      { name: 'dev', approval: false },
      { name: 'prod', approval: true },
    ]);
    const shopCommit = await commitAll(shop, 'Shop page');
    const docsCommit = await commitAll(docs, 'Docs page');

    // Started from the repositories' folder, not stepline's checkout: the state folder is the current
    // directory's. docs has an override of its own in the settings: preview and qa, no approval.
    const override = {
      repositories: { 'local/docs': { environments: [{ name: 'preview' }, { name: 'qa' }] } },
    };
    const stepline = scope.cli(
      [
        'start',
        '--port',
        '0',
        '--repo',
        'shop',
        '--repo',
        docs,
        '--param',
        `settings=${JSON.stringify(override)}`,
      ],
      { cwd: scope.root },
    );
    const stateDir = join(scope.root, '.stepline');
    const { match } = await stepline.waitForLine(
      /^stepline is running at (http:\/\/127\.0\.0\.1:\d+) \(state in (.+)\)$/,
      {
        timeoutMs: 60_000,
      },
    );
    const url = match[1] ?? '';
    expect(match[2]).toBe(stateDir);
    // A state folder inside a repository stays out of its commits.
    expect(await readFile(join(stateDir, '.gitignore'), 'utf8')).toBe('*\n');
    expect(await addPrintedRemote(stepline, scope.root, 'local/shop')).toBe(
      join(stateDir, 'git', 'shop.git'),
    );
    expect(await addPrintedRemote(stepline, scope.root, 'local/docs')).toBe(
      join(stateDir, 'git', 'docs.git'),
    );
    await stepline.waitForLine(/^\s+then: git push stepline main /);
    await stepline.waitForLine(/^\s+environments: dev → prod \(after approval\)$/);
    await stepline.waitForLine(/^\s+environments: preview → qa$/);

    // Both pushed at once.
    const [shopPush, docsPush] = await Promise.all([
      git(['push', 'stepline', 'main'], shop),
      git(['push', 'stepline', 'main'], docs),
    ]);
    const shopRun = await stepline.waitForLine(
      new RegExp(`^▶ (\\S+): local/shop main @ ${shopCommit.slice(0, 7)} Shop page`),
    );
    const docsRun = await stepline.waitForLine(
      new RegExp(`^▶ (\\S+): local/docs main @ ${docsCommit.slice(0, 7)} Docs page`),
    );
    const shopName = shopRun.match[1] ?? '';
    const docsName = docsRun.match[1] ?? '';
    expect(shopPush).toContain(`stepline: started ${shopName}`);
    expect(docsPush).toContain(`stepline: started ${docsName}`);

    // docs runs through its own environments while shop waits at its gate: at the same time.
    await stepline.waitForLine(new RegExp(`^✔ ${docsName} SUCCEEDED`), { timeoutMs: 60_000 });
    await stepline.waitForLine(/^\s+⏸ prod waits for approval /, { from: shopRun.index });
    const [pending] = await getJson<PendingApproval[]>(`${url}/api/approvals`, stateDir);
    expect(pending).toMatchObject({
      environment: 'prod',
      executionArn: expect.stringMatching(`:${shopName}$`),
    });
    expect((await getJson<RunDetail>(`${url}/api/runs/${shopName}`, stateDir)).status).toBe('RUNNING');
    const decided = await fetch(pending?.approve ?? '', {
      method: 'POST',
      headers: { ...(await authorized(stateDir)), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ name: 'Ada', comment: 'Shop looks right' }).toString(),
    });
    expect(decided.status).toBe(200);
    await stepline.waitForLine(new RegExp(`^✔ ${shopName} SUCCEEDED`), { timeoutMs: 60_000 });

    const stages = async (name: string) =>
      (await getJson<RunDetail>(`${url}/api/runs/${name}`, stateDir)).builds?.map(
        (b) => `${b.stage} ${b.status}`,
      );
    expect(await stages(shopName)).toEqual([
      'Test SUCCEEDED',
      'Image SUCCEEDED',
      'dev: Infrastructure SUCCEEDED',
      'dev: Deploy SUCCEEDED',
      'prod: Infrastructure SUCCEEDED',
      'prod: Deploy SUCCEEDED',
    ]);
    expect(await stages(docsName)).toEqual([
      'Test SUCCEEDED',
      'Image SUCCEEDED',
      'preview: Infrastructure SUCCEEDED',
      'preview: Deploy SUCCEEDED',
      'qa: Infrastructure SUCCEEDED',
      'qa: Deploy SUCCEEDED',
    ]);
    // What each deploy put in place: the repository's own files, at its own commit, per environment.
    const released = (repository: string, environment: string, file: string) =>
      readFile(join(stateDir, 'deploy', 'environments-of', repository, environment, 'current', file), 'utf8');
    expect(await released('local_shop', 'prod', 'index.html')).toContain('<h1>shop</h1>');
    expect((await released('local_shop', 'prod', 'VERSION')).trim()).toBe(shopCommit.slice(0, 12));
    expect((await released('local_docs', 'qa', 'VERSION')).trim()).toBe(docsCommit.slice(0, 12));
    // The console's runs list (the API it reads) names each run's repository.
    const runs = await getJson<RunSummary[]>(`${url}/api/runs`, stateDir);
    expect(runs.map((run) => [run.name, run.repository]).sort()).toEqual(
      [
        [shopName, 'local/shop'],
        [docsName, 'local/docs'],
      ].sort(),
    );
    const subjects = await outboxSubjects(stateDir);
    expect(subjects).toContain('✔ local/shop main deployed to dev, prod');
    expect(subjects).toContain('✔ local/docs main deployed to preview, qa');
    expect(subjects).toContain(`Approve prod: local/shop main @ ${shopCommit.slice(0, 7)}`);

    // The repository's stepline.json is read from the pushed commit: shop now goes to dev only.
    await writeFile(join(shop, 'stepline.json'), `${JSON.stringify({ environments: [{ name: 'dev' }] })}\n`);
    const devOnly = await commitAll(shop, 'Dev only');
    await git(['push', 'stepline', 'main'], shop);
    const third = await stepline.waitForLine(
      new RegExp(`^▶ (\\S+): local/shop main @ ${devOnly.slice(0, 7)} `),
    );
    await stepline.waitForLine(new RegExp(`^✔ ${third.match[1]} SUCCEEDED`), { timeoutMs: 60_000 });
    expect(await stages(third.match[1] ?? '')).toEqual([
      'Test SUCCEEDED',
      'Image SUCCEEDED',
      'dev: Infrastructure SUCCEEDED',
      'dev: Deploy SUCCEEDED',
    ]);

    // An invalid stepline.json in a push is refused in one line the pusher sees, and starts nothing.
    await writeFile(join(shop, 'stepline.json'), '{"environments":[{"name":"Prod"}]}\n');
    const invalid = await commitAll(shop, 'Invalid settings');
    const refused = await git(['push', 'stepline', 'main'], shop);
    expect(refused).toContain(
      `stepline: the server refused the push of refs/heads/main (HTTP 400): stepline.json of local/shop at ${invalid.slice(0, 7)} is invalid at environments.0.name: `,
    );

    expect(await stepline.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  }, 120_000);

  it("the README's three commands: init, a commit, run --repo --approve; exit 0, and the same commit runs again on a second run", async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-repos-run-', onTestFinished);
    const app = join(scope.root, 'my-app');
    await createApp(app, 'my-app');
    await commitAll(app, 'First page');

    const init = scope.cli(['init', 'my-app'], { cwd: scope.root });
    expect(await init.waitForExit()).toEqual({ code: 0, signal: null });
    await git(['add', 'buildspecs', 'stepline.json'], app);
    await git(['commit', '--quiet', '-m', 'Add stepline'], app);
    const head = (await git(['rev-parse', 'HEAD'], app)).trim();

    const first = scope.cli(['run', '--repo', 'my-app', '--approve', '--port', '0'], { cwd: scope.root });
    expect(await first.waitForExit(60_000), first.output).toEqual({ code: 0, signal: null });
    const name = first.output.match(
      new RegExp(`^▶ (\\S+): local/my-app main @ ${head.slice(0, 7)} Add stepline`, 'm'),
    )?.[1];
    expect(name, first.output).toBeDefined();
    expect(first.output).toMatch(new RegExp(`^✔ ${name} SUCCEEDED in `, 'm'));
    expect(first.output).toMatch(/^\s+✔ prod: Deploy succeeded in /m);

    const second = scope.cli(['run', '--repo', 'my-app', '--approve', '--port', '0'], { cwd: scope.root });
    expect(await second.waitForExit(60_000), second.output).toEqual({ code: 0, signal: null });
    expect(second.output).toContain(
      `${head.slice(0, 7)} ran before as ${name}: running it again as ${name}-r1`,
    );
    expect(second.output).toMatch(new RegExp(`^✔ ${name}-r1 SUCCEEDED in `, 'm'));
  }, 120_000);
});
