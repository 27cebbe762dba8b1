/**
 * What the local server checks before it routes a request, so that it is safe to leave running on a
 * developer's laptop while they browse the web:
 *
 * - **The Host** must be one of the loopback names the server listens on. A page on another site can
 *   point its own name at 127.0.0.1 (DNS rebinding) and so read and drive the server as same-origin;
 *   its requests then carry its own name in `Host`, which is refused here.
 * - **State-changing requests from a browser** must come from the console's own origin (cross-site
 *   request forgery). The rule is the one Go's `net/http.CrossOriginProtection` applies:
 *   `Sec-Fetch-Site` decides when a browser sent it (`same-origin` or `none` pass); otherwise an
 *   `Origin` must name the host the request was sent to; a request with neither header did not come from
 *   a browser (the CLI, the git hook, curl) and passes. `Origin: null` does not pass on its own: the
 *   console and the approval pages set `Referrer-Policy: no-referrer`, which makes browsers send
 *   `Origin: null` on their own POSTs, but then they also send `Sec-Fetch-Site: same-origin`.
 * - **The path** must be percent-decodable, so that no route fails on it later.
 *
 * Each check returns a {@link Refusal} (the status and a message a person can act on) or undefined.
 */

/** Why a request is refused: the status to answer with and a message saying what to do. */
export interface Refusal {
  status: number;
  message: string;
}

/** Methods that change nothing (RFC 9110 §9.2.1): a cross-origin one cannot do harm the Host check allows. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** `Sec-Fetch-Site` values that say the request did not come from another origin's page. */
const OWN_FETCH_SITES = new Set(['same-origin', 'none']);

/**
 * The `Host` values (lower case) under which a server listening on `host`:`port` answers: the loopback
 * names 127.0.0.1, localhost and [::1] with the port, and `host` itself if it is another name.
 *
 * @example
 * ```ts
 * loopbackAuthorities('127.0.0.1', 4700); // Set { '127.0.0.1:4700', 'localhost:4700', '[::1]:4700' }
 * ```
 */
export function loopbackAuthorities(host: string, port: number): ReadonlySet<string> {
  const names = ['127.0.0.1', 'localhost', '[::1]', host.includes(':') ? `[${host}]` : host];
  return new Set(names.map((name) => `${name.toLowerCase()}:${port}`));
}

/** Refuses (421) a request whose `Host` is not one of `authorities` (see {@link loopbackAuthorities}). */
export function refuseForeignHost(
  host: string | undefined,
  authorities: ReadonlySet<string>,
): Refusal | undefined {
  if (host !== undefined && authorities.has(host.toLowerCase())) return undefined;
  const where = [...authorities].map((authority) => `http://${authority}`).join(', ');
  return {
    status: 421,
    message: `${host ? `Host "${host}"` : 'A request without a Host header'} is not this server: stepline answers only at ${where} (no other name, so that no web page can reach it through DNS rebinding)`,
  };
}

/**
 * Refuses (403) a state-changing request that a browser sent from a page of another origin than
 * `http://<host>` (the console's own). See the module comment for the rule.
 */
export function refuseCrossOrigin(request: {
  method: string;
  host: string;
  origin?: string | undefined;
  fetchSite?: string | undefined;
}): Refusal | undefined {
  if (SAFE_METHODS.has(request.method.toUpperCase())) return undefined;
  const refused = (from: string): Refusal => ({
    status: 403,
    message: `${request.method} refused: it came from ${from}, and only the stepline console at http://${request.host} (or a program that is not a browser) may change state here`,
  });
  if (request.fetchSite !== undefined) {
    if (OWN_FETCH_SITES.has(request.fetchSite.toLowerCase())) return undefined;
    return refused(`a ${request.fetchSite} page (Sec-Fetch-Site)`);
  }
  if (request.origin === undefined) return undefined;
  if (sameOrigin(request.origin, request.host)) return undefined;
  return refused(`the origin ${request.origin}`);
}

function sameOrigin(origin: string, host: string): boolean {
  if (!URL.canParse(origin)) return false;
  const url = new URL(origin);
  return url.protocol === 'http:' && url.host === host.toLowerCase();
}

/**
 * Refuses (400) a request target that is not a path (`*`, `http://other/…`), or a path with a malformed
 * percent-encoding such as `/approvals/%E0%A4%A`, which no route could decode.
 */
export function refuseMalformedPath(target: string): Refusal | undefined {
  if (!target.startsWith('/'))
    return { status: 400, message: `The request target "${target}" is not a path` };
  const path = target.split('?', 1)[0] ?? '';
  try {
    decodeURIComponent(path);
    return undefined;
  } catch {
    return {
      status: 400,
      message: `The path ${JSON.stringify(path.slice(0, 200))} has a malformed percent-encoding (% must be followed by two hex digits forming UTF-8)`,
    };
  }
}
