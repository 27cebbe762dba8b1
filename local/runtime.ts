import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { StageFailedError } from '#shared/errors.ts';
import type { Logger } from '#shared/logger.ts';
import { createLogger, type LogLevel } from '#shared/logger.ts';
import { ExecutionInputSchema, type PipelineSettings } from '#shared/pipeline.ts';
import type {
  Notification,
  PipelineStarter,
  RunStatusReader,
  RunStopper,
  StartPipelineResult,
  TaskDecider,
} from '#shared/ports.ts';
import { WEBHOOK_PROVIDERS, type WebhookProvider } from '#shared/push.ts';
import { endRun, type LineView, viewOf, waitingFor } from '#shared/release.ts';
import { ReleaseLedger } from '#shared/release-ledger.ts';
import { settingsForRepository } from '#shared/repository-settings.ts';
import { forTerminal } from '#shared/text.ts';
import { allowedHostVariables } from './codebuild/build-variables.ts';
import { deployDirOf, stopDeployedServices } from './codebuild/deployed-services.ts';
import { chooseSandbox, type Sandbox, type SandboxMode, sandboxMode } from './codebuild/sandbox.ts';
import { type BuildEvent, LocalCodeBuild, type StartBuildInput } from './codebuild/service.ts';
import { LocalEventBus } from './eventbridge/bus.ts';
import { codeBuildEvent, type EventOrigin, executionEvent } from './eventbridge/envelopes.ts';
import { pushedRepositorySettings } from './git/repositories.ts';
import { createControlToken } from './http/control-token.ts';
import { type FunctionConfiguration, functionConfiguration } from './lambda/configuration.ts';
import { LOCAL_ACCOUNT } from './lambda/context.ts';
import { LocalLambda, lambdaInvokeResult, type RouteMatch } from './lambda/host.ts';
import { composeHandlers, type LocalPorts, registeredFunctions } from './lambda/registry.ts';
import { type LocalSecrets, loadSecrets, localStatusTokens } from './lambda/secrets.ts';
import { RunOperations } from './runs/operations.ts';
import type { PendingApproval, RunBuild } from './runs/read-model.ts';
import { RunLedger } from './runs/run-ledger.ts';
import type { RuntimeEvent } from './runs/runtime-event.ts';
import { testOutcomeInHistory } from './runs/test-outcome.ts';
import { PRIVATE_DIR_MODE } from './state/permissions.ts';
import { LocalLineStore } from './state/release-lines.ts';
import { type ExecutionRecord, LocalStore } from './state/store.ts';
import { LocalStepFunctions, type TaskBinding } from './stepfunctions/engine.ts';
import { validateMachines } from './stepfunctions/validation.ts';
import { readWiring, resolveReferences, type Wiring } from './wiring.ts';

export interface RuntimeOptions {
  projectDir: string;
  stateDir: string;
  /** The local server's base URL, e.g. http://127.0.0.1:4700 (approval links point there). */
  baseUrl: string;
  /** Told of everything worth a line in the terminal. */
  report?: (event: RuntimeEvent) => void;
  /** The wiring, when already read (tests reuse one). */
  wiring?: Wiring;
  /** serverless.yml parameters (`triggers={…}`, `settings={…}`), as `serverless deploy --param`. */
  params?: string[];
  /** Whether builds run in bubblewrap when it is installed (`auto`, the default) or never (`off`). */
  sandbox?: SandboxMode;
}

/**
 * The local mode's composition root: it reads serverless.yml's wiring, parses the functions'
 * configuration once, binds every port to a local adapter once (Step Functions → aws-local-stepfunctions,
 * CodeBuild → the local build runner, SNS → the outbox, EventBridge → the rules serverless.yml declares,
 * Lambda → the handlers composed from the same factories Lambda runs).
 */
export class LocalRuntime {
  readonly store: LocalStore;
  readonly wiring: Wiring;
  readonly engine: LocalStepFunctions;
  readonly options: RuntimeOptions;
  /** Each line's holds, current commits and waiting runs (`.stepline/lines/`). */
  readonly lines: LocalLineStore;
  /** What a person asks of runs and environments: restart, redrive, teardown, rollback. */
  readonly operations: RunOperations;
  /**
   * What the API and the approval links need (local/http/control-token.ts): made anew at every start,
   * held by the operator's CLI and console, never by a build. Never logged.
   */
  readonly controlToken: string;
  /** Where builds run: in bubblewrap, or on the host (then `note` says so at start-up). */
  readonly sandbox: Sandbox;
  readonly #lambda: LocalLambda;
  readonly #bus: LocalEventBus;
  readonly #secrets: LocalSecrets;
  /** Each run's builds and pending approval, for the read model. */
  readonly #runs: RunLedger;
  readonly #buildExecution = new Map<string, string>();
  #configuration: FunctionConfiguration | undefined;
  /** The forges whose statuses were skipped (no token), said once each. */
  readonly #statusesSkipped = new Set<string>();

  private constructor(parts: {
    options: RuntimeOptions;
    store: LocalStore;
    wiring: Wiring;
    engine: LocalStepFunctions;
    secrets: LocalSecrets;
    controlToken: string;
    sandbox: Sandbox;
    lines: LocalLineStore;
  }) {
    this.lines = parts.lines;
    this.controlToken = parts.controlToken;
    this.sandbox = parts.sandbox;
    this.options = parts.options;
    this.store = parts.store;
    this.wiring = parts.wiring;
    this.engine = parts.engine;
    this.#secrets = parts.secrets;
    this.#runs = new RunLedger(parts.store);
    this.operations = new RunOperations(parts);
    this.#lambda = new LocalLambda(parts.wiring.functions);
    this.#bus = new LocalEventBus(parts.wiring.functions, (fn, event, executionArn) =>
      this.#lambda.invokeFor(fn, event, executionArn),
    );
  }

  static async start(options: RuntimeOptions): Promise<LocalRuntime> {
    const stateDir = resolve(options.stateDir);
    const wiring =
      options.wiring ??
      (await readWiring(options.projectDir, { params: options.params ?? [], cacheDir: stateDir }));
    // Checked before anything starts, so a bad --param or an unknown function stops start-up in one line.
    const configuration = functionConfiguration(wiring.functions);
    registeredFunctions(wiring.functions);
    const store = await LocalStore.open(stateDir);
    // Once the state folder is ours (locked), two independent steps in it: the machines' validation
    // (remembered there by their hash) and the secrets.
    // What builds share across stages (the sample app's images and environments): the one folder of the
    // state folder a sandboxed build may write (sandbox.ts).
    const deployDir = deployDirOf(stateDir);
    await mkdir(deployDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const [, secrets, controlToken, sandbox, lines] = await Promise.all([
      validateMachines(
        Object.values(wiring.machines).map((machine) => machine.definition),
        stateDir,
      ),
      loadSecrets(stateDir),
      createControlToken(stateDir),
      chooseSandbox({
        mode: options.sandbox ?? sandboxMode(process.env.STEPLINE_SANDBOX),
        stateDir,
        deployDir,
      }),
      LocalLineStore.open(stateDir),
    ]);
    const runtime: { current?: LocalRuntime } = {};
    const self = () => {
      if (!runtime.current) throw new Error('The local runtime is not started yet');
      return runtime.current;
    };
    const codebuild = new LocalCodeBuild({
      stateDir,
      region: wiring.region,
      account: LOCAL_ACCOUNT,
      timeouts: wiring.buildTimeouts,
      parameters: () => readParameters(stateDir),
      // An allow-list of the host's variables: nothing of the runtime reaches a build (build-variables.ts).
      hostEnv: allowedHostVariables(process.env),
      extraEnv: { STEPLINE_DEPLOY_DIR: deployDir },
      sandbox,
      logLink: (buildId) => `${options.baseUrl}/api/builds/${encodeURIComponent(buildId)}/log`,
      appendLog: (buildId, text) => store.appendBuildLog(buildId, text),
      onEvent: (event) => self().onBuildEvent(event),
    });
    const bindings: Record<string, TaskBinding> = {
      'arn:aws:states:::codebuild:startBuild.sync': async (input, context) => {
        const build = input as unknown as StartBuildInput;
        const tracked = { ...build, ExecutionArn: context.executionArn };
        self().trackBuild(tracked);
        return codebuild.startBuildSync(build, context.signal);
      },
      'arn:aws:states:::codebuild:batchGetReports': async (input) => codebuild.batchGetReports(input),
      'arn:aws:states:::aws-sdk:codebuild:describeTestCases': async (input) =>
        codebuild.describeTestCases(input),
      'arn:aws:states:::lambda:invoke': async (input) => lambdaInvokeResult(await self().invoke(input)),
      'arn:aws:states:::lambda:invoke.waitForTaskToken': async (input, context) => {
        await self().invoke(input);
        const payload = (input.Payload ?? {}) as { taskToken?: string };
        if (!payload.taskToken) throw new Error('The waitForTaskToken payload carries no taskToken');
        return context.waitForToken(payload.taskToken);
      },
    };
    const machines = Object.fromEntries(
      Object.entries(wiring.machines).map(([key, m]) => [key, { name: m.name, definition: m.definition }]),
    );
    const engine = new LocalStepFunctions({
      store,
      region: wiring.region,
      account: LOCAL_ACCOUNT,
      machines,
      bindings,
      onStatusChange: (record) => self().onExecution(record),
    });
    // Rules name the pipeline by reference ({Ref: PipelineStateMachine}): point them at the local machines.
    const refs = Object.fromEntries(
      Object.entries(wiring.machines).map(([key, machine]) => [machine.id, engine.stateMachineArn(key)]),
    );
    const localWiring: Wiring = {
      ...wiring,
      functions: wiring.functions.map((fn) => ({
        ...fn,
        environment: resolveReferences(fn.environment, refs) as Record<string, unknown>,
        eventBridge: fn.eventBridge.map((pattern) => resolveReferences(pattern, refs) as typeof pattern),
      })),
    };
    const instance = new LocalRuntime({
      options: { ...options, stateDir },
      store,
      wiring: localWiring,
      engine,
      secrets,
      controlToken,
      sandbox,
      lines,
    });
    runtime.current = instance;
    instance.#composeHandlers(configuration);
    await instance.#releaseEndedRuns();
    return instance;
  }

  /** The secret the local git hook signs pushes with: GitHub's (also in `.stepline/webhook-secret-github`). */
  get webhookSecret(): string {
    return this.#secrets.webhookSecrets.github;
  }

  /** A provider's webhook secret (`.stepline/webhook-secret-<provider>`). */
  webhookSecretFor(provider: WebhookProvider): string {
    return this.#secrets.webhookSecrets[provider];
  }

  /** The function serving an HTTP route, with its path parameters. */
  route(method: string, path: string): RouteMatch | undefined {
    return this.#lambda.route(method, path);
  }

  /**
   * Puts an event on the local default bus: every function whose rule matches gets it. `executionArn`:
   * the run the event is about, to which what the handlers publish is attributed.
   */
  putEvent(event: Record<string, unknown>, executionArn?: string): Promise<void> {
    return this.#bus.putEvent(event, executionArn);
  }

  /** Approvals waiting for a decision, newest first. */
  pendingApprovals(): PendingApproval[] {
    return this.#runs.pendingApprovals();
  }

  /** Where each environment's deployed service answers, for a run (from its deploy builds' SERVICE_URL). */
  deployments(executionArn: string): Record<string, string> {
    return this.#runs.deployments(executionArn);
  }

  /** The builds of a run, in the order they started. */
  builds(executionArn: string): RunBuild[] {
    return this.#runs.builds(executionArn);
  }

  /** Stops every run in flight and every service a local deploy started. */
  async stop(reason = 'stepline was stopped while this run was in flight'): Promise<void> {
    await this.engine.stopAll(reason);
    await stopDeployedServices(this.options.stateDir);
    await this.store.close();
  }

  /** Every line as people see it: each environment's holder, current commit and run, and who waits. */
  environments(): LineView[] {
    return this.lines.snapshot().map(viewOf);
  }

  /** The environment a run waits to enter, and the run that holds it (null: an older run on its way). */
  waitingFor(executionArn: string): { environment: string; heldBy: string | null } | undefined {
    return waitingFor(this.lines.snapshot(), executionArn);
  }

  /**
   * After a restart nothing runs: whatever a run in flight held (it is INTERRUPTED now) or waited for is
   * released, as its end's status change would have done had stepline not been killed first.
   */
  async #releaseEndedRuns(): Promise<void> {
    const ledger = this.#releaseLedger(createLogger('holds', 'ERROR'));
    for (const line of await this.lines.lines()) {
      for (const run of line.runs) {
        if (this.engine.running.includes(run.executionArn)) continue;
        const input = ExecutionInputSchema.safeParse(this.store.execution(run.executionArn)?.input);
        const mode = input.success ? input.data.settings.executionMode : 'SUPERSEDED';
        await ledger.apply(line.line, mode, (state) => endRun(state, run.executionArn, mode));
      }
    }
  }

  #releaseLedger(logger: Logger): ReleaseLedger {
    return new ReleaseLedger({
      store: this.lines,
      decider: this.#decider(),
      stopper: { stop: async (arn, error, cause) => this.engine.stop(arn, error, cause) },
      notifier: { publish: (notification) => this.#publish(notification) },
      logger,
    });
  }

  /** Starts pipeline executions through the local engine, as StartExecution would. */
  starter(): PipelineStarter {
    return this.#starterOf('pipeline');
  }

  #starterOf(machine: string): PipelineStarter {
    return {
      start: async ({ name, input }): Promise<StartPipelineResult> => {
        try {
          const record = await this.engine.start(machine, name, input);
          return { outcome: 'started', executionName: name, executionArn: record.executionArn };
        } catch (error) {
          if ((error as Error).name === 'ExecutionAlreadyExists')
            return { outcome: 'already-started', executionName: name };
          throw error;
        }
      },
    };
  }

  /**
   * The settings a repository's runs start with: the defaults, its own `stepline.json` (`file`, when given)
   * and its override in `settings`. Throws InvalidInputError naming the repository and the field.
   */
  repositorySettings(fullName: string, file?: Record<string, unknown>): PipelineSettings {
    if (!this.#configuration) throw new Error('The local runtime is not started yet');
    return settingsForRepository(this.#configuration.settings, fullName, file);
  }

  /** Stops running pipeline executions by name prefix, as StopExecution would. */
  runStopper(): RunStopper {
    return {
      stopRunning: async ({ namePrefix, keep, error, cause }) => {
        const stopped: string[] = [];
        for (const executionArn of this.engine.running) {
          const record = this.store.execution(executionArn);
          if (record?.stateMachine !== 'pipeline') continue;
          if (!record.name.startsWith(namePrefix) || record.name === keep) continue;
          if (await this.engine.stopExecution(executionArn, error, cause)) stopped.push(record.name);
        }
        return stopped;
      },
    };
  }

  /** Binds every function of serverless.yml to its handler, composed over the local ports. */
  #composeHandlers(configuration: FunctionConfiguration): void {
    this.#configuration = configuration;
    const logLevel = (process.env.POWERTOOLS_LOG_LEVEL ?? 'ERROR') as LogLevel;
    // DescribeExecution's error and cause, from the local store.
    const runs: RunStatusReader = {
      supersededCause: async (executionArn) => {
        const record = this.store.execution(executionArn);
        return record?.status === 'SUPERSEDED' ? (record.cause ?? null) : null;
      },
      failedStage: async (executionArn) => {
        const record = this.store.execution(executionArn);
        return record?.status === 'FAILED' ? StageFailedError.stageOf(record.error, record.cause) : null;
      },
    };
    const ports: LocalPorts = {
      starter: this.starter(),
      runStopper: this.runStopper(),
      lines: this.lines,
      releaseLedger: (logger) => this.#releaseLedger(logger),
      configuration,
      // A push's own stepline.json is read from the pushed commit in the local remote it came from.
      settingsFor: (push) => pushedRepositorySettings(configuration.settings, push),
      webhookSecrets: Object.fromEntries(
        WEBHOOK_PROVIDERS.map((provider) => {
          const read = async () => this.#secrets.webhookSecrets[provider];
          return [provider, { current: read, fetchAgain: read }];
        }),
      ),
      approvalKey: async () => this.#secrets.approvalKey,
      approvalBaseUrl: `${this.options.baseUrl}/approvals`,
      decider: this.#decider(),
      runs,
      notifier: { publish: (notification) => this.#publish(notification) },
      // Milestones go to the custom bus for integrators; locally there is none to integrate with.
      emitter: { emit: async () => undefined },
      logger: (key) => createLogger(key, logLevel),
      now: () => new Date(),
      region: this.wiring.region,
      pipelineStateMachineArn: this.engine.stateMachineArn('pipeline'),
      ...(this.wiring.machines.rollback
        ? {
            rollback: {
              stateMachineArn: this.engine.stateMachineArn('rollback'),
              starter: this.#starterOf('rollback'),
              runs,
            },
          }
        : {}),
      // The image a run deployed: what its Image build exported (the sample app's file:// artifact).
      images: {
        imageOf: async ({ executionArn }) =>
          this.#runs
            .builds(executionArn)
            .flatMap((b) => b.exportedVariables)
            .find((v) => v.Name === 'IMAGE_URI')?.Value,
      },
      statusTokens: localStatusTokens(
        this.wiring.functions.find((fn) => fn.key === 'commitStatus')?.environment,
        () => readParameters(this.options.stateDir),
      ),
      executionInputs: {
        describe: async (executionArn) => {
          const record = this.store.execution(executionArn);
          return record && { input: record.input, status: record.status };
        },
      },
      runLink: (executionArn) =>
        `${this.options.baseUrl}/#/runs/${encodeURIComponent(executionArn.split(':').at(-1) ?? '')}`,
      testReports: {
        countsOf: async (buildArn, executionArn) => this.#runs.testCounts(buildArn, executionArn),
      },
      testOutcomes: { of: async (executionArn) => testOutcomeInHistory(this.store.history(executionArn)) },
      statusRecorder: {
        record: (executionArn, status) => {
          if (status.outcome === 'skipped' && !this.#statusesSkipped.has(status.provider)) {
            this.#statusesSkipped.add(status.provider);
            this.options.report?.({ kind: 'status-skipped', status });
          }
          return this.#runs.recordStatus(executionArn, status);
        },
      },
    };
    for (const [key, handler] of composeHandlers(this.wiring.functions, ports)) {
      this.#lambda.register(key, handler);
    }
  }

  /** Task tokens, resolved by the approval handler; a decided gate stops being listed as pending. */
  #decider(): TaskDecider {
    const { tokens } = this.engine;
    const decided = (executionArn: string | undefined) => {
      if (executionArn) this.#runs.approvalClosed(executionArn);
    };
    return {
      succeed: async (token, output) => {
        const executionArn = tokens.executionOf(token);
        await tokens.succeed(token, output);
        decided(executionArn);
      },
      fail: async (token, error, cause) => {
        const executionArn = tokens.executionOf(token);
        await tokens.fail(token, error, cause);
        decided(executionArn);
      },
    };
  }

  /** @internal Step Functions' `lambda:invoke` of a function of serverless.yml. */
  invoke(input: Record<string, unknown>): Promise<unknown> {
    return this.#lambda.invoke(input);
  }

  async #publish(notification: Notification): Promise<void> {
    const executionArn = this.#lambda.currentRun();
    const message = await this.store.addOutbox(
      {
        topic: notification.topic,
        subject: notification.subject,
        body: notification.body,
        ...(executionArn ? { executionArn } : {}),
      },
      { email: true },
    );
    this.options.report?.({ kind: 'notification', notification, file: join('outbox', message.id) });
    if (notification.approval) this.#approvalRequested(notification.approval);
  }

  /** The approval gate's request was sent: its approval, with the links the message carries, is pending. */
  #approvalRequested(approval: PendingApproval): void {
    this.#runs.approvalRequested(approval);
    this.options.report?.({ kind: 'approval', approval });
  }

  /** @internal */
  trackBuild(build: StartBuildInput & { ExecutionArn: string }): void {
    // Builds report their events before their id is known to the engine: key them by the run's commit
    // and project, which the build keeps.
    this.#buildExecution.set(`${build.ProjectName}@${build.SourceVersion}`, build.ExecutionArn);
  }

  /** @internal */
  onBuildEvent(event: BuildEvent): void {
    // Runs of one commit (pushed to several branches) share project and commit: the run's own id, which
    // the state machine passes every build, tells them apart.
    const executionArn =
      event.environment.STEPLINE_EXECUTION_ID ??
      this.#buildExecution.get(`${event.build.ProjectName}@${event.build.SourceVersion}`);
    if (executionArn && event.kind === 'state') {
      // Kept in the run's history too, so its builds and logs are still shown after a restart.
      this.#runs.recordBuild(executionArn, event).catch((error: Error) => {
        process.stderr.write(
          forTerminal(`stepline: could not record build ${event.build.Id}: ${error.message}\n`),
        );
      });
    }
    this.options.report?.({
      kind: 'build',
      event,
      logPath: this.store.buildLogPath(event.build.Id),
      ...(executionArn ? { executionArn } : {}),
    });
    void this.putEvent(codeBuildEvent(event, this.#eventOrigin()), executionArn);
  }

  /** @internal */
  onExecution(record: ExecutionRecord): void {
    if (record.status !== 'RUNNING') this.#runs.approvalClosed(record.executionArn);
    this.options.report?.({ kind: 'execution', record });
    void this.putEvent(
      executionEvent(record, this.engine.stateMachineArn(record.stateMachine), this.#eventOrigin()),
      record.executionArn,
    );
  }

  #eventOrigin(): EventOrigin {
    return { region: this.wiring.region, account: LOCAL_ACCOUNT };
  }
}

/** The local stand-in for Parameter Store and Secrets Manager: `.stepline/parameters.json`. */
async function readParameters(stateDir: string): Promise<Record<string, string>> {
  try {
    return JSON.parse(await readFile(join(stateDir, 'parameters.json'), 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`.stepline/parameters.json is not valid JSON: ${(error as Error).message}`);
  }
}
