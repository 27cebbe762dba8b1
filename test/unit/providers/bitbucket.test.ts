import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '#shared/errors.ts';
import { normalizeWebhook, type WebhookOutcome } from '#shared/providers/index.ts';
import { type Push, PushSchema, ZERO_SHA } from '#shared/push.ts';

type Json = Record<string, unknown>;

function fixture(name: string): Json {
  return JSON.parse(
    readFileSync(new URL(`../../fixtures/bitbucket/${name}`, import.meta.url), 'utf8'),
  ) as Json;
}

const cloudHeaders = { 'x-event-key': 'repo:push', 'x-request-uuid': 'cloud-request-1' };
const dataCenterHeaders = { 'x-event-key': 'repo:refs_changed', 'x-request-id': 'dc-request-1' };

function pushesOf(outcome: WebhookOutcome): Push[] {
  if (outcome.kind !== 'pushes') {
    throw new Error(`expected pushes, got ${JSON.stringify(outcome)}`);
  }
  for (const push of outcome.pushes) {
    expect(PushSchema.parse(push)).toEqual(push);
  }
  return outcome.pushes;
}

function onlyPush(outcome: WebhookOutcome): Push {
  const pushes = pushesOf(outcome);
  expect(pushes).toHaveLength(1);
  return pushes[0] as Push;
}

/** The first change of a Cloud payload, to modify a copy of a real payload. */
function firstChange(body: Json): Json {
  const push = body.push as { changes: Json[] };
  return push.changes[0] as Json;
}

const amunizCloud = {
  fullName: 'amuniz/test-repos',
  cloneUrl: 'https://bitbucket.org/amuniz/test-repos.git',
};
const cloudbeers = { fullName: 'cloudbeers/temp', cloneUrl: 'https://bitbucket.org/cloudbeers/temp.git' };
/** Every Bitbucket push: no file lists in the payload, so never a silent path-filter skip. */
const unknownFiles = { changedFiles: [], commitsTruncated: true };

describe('normalizeWebhook(bitbucket) on real Bitbucket Cloud repo:push payloads', () => {
  it('reads the signed payload: a new branch, with the delivery id from X-Request-UUID', () => {
    const outcome = normalizeWebhook('bitbucket', cloudHeaders, fixture('jenkins-cloud-signed_payload.json'));

    expect(outcome).toMatchObject({ kind: 'pushes', deliveryId: 'cloud-request-1' });
    expect(onlyPush(outcome)).toEqual({
      provider: 'bitbucket',
      repository: {
        fullName: 'nfalco79/test-repos',
        cloneUrl: 'https://bitbucket.org/nfalco79/test-repos.git',
      },
      ref: 'refs/heads/feature/webhook',
      refType: 'branch',
      refName: 'feature/webhook',
      before: null,
      after: 'd7f300a32270053bdfd97a6d64113f58202c33e7',
      created: true,
      deleted: false,
      forced: false,
      pusher: 'Nikolas Falco',
      headCommitMessage: 'Test for webhook signature\n',
      ...unknownFiles,
    });
  });

  it('reads an update of an existing branch (push-updatePayload)', () => {
    const push = onlyPush(
      normalizeWebhook('bitbucket', cloudHeaders, fixture('jenkins-cloud-push-updatePayload.json')),
    );

    expect(push).toEqual({
      provider: 'bitbucket',
      repository: cloudbeers,
      ref: 'refs/heads/main',
      refType: 'branch',
      refName: 'main',
      before: '501bf5b99365d1d870882254b9360c17172bda0e',
      after: 'e42fac24456e4a56f1b7f9358afc3070e3b7ddec',
      created: false,
      deleted: false,
      forced: false,
      pusher: 'Stephen Connolly',
      headCommitMessage: 'Jenkinsfile created online with Bitbucket',
      ...unknownFiles,
    });
  });

  it('reads the first push of a branch (push-createPayload)', () => {
    const push = onlyPush(
      normalizeWebhook('bitbucket', cloudHeaders, fixture('jenkins-cloud-push-createPayload.json')),
    );

    expect(push).toMatchObject({
      repository: cloudbeers,
      ref: 'refs/heads/main',
      before: null,
      after: '501bf5b99365d1d870882254b9360c17172bda0e',
      created: true,
      deleted: false,
      headCommitMessage: 'README.md created online with Bitbucket',
      ...unknownFiles,
    });
  });

  it('reads a forced, truncated update (commit_created)', () => {
    const push = onlyPush(
      normalizeWebhook('bitbucket', cloudHeaders, fixture('jenkins-cloud-commit_created.json')),
    );

    expect(push).toEqual({
      provider: 'bitbucket',
      repository: amunizCloud,
      ref: 'refs/heads/feature/issue-819',
      refType: 'branch',
      refName: 'feature/issue-819',
      before: 'a10199272451f4c7c5edced2d40b5d6f2f6f5fa3',
      after: '5ecffa3874e96920f24a2b3c0d0038e47d5cd1a4',
      created: false,
      deleted: false,
      forced: true,
      pusher: 'Nikolas Falco',
      headCommitMessage: 'Test pipeline for issue JENKINS-75182\n',
      ...unknownFiles,
    });
  });

  it('reads a created branch (branch_created)', () => {
    const push = onlyPush(
      normalizeWebhook('bitbucket', cloudHeaders, fixture('jenkins-cloud-branch_created.json')),
    );

    expect(push).toMatchObject({
      repository: amunizCloud,
      ref: 'refs/heads/feature/test',
      before: null,
      after: '174561d625c9623b60d8aba09b7f08ddc9df45cd',
      created: true,
      deleted: false,
      forced: false,
      headCommitMessage: 'Add simple pipeline\n',
      ...unknownFiles,
    });
  });

  it('reads a deleted branch (branch_deleted: new null, closed true)', () => {
    const push = onlyPush(
      normalizeWebhook('bitbucket', cloudHeaders, fixture('jenkins-cloud-branch_deleted.json')),
    );

    expect(push).toEqual({
      provider: 'bitbucket',
      repository: amunizCloud,
      ref: 'refs/heads/feature/test',
      refType: 'branch',
      refName: 'feature/test',
      before: '174561d625c9623b60d8aba09b7f08ddc9df45cd',
      after: null,
      created: false,
      deleted: true,
      forced: false,
      pusher: 'Nikolas Falco',
      ...unknownFiles,
    });
  });

  it.each([
    ['jenkins-cloud-tag_created.json', 'simple-tag', '7ef5981d59145c3ed300b1ab77b93907d33abe59', amunizCloud],
    [
      'jenkins-cloud-annotated_tag_created.json',
      'test-tag',
      '7ef5981d59145c3ed300b1ab77b93907d33abe59',
      amunizCloud,
    ],
    [
      'jenkins-cloud-push-newTagPayload.json',
      'test',
      'fee1dcdb330d1318502f303ccd4792531c28dc8e',
      {
        fullName: 'acme/tds.cm.maven.plugins-java',
        cloneUrl: 'https://bitbucket.org/acme/tds.cm.maven.plugins-java.git',
      },
    ],
  ])('reads a created tag (%s)', (name, tag, after, repository) => {
    const push = onlyPush(normalizeWebhook('bitbucket', cloudHeaders, fixture(name)));

    expect(push).toMatchObject({
      repository,
      ref: `refs/tags/${tag}`,
      refType: 'tag',
      refName: tag,
      before: null,
      after,
      created: true,
      deleted: false,
      ...unknownFiles,
    });
  });

  it('reads a deleted tag (tag_deleted)', () => {
    const push = onlyPush(
      normalizeWebhook('bitbucket', cloudHeaders, fixture('jenkins-cloud-tag_deleted.json')),
    );

    expect(push).toMatchObject({
      ref: 'refs/tags/test',
      refType: 'tag',
      before: '174561d625c9623b60d8aba09b7f08ddc9df45cd',
      after: null,
      created: false,
      deleted: true,
    });
    expect(push.headCommitMessage).toBeUndefined();
  });

  it('gives one push per change: 3 for push-multipleChangesPayload', () => {
    const pushes = pushesOf(
      normalizeWebhook('bitbucket', cloudHeaders, fixture('jenkins-cloud-push-multipleChangesPayload.json')),
    );

    expect(pushes).toHaveLength(3);
    expect(
      pushes.map(({ ref, before, after, created, deleted }) => ({ ref, before, after, created, deleted })),
    ).toEqual([
      {
        ref: 'refs/heads/main',
        before: 'fc4d1ce2853b6f1ac0d0dbad643d17ef4a6e0be7',
        after: '325d37697849f4b1fe42cb19c20134af08e03a82',
        created: false,
        deleted: false,
      },
      {
        ref: 'refs/heads/manchu',
        before: null,
        after: 'e22fcb49645b4586a845938afac5eb3ac1950586',
        created: true,
        deleted: false,
      },
      {
        ref: 'refs/tags/v0.1',
        before: null,
        after: '1986c228494671574242f99b62d1a00a4bfb69a5',
        created: true,
        deleted: false,
      },
    ]);
    expect(pushes.every((push) => push.repository.fullName === 'cloudbeers/temp')).toBe(true);
    expect(pushes.every((push) => push.commitsTruncated && push.changedFiles?.length === 0)).toBe(true);
  });

  it('ignores a push with no changes (push-emptyPayload)', () => {
    expect(
      normalizeWebhook('bitbucket', cloudHeaders, fixture('jenkins-cloud-push-emptyPayload.json')),
    ).toEqual({
      kind: 'ignored',
      reason: 'no changes',
    });
  });

  it("reads Atlassian's documented example (go-playground repo-push), naming the pusher by display_name", () => {
    const push = onlyPush(
      normalizeWebhook('bitbucket', cloudHeaders, fixture('go-playground-repo-push.json')),
    );

    expect(push).toEqual({
      provider: 'bitbucket',
      repository: {
        fullName: 'team_name/repo_name',
        // Derived from the full name, on the web address's host: links.html names another repository.
        cloneUrl: 'https://api.bitbucket.org/team_name/repo_name.git',
      },
      ref: 'refs/heads/name-of-branch',
      refType: 'branch',
      refName: 'name-of-branch',
      before: '1e65c05c1d5171631d92438a13901ca7dae9618c',
      after: '709d658dc5b6d6afcd46049c2f332ee3f515a67d',
      created: false,
      deleted: false,
      forced: false,
      pusher: 'Emma',
      headCommitMessage: 'new commit message\n',
      ...unknownFiles,
    });
  });
});

describe('normalizeWebhook(bitbucket) on variants of Bitbucket Cloud payloads', () => {
  it('reads an annotated_tag change as a tag', () => {
    const body = fixture('jenkins-cloud-annotated_tag_created.json');
    const change = firstChange(body);
    change.new = { ...(change.new as Json), type: 'annotated_tag' };

    expect(onlyPush(normalizeWebhook('bitbucket', cloudHeaders, body))).toMatchObject({
      ref: 'refs/tags/test-tag',
      refType: 'tag',
    });
  });

  it('refuses a change that is neither a branch nor a tag, naming the field', () => {
    const body = fixture('jenkins-cloud-push-updatePayload.json');
    const change = firstChange(body);
    change.new = { ...(change.new as Json), type: 'named_branch' };

    expect(() => normalizeWebhook('bitbucket', cloudHeaders, body)).toThrow(
      new InvalidInputError(
        'Bitbucket Cloud push payload has push.changes[0].new.type "named_branch", which is neither a branch nor a tag',
      ),
    );
  });

  it('refuses a change with neither new nor old', () => {
    const body = fixture('jenkins-cloud-push-updatePayload.json');
    const change = firstChange(body);
    change.new = null;
    change.old = null;

    expect(() => normalizeWebhook('bitbucket', cloudHeaders, body)).toThrow(
      new InvalidInputError('Bitbucket Cloud push payload is missing push.changes[0].new'),
    );
  });

  it('takes the pusher from nickname when there is no display_name', () => {
    const body = {
      ...fixture('jenkins-cloud-tag_created.json'),
      actor: { nickname: 'nfalco', type: 'user' },
    };

    expect(onlyPush(normalizeWebhook('bitbucket', cloudHeaders, body)).pusher).toBe('nfalco');
  });

  it('takes the default branch from repository.mainbranch when present', () => {
    const body = fixture('jenkins-cloud-push-updatePayload.json');
    body.repository = { ...(body.repository as Json), mainbranch: { type: 'branch', name: 'main' } };

    expect(onlyPush(normalizeWebhook('bitbucket', cloudHeaders, body)).repository.defaultBranch).toBe('main');
  });

  it.each([
    [
      'repository.links.html.href',
      (body: Json) => ({ ...body, repository: { ...(body.repository as Json), links: { html: {} } } }),
    ],
    [
      'repository.full_name',
      (body: Json) => ({ ...body, repository: { ...(body.repository as Json), full_name: null } }),
    ],
    ['push.changes', (body: Json) => ({ ...body, push: {} })],
    [
      'push.changes[0].new.target.hash',
      (body: Json) => {
        const change = firstChange(body);
        change.new = { type: 'branch', name: 'main', target: {} };
        return body;
      },
    ],
  ])('names %s when it is missing', (field, strip) => {
    expect(() =>
      normalizeWebhook('bitbucket', cloudHeaders, strip(fixture('jenkins-cloud-push-updatePayload.json'))),
    ).toThrow(new InvalidInputError(`Bitbucket Cloud push payload is missing ${field}`));
  });
});

const amunizDataCenter = {
  fullName: 'AMUNIZ/test-repos',
  cloneUrl: 'http://localhost:7990/bitbucket/scm/amuniz/test-repos.git',
};

describe('normalizeWebhook(bitbucket) on real Bitbucket Data Center repo:refs_changed payloads', () => {
  it('reads an UPDATE of a branch, with its message from toCommit and the delivery id from X-Request-Id', () => {
    const outcome = normalizeWebhook(
      'bitbucket',
      dataCenterHeaders,
      fixture('jenkins-server-pushPayload.json'),
    );

    expect(outcome).toMatchObject({ kind: 'pushes', deliveryId: 'dc-request-1' });
    expect(onlyPush(outcome)).toEqual({
      provider: 'bitbucket',
      repository: {
        fullName: 'AMUNIZ/test-repos',
        cloneUrl: 'http://localhost:7990/scm/amuniz/test-repos.git',
      },
      ref: 'refs/heads/main',
      refType: 'branch',
      refName: 'main',
      before: 'a8c13e8850dc60300be720019d1ffc1aa2fded87',
      after: '9fdd7b96d3f5c276d0b9e0bf38c879eb112d889a',
      created: false,
      deleted: false,
      forced: false,
      pusher: 'amuniz',
      headCommitMessage: 'source-2: Wed 13 Nov 2024 21:54:36 AEST',
      ...unknownFiles,
    });
  });

  it.each(['jenkins-server-branch_deleted.json', 'jenkins-server-signed_payload.json'])(
    'reads a DELETE of a branch (%s)',
    (name) => {
      const push = onlyPush(normalizeWebhook('bitbucket', dataCenterHeaders, fixture(name)));

      expect(push).toEqual({
        provider: 'bitbucket',
        repository: amunizDataCenter,
        ref: 'refs/heads/feature/BB-1',
        refType: 'branch',
        refName: 'feature/BB-1',
        before: 'fb522a6f08c7c7df337312e4e65ec1b57710672e',
        after: null,
        created: false,
        deleted: true,
        forced: false,
        pusher: 'admin',
        ...unknownFiles,
      });
    },
  );

  it('reads a personal project repository (go-playground repo-refs-changed)', () => {
    const push = onlyPush(
      normalizeWebhook(
        'bitbucket',
        dataCenterHeaders,
        fixture('go-playground-server-repo-refs-changed.json'),
      ),
    );

    expect(push).toEqual({
      provider: 'bitbucket',
      repository: {
        fullName: '~gopher/webhook-test',
        cloneUrl: 'https://server.bitbucket.local/scm/~gopher/webhook-test.git',
      },
      ref: 'refs/heads/feature/wip',
      refType: 'branch',
      refName: 'feature/wip',
      before: '32a0b8a740c2963c6f56bd8baf3dc05683d299e0',
      after: null,
      created: false,
      deleted: true,
      forced: false,
      pusher: 'gopher',
      ...unknownFiles,
    });
  });

  it.each([[{ 'x-event-key': 'diagnostics:ping' }], [{}]])(
    'ignores the Data Center test ping {"test": true} (headers %o)',
    (headers) => {
      expect(normalizeWebhook('bitbucket', headers, fixture('jenkins-server-ping.json'))).toEqual({
        kind: 'ignored',
        reason: 'ping',
      });
    },
  );
});

describe('normalizeWebhook(bitbucket) on variants of Bitbucket Data Center payloads', () => {
  const changes = (body: Json) => body.changes as Json[];

  it('reads an ADD as a created ref', () => {
    const body = fixture('jenkins-server-pushPayload.json');
    changes(body)[0] = { ...changes(body)[0], fromHash: ZERO_SHA, type: 'ADD' };

    expect(onlyPush(normalizeWebhook('bitbucket', dataCenterHeaders, body))).toMatchObject({
      before: null,
      after: '9fdd7b96d3f5c276d0b9e0bf38c879eb112d889a',
      created: true,
      deleted: false,
    });
  });

  it('gives one push per change', () => {
    const body = fixture('jenkins-server-pushPayload.json');
    const tag = {
      ref: { id: 'refs/tags/v2', displayId: 'v2', type: 'TAG' },
      fromHash: ZERO_SHA,
      toHash: 'c'.repeat(40),
      type: 'ADD',
    };
    body.changes = [...changes(body), tag];

    const pushes = pushesOf(normalizeWebhook('bitbucket', dataCenterHeaders, body));

    expect(pushes.map((push) => [push.ref, push.created])).toEqual([
      ['refs/heads/main', false],
      ['refs/tags/v2', true],
    ]);
    expect(pushes[1]?.headCommitMessage).toBeUndefined();
  });

  it('ignores a push with no changes', () => {
    const body = { ...fixture('jenkins-server-pushPayload.json'), changes: [] };

    expect(normalizeWebhook('bitbucket', dataCenterHeaders, body)).toEqual({
      kind: 'ignored',
      reason: 'no changes',
    });
  });

  it('takes the default branch from repository.defaultBranch when present', () => {
    const body = fixture('jenkins-server-pushPayload.json');
    body.repository = { ...(body.repository as Json), defaultBranch: 'main' };

    expect(onlyPush(normalizeWebhook('bitbucket', dataCenterHeaders, body)).repository.defaultBranch).toBe(
      'main',
    );
  });

  it('refuses a repository without an http clone link, naming it', () => {
    const body = fixture('jenkins-server-pushPayload.json');
    const repository = body.repository as { links: { clone: Json[] } };
    repository.links.clone = repository.links.clone.filter((link) => link.name !== 'http');

    expect(() => normalizeWebhook('bitbucket', dataCenterHeaders, body)).toThrow(
      new InvalidInputError(
        'Bitbucket Data Center push payload is missing repository.links.clone[name=http]',
      ),
    );
  });

  it.each([
    [
      'repository.project.key',
      (body: Json) => ({ ...body, repository: { ...(body.repository as Json), project: {} } }),
    ],
    [
      'changes[0].ref.id',
      (body: Json) => ({ ...body, changes: [{ ...(body.changes as Json[])[0], ref: {} }] }),
    ],
    [
      'changes[0].toHash',
      (body: Json) => ({ ...body, changes: [{ ...(body.changes as Json[])[0], toHash: undefined }] }),
    ],
    ['changes', (body: Json) => ({ ...body, changes: undefined })],
  ])('names %s when it is missing', (field, strip) => {
    expect(() =>
      normalizeWebhook('bitbucket', dataCenterHeaders, strip(fixture('jenkins-server-pushPayload.json'))),
    ).toThrow(new InvalidInputError(`Bitbucket Data Center push payload is missing ${field}`));
  });
});

describe('normalizeWebhook(bitbucket) on events that are not pushes', () => {
  it('ignores diagnostics:ping', () => {
    expect(normalizeWebhook('bitbucket', { 'X-Event-Key': 'diagnostics:ping' }, {})).toEqual({
      kind: 'ignored',
      reason: 'ping',
    });
  });

  it('ignores another event, naming it', () => {
    expect(normalizeWebhook('bitbucket', { 'x-event-key': 'issue:created' }, {})).toEqual({
      kind: 'ignored',
      reason: 'Bitbucket event "issue:created" is neither a push nor a pull request',
    });
  });

  it('refuses a delivery without X-Event-Key, naming the header', () => {
    expect(() => normalizeWebhook('bitbucket', {}, fixture('jenkins-cloud-push-updatePayload.json'))).toThrow(
      new InvalidInputError('Missing X-Event-Key header'),
    );
  });
});
