import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/**
 * Runs `serverless package` (osls, offline, no AWS credentials) on a copy of the project and reads the
 * CloudFormation it writes. The copy keeps the framework's work folders out of the working tree and lets
 * several runs happen at once.
 */

const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** What the packaging reads: the wiring and everything it bundles. */
const PROJECT_ENTRIES = [
  'serverless.yml',
  'serverless.params.cjs',
  'package.json',
  'tsconfig.json',
  'functions',
  'shared',
  'statemachines',
];

export const STAGE = 'test';
export const REGION = 'eu-west-1';

/** The parameters the template tests deploy with: every optional feature switched on. */
export const PACKAGE_PARAMS: Readonly<Record<string, string>> = {
  infrastructurePolicyArn: 'arn:aws:iam::123456789012:policy/stepline-test-terraform',
  approvalEmails: 'lead@example.com, second.approver@example.org',
  notificationEmails: 'team@example.com',
  codecommitRepositories: 'shop,billing',
  webhookProviders: 'github,gitlab',
  statusProviders: 'github,bitbucket',
  secretsKmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0',
  terraformStateBucket: 'acme-terraform-state',
  eksClusterName: 'apps-{environment}',
  gitlabConnectionArn:
    'arn:aws:codeconnections:eu-west-1:123456789012:connection/5d3c1b2a-0e9f-4a8b-9c7d-6e5f4a3b2c1d',
  gitlabSelfManagedConnectionArn:
    'arn:aws:codeconnections:eu-west-1:123456789012:connection/a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d',
  dockerHubCachePrefix: 'docker-hub',
  dockerHubCredentialArn:
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf',
  triggers: '{"push":[{"branches":{"includes":["main"]}}]}',
  settings: '{"environments":[{"name":"dev"},{"name":"prod","approval":true}]}',
};

export type CfnValue = unknown;

export interface CfnResource {
  Type: string;
  Properties?: Record<string, CfnValue>;
  Condition?: string;
  DependsOn?: string | string[];
}

export interface CfnTemplate {
  Conditions?: Record<string, CfnValue>;
  Resources: Record<string, CfnResource>;
  Outputs?: Record<string, { Value: CfnValue; Description?: string }>;
}

export interface PackageRun {
  exitCode: number;
  output: string;
  durationMs: number;
  outputDir: string;
  workDir: string;
}

/** The environment of the packaging: no AWS credentials or profile of the caller's, no telemetry. */
function offlineEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('AWS_')) env[name] = value;
  }
  return { ...env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off', CI: 'true' };
}

/**
 * Copies the project to a temporary folder and runs `serverless package --stage test --region eu-west-1`
 * there, with `params` as `--param`s. Never throws for a failed packaging: the result carries its exit code
 * and output. The caller removes `workDir`.
 */
export async function runServerlessPackage(
  params: Readonly<Record<string, string>>,
  projectRoot: string = PROJECT_ROOT,
): Promise<PackageRun> {
  const workDir = await mkdtemp(join(tmpdir(), 'stepline-package-'));
  for (const entry of PROJECT_ENTRIES) {
    await cp(join(projectRoot, entry), join(workDir, entry), { recursive: true }).catch((error) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
  await symlink(join(projectRoot, 'node_modules'), join(workDir, 'node_modules'), 'dir');
  const outputDir = join(workDir, 'package');
  const require = createRequire(join(projectRoot, 'package.json'));
  const serverlessBin = join(dirname(require.resolve('osls/package.json')), 'bin', 'serverless.js');
  const args = [
    serverlessBin,
    'package',
    '--stage',
    STAGE,
    '--region',
    REGION,
    '--package',
    outputDir,
    ...Object.entries(params).flatMap(([name, value]) => ['--param', `${name}=${value}`]),
  ];
  const started = performance.now();
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, args, {
      cwd: workDir,
      env: offlineEnvironment(),
      maxBuffer: 16 * 1024 * 1024,
    });
    return {
      exitCode: 0,
      output: stdout + stderr,
      durationMs: performance.now() - started,
      outputDir,
      workDir,
    };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return {
      exitCode: typeof failed.code === 'number' ? failed.code : 1,
      output: `${failed.stdout ?? ''}${failed.stderr ?? ''}`,
      durationMs: performance.now() - started,
      outputDir,
      workDir,
    };
  }
}

export interface PackagedStack {
  template: CfnTemplate;
  /** Where the function zips and templates were written. */
  outputDir: string;
  durationMs: number;
  /** Removes the temporary copy. */
  remove(): Promise<void>;
}

let packaged: Promise<PackagedStack> | undefined;

/**
 * Packages the stack once per test worker with {@link PACKAGE_PARAMS} and returns the parsed
 * `cloudformation-template-update-stack.json`. Fails with the framework's output when packaging fails.
 */
export function packagedStack(): Promise<PackagedStack> {
  packaged ??= (async () => {
    const run = await runServerlessPackage(PACKAGE_PARAMS);
    if (run.exitCode !== 0) {
      await rm(run.workDir, { recursive: true, force: true });
      throw new Error(`serverless package failed (exit ${run.exitCode}):\n${run.output}`);
    }
    const text = await readFile(join(run.outputDir, 'cloudformation-template-update-stack.json'), 'utf8');
    return {
      template: JSON.parse(text) as CfnTemplate,
      outputDir: run.outputDir,
      durationMs: run.durationMs,
      remove: () => rm(run.workDir, { recursive: true, force: true }),
    };
  })();
  return packaged;
}

// --- Reading the template -----------------------------------------------------------------------------

export function resourcesOfType(template: CfnTemplate, type: string): [string, CfnResource][] {
  return Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
}

export function resource(template: CfnTemplate, logicalId: string): CfnResource {
  const found = template.Resources[logicalId];
  if (!found) throw new Error(`No resource ${logicalId} in the template`);
  return found;
}

/** Evaluates a condition made of Fn::Not, Fn::And, Fn::Or, Fn::Equals over literals and other conditions. */
export function evaluateCondition(template: CfnTemplate, name: string): boolean {
  const evaluate = (value: CfnValue): boolean | string => {
    if (typeof value === 'string') return value;
    const node = value as Record<string, CfnValue[]>;
    if ('Condition' in node) return evaluateCondition(template, node.Condition as unknown as string);
    const [fn, args] = Object.entries(node)[0] ?? [];
    const list = (args ?? []) as CfnValue[];
    switch (fn) {
      case 'Fn::Not':
        return !evaluate(list[0]);
      case 'Fn::And':
        return list.every((arg) => evaluate(arg) === true);
      case 'Fn::Or':
        return list.some((arg) => evaluate(arg) === true);
      case 'Fn::Equals':
        return evaluate(list[0]) === evaluate(list[1]);
      default:
        throw new Error(`Cannot evaluate ${JSON.stringify(value)} in condition ${name}`);
    }
  };
  const definition = template.Conditions?.[name];
  if (definition === undefined) throw new Error(`No condition ${name} in the template`);
  const result = evaluate(definition);
  if (typeof result !== 'boolean') throw new Error(`Condition ${name} is not a boolean`);
  return result;
}

/** Resolves `Fn::If` (with `AWS::NoValue` dropping the item) the way CloudFormation would, deeply. */
export function resolveConditionals(template: CfnTemplate, value: CfnValue): CfnValue {
  const NO_VALUE = Symbol('AWS::NoValue');
  const walk = (node: CfnValue): CfnValue | typeof NO_VALUE => {
    if (Array.isArray(node)) {
      return node.map(walk).filter((item) => item !== NO_VALUE);
    }
    if (node === null || typeof node !== 'object') return node;
    const record = node as Record<string, CfnValue>;
    if (record.Ref === 'AWS::NoValue') return NO_VALUE;
    if ('Fn::If' in record) {
      const [condition, whenTrue, whenFalse] = record['Fn::If'] as [string, CfnValue, CfnValue];
      return walk(evaluateCondition(template, condition) ? whenTrue : whenFalse);
    }
    const result: Record<string, CfnValue> = {};
    for (const [key, item] of Object.entries(record)) {
      const resolved = walk(item);
      if (resolved !== NO_VALUE) result[key] = resolved;
    }
    return result;
  };
  return walk(value);
}

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: CfnValue;
  Condition?: CfnValue;
}

/** The statements of every inline policy of an IAM role, with conditions resolved. */
export function roleStatements(template: CfnTemplate, roleLogicalId: string): PolicyStatement[] {
  const role = resolveConditionals(template, resource(template, roleLogicalId)) as CfnResource;
  const policies = (role.Properties?.Policies ?? []) as {
    PolicyDocument: { Statement: PolicyStatement[] };
  }[];
  return policies.flatMap((policy) => policy.PolicyDocument.Statement);
}

/** Every policy statement anywhere in the template: roles' inline policies, managed policies, resource policies. */
export function allStatements(template: CfnTemplate): { where: string; statement: PolicyStatement }[] {
  const found: { where: string; statement: PolicyStatement }[] = [];
  const visit = (where: string, node: CfnValue) => {
    if (Array.isArray(node)) {
      for (const item of node) visit(where, item);
      return;
    }
    if (node === null || typeof node !== 'object') return;
    const record = node as Record<string, CfnValue>;
    if ('Statement' in record && Array.isArray(record.Statement)) {
      for (const statement of record.Statement as PolicyStatement[]) found.push({ where, statement });
      return;
    }
    for (const item of Object.values(record)) visit(where, item);
  };
  for (const [logicalId, item] of Object.entries(template.Resources)) {
    visit(logicalId, resolveConditionals(template, item.Properties ?? {}));
  }
  return found;
}

/** The file names a zip archive lists in its central directory. */
export function zipEntryNames(zip: Buffer): string[] {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (end < 0) throw new Error('Not a zip archive: no end of central directory');
  const count = zip.readUInt16LE(end + 10);
  let offset = zip.readUInt32LE(end + 16);
  const names: string[] = [];
  for (let index = 0; index < count; index++) {
    if (zip.readUInt32LE(offset) !== 0x02014b50) throw new Error('Corrupt zip central directory');
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    names.push(zip.toString('utf8', offset + 46, offset + 46 + nameLength));
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return names;
}

export function asList<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}
