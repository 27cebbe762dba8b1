import * as z from 'zod';
import { InvalidInputError } from '../errors.ts';
import { type Push, parseRef, ZERO_SHA } from '../push.ts';

/**
 * What a delivery means: the pushes it carries (Bitbucket may carry several refs in one delivery), or
 * why it starts nothing (a ping, an event that is not a push, a push with no changes).
 */
export type WebhookOutcome =
  | { kind: 'pushes'; pushes: Push[]; deliveryId?: string }
  | { kind: 'ignored'; reason: string };

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
export function parsePayload<S extends z.ZodType>(schema: S, body: unknown, what: string): z.output<S> {
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
  return sha === undefined || sha === null || sha === '' || sha === ZERO_SHA ? null : sha;
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

const FileListSchema = z.array(z.string()).nullish();

/** A pushed commit as GitHub and GitLab list it: id, message and the files it added, modified, removed. */
export const PushedCommitSchema = z.looseObject({
  id: z.string().min(1),
  message: z.string().nullish(),
  added: FileListSchema,
  modified: FileListSchema,
  removed: FileListSchema,
});
