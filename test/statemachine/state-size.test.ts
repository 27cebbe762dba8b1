import { describe, expect, it } from 'vitest';
import { executionInput } from '#shared/ingest.ts';
import { type PipelineSettings, PipelineSettingsSchema } from '#shared/pipeline.ts';
import { PUSH_IDENTIFIER_LIMIT, PUSH_TEXT_LIMITS, STEP_FUNCTIONS_MAX_STATE_BYTES } from '#shared/push.ts';
import {
  buildEnvironment,
  buildFailed,
  type HandlersByResource,
  largestStateData,
  loadProjectStateMachine,
  passingHandlers,
  RESOURCE,
  runStateMachine,
} from '../helpers/asl-harness.ts';
import { aPush } from '../helpers/push.ts';

/*
 * Step Functions fails a state whose input or output is over 256 KiB of UTF-8 (States.DataLimitExceeded):
 * https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html. These runs give the pipeline
 * the largest input the webhook can start it with, and measure every state's data.
 */

const pipeline = loadProjectStateMachine('pipeline');

/** A control character: one code point, six bytes once escaped in JSON, the most any character costs. */
const WIDEST = '\u0001';
const widest = (length: number) => WIDEST.repeat(length);

/**
 * The most settings STEPLINE_SETTINGS can hold: Lambda allows 4 KB for all of a function's environment
 * variables together (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html), filled here
 * with as many environments with approval as fit.
 */
function largestSettings(): PipelineSettings {
  const environments: { name: string; approval: boolean }[] = [];
  const json = () => JSON.stringify({ environments });
  for (let i = 0; ; i++) {
    environments.push({ name: `e${String(i).padStart(3, '0')}${'x'.repeat(27)}`, approval: true });
    if (Buffer.byteLength(json()) > 4096) {
      environments.pop();
      break;
    }
  }
  return PipelineSettingsSchema.parse({ environments });
}

/** The largest execution input the webhook can start: every bounded field at its bound. */
function largestInput() {
  const long = widest(PUSH_IDENTIFIER_LIMIT);
  const push = aPush({
    repository: { fullName: long, cloneUrl: long, defaultBranch: long },
    ref: `refs/heads/${widest(PUSH_IDENTIFIER_LIMIT - 'refs/heads/'.length)}`,
    refName: widest(PUSH_IDENTIFIER_LIMIT - 'refs/heads/'.length),
    pusher: widest(PUSH_TEXT_LIMITS.pusher * 10),
    headCommitMessage: widest(PUSH_TEXT_LIMITS.headCommitMessage * 10),
    changedFiles: Array.from({ length: 10_000 }, (_, i) => `src/${i}.ts`),
  });
  return executionInput(push, widest(200), largestSettings(), Number.MAX_SAFE_INTEGER);
}

/** Passing handlers whose builds export a long image URI, as a buildspec could. */
function handlers(failIn?: string): HandlersByResource {
  const passing = passingHandlers();
  return {
    ...passing,
    [RESOURCE.startBuildSync]: (input, call) => {
      if (
        failIn !== undefined &&
        buildEnvironment(input).STEPLINE_ENVIRONMENT === failIn &&
        call.stateName === 'Deploy'
      ) {
        throw buildFailed(input, { buildNumber: 41 });
      }
      return passing[RESOURCE.startBuildSync]?.(input, call);
    },
  };
}

describe('state data with the largest input the webhook starts', () => {
  it('starts from an execution input under a quarter of the quota', () => {
    const bytes = Buffer.byteLength(JSON.stringify(largestInput()), 'utf8');
    console.info(`largest execution input: ${bytes} bytes`);
    expect(bytes).toBeLessThan(STEP_FUNCTIONS_MAX_STATE_BYTES / 4);
  });

  it('keeps every state of a passing run, Map iterations included, under 256 KiB', async () => {
    const input = largestInput();
    const run = await runStateMachine(pipeline, input, { handlers: handlers() });
    expect(run.status).toBe('SUCCEEDED');
    const largest = largestStateData(run);
    console.info(
      `passing run over ${input.settings.environments.length} environments: largest state data ${largest.bytes} bytes (${largest.where})`,
    );
    expect(largest.bytes).toBeGreaterThan(Buffer.byteLength(JSON.stringify(input)));
    expect(largest.bytes).toBeLessThan(STEP_FUNCTIONS_MAX_STATE_BYTES);
  }, 60_000);

  it('keeps the Catch output of a failed build in the last environment under 256 KiB', async () => {
    const input = largestInput();
    const last = input.settings.environments.at(-1)?.name;
    const run = await runStateMachine(pipeline, input, { handlers: handlers(last) });
    expect(run.status).toBe('FAILED');
    const caught = run.events.filter((event) => event.type === 'StateCaught');
    expect(caught.length).toBeGreaterThan(0);
    const largest = largestStateData(run);
    console.info(`failed run: largest state data ${largest.bytes} bytes (${largest.where})`);
    expect(largest.bytes).toBeLessThan(STEP_FUNCTIONS_MAX_STATE_BYTES);
  }, 60_000);

  it('measures what it claims: a state carrying the 10,000 files would be over the quota', () => {
    const files = Array.from(
      { length: 10_000 },
      (_, i) => `src/module-${i}/a-long-descriptive-file-name-${i}.ts`,
    );
    expect(largestStateData({ events: [], output: { push: { changedFiles: files } } }).bytes).toBeGreaterThan(
      STEP_FUNCTIONS_MAX_STATE_BYTES,
    );
  });
});
