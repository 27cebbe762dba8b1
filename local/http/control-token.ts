import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '#local/state/atomic-file.ts';

/**
 * The local control token: what the operator holds and a build does not. The JSON API (`/api/…`) and the
 * approval pages and decisions (`/approvals/…`) answer only a request that presents it, so that a build
 * (which runs on the same machine, as the same user, and can reach the server's port) cannot read the
 * pending approvals or decide its own gate.
 *
 * - It is random (32 bytes), made anew at every start, and kept in `<state>/control-token` (mode 0600,
 *   in a 0700 folder that a sandboxed build does not see).
 * - The CLI reads the file and sends `Authorization: Bearer <token>`.
 * - The console gets it once, from the URL `npm start` prints (`/?token=…`): the server answers with an
 *   HttpOnly, SameSite=Strict cookie and a redirect to the URL without it, so that the token leaves the
 *   address bar and the history, and approval links opened in that browser carry the cookie.
 * - It is compared in constant time, and never written to logs, runs or notifications.
 */

/** The file under the state folder that holds the token. */
export const CONTROL_TOKEN_FILE = 'control-token';

/** The cookie the console's browser keeps the token in. */
export const CONTROL_COOKIE = 'stepline_control';

/** Makes a new token and writes it (0600) to the state folder, replacing the previous start's. */
export async function createControlToken(stateDir: string): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  await writeFileAtomic(join(stateDir, CONTROL_TOKEN_FILE), `${token}\n`, { mode: 0o600 });
  return token;
}

/** The token of the stepline running on `stateDir`, or undefined when there is none (or it is unreadable). */
export async function readControlToken(stateDir: string): Promise<string | undefined> {
  try {
    const token = (await readFile(join(stateDir, CONTROL_TOKEN_FILE), 'utf8')).trim();
    return token === '' ? undefined : token;
  } catch {
    return undefined;
  }
}

/** The token a request presents: `Authorization: Bearer …`, else the console's cookie. */
export function presentedToken(headers: {
  authorization?: string | undefined;
  cookie?: string | undefined;
}): string | undefined {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(headers.authorization ?? '')?.[1];
  if (bearer !== undefined) return bearer;
  for (const pair of (headers.cookie ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at > 0 && pair.slice(0, at).trim() === CONTROL_COOKIE) return pair.slice(at + 1).trim();
  }
  return undefined;
}

/** Whether `presented` is `expected`, in time that does not depend on where they differ. */
export function tokenMatches(expected: string, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  // Digests have one length, so timingSafeEqual never throws and the length is not revealed either.
  const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();
  return timingSafeEqual(digest(expected), digest(presented));
}

/** The `Set-Cookie` value that keeps `token` in the console's browser. */
export function controlCookie(token: string): string {
  return `${CONTROL_COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`;
}

/** The console URL to print: the one visit that hands the token to a browser. */
export function consoleUrlWithToken(baseUrl: string, token: string): string {
  return `${baseUrl}/?token=${encodeURIComponent(token)}`;
}
