import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { serveConsole } from '#local/console/serve.ts';
import { lambdaContext } from '#local/lambda/context.ts';
import type { LocalRuntime } from '#local/runtime.ts';
import { isClientError } from '#shared/errors.ts';
import { WEBHOOK_PROVIDERS } from '#shared/push.ts';
import { verifyWebhookSignature } from '#shared/signatures.ts';
import { forTerminal } from '#shared/text.ts';
import { sendJson, serveApi } from './api.ts';
import { controlCookie, presentedToken, tokenMatches } from './control-token.ts';
import {
  loopbackAuthorities,
  type Refusal,
  refuseCrossOrigin,
  refuseForeignHost,
  refuseMalformedPath,
} from './guards.ts';

/** The headers that carry the control token (control-token.ts), kept from the handlers. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie']);

/** The largest request body the local server reads (over the webhook's own 4 MiB limit, which the handler names in its 413). */
const MAX_REQUEST_BYTES = 6 * 1024 * 1024;

export interface LocalServer {
  /** Where the server answers, e.g. `http://127.0.0.1:4700`: the URL to print and give the git hook. */
  url: string;
  server: Server;
  attach(runtime: LocalRuntime): void;
  close(): Promise<void>;
}

/**
 * The local HTTP server: the HTTP API routes serverless.yml declares, served by the same handler
 * modules (as API Gateway HTTP API payload 2.0 events), the console, and the JSON API (api.ts) for the
 * CLI and console. It listens before the runtime is ready and answers 503 until then.
 *
 * Before routing, every request passes the guards of guards.ts: a loopback Host (421 otherwise), a
 * decodable path (400), and for state-changing methods no foreign origin (403). Then everything but the
 * console's static files and the signed webhooks needs the control token (control-token.ts; 401
 * otherwise): the JSON API and the approval pages and decisions are the operator's, never a build's.
 * Webhook deliveries are verified before they are recorded, and recorded before they are answered.
 */
export async function startServer(options: { host?: string; port: number }): Promise<LocalServer> {
  let runtime: LocalRuntime | undefined;
  let authorities: ReadonlySet<string> = new Set();
  const server = createServer((req, res) => {
    handle(runtime, authorities, req, res).catch((error: Error) => {
      if (!res.headersSent)
        sendJson(res, 500, { error: 'InternalError', message: 'The local server failed on this request' });
      else res.destroy();
      // Without the query: `/?token=…` must not reach a log.
      process.stderr.write(
        forTerminal(`stepline: ${req.method} ${(req.url ?? '').split('?', 1)[0]} failed: ${error.message}\n`),
      );
    });
  });
  // Longer than clients keep an idle connection (fetch: 4 s), so that the client, not the server, ends
  // it: a request sent on a connection the server is closing at that moment fails with ECONNRESET.
  server.keepAliveTimeout = 30_000;
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  authorities = loopbackAuthorities(host, port);
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    server,
    attach: (r) => {
      runtime = r;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The first guard that refuses the request, if any (see guards.ts). */
function refusal(req: IncomingMessage, authorities: ReadonlySet<string>): Refusal | undefined {
  const host = req.headers.host;
  return (
    refuseForeignHost(host, authorities) ??
    refuseMalformedPath(req.url ?? '') ??
    refuseCrossOrigin({
      method: req.method ?? 'GET',
      host: host ?? '',
      origin: req.headers.origin,
      fetchSite: header(req, 'sec-fetch-site'),
    })
  );
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

async function handle(
  runtime: LocalRuntime | undefined,
  authorities: ReadonlySet<string>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const refused = refusal(req, authorities);
  if (refused) {
    // The body is not read: close the connection rather than leave it to be drained.
    res.setHeader('connection', 'close');
    return sendJson(res, refused.status, { error: 'Refused', message: refused.message });
  }
  // The guards passed: the Host is one of ours and the target a decodable path.
  const url = new URL(`http://${req.headers.host}${req.url}`);
  if (url.pathname === '/' && url.searchParams.has('token')) return acceptConsoleToken(runtime, res, url);
  if (await serveConsole(req, res, url)) return;
  if (!runtime) return sendJson(res, 503, { message: 'stepline is starting' });
  const route = url.pathname.startsWith('/api/')
    ? undefined
    : runtime.route(req.method ?? 'GET', url.pathname);
  // Only the webhooks answer without the control token: they carry their own signature.
  const open = route?.fn.key === 'webhook';
  if (!open && !tokenMatches(runtime.controlToken, presentedToken(req.headers))) {
    return refuseWithoutToken(req, res, url);
  }
  if (url.pathname.startsWith('/api/')) return serveApi(runtime, req, res, url);
  if (!route) return sendJson(res, 404, { message: `No route for ${req.method} ${url.pathname}` });

  const body = await readBody(req);
  if (body === undefined)
    return sendJson(res, 413, { message: `The request body is over ${MAX_REQUEST_BYTES} bytes` });
  const headers = Object.fromEntries(
    Object.entries(req.headers).flatMap(([k, v]) =>
      // The control token is this server's business: no handler (nor what it logs or records) gets it.
      v === undefined || (!open && CREDENTIAL_HEADERS.has(k))
        ? []
        : [[k, Array.isArray(v) ? v.join(',') : v]],
    ),
  );
  const event = httpApiEvent(req, url, headers, body, route.params);
  const invoke = async () =>
    (await route.handler(event, lambdaContext(route.fn))) as APIGatewayProxyStructuredResultV2;
  const result =
    route.fn.key === 'webhook' && req.method === 'POST'
      ? await deliver(runtime, { provider: route.params.provider, headers, body }, invoke)
      : await invoke();
  res.writeHead(result.statusCode ?? 200, result.headers as Record<string, string>);
  res.end(result.isBase64Encoded ? Buffer.from(result.body ?? '', 'base64') : (result.body ?? ''));
}

/** What a request without the control token is told: where the operator finds it. */
function unauthorizedMessage(url: URL): string {
  return `This needs stepline's control token, which only the operator holds (builds never get it): open the console through the URL \`npm start\` printed (${url.origin}/?token=…), or use \`npx stepline\` (it reads the token from the state folder's control-token file)`;
}

/** 401, never a 5xx: JSON for the API, a short page for the approval links a browser opens. */
function refuseWithoutToken(req: IncomingMessage, res: ServerResponse, url: URL): void {
  res.setHeader('www-authenticate', 'Bearer realm="stepline"');
  const message = unauthorizedMessage(url);
  if (url.pathname.startsWith('/api/') || !(req.headers.accept ?? '').includes('text/html')) {
    sendJson(res, 401, { error: 'Unauthorized', message });
    return;
  }
  res.writeHead(401, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'",
    'referrer-policy': 'no-referrer',
  });
  res.end(
    `<!doctype html><meta charset="utf-8"><title>stepline: not signed in</title><h1>Not signed in</h1><p>${escapeHtml(message)}</p>`,
  );
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * `/?token=…`, the URL `npm start` prints: a right token becomes an HttpOnly, SameSite=Strict cookie and a
 * redirect to the console without it (out of the address bar and the history); a wrong one is a 401.
 */
function acceptConsoleToken(runtime: LocalRuntime | undefined, res: ServerResponse, url: URL): void {
  if (!runtime) {
    sendJson(res, 503, { message: 'stepline is starting' });
    return;
  }
  if (!tokenMatches(runtime.controlToken, url.searchParams.get('token') ?? undefined)) {
    sendJson(res, 401, {
      error: 'Unauthorized',
      message: `That token is not this stepline's (it changes at every start): ${unauthorizedMessage(url)}`,
    });
    return;
  }
  res.writeHead(303, {
    location: '/',
    'set-cookie': controlCookie(runtime.controlToken),
    'cache-control': 'no-store',
    'referrer-policy': 'no-referrer',
  });
  res.end();
}

/**
 * A webhook delivery: its signature verified (a forged or unsigned one is answered 401 and never
 * written), then recorded in the delivery journal, then handed to the webhook handler, whose answer is
 * recorded before it is sent: a 2xx is never lost. A delivery for an unknown provider cannot be verified
 * and starts nothing: the handler answers it (404) unrecorded.
 */
async function deliver(
  runtime: LocalRuntime,
  delivery: { provider: string | undefined; headers: Record<string, string>; body: Buffer },
  invoke: () => Promise<APIGatewayProxyStructuredResultV2>,
): Promise<APIGatewayProxyStructuredResultV2> {
  const { headers, body } = delivery;
  const provider = WEBHOOK_PROVIDERS.find((p) => p === delivery.provider);
  if (!provider) return invoke();
  try {
    verifyWebhookSignature(provider, headers, body, runtime.webhookSecretFor(provider));
  } catch (error) {
    if (!isClientError(error)) throw error;
    return {
      statusCode: error.status,
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ error: error.name, message: error.message }),
    };
  }
  // An empty header names no delivery (and would not be a valid record id).
  const deliveryId =
    headers['x-github-delivery'] ||
    headers['x-gitlab-event-uuid'] ||
    headers['x-request-uuid'] ||
    randomUUID();
  await runtime.store.recordDelivery({
    id: deliveryId,
    receivedAt: new Date().toISOString(),
    provider,
    headers,
    body: body.toString('utf8'),
  });
  const result = await invoke();
  let responseBody: unknown = result.body;
  try {
    responseBody = JSON.parse(result.body ?? 'null');
  } catch {
    // Not JSON: keep the text.
  }
  await runtime.store.recordDeliveryResponse(deliveryId, {
    status: result.statusCode ?? 200,
    body: responseBody,
  });
  return result;
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_REQUEST_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function httpApiEvent(
  req: IncomingMessage,
  url: URL,
  headers: Record<string, string>,
  body: Buffer,
  pathParameters: Record<string, string>,
): APIGatewayProxyEventV2 {
  const method = req.method ?? 'GET';
  const text = body.toString('utf8');
  // API Gateway base64-encodes bodies that are not valid UTF-8 text; do the same so bytes survive.
  const binary = Buffer.compare(Buffer.from(text, 'utf8'), body) !== 0;
  return {
    version: '2.0',
    routeKey: `${method} ${url.pathname}`,
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    requestContext: {
      accountId: '000000000000',
      apiId: 'local',
      domainName: url.host,
      domainPrefix: 'local',
      http: {
        method,
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: `${method} ${url.pathname}`,
      stage: '$default',
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    pathParameters,
    ...(body.length > 0 ? { body: binary ? body.toString('base64') : text } : {}),
    isBase64Encoded: binary,
  };
}
