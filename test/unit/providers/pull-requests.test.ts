import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pullRequestExecutionName } from '#shared/execution-name.ts';
import { normalizeWebhook, type WebhookOutcome } from '#shared/providers/index.ts';
import { type PullRequest, PullRequestSchema } from '#shared/pull-request.ts';
import { PushSchema } from '#shared/push.ts';
import { matchPullRequestTriggers, TriggersSchema } from '#shared/triggers.ts';

// biome-ignore lint/suspicious/noExplicitAny: the tests edit real payloads field by field, as the providers send them
type Json = Record<string, any>;

function fixture(provider: 'github' | 'gitlab' | 'bitbucket', name: string): Json {
  return JSON.parse(readFileSync(new URL(`../../fixtures/${provider}/${name}`, import.meta.url), 'utf8'));
}

function pullRequestOf(outcome: WebhookOutcome) {
  if (outcome.kind !== 'pull-request')
    throw new Error(`expected a pull request, got ${JSON.stringify(outcome)}`);
  expect(PullRequestSchema.parse(outcome.pullRequest)).toEqual(outcome.pullRequest);
  expect(PushSchema.parse(outcome.head)).toEqual(outcome.head);
  return outcome;
}

const github = (action: string, body: Json) =>
  normalizeWebhook(
    'github',
    { 'X-GitHub-Event': 'pull_request', 'X-GitHub-Delivery': 'd-1' },
    { ...body, action },
  );
const gitlab = (body: Json) => normalizeWebhook('gitlab', { 'X-Gitlab-Event': 'Merge Request Hook' }, body);
const bitbucket = (event: string, body: Json) =>
  normalizeWebhook('bitbucket', { 'X-Event-Key': event }, body);

describe('GitHub pull_request deliveries', () => {
  it('turns an opened request into a run of its head commit, from its head repository', () => {
    const { pullRequest, head, deliveryId } = pullRequestOf(
      normalizeWebhook(
        'github',
        { 'x-github-event': 'pull_request', 'x-github-delivery': 'd-1' },
        fixture('github', 'octokit-pull_request.opened.json'),
      ),
    );

    expect(pullRequest).toEqual({
      provider: 'github',
      number: 2,
      title: 'Update the README with new information.',
      url: 'https://github.com/Codertocat/Hello-World/pull/2',
      event: 'OPEN',
      action: 'opened',
      draft: false,
      fork: false,
      author: 'Codertocat',
      head: 'ec26c3e57ca3a959ca5aad62de7213c562f8c821',
      target: { repository: 'Codertocat/Hello-World', branch: 'master', defaultBranch: 'master' },
      source: { repository: 'Codertocat/Hello-World', branch: 'changes' },
    });
    expect(head).toMatchObject({
      repository: {
        fullName: 'Codertocat/Hello-World',
        cloneUrl: 'https://github.com/Codertocat/Hello-World.git',
      },
      ref: 'refs/heads/changes',
      after: 'ec26c3e57ca3a959ca5aad62de7213c562f8c821',
      commitsTruncated: true,
    });
    expect(deliveryId).toBe('d-1');
  });

  it.each([
    ['octokit-pull_request.synchronize.json', 'UPDATED', 'synchronize'],
    ['zulip-pull_request__reopened.json', 'OPEN', 'reopened'],
    ['zulip-pull_request__ready_for_review.json', 'OPEN', 'ready_for_review'],
    ['go-playground-pull-request.json', 'OPEN', 'opened'],
    ['zulip-pull_request__opened.json', 'OPEN', 'opened'],
  ])('reads %s as %s', (name, event, action) => {
    const body = fixture('github', name);
    const { pullRequest } = pullRequestOf(github(body.action, body));

    expect(pullRequest).toMatchObject({ event, action, draft: false, head: body.pull_request.head.sha });
  });

  it.each([
    ['zulip-pull_request__closed.json', 'pull request #1 was closed'],
    ['octokit-pull_request.closed.json', 'pull request #2 was closed'],
  ])('starts nothing for a closed request (%s)', (name, reason) => {
    const body = fixture('github', name);
    expect(github(body.action, body)).toEqual({ kind: 'ignored', reason });
  });

  it.each(['octokit-pull_request.converted_to_draft.json', 'zulip-pull_request__converted_to_draft.json'])(
    'starts nothing for a request converted to a draft (%s)',
    (name) => {
      const body = fixture('github', name);
      expect(github(body.action, body)).toMatchObject({
        kind: 'ignored',
        reason: expect.stringContaining('"converted_to_draft" starts no run'),
      });
    },
  );

  it('marks a draft and a request from a fork', () => {
    const body = fixture('github', 'octokit-pull_request.opened.json');
    body.pull_request.draft = true;
    body.pull_request.head.repo = {
      ...body.pull_request.head.repo,
      full_name: 'octocat/Hello-World',
      html_url: 'https://github.com/octocat/Hello-World',
      clone_url: 'https://github.com/octocat/Hello-World.git',
    };

    const { pullRequest, head } = pullRequestOf(github('opened', body));

    expect(pullRequest).toMatchObject({
      draft: true,
      fork: true,
      source: { repository: 'octocat/Hello-World' },
    });
    expect(head.repository.cloneUrl).toBe('https://github.com/octocat/Hello-World.git');
  });

  it('refuses a head clone URL of another repository, naming the fields', () => {
    const body = fixture('github', 'octokit-pull_request.opened.json');
    body.pull_request.head.repo.clone_url = 'https://evil.example/x.git';

    expect(() => github('opened', body)).toThrow(/pull_request\.head\.repo\.clone_url .* does not belong/);
  });

  it('refuses a head that is not a full commit id', () => {
    const body = fixture('github', 'octokit-pull_request.opened.json');
    body.pull_request.head.sha = 'changes';

    expect(() => github('opened', body)).toThrow(/invalid pull_request\.head\.sha/);
  });
});

describe('GitLab merge request hooks', () => {
  it('turns an opened request into a run of its last commit, from its source project', () => {
    const { pullRequest, head } = pullRequestOf(
      gitlab(fixture('gitlab', 'gitlab-docs-merge-request-hook.json')),
    );

    expect(pullRequest).toMatchObject({
      provider: 'gitlab',
      number: 1,
      event: 'OPEN',
      action: 'open',
      draft: false,
      fork: false,
      head: 'da1560886d4f094c3e6c9ef40349f7d38b5d27d7',
      target: { repository: 'awesome_space/awesome_project', branch: 'master' },
      source: { repository: 'awesome_space/awesome_project', branch: 'ms-viewport' },
    });
    expect(head.repository.cloneUrl).toBe('http://example.com/awesome_space/awesome_project.git');
  });

  it.each([
    ['go-playground-merge-request-event.json', 'OPEN'],
    ['zulip-merge_request_reopened.json', 'OPEN'],
  ])('reads %s as %s', (name, event) => {
    expect(pullRequestOf(gitlab(fixture('gitlab', name))).pullRequest.event).toBe(event);
  });

  it('reads an update with new commits as UPDATED, and a draft as a draft', () => {
    const body = fixture('gitlab', 'gitlab-docs-merge-request-hook.json');
    body.object_attributes.action = 'update';
    body.object_attributes.oldrev = '0000000000000000000000000000000000000001';
    body.object_attributes.draft = true;

    expect(pullRequestOf(gitlab(body)).pullRequest).toMatchObject({ event: 'UPDATED', draft: true });
  });

  it('marks a request from a fork by its source project', () => {
    const body = fixture('gitlab', 'gitlab-docs-merge-request-hook.json');
    body.object_attributes.source_project_id = 99;
    body.object_attributes.source.path_with_namespace = 'someone/awesome_project';
    body.object_attributes.source.web_url = 'http://example.com/someone/awesome_project';
    body.object_attributes.source.git_http_url = 'http://example.com/someone/awesome_project.git';

    const { pullRequest, head } = pullRequestOf(gitlab(body));
    expect(pullRequest).toMatchObject({ fork: true, source: { repository: 'someone/awesome_project' } });
    expect(head.repository.cloneUrl).toBe('http://example.com/someone/awesome_project.git');
  });

  it.each([
    ['zulip-merge_request_closed.json', 'merge request !2 was closed'],
    ['zulip-merge_request_merged.json', 'merge request !3 was merged'],
  ])('starts nothing for %s', (name, reason) => {
    expect(gitlab(fixture('gitlab', name))).toEqual({ kind: 'ignored', reason });
  });

  it('starts nothing for a system hook without an action', () => {
    expect(gitlab(fixture('gitlab', 'go-playground-system-merge-request-event.json'))).toMatchObject({
      kind: 'ignored',
      reason: expect.stringContaining('starts no run'),
    });
  });
});

describe('Bitbucket Cloud pull request deliveries', () => {
  it.each([
    ['pullrequest:created', 'OPEN'],
    ['pullrequest:updated', 'UPDATED'],
  ])('turns %s into a run of its source commit', (event, kind) => {
    const { pullRequest, head } = pullRequestOf(
      bitbucket(event, fixture('bitbucket', 'go-playground-pull-request-created.json')),
    );

    expect(pullRequest).toMatchObject({
      provider: 'bitbucket',
      number: 1,
      event: kind,
      fork: false,
      draft: false,
      head: 'd3022fc0ca3d',
      target: { repository: 'team_name/repo_name', branch: 'master' },
      source: { repository: 'team_name/repo_name', branch: 'branch2' },
    });
    expect(head.repository.cloneUrl).toBe('https://api.bitbucket.org/team_name/repo_name.git');
  });

  it.each([
    ['pullrequest:rejected', 'pull request #1 was declined'],
    ['pullrequest:fulfilled', 'pull request #1 was merged'],
  ])('starts nothing for %s', (event, reason) => {
    expect(
      bitbucket(event, fixture('bitbucket', 'zulip-bitbucket2-pull_request_merged_or_rejected.json')),
    ).toEqual({
      kind: 'ignored',
      reason,
    });
  });

  it('marks a draft and a request from a fork', () => {
    const body = fixture('bitbucket', 'go-playground-pull-request-created.json');
    body.pullrequest.draft = true;
    body.pullrequest.source.repository.full_name = 'someone/repo_name';

    const { pullRequest, head } = pullRequestOf(bitbucket('pullrequest:created', body));
    expect(pullRequest).toMatchObject({ draft: true, fork: true });
    expect(head.repository.cloneUrl).toBe('https://api.bitbucket.org/someone/repo_name.git');
  });
});

function aPullRequest(overrides: Partial<PullRequest> = {}): PullRequest {
  return {
    provider: 'github',
    number: 7,
    title: 'Change',
    event: 'OPEN',
    action: 'opened',
    draft: false,
    fork: false,
    head: 'ec26c3e57ca3a959ca5aad62de7213c562f8c821',
    target: { repository: 'acme/shop', branch: 'main', defaultBranch: 'main' },
    source: { repository: 'acme/shop', branch: 'feature/x' },
    ...overrides,
  };
}

describe('pull request triggers', () => {
  const none = TriggersSchema.parse({});

  it('with no filters, runs requests into the default branch, not drafts, forks or other targets', () => {
    expect(matchPullRequestTriggers(none, aPullRequest()).matches).toBe(true);
    expect(matchPullRequestTriggers(none, aPullRequest({ draft: true }))).toMatchObject({
      matches: false,
      reason: expect.stringContaining('is a draft'),
    });
    expect(matchPullRequestTriggers(none, aPullRequest({ fork: true }))).toMatchObject({
      matches: false,
      reason: expect.stringContaining('fork'),
    });
    expect(
      matchPullRequestTriggers(
        none,
        aPullRequest({ target: { repository: 'acme/shop', branch: 'develop' } }),
      ),
    ).toMatchObject({
      matches: false,
      reason: expect.stringContaining('not the default branch (main or master)'),
    });
  });

  it('filters on target branches, source branches and events, as CodePipeline V2', () => {
    const triggers = TriggersSchema.parse({
      pullRequest: [
        {
          events: ['OPEN'],
          branches: { includes: ['release/**'] },
          sourceBranches: { excludes: ['wip/**'] },
        },
      ],
    });
    const release = { repository: 'acme/shop', branch: 'release/1.2' };

    expect(matchPullRequestTriggers(triggers, aPullRequest({ target: release })).matches).toBe(true);
    expect(
      matchPullRequestTriggers(triggers, aPullRequest({ target: release, event: 'UPDATED' })).matches,
    ).toBe(false);
    expect(
      matchPullRequestTriggers(
        triggers,
        aPullRequest({ target: release, source: { repository: 'acme/shop', branch: 'wip/a' } }),
      ).reason,
    ).toContain('matches no source branch filter');
    expect(matchPullRequestTriggers(triggers, aPullRequest()).reason).toContain(
      'targets main, which matches no branch filter',
    );
  });

  it('runs drafts and forks only where a filter says so, and never a closed request', () => {
    const triggers = TriggersSchema.parse({ pullRequest: [{ drafts: true, forks: true }] });

    expect(matchPullRequestTriggers(triggers, aPullRequest({ draft: true, fork: true })).matches).toBe(true);
    expect(matchPullRequestTriggers(triggers, aPullRequest({ event: 'CLOSED' })).matches).toBe(false);
  });

  it('never rules a request out by its files, which no payload lists', () => {
    const triggers = TriggersSchema.parse({ pullRequest: [{ filePaths: { includes: ['src/**'] } }] });

    expect(matchPullRequestTriggers(triggers, aPullRequest())).toMatchObject({
      matches: true,
      reason: expect.stringContaining('cannot rule it out'),
    });
  });
});

describe('pull request execution names', () => {
  it('is the same for every delivery of a head, and shares a prefix with the other heads of the request', () => {
    const first = pullRequestExecutionName(aPullRequest());
    const again = pullRequestExecutionName(aPullRequest({ action: 'synchronize', title: 'Renamed' }));
    const next = pullRequestExecutionName(aPullRequest({ head: '1111111111111111111111111111111111111111' }));
    const other = pullRequestExecutionName(aPullRequest({ number: 8 }));

    expect(again).toEqual(first);
    expect(next.prefix).toBe(first.prefix);
    expect(next.name).not.toBe(first.name);
    expect(other.name.startsWith(first.prefix)).toBe(false);
    expect(first.name).toMatch(/^shop-pr7-[0-9a-f]{8}-ec26c3e-[0-9a-f]{12}$/);
  });

  it('stays within 80 characters of Step Functions names for any repository name', () => {
    const { name } = pullRequestExecutionName(
      aPullRequest({ number: 123456, target: { repository: `acme/${'x'.repeat(300)}`, branch: 'main' } }),
    );
    expect(name.length).toBeLessThanOrEqual(80);
    expect(name).toMatch(/^[a-z0-9-]+$/);
  });
});
