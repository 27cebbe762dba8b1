import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CONTROL_COOKIE,
  consoleUrlWithToken,
  controlCookie,
  createControlToken,
  presentedToken,
  readControlToken,
  tokenMatches,
} from '#local/http/control-token.ts';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('the control token', () => {
  it('is made anew at each start, 0600, and read back as the CLI reads it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'stepline-token-'));
    const first = await createControlToken(dir);
    expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await stat(join(dir, 'control-token'))).mode & 0o777).toBe(0o600);
    expect(await readControlToken(dir)).toBe(first);
    const second = await createControlToken(dir);
    expect(second).not.toBe(first);
    expect((await readFile(join(dir, 'control-token'), 'utf8')).trim()).toBe(second);
  });

  it('is absent for a folder no stepline runs on', async () => {
    expect(await readControlToken(join(tmpdir(), 'stepline-no-such-folder'))).toBeUndefined();
  });

  it('is presented as a Bearer header, else as the console cookie among others', () => {
    expect(presentedToken({ authorization: 'Bearer abc' })).toBe('abc');
    expect(presentedToken({ authorization: 'bearer  abc ' })).toBe('abc');
    expect(presentedToken({ cookie: `theme=dark; ${CONTROL_COOKIE}=xyz; other=1` })).toBe('xyz');
    expect(presentedToken({ authorization: 'Basic abc', cookie: 'theme=dark' })).toBeUndefined();
    expect(presentedToken({})).toBeUndefined();
  });

  it('matches only itself, whatever the length of what is presented', () => {
    expect(tokenMatches('secret-token', 'secret-token')).toBe(true);
    expect(tokenMatches('secret-token', 'secret-tokeN')).toBe(false);
    expect(tokenMatches('secret-token', 'secret')).toBe(false);
    expect(tokenMatches('secret-token', '')).toBe(false);
    expect(tokenMatches('secret-token', undefined)).toBe(false);
  });

  it('is kept by the browser in an HttpOnly, SameSite=Strict cookie for the whole console', () => {
    expect(controlCookie('t0k')).toBe(`${CONTROL_COOKIE}=t0k; HttpOnly; SameSite=Strict; Path=/`);
    expect(consoleUrlWithToken('http://127.0.0.1:4700', 'a+b')).toBe('http://127.0.0.1:4700/?token=a%2Bb');
  });
});
