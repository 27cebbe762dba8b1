import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  loopbackAuthorities,
  refuseCrossOrigin,
  refuseForeignHost,
  refuseMalformedPath,
} from '#local/http/guards.ts';
import { type LocalServer, startServer } from '#local/http/server.ts';

const AUTHORITIES = loopbackAuthorities('127.0.0.1', 4700);

describe('refuseForeignHost', () => {
  it.each(['127.0.0.1:4700', 'localhost:4700', 'LOCALHOST:4700', '[::1]:4700'])('lets %s through', (host) => {
    expect(refuseForeignHost(host, AUTHORITIES)).toBeUndefined();
  });

  it.each([
    'evil.example',
    'evil.example:4700',
    '127.0.0.1',
    '127.0.0.1:4701',
    'localhost.:4700',
    '127.0.0.1.evil.example:4700',
    '',
  ])('refuses %j with 421, naming where stepline answers', (host) => {
    const refusal = refuseForeignHost(host, AUTHORITIES);
    expect(refusal?.status).toBe(421);
    expect(refusal?.message).toContain('http://127.0.0.1:4700');
  });

  it('refuses a request without a Host header', () => {
    expect(refuseForeignHost(undefined, AUTHORITIES)?.message).toMatch(/^A request without a Host header/);
  });

  it('also answers under the name it was told to listen on', () => {
    const authorities = loopbackAuthorities('::1', 80);
    expect([...authorities].sort()).toEqual(['127.0.0.1:80', '[::1]:80', 'localhost:80']);
  });
});

describe('refuseCrossOrigin', () => {
  const host = '127.0.0.1:4700';

  it('lets every GET through, whatever its origin', () => {
    expect(
      refuseCrossOrigin({ method: 'GET', host, origin: 'http://evil.example', fetchSite: 'cross-site' }),
    ).toBeUndefined();
  });

  it('lets a POST without Origin or Sec-Fetch-Site through (the CLI, the git hook, curl)', () => {
    expect(refuseCrossOrigin({ method: 'POST', host })).toBeUndefined();
  });

  it("lets the console's own POST through, by Origin or by Sec-Fetch-Site", () => {
    expect(refuseCrossOrigin({ method: 'POST', host, origin: 'http://127.0.0.1:4700' })).toBeUndefined();
    // A page with Referrer-Policy: no-referrer sends Origin: null on its own POSTs.
    expect(
      refuseCrossOrigin({ method: 'POST', host, origin: 'null', fetchSite: 'same-origin' }),
    ).toBeUndefined();
  });

  it.each([
    { method: 'POST', origin: 'http://evil.example' },
    { method: 'DELETE', origin: 'http://evil.example' },
    { method: 'PUT', origin: 'http://localhost:4700' },
    { method: 'PATCH', origin: 'https://127.0.0.1:4700' },
    { method: 'POST', origin: 'http://127.0.0.1:4701' },
    { method: 'POST', origin: 'null' },
    { method: 'POST', origin: 'not a url' },
    { method: 'POST', fetchSite: 'cross-site' },
    { method: 'POST', fetchSite: 'same-site', origin: 'http://127.0.0.1:4700' },
    { method: 'POST', fetchSite: 'cross-site', origin: 'http://127.0.0.1:4700' },
  ])('refuses $method from origin $origin, Sec-Fetch-Site $fetchSite with 403', (request) => {
    const refusal = refuseCrossOrigin({ host, ...request });
    expect(refusal?.status).toBe(403);
    expect(refusal?.message).toContain('only the stepline console at http://127.0.0.1:4700');
  });
});

describe('refuseMalformedPath', () => {
  it.each(['/', '/api/runs/a%20b', '/approvals/abc?x=%E0%A4%A', '//evil.example/x'])(
    'lets %s through',
    (target) => {
      expect(refuseMalformedPath(target)).toBeUndefined();
    },
  );

  it.each(['/approvals/%E0%A4%A', '/webhooks/%E0%A4%A', '/api/runs/%E0%A4%A', '/%', '/%zz', '/%FF'])(
    'refuses %s with 400',
    (target) => {
      expect(refuseMalformedPath(target)).toMatchObject({
        status: 400,
        message: expect.stringContaining('malformed percent-encoding'),
      });
    },
  );

  it.each(['*', 'http://evil.example/api/runs'])('refuses the non-path target %s with 400', (target) => {
    expect(refuseMalformedPath(target)?.status).toBe(400);
  });
});

describe('the local server, before a runtime is attached', () => {
  let server: LocalServer;
  beforeAll(async () => {
    server = await startServer({ port: 0 });
  });
  afterAll(() => server.close());

  /** A raw request, so that Host and the path go out exactly as written. */
  function raw(
    method: string,
    path: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; body: string }> {
    const { port } = new URL(server.url);
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, headers, setHost: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('answers under the URL it printed (the one the git hook posts to): past the guards, 503 until ready', async () => {
    const answer = await fetch(`${server.url}/webhooks/github`, { method: 'POST', body: '{}' });
    expect(answer.status).toBe(503);
  });

  it('refuses a rebound Host with 421 before serving even the console', async () => {
    const answer = await raw('GET', '/', { host: 'evil.example' });
    expect(answer.status).toBe(421);
    expect(JSON.parse(answer.body).message).toContain('is not this server');
  });

  it('refuses a cross-origin POST with 403', async () => {
    const { host } = new URL(server.url);
    const answer = await raw('POST', '/api/runs/x/restart', { host, origin: 'http://evil.example' });
    expect(answer.status).toBe(403);
  });

  it('refuses a malformed path with 400', async () => {
    const { host } = new URL(server.url);
    const answer = await raw('GET', '/api/runs/%E0%A4%A', { host });
    expect(answer.status).toBe(400);
  });
});
