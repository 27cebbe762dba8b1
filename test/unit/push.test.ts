import { describe, expect, it } from 'vitest';
import { parseRef } from '#shared/push.ts';

describe('parseRef', () => {
  it('splits a branch ref into its type and name, keeping slashes in the name', () => {
    expect(parseRef('refs/heads/feature/login')).toEqual({ refType: 'branch', refName: 'feature/login' });
  });

  it('splits a tag ref', () => {
    expect(parseRef('refs/tags/v1.2.3')).toEqual({ refType: 'tag', refName: 'v1.2.3' });
  });

  it('returns undefined for refs that are neither a branch nor a tag', () => {
    expect(parseRef('refs/pull/1/head')).toBeUndefined();
    expect(parseRef('refs/heads/')).toBeUndefined();
    expect(parseRef('main')).toBeUndefined();
  });
});
