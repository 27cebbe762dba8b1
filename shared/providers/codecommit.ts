import * as z from '#shared/zod.ts';
import { InvalidInputError } from '../errors.ts';
import type { Push } from '../push.ts';
import { type PushDeliveryOutcome, parsePayload, refParts } from './payload.ts';

export const CODECOMMIT_DETAIL_TYPE = 'CodeCommit Repository State Change';
export const CODECOMMIT_SOURCE = 'aws.codecommit';

/** What is checked before the detail: which kind of event this is. */
const EventBridgeEnvelopeSchema = z.looseObject({
  'detail-type': z.string().check(z.minLength(1)),
  source: z.string().check(z.minLength(1)),
  detail: z.looseObject({ event: z.string().check(z.minLength(1)) }),
});

/** The fields of an EventBridge "CodeCommit Repository State Change" event that a {@link Push} needs. */
export const CodeCommitEventSchema = z.looseObject({
  id: z.string().check(z.minLength(1)),
  'detail-type': z.string().check(z.minLength(1)),
  source: z.string().check(z.minLength(1)),
  region: z.string().check(z.minLength(1)),
  detail: z.looseObject({
    event: z.string().check(z.minLength(1)),
    repositoryName: z.string().check(z.minLength(1)),
    referenceType: z.nullish(z.string()),
    referenceName: z.nullish(z.string()),
    referenceFullName: z.nullish(z.string()),
    commitId: z.nullish(z.string()),
    oldCommitId: z.nullish(z.string()),
    callerUserArn: z.nullish(z.string()),
  }),
});
export type CodeCommitEvent = z.infer<typeof CodeCommitEventSchema>;

const WHAT = 'CodeCommit event';

/** The reference events that move a ref; every other event (merge commits without a ref…) is ignored. */
const REFERENCE_EVENTS = new Set(['referenceCreated', 'referenceUpdated', 'referenceDeleted']);

/** The HTTPS clone URL of a CodeCommit repository. */
export function codeCommitCloneUrl(region: string, repositoryName: string): string {
  return `https://git-codecommit.${region}.amazonaws.com/v1/repos/${repositoryName}`;
}

function fullRef(detail: CodeCommitEvent['detail']): string {
  if (detail.referenceFullName) {
    return detail.referenceFullName;
  }
  if (!detail.referenceName) {
    throw new InvalidInputError(`${WHAT} is missing detail.referenceName`);
  }
  if (detail.referenceType === 'branch') {
    return `refs/heads/${detail.referenceName}`;
  }
  if (detail.referenceType === 'tag') {
    return `refs/tags/${detail.referenceName}`;
  }
  throw new InvalidInputError(
    `${WHAT} has detail.referenceType "${detail.referenceType}", not branch or tag`,
  );
}

/**
 * Turns a CodeCommit reference event into a {@link Push}: referenceCreated and referenceUpdated give
 * the new commit as after (`commitId`) and `oldCommitId` as before; referenceDeleted gives deleted true
 * and after null. The pusher is the `callerUserArn`, as CodeCommit names callers. CodeCommit does not
 * report force pushes (forced is false) and the event carries no commits: changedFiles is [] and
 * commitsTruncated true, so path filters never silently skip.
 */
export function codeCommitPush(event: CodeCommitEvent): Push {
  const { detail } = event;
  const ref = fullRef(detail);
  const { refType, refName } = refParts(ref, WHAT);
  const deleted = detail.event === 'referenceDeleted';
  const created = detail.event === 'referenceCreated';
  if (!deleted && !detail.commitId) {
    throw new InvalidInputError(`${WHAT} is missing detail.commitId`);
  }
  const pusher = detail.callerUserArn ?? undefined;
  return {
    provider: 'codecommit',
    repository: {
      fullName: detail.repositoryName,
      cloneUrl: codeCommitCloneUrl(event.region, detail.repositoryName),
    },
    ref,
    refType,
    refName,
    before: created ? null : (detail.oldCommitId ?? null),
    after: deleted ? null : (detail.commitId ?? null),
    created,
    deleted,
    forced: false,
    ...(pusher ? { pusher } : {}),
    changedFiles: [],
    commitsTruncated: true,
  };
}

/**
 * Normalizes an EventBridge "CodeCommit Repository State Change" event: a reference created, updated or
 * deleted gives one push; other events are ignored with their name. The delivery id is the EventBridge
 * event `id`. An event of another detail-type or source throws {@link InvalidInputError}.
 */
export function normalizeCodeCommitEvent(body: unknown): PushDeliveryOutcome {
  const envelope = parsePayload(EventBridgeEnvelopeSchema, body, WHAT);
  if (envelope['detail-type'] !== CODECOMMIT_DETAIL_TYPE || envelope.source !== CODECOMMIT_SOURCE) {
    throw new InvalidInputError(
      `${WHAT} has detail-type "${envelope['detail-type']}" from "${envelope.source}", expected "${CODECOMMIT_DETAIL_TYPE}" from "${CODECOMMIT_SOURCE}"`,
    );
  }
  if (!REFERENCE_EVENTS.has(envelope.detail.event)) {
    return { kind: 'ignored', reason: `CodeCommit event "${envelope.detail.event}" is not a push` };
  }
  const event = parsePayload(CodeCommitEventSchema, body, WHAT);
  return { kind: 'pushes', pushes: [codeCommitPush(event)], deliveryId: event.id };
}
