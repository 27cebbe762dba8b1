#!/usr/bin/env node
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, type CommanderError, Option } from 'commander';
import { forTerminal } from '#shared/text.ts';
import { describeFailure, parsePort } from './checks.ts';
import type { Client } from './client.ts';
import { enableCompileCache } from './compile-cache.ts';
import type { LocalOptions } from './local.ts';

/**
 * `stepline`, the command line of the local mode (`npm start` is `stepline start`). Commands, options and
 * help are declared with commander; a mistake on the command line, or a failure a person can act on, is
 * one line on stderr starting `stepline:` and a non-zero exit (2 for the command line, 1 otherwise).
 */

enableCompileCache();

// The commands' modules load when a command runs: help and command-line mistakes answer without loading
// the runtime (the AWS SDK, the state machine engine), in a fraction of the time.
const local = () => import('./local.ts');
const starter = () => import('./init.ts');
const remote = () => import('./client.ts');

const PROJECT_DIR = fileURLToPath(new URL('../..', import.meta.url));
const SAMPLE_APP = join(PROJECT_DIR, 'examples', 'hello-service');
const DEFAULT_PORT = 4700;

const PARAM_EXAMPLE = `--param 'triggers={"push":[{"branches":{"includes":["**"]}}]}'   # a run for every branch`;

/** A mistake on the command line as commander found it, with the usage of the command it was made in. */
class CommandLineError extends Error {
  readonly exitCode: number;
  constructor(error: CommanderError, command: Command) {
    const path = command.parent ? `stepline ${command.name()}` : 'stepline';
    super(
      `${error.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ')} (usage: ${path} ${command.usage()}; see ${
        command.parent ? `stepline help ${command.name()}` : 'stepline help'
      })`,
    );
    this.exitCode = error.exitCode;
  }
}

/** Report command-line mistakes through {@link CommandLineError} rather than commander's own print and exit. */
function reportingErrors(command: Command): Command {
  return command
    .exitOverride((error) => {
      throw error.exitCode === 0 ? error : new CommandLineError(error, command);
    })
    .configureOutput({ outputError: () => undefined });
}

const portOption = () =>
  new Option('--port <n>', 'port of the local server (0: any free port)')
    .env('STEPLINE_PORT')
    .default(DEFAULT_PORT)
    .argParser(parsePort);

function localCommand(program: Command, name: string, description: string): Command {
  return reportingErrors(program.command(name).description(description))
    .addOption(portOption())
    .addOption(stateDirOption())
    .addOption(
      new Option(
        '--param <name=value>',
        'a serverless.yml parameter, as serverless deploy --param (repeatable)',
      ).argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
    )
    .addHelpText('after', `\nExample:\n  stepline ${name} ${PARAM_EXAMPLE}`);
}

const stateDirOption = () =>
  new Option('--state-dir <dir>', 'where runs, logs and secrets are kept')
    .env('STEPLINE_STATE_DIR')
    // The current directory's: stepline may be started from anywhere (a global install, another folder).
    .default(resolve('.stepline'), '.stepline in the current directory');

const repoOption = (description: string) =>
  new Option('--repo <path>', description).argParser((value: string, previous: string[] | undefined) => [
    ...(previous ?? []),
    value,
  ]);

function clientCommand(program: Command, nameAndArgs: string, description: string): Command {
  return reportingErrors(program.command(nameAndArgs).description(description))
    .addOption(portOption())
    .addOption(stateDirOption());
}

function localOptions(options: {
  port: number;
  stateDir: string;
  param?: string[];
  repo?: string[];
}): LocalOptions {
  return {
    projectDir: PROJECT_DIR,
    sampleApp: SAMPLE_APP,
    port: options.port,
    stateDir: options.stateDir,
    params: options.param ?? [],
    repos: options.repo ?? [],
  };
}

function client(options: { port: number; stateDir: string }): Client {
  return {
    apiUrl: `http://127.0.0.1:${options.port}`,
    stateDir: options.stateDir,
    print: (line) => process.stdout.write(`${forTerminal(line)}\n`),
  };
}

function program(): Command {
  const stepline = reportingErrors(new Command('stepline'))
    .usage('<command> [options]')
    .description(
      'Runs the stepline pipeline on this machine: the same state machine, Lambda handlers and buildspecs as on AWS.\nWith no command, `stepline start`.',
    )
    .helpCommand('help [command]', 'help for a command');

  localCommand(
    stepline,
    'start',
    'run stepline locally: server, pipeline and console at http://127.0.0.1:4700, until Ctrl-C',
  )
    .addOption(
      repoOption(
        'a git repository of yours: a local remote whose pushes run its own buildspecs (repeatable; default: the sample app)',
      ),
    )
    .action(async (options) => (await local()).start(localOptions(options)));
  localCommand(
    stepline,
    'run',
    'push the sample app (or --repo), run the pipeline to its end, stop; exit 0 if the run succeeded',
  )
    .addOption(repoOption('a git repository of yours: run its HEAD on its own buildspecs'))
    .option('--approve', 'approve the run when it waits for an approval', false)
    .action((options) =>
      local().then((l) => l.runOnce({ ...localOptions(options), approve: options.approve })),
    );

  reportingErrors(
    stepline
      .command('init [path]')
      .description(
        'write starter buildspecs (test, image, infrastructure, deploy) and a stepline.json into a repository',
      ),
  )
    .option('--force', 'overwrite the files that are already there', false)
    .action((path: string | undefined, options: { force: boolean }) =>
      starter().then((s) =>
        s.init({
          path: path ?? '.',
          force: options.force,
          print: (line) => process.stdout.write(`${forTerminal(line)}\n`),
        }),
      ),
    );

  clientCommand(stepline, 'runs', 'list the runs of a running stepline').action((options) =>
    remote().then((c) => c.listRuns(client(options))),
  );
  clientCommand(
    stepline,
    'environments',
    'each environment of each branch: the commit and run it runs, who holds it, who waits',
  ).action((options) => remote().then((c) => c.listEnvironments(client(options))));
  clientCommand(stepline, 'show <run>', 'one run: status, stages, approval, where it deployed').action(
    (run: string, options) => remote().then((c) => c.showRun(client(options), run)),
  );
  clientCommand(stepline, 'logs <run>', "the run's build logs")
    .option('-f, --follow', 'keep printing until the run ends', false)
    .action((run: string, options) =>
      remote().then((c) => c.showLogs(client(options), run, { follow: options.follow })),
    );
  clientCommand(stepline, 'approve <run>', 'approve the run that waits for an approval')
    .option('--name <name>', 'who approves')
    .option('--comment <text>', 'why')
    .action((run: string, options) =>
      remote().then((c) => c.decideRun(client(options), run, { approve: true, ...options })),
    );
  clientCommand(stepline, 'reject <run>', 'reject the run that waits for an approval')
    .option('--name <name>', 'who rejects')
    .requiredOption('--comment <text>', 'why (required)')
    .action((run: string, options) =>
      remote().then((c) => c.decideRun(client(options), run, { approve: false, ...options })),
    );
  clientCommand(
    stepline,
    'redrive <run>',
    'go on with a failed, timed-out or stopped run from the state that failed, under the same name',
  ).action((run: string, options) => remote().then((c) => c.redriveRun(client(options), run)));
  clientCommand(
    stepline,
    'restart <run>',
    'start a new run of the same commit and input, under a new name',
  ).action((run: string, options) => remote().then((c) => c.restartRun(client(options), run)));
  clientCommand(
    stepline,
    'rollback <env>',
    "redeploy an environment's previous deployment (or --to's) from its recorded image, after its approval",
  )
    .option(
      '--to <run|commit>',
      'the run or commit (7+ digits) to go back to (default: the previous deployment)',
    )
    .option('--repo <name>', 'the repository whose line to roll back, when several deployed the environment')
    .option('--infrastructure', "run the environment's Infrastructure at that commit too", false)
    .action((environment: string, options) =>
      remote().then((c) =>
        c.rollback(client(options), environment, {
          to: options.to,
          repo: options.repo,
          infrastructure: options.infrastructure,
        }),
      ),
    );
  clientCommand(
    stepline,
    'teardown <env>',
    "tear one environment of a repository down (the teardown state machine, from its latest run's commit)",
  )
    .option(
      '--repo <path or owner/name>',
      'the repository whose environment to tear down (default: the only one with runs, else the sample app)',
    )
    .action((environment: string, options) =>
      remote().then((c) => c.teardown(client(options), environment, options.repo)),
    );
  return stepline;
}

/** `stepline` alone, or with options only, is `stepline start`. */
function withDefaultCommand(args: string[]): string[] {
  const [first] = args;
  if (first === undefined) return ['start'];
  if (first.startsWith('-') && first !== '-h' && first !== '--help') return ['start', ...args];
  return args;
}

try {
  await program().parseAsync(withDefaultCommand(process.argv.slice(2)), { from: 'user' });
} catch (error) {
  // Help asked for (`--help`, `stepline help run`) was printed: that is a success.
  if ((error as Partial<CommanderError>).exitCode === 0 && (error as Error).name === 'CommanderError')
    process.exit(0);
  if (error instanceof CommandLineError) {
    process.stderr.write(`stepline: ${forTerminal(error.message)}\n`);
    process.exit(2);
  }
  const failure = describeFailure(error);
  process.stderr.write(`${forTerminal(failure.text)}\n`);
  // Exit now: a runtime that failed half-way through its start may hold timers or files open.
  process.exit(failure.exitCode);
}
