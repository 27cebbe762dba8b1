import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Context } from 'aws-lambda';
import { openApprovalLink } from '#shared/approval.ts';
import { InvalidInputError } from '#shared/errors.ts';
import { createLogger } from '#shared/logger.ts';
import { EnvironmentSchema, type ExecutionInput, PipelineSettingsSchema } from '#shared/pipeline.ts';
import type {
  Milestone,
  Notification,
  PipelineStarter,
  StartPipelineResult,
  TaskDecider,
} from '#shared/ports.ts';
import { TriggersSchema } from '#shared/triggers.ts';
import { stageLabel } from './cli/terminal.ts';
import type { ReportSummary } from './codebuild/build-runner.ts';
import { stopDeployedServices } from './codebuild/deployed-services.ts';
import {
  type BuildEvent,
  type CodeBuildBuild,
  LocalCodeBuild,
  type StartBuildInput,
} from './codebuild/service.ts';
import { matchesPattern } from './eventbridge/event-pattern.ts';
import { writeWebhookSecret } from './git/remote.ts';
import { type ExecutionRecord, LocalStore } from './state/store.ts';
import { LocalStepFunctions, type TaskBinding } from './stepfunctions/engine.ts';
import { type LocalFunction, readWiring, resolveReferences, type Wiring } from './wiring.ts';

export const LOCAL_ACCOUNT = '000000000000';

/** The history event that records a build's state (local only: Step Functions keeps builds in CodeBuild). */
export const BUILD_HISTORY_EVENT = 'BuildStateChanged';

/** One build of a run, as the CLI and the console show it. */
export interface RunBuild {
  id: string;
  project: string;
  /** `Image`, `dev: Deploy`. */
  stage: string;
  environment?: string;
  status: string;
  startTime: number;
  endTime?: number;
  logPath: string;
  logUrl: string;
  exportedVariables: { Name: string; Value: string }[];
  phases: CodeBuildBuild['Phases'];
  reports: ReportSummary[];
}

/** An approval waiting for a decision, with the same signed links the email carries. */
export interface PendingApproval {
  executionArn: string;
  environment: string;
  approve: string;
  reject: string;
  expiresAt: string;
}

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
}

/** What the terminal, the CLI and the console hear about. */
export type RuntimeEvent =
  | { kind: 'execution'; record: ExecutionRecord }
  | { kind: 'build'; event: BuildEvent; executionArn?: string; logPath: string }
  | { kind: 'notification'; notification: Notification; file: string }
  | { kind: 'approval'; approval: PendingApproval };

type Handler = (event: unknown, context: Context) => Promise<unknown>;

const SECRET_VARIABLES = ['STEPLINE_WEBHOOK_SECRET', 'STEPLINE_APPROVAL_KEY'];

/**
 * The local mode's composition root: it reads serverless.yml's wiring, binds every port to a local
 * adapter once (Step Functions → aws-local-stepfunctions, CodeBuild → the local build runner, SNS → the
 * outbox, EventBridge → the rules serverless.yml declares), and loads the same handler modules Lambda runs.
 */
export class LocalRuntime {
  readonly store: LocalStore;
  readonly wiring: Wiring;
  readonly engine: LocalStepFunctions;
  readonly options: RuntimeOptions;
  readonly #handlers = new Map<string, Handler>();
  readonly #pending = new Map<string, PendingApproval>();
  readonly #deployments = new Map<string, Record<string, string>>();
  readonly #buildExecution = new Map<string, string>();
  readonly #builds = new Map<string, Map<string, RunBuild>>();
  /** The run a handler invocation works for, so that what it publishes is attributed to that run. */
  readonly #attribution = new AsyncLocalStorage<string | undefined>();
  #approvalKey = '';
  #webhookSecret = '';

  private constructor(
    options: RuntimeOptions,
    store: LocalStore,
    wiring: Wiring,
    engine: LocalStepFunctions,
  ) {
    this.options = options;
    this.store = store;
    this.wiring = wiring;
    this.engine = engine;
  }

  static async start(options: RuntimeOptions): Promise<LocalRuntime> {
    const stateDir = resolve(options.stateDir);
    const wiring = options.wiring ?? (await readWiring(options.projectDir, { params: options.params ?? [] }));
    const store = await LocalStore.open(stateDir);
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
      hostEnv: Object.fromEntries(
        Object.entries(process.env).filter(([name]) => !SECRET_VARIABLES.includes(name)),
      ),
      extraEnv: { STEPLINE_STATE_DIR: stateDir },
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
      'arn:aws:states:::lambda:invoke': async (input) => lambdaResult(await self().invoke(input)),
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
    const instance = new LocalRuntime({ ...options, stateDir }, store, localWiring, engine);
    runtime.current = instance;
    await instance.#loadSecrets();
    await instance.#loadHandlers();
    return instance;
  }

  /** The secret the local git hook signs pushes with (also in `.stepline/webhook-secret`). */
  get webhookSecret(): string {
    return this.#webhookSecret;
  }

  /** The function serving an HTTP route, with its path parameters. */
  route(
    method: string,
    path: string,
  ): { fn: LocalFunction; handler: Handler; params: Record<string, string> } | undefined {
    for (const fn of this.wiring.functions) {
      for (const route of fn.http) {
        if (route.method !== method.toUpperCase()) continue;
        const params = matchRoute(route.path, path);
        const handler = this.#handlers.get(fn.key);
        if (params && handler) return { fn, handler, params };
      }
    }
    return undefined;
  }

  /**
   * Puts an event on the local default bus: every function whose rule matches gets it. `executionArn`:
   * the run the event is about, to which what the handlers publish is attributed.
   */
  async putEvent(event: Record<string, unknown>, executionArn?: string): Promise<void> {
    const targets = this.wiring.functions.filter((fn) =>
      fn.eventBridge.some((p) => matchesPattern(p, event)),
    );
    await Promise.all(
      targets.map(async (fn) => {
        try {
          await this.#attribution.run(executionArn, () =>
            this.#handlers.get(fn.key)?.(event, lambdaContext(fn)),
          );
        } catch (error) {
          process.stderr.write(
            `stepline: ${fn.key} failed on ${String(event['detail-type'])}: ${(error as Error).message}\n`,
          );
        }
      }),
    );
  }

  /** Approvals waiting for a decision, newest first. */
  pendingApprovals(): PendingApproval[] {
    return [...this.#pending.values()].reverse();
  }

  /** Where each environment's deployed service answers, for a run (from its deploy builds' SERVICE_URL). */
  deployments(executionArn: string): Record<string, string> {
    return { ...this.#deployments.get(executionArn) };
  }

  /** The builds of a run, in the order they started. */
  builds(executionArn: string): RunBuild[] {
    const inMemory = this.#builds.get(executionArn);
    if (inMemory) return [...inMemory.values()];
    // A run from before this start: its builds are in its history.
    const builds = new Map<string, RunBuild>();
    for (const event of this.store.history(executionArn)) {
      if (event.type === BUILD_HISTORY_EVENT)
        builds.set((event.build as RunBuild).id, event.build as RunBuild);
    }
    return [...builds.values()];
  }

  /** Starts an interrupted or finished run again, with the same input, under a new name. */
  async restart(name: string): Promise<ExecutionRecord> {
    const record = this.store.execution(name);
    if (!record) throw new Error(`No run named ${name}`);
    return this.engine.start(
      record.stateMachine,
      this.store.restartName(record.name),
      record.input,
      record.name,
    );
  }

  /**
   * Starts the teardown state machine by hand for one environment, from the source of the latest pipeline
   * run (as a team does to stop paying for a QA or demo environment).
   */
  async teardown(environment: string): Promise<ExecutionRecord> {
    const name = EnvironmentSchema.shape.name.safeParse(environment);
    if (!name.success)
      throw new InvalidInputError(`Environment "${environment}": ${name.error.issues[0]?.message}`);
    const latest = this.store
      .executions()
      .find((r) => r.stateMachine === 'pipeline' && (r.input as Partial<ExecutionInput>).source);
    if (!latest) throw new InvalidInputError('No pipeline run yet: there is nothing to tear down');
    const { source } = latest.input as ExecutionInput;
    return this.engine.start('teardown', `teardown-${environment}-${Date.now()}`, { environment, source });
  }

  /** Stops every run in flight and every service a local deploy started. */
  async stop(reason = 'stepline was stopped while this run was in flight'): Promise<void> {
    await this.engine.stopAll(reason);
    await stopDeployedServices(this.options.stateDir);
    await this.store.close();
  }

  /** Starts pipeline executions through the local engine, as StartExecution would. */
  starter(): PipelineStarter {
    return {
      start: async ({ name, input }): Promise<StartPipelineResult> => {
        try {
          const record = await this.engine.start('pipeline', name, input);
          return { outcome: 'started', executionName: name, executionArn: record.executionArn };
        } catch (error) {
          if ((error as Error).name === 'ExecutionAlreadyExists')
            return { outcome: 'already-started', executionName: name };
          throw error;
        }
      },
    };
  }

  async #loadSecrets(): Promise<void> {
    const dir = this.options.stateDir;
    this.#webhookSecret =
      process.env.STEPLINE_WEBHOOK_SECRET || (await readOrCreateSecret(join(dir, 'webhook-secret')));
    this.#approvalKey =
      process.env.STEPLINE_APPROVAL_KEY || (await readOrCreateSecret(join(dir, 'approval-key')));
    await writeWebhookSecret(dir, this.#webhookSecret);
  }

  /** Loads each handler module with the environment its Lambda gets, then binds it to the local ports. */
  async #loadHandlers(): Promise<void> {
    const logLevel = process.env.POWERTOOLS_LOG_LEVEL ?? 'ERROR';
    for (const fn of this.wiring.functions) {
      const { environment } = fn;
      for (const [name, value] of Object.entries(environment)) {
        process.env[name] = typeof value === 'string' ? value : JSON.stringify(value);
      }
      process.env.POWERTOOLS_LOG_LEVEL = logLevel;
      process.env.AWS_REGION ??= this.wiring.region;
      const module = (await import(pathToFileURL(join(this.options.projectDir, fn.module)).href)) as Record<
        string,
        unknown
      >;
      const factory = Object.entries(module).find(
        ([name, value]) => /^create\w+Handler$/.test(name) && typeof value === 'function',
      );
      if (!factory) throw new Error(`${fn.module} exports no create…Handler factory`);
      const deps = this.#deps(fn, environment);
      this.#handlers.set(fn.key, (factory[1] as (deps: unknown) => Handler)(deps));
    }
  }

  /** Every port a handler may ask for, bound to its local adapter. Each handler takes what it needs. */
  #deps(fn: LocalFunction, environment: Record<string, unknown>) {
    const json = (name: string) => {
      const value = environment[name];
      return typeof value === 'string' && value !== '' ? JSON.parse(value) : {};
    };
    return {
      starter: this.starter(),
      triggers: TriggersSchema.parse(json('STEPLINE_TRIGGERS')),
      settings: PipelineSettingsSchema.parse(json('STEPLINE_SETTINGS')),
      webhookSecret: async () => this.#webhookSecret,
      approvalKey: async () => this.#approvalKey,
      baseUrl: `${this.options.baseUrl}/approvals`,
      decider: this.#decider(),
      notifier: { publish: (notification: Notification) => this.#publish(notification) },
      emitter: { emit: async (_milestone: Milestone) => undefined },
      logger: createLogger(fn.key),
      now: () => new Date(),
      region: this.wiring.region,
      stateMachineArn: this.engine.stateMachineArn('pipeline'),
    };
  }

  /** Task tokens, resolved by the approval handler; a decided gate stops being listed as pending. */
  #decider(): TaskDecider {
    const { tokens } = this.engine;
    const decided = (executionArn: string | undefined) => {
      if (executionArn) this.#pending.delete(executionArn);
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

  /** @internal */
  async invoke(input: Record<string, unknown>): Promise<unknown> {
    const name = String(input.FunctionName ?? '');
    const fn = this.wiring.functions.find(
      (f) => f.name === name || f.key === name || name.endsWith(`:function:${f.name}`),
    );
    const handler = fn && this.#handlers.get(fn.key);
    if (!fn || !handler) {
      throw Object.assign(new Error(`Function not found: ${name}`), {
        name: 'Lambda.ResourceNotFoundException',
      });
    }
    try {
      const payload = (input.Payload ?? {}) as { executionArn?: unknown };
      const executionArn = typeof payload.executionArn === 'string' ? payload.executionArn : undefined;
      return await this.#attribution.run(executionArn, () =>
        handler(structuredClone(payload), lambdaContext(fn)),
      );
    } catch (error) {
      const e = error as Error;
      // Step Functions names a function error by its errorType, with Lambda's error JSON for cause.
      throw Object.assign(new Error(JSON.stringify({ errorType: e.name, errorMessage: e.message })), {
        name: e.name,
      });
    }
  }

  async #publish(notification: Notification): Promise<void> {
    const executionArn = this.#attribution.getStore();
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
    if (notification.topic === 'approvals') this.#rememberApproval(notification.body);
  }

  /** The approve and reject links an approval email carries, opened with the same key the handler uses. */
  #rememberApproval(body: string): void {
    const prefix = `${this.options.baseUrl}/approvals/`;
    const links = body.match(new RegExp(`${escapeRegExp(prefix)}[A-Za-z0-9_-]+`, 'g')) ?? [];
    const opened = links.flatMap((url) => {
      try {
        return [{ url, link: openApprovalLink(url.slice(prefix.length), this.#approvalKey, new Date()) }];
      } catch {
        return [];
      }
    });
    const approve = opened.find((o) => o.link.action === 'approve');
    const reject = opened.find((o) => o.link.action === 'reject');
    if (!approve || !reject) return;
    const pending: PendingApproval = {
      executionArn: approve.link.executionArn,
      environment: approve.link.environment,
      approve: approve.url,
      reject: reject.url,
      expiresAt: approve.link.expiresAt.toISOString(),
    };
    this.#pending.set(pending.executionArn, pending);
    this.options.report?.({ kind: 'approval', approval: pending });
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
    if (executionArn && event.kind === 'state' && event.status === 'SUCCEEDED') {
      const url = event.build.ExportedEnvironmentVariables.find((v) => v.Name === 'SERVICE_URL')?.Value;
      const environment = event.environment.STEPLINE_ENVIRONMENT;
      if (url && environment)
        this.#deployments.set(executionArn, { ...this.#deployments.get(executionArn), [environment]: url });
    }
    if (executionArn && event.kind === 'state') this.#recordBuild(executionArn, event);
    this.options.report?.({
      kind: 'build',
      event,
      logPath: this.store.buildLogPath(event.build.Id),
      ...(executionArn ? { executionArn } : {}),
    });
    void this.putEvent(codeBuildEvent(event, this.wiring.region), executionArn);
  }

  #recordBuild(executionArn: string, event: Extract<BuildEvent, { kind: 'state' }>): void {
    const builds = this.#builds.get(executionArn) ?? new Map<string, RunBuild>();
    this.#builds.set(executionArn, builds);
    const b = event.build;
    const build: RunBuild = {
      id: b.Id,
      project: b.ProjectName,
      stage: stageLabel(event),
      ...(event.environment.STEPLINE_ENVIRONMENT
        ? { environment: event.environment.STEPLINE_ENVIRONMENT }
        : {}),
      status: event.status,
      startTime: b.StartTime,
      ...(event.status === 'IN_PROGRESS' ? {} : { endTime: b.EndTime }),
      logPath: this.store.buildLogPath(b.Id),
      logUrl: b.Logs.DeepLink,
      exportedVariables: b.ExportedEnvironmentVariables,
      phases: b.Phases,
      reports: event.reports ?? [],
    };
    builds.set(b.Id, build);
    // Kept in the run's history too, so its builds and logs are still shown after a restart.
    const record = { type: BUILD_HISTORY_EVENT, timestamp: new Date().toISOString(), build };
    this.store.appendHistory(executionArn, [record]).catch((error: Error) => {
      process.stderr.write(`stepline: could not record build ${b.Id}: ${error.message}\n`);
    });
  }

  /** @internal */
  onExecution(record: ExecutionRecord): void {
    if (record.status !== 'RUNNING') this.#pending.delete(record.executionArn);
    this.options.report?.({ kind: 'execution', record });
    void this.putEvent(
      executionEvent(record, this.engine.stateMachineArn(record.stateMachine), this.wiring.region),
      record.executionArn,
    );
  }
}

function lambdaResult(payload: unknown) {
  return { ExecutedVersion: '$LATEST', Payload: payload ?? null, StatusCode: 200 };
}

/** The context Lambda passes a function, for local invocations. */
export function lambdaContext(fn: Pick<LocalFunction, 'name'>): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: fn.name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:${LOCAL_ACCOUNT}:function:${fn.name}`,
    memoryLimitInMB: '256',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${fn.name}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** `/approvals/{token}` against `/approvals/abc` → `{ token: 'abc' }`. */
export function matchRoute(template: string, path: string): Record<string, string> | undefined {
  const want = template.split('/');
  const have = path.split('/');
  if (want.length !== have.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, part] of want.entries()) {
    const value = have[i] ?? '';
    const param = /^\{(\w+)\}$/.exec(part);
    if (param?.[1]) {
      if (value === '') return undefined;
      params[param[1]] = decodeURIComponent(value);
    } else if (part !== value) return undefined;
  }
  return params;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function readOrCreateSecret(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    const secret = randomBytes(32).toString('hex');
    await writeFile(path, `${secret}\n`, { mode: 0o600 });
    return secret;
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

function eventEnvelope(
  detailType: string,
  source: string,
  region: string,
  resources: string[],
  detail: unknown,
) {
  return {
    version: '0',
    id: randomUUID(),
    'detail-type': detailType,
    source,
    account: LOCAL_ACCOUNT,
    time: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    region,
    resources,
    detail,
  };
}

/** The "Execution Status Change" event Step Functions sends for a run. */
function executionEvent(record: ExecutionRecord, stateMachineArn: string, region: string) {
  return eventEnvelope(
    'Step Functions Execution Status Change',
    'aws.states',
    region,
    [record.executionArn],
    {
      executionArn: record.executionArn,
      stateMachineArn,
      name: record.name,
      status: record.status === 'INTERRUPTED' ? 'ABORTED' : record.status,
      startDate: Date.parse(record.startDate),
      stopDate: record.stopDate ? Date.parse(record.stopDate) : null,
      input: JSON.stringify(record.input),
      output: record.output === undefined ? null : JSON.stringify(record.output),
      error: record.error ?? null,
      cause: record.cause ?? null,
    },
  );
}

/** The "Build State Change" / "Build Phase Change" event CodeBuild sends. */
function codeBuildEvent(event: BuildEvent, region: string) {
  const b = event.build;
  const info = {
    'build-number': b.BuildNumber,
    'build-start-time': new Date(b.StartTime).toUTCString(),
    'source-version': b.SourceVersion,
    initiator: 'states/stepline',
    environment: {
      'environment-variables': b.Environment.EnvironmentVariables.map((v) => ({
        name: v.Name,
        value: v.Value,
        type: v.Type,
      })),
    },
    logs: { 'group-name': b.Logs.GroupName, 'stream-name': b.Logs.StreamName, 'deep-link': b.Logs.DeepLink },
    phases: b.Phases.map((p) => ({
      'phase-type': p.PhaseType,
      'phase-status': p.PhaseStatus,
      'phase-context': (p.Contexts ?? []).map((c) => `${c.StatusCode}: ${c.Message}`),
      'start-time': new Date(p.StartTime).toUTCString(),
      'end-time': new Date(p.EndTime).toUTCString(),
      'duration-in-seconds': p.DurationInSeconds,
    })),
  };
  const common = {
    'project-name': b.ProjectName,
    'build-id': b.Arn,
    'source-version': b.SourceVersion,
    'additional-information': info,
    version: '1',
  };
  if (event.kind === 'state') {
    return eventEnvelope('CodeBuild Build State Change', 'aws.codebuild', region, [b.Arn], {
      ...common,
      'build-status': event.status,
      'current-phase': event.status === 'IN_PROGRESS' ? 'SUBMITTED' : 'COMPLETED',
      'current-phase-context': '[]',
    });
  }
  return eventEnvelope('CodeBuild Build Phase Change', 'aws.codebuild', region, [b.Arn], {
    ...common,
    'completed-phase': event.phase.name,
    'completed-phase-status': event.phase.status,
    'completed-phase-duration-seconds': event.phase.durationSeconds,
    'completed-phase-context': JSON.stringify(event.phase.context ? [event.phase.context.message] : []),
    'completed-phase-start': event.phase.start.toUTCString(),
    'completed-phase-end': event.phase.end.toUTCString(),
  });
}
