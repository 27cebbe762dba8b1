import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalLineStore } from '#local/state/release-lines.ts';
import { createHoldsHandler } from '#shared/handlers/holds.ts';
import { createLogger } from '#shared/logger.ts';
import { ReleaseLedger } from '#shared/release-ledger.ts';
import { countPassingRunTransitions } from '../test/helpers/asl-harness.ts';
import { lambdaContext } from '../test/helpers/lambda.ts';
import { type BenchSection, median, percentile } from './table.ts';

const TWO = [
  { name: 'dev', approval: false },
  { name: 'prod', approval: true },
];
/** The release states a passing run enters: Join line, then Enter and Leave environment per environment. */
const RELEASE_STATES = 1 + 2 * TWO.length;
const RUNS = 1000;
/** Step Functions Standard: $0.025 per 1,000 state transitions. */
const PER_TRANSITION = 0.025 / 1000;
/** DynamoDB on demand (us-east-1): $0.625 per million write request units, $0.125 per million read units. */
const PER_WRITE_UNIT = 0.625 / 1e6;
const PER_READ_UNIT = 0.125 / 1e6;
/** Lambda: $0.20 per million requests; arm64 $0.0000133334 per GB-second, 256 MB for ~50 ms each. */
const PER_INVOCATION = 0.2 / 1e6 + 0.0000133334 * 0.25 * 0.05;
const ENTRIES = 200;

/**
 * What release control costs a run: the state transitions it adds (counted on the real ASL), the
 * DynamoDB and Lambda calls it makes per run on AWS, and the time one environment's enter and leave take
 * in the local mode (the holds handler over `.stepline/lines/`, each write fsynced).
 */
export async function releaseControl(): Promise<BenchSection> {
  const transitions = await countPassingRunTransitions(TWO);
  const added = RELEASE_STATES;
  const without = transitions - added;
  // Per run of two environments: the push number, join, enter and leave each environment, the end.
  const writes = 1 + 1 + 2 * TWO.length + 1;
  const reads = writes - 1;
  // A line's item stays under 2 KB while a handful of runs are in it: 2 write units, 1 read unit each.
  const dynamo = (writes * 2 * PER_WRITE_UNIT + reads * PER_READ_UNIT) * RUNS;
  // join, enter and leave per environment; the end is the pipelineEvents invocation that already ran.
  const invocations = 1 + 2 * TWO.length;
  const lambda = invocations * PER_INVOCATION * RUNS;

  const dir = await mkdtemp(join(tmpdir(), 'stepline-bench-release-'));
  const samples: number[] = [];
  try {
    const store = await LocalLineStore.open(dir);
    const tokens = { resumed: 0 };
    const ledger = new ReleaseLedger({
      store,
      decider: { succeed: async () => void tokens.resumed++, fail: async () => undefined },
      stopper: { stop: async () => undefined },
      notifier: { publish: async () => undefined },
      logger: createLogger('holds', 'SILENT'),
    });
    const handler = createHoldsHandler({
      ledger,
      logger: createLogger('holds', 'SILENT'),
      now: () => new Date(),
    });
    const context = lambdaContext('stepline-bench-holds');
    const push = {
      provider: 'github',
      repository: { fullName: 'acme/shop', cloneUrl: 'x' },
      ref: 'refs/heads/main',
    };
    for (let n = 1; n <= ENTRIES; n++) {
      const run = {
        executionArn: `arn:aws:states:eu-west-1:123456789012:execution:stepline-bench-pipeline:run-${n}`,
        push,
        sequence: n,
        commit: String(n).padStart(40, '0'),
        mode: 'QUEUED',
      };
      await handler({ action: 'join', ...run, environments: TWO }, context);
      const started = performance.now();
      await handler({ action: 'enter', ...run, environment: 'dev', taskToken: `token-${n}` }, context);
      await handler({ action: 'leave', ...run, environment: 'dev' }, context);
      samples.push(performance.now() - started);
    }
    if (tokens.resumed !== ENTRIES) throw new Error(`expected ${ENTRIES} entries, got ${tokens.resumed}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const ms = (value: number) => `${value.toFixed(1)} ms`;
  return {
    title: 'Release control: what holds add to a run (dev, prod+approval)',
    columns: ['figure', 'value'],
    rows: [
      ['state transitions per successful run', `${transitions} (${without} without holds, +${added})`],
      [
        'Step Functions, per 1,000 runs',
        `${(transitions * PER_TRANSITION * RUNS).toFixed(3)} USD (+${(added * PER_TRANSITION * RUNS).toFixed(3)})`,
      ],
      [
        'DynamoDB on demand, per 1,000 runs',
        `${dynamo.toFixed(4)} USD (${writes} writes, ${reads} reads a run)`,
      ],
      ['Lambda (holds), per 1,000 runs', `${lambda.toFixed(4)} USD (${invocations} invocations a run)`],
      ['local: enter + leave one environment, median', ms(median(samples))],
      ['local: enter + leave one environment, p95', ms(percentile(samples, 0.95))],
    ],
    notes: [
      'transitions: statemachines/pipeline.asl.json run by aws-local-stepfunctions, every build passing and the approval approved; the release states are Join line, then Enter and Leave environment per environment',
      'DynamoDB: one item per line, written with a condition on its version; a write of ≤ 2 KB is 2 write units on demand, a strongly consistent read of ≤ 4 KB 1 read unit (aws.amazon.com/dynamodb/pricing/on-demand, us-east-1)',
      `local: the holds handler over .stepline/lines/ (LocalLineStore, each write fsynced), ${ENTRIES} runs (each on a branch of its own) joining, then entering and leaving dev, one after another; the engine's own transitions add well under a millisecond`,
    ],
  };
}
