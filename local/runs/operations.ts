import { InvalidInputError, RollbackRefusedError } from '#shared/errors.ts';
import { EnvironmentSchema, type ExecutionInput, ExecutionInputSchema } from '#shared/pipeline.ts';
import { type LineState, lineOf, redriveRefusal, runName } from '#shared/release.ts';
import { planRollback, type RollbackInput, RollbackInputSchema } from '#shared/rollback.ts';
import * as z from '#shared/zod.ts';
import { SAMPLE_APP_REMOTE } from '../git/remote.ts';
import { ExecutionNotRedrivableError } from '../state/records.ts';
import type { LocalLineStore } from '../state/release-lines.ts';
import type { ExecutionRecord, LocalStore } from '../state/store.ts';
import type { LocalStepFunctions } from '../stepfunctions/engine.ts';

/**
 * What a person asks of runs and environments, from the CLI, the console or the JSON API: the local
 * counterparts of `aws stepfunctions start-execution` with a run's input (restart), `redrive-execution`,
 * and starting the teardown and rollback state machines, each checked first as the README says.
 */
export class RunOperations {
  readonly #store: LocalStore;
  readonly #engine: LocalStepFunctions;
  readonly #lines: LocalLineStore;

  constructor(parts: { store: LocalStore; engine: LocalStepFunctions; lines: LocalLineStore }) {
    this.#store = parts.store;
    this.#engine = parts.engine;
    this.#lines = parts.lines;
  }

  /** Starts an interrupted or finished run again, with the same input, under a new name. */
  async restart(name: string): Promise<ExecutionRecord> {
    const record = this.#store.execution(name);
    if (!record) throw new Error(`No run named ${name}`);
    return this.#engine.start(
      record.stateMachine,
      this.#store.restartName(record.name),
      record.input,
      record.name,
    );
  }

  /**
   * Redrives a run that failed, timed out, was aborted or was interrupted: it continues under the same name
   * from the state that failed (the engine's redrive). Throws NotFoundError for an unknown run and
   * ExecutionNotRedrivableError, with Step Functions' reason, for one that cannot be redriven.
   */
  async redrive(name: string): Promise<ExecutionRecord> {
    this.#refuseRedriveBehindItsLine(name);
    return this.#engine.redrive(name);
  }

  /** A redrive that would move an environment of its line back, or deploy beside its holder, is refused. */
  #refuseRedriveBehindItsLine(name: string): void {
    const record = this.#store.execution(name) ?? this.#store.executions().find((r) => r.name === name);
    const input = ExecutionInputSchema.safeParse(record?.input);
    if (!record || !input.success) return;
    const line = this.#lines.snapshot().find((l) => l.line === lineOf(input.data.push));
    const reason =
      line &&
      redriveRefusal(
        line,
        { executionArn: record.executionArn, sequence: input.data.sequence },
        input.data.settings.executionMode,
      );
    if (reason) throw new ExecutionNotRedrivableError(record.name, reason);
  }

  /**
   * Starts the teardown state machine by hand for one environment of one repository, from the source of
   * that repository's latest pipeline run (as a team does to stop paying for a QA or demo environment).
   * Without a repository: the only one with runs, else the sample app; with runs of several and none of
   * the sample app, it asks which.
   */
  async teardown(environment: string, repository?: string): Promise<ExecutionRecord> {
    const name = EnvironmentSchema.shape.name.safeParse(environment);
    if (!name.success)
      throw new InvalidInputError(`Environment "${environment}": ${name.error.issues[0]?.message}`);
    const runs = this.#store
      .executions()
      .filter((r) => r.stateMachine === 'pipeline' && (r.input as Partial<ExecutionInput>).source);
    const repositoryOf = (r: ExecutionRecord) =>
      (r.input as Partial<ExecutionInput>).push?.repository?.fullName;
    const repositories = [...new Set(runs.flatMap((r) => repositoryOf(r) ?? []))].sort();
    if (repositories.length === 0)
      throw new InvalidInputError('No pipeline run yet: there is nothing to tear down');
    const chosen =
      repository ??
      (repositories.length === 1
        ? repositories[0]
        : repositories.find((r) => r === SAMPLE_APP_REMOTE.fullName));
    if (chosen === undefined) {
      throw new InvalidInputError(
        `Runs of several repositories (${repositories.join(', ')}): name the one whose ${environment} to tear down (--repo)`,
      );
    }
    const latest = runs.find((r) => repositoryOf(r) === chosen);
    if (!latest) {
      throw new InvalidInputError(
        `No pipeline run of ${chosen} yet: there is nothing of it to tear down (runs of ${repositories.join(', ')})`,
      );
    }
    const { source } = latest.input as ExecutionInput;
    return this.#engine.start('teardown', `teardown-${environment}-${Date.now()}`, {
      environment,
      repository: chosen,
      source,
    });
  }

  /**
   * Starts the rollback state machine for one environment: back to its previous recorded deployment, or to
   * `to` (a run name or commit), from the recorded image, with the environment's deploy buildspec; its
   * Infrastructure too when `infrastructure`. `repository` picks the line when several deployed the
   * environment (its `owner/name`, or the folder of a `--repo`). Refused (409, nothing started) when there is
   * nothing recorded to go back to.
   */
  async rollback(
    environment: string,
    options: { to?: string | undefined; repository?: string | undefined; infrastructure?: boolean } = {},
  ): Promise<ExecutionRecord> {
    const name = EnvironmentSchema.shape.name.safeParse(environment);
    if (!name.success)
      throw new InvalidInputError(`Environment "${environment}": ${name.error.issues[0]?.message}`);
    const wanted = options.repository?.replace(/\/+$/, '');
    const lines = this.#lines.snapshot().filter((l) => {
      if (!l.environments[environment]?.current) return false;
      if (!wanted) return true;
      const fullName = l.line.split(':')[1] ?? '';
      return fullName === wanted || fullName.endsWith(`/${wanted.split('/').at(-1)}`);
    });
    if (lines.length === 0)
      throw new RollbackRefusedError(
        `${environment} has no deployment${wanted ? ` of ${wanted}` : ''} yet: there is nothing to roll back`,
      );
    if (lines.length > 1)
      throw new InvalidInputError(
        `${environment} is deployed by several branches or repositories (${lines.map((l) => l.line).join(', ')}): name one with --repo`,
      );
    const [line] = lines as [LineState];
    const current = line.environments[environment]?.current;
    const from = current && this.#store.execution(current.executionArn);
    const base = z
      .pick(RollbackInputSchema, { push: true, source: true, settings: true })
      .safeParse(from?.input);
    if (!base.success)
      throw new RollbackRefusedError(
        `The run that deployed ${environment} (${current ? runName(current.executionArn) : 'none'}) is not kept any more`,
      );
    const input: RollbackInput = {
      ...base.data,
      environment,
      to: options.to ?? null,
      infrastructure: options.infrastructure ?? false,
      automatic: null,
    };
    const plan = planRollback(line, RollbackInputSchema.parse(input));
    if ('refused' in plan) throw new RollbackRefusedError(plan.refused);
    return this.#engine.start('rollback', `rollback-${environment}-${Date.now()}`, input);
  }
}
