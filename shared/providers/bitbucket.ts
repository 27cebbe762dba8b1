import * as z from '#shared/zod.ts';
import { InvalidInputError } from '../errors.ts';
import { type PullRequest, type PullRequestEvent, pullRequestHead } from '../pull-request.ts';
import type { Push } from '../push.ts';
import { findHeader } from '../signatures.ts';
import {
  commitOrNull,
  headCommit,
  parsePayload,
  pushedCommit,
  refParts,
  type WebhookOutcome,
} from './payload.ts';

/*
 * Bitbucket push payloads carry no file lists: Cloud lists at most 5 commits, Data Center a few, and
 * neither says which files they touched. Every Bitbucket push therefore has changedFiles [] and
 * commitsTruncated true, so that a path filter never silently skips a push whose files are unknown.
 */

const BitbucketCloudRefSchema = z.looseObject({
  type: z.string().check(z.minLength(1)),
  name: z.string().check(z.minLength(1)),
  target: z.looseObject({
    hash: z.string().check(z.minLength(1)),
    message: z.nullish(z.string()),
  }),
});

const BitbucketCloudChangeSchema = z.looseObject({
  new: z.nullish(BitbucketCloudRefSchema),
  old: z.nullish(BitbucketCloudRefSchema),
  created: z.nullish(z.boolean()),
  closed: z.nullish(z.boolean()),
  forced: z.nullish(z.boolean()),
  truncated: z.nullish(z.boolean()),
});

/** The fields of a Bitbucket Cloud `repo:push` delivery that a {@link Push} needs. */
export const BitbucketCloudPushPayloadSchema = z.looseObject({
  push: z.looseObject({ changes: z.array(BitbucketCloudChangeSchema) }),
  repository: z.looseObject({
    full_name: z.string().check(z.minLength(1)),
    links: z.looseObject({ html: z.looseObject({ href: z.string().check(z.minLength(1)) }) }),
    mainbranch: z.nullish(z.looseObject({ name: z.nullish(z.string()) })),
  }),
  actor: z.nullish(
    z.looseObject({
      display_name: z.nullish(z.string()),
      nickname: z.nullish(z.string()),
      username: z.nullish(z.string()),
    }),
  ),
});
export type BitbucketCloudPushPayload = z.infer<typeof BitbucketCloudPushPayloadSchema>;

const BitbucketDataCenterChangeSchema = z.looseObject({
  ref: z.looseObject({ id: z.string().check(z.minLength(1)) }),
  fromHash: z.string().check(z.minLength(1)),
  toHash: z.string().check(z.minLength(1)),
  type: z.string().check(z.minLength(1)),
});

const BitbucketDataCenterCommitSchema = z.looseObject({
  id: z.string().check(z.minLength(1)),
  message: z.nullish(z.string()),
});

/** The fields of a Bitbucket Data Center `repo:refs_changed` delivery that a {@link Push} needs. */
export const BitbucketDataCenterPushPayloadSchema = z.looseObject({
  changes: z.array(BitbucketDataCenterChangeSchema),
  repository: z.looseObject({
    slug: z.string().check(z.minLength(1)),
    project: z.looseObject({ key: z.string().check(z.minLength(1)) }),
    links: z.looseObject({
      clone: z.array(z.looseObject({ name: z.string(), href: z.string() })),
      self: z.nullish(z.array(z.looseObject({ href: z.string() }))),
    }),
    defaultBranch: z.nullish(z.string()),
  }),
  actor: z.nullish(z.looseObject({ name: z.nullish(z.string()), displayName: z.nullish(z.string()) })),
  toCommit: z.nullish(BitbucketDataCenterCommitSchema),
  commits: z.nullish(z.array(BitbucketDataCenterCommitSchema)),
});
export type BitbucketDataCenterPushPayload = z.infer<typeof BitbucketDataCenterPushPayloadSchema>;

const CLOUD = 'Bitbucket Cloud push payload';
const DATA_CENTER = 'Bitbucket Data Center push payload';

function cloudRef(type: string, name: string, field: string): string {
  if (type === 'branch') {
    return `refs/heads/${name}`;
  }
  if (type === 'tag' || type === 'annotated_tag') {
    return `refs/tags/${name}`;
  }
  throw new InvalidInputError(`${CLOUD} has ${field} "${type}", which is neither a branch nor a tag`);
}

/**
 * Bitbucket Cloud payloads carry no clone URL: it is derived from the repository's full name, on the host
 * of its web address (`https://bitbucket.org/<workspace>/<slug>.git`), so it cannot name another repository.
 */
function cloudCloneUrl(payload: BitbucketCloudPushPayload): string {
  const href = payload.repository.links.html.href;
  const web = URL.canParse(href) ? new URL(href) : undefined;
  if (web?.protocol !== 'https:' && web?.protocol !== 'http:') {
    throw new InvalidInputError(
      `${CLOUD} has an invalid repository.links.html.href: expected an http(s) URL`,
    );
  }
  return `${web.protocol}//${web.host}/${payload.repository.full_name}.git`;
}

/**
 * Turns a Bitbucket Cloud `repo:push` payload into one {@link Push} per entry of `push.changes`: the
 * `new` target is after, the `old` target before; `created`, `closed` (deleted) and `forced` are
 * Bitbucket's own flags. The clone URL is derived from the full name (see `cloudCloneUrl`).
 * Bitbucket payloads carry no file lists: changedFiles is [] and commitsTruncated true.
 */
export function bitbucketCloudPushes(payload: BitbucketCloudPushPayload): Push[] {
  const { repository } = payload;
  const cloneUrl = cloudCloneUrl(payload);
  const defaultBranch = repository.mainbranch?.name ?? undefined;
  const pusher =
    payload.actor?.display_name ?? payload.actor?.nickname ?? payload.actor?.username ?? undefined;
  return payload.push.changes.map((change, index): Push => {
    const side = change.new ?? change.old;
    if (side == null) {
      throw new InvalidInputError(`${CLOUD} is missing push.changes[${index}].new`);
    }
    const field = `push.changes[${index}].${change.new ? 'new' : 'old'}.type`;
    const ref = cloudRef(side.type, side.name, field);
    const { refType, refName } = refParts(ref, CLOUD);
    const before = commitOrNull(change.old?.target.hash);
    const after = pushedCommit(change.new?.target.hash, `push.changes[${index}].new.target.hash`, CLOUD);
    const headCommitMessage = change.new?.target.message ?? undefined;
    return {
      provider: 'bitbucket',
      repository: { fullName: repository.full_name, cloneUrl, ...(defaultBranch ? { defaultBranch } : {}) },
      ref,
      refType,
      refName,
      before,
      after,
      created: change.created ?? before === null,
      deleted: change.closed ?? after === null,
      forced: change.forced ?? false,
      ...(pusher ? { pusher } : {}),
      ...(headCommitMessage !== undefined ? { headCommitMessage } : {}),
      changedFiles: [],
      commitsTruncated: true,
    };
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The HTTP(S) clone link (Data Center names it `http` whatever the scheme), checked against the
 * repository it belongs to: `<base>/scm/<project key>/<slug>.git` on the host of the repository's own
 * page (`links.self`, `<base>/projects/<KEY>/repos/<slug>/browse` or `<base>/users/<user>/repos/…`).
 * Data Center writes project keys in any case in its URLs: the key is compared ignoring case.
 */
function dataCenterCloneUrl(payload: BitbucketDataCenterPushPayload, fullName: string): string {
  const { links, slug, project } = payload.repository;
  const link =
    links.clone.find((candidate) => candidate.name === 'https') ?? links.clone.find((c) => c.name === 'http');
  if (link === undefined || link.href === '') {
    throw new InvalidInputError(`${DATA_CENTER} is missing repository.links.clone[name=http]`);
  }
  const selfHref = links.self?.[0]?.href;
  if (!selfHref) {
    throw new InvalidInputError(`${DATA_CENTER} is missing repository.links.self[0].href`);
  }
  const clone = URL.canParse(link.href) ? new URL(link.href) : undefined;
  const page = URL.canParse(selfHref) ? new URL(selfHref) : undefined;
  const shape = new RegExp(`^(.*)/scm/${escapeRegExp(project.key)}/${escapeRegExp(slug)}\\.git$`, 'i');
  const base = clone ? shape.exec(clone.pathname)?.[1] : undefined;
  const belongs =
    clone !== undefined &&
    page !== undefined &&
    base !== undefined &&
    (clone.protocol === 'https:' || clone.protocol === 'http:') &&
    clone.username === '' &&
    clone.password === '' &&
    clone.search === '' &&
    clone.host === page.host &&
    page.pathname.startsWith(`${base}/`);
  if (!belongs) {
    const shown = clone ? `${clone.protocol}//${clone.host}${clone.pathname}` : 'that is not a URL';
    throw new InvalidInputError(
      `${DATA_CENTER}: repository.links.clone[name=http] ${shown} does not belong to repository ${fullName} ` +
        `(repository.links.self ${page ? `${page.protocol}//${page.host}${page.pathname}` : 'is not a URL'}): ` +
        `the clone URL must be <base>/scm/${project.key}/${slug}.git on the same host`,
    );
  }
  return link.href;
}

/**
 * Turns a Bitbucket Data Center `repo:refs_changed` payload into one {@link Push} per entry of
 * `changes`: `ref.id` is the full ref, `fromHash`/`toHash` are before/after, and the change `type`
 * ADD/UPDATE/DELETE says created or deleted. Data Center does not report force pushes: forced is false.
 * Bitbucket payloads carry no file lists: changedFiles is [] and commitsTruncated true.
 */
export function bitbucketDataCenterPushes(payload: BitbucketDataCenterPushPayload): Push[] {
  const { repository } = payload;
  const fullName = `${repository.project.key}/${repository.slug}`;
  const cloneUrl = dataCenterCloneUrl(payload, fullName);
  const defaultBranch = repository.defaultBranch ?? undefined;
  const pusher = payload.actor?.name ?? payload.actor?.displayName ?? undefined;
  const knownCommits = [...(payload.toCommit ? [payload.toCommit] : []), ...(payload.commits ?? [])];
  return payload.changes.map((change, index): Push => {
    const { refType, refName } = refParts(change.ref.id, DATA_CENTER);
    const before = commitOrNull(change.fromHash);
    const after =
      change.type === 'DELETE' ? null : pushedCommit(change.toHash, `changes[${index}].toHash`, DATA_CENTER);
    const headCommitMessage = knownCommits.find((commit) => commit.id === after)?.message ?? undefined;
    return {
      provider: 'bitbucket',
      repository: { fullName, cloneUrl, ...(defaultBranch ? { defaultBranch } : {}) },
      ref: change.ref.id,
      refType,
      refName,
      before: change.type === 'ADD' ? null : before,
      after,
      created: change.type === 'ADD',
      deleted: change.type === 'DELETE',
      forced: false,
      ...(pusher ? { pusher } : {}),
      ...(headCommitMessage !== undefined ? { headCommitMessage } : {}),
      changedFiles: [],
      commitsTruncated: true,
    };
  });
}

/** Bitbucket Data Center's "Test connection" sends `{"test": true}`. */
function isDataCenterTestPing(body: unknown): boolean {
  return typeof body === 'object' && body !== null && (body as Record<string, unknown>).test === true;
}

/**
 * Normalizes a Bitbucket webhook delivery by its `X-Event-Key`: `repo:push` (Cloud) and
 * `repo:refs_changed` (Data Center) give one push per change (none: ignored "no changes");
 * `diagnostics:ping` and Data Center's `{"test": true}` are ignored as pings; every other event is
 * ignored with a reason. The delivery id is `X-Request-UUID` (Cloud) or `X-Request-Id` (Data Center).
 * Data Center pushes are marked `edition: 'bitbucket-data-center'`: CodeBuild has no source type for them.
 */
export function normalizeBitbucketWebhook(
  headers: Record<string, string | undefined>,
  body: unknown,
): WebhookOutcome {
  const event = findHeader(headers, 'X-Event-Key');
  if (event === 'diagnostics:ping' || isDataCenterTestPing(body)) {
    return { kind: 'ignored', reason: 'ping' };
  }
  if (event === undefined) {
    throw new InvalidInputError('Missing X-Event-Key header');
  }
  const deliveryId = findHeader(headers, 'X-Request-UUID') ?? findHeader(headers, 'X-Request-Id');
  if (event.startsWith('pullrequest:')) {
    return bitbucketCloudPullRequest(event, body, deliveryId);
  }
  let pushes: Push[];
  const dataCenter = event === 'repo:refs_changed';
  if (event === 'repo:push') {
    pushes = bitbucketCloudPushes(parsePayload(BitbucketCloudPushPayloadSchema, body, CLOUD));
  } else if (dataCenter) {
    pushes = bitbucketDataCenterPushes(parsePayload(BitbucketDataCenterPushPayloadSchema, body, DATA_CENTER));
  } else {
    return { kind: 'ignored', reason: `Bitbucket event "${event}" is neither a push nor a pull request` };
  }
  if (pushes.length === 0) {
    return { kind: 'ignored', reason: 'no changes' };
  }
  return {
    kind: 'pushes',
    pushes,
    ...(deliveryId ? { deliveryId } : {}),
    ...(dataCenter ? { edition: 'bitbucket-data-center' as const } : {}),
  };
}

const BitbucketCloudEndSchema = z.looseObject({
  branch: z.looseObject({ name: z.string().check(z.minLength(1)) }),
  commit: z.looseObject({ hash: z.string().check(z.minLength(1)) }),
  repository: z.looseObject({ full_name: z.string().check(z.minLength(1)) }),
});

/** The fields of a Bitbucket Cloud `pullrequest:created` / `pullrequest:updated` delivery a run needs. */
export const BitbucketCloudPullRequestPayloadSchema = z.looseObject({
  pullrequest: z.looseObject({
    id: z.number().check(z.int(), z.nonnegative()),
    title: z.nullish(z.string()),
    /** Sent since Bitbucket Cloud added draft pull requests (2023); absent before: not a draft. */
    draft: z.nullish(z.boolean()),
    links: z.nullish(z.looseObject({ html: z.nullish(z.looseObject({ href: z.nullish(z.string()) })) })),
    author: z.nullish(
      z.looseObject({ display_name: z.nullish(z.string()), nickname: z.nullish(z.string()) }),
    ),
    source: BitbucketCloudEndSchema,
    destination: BitbucketCloudEndSchema,
  }),
  repository: z.looseObject({
    full_name: z.string().check(z.minLength(1)),
    links: z.looseObject({ html: z.looseObject({ href: z.string().check(z.minLength(1)) }) }),
    mainbranch: z.nullish(z.looseObject({ name: z.nullish(z.string()) })),
  }),
});

const CLOUD_PR = 'Bitbucket Cloud pull request payload';

/**
 * Bitbucket Cloud's pull request events that start a run: created is OPEN, updated (new commits, or the
 * request edited) UPDATED; fulfilled (merged) and rejected (declined) start nothing
 * (https://support.atlassian.com/bitbucket-cloud/docs/event-payloads/#Pull-request-events).
 */
const BITBUCKET_PULL_REQUEST_EVENTS: Record<string, PullRequestEvent> = {
  'pullrequest:created': 'OPEN',
  'pullrequest:updated': 'UPDATED',
};

/**
 * A Bitbucket Cloud pull request delivery. Its commit hashes are abbreviated (12 hex digits): the head is
 * kept as sent and the build resolves it in the source repository. The clone URL is derived from the
 * source repository's full name on the host of the repository's web address, as for pushes.
 */
export function bitbucketCloudPullRequest(
  event: string,
  body: unknown,
  deliveryId: string | undefined,
): WebhookOutcome {
  const id =
    typeof body === 'object' && body !== null
      ? (body as { pullrequest?: { id?: unknown } }).pullrequest?.id
      : undefined;
  if (event === 'pullrequest:fulfilled' || event === 'pullrequest:rejected') {
    return {
      kind: 'ignored',
      reason: `pull request #${String(id)} was ${event === 'pullrequest:fulfilled' ? 'merged' : 'declined'}`,
    };
  }
  const prEvent = BITBUCKET_PULL_REQUEST_EVENTS[event];
  if (prEvent === undefined) {
    return {
      kind: 'ignored',
      reason: `Bitbucket event "${event}" starts no run (pullrequest:created and pullrequest:updated do)`,
    };
  }
  const payload = parsePayload(BitbucketCloudPullRequestPayloadSchema, body, CLOUD_PR);
  const pr = payload.pullrequest;
  const href = payload.repository.links.html.href;
  const web = URL.canParse(href) ? new URL(href) : undefined;
  if (web?.protocol !== 'https:' && web?.protocol !== 'http:') {
    throw new InvalidInputError(
      `${CLOUD_PR} has an invalid repository.links.html.href: expected an http(s) URL`,
    );
  }
  const source = pr.source.repository.full_name;
  const target = pr.destination.repository.full_name;
  const defaultBranch = payload.repository.mainbranch?.name ?? undefined;
  const author = pr.author?.display_name ?? pr.author?.nickname ?? undefined;
  const url = pr.links?.html?.href ?? undefined;
  const pullRequest: PullRequest = {
    provider: 'bitbucket',
    number: pr.id,
    title: pr.title ?? '',
    ...(url ? { url } : {}),
    event: prEvent,
    action: event,
    draft: pr.draft ?? false,
    fork: source.toLowerCase() !== target.toLowerCase(),
    ...(author ? { author } : {}),
    head: headCommit(pr.source.commit.hash, 'pullrequest.source.commit.hash', CLOUD_PR, {
      abbreviated: true,
    }),
    target: {
      repository: target,
      branch: pr.destination.branch.name,
      ...(defaultBranch ? { defaultBranch } : {}),
    },
    source: { repository: source, branch: pr.source.branch.name },
  };
  return {
    kind: 'pull-request',
    pullRequest,
    head: pullRequestHead(pullRequest, { cloneUrl: `${web.protocol}//${web.host}/${source}.git` }),
    ...(deliveryId ? { deliveryId } : {}),
  };
}
