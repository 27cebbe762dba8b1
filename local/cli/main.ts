#!/usr/bin/env node
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createLocalRemote, pushSampleApp } from '#local/git/remote.ts';
import { startServer } from '#local/http/server.ts';
import { type RunDetail, type RunSummary, runOrigin } from '#local/runs/read-model.ts';
import type { RuntimeEvent } from '#local/runs/runtime-event.ts';
import { LocalRuntime } from '#local/runtime.ts';
import { ConfigurationError } from '#shared/errors.ts';
import { terminalLine } from './terminal.ts';

const PROJECT_DIR = fileURLToPath(new URL('../..', import.meta.url));
const SAMPLE_APP = join(PROJECT_DIR, 'examples', 'hello-service');
const DEFAULT_PORT = 4700;

const USAGE = `Usage: stepline <command> [options]

  start                 run stepline locally (the default): server, pipeline, console at http://127.0.0.1:4700
  run [--approve]       push the sample app, run the pipeline to its end, stop; exit 0 on success
  runs                  list runs
  show <run>            one run: status, stages, approval, where it deployed
  logs <run> [--follow] the run's build logs
  approve <run> [--name N] [--comment C]
  reject <run> [--name N] --comment C
  restart <run>         start an interrupted or finished run again
  teardown <env>        tear one environment down (the teardown state machine, from the latest run's commit)

Options: --port N (or STEPLINE_PORT), --state-dir DIR (or STEPLINE_STATE_DIR; default .stepline),
         --param name=value (serverless.yml parameters, e.g. --param 'triggers={"push":[{"branches":{"includes":["**"]}}]}')`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string' },
    'state-dir': { type: 'string' },
    approve: { type: 'boolean', default: false },
    follow: { type: 'boolean', short: 'f', default: false },
    name: { type: 'string' },
    comment: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
    param: { type: 'string', multiple: true, default: [] },
  },
});

const port = Number(values.port ?? process.env.STEPLINE_PORT ?? DEFAULT_PORT);
const stateDir = values['state-dir'] ?? process.env.STEPLINE_STATE_DIR ?? join(PROJECT_DIR, '.stepline');
const apiUrl = `http://127.0.0.1:${port}`;

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

function fail(message: string): never {
  process.stderr.write(`stepline: ${message}\n`);
  process.exit(1);
}

/** Starts the server and the runtime; returns them with a function that stops everything. */
async function boot(report: (event: RuntimeEvent) => void) {
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    fail(`--port must be a port number, not ${values.port}`);
  const server = await startServer({ port }).catch((error: NodeJS.ErrnoException) =>
    fail(
      error.code === 'EADDRINUSE'
        ? `port ${port} is in use (is stepline already running?); choose another with --port or STEPLINE_PORT`
        : error.message,
    ),
  );
  await mkdir(stateDir, { recursive: true });
  const runtime = await LocalRuntime.start({
    projectDir: PROJECT_DIR,
    stateDir,
    baseUrl: server.url,
    report,
    params: values.param,
  }).catch((error: Error) =>
    error instanceof ConfigurationError ? fail(error.message) : Promise.reject(error),
  );
  server.attach(runtime);
  for (const note of runtime.store.recoveryReport.notes) print(`stepline: ${note}`);
  let stopping: Promise<void> | undefined;
  const stop = (reason?: string) => {
    stopping ??= (async () => {
      await runtime.stop(reason);
      await server.close();
    })();
    return stopping;
  };
  return { server, runtime, stop };
}

async function remoteFor(serverUrl: string) {
  const remote = await createLocalRemote({
    stateDir,
    name: 'hello-service',
    webhookUrl: `${serverUrl}/webhooks/github`,
  });
  const fresh = await access(join(remote.remotePath, 'refs', 'heads', 'main')).then(
    () => false,
    () => true,
  );
  return { ...remote, fresh };
}

async function start(): Promise<void> {
  const { server, runtime, stop } = await boot((event) => {
    const line = terminalLine(event, process.cwd());
    if (line) print(line);
    if (event.kind === 'execution' && event.record.status === 'SUCCEEDED') {
      const answers = Object.entries(runtime.deployments(event.record.executionArn));
      if (answers.length > 0)
        print(`  now answering: ${answers.map(([env, url]) => `${env} ${url}`).join(' · ')}`);
    }
  });
  const onSignal = () => {
    print('\nstepline: stopping runs and the services they started…');
    void stop('stepline was stopped (Ctrl-C) while this run was in flight').then(() => process.exit(0));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  print(`stepline is running at ${server.url} (state in ${stateDir})`);
  const remote = await remoteFor(server.url);
  print(`git remote of the sample app: ${remote.remotePath}`);
  print(
    `  git clone ${remote.remotePath} hello-service && cd hello-service && … && git push   # starts a run`,
  );
  if (remote.fresh) {
    print('Pushing the sample application (examples/hello-service)…');
    await pushSampleApp({
      remotePath: remote.remotePath,
      workDir: join(stateDir, 'checkout'),
      sourceDir: SAMPLE_APP,
    });
  }
  print(
    `${runtime.store.executions().length} run(s) so far; Ctrl-C stops stepline and everything it started.`,
  );
}

async function runOnce(): Promise<void> {
  let commit: string | undefined;
  let target: string | undefined;
  const failedStages = new Map<string, string>();
  const { promise: finished, resolve } = Promise.withResolvers<{ status: string; executionArn: string }>();
  const { server, runtime, stop } = await boot((event) => {
    const line = terminalLine(event, process.cwd());
    if (line) print(line);
    if (event.kind === 'execution') {
      const origin = runOrigin(event.record.input);
      if (event.record.status === 'RUNNING' && origin.commit === commit) target = event.record.executionArn;
      if (event.record.executionArn === target && event.record.status !== 'RUNNING') resolve(event.record);
    }
    if (
      event.kind === 'build' &&
      event.event.kind === 'state' &&
      !['IN_PROGRESS', 'SUCCEEDED'].includes(event.event.status)
    ) {
      if (event.executionArn) failedStages.set(event.executionArn, terminalLine(event, process.cwd()) ?? '');
    }
    if (event.kind === 'approval' && event.approval.executionArn === target) {
      if (values.approve)
        void decide(event.approval.approve, 'stepline run --approve', 'Approved by stepline run --approve');
      else
        print('  (waiting: approve with `npx stepline approve <run>` in another terminal, or use --approve)');
    }
  });
  // As `start` does: Ctrl-C stops the run and the services it deployed, rather than leaving them running.
  const onSignal = (signal: NodeJS.Signals) => {
    print(`\nstepline: ${signal}: stopping the run and the services it started…`);
    void stop('stepline run was stopped (Ctrl-C) while this run was in flight').then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const remote = await remoteFor(server.url);
    const pushed = await pushSampleApp({
      remotePath: remote.remotePath,
      workDir: join(stateDir, 'checkout'),
      sourceDir: process.env.STEPLINE_SAMPLE_APP ?? SAMPLE_APP,
      message: `stepline run at ${new Date().toISOString()}`,
    });
    commit = pushed.commit;
    // The hook may have started the run before `commit` was known here.
    target ??= runtime.store.executions().find((r) => runOrigin(r.input).commit === commit)?.executionArn;
    if (!target) fail(`the push of ${commit} started no run:\n${pushed.output}`);
    const done = runtime.store.execution(target);
    const result = done && done.status !== 'RUNNING' ? done : await finished;
    const deployments = runtime.deployments(result.executionArn);
    for (const [environment, url] of Object.entries(deployments))
      print(`  ${environment} answered at ${url}`);
    if (result.status !== 'SUCCEEDED') {
      print(
        `✖ run failed${failedStages.get(result.executionArn) ? `:\n${failedStages.get(result.executionArn)}` : ''}`,
      );
      process.exitCode = 1;
    }
  } finally {
    await stop();
  }
}

/** Decides an approval the way a person does: open the link (GET), then confirm (POST). */
async function decide(link: string, name: string | undefined, comment: string | undefined): Promise<void> {
  const page = await fetch(link);
  if (!page.ok)
    fail(
      `the approval link answered ${page.status}: ${(await page.text())
        .replace(/<[^>]+>/g, ' ')
        .trim()
        .slice(0, 300)}`,
    );
  const form = new URLSearchParams();
  if (name) form.set('name', name);
  if (comment) form.set('comment', comment);
  const answer = await fetch(link, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: form.toString(),
  });
  const text = (await answer.text())
    .replace(/<style[\s\S]*?<\/style>/g, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ');
  if (!answer.ok) fail(`the decision was refused (${answer.status}): ${text.trim().slice(0, 300)}`);
  print(`  decided: ${text.trim().slice(0, 160)}`);
}

async function api<T>(path: string, init?: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${apiUrl}${path}`, init);
  } catch {
    fail(`stepline is not running at ${apiUrl}: start it with npm start`);
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) fail((body as { message?: string }).message ?? `HTTP ${response.status}`);
  return body as T;
}

async function client(command: string, run: string | undefined): Promise<void> {
  if (command === 'runs') {
    const runs = await api<RunSummary[]>('/api/runs');
    if (runs.length === 0) print('No runs yet.');
    for (const r of runs) {
      print(
        `${r.status.padEnd(11)} ${r.name}  ${r.repository ?? ''} ${r.ref ?? ''} ${r.commit?.slice(0, 7) ?? ''}  ${r.startDate}`,
      );
    }
    return;
  }
  if (command === 'teardown') {
    if (!run) fail('teardown needs an environment name, e.g. `stepline teardown dev`');
    const started = await api<{ name: string }>(`/api/teardown/${encodeURIComponent(run)}`, {
      method: 'POST',
    });
    print(`started ${started.name}`);
    return;
  }
  if (!run) fail(`${command} needs a run name: see \`stepline runs\``);
  const r = await api<RunDetail>(`/api/runs/${encodeURIComponent(run)}`);
  if (command === 'show') {
    print(`${r.name}: ${r.status}  ${r.repository ?? ''} ${r.ref ?? ''} @ ${r.commit?.slice(0, 7) ?? ''}`);
    print(`  started ${r.startDate}${r.stopDate ? `, ended ${r.stopDate}` : ''}`);
    if (r.error) print(`  ${r.error}: ${r.cause ?? ''}`);
    if (r.approval) print(`  waiting for approval of ${r.approval.environment}: ${r.approval.approve}`);
    for (const [environment, url] of Object.entries(r.deployments)) print(`  ${environment}: ${url}`);
    for (const build of r.builds ?? [])
      print(`  ${build.status.padEnd(11)} ${build.stage}  log: ${build.logPath}`);
  } else if (command === 'approve' || command === 'reject') {
    if (!r.approval) fail(`${r.name} is not waiting for an approval (status ${r.status})`);
    if (command === 'reject' && !values.comment) fail('reject needs --comment saying why');
    await decide(command === 'approve' ? r.approval.approve : r.approval.reject, values.name, values.comment);
  } else if (command === 'restart') {
    const restarted = await api<RunSummary>(`/api/runs/${encodeURIComponent(run)}/restart`, {
      method: 'POST',
    });
    print(`started ${restarted.name}`);
  } else if (command === 'logs') {
    await logs(run, r);
  } else {
    fail(`unknown command ${command}\n${USAGE}`);
  }
}

async function logs(run: string, first: RunDetail): Promise<void> {
  const offsets = new Map<string, number>();
  let current = first;
  for (;;) {
    for (const build of current.builds ?? []) {
      const offset = offsets.get(build.id) ?? 0;
      const response = await fetch(
        `${apiUrl}/api/builds/${encodeURIComponent(build.id)}/log?offset=${offset}`,
      );
      if (!response.ok) continue;
      const text = await response.text();
      if (offset === 0) print(`── ${build.stage} (${build.id})`);
      if (text) process.stdout.write(text);
      offsets.set(build.id, offset + Buffer.byteLength(text));
    }
    if (!values.follow || current.status !== 'RUNNING') return;
    await new Promise((resolve) => setTimeout(resolve, 500));
    current = await api<RunDetail>(`/api/runs/${encodeURIComponent(run)}`);
  }
}

const [command = 'start', run] = positionals;
if (values.help) print(USAGE);
else if (command === 'start') await start();
else if (command === 'run') await runOnce();
else await client(command, run);
