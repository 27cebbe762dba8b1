import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '#shared/errors.ts';
import { normalizeWebhook, type WebhookOutcome } from '#shared/providers/index.ts';
import type { Push } from '#shared/push.ts';

type Json = Record<string, unknown>;

function fixture(provider: string, name: string): Json {
  return JSON.parse(
    readFileSync(new URL(`../../fixtures/${provider}/${name}`, import.meta.url), 'utf8'),
  ) as Json;
}

function pushes(outcome: WebhookOutcome): Push[] {
  if (outcome.kind !== 'pushes') throw new Error(`expected pushes, got ${JSON.stringify(outcome)}`);
  return outcome.pushes;
}

const github = { 'x-github-event': 'push' };
const gitlab = { 'x-gitlab-event': 'Push Hook' };
const cloud = { 'x-event-key': 'repo:push' };
const dataCenter = { 'x-event-key': 'repo:refs_changed' };

const SHA1 = `${'a'.repeat(39)}b`;
const SHA256 = '0123456789abcdef'.repeat(4);

function withRepository(body: Json, key: string, fields: Json): Json {
  return { ...body, [key]: { ...(body[key] as Json), ...fields } };
}

function cloudChange(body: Json, hash: string): Json {
  const push = body.push as { changes: Json[] };
  const change = push.changes[0] as { new: { target: Json } };
  return {
    ...body,
    push: { changes: [{ ...change, new: { ...change.new, target: { ...change.new.target, hash } } }] },
  };
}

describe('the pushed commit must be a full commit id', () => {
  it.each([['main'], ['da15608'], [`${SHA1}0`], ['g'.repeat(40)]])(
    'refuses a GitHub push whose after is %j, naming the field',
    (after) => {
      const body = { ...fixture('github', 'go-playground-push.json'), after };
      expect(() => normalizeWebhook('github', github, body)).toThrow(
        new InvalidInputError(
          'GitHub push payload has an invalid after: expected a full commit id (40 or 64 hex digits)',
        ),
      );
    },
  );

  it('accepts a SHA-1 and a SHA-256 commit id', () => {
    for (const after of [SHA1, SHA256]) {
      const body = { ...fixture('github', 'go-playground-push.json'), after };
      expect(pushes(normalizeWebhook('github', github, body))[0]?.after).toBe(after);
    }
  });

  it('still reads an all-zero after as a deletion (40 or 64 zeros)', () => {
    for (const after of ['0'.repeat(40), '0'.repeat(64)]) {
      const body = { ...fixture('github', 'go-playground-push.json'), after, deleted: true };
      const [push] = pushes(normalizeWebhook('github', github, body));
      expect(push).toMatchObject({ after: null, deleted: true });
    }
  });

  it('refuses a GitLab push whose after or checkout_sha is not a commit id', () => {
    const body = fixture('gitlab', 'gitlab-docs-push-hook.json');
    expect(() => normalizeWebhook('gitlab', gitlab, { ...body, after: 'main' })).toThrow(
      new InvalidInputError(
        'GitLab push payload has an invalid after: expected a full commit id (40 or 64 hex digits)',
      ),
    );
    expect(() => normalizeWebhook('gitlab', gitlab, { ...body, checkout_sha: 'HEAD' })).toThrow(
      new InvalidInputError(
        'GitLab push payload has an invalid checkout_sha: expected a full commit id (40 or 64 hex digits)',
      ),
    );
  });

  it('refuses a Bitbucket Cloud change whose new hash is abbreviated', () => {
    const body = cloudChange(fixture('bitbucket', 'jenkins-cloud-push-updatePayload.json'), 'e43fdff');
    expect(() => normalizeWebhook('bitbucket', cloud, body)).toThrow(
      new InvalidInputError(
        'Bitbucket Cloud push payload has an invalid push.changes[0].new.target.hash: expected a full commit id (40 or 64 hex digits)',
      ),
    );
  });

  it('refuses a Bitbucket Data Center change whose toHash is a branch name', () => {
    const body = fixture('bitbucket', 'jenkins-server-pushPayload.json');
    const [change] = body.changes as Json[];
    expect(() =>
      normalizeWebhook('bitbucket', dataCenter, { ...body, changes: [{ ...change, toHash: 'master' }] }),
    ).toThrow(
      new InvalidInputError(
        'Bitbucket Data Center push payload has an invalid changes[0].toHash: expected a full commit id (40 or 64 hex digits)',
      ),
    );
  });
});

describe('the clone URL must belong to the repository the payload names', () => {
  it('refuses a GitHub clone_url of another repository, naming both fields', () => {
    const body = withRepository(fixture('github', 'go-playground-push.json'), 'repository', {
      clone_url: 'https://github.com/mallory/sample_app.git',
    });
    expect(() => normalizeWebhook('github', github, body)).toThrow(
      new InvalidInputError(
        'GitHub push payload: repository.clone_url https://github.com/mallory/sample_app.git does not belong to ' +
          'repository.full_name binkkatal/sample_app (repository.html_url https://github.com/binkkatal/sample_app): ' +
          'the clone URL must be https://github.com/binkkatal/sample_app.git',
      ),
    );
  });

  it.each([
    ['another host', 'https://github.example/binkkatal/sample_app.git'],
    ['credentials', 'https://user:pw@github.com/binkkatal/sample_app.git'],
    ['a query', 'https://github.com/binkkatal/sample_app.git?ref=x'],
    ['a longer path', 'https://github.com/binkkatal/sample_app/extra.git'],
  ])('refuses a GitHub clone_url with %s', (_what, clone_url) => {
    const body = withRepository(fixture('github', 'go-playground-push.json'), 'repository', { clone_url });
    expect(() => normalizeWebhook('github', github, body)).toThrow(
      /does not belong to repository\.full_name/,
    );
  });

  it('refuses an ssh clone_url and an http clone_url without html_url', () => {
    const base = fixture('github', 'go-playground-push.json');
    expect(() =>
      normalizeWebhook(
        'github',
        github,
        withRepository(base, 'repository', { clone_url: 'git@github.com:binkkatal/sample_app.git' }),
      ),
    ).toThrow(
      new InvalidInputError(
        'GitHub push payload has an invalid repository.clone_url: expected an http(s) URL',
      ),
    );
    expect(() =>
      normalizeWebhook('github', github, withRepository(base, 'repository', { html_url: undefined })),
    ).toThrow(new InvalidInputError('GitHub push payload is missing repository.html_url'));
  });

  it('accepts an absolute local path (the local git hook posts one); the handler decides if it can be built', () => {
    const body = withRepository(fixture('github', 'go-playground-push.json'), 'repository', {
      clone_url: '/home/me/.stepline/git/shop.git',
      html_url: undefined,
    });
    expect(pushes(normalizeWebhook('github', github, body))[0]?.repository.cloneUrl).toBe(
      '/home/me/.stepline/git/shop.git',
    );
  });

  it('accepts a GitLab instance served under a base path', () => {
    const body = withRepository(fixture('gitlab', 'gitlab-docs-push-hook.json'), 'project', {
      web_url: 'https://git.acme.dev/gitlab/mike/diaspora',
      git_http_url: 'https://git.acme.dev/gitlab/mike/diaspora.git',
    });
    expect(pushes(normalizeWebhook('gitlab', gitlab, body))[0]?.repository.cloneUrl).toBe(
      'https://git.acme.dev/gitlab/mike/diaspora.git',
    );
  });

  it('refuses a GitLab git_http_url of another project, naming both fields', () => {
    const body = withRepository(fixture('gitlab', 'gitlab-docs-push-hook.json'), 'project', {
      git_http_url: 'http://example.com/mallory/diaspora.git',
    });
    expect(() => normalizeWebhook('gitlab', gitlab, body)).toThrow(
      /project\.git_http_url http:\/\/example\.com\/mallory\/diaspora\.git does not belong to project\.path_with_namespace mike\/diaspora \(project\.web_url http:\/\/example\.com\/mike\/diaspora\)/,
    );
  });

  it('derives the Bitbucket Cloud clone URL from the full name, whatever links.html says', () => {
    const body = fixture('bitbucket', 'jenkins-cloud-push-updatePayload.json');
    const repository = body.repository as { links: { html: Json } };
    repository.links.html = { href: 'https://bitbucket.org/mallory/other' };
    expect(pushes(normalizeWebhook('bitbucket', cloud, body))[0]?.repository).toMatchObject({
      fullName: 'cloudbeers/temp',
      cloneUrl: 'https://bitbucket.org/cloudbeers/temp.git',
    });
  });

  it('refuses a Bitbucket Data Center clone link of another repository, naming both', () => {
    const body = fixture('bitbucket', 'jenkins-server-pushPayload.json');
    const repository = body.repository as { links: { clone: Json[] } };
    repository.links.clone = [{ name: 'http', href: 'http://localhost:7990/scm/evil/other.git' }];
    expect(() => normalizeWebhook('bitbucket', dataCenter, body)).toThrow(
      /repository\.links\.clone\[name=http\] http:\/\/localhost:7990\/scm\/evil\/other\.git does not belong to repository AMUNIZ\/test-repos/,
    );
  });

  it('refuses a Bitbucket Data Center clone link on another host than the repository page', () => {
    const body = fixture('bitbucket', 'jenkins-server-pushPayload.json');
    const repository = body.repository as { links: { clone: Json[] } };
    repository.links.clone = [{ name: 'http', href: 'http://evil.example:7990/scm/amuniz/test-repos.git' }];
    expect(() => normalizeWebhook('bitbucket', dataCenter, body)).toThrow(/does not belong to repository/);
  });

  it.each([
    ['github', 'go-playground-push.json', github],
    ['github', 'octokit-push.0.json', github],
    ['gitlab', 'gitlab-docs-push-hook.json', gitlab],
    ['gitlab', 'go-playground-push-event.json', gitlab],
    ['gitlab', 'go-playground-system-push-event.json', { 'x-gitlab-event': 'System Hook' }],
    ['bitbucket', 'jenkins-server-pushPayload.json', dataCenter],
    ['bitbucket', 'jenkins-server-signed_payload.json', dataCenter],
    ['bitbucket', 'go-playground-server-repo-refs-changed.json', dataCenter],
  ])('accepts the real %s payload %s', (provider, name, headers) => {
    const outcome = normalizeWebhook(provider as 'github', headers, fixture(provider, name));
    expect(pushes(outcome).length).toBeGreaterThan(0);
  });
});
