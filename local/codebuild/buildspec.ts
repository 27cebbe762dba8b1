import {
  type Document,
  type DocumentOptions,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  type ParseOptions,
  parseDocument,
  type SchemaOptions,
  type Tags,
  visit,
} from 'yaml';
import { SteplineError } from '#shared/errors.ts';
import * as z from '#shared/zod.ts';
import { BUILDSPEC_PHASES, type BuildspecPhaseName } from './buildspec-phases.ts';

/**
 * The CodeBuild buildspec (version 0.2) as a typed model: parsed from YAML, validated, and given
 * camelCase names. Pure: no file system, no process. The local build runner executes this model; the
 * cloud hands the same file to CodeBuild.
 *
 * Reference: AWS CodeBuild User Guide, "Build specification reference for CodeBuild".
 */

/** A buildspec that is not valid YAML or not a valid buildspec, as CodeBuild reports it (`YAML_FILE_ERROR`). */
export class BuildspecError extends SteplineError {
  override readonly name: string = 'BuildspecError';
  override readonly status: number = 400;
  /** CodeBuild's phase-context status code for the same failure. */
  readonly code = 'YAML_FILE_ERROR';
  /** Every problem found, first one first; the message names the first. */
  readonly problems: readonly BuildspecProblem[];

  constructor(problems: readonly BuildspecProblem[], source?: string, options?: ErrorOptions) {
    const [first] = problems;
    const where = first?.line === undefined ? '' : ` at line ${first.line}`;
    const file = source === undefined ? '' : ` in ${source}`;
    const more =
      problems.length > 1
        ? ` (and ${problems.length - 1} more problem${problems.length > 2 ? 's' : ''})`
        : '';
    super(`YAML_FILE_ERROR: ${first?.message ?? 'invalid buildspec'}${where}${file}${more}`, options);
    this.problems = problems;
  }
}

export interface BuildspecProblem {
  message: string;
  /** 1-based line in the buildspec text, when the problem has a place. */
  line?: number;
}

// YAML 1.2 core schema without its int and float tags: numbers stay exactly as written
// (`python: 3.10` is "3.10", not 3.1; `version: 0.2` is "0.2"), booleans and null keep their meaning.
const YAML_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  schema: 'core',
  customTags: (tags: Tags) => tags.filter((tag) => typeof tag === 'string' || !/:(int|float)$/.test(tag.tag)),
  uniqueKeys: true,
  prettyErrors: false,
};

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A scalar read as text: YAML `true` is the string "true" (numbers are already kept as written). */
const Text = z.pipe(z.union([z.string(), z.boolean()], { error: 'expected a string' }), z.transform(String));

/** A variable value: text, and an empty value (`KEY:`) is the empty string. */
const VariableValue = z.pipe(
  z.union([z.string(), z.boolean(), z.null()], { error: 'expected a string value' }),
  z.transform((value) => (value === null ? '' : String(value))),
);

/** CodeBuild's `yes | no` switches; YAML 1.2 reads `yes` as a string, `true` as a boolean. */
const YesNo = z.pipe(
  z.union([z.boolean(), z.string()]),
  z.transform((value, ctx) => {
    if (typeof value === 'boolean') return value;
    const word = value.toLowerCase();
    if (word === 'yes' || word === 'true') return true;
    if (word === 'no' || word === 'false') return false;
    ctx.issues.push({ code: 'custom', message: `must be yes or no, got "${value}"`, input: value });
    return z.NEVER;
  }),
);

const Commands = z.array(Text, { error: 'expected a list of commands' });

const PathList = z.union(
  [
    z.pipe(
      z.string(),
      z.transform((path) => [path]),
    ),
    z.array(Text),
  ],
  {
    error: 'expected a path or a list of paths',
  },
);

/** What to do when a phase fails. Absent means CodeBuild's default phase transitions. */
export type OnFailure =
  | { action: 'ABORT' }
  | { action: 'CONTINUE' }
  /** Run the phase again, up to `count` more times, while the failure matches `pattern`. */
  | { action: 'RETRY'; count: number; pattern: string };

/** Parses `ABORT`, `CONTINUE`, `RETRY`, `RETRY-<count>`, `RETRY-<regex>`, `RETRY-<count>-<regex>`. */
export function parseOnFailure(value: string): OnFailure | undefined {
  if (value === 'ABORT' || value === 'CONTINUE') return { action: value };
  if (value === 'RETRY') return { action: 'RETRY', count: 3, pattern: '.*' };
  const retry = /^RETRY-(?:(\d+)(?:-(.+))?|(.+))$/s.exec(value);
  if (retry === null) return undefined;
  const count = retry[1] === undefined ? 3 : Number(retry[1]);
  const pattern = retry[2] ?? retry[3] ?? '.*';
  if (count > 100) return undefined;
  try {
    new RegExp(pattern);
  } catch {
    return undefined;
  }
  return { action: 'RETRY', count, pattern };
}

const OnFailureSchema = z.pipe(
  z.string(),
  z.transform((value, ctx): OnFailure => {
    const parsed = parseOnFailure(value);
    if (parsed === undefined) {
      ctx.issues.push({
        code: 'custom',
        message: `must be ABORT, CONTINUE, RETRY, RETRY-<count 0..100>, RETRY-<regex> or RETRY-<count>-<regex>, got "${value}"`,
        input: value,
      });
      return z.NEVER;
    }
    return parsed;
  }),
);

const MAPPING = { error: 'expected a mapping' };

function phaseSchema(commandsRequired: boolean) {
  return z.pipe(
    z.object(
      {
        'run-as': z.optional(Text),
        'on-failure': z.optional(OnFailureSchema),
        'runtime-versions': z.optional(z.record(z.string(), Text, MAPPING)),
        commands: commandsRequired ? Commands : z.optional(Commands),
        finally: z.optional(Commands),
      },
      MAPPING,
    ),
    z.transform((phase) => ({
      runAs: phase['run-as'],
      onFailure: phase['on-failure'],
      runtimeVersions: phase['runtime-versions'] ?? {},
      commands: phase.commands ?? [],
      finally: phase.finally ?? [],
    })),
  );
}

export { BUILDSPEC_PHASES, type BuildspecPhaseName };

const PhasesSchema = z.strictObject(
  {
    // The docs make `commands` optional in install (it may hold only runtime-versions) and required elsewhere.
    install: z.optional(phaseSchema(false)),
    pre_build: z.optional(phaseSchema(true)),
    build: z.optional(phaseSchema(true)),
    post_build: z.optional(phaseSchema(true)),
  },
  { error: 'expected a mapping of phases' },
);

const EnvSchema = z.pipe(
  z.object(
    {
      shell: z.optional(Text),
      variables: z.optional(z.record(z.string(), VariableValue, MAPPING)),
      'parameter-store': z.optional(z.record(z.string(), Text, MAPPING)),
      'secrets-manager': z.optional(z.record(z.string(), Text, MAPPING)),
      'exported-variables': z.optional(
        z.array(z.string().check(z.regex(SHELL_NAME, 'must be a shell variable name'))),
      ),
      'git-credential-helper': z.optional(YesNo),
    },
    MAPPING,
  ),
  z.transform((env) => ({
    shell: env.shell,
    variables: env.variables ?? {},
    parameterStore: env['parameter-store'] ?? {},
    secretsManager: env['secrets-manager'] ?? {},
    exportedVariables: env['exported-variables'] ?? [],
    gitCredentialHelper: env['git-credential-helper'] ?? false,
  })),
);

const ARTIFACT_FIELDS = {
  files: PathList,
  name: z.optional(Text),
  'discard-paths': z.optional(YesNo),
  'base-directory': z.optional(Text),
  'exclude-paths': z.optional(PathList),
  'enable-symlinks': z.optional(YesNo),
  's3-prefix': z.optional(Text),
};

function artifactFields(artifact: z.output<z.ZodMiniObject<typeof ARTIFACT_FIELDS>>) {
  return {
    files: artifact.files,
    name: artifact.name,
    discardPaths: artifact['discard-paths'] ?? false,
    baseDirectory: artifact['base-directory'],
    excludePaths: artifact['exclude-paths'] ?? [],
    enableSymlinks: artifact['enable-symlinks'] ?? false,
    s3Prefix: artifact['s3-prefix'],
  };
}

const SecondaryArtifactSchema = z.pipe(z.object(ARTIFACT_FIELDS, MAPPING), z.transform(artifactFields));

const ArtifactsSchema = z.pipe(
  z.object(
    {
      ...ARTIFACT_FIELDS,
      'secondary-artifacts': z.optional(z.record(z.string(), SecondaryArtifactSchema, MAPPING)),
    },
    MAPPING,
  ),
  z.transform((artifacts) => ({
    ...artifactFields(artifacts),
    secondaryArtifacts: artifacts['secondary-artifacts'] ?? {},
  })),
);

/** Report file formats CodeBuild accepts (case-insensitive in the buildspec). */
export const REPORT_FILE_FORMATS = [
  'CUCUMBERJSON',
  'JUNITXML',
  'NUNITXML',
  'NUNIT3XML',
  'TESTNGXML',
  'VISUALSTUDIOTRX',
  'CLOVERXML',
  'COBERTURAXML',
  'JACOCOXML',
  'SIMPLECOV',
] as const;

const ReportSchema = z.pipe(
  z.object(
    {
      files: PathList,
      'base-directory': z.optional(Text),
      'discard-paths': z.optional(YesNo),
      'file-format': z.optional(
        z.pipe(
          z.pipe(
            z.string(),
            z.transform((format) => format.toUpperCase()),
          ),
          z.enum(REPORT_FILE_FORMATS, { error: `must be one of ${REPORT_FILE_FORMATS.join(', ')}` }),
        ),
      ),
    },
    MAPPING,
  ),
  z.transform((report) => ({
    files: report.files,
    baseDirectory: report['base-directory'],
    discardPaths: report['discard-paths'] ?? false,
    fileFormat: report['file-format'] ?? 'JUNITXML',
  })),
);

const CacheSchema = z.pipe(
  z.object(
    {
      key: z.optional(Text),
      'fallback-keys': z.optional(z.array(Text)),
      action: z.optional(z.enum(['restore', 'save'])),
      paths: PathList,
    },
    MAPPING,
  ),
  z.transform((cache) => ({
    key: cache.key,
    fallbackKeys: cache['fallback-keys'] ?? [],
    action: cache.action,
    paths: cache.paths,
  })),
);

const VersionSchema = z.pipe(
  z.union([z.string(), z.boolean()], { error: 'must be 0.2' }),
  z.transform((value, ctx) => {
    if (String(value) === '0.2' || Number(value) === 0.2) return '0.2' as const;
    ctx.issues.push({
      code: 'custom',
      message:
        String(value) === '0.1' || Number(value) === 0.1
          ? 'must be 0.2: version 0.1 runs every command in its own shell, which the local runner does not do'
          : `must be 0.2, got "${String(value)}"`,
      input: value,
    });
    return z.NEVER;
  }),
);

/** The whole buildspec. Unknown keys are tolerated and dropped, as CodeBuild ignores them. */
export const BuildspecSchema = z.pipe(
  z.object(
    {
      version: VersionSchema,
      'run-as': z.optional(Text),
      env: z.optional(EnvSchema),
      proxy: z.optional(
        z.object({ 'upload-artifacts': z.optional(YesNo), logs: z.optional(YesNo) }, MAPPING),
      ),
      batch: z.optional(z.record(z.string(), z.unknown(), MAPPING)),
      phases: PhasesSchema,
      reports: z.optional(z.record(z.string(), ReportSchema, MAPPING)),
      artifacts: z.optional(ArtifactsSchema),
      cache: z.optional(CacheSchema),
    },
    { error: 'a buildspec must be a mapping with version and phases' },
  ),
  z.transform((spec) => ({
    version: spec.version,
    runAs: spec['run-as'],
    env: spec.env ?? {
      shell: undefined,
      variables: {},
      parameterStore: {},
      secretsManager: {},
      exportedVariables: [],
      gitCredentialHelper: false,
    },
    proxy:
      spec.proxy === undefined
        ? undefined
        : { uploadArtifacts: spec.proxy['upload-artifacts'] ?? false, logs: spec.proxy.logs ?? false },
    batch: spec.batch,
    phases: spec.phases,
    reports: spec.reports ?? {},
    artifacts: spec.artifacts,
    cache: spec.cache,
  })),
);

export type Buildspec = z.output<typeof BuildspecSchema>;
export type BuildspecEnv = Buildspec['env'];
export type Phase = NonNullable<Buildspec['phases'][BuildspecPhaseName]>;
export type Artifacts = NonNullable<Buildspec['artifacts']>;
export type ArtifactSpec = Omit<Artifacts, 'secondaryArtifacts'>;
export type ReportGroup = Buildspec['reports'][string];
export type ReportFileFormat = (typeof REPORT_FILE_FORMATS)[number];
export type Cache = NonNullable<Buildspec['cache']>;

/**
 * Parses and validates a buildspec. Any YAML error (duplicate keys included) or schema error throws a
 * {@link BuildspecError} whose message names the problem and its line.
 *
 * @example
 * ```ts
 * const spec = parseBuildspec('version: 0.2\nphases:\n  build:\n    commands:\n      - make\n', 'buildspec.yml');
 * spec.phases.build?.commands; // ['make']
 * ```
 */
export function parseBuildspec(text: string, source?: string): Buildspec {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { ...YAML_OPTIONS, lineCounter });
  const lineAt = (offset: number | undefined) =>
    offset === undefined ? undefined : lineCounter.linePos(offset).line;

  if (doc.errors.length > 0) {
    const problems = doc.errors.map((error) => ({
      message:
        error.code === 'DUPLICATE_KEY'
          ? `duplicate key "${keyAt(doc, error.pos[0])}"`
          : yamlMessage(error.message),
      line: lineAt(error.pos[0]),
    }));
    throw new BuildspecError(problems, source);
  }

  const input: unknown = doc.toJS();
  const result = BuildspecSchema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const path =
        issue.code === 'unrecognized_keys' ? [...issue.path, ...issue.keys.slice(0, 1)] : issue.path;
      return { message: issueMessage(issue, path, input), line: lineAt(offsetOf(doc, path)) };
    });
    // First in the file, first in the message.
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    throw new BuildspecError(problems, source);
  }
  return result.data;
}

function keyAt(doc: Document, offset: number): string {
  let name = '?';
  visit(doc, {
    Pair(_, pair) {
      if (isScalar(pair.key) && pair.key.range?.[0] === offset) {
        name = String(pair.key.value);
        return visit.BREAK;
      }
      return undefined;
    },
  });
  return name;
}

/** The yaml library's message without its own position suffix, lower-cased like the others. */
function yamlMessage(message: string): string {
  const [first = message] = message.split(/ at line \d+|\n/);
  return first.charAt(0).toLowerCase() + first.slice(1);
}

function issueMessage(issue: z.core.$ZodIssue, path: readonly PropertyKey[], input: unknown): string {
  if (issue.code === 'unrecognized_keys') {
    const where = issue.path.map(String).join('.') || 'phases';
    return `unknown phase "${issue.keys.join('", "')}" in ${where}; phases are ${BUILDSPEC_PHASES.join(', ')}`;
  }
  if (path.length === 0) return issue.message;
  const where = formatPath(path);
  if (valueAt(input, path) === undefined) return `${where} is required`;
  // Our own messages read on from the key ("version must be 0.2"); zod's own ones follow a colon.
  return /^(must|is) /.test(issue.message) ? `${where} ${issue.message}` : `${where}: ${issue.message}`;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((key, index) => (typeof key === 'number' ? `[${key}]` : `${index === 0 ? '' : '.'}${String(key)}`))
    .join('');
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** Where the key (or item) at `path`, or its nearest existing parent, starts in the text. */
function offsetOf(doc: Document, path: readonly PropertyKey[]): number | undefined {
  for (let length = path.length; length > 0; length -= 1) {
    const parentPath = path.slice(0, length - 1);
    const parent = parentPath.length === 0 ? doc.contents : doc.getIn(parentPath, true);
    const last = path[length - 1];
    if (isMap(parent)) {
      const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === String(last));
      const range = isScalar(pair?.key) ? pair.key.range : undefined;
      if (range) return range[0];
    } else if (isSeq(parent)) {
      const item = parent.items[Number(last)];
      const range = isNode(item) ? item.range : undefined;
      if (range) return range[0];
    }
  }
  return isNode(doc.contents) ? doc.contents.range?.[0] : undefined;
}
