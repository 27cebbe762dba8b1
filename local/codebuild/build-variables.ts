import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { artifactSpecs } from './artifacts.ts';
import type { RunBuildOptions } from './build-result.ts';
import type { Buildspec } from './buildspec.ts';
import { shellQuote } from './shell-quote.ts';

/**
 * A build's variables: resolved in CodeBuild's order of precedence, Parameter Store and Secrets Manager
 * values masked and never exported, and the exported variables read back from the build's shell.
 */

/** What {@link resolveVariables} needs of the build. */
export interface VariableSources {
  spec: Buildspec;
  options: Pick<RunBuildOptions, 'env' | 'parameters' | 'hostEnv'>;
  buildId: string;
  startTime: Date;
  workDir: string;
  /** Secret values are added to it as they are read. */
  mask: SecretMask;
  /** Variables that hold secrets are added to it: they are never exported. */
  notExported: Set<string>;
  log: (message: string) => void;
}

/**
 * What a build takes of the host's environment: an allow-list, not the host's environment minus some, so
 * that nothing of the runtime (its port, state folder, secrets, control token) or of the operator's shell
 * (cloud credentials, tokens) reaches a build by accident. The tools' basics (PATH, HOME, the locale, the
 * time zone, the terminal, proxies and extra CA certificates) pass, and the two knobs of the sample app
 * (`STEPLINE_DEPLOY_PORT`, `STEPLINE_DEPLOY_PORT_BASE`: which ports its environments answer on), which are
 * the operator's settings for the pipeline, not the runtime's. Everything else a build sees comes from the
 * pipeline (the state machine's EnvironmentVariablesOverride: STEPLINE_ENVIRONMENT, STEPLINE_EXECUTION_ID…),
 * the buildspec, and CodeBuild's own CODEBUILD_* values, as on AWS.
 */
export const HOST_VARIABLES: ReadonlySet<string> = new Set([
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TERM',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'NODE_EXTRA_CA_CERTS',
  'STEPLINE_DEPLOY_PORT',
  'STEPLINE_DEPLOY_PORT_BASE',
]);

/** The host variables a build may take (see {@link HOST_VARIABLES}; `LC_*` too). */
export function allowedHostVariables(
  host: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const allowed: Record<string, string> = {};
  for (const [name, value] of Object.entries(host)) {
    if (value !== undefined && (HOST_VARIABLES.has(name) || name.startsWith('LC_'))) allowed[name] = value;
  }
  return allowed;
}

/**
 * Allowed host variables (see {@link HOST_VARIABLES}) < buildspec variables < parameter-store <
 * secrets-manager < start-build overrides < CODEBUILD_*.
 */
export function resolveVariables(
  sources: VariableSources,
): { env: Record<string, string> } | { missing: string[] } {
  const { spec, options, buildId, mask, notExported } = sources;
  const parameters = options.parameters ?? {};
  const missing: string[] = [];
  const env: Record<string, string> = allowedHostVariables(options.hostEnv ?? process.env);
  Object.assign(env, spec.env.variables);

  const fromParameterStore = (variable: string, parameterName: string) => {
    const value = parameters[parameterName];
    if (value === undefined) {
      missing.push(
        `parameter does not exist: ${parameterName} (for ${variable}; not among the local parameters)`,
      );
      return;
    }
    mask.add(value);
    notExported.add(variable);
    env[variable] = value;
  };
  const fromSecretsManager = (variable: string, reference: string) => {
    const secret = readSecret(reference, parameters);
    if ('problem' in secret) {
      missing.push(`${secret.problem} (for ${variable}; not among the local parameters)`);
      return;
    }
    mask.add(secret.value);
    notExported.add(variable);
    env[variable] = secret.value;
  };

  const stored = Object.entries(spec.env.parameterStore);
  if (stored.length > 0) sources.log('Decrypting parameter store environment variables');
  for (const [variable, parameterName] of stored) fromParameterStore(variable, parameterName);
  for (const [variable, reference] of Object.entries(spec.env.secretsManager))
    fromSecretsManager(variable, reference);
  for (const [variable, value] of Object.entries(options.env ?? {})) {
    if (typeof value === 'string' || value.type === 'PLAINTEXT') {
      env[variable] = typeof value === 'string' ? value : value.value;
    } else if (value.type === 'PARAMETER_STORE') {
      fromParameterStore(variable, value.value);
    } else {
      fromSecretsManager(variable, value.value);
    }
  }
  if (missing.length > 0) return { missing };

  const buildUuid = buildId.includes(':') ? buildId.slice(buildId.indexOf(':') + 1) : buildId;
  const defaults: Record<string, string> = {
    CODEBUILD_BUILD_ID: buildId,
    CODEBUILD_BUILD_ARN: `arn:aws:codebuild:local:000000000000:build/${buildId}`,
    CODEBUILD_BUILD_NUMBER: '1',
    CODEBUILD_INITIATOR: 'stepline-local',
    CODEBUILD_LOG_PATH: buildUuid,
    CODEBUILD_START_TIME: String(sources.startTime.getTime()),
  };
  for (const [name, value] of Object.entries(defaults)) env[name] ??= value;
  env.CODEBUILD_SRC_DIR = sources.workDir;
  env.CODEBUILD_CI = 'true';
  env.CODEBUILD_BUILD_SUCCEEDING = '1';
  return { env };
}

/**
 * After POST_BUILD: the exported variables' values and the artifacts' names, evaluated by the build's shell
 * (`runQuietly`, false when there is no shell) into files under `stateDir` and read back.
 */
export async function readFinalValues(options: {
  spec: Buildspec;
  stateDir: string;
  notExported: ReadonlySet<string>;
  runQuietly: (script: string) => Promise<boolean>;
  log: (message: string) => void;
}): Promise<{ exportedVariables: { name: string; value: string }[]; artifactNames: (string | undefined)[] }> {
  const { spec, stateDir } = options;
  const names = spec.env.exportedVariables.filter((name) => {
    const refused = name.startsWith('AWS_') || options.notExported.has(name);
    if (refused)
      options.log(`Variable ${name} is not exported: secrets and AWS_ variables cannot be exported`);
    return !refused;
  });
  const artifacts = artifactSpecs(spec);
  if (names.length === 0 && artifacts.every((artifact) => artifact.spec.name === undefined)) {
    return { exportedVariables: [], artifactNames: [] };
  }
  const script = [
    ...names.map(
      (name) =>
        `if [ -n "\${${name}+x}" ]; then printf '%s' "$${name}" > ${shellQuote(path.join(stateDir, `export.${name}`))}; fi`,
    ),
    ...artifacts.flatMap(({ spec: artifact }, index) =>
      artifact.name === undefined
        ? []
        : [
            `cat > ${shellQuote(path.join(stateDir, `artifact-name.${index}`))} <<__STEPLINE_ARTIFACT_NAME__`,
            artifact.name,
            '__STEPLINE_ARTIFACT_NAME__',
          ],
    ),
  ].join('\n');
  if (!(await options.runQuietly(script))) return { exportedVariables: [], artifactNames: [] };

  const read = (file: string) => readFile(path.join(stateDir, file), 'utf8').catch(() => undefined);
  const values = await Promise.all(names.map((name) => read(`export.${name}`)));
  const exportedVariables = names.flatMap((name, index) => {
    const value = values[index];
    return value === undefined ? [] : [{ name, value }];
  });
  const artifactNames = await Promise.all(
    artifacts.map(async ({ spec: artifact }, index) => {
      if (artifact.name === undefined) return undefined;
      const evaluated = (await read(`artifact-name.${index}`))?.replace(/\n$/, '');
      return evaluated === undefined || evaluated === '' ? artifact.name : evaluated;
    }),
  );
  return { exportedVariables, artifactNames };
}

export function readSecret(
  reference: string,
  parameters: Readonly<Record<string, string>>,
): { value: string } | { problem: string } {
  const direct = parameters[reference];
  if (direct !== undefined) return { value: direct };
  // <secret-id>:<json-key>:<version-stage>:<version-id>; an ARN secret id holds 7 colon-separated parts.
  const parts = reference.split(':');
  const idParts = reference.startsWith('arn:') ? 7 : 1;
  const secretId = parts.slice(0, idParts).join(':');
  const jsonKey = parts[idParts];
  const raw = parameters[secretId];
  if (raw === undefined) return { problem: `secret does not exist: ${secretId}` };
  if (jsonKey === undefined || jsonKey === '') return { value: raw };
  let document: unknown;
  try {
    document = JSON.parse(raw);
  } catch {
    return { problem: `secret ${secretId} is not JSON, so it has no key ${jsonKey}` };
  }
  const value =
    document !== null && typeof document === 'object'
      ? (document as Record<string, unknown>)[jsonKey]
      : undefined;
  if (value === undefined) return { problem: `secret ${secretId} has no JSON key ${jsonKey}` };
  return { value: typeof value === 'string' ? value : JSON.stringify(value) };
}

/** Replaces every secret value with `***`, as CodeBuild masks Parameter Store and Secrets Manager values. */
export class SecretMask {
  private values: string[] = [];

  add(value: string): void {
    const candidates = [value, ...value.split('\n').map((line) => line.trim())].filter((item) => item !== '');
    this.values = [...new Set([...this.values, ...candidates])].sort((a, b) => b.length - a.length);
  }

  apply(text: string): string {
    let masked = text;
    for (const value of this.values) masked = masked.replaceAll(value, '***');
    // CodeBuild also hides AWS access key ids.
    return masked.replace(/\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, '***');
  }
}
