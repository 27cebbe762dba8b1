import { describe, expect, it } from 'vitest';
import { sourceTypeOf } from '#shared/pipeline.ts';

describe('sourceTypeOf', () => {
  const push = (provider: 'github' | 'gitlab' | 'bitbucket' | 'codecommit', cloneUrl: string) => ({
    provider,
    repository: { cloneUrl },
  });

  it('builds a GitLab.com push from the GITLAB source type', () => {
    expect(sourceTypeOf(push('gitlab', 'https://gitlab.com/acme/shop.git'))).toBe('GITLAB');
  });

  it('builds a push from any other GitLab host as GITLAB_SELF_MANAGED', () => {
    expect(sourceTypeOf(push('gitlab', 'https://git.acme.dev/acme/shop.git'))).toBe('GITLAB_SELF_MANAGED');
    expect(sourceTypeOf(push('gitlab', 'https://gitlab.com.evil.example/acme/shop.git'))).toBe(
      'GITLAB_SELF_MANAGED',
    );
  });

  it('keeps the other providers on their own source types', () => {
    expect(sourceTypeOf(push('github', 'https://github.com/acme/shop.git'))).toBe('GITHUB');
    expect(sourceTypeOf(push('bitbucket', 'https://bitbucket.org/acme/shop.git'))).toBe('BITBUCKET');
    expect(
      sourceTypeOf(push('codecommit', 'https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/shop')),
    ).toBe('CODECOMMIT');
  });
});
