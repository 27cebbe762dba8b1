import * as z from '#shared/zod.ts';
import { PullRequestSchema } from './pull-request.ts';
import { PushSchema } from './push.ts';
import { ExecutionModeSchema } from './release.ts';

/**
 * The pipeline's contracts: what an execution starts with, what the approval gate and the notification
 * tasks receive, and what an approval decision returns into the execution. The state machine
 * (statemachines/pipeline.asl.json), the Lambda handlers and the local runtime all speak these shapes.
 */

/** One deployment environment, in the order the pipeline visits them. */
export const EnvironmentSchema = z.object({
  /** Lower-case name used in build variables, Terraform state keys and URLs (`dev`, `qa`, `prod`). */
  name: z
    .string()
    .check(
      z.regex(/^[a-z][a-z0-9-]{0,30}$/, 'lower-case letters, digits and dashes, starting with a letter'),
    ),
  /** True when a person must approve before this environment's stages run. */
  approval: z._default(z.boolean(), false),
  /**
   * When a run fails while it holds this environment (its Infrastructure or Deploy, the deploy's health
   * check included), redeploy the environment's last successful deployment (shared/rollback.ts). Off by default.
   */
  rollbackOnFailure: z.optional(z.boolean()),
  /**
   * On AWS: the IAM managed policy this environment's Terraform builds run with, instead of the stack's
   * `infrastructurePolicyArn` parameter (serverless.params.cjs gives each environment its own build roles).
   */
  infrastructurePolicyArn: z.optional(
    z.string().check(z.regex(/^arn:aws[a-z-]*:iam::(\d{12}|aws):policy\/[\w+=,.@/-]+$/, 'an IAM policy ARN')),
  ),
  /**
   * On AWS: a role, usually in an account of this environment's own, that its builds assume before they
   * change anything (README, "An environment in its own account"). Only this environment's roles may.
   */
  assumeRoleArn: z.optional(
    z.string().check(z.regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/, 'an IAM role ARN')),
  ),
});
export type Environment = z.infer<typeof EnvironmentSchema>;

/** Where each stage's buildspec lives in the pushed repository. */
export const BuildspecPathsSchema = z.object({
  /** The Test stage's, first in every run (push or pull request) unless `settings.test` is false. */
  test: z._default(z.string().check(z.minLength(1)), 'buildspecs/test.yml'),
  infrastructure: z._default(z.string().check(z.minLength(1)), 'buildspecs/infrastructure.yml'),
  image: z._default(z.string().check(z.minLength(1)), 'buildspecs/image.yml'),
  deploy: z._default(z.string().check(z.minLength(1)), 'buildspecs/deploy.yml'),
});

/** The most retries a stage may have: a build that fails 4 times in a row needs a person, not a fifth try. */
export const MAX_RETRIES = 3;

const retryCount = z._default(z.number().check(z.int(), z.gte(0), z.lte(MAX_RETRIES)), 0);

/** Retries of a failed build, per stage (`settings.retries`). */
export const RetriesSchema = z.strictObject({
  test: retryCount,
  image: retryCount,
  infrastructure: retryCount,
  deploy: retryCount,
});
export type Retries = z.infer<typeof RetriesSchema>;

/** The pipeline's settings (configuration, the same for every run of a deployment). */
export const PipelineSettingsSchema = z.object({
  environments: z._default(z.array(EnvironmentSchema).check(z.minLength(1)), [
    { name: 'dev', approval: false },
    { name: 'prod', approval: true },
  ]),
  buildspecs: z._default(BuildspecPathsSchema, {
    test: 'buildspecs/test.yml',
    infrastructure: 'buildspecs/infrastructure.yml',
    image: 'buildspecs/image.yml',
    deploy: 'buildspecs/deploy.yml',
  }),
  /**
   * Whether the Test stage runs (the `buildspecs.test` build, first in every run). `false` skips it: a
   * repository without tests then deploys as before, and pull requests start a run only when
   * `pullRequests.image` is true.
   */
  test: z._default(z.boolean(), true),
  /** What a pull-request run builds besides the Test stage: `image: true` adds the Image stage. */
  pullRequests: z._default(z.object({ image: z._default(z.boolean(), false) }), { image: false }),
  /** How long the approval gate waits before the run fails as expired. Default 24 hours. */
  approvalTimeoutSeconds: z._default(z.number().check(z.int(), z.gte(60), z.lte(365 * 24 * 3600)), 24 * 3600),
  /**
   * How runs of one repository and branch share the environments (shared/release.ts): SUPERSEDED (a newer
   * run retires older ones), QUEUED (runs wait in push order) or PARALLEL (no holds; unsafe for shared
   * environments). CodePipeline V2's names.
   */
  executionMode: z._default(ExecutionModeSchema, 'SUPERSEDED'),
  /**
   * How many times a failed build of each stage runs again before the run fails (CodePipeline V2's retry
   * on failure): 0, the default, retries nothing; `deploy: 2` gives each environment's Deploy 3 attempts.
   * Only a failed build is retried (States.TaskFailed), not a timeout nor an error of the pipeline itself.
   */
  retries: z._default(RetriesSchema, { test: 0, image: 0, infrastructure: 0, deploy: 0 }),
});
export type PipelineSettings = z.infer<typeof PipelineSettingsSchema>;

/** CodeBuild's source types for the providers stepline accepts (GitLab: see {@link sourceTypeOf}). */
export const SOURCE_TYPES = {
  github: 'GITHUB',
  gitlab: 'GITLAB',
  bitbucket: 'BITBUCKET',
  codecommit: 'CODECOMMIT',
} as const;

/** The GitLab host CodeBuild's `GITLAB` source type stands for; any other GitLab is `GITLAB_SELF_MANAGED`. */
const GITLAB_COM = 'gitlab.com';

/**
 * CodeBuild's source type for a push. GitLab.com is `GITLAB`; a GitLab on any other host is
 * `GITLAB_SELF_MANAGED`, which CodeBuild reaches through its own CodeConnections host
 * (https://docs.aws.amazon.com/codebuild/latest/APIReference/API_ProjectSource.html, `type`).
 *
 * @example
 * ```ts
 * sourceTypeOf({ provider: 'gitlab', repository: { cloneUrl: 'https://git.acme.dev/shop/app.git' } }); // 'GITLAB_SELF_MANAGED'
 * ```
 */
export function sourceTypeOf(push: {
  provider: keyof typeof SOURCE_TYPES;
  repository: { cloneUrl: string };
}): z.infer<typeof BuildSourceSchema>['type'] {
  if (push.provider !== 'gitlab') return SOURCE_TYPES[push.provider];
  const host = URL.canParse(push.repository.cloneUrl) ? new URL(push.repository.cloneUrl).hostname : '';
  return host === GITLAB_COM ? 'GITLAB' : 'GITLAB_SELF_MANAGED';
}

/** The source override every build of a run uses: the pushed repository at the exact commit. */
export const BuildSourceSchema = z.object({
  type: z.enum(['GITHUB', 'GITLAB', 'GITLAB_SELF_MANAGED', 'BITBUCKET', 'CODECOMMIT']),
  location: z.string().check(z.minLength(1)),
  version: z.string().check(z.minLength(1)),
});

/**
 * The execution input: the push, where to build it from, and the settings. Never a secret. A pull-request
 * run carries the request in `pullRequest` (and its head commit as `push`); a push run carries
 * `pullRequest: null`, which the state machine's choices read.
 */
export const ExecutionInputSchema = z.object({
  push: PushSchema,
  pullRequest: z._default(z.nullable(PullRequestSchema), null),
  deliveryId: z.optional(z.string()),
  /** The push's place in its line (repository and ref), from 1: runs enter environments in this order. */
  sequence: z.number().check(z.int(), z.positive()),
  source: BuildSourceSchema,
  settings: PipelineSettingsSchema,
});
export type ExecutionInput = z.infer<typeof ExecutionInputSchema>;

/** What the approval gate's Lambda (`lambda:invoke.waitForTaskToken`) receives. */
export const ApprovalRequestSchema = z.object({
  taskToken: z.string().check(z.minLength(1)),
  /** `$$.Execution.Id`. */
  executionArn: z.string().check(z.minLength(1)),
  /** `$$.State.EnteredTime`: with timeoutSeconds, when the gate expires. */
  enteredAt: z.string().check(z.minLength(1)),
  timeoutSeconds: z.number().check(z.int(), z.positive()),
  /** The environment waiting for approval. */
  environment: z.string().check(z.minLength(1)),
  push: PushSchema,
  /** Stages that passed so far, as people read them (`Image`, `dev: Deploy`, …). */
  passed: z._default(z.array(z.string()), []),
  imageUri: z.optional(z.string()),
});
export type ApprovalRequest = z.infer<typeof ApprovalRequestSchema>;

/** What a decision returns into the execution (SendTaskSuccess output, or the SendTaskFailure cause). */
export const ApprovalDecisionSchema = z.object({
  approved: z.boolean(),
  /** The name as the approver entered it; not an identity check. */
  approver: z.nullable(z.string().check(z.maxLength(200))),
  comment: z.nullable(z.string().check(z.maxLength(2000))),
  decidedAt: z.string(),
  sourceIp: z.nullable(z.string()),
});
export type ApprovalDecision = z.infer<typeof ApprovalDecisionSchema>;

const CodeBuildReportSchema = z.looseObject({
  Arn: z.nullish(z.string()),
  Name: z.nullish(z.string()),
  Status: z.nullish(z.string()),
  TestSummary: z.nullish(
    z.looseObject({
      Total: z.nullish(z.number()),
      StatusCounts: z.nullish(z.record(z.string(), z.number())),
    }),
  ),
});

const CodeBuildTestCaseSchema = z.looseObject({
  Name: z.nullish(z.string()),
  Prefix: z.nullish(z.string()),
  TestSuiteName: z.nullish(z.string()),
  Message: z.nullish(z.string()),
  Status: z.nullish(z.string()),
});

/**
 * One test report of the Test build, as the state machine reads it: its ARN, the BatchGetReports response
 * (`Reports`, with the TestSummary) and the DescribeTestCases response of its FAILED cases (`TestCases`), as
 * Step Functions' CodeBuild integrations return them (PascalCase). Both are empty objects when the report
 * could not be read.
 */
export const TestReportReadSchema = z.object({
  Arn: z.string(),
  Read: z.looseObject({ Reports: z.nullish(z.array(CodeBuildReportSchema)) }),
  Failed: z.looseObject({ TestCases: z.nullish(z.array(CodeBuildTestCaseSchema)) }),
});
export type TestReportRead = z.infer<typeof TestReportReadSchema>;

/**
 * What the Test stage left for the notifications: `skipped` when `settings.test` is false, else the reports
 * read after the build (none when its buildspec names no `reports`).
 */
export const TestOutcomeSchema = z.union([
  z.object({ skipped: z.literal(true) }),
  z.looseObject({ reports: z._default(z.array(TestReportReadSchema), []) }),
]);
export type TestOutcome = z.infer<typeof TestOutcomeSchema>;

/**
 * The attempt each build of a run ended on (1 unless retried): the run's Test and Image, and each deployed
 * environment's Infrastructure and Deploy, in the order of `deployed`.
 */
export const RunAttemptsSchema = z.object({
  test: z.number().check(z.int(), z.gte(1)),
  image: z.number().check(z.int(), z.gte(1)),
  environments: z.optional(
    z.array(
      z.object({
        infrastructure: z.number().check(z.int(), z.gte(1)),
        deploy: z.number().check(z.int(), z.gte(1)),
      }),
    ),
  ),
});
export type RunAttempts = z.infer<typeof RunAttemptsSchema>;

/** What the notification task (`lambda:invoke` of the notify function) receives from the state machine. */
export const NotifyRequestSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('succeeded'),
    executionArn: z.string(),
    push: PushSchema,
    imageUri: z.optional(z.string()),
    /** Environments deployed, in order. */
    deployed: z.array(z.string()),
    /**
     * The decisions of the approval gates passed. The state machine sends one entry per deployed
     * environment, null where none was needed (JSONPath cannot drop them); parsing keeps the decisions.
     */
    approvals: z.pipe(
      z._default(z.array(z.nullable(ApprovalDecisionSchema)), []),
      z.transform((entries) => entries.filter((entry): entry is ApprovalDecision => entry !== null)),
    ),
    test: z.optional(TestOutcomeSchema),
    attempts: z.optional(RunAttemptsSchema),
    retries: z.optional(RetriesSchema),
  }),
  z.object({
    /** A pull-request run whose stages (Test, and Image when asked) all passed. Nothing is deployed. */
    kind: z.literal('checked'),
    executionArn: z.string(),
    push: PushSchema,
    pullRequest: PullRequestSchema,
    test: TestOutcomeSchema,
    imageUri: z.optional(z.string()),
    attempts: z.optional(RunAttemptsSchema),
    retries: z.optional(RetriesSchema),
  }),
  z.object({
    kind: z.literal('failed'),
    executionArn: z.string(),
    push: PushSchema,
    /** The pull request of a pull-request run, when the failed stage is Test. */
    pullRequest: z.nullish(PullRequestSchema),
    /** The Test stage's reports, when it is the stage that failed. */
    test: z.optional(TestOutcomeSchema),
    /** The stage that failed, as people read it (`dev: Deploy`). */
    stage: z.string(),
    /** The error and cause Step Functions caught (`States.TaskFailed`, the build JSON, …). */
    error: z.string(),
    cause: z.optional(z.string()),
    /**
     * The run's redrive count when the stage failed (`failedIn`) and now (`current`). Present, the notify
     * task also ends the run with `Pipeline.StageFailed` after notifying; in a redrive (`current` above
     * `failedIn`) it notifies nothing and the state machine runs the stage again.
     */
    redrive: z.optional(
      z.object({
        failedIn: z.number().check(z.int(), z.gte(0)),
        current: z.number().check(z.int(), z.gte(0)),
      }),
    ),
    /** The attempt the stage failed on, of how many its retries allowed (`{ number: 3, of: 3 }`). */
    attempt: z.optional(
      z.object({ number: z.number().check(z.int(), z.gte(1)), of: z.number().check(z.int(), z.gte(1)) }),
    ),
  }),
  z.object({
    /** The rollback machine redeployed a recorded deployment (shared/rollback.ts). */
    kind: z.literal('rolled-back'),
    executionArn: z.string(),
    /** The push as the target commit. */
    push: PushSchema,
    environment: z.string(),
    /** The commit it went back from, and the run whose deployment it deployed again. */
    from: z.nullable(z.string()),
    run: z.string(),
    imageUri: z.string(),
    automatic: z.boolean(),
  }),
  z.object({
    kind: z.enum(['rejected', 'expired']),
    executionArn: z.string(),
    push: PushSchema,
    environment: z.string(),
    decision: z.optional(ApprovalDecisionSchema),
  }),
]);
export type NotifyRequest = z.infer<typeof NotifyRequestSchema>;
