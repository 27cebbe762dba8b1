import type { Environment } from '#shared/pipeline.ts';
import { countPassingRunTransitions } from '../test/helpers/asl-harness.ts';
import type { BenchSection } from './table.ts';

/** Step Functions Standard, us-east-1 and most regions: $0.025 per 1,000 state transitions. */
const STEP_FUNCTIONS_PER_TRANSITION = 0.025 / 1000;
/** CodePipeline V2: $0.002 per action execution minute, each action's duration rounded up to the minute. */
const CODEPIPELINE_PER_ACTION_MINUTE = 0.002;
const BUILD_MINUTES = 5;
const RUNS = 1000;
const AIM_TWO_ENVIRONMENTS = 30;

const SETUPS: { label: string; environments: Environment[] }[] = [
  {
    label: 'dev, prod+approval',
    environments: [
      { name: 'dev', approval: false },
      { name: 'prod', approval: true },
    ],
  },
  {
    label: 'dev, qa, staging, prod+approval',
    environments: [
      { name: 'dev', approval: false },
      { name: 'qa', approval: false },
      { name: 'staging', approval: false },
      { name: 'prod', approval: true },
    ],
  },
];

const usd = (amount: number) => `${amount.toFixed(2)} USD`;

/**
 * State transitions of a successful run, counted on the real pipeline state machine run by
 * aws-local-stepfunctions (one per state entered, Map iterations included), and what orchestrating
 * 1,000 such runs costs on Step Functions Standard beside CodePipeline V2 with the same stages.
 */
export async function transitionsAndCost(): Promise<BenchSection> {
  const rows: string[][] = [];
  let twoEnvironments = Number.NaN;
  for (const { label, environments } of SETUPS) {
    const transitions = await countPassingRunTransitions(environments);
    if (environments.length === 2) twoEnvironments = transitions;
    // One image build, then an infrastructure and a deploy build per environment; approvals bill nothing.
    const buildActions = 1 + 2 * environments.length;
    const actionMinutes = buildActions * BUILD_MINUTES;
    rows.push([
      label,
      String(transitions),
      usd(transitions * STEP_FUNCTIONS_PER_TRANSITION * RUNS),
      `${buildActions} × ${BUILD_MINUTES} min`,
      usd(actionMinutes * CODEPIPELINE_PER_ACTION_MINUTE * RUNS),
    ]);
  }
  return {
    title: 'Pipeline orchestration: state transitions per successful run, cost per 1,000 runs',
    columns: [
      'environments',
      'transitions',
      'Step Functions Standard',
      'CodePipeline V2 actions',
      'CodePipeline V2',
    ],
    rows,
    notes: [
      `transitions counted on statemachines/pipeline.asl.json run by aws-local-stepfunctions (test/helpers/asl-harness.ts): one per state entered, Map iterations included, every build passing and the approval approved; aim ≤ ${AIM_TWO_ENVIRONMENTS} for two environments: ${twoEnvironments <= AIM_TWO_ENVIRONMENTS ? 'met' : 'missed'} (${twoEnvironments})`,
      'Step Functions Standard at $0.025 per 1,000 state transitions (aws.amazon.com/step-functions/pricing); waiting on the approval token adds no transition',
      `CodePipeline V2 at $0.002 per action execution minute, duration rounded up to the minute: the image build plus an infrastructure and a deploy build per environment, ${BUILD_MINUTES} minutes each`,
      'the manual approval action counts 0 minutes: CodePipeline V2 charges "all action types except for manual approval and custom action types" (aws.amazon.com/codepipeline/pricing), however long it waits',
      'not counted on either side: CodeBuild minutes (the same builds on both), free tiers (4,000 transitions, 100 action minutes a month), the source action a CodePipeline pipeline also needs (≥ 1 billed minute: +2.00 USD per 1,000 runs), and the Lambda, SNS and EventBridge calls of stepline (fractions of a cent per 1,000 runs)',
    ],
  };
}
