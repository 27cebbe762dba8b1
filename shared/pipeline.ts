import * as z from 'zod';
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
    .regex(/^[a-z][a-z0-9-]{0,30}$/, 'lower-case letters, digits and dashes, starting with a letter'),
  /** True when a person must approve before this environment's stages run. */
  approval: z.boolean().default(false),
  /**
   * When a run fails while it holds this environment (its Infrastructure or Deploy, the deploy's health
   * check included), redeploy the environment's last successful deployment (shared/rollback.ts). Off by default.
   */
  rollbackOnFailure: z.boolean().optional(),
  /**
   * On AWS: the IAM managed policy this environment's Terraform builds run with, instead of the stack's
   * `infrastructurePolicyArn` parameter (serverless.params.cjs gives each environment its own build roles).
   */
  infrastructurePolicyArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:iam::(\d{12}|aws):policy\/[\w+=,.@/-]+$/, 'an IAM policy ARN')
    .optional(),
  /**
   * On AWS: a role, usually in an account of this environment's own, that its builds assume before they
   * change anything (README, "An environment in its own account"). Only this environment's roles may.
   */
  assumeRoleArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/, 'an IAM role ARN')
    .optional(),
});
export type Environment = z.infer<typeof EnvironmentSchema>;

/** Where each stage's buildspec lives in the pushed repository. */
export const BuildspecPathsSchema = z.object({
  /** The Test stage's, first in every run (push or pull request) unless `settings.test` is false. */
  test: z.string().min(1).default('buildspecs/test.yml'),
  infrastructure: z.string().min(1).default('buildspecs/infrastructure.yml'),
  image: z.string().min(1).default('buildspecs/image.yml'),
  deploy: z.string().min(1).default('buildspecs/deploy.yml'),
});

/** The most retries a stage may have: a build that fails 4 times in a row needs a person, not a fifth try. */
export const MAX_RETRIES = 3;

const retryCount = z.number().int().min(0).max(MAX_RETRIES).default(0);

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
  environments: z
    .array(EnvironmentSchema)
    .min(1)
    .default([
      { name: 'dev', approval: false },
      { name: 'prod', approval: true },
    ]),
  buildspecs: BuildspecPathsSchema.default({
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
  test: z.boolean().default(true),
  /** What a pull-request run builds besides the Test stage: `image: true` adds the Image stage. */
  pullRequests: z.object({ image: z.boolean().default(false) }).default({ image: false }),
  /** How long the approval gate waits before the run fails as expired. Default 24 hours. */
  approvalTimeoutSeconds: z
    .number()
    .int()
    .min(60)
    .max(365 * 24 * 3600)
    .default(24 * 3600),
  /**
   * How runs of one repository and branch share the environments (shared/release.ts): SUPERSEDED (a newer
   * run retires older ones), QUEUED (runs wait in push order) or PARALLEL (no holds; unsafe for shared
   * environments). CodePipeline V2's names.
   */
  executionMode: ExecutionModeSchema.default('SUPERSEDED'),
  /**
   * How many times a failed build of each stage runs again before the run fails (CodePipeline V2's retry
   * on failure): 0, the default, retries nothing; `deploy: 2` gives each environment's Deploy 3 attempts.
   * Only a failed build is retried (States.TaskFailed), not a timeout nor an error of the pipeline itself.
   */
  retries: RetriesSchema.default({ test: 0, image: 0, infrastructure: 0, deploy: 0 }),
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
  location: z.string().min(1),
  version: z.string().min(1),
});

/**
 * The execution input: the push, where to build it from, and the settings. Never a secret. A pull-request
 * run carries the request in `pullRequest` (and its head commit as `push`); a push run carries
 * `pullRequest: null`, which the state machine's choices read.
 */
export const ExecutionInputSchema = z.object({
  push: PushSchema,
  pullRequest: PullRequestSchema.nullable().default(null),
  deliveryId: z.string().optional(),
  /** The push's place in its line (repository and ref), from 1: runs enter environments in this order. */
  sequence: z.number().int().positive(),
  source: BuildSourceSchema,
  settings: PipelineSettingsSchema,
});
export type ExecutionInput = z.infer<typeof ExecutionInputSchema>;

/** What the approval gate's Lambda (`lambda:invoke.waitForTaskToken`) receives. */
export const ApprovalRequestSchema = z.object({
  taskToken: z.string().min(1),
  /** `$$.Execution.Id`. */
  executionArn: z.string().min(1),
  /** `$$.State.EnteredTime`: with timeoutSeconds, when the gate expires. */
  enteredAt: z.string().min(1),
  timeoutSeconds: z.number().int().positive(),
  /** The environment waiting for approval. */
  environment: z.string().min(1),
  push: PushSchema,
  /** Stages that passed so far, as people read them (`Image`, `dev: Deploy`, …). */
  passed: z.array(z.string()).default([]),
  imageUri: z.string().optional(),
});
export type ApprovalRequest = z.infer<typeof ApprovalRequestSchema>;

/** What a decision returns into the execution (SendTaskSuccess output, or the SendTaskFailure cause). */
export const ApprovalDecisionSchema = z.object({
  approved: z.boolean(),
  /** The name as the approver entered it; not an identity check. */
  approver: z.string().max(200).nullable(),
  comment: z.string().max(2000).nullable(),
  decidedAt: z.string(),
  sourceIp: z.string().nullable(),
});
export type ApprovalDecision = z.infer<typeof ApprovalDecisionSchema>;

const CodeBuildReportSchema = z.looseObject({
  Arn: z.string().nullish(),
  Name: z.string().nullish(),
  Status: z.string().nullish(),
  TestSummary: z
    .looseObject({
      Total: z.number().nullish(),
      StatusCounts: z.record(z.string(), z.number()).nullish(),
    })
    .nullish(),
});

const CodeBuildTestCaseSchema = z.looseObject({
  Name: z.string().nullish(),
  Prefix: z.string().nullish(),
  TestSuiteName: z.string().nullish(),
  Message: z.string().nullish(),
  Status: z.string().nullish(),
});

/**
 * One test report of the Test build, as the state machine reads it: its ARN, the BatchGetReports response
 * (`Reports`, with the TestSummary) and the DescribeTestCases response of its FAILED cases (`TestCases`), as
 * Step Functions' CodeBuild integrations return them (PascalCase). Both are empty objects when the report
 * could not be read.
 */
export const TestReportReadSchema = z.object({
  Arn: z.string(),
  Read: z.looseObject({ Reports: z.array(CodeBuildReportSchema).nullish() }),
  Failed: z.looseObject({ TestCases: z.array(CodeBuildTestCaseSchema).nullish() }),
});
export type TestReportRead = z.infer<typeof TestReportReadSchema>;

/**
 * What the Test stage left for the notifications: `skipped` when `settings.test` is false, else the reports
 * read after the build (none when its buildspec names no `reports`).
 */
export const TestOutcomeSchema = z.union([
  z.object({ skipped: z.literal(true) }),
  z.looseObject({ reports: z.array(TestReportReadSchema).default([]) }),
]);
export type TestOutcome = z.infer<typeof TestOutcomeSchema>;

/**
 * The attempt each build of a run ended on (1 unless retried): the run's Test and Image, and each deployed
 * environment's Infrastructure and Deploy, in the order of `deployed`.
 */
export const RunAttemptsSchema = z.object({
  test: z.number().int().min(1),
  image: z.number().int().min(1),
  environments: z
    .array(z.object({ infrastructure: z.number().int().min(1), deploy: z.number().int().min(1) }))
    .optional(),
});
export type RunAttempts = z.infer<typeof RunAttemptsSchema>;

/** What the notification task (`lambda:invoke` of the notify function) receives from the state machine. */
export const NotifyRequestSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('succeeded'),
    executionArn: z.string(),
    push: PushSchema,
    imageUri: z.string().optional(),
    /** Environments deployed, in order. */
    deployed: z.array(z.string()),
    /**
     * The decisions of the approval gates passed. The state machine sends one entry per deployed
     * environment, null where none was needed (JSONPath cannot drop them); parsing keeps the decisions.
     */
    approvals: z
      .array(ApprovalDecisionSchema.nullable())
      .default([])
      .transform((entries) => entries.filter((entry): entry is ApprovalDecision => entry !== null)),
    test: TestOutcomeSchema.optional(),
    attempts: RunAttemptsSchema.optional(),
    retries: RetriesSchema.optional(),
  }),
  z.object({
    /** A pull-request run whose stages (Test, and Image when asked) all passed. Nothing is deployed. */
    kind: z.literal('checked'),
    executionArn: z.string(),
    push: PushSchema,
    pullRequest: PullRequestSchema,
    test: TestOutcomeSchema,
    imageUri: z.string().optional(),
    attempts: RunAttemptsSchema.optional(),
    retries: RetriesSchema.optional(),
  }),
  z.object({
    kind: z.literal('failed'),
    executionArn: z.string(),
    push: PushSchema,
    /** The pull request of a pull-request run, when the failed stage is Test. */
    pullRequest: PullRequestSchema.nullish(),
    /** The Test stage's reports, when it is the stage that failed. */
    test: TestOutcomeSchema.optional(),
    /** The stage that failed, as people read it (`dev: Deploy`). */
    stage: z.string(),
    /** The error and cause Step Functions caught (`States.TaskFailed`, the build JSON, …). */
    error: z.string(),
    cause: z.string().optional(),
    /**
     * The run's redrive count when the stage failed (`failedIn`) and now (`current`). Present, the notify
     * task also ends the run with `Pipeline.StageFailed` after notifying; in a redrive (`current` above
     * `failedIn`) it notifies nothing and the state machine runs the stage again.
     */
    redrive: z.object({ failedIn: z.number().int().min(0), current: z.number().int().min(0) }).optional(),
    /** The attempt the stage failed on, of how many its retries allowed (`{ number: 3, of: 3 }`). */
    attempt: z.object({ number: z.number().int().min(1), of: z.number().int().min(1) }).optional(),
  }),
  z.object({
    /** The rollback machine redeployed a recorded deployment (shared/rollback.ts). */
    kind: z.literal('rolled-back'),
    executionArn: z.string(),
    /** The push as the target commit. */
    push: PushSchema,
    environment: z.string(),
    /** The commit it went back from, and the run whose deployment it deployed again. */
    from: z.string().nullable(),
    run: z.string(),
    imageUri: z.string(),
    automatic: z.boolean(),
  }),
  z.object({
    kind: z.enum(['rejected', 'expired']),
    executionArn: z.string(),
    push: PushSchema,
    environment: z.string(),
    decision: ApprovalDecisionSchema.optional(),
  }),
]);
export type NotifyRequest = z.infer<typeof NotifyRequestSchema>;
