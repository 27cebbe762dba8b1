import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fullNameOfRemote, inspectRepository } from '#local/git/repositories.ts';
import { git, LocalTestScope } from '../helpers/local-process.ts';

describe('the name a --repo repository runs under', () => {
  it.each([
    ['https://github.com/acme/shop.git', 'acme/shop'],
    ['https://gitlab.com/group/sub/app', 'group/sub/app'],
    ['git@github.com:acme/shop.git', 'acme/shop'],
    ['ssh://git@bitbucket.org/acme/shop.git', 'acme/shop'],
    ['/srv/git/shop.git', undefined],
    ['../shop', undefined],
    ['https://github.com/shop', undefined],
    ['', undefined],
  ])('reads %s as %s', (url, fullName) => {
    expect(fullNameOfRemote(url)).toBe(fullName);
  });

  it("takes its origin's owner/name and its current branch, else local/<folder> and main", async ({
    onTestFinished,
  }) => {
    const scope = await LocalTestScope.create('stepline-repositories-', onTestFinished);
    const plain = join(scope.root, 'my app');
    await mkdir(plain);
    await git(['init', '--quiet', plain]);
    await git(['symbolic-ref', 'HEAD', 'refs/heads/main'], plain);
    expect(await inspectRepository(join(plain, '.'))).toEqual({
      path: plain,
      name: 'my-app',
      fullName: 'local/my-app',
      branch: 'main',
    });

    await git(['remote', 'add', 'origin', 'git@github.com:acme/shop.git'], plain);
    await git(['symbolic-ref', 'HEAD', 'refs/heads/trunk'], plain);
    await mkdir(join(plain, 'sub'));
    expect(await inspectRepository(join(plain, 'sub'))).toMatchObject({
      path: plain,
      fullName: 'acme/shop',
      branch: 'trunk',
    });
  });
});
