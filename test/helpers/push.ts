import type { Push } from '#shared/push.ts';

/** A normalized push to a branch, with fields overridable per test. */
export function aPush(overrides: Partial<Push> = {}): Push {
  return {
    provider: 'github',
    repository: {
      fullName: 'acme/shop',
      cloneUrl: 'https://github.com/acme/shop.git',
      defaultBranch: 'main',
    },
    ref: 'refs/heads/main',
    refType: 'branch',
    refName: 'main',
    before: '1111111111111111111111111111111111111111',
    after: '2222222222222222222222222222222222222222',
    created: false,
    deleted: false,
    forced: false,
    pusher: 'octocat',
    headCommitMessage: 'Fix the checkout',
    changedFiles: ['src/cart.ts'],
    commitsTruncated: false,
    ...overrides,
  };
}

/** A push of `refName` as a branch or tag. */
export function aPushTo(refType: 'branch' | 'tag', refName: string, overrides: Partial<Push> = {}): Push {
  const ref = `refs/${refType === 'branch' ? 'heads' : 'tags'}/${refName}`;
  return aPush({ ref, refType, refName, ...overrides });
}
