import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freeDeployPortBase, LocalTestScope, PROJECT_DIR, processesOf } from '../helpers/local-process.ts';
import { breakSampleApp, copySampleApp } from '../helpers/sample-app.ts';

interface OutboxMessage {
  topic: string;
  subject: string;
  body: string;
}

describe('a push whose tests fail', () => {
  it('fails at the Test stage, naming the failed test and the build log, deploys nothing and makes `run` exit non-zero', async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-e2e-failing-', onTestFinished);
    const { stateDir } = scope;
    const brokenApp = await copySampleApp(join(scope.root, 'broken-app'));
    await breakSampleApp(brokenApp);

    const stepline = scope.cli(['run', '--approve', '--port', '0', '--state-dir', stateDir], {
      env: { STEPLINE_SAMPLE_APP: brokenApp, STEPLINE_DEPLOY_PORT_BASE: String(await freeDeployPortBase()) },
    });
    const exit = await stepline.waitForExit(30_000);

    // `run` exits 1 and names the failed stage, with its log.
    expect(exit, stepline.output).toEqual({ code: 1, signal: null });
    const failedAt = stepline.lines.indexOf('✖ run failed:');
    expect(failedAt, stepline.output).toBeGreaterThan(-1);
    const failure = stepline.lines[failedAt + 1] ?? '';
    expect(failure).toMatch(
      /^\s+✖ Test FAILED in .* — BUILD: Error while executing command: node --test --test-reporter=spec /,
    );
    const logPath = /\(log: (\S+)\)$/.exec(failure)?.[1] ?? '';
    // The terminal names logs relative to the folder stepline runs in.
    const log = await readFile(resolve(PROJECT_DIR, logPath), 'utf8');
    expect(log).toContain('Running command node --test');
    expect(log).toMatch(/not ok \d+|✖ answers/);

    // The failure notification names the stage and links to that build's log.
    const outbox = join(stateDir, 'outbox');
    const messages: OutboxMessage[] = await Promise.all(
      (await readdir(outbox))
        .filter((file) => file.endsWith('.json'))
        .sort()
        .map(async (file) => JSON.parse(await readFile(join(outbox, file), 'utf8'))),
    );
    const failed = messages.find((m) => m.subject.startsWith('✖ local/hello-service main failed at Test'));
    expect(failed, messages.map((m) => m.subject).join('\n')).toBeDefined();
    expect(failed?.subject).toMatch(/failed at Test: \d+ passed, 1 failed$/);
    expect(failed?.body).toContain('Stage: Test');
    // The failed test, by its suite and name, with its message.
    expect(failed?.body).toMatch(
      /^ {2}✖ hello-service › answers \/health with 200, the environment and the version: \S/m,
    );
    const link = /^Build log: (http:\/\/127\.0\.0\.1:\d+\/api\/builds\/(\S+)\/log)$/m.exec(
      failed?.body ?? '',
    );
    expect(link, failed?.body).not.toBeNull();
    const buildId = decodeURIComponent(link?.[2] ?? '');
    expect(buildId).toMatch(/^stepline-local-test:[0-9a-f-]{36}$/);
    // The log file the terminal named is that build's.
    expect(logPath).toContain(buildId.replace(':', '_'));

    // Nothing went further: no environment prepared, no deploy build, no approval asked.
    const builds = await readdir(join(stateDir, 'builds'));
    expect(builds).toHaveLength(1);
    expect(builds[0]).toMatch(/^stepline-local-test_/);
    expect(await readdir(join(stateDir, 'deploy'))).not.toContain('environments');
    expect(messages.some((m) => m.topic === 'approvals')).toBe(false);
    expect(stepline.output).not.toMatch(/prod/);
    const [name] = await readdir(join(stateDir, 'executions'));
    const record = JSON.parse(
      await readFile(join(stateDir, 'executions', name ?? '', 'execution.json'), 'utf8'),
    ) as { status: string; error: string };
    expect(record).toMatchObject({ status: 'FAILED', error: 'Pipeline.StageFailed' });
    expect(await processesOf(stateDir)).toEqual([]);
  }, 60_000);
});
