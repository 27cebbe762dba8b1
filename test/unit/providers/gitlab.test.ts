import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '#shared/errors.ts';
import { normalizeWebhook, type WebhookOutcome } from '#shared/providers/index.ts';
import { type Push, PushSchema, ZERO_SHA } from '#shared/push.ts';

type Json = Record<string, unknown>;

function fixture(name: string): Json {
  return JSON.parse(readFileSync(new URL(`../../fixtures/gitlab/${name}`, import.meta.url), 'utf8')) as Json;
}

function headers(event: string): Record<string, string> {
  return { 'x-gitlab-event': event, 'x-gitlab-event-uuid': '3f7a8c42-5b1e-4c0d-9e2f-7a6b5c4d3e2f' };
}

function onlyPush(outcome: WebhookOutcome): Push {
  if (outcome.kind !== 'pushes') {
    throw new Error(`expected pushes, got ${JSON.stringify(outcome)}`);
  }
  expect(outcome.pushes).toHaveLength(1);
  const push = outcome.pushes[0] as Push;
  expect(PushSchema.parse(push)).toEqual(push);
  return push;
}

const diaspora = {
  fullName: 'mike/diaspora',
  cloneUrl: 'http://example.com/mike/diaspora.git',
  defaultBranch: 'master',
};

const example = {
  fullName: 'jsmith/example',
  cloneUrl: 'http://example.com/jsmith/example.git',
  defaultBranch: 'master',
};

describe('normalizeWebhook(gitlab) on real push payloads', () => {
  it('reads the documented push hook, truncated because it lists 2 of 4 commits', () => {
    const outcome = normalizeWebhook('gitlab', headers('Push Hook'), fixture('gitlab-docs-push-hook.json'));

    expect(outcome).toMatchObject({ kind: 'pushes', deliveryId: '3f7a8c42-5b1e-4c0d-9e2f-7a6b5c4d3e2f' });
    expect(onlyPush(outcome)).toEqual({
      provider: 'gitlab',
      repository: diaspora,
      ref: 'refs/heads/master',
      refType: 'branch',
      refName: 'master',
      before: '95790bf891e76fee5e1747ab589903a6a1f80f22',
      after: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
      created: false,
      deleted: false,
      forced: false,
      pusher: 'jsmith',
      headCommitMessage: 'fixed readme',
      changedFiles: ['CHANGELOG', 'app/controller/application.rb'],
      commitsTruncated: true,
    });
  });

  it('names the pusher by user_name when the payload has no user_username (go-playground push)', () => {
    const push = onlyPush(
      normalizeWebhook('gitlab', headers('Push Hook'), fixture('go-playground-push-event.json')),
    );

    expect(push).toEqual({
      provider: 'gitlab',
      repository: diaspora,
      ref: 'refs/heads/master',
      refType: 'branch',
      refName: 'master',
      before: '95790bf891e76fee5e1747ab589903a6a1f80f22',
      after: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
      created: false,
      deleted: false,
      forced: false,
      pusher: 'John Smith',
      headCommitMessage: 'fixed readme',
      changedFiles: ['CHANGELOG', 'app/controller/application.rb'],
      commitsTruncated: true,
    });
  });

  it.each(['gitlab-docs-tag-push-hook.json', 'go-playground-tag-event.json'])(
    'reads a created tag (%s)',
    (name) => {
      const push = onlyPush(normalizeWebhook('gitlab', headers('Tag Push Hook'), fixture(name)));

      expect(push).toEqual({
        provider: 'gitlab',
        repository: example,
        ref: 'refs/tags/v1.0.0',
        refType: 'tag',
        refName: 'v1.0.0',
        before: null,
        after: '82b3d5ae55f7080f1e6022629cdb57bfae7cccc7',
        created: true,
        deleted: false,
        forced: false,
        pusher: 'John Smith',
        changedFiles: [],
        commitsTruncated: false,
      });
    },
  );

  it('reads a push from a system hook, truncated because system hooks list no files', () => {
    const push = onlyPush(
      normalizeWebhook('gitlab', headers('System Hook'), fixture('go-playground-system-push-event.json')),
    );

    expect(push).toEqual({
      provider: 'gitlab',
      repository: diaspora,
      ref: 'refs/heads/master',
      refType: 'branch',
      refName: 'master',
      before: '95790bf891e76fee5e1747ab589903a6a1f80f22',
      after: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
      created: false,
      deleted: false,
      forced: false,
      pusher: 'John Smith',
      changedFiles: [],
      commitsTruncated: true,
    });
  });
});

describe('normalizeWebhook(gitlab) on variants of real payloads', () => {
  it('reads a branch deletion (after zeros, checkout_sha null) as deleted', () => {
    const body = {
      ...fixture('gitlab-docs-push-hook.json'),
      after: ZERO_SHA,
      checkout_sha: null,
      total_commits_count: 0,
      commits: [],
    };

    const push = onlyPush(normalizeWebhook('gitlab', headers('Push Hook'), body));

    expect(push).toMatchObject({
      ref: 'refs/heads/master',
      before: '95790bf891e76fee5e1747ab589903a6a1f80f22',
      after: null,
      created: false,
      deleted: true,
      changedFiles: [],
      commitsTruncated: false,
    });
    expect(push.headCommitMessage).toBeUndefined();
  });

  it('reads a push whose checkout_sha is null as deleted even if after is not zeros', () => {
    const body = {
      ...fixture('gitlab-docs-push-hook.json'),
      checkout_sha: null,
      total_commits_count: 0,
      commits: [],
    };

    expect(onlyPush(normalizeWebhook('gitlab', headers('Push Hook'), body))).toMatchObject({
      after: null,
      deleted: true,
    });
  });

  it('reads a tag deletion as deleted', () => {
    const body = {
      ...fixture('gitlab-docs-tag-push-hook.json'),
      before: '82b3d5ae55f7080f1e6022629cdb57bfae7cccc7',
      after: ZERO_SHA,
      checkout_sha: null,
    };

    expect(onlyPush(normalizeWebhook('gitlab', headers('Tag Push Hook'), body))).toMatchObject({
      refType: 'tag',
      refName: 'v1.0.0',
      before: '82b3d5ae55f7080f1e6022629cdb57bfae7cccc7',
      after: null,
      created: false,
      deleted: true,
    });
  });

  it('reads a new branch (before zeros) as created, untruncated when all commits are listed', () => {
    const body = {
      ...fixture('gitlab-docs-push-hook.json'),
      ref: 'refs/heads/feature/login',
      before: ZERO_SHA,
      total_commits_count: 2,
    };

    expect(onlyPush(normalizeWebhook('gitlab', headers('Push Hook'), body))).toMatchObject({
      refName: 'feature/login',
      before: null,
      created: true,
      deleted: false,
      commitsTruncated: false,
    });
  });

  it('takes the delivery id from X-Gitlab-Webhook-UUID when X-Gitlab-Event-UUID is absent', () => {
    const outcome = normalizeWebhook(
      'gitlab',
      { 'X-Gitlab-Event': 'Push Hook', 'X-Gitlab-Webhook-UUID': 'hook-uuid-1' },
      fixture('gitlab-docs-push-hook.json'),
    );

    expect(outcome).toMatchObject({ kind: 'pushes', deliveryId: 'hook-uuid-1' });
  });

  it('accepts unknown fields and null optional fields', () => {
    const body = fixture('gitlab-docs-push-hook.json');
    const project = { ...(body.project as Json), default_branch: null, ci_config_path: 'x' };

    const push = onlyPush(
      normalizeWebhook('gitlab', headers('Push Hook'), {
        ...body,
        project,
        user_username: null,
        message: null,
        push_options: {},
      }),
    );

    expect(push.repository).toEqual({
      fullName: 'mike/diaspora',
      cloneUrl: 'http://example.com/mike/diaspora.git',
    });
    expect(push.pusher).toBe('John Smith');
  });
});

describe('normalizeWebhook(gitlab) on events that are not pushes', () => {
  it('ignores another event, naming it', () => {
    expect(normalizeWebhook('gitlab', headers('Note Hook'), { object_kind: 'note' })).toEqual({
      kind: 'ignored',
      reason: 'GitLab event "Note Hook" is neither a push nor a merge request',
    });
  });

  it('ignores a system hook that is not a push, naming its kind', () => {
    expect(normalizeWebhook('gitlab', headers('System Hook'), { event_name: 'project_create' })).toEqual({
      kind: 'ignored',
      reason: 'GitLab system hook "project_create" is not a push',
    });
  });

  it('refuses a delivery without X-Gitlab-Event, naming the header', () => {
    expect(() => normalizeWebhook('gitlab', {}, fixture('gitlab-docs-push-hook.json'))).toThrow(
      new InvalidInputError('Missing X-Gitlab-Event header'),
    );
  });
});

describe('normalizeWebhook(gitlab) on payloads missing what a push needs', () => {
  const withProject = (body: Json, project: Json) => ({
    ...body,
    project: { ...(body.project as Json), ...project },
  });

  it.each([
    ['project.git_http_url', (body: Json) => withProject(body, { git_http_url: undefined })],
    ['project.path_with_namespace', (body: Json) => withProject(body, { path_with_namespace: null })],
    ['project', (body: Json) => ({ ...body, project: undefined })],
    ['ref', (body: Json) => ({ ...body, ref: undefined })],
    ['after', (body: Json) => ({ ...body, after: undefined })],
    ['commits[1].id', (body: Json) => ({ ...body, commits: [{ id: 'a'.repeat(40) }, { message: 'x' }] })],
  ])('names %s when it is missing', (field, strip) => {
    expect(() =>
      normalizeWebhook('gitlab', headers('Push Hook'), strip(fixture('gitlab-docs-push-hook.json'))),
    ).toThrow(new InvalidInputError(`GitLab push payload is missing ${field}`));
  });

  it('refuses a ref that is neither a branch nor a tag, naming the ref', () => {
    const body = { ...fixture('gitlab-docs-push-hook.json'), ref: 'master' };

    expect(() => normalizeWebhook('gitlab', headers('Push Hook'), body)).toThrow(
      new InvalidInputError('GitLab push payload names ref "master", which is neither a branch nor a tag'),
    );
  });
});
