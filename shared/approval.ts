import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import * as z from '#shared/zod.ts';
import { ConfigurationError, ForbiddenError, InvalidInputError } from './errors.ts';
import {
  type ApprovalDecision,
  ApprovalDecisionSchema,
  type ApprovalRequest,
  ApprovalRequestSchema,
} from './pipeline.ts';
import type { Notification, TaskDecider } from './ports.ts';
import { parseRef } from './push.ts';
import { oneLine, shortSha, truncate } from './text.ts';

/**
 * The approval gate's domain: approve and reject links that carry the waiting task token encrypted,
 * authenticated and expiring with the gate; the approval request message; and the decision.
 *
 * A link is `${baseUrl}/<segment>`, the segment being base64url of
 * `version (1 byte) ‖ IV (12 bytes) ‖ AES-256-GCM ciphertext ‖ GCM tag (16 bytes)`. The key is derived with
 * HKDF-SHA256 from the approval key secret; the tag authenticates the version byte (as additional data)
 * and the ciphertext, so changing any character of a link makes it invalid. The links are bearer links:
 * whoever holds one can decide, which is why they expire with the gate and a GET never decides.
 */

/** What a link does when its confirmation form is sent. */
export type ApprovalAction = 'approve' | 'reject';

/** What an opened (decrypted, authenticated, unexpired) approval link says. */
export interface ApprovalLink {
  /** The Step Functions task token the gate waits on. Never log it. */
  taskToken: string;
  action: ApprovalAction;
  /** When the gate stops waiting; the link is refused from then on. */
  expiresAt: Date;
  executionArn: string;
  /** The environment waiting for approval. */
  environment: string;
  /** `owner/name`. */
  repository: string;
  /** The full ref, `refs/heads/…` or `refs/tags/…`. */
  ref: string;
  /** The pushed commit (full SHA), empty when the push named none. */
  sha: string;
  /** The head commit's first line, shortened. */
  message: string;
}

/** The two links of one approval request, minted together. */
export interface ApprovalLinks {
  approve: string;
  reject: string;
  /** When both links expire: the gate's deadline (enteredAt + timeoutSeconds), to the second. */
  expiresAt: Date;
}

/** The link format's version: the first byte of every segment. */
const LINK_VERSION = 1;
const IV_LENGTH = 12;
const TAG_LENGTH = 16;
const HKDF_SALT = 'stepline approval links';
const HKDF_INFO = 'aes-256-gcm link encryption v1';
/** A shorter approval key would make links guessable offline. */
export const APPROVAL_KEY_MIN_LENGTH = 16;

/**
 * How long each displayed field may be inside a link. Bounding them keeps a link under 4 KB even with a
 * 2048-character task token (Step Functions' maximum), a long execution ARN and the base URL.
 */
const LINK_FIELD_LIMITS = { environment: 40, repository: 100, ref: 120, sha: 40, message: 72 } as const;

/** Encrypted payload: short keys, because every byte becomes 4/3 of a URL character. */
const LinkPayloadSchema = z.object({
  t: z.string().check(z.minLength(1)),
  a: z.enum(['approve', 'reject']),
  e: z.number().check(z.int(), z.positive()),
  x: z.string(),
  env: z.string(),
  repo: z.string(),
  ref: z.string(),
  sha: z.string(),
  msg: z.string(),
});
type LinkPayload = z.infer<typeof LinkPayloadSchema>;

const NOT_VALID = 'This approval link is not valid';

function linkKey(secret: string): Buffer {
  if (Buffer.byteLength(secret, 'utf8') < APPROVAL_KEY_MIN_LENGTH) {
    throw new ConfigurationError(`The approval key must be at least ${APPROVAL_KEY_MIN_LENGTH} characters`);
  }
  return Buffer.from(hkdfSync('sha256', secret, HKDF_SALT, HKDF_INFO, 32));
}

function firstLine(message: string | undefined): string {
  return (message ?? '').trim().split(/\r?\n/, 1)[0] ?? '';
}

function seal(payload: LinkPayload, key: Buffer): string {
  const version = Buffer.of(LINK_VERSION);
  const iv = randomBytes(IV_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_LENGTH });
  cipher.setAAD(version);
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(payload), 'utf8'), cipher.final()]);
  return Buffer.concat([version, iv, ciphertext, cipher.getAuthTag()]).toString('base64url');
}

function unseal(segment: string, key: Buffer): unknown {
  // Buffer.from skips characters outside the alphabet and ignores the spare bits of the last
  // character, so only the one canonical spelling of the bytes is accepted.
  if (!/^[A-Za-z0-9_-]+$/.test(segment)) throw new ForbiddenError(NOT_VALID);
  const bytes = Buffer.from(segment, 'base64url');
  if (bytes.toString('base64url') !== segment) throw new ForbiddenError(NOT_VALID);
  if (bytes.length < 1 + IV_LENGTH + TAG_LENGTH + 1 || bytes[0] !== LINK_VERSION) {
    throw new ForbiddenError(NOT_VALID);
  }
  const iv = bytes.subarray(1, 1 + IV_LENGTH);
  const tag = bytes.subarray(bytes.length - TAG_LENGTH);
  const ciphertext = bytes.subarray(1 + IV_LENGTH, bytes.length - TAG_LENGTH);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_LENGTH });
    decipher.setAAD(bytes.subarray(0, 1));
    decipher.setAuthTag(tag);
    const plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    return JSON.parse(plaintext.toString('utf8'));
  } catch (cause) {
    throw new ForbiddenError(NOT_VALID, { cause });
  }
}

/**
 * Mints the approve and reject links for one approval request. Both expire when the gate does
 * (`enteredAt + timeoutSeconds`, rounded down to the second). The task token is only ever inside the
 * encrypted segment.
 *
 * @param key - The approval key secret (at least 16 characters; 32 random bytes, base64, is a good choice).
 * @param baseUrl - The public URL of the approval route, without the token: `https://…/approvals`.
 * @throws InvalidInputError when `enteredAt` is not a date; ConfigurationError when the key is too short.
 *
 * @example
 * ```ts
 * const links = mintApprovalLinks(request, await approvalKey(), 'https://abc.execute-api.eu-west-1.amazonaws.com/approvals');
 * // links.approve === 'https://abc…/approvals/AaZ…', links.expiresAt = the gate's deadline
 * ```
 */
export function mintApprovalLinks(request: ApprovalRequest, key: string, baseUrl: string): ApprovalLinks {
  const enteredAt = Date.parse(request.enteredAt);
  if (Number.isNaN(enteredAt)) {
    throw new InvalidInputError('The approval request has no valid enteredAt time');
  }
  const expiresAtSeconds = Math.floor(enteredAt / 1000) + request.timeoutSeconds;
  const derived = linkKey(key);
  const { push } = request;
  const payload = (action: ApprovalAction): LinkPayload => ({
    t: request.taskToken,
    a: action,
    e: expiresAtSeconds,
    x: request.executionArn,
    env: truncate(request.environment, LINK_FIELD_LIMITS.environment),
    repo: truncate(push.repository.fullName, LINK_FIELD_LIMITS.repository),
    ref: truncate(push.ref, LINK_FIELD_LIMITS.ref),
    sha: truncate(push.after ?? '', LINK_FIELD_LIMITS.sha),
    msg: truncate(firstLine(push.headCommitMessage), LINK_FIELD_LIMITS.message),
  });
  const base = baseUrl.replace(/\/+$/, '');
  return {
    approve: `${base}/${seal(payload('approve'), derived)}`,
    reject: `${base}/${seal(payload('reject'), derived)}`,
    expiresAt: new Date(expiresAtSeconds * 1000),
  };
}

/**
 * Opens the path segment of an approval link: decrypts and authenticates it, then checks it has not
 * expired at `now`.
 *
 * @throws ForbiddenError `This approval link is not valid` (altered, truncated, another key or format) or
 * `This approval link expired at <ISO time>`.
 *
 * @example
 * ```ts
 * const link = openApprovalLink(event.pathParameters.token, await approvalKey(), new Date());
 * if (link.action === 'approve') await decider.succeed(link.taskToken, decision);
 * ```
 */
export function openApprovalLink(segment: string, key: string, now: Date): ApprovalLink {
  const parsed = LinkPayloadSchema.safeParse(unseal(segment, linkKey(key)));
  if (!parsed.success) throw new ForbiddenError(NOT_VALID);
  const payload = parsed.data;
  const expiresAt = new Date(payload.e * 1000);
  if (now.getTime() >= expiresAt.getTime()) {
    throw new ForbiddenError(`This approval link expired at ${expiresAt.toISOString()}`);
  }
  return {
    taskToken: payload.t,
    action: payload.a,
    expiresAt,
    executionArn: payload.x,
    environment: payload.env,
    repository: payload.repo,
    ref: payload.ref,
    sha: payload.sha,
    message: payload.msg,
  };
}

/**
 * Validates the approval gate's payload (what `lambda:invoke.waitForTaskToken` passes).
 *
 * @throws InvalidInputError naming the first field that is wrong (never its value: it may be the token).
 */
export function parseApprovalRequest(payload: unknown): ApprovalRequest {
  const parsed = ApprovalRequestSchema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new InvalidInputError(`The approval request is invalid${where}: ${issue?.message}`);
  }
  return parsed.data;
}

/** `main` → `branch main`, `v1.2.0` → `tag v1.2.0`; other refs as they are. */
export function describeRef(ref: string): string {
  const parsed = parseRef(ref);
  return parsed ? `${parsed.refType} ${parsed.refName}` : ref;
}

/** The ref's short name (`main`, `v1.2.0`), or the ref itself when it is neither a branch nor a tag. */
export function refName(ref: string): string {
  return parseRef(ref)?.refName ?? ref;
}

/** How long until a moment, in words: `1 day 2 hours`, `23 hours 59 minutes`, `5 minutes`. */
export function formatTimeLeft(milliseconds: number): string {
  const minutes = Math.floor(milliseconds / 60_000);
  if (minutes < 1) return 'less than a minute';
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  const rest = minutes % 60;
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (days > 0) return hours > 0 ? `${unit(days, 'day')} ${unit(hours, 'hour')}` : unit(days, 'day');
  if (hours > 0) return rest > 0 ? `${unit(hours, 'hour')} ${unit(rest, 'minute')}` : unit(hours, 'hour');
  return unit(rest, 'minute');
}

/** A deadline for people: `Tue, 14 Jan 2025 10:00:00 GMT (in 23 hours 59 minutes)`. */
export function formatDeadline(deadline: Date, now: Date): string {
  const left = deadline.getTime() - now.getTime();
  return `${deadline.toUTCString()} (${left > 0 ? `in ${formatTimeLeft(left)}` : 'passed'})`;
}

/** The most of the commit message the approval message shows, below everything stepline vouches for. */
export const COMMIT_MESSAGE_MAX_LENGTH = 500;

/**
 * The approval request message for the approvals topic: what is waiting, both links first, then what will
 * be built (the clone URL included) and the deadline, the commit message last and bounded; the links also
 * as data, in `approval`. The links are bearer links, and the message says so.
 *
 * @example
 * ```ts
 * await notifier.publish(approvalRequestNotification(request, mintApprovalLinks(request, key, baseUrl), now));
 * ```
 */
export function approvalRequestNotification(
  request: ApprovalRequest,
  links: ApprovalLinks,
  now: Date,
): Notification {
  const { push } = request;
  const sha = shortSha(push.after);
  const message = (push.headCommitMessage ?? '').trim();
  // The links come first and the pushed text last, bounded: a commit message is the pusher's, and one
  // placed above the links could carry look-alike links of its own.
  const lines = [
    `${push.repository.fullName} is waiting for approval to deploy to ${request.environment}.`,
    '',
    `Approve: ${links.approve}`,
    '',
    `Reject:  ${links.reject}`,
    '',
    'These links act for whoever holds them: anyone with this message can approve or reject, so do not',
    'forward it. Each link opens a page that asks you to confirm; nothing is decided until you press its',
    `button. Both links stop working at the deadline, when the run fails as expired if nobody decided.`,
    '',
    `Repository:  ${push.repository.fullName}`,
    `Built from:  ${oneLine(push.repository.cloneUrl, 300)}`,
    `${push.refType === 'tag' ? 'Tag:        ' : 'Branch:     '} ${oneLine(push.refName, 200)}`,
    `Commit:      ${sha}${push.after ? ` (${push.after})` : ''}`,
    `Pushed by:   ${oneLine(push.pusher ?? 'unknown', 200)}`,
    `Passed:      ${request.passed.length > 0 ? request.passed.join(', ') : 'nothing yet'}`,
    `Environment: ${request.environment}`,
    `Image:       ${request.imageUri ?? 'none'}`,
    `Deadline:    ${links.expiresAt.toISOString()} - ${formatDeadline(links.expiresAt, now)}`,
    `Execution:   ${request.executionArn}`,
    '',
    'Commit message (as pushed, not checked by stepline):',
    ...(message ? truncate(message, COMMIT_MESSAGE_MAX_LENGTH).split(/\r?\n/) : ['(none)']).map(
      (line) => `    ${line}`,
    ),
  ];
  return {
    topic: 'approvals',
    subject: `Approve ${request.environment}: ${push.repository.fullName} ${push.refName} @ ${sha}`,
    body: `${lines.join('\n')}\n`,
    approval: {
      executionArn: request.executionArn,
      environment: request.environment,
      approve: links.approve,
      reject: links.reject,
      expiresAt: links.expiresAt.toISOString(),
    },
  };
}

/** The longest approver name accepted (the decision schema's limit). */
export const APPROVER_MAX_LENGTH = 200;
/** The longest comment accepted (the decision schema's limit). */
export const COMMENT_MAX_LENGTH = 2000;

/** The confirmation form as sent: trimmed, empty fields as null. */
export interface DecisionForm {
  approver: string | null;
  comment: string | null;
}

/** Reads the confirmation form (`application/x-www-form-urlencoded`, fields `name` and `comment`). */
export function readDecisionForm(body: string): DecisionForm {
  const fields = new URLSearchParams(body);
  const field = (name: string) => {
    const value = (fields.get(name) ?? '').trim();
    return value === '' ? null : value;
  };
  return { approver: field('name'), comment: field('comment') };
}

/** What is wrong with a confirmation form, in words a person can act on; undefined when nothing is. */
export function decisionFormProblem(form: DecisionForm): string | undefined {
  if (form.approver !== null && form.approver.length > APPROVER_MAX_LENGTH) {
    return `The name is longer than ${APPROVER_MAX_LENGTH} characters. Shorten it and confirm again.`;
  }
  if (form.comment !== null && form.comment.length > COMMENT_MAX_LENGTH) {
    return `The comment is longer than ${COMMENT_MAX_LENGTH} characters (it has ${form.comment.length}). Shorten it and confirm again.`;
  }
  return undefined;
}

/**
 * The decision recorded in the execution.
 *
 * @throws InvalidInputError when the form is over its limits (see {@link decisionFormProblem}).
 */
export function approvalDecision(
  link: ApprovalLink,
  form: DecisionForm,
  sourceIp: string | undefined,
  now: Date,
): ApprovalDecision {
  const problem = decisionFormProblem(form);
  if (problem) throw new InvalidInputError(problem);
  return ApprovalDecisionSchema.parse({
    approved: link.action === 'approve',
    approver: form.approver,
    comment: form.comment,
    decidedAt: now.toISOString(),
    sourceIp: sourceIp || null,
  });
}

/** The error an execution fails with when its approval is rejected (the state machine catches it). */
export const APPROVAL_REJECTED_ERROR = 'Approval.Rejected';

/**
 * Sends the decision to the waiting task: SendTaskSuccess with the decision as output when approved,
 * SendTaskFailure `Approval.Rejected` with the decision JSON as cause when rejected.
 *
 * @throws TaskNoLongerWaitingError (from the decider) when the gate was already decided or expired.
 */
export async function decideApproval(
  decider: TaskDecider,
  link: ApprovalLink,
  decision: ApprovalDecision,
): Promise<void> {
  if (decision.approved) {
    await decider.succeed(link.taskToken, decision);
  } else {
    await decider.fail(link.taskToken, APPROVAL_REJECTED_ERROR, JSON.stringify(decision));
  }
}

/**
 * An error's name and message with every occurrence of `secret` replaced, for a log line: AWS
 * validation messages can quote the parameter they refused, and a task token must never be logged.
 */
export function redactError(error: unknown, secret: string): { name: string; message: string } {
  const name = error instanceof Error ? error.name : 'Error';
  const message = error instanceof Error ? error.message : String(error);
  return { name, message: secret ? message.split(secret).join('[redacted]') : message };
}
