import { readFileSync, realpathSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * hello-service: a tiny HTTP service with no dependencies.
 *
 *   GET /health → 200 {"status":"ok","environment":"…","version":"…"}
 *   GET /       → a short greeting naming the version and the environment
 *
 * Run it with `node server.mjs`. PORT (default 8080) and HOST (default 127.0.0.1) say where it listens,
 * APP_ENVIRONMENT names the environment it serves (default "local"), HEALTH_CHECK_FAILS=true makes /health
 * answer 503, and the version is the one written to
 * the VERSION file next to this file when the image stage packed it (else APP_VERSION, else "unknown").
 */

const HERE = dirname(fileURLToPath(import.meta.url));

/** The version this copy was built from: the VERSION file packed with it, else APP_VERSION, else "unknown". */
export function builtVersion(directory = HERE, env = process.env) {
  try {
    const version = readFileSync(join(directory, 'VERSION'), 'utf8').trim();
    if (version !== '') return version;
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  }
  return env.APP_VERSION || 'unknown';
}

function sendJson(response, status, body) {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  response.end(JSON.stringify(body));
}

function sendText(response, status, text, headers = {}) {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  response.end(`${text}\n`);
}

/**
 * The service as an unstarted `http.Server`, answering for one environment and version. With `failing`,
 * `/health` answers 503 (how a deploy's health check is made to fail without a new commit).
 */
export function createService({ environment, version, failing = false }) {
  return createServer((request, response) => {
    const { pathname } = new URL(request.url ?? '/', 'http://service.invalid');
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      sendText(response, 405, 'Only GET is served here', { allow: 'GET, HEAD' });
      return;
    }
    if (pathname === '/health' && failing) {
      sendJson(response, 503, { status: 'failing', environment, version });
      return;
    }
    if (pathname === '/health') {
      sendJson(response, 200, { status: 'ok', environment, version });
      return;
    }
    if (pathname === '/') {
      sendText(response, 200, `Hello from hello-service ${version} in ${environment}`);
      return;
    }
    sendText(response, 404, `Nothing at ${pathname}: try / or /health`);
  });
}

/** Starts listening; resolves with the port actually bound (useful with port 0). */
export function listen(server, port, host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

function port(value) {
  if (value === undefined || value === '') return 8080;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0 || number > 65535) {
    throw new Error(`PORT must be a port number (0-65535), got "${value}"`);
  }
  return number;
}

async function main() {
  const environment = process.env.APP_ENVIRONMENT || 'local';
  const version = builtVersion();
  const host = process.env.HOST || '127.0.0.1';
  const failing = process.env.HEALTH_CHECK_FAILS === 'true';
  const server = createService({ environment, version, failing });
  const bound = await listen(server, port(process.env.PORT), host);
  console.log(`hello-service ${version} (${environment}) listening on http://${host}:${bound}/`);
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.once(signal, () => {
      console.log(`hello-service stopping on ${signal}`);
      server.close(() => process.exit(0));
      server.closeAllConnections();
    });
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(realpathSync(entry)).href) {
  main().catch((error) => {
    console.error(`hello-service could not start: ${error.message}`);
    process.exit(1);
  });
}
