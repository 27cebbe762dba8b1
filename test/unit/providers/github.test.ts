import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '#shared/errors.ts';
import { GITHUB_MAX_COMMITS, GITHUB_MAX_FILES_PER_COMMIT } from '#shared/providers/github.ts';
import { normalizeWebhook, type WebhookOutcome } from '#shared/providers/index.ts';
import { type Push, PushSchema } from '#shared/push.ts';

type Json = Record<string, unknown>;

function fixture(name: string): Json {
  return JSON.parse(readFileSync(new URL(`../../fixtures/github/${name}`, import.meta.url), 'utf8')) as Json;
}

function headers(event: string, delivery = 'f2d8c2a0-0000-11ef-8a3e-1c1b0d6e7a11'): Record<string, string> {
  return { 'x-github-event': event, 'x-github-delivery': delivery };
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

const helloWorld = {
  fullName: 'Codertocat/Hello-World',
  cloneUrl: 'https://github.com/Codertocat/Hello-World.git',
  defaultBranch: 'master',
};

describe('normalizeWebhook(github) on real push payloads', () => {
  it('reads a push to an existing branch (go-playground push.json)', () => {
    const outcome = normalizeWebhook(
      'github',
      headers('push', 'delivery-1'),
      fixture('go-playground-push.json'),
    );

    expect(outcome).toMatchObject({ kind: 'pushes', deliveryId: 'delivery-1' });
    expect(onlyPush(outcome)).toEqual({
      provider: 'github',
      repository: {
        fullName: 'binkkatal/sample_app',
        cloneUrl: 'https://github.com/binkkatal/sample_app.git',
        defaultBranch: 'master',
      },
      ref: 'refs/heads/master',
      refType: 'branch',
      refName: 'master',
      before: '737d38c599c1b2991664dfc6155d6bf516fcce36',
      after: 'fd489864e7642b48eaad6e3f155c10e46810ec72',
      created: false,
      deleted: false,
      forced: false,
      pusher: 'binkkatal',
      headCommitMessage: 'test a push event',
      changedFiles: ['.razorops.yaml', 'app/controllers/application_controller.rb'],
      commitsTruncated: false,
    });
  });

  it('reads a created tag that lists no commits as truncated, so path filters do not skip it (octokit push 0)', () => {
    const push = onlyPush(normalizeWebhook('github', headers('push'), fixture('octokit-push.0.json')));

    expect(push).toEqual({
      provider: 'github',
      repository: helloWorld,
      ref: 'refs/tags/simple-tag',
      refType: 'tag',
      refName: 'simple-tag',
      before: null,
      after: '6113728f27ae82c7b1a177c8d03f9e96e0adf246',
      created: true,
      deleted: false,
      forced: false,
      pusher: 'Codertocat',
      headCommitMessage: 'Adding a .gitignore file',
      changedFiles: [],
      commitsTruncated: true,
    });
  });

  it.each(['octokit-push.1.json', 'octokit-push.2.json', 'octokit-push.3.json', 'octokit-push.6.json'])(
    'reads a deleted tag with after null and no head commit (%s)',
    (name) => {
      const push = onlyPush(normalizeWebhook('github', headers('push'), fixture(name)));

      expect(push).toEqual({
        provider: 'github',
        repository: helloWorld,
        ref: 'refs/tags/simple-tag',
        refType: 'tag',
        refName: 'simple-tag',
        before: '6113728f27ae82c7b1a177c8d03f9e96e0adf246',
        after: null,
        created: false,
        deleted: true,
        forced: false,
        pusher: 'Codertocat',
        changedFiles: [],
        commitsTruncated: false,
      });
    },
  );

  it.each(['octokit-push.4.json', 'octokit-push.5.json'])(
    'reads the first push of a branch with its one commit (%s)',
    (name) => {
      const push = onlyPush(normalizeWebhook('github', headers('push'), fixture(name)));

      expect(push).toEqual({
        provider: 'github',
        repository: helloWorld,
        ref: 'refs/heads/master',
        refType: 'branch',
        refName: 'master',
        before: null,
        after: '6113728f27ae82c7b1a177c8d03f9e96e0adf246',
        created: true,
        deleted: false,
        forced: false,
        pusher: 'Codertocat',
        headCommitMessage: 'Initial commit',
        changedFiles: ['README.md'],
        commitsTruncated: false,
      });
    },
  );
});

describe('normalizeWebhook(github) on events that are not pushes', () => {
  it.each([
    'go-playground-ping.json',
    'octokit-ping.0.json',
    'octokit-ping.1.json',
    'octokit-ping.2.json',
    'octokit-ping.3.json',
  ])('ignores a ping (%s)', (name) => {
    expect(normalizeWebhook('github', headers('ping'), fixture(name))).toEqual({
      kind: 'ignored',
      reason: 'ping',
    });
  });

  it.each([
    ['create', 'octokit-create.0.json'],
    ['create', 'octokit-create.1.json'],
    ['create', 'octokit-create.2.json'],
    ['create', 'octokit-create.3.json'],
    ['create', 'octokit-create.4.json'],
    ['delete', 'octokit-delete.0.json'],
    ['delete', 'octokit-delete.1.json'],
    ['delete', 'octokit-delete.2.json'],
    ['delete', 'octokit-delete.3.json'],
  ])('ignores a %s event, naming it (%s)', (event, name) => {
    expect(normalizeWebhook('github', headers(event), fixture(name))).toEqual({
      kind: 'ignored',
      reason: `GitHub event "${event}" is neither a push nor a pull request`,
    });
  });

  it('refuses a delivery without X-GitHub-Event, naming the header', () => {
    expect(() => normalizeWebhook('github', {}, fixture('go-playground-push.json'))).toThrow(
      new InvalidInputError('Missing X-GitHub-Event header'),
    );
  });

  it('reads the event and delivery headers whatever their case', () => {
    const outcome = normalizeWebhook(
      'github',
      { 'X-GitHub-Event': 'push', 'X-GITHUB-DELIVERY': 'abc-123' },
      fixture('go-playground-push.json'),
    );

    expect(outcome).toMatchObject({ kind: 'pushes', deliveryId: 'abc-123' });
  });

  it('leaves deliveryId out when the delivery header is absent', () => {
    const outcome = normalizeWebhook(
      'github',
      { 'x-github-event': 'push' },
      fixture('go-playground-push.json'),
    );

    expect(outcome.kind === 'pushes' && 'deliveryId' in outcome).toBe(false);
  });
});

describe('normalizeWebhook(github) on variants of real payloads', () => {
  const update = () => fixture('go-playground-push.json');

  it('reads a forced push to an existing branch', () => {
    const push = onlyPush(normalizeWebhook('github', headers('push'), { ...update(), forced: true }));

    expect(push).toMatchObject({
      ref: 'refs/heads/master',
      before: '737d38c599c1b2991664dfc6155d6bf516fcce36',
      after: 'fd489864e7642b48eaad6e3f155c10e46810ec72',
      created: false,
      deleted: false,
      forced: true,
      changedFiles: ['.razorops.yaml', 'app/controllers/application_controller.rb'],
      commitsTruncated: false,
    });
  });

  it('marks a forced push that lists no commits as truncated', () => {
    const push = onlyPush(
      normalizeWebhook('github', headers('push'), { ...update(), forced: true, commits: [] }),
    );

    expect(push).toMatchObject({ forced: true, changedFiles: [], commitsTruncated: true });
  });

  it('keeps an ordinary push that lists no commits untruncated', () => {
    const push = onlyPush(normalizeWebhook('github', headers('push'), { ...update(), commits: [] }));

    expect(push).toMatchObject({ forced: false, created: false, changedFiles: [], commitsTruncated: false });
  });

  it(`marks a push listing ${GITHUB_MAX_COMMITS} commits (GitHub's cap) as truncated`, () => {
    const body = update();
    const [commit] = body.commits as Json[];
    const commits = Array.from({ length: GITHUB_MAX_COMMITS }, (_, index) => ({
      ...commit,
      id: index.toString(16).padStart(40, '0'),
    }));

    const push = onlyPush(normalizeWebhook('github', headers('push'), { ...body, commits }));

    expect(push.commitsTruncated).toBe(true);
    expect(push.changedFiles).toEqual(['.razorops.yaml', 'app/controllers/application_controller.rb']);
  });

  it('keeps a push listing one commit fewer than the cap untruncated', () => {
    const body = update();
    const [commit] = body.commits as Json[];
    const commits = Array.from({ length: GITHUB_MAX_COMMITS - 1 }, () => commit);

    expect(onlyPush(normalizeWebhook('github', headers('push'), { ...body, commits })).commitsTruncated).toBe(
      false,
    );
  });

  it(`marks a push with a commit listing ${GITHUB_MAX_FILES_PER_COMMIT} files (GitHub's per-commit cap) as truncated`, () => {
    const body = update();
    const added = Array.from({ length: GITHUB_MAX_FILES_PER_COMMIT }, (_, index) => `src/file-${index}.ts`);
    const commits = [{ id: 'a'.repeat(40), added, modified: [], removed: [] }];

    const push = onlyPush(normalizeWebhook('github', headers('push'), { ...body, commits }));

    expect(push.commitsTruncated).toBe(true);
    expect(push.changedFiles).toHaveLength(GITHUB_MAX_FILES_PER_COMMIT);
  });

  it('marks a push whose commits carry no file lists as truncated', () => {
    const body = update();
    const commits = (body.commits as Json[]).map(({ added, modified, removed, ...rest }) => rest);

    const push = onlyPush(normalizeWebhook('github', headers('push'), { ...body, commits }));

    expect(push).toMatchObject({ changedFiles: [], commitsTruncated: true });
  });

  it('unites, de-duplicates and sorts the files of several commits', () => {
    const body = update();
    const commits = [
      { id: 'a'.repeat(40), added: ['src/b.ts'], modified: ['README.md'], removed: [] },
      { id: 'b'.repeat(40), added: [], modified: ['src/b.ts'], removed: ['src/a.ts'] },
    ];

    const push = onlyPush(normalizeWebhook('github', headers('push'), { ...body, commits }));

    expect(push.changedFiles).toEqual(['README.md', 'src/a.ts', 'src/b.ts']);
  });

  it('accepts unknown fields and null optional fields', () => {
    const body = update();
    const repository = {
      ...(body.repository as Json),
      default_branch: null,
      master_branch: null,
      brand_new: 1,
    };

    const push = onlyPush(
      normalizeWebhook('github', headers('push'), {
        ...body,
        repository,
        head_commit: null,
        pusher: null,
        enterprise: { id: 1 },
      }),
    );

    expect(push.repository).toEqual({
      fullName: 'binkkatal/sample_app',
      cloneUrl: 'https://github.com/binkkatal/sample_app.git',
    });
    expect(push.pusher).toBeUndefined();
    expect(push.headCommitMessage).toBeUndefined();
  });

  it('takes the default branch from master_branch when default_branch is absent', () => {
    const body = update();
    const repository = { ...(body.repository as Json), default_branch: undefined, master_branch: 'trunk' };

    const push = onlyPush(normalizeWebhook('github', headers('push'), { ...body, repository }));

    expect(push.repository.defaultBranch).toBe('trunk');
  });

  it('refuses a ref that is neither a branch nor a tag, naming the ref', () => {
    expect(() =>
      normalizeWebhook('github', headers('push'), { ...update(), ref: 'refs/notes/commits' }),
    ).toThrow(
      new InvalidInputError(
        'GitHub push payload names ref "refs/notes/commits", which is neither a branch nor a tag',
      ),
    );
  });
});

describe('normalizeWebhook(github) on payloads missing what a push needs', () => {
  const update = () => fixture('go-playground-push.json');

  it.each([
    ['ref', (body: Json) => ({ ...body, ref: undefined })],
    ['before', (body: Json) => ({ ...body, before: undefined })],
    ['after', (body: Json) => ({ ...body, after: null })],
    ['repository', (body: Json) => ({ ...body, repository: undefined })],
    [
      'repository.clone_url',
      (body: Json) => ({ ...body, repository: { ...(body.repository as Json), clone_url: undefined } }),
    ],
    [
      'repository.full_name',
      (body: Json) => ({ ...body, repository: { ...(body.repository as Json), full_name: null } }),
    ],
    ['commits[0].id', (body: Json) => ({ ...body, commits: [{ added: ['x'] }] })],
  ])('names %s when it is missing', (field, strip) => {
    expect(() => normalizeWebhook('github', headers('push'), strip(update()))).toThrow(
      new InvalidInputError(`GitHub push payload is missing ${field}`),
    );
  });

  it('names a field of the wrong type without echoing its value', () => {
    const act = () => normalizeWebhook('github', headers('push'), { ...update(), before: 1234567 });

    expect(act).toThrow(InvalidInputError);
    expect(act).toThrow(/^GitHub push payload has an invalid before: /);
    expect(act).not.toThrow(/1234567/);
  });

  it('refuses a body that is not an object', () => {
    expect(() => normalizeWebhook('github', headers('push'), 'push')).toThrow(
      new InvalidInputError('GitHub push payload is not a JSON object'),
    );
  });
});
