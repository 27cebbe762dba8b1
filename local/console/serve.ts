import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';

const DIR = fileURLToPath(new URL('.', import.meta.url));

/** The console's own assets only: no other origin, no inline script or style. */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

let bundle: Promise<string> | undefined;

/**
 * The browser script: local/console/app.ts and what it imports (dagre from node_modules), bundled by
 * esbuild once per server, in memory. Nothing is fetched from another origin.
 */
export function consoleScript(): Promise<string> {
  // esbuild loads on the first request for the script, not with the server: a start does not wait for it.
  bundle ??= import('esbuild')
    .then(({ build }) =>
      build({
        entryPoints: [`${DIR}app.ts`],
        bundle: true,
        write: false,
        format: 'esm',
        platform: 'browser',
        target: 'es2022',
        minify: true,
        legalComments: 'eof',
        logLevel: 'silent',
      }),
    )
    .then((result) => result.outputFiles[0]?.text ?? '');
  bundle.catch(() => {
    bundle = undefined;
  });
  return bundle;
}

const ASSETS: Record<string, { type: string; body: () => Promise<string> }> = {
  '/': { type: 'text/html; charset=utf-8', body: () => readFile(`${DIR}index.html`, 'utf8') },
  '/console/app.js': { type: 'text/javascript; charset=utf-8', body: consoleScript },
  '/console/console.css': {
    type: 'text/css; charset=utf-8',
    body: () => readFile(`${DIR}console.css`, 'utf8'),
  },
};

/**
 * Serves the console (GET / and its script and style under /console/). Answers and returns true for
 * those paths; returns false, having written nothing, for any other.
 */
export async function serveConsole(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
  const asset = ASSETS[url.pathname];
  if (!asset || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
  const body = await asset.body();
  res.writeHead(200, {
    'content-type': asset.type,
    'cache-control': 'no-store',
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
