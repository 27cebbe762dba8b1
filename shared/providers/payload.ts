import * as z from '#shared/zod.ts';
import { InvalidInputError } from '../errors.ts';
import type { PullRequest } from '../pull-request.ts';
import { type Push, parseRef, ZERO_SHA } from '../push.ts';

/**
 * What a delivery means: the pushes it carries (Bitbucket may carry several refs in one delivery), or
 * why it starts nothing (a ping, an event that is not a push, a push with no changes).
 */
export type WebhookOutcome =
  | {
      kind: 'pushes';
      pushes: Push[];
      deliveryId?: string;
      /** Set for a self-hosted server CodeBuild has no source type for. */
      edition?: 'bitbucket-data-center';
    }
  | {
      kind: 'pull-request';
      pullRequest: PullRequest;
      /** The request's head as a push of its source branch, with the clone URL of its source repository. */
      head: Push;
      deliveryId?: string;
    }
  | { kind: 'ignored'; reason: string };

/** What a push-only source (CodeCommit) delivers: pushes, or why none. */
export type PushDeliveryOutcome = Exclude<WebhookOutcome, { kind: 'pull-request' }>;

/** `['commits', 0, 'added']` → `commits[0].added`. */
function formatPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const key of path) {
    if (typeof key === 'number') {
      text += `[${key}]`;
    } else {
      text += text === '' ? String(key) : `.${String(key)}`;
    }
  }
  return text;
}

/**
 * Validates a payload with its zod schema, or throws {@link InvalidInputError} naming the first field
 * that is wrong, e.g. `GitHub push payload is missing repository.clone_url`. The message names the
 * field and the expected type, never the received value.
 */
export function parsePayload<S extends z.ZodMiniType>(schema: S, body: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(body, { reportInput: true });
  if (parsed.success) {
    return parsed.data;
  }
  const issue = parsed.error.issues[0];
  if (issue === undefined || issue.path.length === 0) {
    throw new InvalidInputError(`${what} is not a JSON object`, { cause: parsed.error });
  }
  const field = formatPath(issue.path);
  const absent = issue.code === 'invalid_type' && (issue.input === undefined || issue.input === null);
  throw new InvalidInputError(
    absent ? `${what} is missing ${field}` : `${what} has an invalid ${field}: ${issue.message}`,
    { cause: parsed.error },
  );
}

/** A 40-zero SHA (or an absent one) means "no commit": the ref was created or deleted. */
export function commitOrNull(sha: string | null | undefined): string | null {
  return sha === undefined || sha === null || sha === '' || sha === ZERO_SHA || ALL_ZERO.test(sha)
    ? null
    : sha;
}

/** A full commit id: 40 hex digits (SHA-1 repositories) or 64 (SHA-256 repositories). */
const FULL_COMMIT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/i;
const ALL_ZERO = /^(?:0{40}|0{64})$/;

/**
 * The pushed commit named by `field`, checked: null when the ref was deleted (an all-zero id, or absent),
 * else a full commit id, or {@link InvalidInputError} naming the field. A branch name or an abbreviated id
 * would let a build check out something other than the commit the delivery claims.
 *
 * @example
 * ```ts
 * pushedCommit('main', 'after', 'GitHub push payload'); // throws: GitHub push payload has an invalid after: …
 * ```
 */
export function pushedCommit(sha: string | null | undefined, field: string, what: string): string | null {
  const commit = commitOrNull(sha);
  if (commit !== null && !FULL_COMMIT_ID.test(commit)) {
    throw new InvalidInputError(
      `${what} has an invalid ${field}: expected a full commit id (40 or 64 hex digits)`,
    );
  }
  return commit === null ? null : commit.toLowerCase();
}

/** Splits a full ref, or throws {@link InvalidInputError} naming it when it is neither a branch nor a tag. */
export function refParts(ref: string, what: string): { refType: 'branch' | 'tag'; refName: string } {
  const parts = parseRef(ref);
  if (parts === undefined) {
    throw new InvalidInputError(
      `${what} names ref ${JSON.stringify(ref)}, which is neither a branch nor a tag`,
    );
  }
  return parts;
}

/** The file lists one commit of a GitHub or GitLab push carries (each may be absent). */
export interface CommitFiles {
  added?: string[] | null | undefined;
  modified?: string[] | null | undefined;
  removed?: string[] | null | undefined;
}

/** True when a commit carries none of its file lists (GitHub Actions payloads, GitLab system hooks). */
export function lacksFileLists(commit: CommitFiles): boolean {
  return commit.added == null && commit.modified == null && commit.removed == null;
}

/** The sorted, de-duplicated union of the files the commits added, modified or removed. */
export function changedFilesOf(commits: readonly CommitFiles[]): string[] {
  const files = new Set<string>();
  for (const commit of commits) {
    for (const list of [commit.added, commit.modified, commit.removed]) {
      for (const file of list ?? []) {
        files.add(file);
      }
    }
  }
  return [...files].sort();
}

const FileListSchema = z.nullish(z.array(z.string()));

/** A pushed commit as GitHub and GitLab list it: id, message and the files it added, modified, removed. */
export const PushedCommitSchema = z.looseObject({
  id: z.string().check(z.minLength(1)),
  message: z.nullish(z.string()),
  added: FileListSchema,
  modified: FileListSchema,
  removed: FileListSchema,
});

/** A clone URL without its credentials, query or fragment: safe to show in an error message. */
function shownUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function httpUrl(value: string): URL | undefined {
  if (!URL.canParse(value)) return undefined;
  const url = new URL(value);
  return url.protocol === 'https:' || url.protocol === 'http:' ? url : undefined;
}

/** Where a clone URL and the repository identity it must belong to were found, for error messages. */
export interface RepositoryFields {
  what: string;
  cloneField: string;
  webField: string;
  fullNameField: string;
}

/**
 * Checks that a payload's clone URL belongs to the repository it names, and returns it. An HTTP(S) clone
 * URL must be on the same host as the repository's web address, at the same base path, with the full
 * name as its path (`.git` optional): `https://github.com/acme/shop.git` for `acme/shop` at
 * `https://github.com/acme/shop`. Credentials, a query or a fragment in it are refused too. Otherwise an
 * approver would read one repository's name while the build clones another.
 *
 * A clone URL that is an absolute path on this machine (the local mode's own git hook posts one) is
 * returned as it is: the handler decides whether its builds can clone it (CodeBuild cannot). Anything
 * else (ssh, git:, relative paths) is refused.
 *
 * @example
 * ```ts
 * repositoryCloneUrl('https://evil.example/x.git', 'https://github.com/acme/shop', 'acme/shop', fields);
 * // throws InvalidInputError: … repository.clone_url https://evil.example/x.git does not belong to repository.full_name acme/shop …
 * ```
 */
export function repositoryCloneUrl(
  cloneUrl: string,
  webUrl: string | null | undefined,
  fullName: string,
  fields: RepositoryFields,
): string {
  const { what, cloneField, webField, fullNameField } = fields;
  const clone = httpUrl(cloneUrl);
  if (clone === undefined) {
    if (cloneUrl.startsWith('/') && !URL.canParse(cloneUrl)) return cloneUrl;
    throw new InvalidInputError(`${what} has an invalid ${cloneField}: expected an http(s) URL`);
  }
  const web = webUrl ? httpUrl(webUrl) : undefined;
  if (web === undefined) {
    throw new InvalidInputError(
      webUrl
        ? `${what} has an invalid ${webField}: expected an http(s) URL`
        : `${what} is missing ${webField}`,
    );
  }
  const webPath = web.pathname.replace(/\/+$/, '');
  const suffix = `/${fullName}`;
  const base = webPath.endsWith(suffix) ? webPath.slice(0, -suffix.length) : undefined;
  const clonePath = clone.pathname;
  const belongs =
    base !== undefined &&
    clone.username === '' &&
    clone.password === '' &&
    clone.search === '' &&
    clone.hash === '' &&
    clone.host === web.host &&
    (clonePath === `${base}${suffix}` || clonePath === `${base}${suffix}.git`);
  if (!belongs) {
    throw new InvalidInputError(
      `${what}: ${cloneField} ${shownUrl(clone)} does not belong to ${fullNameField} ${fullName} ` +
        `(${webField} ${shownUrl(web)}): the clone URL must be ${web.protocol}//${web.host}${base ?? ''}${suffix}.git`,
    );
  }
  return cloneUrl;
}

/** A commit id as Bitbucket Cloud's pull-request payloads give it: 12 hex digits or more. */
const ABBREVIATED_COMMIT_ID = /^[0-9a-f]{12,64}$/i;

/**
 * A pull request's head commit named by `field`: a full commit id, or, where the provider sends no other
 * (`abbreviated: true`, Bitbucket Cloud's pull-request payloads), an abbreviated one of at least 12 hex
 * digits, which the build resolves in the source repository. Else {@link InvalidInputError} naming the field.
 */
export function headCommit(
  sha: string | null | undefined,
  field: string,
  what: string,
  options: { abbreviated?: boolean } = {},
): string {
  const commit = commitOrNull(sha);
  const valid =
    commit !== null &&
    (FULL_COMMIT_ID.test(commit) || (options.abbreviated === true && ABBREVIATED_COMMIT_ID.test(commit)));
  if (!valid) {
    throw new InvalidInputError(
      `${what} has an invalid ${field}: expected a ${options.abbreviated ? 'commit id of 12 to 64' : 'full commit id (40 or 64'} hex digits${options.abbreviated ? '' : ')'}`,
    );
  }
  return commit.toLowerCase();
}
