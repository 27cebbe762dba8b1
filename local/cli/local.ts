import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { git } from '#local/git/command.ts';
import { createLocalRemote, pushSampleApp, SAMPLE_APP_REMOTE } from '#local/git/remote.ts';
import {
  checkBuildspecs,
  checkCommittedBuildspecs,
  inspectRepository,
  type LocalRepository,
  workTreeSettingsFile,
} from '#local/git/repositories.ts';
import { consoleUrlWithToken } from '#local/http/control-token.ts';
import { startServer } from '#local/http/server.ts';
import { runOrigin } from '#local/runs/read-model.ts';
import type { RuntimeEvent } from '#local/runs/runtime-event.ts';
import { LocalRuntime } from '#local/runtime.ts';
import { isNotFound, writeFileAtomic } from '#local/state/atomic-file.ts';
import { SteplineError } from '#shared/errors.ts';
import { forTerminal } from '#shared/text.ts';
import { checkGit, checkParams, explainListenError, UsageError } from './checks.ts';
import { decide } from './client.ts';
import { flushCompileCache } from './compile-cache.ts';
import { terminalLine } from './terminal.ts';

/**
 * The commands that run stepline itself on this machine: `start` (the server, the pipeline and the
 * console, until Ctrl-C) and `run` (one push of the sample app, run to its end).
 */

/** What `start` and `run` are given: where the project is, the port, the state folder, the parameters. */
export interface LocalOptions {
  projectDir: string;
  sampleApp: string;
  port: number;
  stateDir: string;
  params: string[];
  /** `--repo` folders: the person's own repositories, run on their own buildspecs (none: the sample app). */
  repos: string[];
}

function print(line: string): void {
  process.stdout.write(`${forTerminal(line)}\n`);
}

/**
 * Checks what can be checked before anything starts (the parameters' form, git), then starts the server
 * (which fails at once on a port in use) and the runtime (which checks the parameters' values and locks
 * the state folder), and returns them with a function that stops everything. Nothing has said "running"
 * yet: a failure here is the command's failure, printed as one line.
 */
async function boot(options: LocalOptions, report: (event: RuntimeEvent) => void) {
  const params = checkParams(options.params);
  await checkGit();
  const server = await startServer({ port: options.port }).catch((error: NodeJS.ErrnoException) => {
    throw explainListenError(error, options.port);
  });
  let runtime: LocalRuntime;
  try {
    // Only the operator may enter the state folder; the runtime tightens one made by an older version.
    await mkdir(options.stateDir, { recursive: true, mode: 0o700 });
    // Started inside a repository (the default state folder is the current directory's), the state folder
    // and its secrets stay out of that repository's commits.
    await writeFile(join(options.stateDir, '.gitignore'), '*\n', { flag: 'wx', mode: 0o600 }).catch(
      (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      },
    );
    runtime = await LocalRuntime.start({
      projectDir: options.projectDir,
      stateDir: options.stateDir,
      baseUrl: server.url,
      report,
      params,
    });
  } catch (error) {
    await server.close();
    throw error;
  }
  server.attach(runtime);
  for (const note of runtime.store.recoveryReport.notes) print(`stepline: ${note}`);
  if (runtime.sandbox.note) print(`stepline: ${runtime.sandbox.note}`);
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

/** The `--repo` folders as repositories: each a git work tree, no two with one remote name. */
async function inspectRepositories(paths: string[]): Promise<LocalRepository[]> {
  const repositories = await Promise.all(paths.map(inspectRepository));
  const byName = new Map<string, LocalRepository>();
  for (const repository of repositories) {
    const same = byName.get(repository.name);
    if (same && same.path === repository.path) continue;
    if (same) {
      throw new SteplineError(
        `--repo ${same.path} and ${repository.path} would share the remote ${repository.name}.git: rename one folder`,
      );
    }
    byName.set(repository.name, repository);
  }
  return [...byName.values()];
}

/**
 * Checks each repository against the settings it would run with (its override, its stepline.json as it
 * is in its work tree): a buildspec for every stage. One line naming the repository when not.
 */
async function checkRepositories(
  runtime: LocalRuntime,
  repositories: LocalRepository[],
  { committed = false } = {},
): Promise<void> {
  for (const repository of repositories) {
    const file = await workTreeSettingsFile(repository);
    const settings = runtime.repositorySettings(repository.fullName, file);
    await checkBuildspecs(repository, settings);
    // A one-shot run pushes HEAD: what is only in the work tree does not run.
    if (committed) await checkCommittedBuildspecs(repository, settings);
  }
}

/** Creates (or points at this server again) the local remote of one of the person's repositories. */
async function repositoryRemote(options: LocalOptions, serverUrl: string, repository: LocalRepository) {
  return createLocalRemote({
    stateDir: options.stateDir,
    name: repository.name,
    fullName: repository.fullName,
    defaultBranch: repository.branch,
    webhookUrl: `${serverUrl}/webhooks/github`,
  });
}

/** Says how to push a repository to its local remote: the one `git remote add` (or that it is there). */
async function printRemote(repository: LocalRepository, remotePath: string): Promise<void> {
  const shown = relative(process.cwd(), repository.path) || '.';
  const current = await git(['remote', 'get-url', 'stepline'], repository.path).then(
    (result) => result.stdout.trim(),
    () => undefined,
  );
  print(`${repository.fullName}: local remote ${remotePath}`);
  if (current === remotePath) print(`  (${shown} has it as its remote "stepline")`);
  else if (current === undefined) print(`  cd ${shown} && git remote add stepline ${remotePath}`);
  else print(`  cd ${shown} && git remote set-url stepline ${remotePath}   # "stepline" named ${current}`);
  print(
    `  then: git push stepline ${repository.branch}   # each push runs the pipeline on its own buildspecs`,
  );
}

/**
 * Pushes the repository's HEAD to its local remote, on its branch (forced: the remote is stepline's own
 * copy; the person's hooks do not run). Resolves with the commit and git's output (the hook's lines).
 */
async function pushRepository(repository: LocalRepository, remotePath: string) {
  const head = await git(['rev-parse', '--verify', '-q', 'HEAD^{commit}'], repository.path).catch(
    () => undefined,
  );
  if (!head) {
    throw new SteplineError(
      `${repository.fullName} (${repository.path}) has no commit yet: commit its files, then run again`,
    );
  }
  const pushed = await git(
    ['push', '--porcelain', '--no-verify', '--force', remotePath, `HEAD:refs/heads/${repository.branch}`],
    repository.path,
  );
  return { commit: head.stdout.trim(), output: `${pushed.stderr}${pushed.stdout}` };
}

async function remoteFor(options: LocalOptions, serverUrl: string) {
  const remote = await createLocalRemote({
    stateDir: options.stateDir,
    name: SAMPLE_APP_REMOTE.name,
    webhookUrl: `${serverUrl}/webhooks/github`,
  });
  const fresh = await access(join(remote.remotePath, 'refs', 'heads', 'main')).then(
    () => false,
    () => true,
  );
  return { ...remote, fresh };
}

/** The sample app's remote, said in the terminal, and pushed once when it is new. */
async function startSampleApp(options: LocalOptions, serverUrl: string): Promise<void> {
  const remote = await remoteFor(options, serverUrl);
  await addSampleParameters(options.stateDir, options.sampleApp);
  print(`git remote of the sample app: ${remote.remotePath}`);
  print(
    `  git clone ${remote.remotePath} hello-service && cd hello-service && … && git push   # starts a run`,
  );
  if (remote.fresh) {
    print('Pushing the sample application (examples/hello-service)…');
    await pushSampleApp({
      remotePath: remote.remotePath,
      workDir: join(options.stateDir, 'checkout'),
      sourceDir: options.sampleApp,
    });
  }
}

/** `stepline start`: runs until SIGINT or SIGTERM, which stop the runs in flight and what they deployed. */
export async function start(options: LocalOptions): Promise<void> {
  const repositories = await inspectRepositories(options.repos);
  const { server, runtime, stop } = await boot(options, (event) => {
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
  try {
    await checkRepositories(runtime, repositories);
    print(`stepline is running at ${server.url} (state in ${options.stateDir})`);
    // The one place the token is shown: opening this URL signs the browser in (a cookie) and drops it.
    print(`  console: ${consoleUrlWithToken(server.url, runtime.controlToken)}`);
    flushCompileCache();
    for (const repository of repositories) {
      const { remotePath } = await repositoryRemote(options, server.url, repository);
      await printRemote(repository, remotePath);
      // What its pushes will run through, as its stepline.json (work tree) and its override make it.
      const { environments } = runtime.repositorySettings(
        repository.fullName,
        await workTreeSettingsFile(repository),
      );
      print(
        `  environments: ${environments.map((e) => (e.approval ? `${e.name} (after approval)` : e.name)).join(' → ')}`,
      );
    }
    // Without --repo, the sample app: its remote, pushed once when new.
    if (repositories.length === 0) await startSampleApp(options, server.url);
    print(
      `${runtime.store.executions().length} run(s) so far; Ctrl-C stops stepline and everything it started.`,
    );
  } catch (error) {
    // Nothing is left running behind a failed start.
    await stop('stepline failed to start');
    throw error;
  }
}

/**
 * `stepline run [--approve]`: pushes the sample app, follows the run it starts to its end, stops; the exit
 * code is 0 when the run succeeded, 1 otherwise.
 */
export async function runOnce(options: LocalOptions & { approve: boolean }): Promise<void> {
  if (options.repos.length > 1) throw new UsageError('run takes one --repo (start takes several)');
  const [repository] = await inspectRepositories(options.repos);
  let commit: string | undefined;
  let target: string | undefined;
  const failedStages = new Map<string, string>();
  const { promise: finished, resolve } = Promise.withResolvers<{ status: string; executionArn: string }>();
  const { server, runtime, stop } = await boot(options, (event) => {
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
      if (options.approve)
        void decide(
          { print },
          event.approval.approve,
          { name: 'stepline run --approve', comment: 'Approved by stepline run --approve' },
          { authorization: `Bearer ${runtime.controlToken}` },
        ).catch((error: Error) => {
          // The run cannot end without its approval: stop it and what it deployed, and say why.
          process.stderr.write(`stepline: ${forTerminal(error.message)}\n`);
          void stop('stepline run --approve could not approve this run').then(() => process.exit(1));
        });
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
    let pushed: { commit: string; output: string };
    if (repository) {
      await checkRepositories(runtime, [repository], { committed: true });
      pushed = await pushRepository(
        repository,
        (await repositoryRemote(options, server.url, repository)).remotePath,
      );
    } else {
      const remote = await remoteFor(options, server.url);
      const sampleApp = process.env.STEPLINE_SAMPLE_APP ?? options.sampleApp;
      await addSampleParameters(options.stateDir, sampleApp);
      pushed = await pushSampleApp({
        remotePath: remote.remotePath,
        workDir: join(options.stateDir, 'checkout'),
        sourceDir: sampleApp,
        message: `stepline run at ${new Date().toISOString()}`,
      });
    }
    commit = pushed.commit;
    const startedName = /stepline: started (\S+)/.exec(pushed.output)?.[1];
    // The hook may have started the run before `commit` was known here.
    if (startedName) target ??= runtime.store.execution(startedName)?.executionArn;
    const earlier = runtime.store
      .executions()
      .find((r) => r.stateMachine === 'pipeline' && runOrigin(r.input).commit === commit);
    if (!startedName && repository && earlier) {
      // This commit ran before (the remote had it already): a one-shot run runs it again.
      const again = await runtime.operations.restart(earlier.name);
      print(`  ${commit.slice(0, 7)} ran before as ${earlier.name}: running it again as ${again.name}`);
      target = again.executionArn;
    }
    target ??= earlier?.executionArn;
    if (!target) throw new SteplineError(`the push of ${commit} started no run: ${pushed.output}`);
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

/**
 * Adds the sample app's parameters (its `parameters.json`) to the local Parameter Store
 * (`.stepline/parameters.json`), each one only when it is not there yet: a value the operator set (to make a
 * health check fail, then pass again) is kept across starts.
 */
async function addSampleParameters(stateDir: string, sampleApp: string): Promise<void> {
  const read = async (path: string): Promise<Record<string, string>> => {
    try {
      return JSON.parse(await readFile(path, 'utf8')) as Record<string, string>;
    } catch (error) {
      if (isNotFound(error)) return {};
      throw new SteplineError(`${path} is not valid JSON: ${(error as Error).message}`);
    }
  };
  const defaults = await read(join(sampleApp, 'parameters.json'));
  const path = join(stateDir, 'parameters.json');
  const current = await read(path);
  const missing = Object.keys(defaults).filter((name) => !(name in current));
  if (missing.length === 0) return;
  await writeFileAtomic(path, `${JSON.stringify({ ...defaults, ...current }, null, 2)}\n`);
}
