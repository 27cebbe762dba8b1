import { describe, expect, it } from 'vitest';
import {
  type ExecutionMode,
  emptyLine,
  endRun,
  enterEnvironment,
  type JoiningRun,
  joinLine,
  type LineState,
  leaveEnvironment,
  lineOf,
  type ReleaseAction,
  redriveRefusal,
  supersededCause,
  supersedingRun,
  viewOf,
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
        { executionArn: run(sequence).executionArn, environment, now: NOW },
        this.mode,
      ),
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
        waiting: [{ executionArn: run(2).executionArn, sequence: 2, since: NOW }],
      },
    ]);
    expect(JSON.stringify(view)).not.toContain('token-');
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
