import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ExecutionMode, endRun, enterEnvironment, joinLine, leaveEnvironment } from '#shared/release.ts';
import { MemoryLineStore, recordingLedger } from '../helpers/release.ts';
import { record } from './figures.ts';

/**
 * Release control under any interleaving: runs of one line join, wait at gates, enter and leave
 * environments, fail, are stopped from outside or crash, in any order the scheduler picks, through the
 * real ledger (the conditional write included). Whatever happens, no environment goes back and, once every
 * run has ended, nothing is held or waited for.
 */

const LINE = 'github:acme/shop:refs/heads/main';
const PLAN = [
  { name: 'dev', approval: false },
  { name: 'qa', approval: false },
  { name: 'prod', approval: true },
];

type Phase =
  | { at: 'start' }
  | { at: 'before'; index: number }
  | { at: 'waiting'; index: number; token: string }
  | { at: 'holding'; index: number }
  | { at: 'ended' };

interface Outcome {
  regressions: number;
  orphaned: number;
}

async function simulate(mode: ExecutionMode, runs: number, choices: number[]): Promise<Outcome> {
  const store = new MemoryLineStore();
  const { ledger, record: decided } = recordingLedger(store);
  const arn = (n: number) =>
    `arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-${n}`;
  const phases = new Map<number, Phase>(Array.from({ length: runs }, (_, i) => [i + 1, { at: 'start' }]));
  const deployed = new Map<string, number[]>();
  let cursor = 0;
  const pick = (n: number) => (choices[cursor++ % choices.length] ?? 0) % n;
  const now = '2026-12-03T07:00:00.000Z';
  const end = async (n: number) => {
    phases.set(n, { at: 'ended' });
    await ledger.apply(LINE, mode, (state) => endRun(state, arn(n), mode));
  };
  // What the ledger decided since the last step: resumed runs hold, refused or retired runs end.
  const settle = async () => {
    while (decided.resumed.length + decided.refused.length + decided.stopped.length > 0) {
      for (const { token } of decided.resumed.splice(0)) {
        for (const [n, phase] of phases) {
          if (phase.at === 'waiting' && phase.token === token)
            phases.set(n, { at: 'holding', index: phase.index });
        }
      }
      for (const { token } of decided.refused.splice(0)) {
        for (const [n, phase] of phases) if (phase.at === 'waiting' && phase.token === token) await end(n);
      }
      for (const { executionArn } of decided.stopped.splice(0)) {
        const n = Number(executionArn.split('-').at(-1));
        if (phases.get(n)?.at !== 'ended') await end(n);
      }
    }
  };

  for (let step = 0; step < 400; step++) {
    const live = [...phases].filter(([, p]) => p.at !== 'ended' && p.at !== 'waiting');
    if (live.length === 0) {
      // Only waiting runs are left: one is stopped from outside (as a person or a timeout would).
      const waiting = [...phases].filter(([, p]) => p.at === 'waiting');
      if (waiting.length === 0) break;
      const [n] = waiting[pick(waiting.length)] ?? [];
      if (n !== undefined) await end(n);
      await settle();
      continue;
    }
    const [n, phase] = live[pick(live.length)] ?? [];
    if (n === undefined || phase === undefined) break;
    // One run in ten fails or crashes at whatever point it is.
    if (pick(10) === 0) {
      await end(n);
    } else if (phase.at === 'start') {
      await ledger.apply(LINE, mode, (state) =>
        joinLine(state, { executionArn: arn(n), sequence: n, commit: String(n), plan: PLAN }, mode),
      );
      if (phases.get(n)?.at === 'start') phases.set(n, { at: 'before', index: 0 });
    } else if (phase.at === 'before') {
      const environment = PLAN[phase.index]?.name ?? '';
      const token = `token-${n}-${environment}`;
      phases.set(n, { at: 'waiting', index: phase.index, token });
      await ledger.apply(LINE, mode, (state) =>
        enterEnvironment(
          state,
          {
            executionArn: arn(n),
            sequence: n,
            commit: String(n),
            plan: [],
            environment,
            taskToken: token,
            now,
          },
          mode,
        ),
      );
    } else if (phase.at === 'holding') {
      const environment = PLAN[phase.index]?.name ?? '';
      const history = deployed.get(environment) ?? [];
      history.push(n);
      deployed.set(environment, history);
      const next = phase.index + 1;
      phases.set(n, next < PLAN.length ? { at: 'before', index: next } : { at: 'ended' });
      await ledger.apply(LINE, mode, (state) =>
        leaveEnvironment(state, { executionArn: arn(n), environment, now }, mode),
      );
      if (next >= PLAN.length) await end(n);
    }
    await settle();
  }
  for (const [n, phase] of phases) if (phase.at !== 'ended') await end(n);
  await settle();

  const regressions = [...deployed.values()].reduce(
    (sum, history) => sum + history.filter((sequence, i) => i > 0 && sequence < (history[i - 1] ?? 0)).length,
    0,
  );
  const { state } = await store.read(LINE);
  const orphaned =
    Object.values(state.environments).filter((e) => e.holder !== null).length +
    state.runs.filter((r) => r.waiting !== null || r.holding !== null).length +
    state.runs.length;
  return { regressions, orphaned };
}

describe('release control under any interleaving of runs, failures and stops', () => {
  it.for(['SUPERSEDED', 'QUEUED'] as const)(
    '%s: no environment regresses and no hold outlives its run',
    async (mode, { task, onTestFinished }) => {
      let tried = 0;
      let regressions = 0;
      let orphaned = 0;
      // Recorded however the property ends, so the summary shows a regression it found.
      onTestFinished(() =>
        record(task, {
          cases: { [`release: interleavings (${mode})`]: tried },
          environmentRegressions: regressions,
          orphanedHolds: orphaned,
        }),
      );
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 2, max: 6 }),
          fc.array(fc.nat(1000), { minLength: 20, maxLength: 200 }),
          async (runs, choices) => {
            const outcome = await simulate(mode, runs, choices);
            tried += 1;
            regressions += outcome.regressions;
            orphaned += outcome.orphaned;
            return outcome.regressions === 0 && outcome.orphaned === 0;
          },
        ),
        { numRuns: 300 },
      );
      expect([regressions, orphaned]).toEqual([0, 0]);
    },
  );
});
