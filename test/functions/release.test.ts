import { describe, expect, it } from 'vitest';
import {
  DEPLOYMENTS_KEPT,
  type ExecutionMode,
  emptyLine,
  endRun,
  enterEnvironment,
  enterForRollback,
  type JoiningRun,
  joinLine,
  type LineState,
  leaveEnvironment,
  lineOf,
  type ReleaseAction,
  ROLLBACK_REFUSED_ERROR,
  redriveRefusal,
  rollbackTarget,
  supersededCause,
  supersedingRun,
  viewOf,
  waitingFor,
} from '#shared/release.ts';

const LINE = 'github:acme/shop:refs/heads/main';
const PLAN = [
  { name: 'dev', approval: false },
  { name: 'prod', approval: true },
];
const NOW = '2026-12-03T07:00:00.000Z';

function run(sequence: number): JoiningRun {
  return {
    executionArn: `arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-${sequence}`,
    sequence,
    commit: String(sequence).repeat(40),
    plan: PLAN,
  };
}

/** A line driven step by step, keeping every action decided. */
class Line {
  state: LineState = emptyLine(LINE);
  readonly actions: ReleaseAction[] = [];
  readonly mode: ExecutionMode;
  constructor(mode: ExecutionMode) {
    this.mode = mode;
  }

  #apply(transition: { state: LineState; actions: ReleaseAction[] }): ReleaseAction[] {
    this.state = transition.state;
    this.actions.push(...transition.actions);
    return transition.actions;
  }
  join(sequence: number) {
    return this.#apply(joinLine(this.state, run(sequence), this.mode));
  }
  enter(sequence: number, environment: string) {
    const taskToken = `token-${sequence}-${environment}`;
    return this.#apply(
      enterEnvironment(this.state, { ...run(sequence), environment, taskToken, now: NOW }, this.mode),
    );
  }
  leave(sequence: number, environment: string) {
    return this.#apply(
      leaveEnvironment(
        this.state,
        {
          executionArn: run(sequence).executionArn,
          environment,
          now: NOW,
          imageUri: `repo:${String(sequence).repeat(12)}`,
        },
        this.mode,
      ),
    );
  }
  /** Rolls `environment` back (to `to`, else its previous deployment) as the rollback `name`. */
  rollBack(name: string, environment: string, to?: string, automatic = false) {
    const found = rollbackTarget(this.state, environment, to, { automatic });
    if ('refused' in found) throw new Error(found.refused);
    const entry = {
      executionArn: rollbackArn(name),
      environment,
      taskToken: `token-${name}`,
      now: NOW,
      target: found.target,
      expected: found.current?.executionArn ?? null,
      from: found.current?.commit ?? null,
      automatic,
    };
    return this.#apply(enterForRollback(this.state, entry, this.mode));
  }
  leaveRollback(name: string, environment: string) {
    return this.#apply(
      leaveEnvironment(this.state, { executionArn: rollbackArn(name), environment, now: NOW }, this.mode),
    );
  }
  end(sequence: number) {
    return this.#apply(endRun(this.state, run(sequence).executionArn, this.mode));
  }
  current(environment: string) {
    return this.state.environments[environment]?.current?.sequence ?? null;
  }
  holder(environment: string) {
    return this.state.environments[environment]?.holder?.sequence ?? null;
  }
}

const rollbackArn = (name: string) =>
  `arn:aws:states:eu-west-1:123456789012:execution:stepline-test-rollback:${name}`;

const kinds = (actions: ReleaseAction[]) =>
  actions.map((a) => `${a.kind} ${a.executionArn.split(':').at(-1)}`);

describe('a line', () => {
  it('is one repository and ref of one provider', () => {
    const push = { provider: 'github', repository: { fullName: 'acme/shop' }, ref: 'refs/heads/main' };
    expect(lineOf(push)).toBe(LINE);
    expect(lineOf({ ...push, ref: 'refs/heads/feature' })).not.toBe(LINE);
  });

  it('names the newer run in the cause a retired run is stopped with, and reads it back', () => {
    const cause = supersededCause(run(2));
    expect(cause).toBe('Superseded by run-2 (push #2, commit 222222222222)');
    expect(supersedingRun(cause)).toBe('run-2');
    expect(supersedingRun('Stopped by hand')).toBeNull();
  });
});

describe('SUPERSEDED', () => {
  it('retires an older run waiting at the prod gate when a newer one joins', () => {
    const line = new Line('SUPERSEDED');
    line.join(1);
    line.enter(1, 'dev');
    line.leave(1, 'dev');
    // Run 1 now waits at prod's approval gate, holding nothing.
    const actions = line.join(2);

    expect(actions).toEqual([
      {
        kind: 'retire',
        executionArn: run(1).executionArn,
        by: run(2).executionArn,
        cause: 'Superseded by run-2 (push #2, commit 222222222222)',
      },
    ]);
  });

  it('lets a run that holds an environment finish it, then retires it when it leaves', () => {
    const line = new Line('SUPERSEDED');
    line.join(1);
    line.enter(1, 'dev');
    expect(line.join(2)).toEqual([]);
    line.enter(2, 'dev');
    expect(line.holder('dev')).toBe(1);

    const actions = line.leave(1, 'dev');

    expect(kinds(actions)).toEqual(['retire run-1', 'resume run-2']);
    expect(line.holder('dev')).toBe(2);
    expect(line.current('dev')).toBe(1);
  });

  it('does not retire a run that entered every environment', () => {
    const line = new Line('SUPERSEDED');
    line.join(1);
    line.enter(1, 'dev');
    line.leave(1, 'dev');
    line.enter(1, 'prod');
    expect(line.join(2)).toEqual([]);
    line.leave(1, 'prod');
    expect(kinds(line.actions)).not.toContain('retire run-1');
  });

  it('retires every older run at once, each naming the newest', () => {
    const line = new Line('SUPERSEDED');
    line.join(1);
    line.join(2);
    const actions = line.join(3);
    expect(kinds(actions)).toEqual(['retire run-2']);
    expect(kinds(line.actions)).toEqual(['retire run-1', 'retire run-2']);
    expect(line.actions.at(-1)).toMatchObject({ by: run(3).executionArn });
  });

  it('retires a run that arrives after a newer one joined (starts out of order)', () => {
    const line = new Line('SUPERSEDED');
    line.join(2);
    expect(kinds(line.join(1))).toEqual(['retire run-1']);
  });
});

describe('QUEUED', () => {
  it('approve B then A: prod stays on B and A is refused, naming both commits', () => {
    const line = new Line('QUEUED');
    for (const n of [1, 2]) {
      line.join(n);
      line.enter(n, 'dev');
      line.leave(n, 'dev');
    }
    // Both wait at prod's gate; B (2) is approved first.
    expect(kinds(line.enter(2, 'prod'))).toEqual(['resume run-2']);
    line.leave(2, 'prod');

    const refused = line.enter(1, 'prod');

    expect(refused).toEqual([
      expect.objectContaining({
        kind: 'refuse',
        executionArn: run(1).executionArn,
        taskToken: 'token-1-prod',
      }),
    ]);
    const cause = (refused[0] as { cause: string }).cause;
    expect(cause).toContain('222222222222 (push #2');
    expect(cause).toContain('111111111111 is push #1');
    expect(line.current('prod')).toBe(2);
  });

  it('approve A then B: both deploy, in push order', () => {
    const line = new Line('QUEUED');
    for (const n of [1, 2]) {
      line.join(n);
      line.enter(n, 'dev');
      line.leave(n, 'dev');
    }
    line.enter(1, 'prod');
    line.enter(2, 'prod');
    expect(line.holder('prod')).toBe(1);
    expect(kinds(line.leave(1, 'prod'))).toEqual(['resume run-2']);
    line.leave(2, 'prod');
    expect(line.current('prod')).toBe(2);
  });

  it('refuses an older run at once when a newer one is deploying the environment', () => {
    const line = new Line('QUEUED');
    line.join(1);
    line.join(2);
    line.enter(1, 'dev');
    line.leave(1, 'dev');
    line.enter(2, 'dev');
    line.leave(2, 'dev');
    line.enter(2, 'prod');
    expect(kinds(line.enter(1, 'prod'))).toEqual(['refuse run-1']);
  });

  it('keeps push order in dev: a newer build that finishes first waits for the older run', () => {
    const line = new Line('QUEUED');
    line.join(1);
    line.join(2);
    // Run 2's image was built first.
    expect(line.enter(2, 'dev')).toEqual([]);
    expect(kinds(line.enter(1, 'dev'))).toEqual(['resume run-1']);
    expect(kinds(line.leave(1, 'dev'))).toEqual(['resume run-2']);
    line.leave(2, 'dev');
    expect(line.current('dev')).toBe(2);
  });

  it('does not wait for an older run that waits on a person', () => {
    const line = new Line('QUEUED');
    line.join(1);
    line.join(2);
    line.enter(1, 'dev');
    line.leave(1, 'dev');
    line.enter(2, 'dev');
    line.leave(2, 'dev');
    // Run 1 waits at prod's gate: run 2, approved, enters at once.
    expect(kinds(line.enter(2, 'prod'))).toEqual(['resume run-2']);
  });

  it('hands the environment on when the holder ends without leaving, and forgets the ended run', () => {
    const line = new Line('QUEUED');
    line.join(1);
    line.join(2);
    line.enter(1, 'dev');
    line.enter(2, 'dev');
    expect(kinds(line.end(1))).toEqual(['resume run-2']);
    expect(line.state.runs.map((r) => r.sequence)).toEqual([2]);
    // Nothing was deployed by the run that ended.
    expect(line.current('dev')).toBeNull();
  });

  it('stops waiting for an older run that ended before it reached the environment', () => {
    const line = new Line('QUEUED');
    line.join(1);
    line.join(2);
    expect(line.enter(2, 'dev')).toEqual([]);
    expect(kinds(line.end(1))).toEqual(['resume run-2']);
  });

  it('never lets an environment go back, whatever the order of arrivals', () => {
    // Every interleaving of two runs' dev entries and leaves, with ends at random points.
    for (let seed = 0; seed < 200; seed++) {
      const line = new Line('QUEUED');
      const random = mulberry32(seed);
      const steps = [1, 2, 3].flatMap((n) => [`join ${n}`]);
      const pending = [1, 2, 3].map((n) => [`enter ${n}`, `leave ${n}`]);
      while (pending.some((p) => p.length > 0)) {
        const candidates = pending.filter((p) => p.length > 0);
        const pick = candidates[Math.floor(random() * candidates.length)];
        const step = pick?.shift();
        if (step) steps.push(step);
      }
      const history: number[] = [];
      for (const step of steps) {
        const [verb, n] = step.split(' ') as [string, string];
        const sequence = Number(n);
        if (verb === 'join') line.join(sequence);
        if (verb === 'enter') line.enter(sequence, 'dev');
        // A run leaves only what it holds; a refused or waiting run ends instead.
        if (verb === 'leave') {
          if (line.holder('dev') === sequence) line.leave(sequence, 'dev');
          else line.end(sequence);
        }
        const current = line.current('dev');
        if (current !== null) history.push(current);
        // Whoever was resumed holds it now and leaves it as its next step.
      }
      expect(history, `seed ${seed}`).toEqual([...history].sort((a, b) => a - b));
    }
  });
});

/** Runs 1..n through dev and prod, one after the other. */
function deployed(line: Line, n: number): void {
  for (let i = 1; i <= n; i++) {
    line.join(i);
    for (const environment of ['dev', 'prod']) {
      line.enter(i, environment);
      line.leave(i, environment);
    }
    line.end(i);
  }
}

describe('rollback', () => {
  it('moves prod back to its previous deployment, recorded as a rollback with the image it had', () => {
    const line = new Line('SUPERSEDED');
    deployed(line, 3);
    expect(kinds(line.rollBack('rb-1', 'prod'))).toEqual(['resume rb-1']);
    expect(line.holder('prod')).toBe(2);
    line.leaveRollback('rb-1', 'prod');
    const prod = line.state.environments.prod;
    expect(prod?.current).toMatchObject({
      executionArn: rollbackArn('rb-1'),
      sequence: 2,
      commit: '2'.repeat(40),
      imageUri: `repo:${'2'.repeat(12)}`,
      rollback: { of: run(2).executionArn, from: '3'.repeat(40), automatic: false },
    });
    expect(prod?.deployments?.map((d) => d.sequence)).toEqual([2, 3, 2, 1]);
    expect(line.current('dev')).toBe(3);
  });

  it('goes back to a chosen deployment by run name or commit, and no further than recorded', () => {
    const line = new Line('QUEUED');
    deployed(line, 3);
    const byRun = rollbackTarget(line.state, 'prod', 'run-1');
    expect('target' in byRun && byRun.target.sequence).toBe(1);
    const byCommit = rollbackTarget(line.state, 'prod', '1111111');
    expect('target' in byCommit && byCommit.target.sequence).toBe(1);
    expect(rollbackTarget(line.state, 'prod', 'run-9')).toEqual({
      refused: expect.stringContaining('No deployment of prod recorded for run-9'),
    });
    expect(rollbackTarget(line.state, 'prod', 'run-3')).toEqual({
      refused: expect.stringContaining('already runs 333333333333'),
    });
    expect(rollbackTarget(line.state, 'qa')).toEqual({
      refused: expect.stringContaining('no deployment yet'),
    });
  });

  it('a second rollback goes further back, not forward again', () => {
    const line = new Line('SUPERSEDED');
    deployed(line, 3);
    line.rollBack('rb-1', 'prod');
    line.leaveRollback('rb-1', 'prod');
    line.end(0);
    line.state.runs = line.state.runs.filter((r) => !r.rollback);
    line.rollBack('rb-2', 'prod');
    line.leaveRollback('rb-2', 'prod');
    expect(line.state.environments.prod?.current?.commit).toBe('1'.repeat(40));
  });

  it('waits for the run that holds prod, and is refused if prod moved on meanwhile', () => {
    const line = new Line('QUEUED');
    deployed(line, 2);
    line.join(3);
    line.enter(3, 'dev');
    line.leave(3, 'dev');
    line.enter(3, 'prod');
    expect(kinds(line.rollBack('rb-1', 'prod'))).toEqual([]);
    const actions = line.leave(3, 'prod');
    expect(actions).toEqual([
      expect.objectContaining({
        kind: 'refuse',
        executionArn: rollbackArn('rb-1'),
        error: ROLLBACK_REFUSED_ERROR,
        cause: expect.stringContaining('prod moved on since this rollback was asked for'),
      }),
    ]);
    expect(line.current('prod')).toBe(3);
  });

  it('is handed prod when the run that held it ends without deploying (an automatic rollback)', () => {
    const line = new Line('SUPERSEDED');
    deployed(line, 2);
    line.join(3);
    line.enter(3, 'dev');
    line.leave(3, 'dev');
    line.enter(3, 'prod');
    // Run 3's Deploy fails: prod still records run 2, which the automatic rollback deploys again.
    expect(kinds(line.rollBack('rb-auto', 'prod', undefined, true))).toEqual([]);
    expect(kinds(line.end(3))).toEqual(['resume rb-auto']);
    line.leaveRollback('rb-auto', 'prod');
    expect(line.state.environments.prod?.current?.rollback).toEqual({
      of: run(2).executionArn,
      from: '2'.repeat(40),
      automatic: true,
    });
  });

  it('is neither retired by a newer run nor retires one, and the newer run moves prod forward after it', () => {
    const line = new Line('SUPERSEDED');
    deployed(line, 3);
    line.rollBack('rb-1', 'prod');
    expect(kinds(line.join(4))).toEqual([]);
    line.enter(4, 'dev');
    line.leave(4, 'dev');
    expect(kinds(line.enter(4, 'prod'))).toEqual([]);
    expect(kinds(line.leaveRollback('rb-1', 'prod'))).toEqual(['resume run-4']);
    line.leave(4, 'prod');
    expect(line.current('prod')).toBe(4);
  });

  it('records the deploy of a run its line no longer knows (redriven after its end), to roll back to later', () => {
    const line = new Line('QUEUED');
    deployed(line, 1);
    line.join(2);
    line.enter(2, 'prod');
    line.end(2);
    // The redrive resumes at prod's Deploy without entering again: its leave names its push and commit.
    const transition = leaveEnvironment(
      line.state,
      {
        executionArn: run(2).executionArn,
        environment: 'prod',
        now: NOW,
        run: { sequence: 2, commit: '2'.repeat(40) },
      },
      'QUEUED',
    );
    expect(transition.state.environments.prod?.deployments?.map((d) => d.sequence)).toEqual([2, 1]);
    // Without them (an older caller), nothing is recorded, as before.
    const unknown = leaveEnvironment(
      line.state,
      { executionArn: run(2).executionArn, environment: 'prod', now: NOW },
      'QUEUED',
    );
    expect(unknown.state.environments.prod?.current?.sequence).toBe(1);
  });

  it('keeps the last deployments of each environment only', () => {
    const line = new Line('QUEUED');
    deployed(line, DEPLOYMENTS_KEPT + 3);
    expect(line.state.environments.prod?.deployments).toHaveLength(DEPLOYMENTS_KEPT);
    expect(line.state.environments.prod?.deployments?.[0]?.sequence).toBe(DEPLOYMENTS_KEPT + 3);
  });
});

describe('PARALLEL', () => {
  it('holds nothing, waits for nothing and retires nothing', () => {
    const line = new Line('PARALLEL');
    line.join(1);
    line.join(2);
    expect(kinds(line.enter(2, 'dev'))).toEqual(['resume run-2']);
    expect(kinds(line.enter(1, 'dev'))).toEqual(['resume run-1']);
    expect(line.holder('dev')).toBeNull();
  });
});

describe('a redrive', () => {
  it('is refused while another run holds an environment of the line, and once a newer push deployed one', () => {
    const line = new Line('QUEUED');
    line.join(1);
    line.enter(1, 'dev');
    line.leave(1, 'dev');
    line.end(1);
    // Run 1 failed at prod (never entered): nothing newer anywhere, so it may be redriven.
    expect(redriveRefusal(line.state, run(1), 'QUEUED')).toBeNull();
    line.join(2);
    line.enter(2, 'dev');
    expect(redriveRefusal(line.state, run(1), 'QUEUED')).toBe(
      'dev is held by run-2; redrive once it is released',
    );
    line.leave(2, 'dev');
    expect(redriveRefusal(line.state, run(1), 'QUEUED')).toBe(
      'a newer push (run-2) has been deployed to dev, which a redrive would move back',
    );
    expect(redriveRefusal(line.state, run(2), 'QUEUED')).toBeNull();
    expect(redriveRefusal(line.state, run(1), 'PARALLEL')).toBeNull();
  });
});

describe('what people see of a line', () => {
  it('shows the holder, the current commit and who waits, never a task token', () => {
    const line = new Line('QUEUED');
    line.join(1);
    line.join(2);
    line.enter(1, 'dev');
    line.enter(2, 'dev');
    const view = viewOf(line.state);
    expect(view.environments).toEqual([
      {
        name: 'dev',
        holder: expect.objectContaining({ sequence: 1 }),
        current: null,
        deployments: [],
        waiting: [{ executionArn: run(2).executionArn, sequence: 2, since: NOW }],
      },
    ]);
    expect(JSON.stringify(view)).not.toContain('token-');
  });

  it('says which environment a run waits for, and which run holds it, or none when an older run goes first', () => {
    const line = new Line('QUEUED');
    line.join(1);
    line.join(2);
    // Run 2 reaches dev first: it waits for run 1, on its way, which holds nothing yet.
    line.enter(2, 'dev');
    const other = emptyLine('github:acme/other:refs/heads/main');
    expect(waitingFor([other, line.state], run(2).executionArn)).toEqual({
      environment: 'dev',
      heldBy: null,
    });
    line.enter(1, 'dev');
    expect(waitingFor([other, line.state], run(2).executionArn)).toEqual({
      environment: 'dev',
      heldBy: 'run-1',
    });
    expect(waitingFor([other, line.state], run(1).executionArn)).toBeUndefined();
    line.leave(1, 'dev');
    expect(waitingFor([other, line.state], run(2).executionArn)).toBeUndefined();
    expect(line.holder('dev')).toBe(2);
  });
});

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
