import { describe, expect, it } from 'vitest';
import { matchTriggers, type Triggers, TriggersSchema } from '#shared/triggers.ts';
import { aPush, aPushTo } from '../helpers/push.ts';

const triggers = (value: unknown): Triggers => TriggersSchema.parse(value);

describe('matchTriggers with no filters configured', () => {
  const none = triggers({});

  it('starts a run for a push to the default branch the payload names', () => {
    const push = aPushTo('branch', 'trunk', {
      repository: { ...aPush().repository, defaultBranch: 'trunk' },
    });
    expect(matchTriggers(none, push)).toMatchObject({ matches: true });
  });

  it('falls back to main or master when the payload names no default branch', () => {
    const repository = { fullName: 'acme/shop', cloneUrl: 'https://x/acme/shop.git' };
    expect(matchTriggers(none, aPushTo('branch', 'master', { repository })).matches).toBe(true);
    expect(matchTriggers(none, aPushTo('branch', 'main', { repository })).matches).toBe(true);
    expect(matchTriggers(none, aPushTo('branch', 'develop', { repository })).matches).toBe(false);
  });

  it('starts nothing for tags and other branches, saying why', () => {
    expect(matchTriggers(none, aPushTo('tag', 'v1.0.0'))).toEqual({
      matches: false,
      reason: 'no trigger filters are configured and tag v1.0.0 is not the default branch (main)',
    });
    expect(matchTriggers(none, aPushTo('branch', 'feature/x')).matches).toBe(false);
  });

  it('starts nothing for a deleted branch', () => {
    expect(matchTriggers(none, aPush({ deleted: true, after: null }))).toEqual({
      matches: false,
      reason: 'branch main was deleted',
    });
  });
});

describe('matchTriggers with CodePipeline V2 push filters', () => {
  it('matches branch globs, with excludes taking priority over includes', () => {
    const t = triggers({
      push: [{ branches: { includes: ['release/**', 'main'], excludes: ['release/old-*'] } }],
    });
    expect(matchTriggers(t, aPushTo('branch', 'release/2024/q1')).matches).toBe(true);
    expect(matchTriggers(t, aPushTo('branch', 'main')).matches).toBe(true);
    expect(matchTriggers(t, aPushTo('branch', 'release/old-1')).matches).toBe(false);
    expect(matchTriggers(t, aPushTo('branch', 'feature/a')).matches).toBe(false);
  });

  it('includes everything not excluded when only excludes are given', () => {
    const t = triggers({ push: [{ branches: { excludes: ['wip/*'] } }] });
    expect(matchTriggers(t, aPushTo('branch', 'anything')).matches).toBe(true);
    expect(matchTriggers(t, aPushTo('branch', 'wip/a')).matches).toBe(false);
  });

  it('keeps `*` within one path segment and lets `**` cross segments', () => {
    const one = triggers({ push: [{ branches: { includes: ['feature/*'] } }] });
    expect(matchTriggers(one, aPushTo('branch', 'feature/a')).matches).toBe(true);
    expect(matchTriggers(one, aPushTo('branch', 'feature/a/b')).matches).toBe(false);
  });

  it('matches tags only against tag filters', () => {
    const t = triggers({ push: [{ tags: { includes: ['v*'], excludes: ['v*-rc*'] } }] });
    expect(matchTriggers(t, aPushTo('tag', 'v1.2.0')).matches).toBe(true);
    expect(matchTriggers(t, aPushTo('tag', 'v1.2.0-rc1')).matches).toBe(false);
    expect(matchTriggers(t, aPushTo('branch', 'v1')).matches).toBe(false);
  });

  it('starts a run when a filter of several matches', () => {
    const t = triggers({ push: [{ branches: { includes: ['main'] } }, { tags: { includes: ['v*'] } }] });
    expect(matchTriggers(t, aPushTo('tag', 'v2')).matches).toBe(true);
    expect(matchTriggers(t, aPushTo('branch', 'dev'))).toMatchObject({
      matches: false,
      reason: /no push filter/,
    });
  });

  it('narrows a branch filter by the changed files', () => {
    const t = triggers({
      push: [
        { branches: { includes: ['main'] }, filePaths: { includes: ['src/**'], excludes: ['**/*.md'] } },
      ],
    });
    expect(matchTriggers(t, aPush({ changedFiles: ['README.md', 'src/a.ts'] })).matches).toBe(true);
    expect(matchTriggers(t, aPush({ changedFiles: ['src/notes.md', 'docs/a.ts'] }))).toEqual({
      matches: false,
      reason: 'no changed file matches the file path filter',
    });
    expect(matchTriggers(t, aPush({ changedFiles: ['.github/workflows/ci.yml'] })).matches).toBe(false);
  });

  it('never skips a truncated commit list on file paths, and says why', () => {
    const t = triggers({ push: [{ branches: { includes: ['main'] }, filePaths: { includes: ['src/**'] } }] });
    const decision = matchTriggers(t, aPush({ changedFiles: ['docs/a.md'], commitsTruncated: true }));
    expect(decision).toEqual({
      matches: true,
      reason:
        'the provider listed only some of the pushed commits, so the file path filter cannot rule this push out',
    });
  });

  it('accepts only the configured repositories when they are listed', () => {
    const t = triggers({ repositories: ['ACME/shop'] });
    expect(matchTriggers(t, aPush()).matches).toBe(true);
    const other = aPush({ repository: { fullName: 'evil/shop', cloneUrl: 'https://x/evil/shop.git' } });
    expect(matchTriggers(t, other)).toEqual({
      matches: false,
      reason: 'repository evil/shop is not in the configured repositories',
    });
  });
});

describe('TriggersSchema', () => {
  it('refuses a filter naming both branches and tags', () => {
    expect(() => triggers({ push: [{ branches: { includes: ['a'] }, tags: { includes: ['b'] } }] })).toThrow(
      /either branches or tags/,
    );
  });

  it('refuses file paths on a tag filter and empty criteria', () => {
    expect(() =>
      triggers({ push: [{ tags: { includes: ['v*'] }, filePaths: { includes: ['a'] } }] }),
    ).toThrow(/filePaths narrow a branches filter only/);
    expect(() => triggers({ push: [{ branches: {} }] })).toThrow(/includes, excludes or both/);
  });

  it('allows at most three push filters and eight patterns, as CodePipeline does', () => {
    const f = { branches: { includes: ['a'] } };
    expect(() => triggers({ push: [f, f, f, f] })).toThrow();
    expect(() => triggers({ push: [{ branches: { includes: Array(9).fill('a') } }] })).toThrow();
  });
});
