import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CheckoutError, checkOutCommit, removeCheckout } from '#local/codebuild/checkout.ts';

const execFileAsync = promisify(execFile);

describe('checkOutCommit', () => {
  let scratch: string;
  let remote: string;
  let author: string;

  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'stepline-checkout-'));
    const globalConfig = join(scratch, 'gitconfig');
    await writeFile(globalConfig, '[user]\n\tname = Pat\n\temail = pat@example.com\n');
    vi.stubEnv('GIT_CONFIG_GLOBAL', globalConfig);
    vi.stubEnv('GIT_CONFIG_NOSYSTEM', '1');
    author = join(scratch, 'author');
    remote = join(scratch, 'remote.git');
    await gitIn(scratch, ['init', '--quiet', '--bare', remote]);
    await gitIn(scratch, ['init', '--quiet', author]);
    await gitIn(author, ['remote', 'add', 'origin', remote]);
  });

  afterEach(async () => {
    vi.unstubAllEnvs();
    await rm(scratch, { recursive: true, force: true });
  });

  async function gitIn(cwd: string, args: string[]): Promise<string> {
    const { stdout } = await execFileAsync('git', args, { cwd });
    return stdout.trim();
  }

  /** Commits `files` on the author's main, pushes it to the remote and returns the commit. */
  async function push(message: string, files: Record<string, string>): Promise<string> {
    for (const [name, content] of Object.entries(files)) await writeFile(join(author, name), content);
    await gitIn(author, ['add', '--all', '.']);
    await gitIn(author, ['commit', '--quiet', '-m', message]);
    await gitIn(author, ['push', '--quiet', 'origin', 'HEAD:refs/heads/main']);
    return gitIn(author, ['rev-parse', 'HEAD']);
  }

  async function snapshotOf(repository: string): Promise<string> {
    const refs = await gitIn(repository, ['for-each-ref']);
    const objects = await gitIn(repository, ['count-objects', '-v']);
    const entries = (await readdir(repository)).sort().join(',');
    return `${refs}\n${objects}\n${entries}`;
  }

  it('checks out the exact commit asked for, with HEAD detached at it and a clean tree', async () => {
    const first = await push('First', { 'a.txt': 'one\n' });
    await push('Second', { 'a.txt': 'two\n', 'b.txt': 'b\n' });
    const dir = join(scratch, 'build');

    const { commit } = await checkOutCommit({ location: remote, version: first, dir });

    expect(commit).toBe(first);
    expect(await readFile(join(dir, 'a.txt'), 'utf8')).toBe('one\n');
    await expect(stat(join(dir, 'b.txt'))).rejects.toThrow();
    expect(await gitIn(dir, ['rev-parse', 'HEAD'])).toBe(first);
    expect(await gitIn(dir, ['status', '--porcelain'])).toBe('');
    expect(await gitIn(dir, ['symbolic-ref', '--quiet', 'HEAD']).catch(() => 'detached')).toBe('detached');
    expect(await gitIn(dir, ['log', '--format=%s'])).toBe('First');
    expect(await gitIn(dir, ['remote', 'get-url', 'origin'])).toBe(remote);
  });

  it('resolves a branch, and an annotated tag to the commit it names', async () => {
    const first = await push('First', { 'a.txt': 'one\n' });
    await gitIn(author, ['tag', '-a', 'v1', '-m', 'Release 1']);
    await gitIn(author, ['push', '--quiet', 'origin', 'v1']);
    const second = await push('Second', { 'a.txt': 'two\n' });
    const tagObject = await gitIn(remote, ['rev-parse', 'v1']);

    const branch = await checkOutCommit({ location: remote, version: 'main', dir: join(scratch, 'b1') });
    const tag = await checkOutCommit({ location: remote, version: 'v1', dir: join(scratch, 'b2') });
    const byTagId = await checkOutCommit({ location: remote, version: tagObject, dir: join(scratch, 'b3') });

    expect(branch.commit).toBe(second);
    expect(tag.commit).toBe(first);
    expect(byTagId.commit).toBe(first);
    expect(await gitIn(join(scratch, 'b3'), ['rev-parse', 'HEAD'])).toBe(first);
    expect(await readFile(join(scratch, 'b3', 'a.txt'), 'utf8')).toBe('one\n');
  });

  it('fails with CheckoutError naming the version and the repository when there is no such commit', async () => {
    const first = await push('First', { 'a.txt': 'one\n' });
    const tree = await gitIn(remote, ['rev-parse', `${first}^{tree}`]);
    const missing = 'f'.repeat(40);

    for (const version of ['no-such-branch', missing, tree, '--output=/tmp/x']) {
      const checking = checkOutCommit({
        location: remote,
        version,
        dir: join(scratch, `bad-${version.length}`),
      });
      await expect(checking).rejects.toThrow(CheckoutError);
      await expect(checking).rejects.toThrow(`could not check out ${version} from ${remote}`);
    }
  });

  it('gives 10 concurrent builds of one repository each its own tree, and their writes stay their own', async () => {
    const commits: string[] = [];
    for (let index = 0; index < 10; index++)
      commits.push(await push(`Commit ${index}`, { 'n.txt': `${index}\n` }));
    const before = await snapshotOf(remote);
    const dirs = commits.map((_, index) => join(scratch, `concurrent-${index}`));

    const results = await Promise.all(
      commits.map((version, index) => checkOutCommit({ location: remote, version, dir: dirs[index] ?? '' })),
    );
    await Promise.all(
      dirs.map(async (dir, index) => {
        await writeFile(join(dir, 'n.txt'), `changed by build ${index}\n`);
        await gitIn(dir, ['commit', '--quiet', '--all', '-m', `build ${index}`]);
        await gitIn(dir, ['tag', 'built']);
      }),
    );

    expect(results.map((result) => result.commit)).toEqual(commits);
    for (const [index, dir] of dirs.entries()) {
      expect(await readFile(join(dir, 'n.txt'), 'utf8')).toBe(`changed by build ${index}\n`);
      expect(await gitIn(dir, ['rev-parse', 'HEAD~1'])).toBe(commits[index]);
      expect(await gitIn(dir, ['log', '-1', '--format=%s', 'built'])).toBe(`build ${index}`);
    }
    expect(await snapshotOf(remote)).toBe(before);
  });

  it('leaves nothing behind once removed, in the folder or in the source repository', async () => {
    const commit = await push('First', { 'a.txt': 'one\n' });
    const before = await snapshotOf(remote);
    const dir = join(scratch, 'build');

    await checkOutCommit({ location: remote, version: commit, dir });
    await removeCheckout(dir);

    await expect(stat(dir)).rejects.toThrow();
    expect(await snapshotOf(remote)).toBe(before);
  });

  it('clones a repository named by URL', async () => {
    const commit = await push('First', { 'a.txt': 'one\n' });
    const dir = join(scratch, 'build');

    const result = await checkOutCommit({ location: pathToFileURL(remote).href, version: commit, dir });

    expect(result.commit).toBe(commit);
    expect(await readFile(join(dir, 'a.txt'), 'utf8')).toBe('one\n');
  });

  it('checks out from a working clone as well as from a bare repository', async () => {
    const commit = await push('First', { 'a.txt': 'one\n' });
    const dir = join(scratch, 'build');

    const result = await checkOutCommit({ location: author, version: 'HEAD', dir });

    expect(result.commit).toBe(commit);
    expect(await readFile(join(dir, 'a.txt'), 'utf8')).toBe('one\n');
  });
});
