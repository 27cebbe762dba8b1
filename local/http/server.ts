import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { serveConsole } from '#local/console/serve.ts';
import { readRunDetail, readRunSummary } from '#local/runs/run-reader.ts';
import { type LocalRuntime, lambdaContext } from '#local/runtime.ts';
import { isClientError } from '#shared/errors.ts';

/** The largest request body the local server reads (a bit over the webhook's own 5 MiB limit). */
const MAX_REQUEST_BYTES = 6 * 1024 * 1024;

export interface LocalServer {
  url: string;
  server: Server;
  attach(runtime: LocalRuntime): void;
  close(): Promise<void>;
}

/**
 * The local HTTP server: the HTTP API routes serverless.yml declares, served by the same handler
 * modules (as API Gateway HTTP API payload 2.0 events), and a small JSON API for the CLI and console.
 * It listens before the runtime is ready and answers 503 until then.
 */
export async function startServer(options: { host?: string; port: number }): Promise<LocalServer> {
  let runtime: LocalRuntime | undefined;
  const server = createServer((req, res) => {
    handle(runtime, req, res).catch((error: Error) => {
      if (!res.headersSent)
        send(res, 500, { error: 'InternalError', message: 'The local server failed on this request' });
      process.stderr.write(`stepline: ${req.method} ${req.url} failed: ${error.message}\n`);
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://${host}:${port}`,
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

async function handle(
  runtime: LocalRuntime | undefined,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (await serveConsole(req, res, url)) return;
  if (!runtime) return send(res, 503, { message: 'stepline is starting' });
  if (url.pathname.startsWith('/api/')) return api(runtime, req, res, url);
  const route = runtime.route(req.method ?? 'GET', url.pathname);
  if (!route) return send(res, 404, { message: `No route for ${req.method} ${url.pathname}` });

  const body = await readBody(req);
  if (body === undefined)
    return send(res, 413, { message: `The request body is over ${MAX_REQUEST_BYTES} bytes` });
  const headers = Object.fromEntries(
    Object.entries(req.headers).flatMap(([k, v]) =>
      v === undefined ? [] : [[k, Array.isArray(v) ? v.join(',') : v]],
    ),
  );
  // An empty header names no delivery (and would not be a valid record id).
  const deliveryId =
    headers['x-github-delivery'] ||
    headers['x-gitlab-event-uuid'] ||
    headers['x-request-uuid'] ||
    randomUUID();
  // A webhook delivery is written to disk before anything answers it: a 2xx is never lost.
  const isDelivery = route.fn.key === 'webhook' && req.method === 'POST';
  if (isDelivery) {
    await runtime.store.recordDelivery({
      id: deliveryId,
      receivedAt: new Date().toISOString(),
      provider: route.params.provider ?? '',
      headers,
      body: body.toString('utf8'),
    });
  }
  const event = httpApiEvent(req, url, headers, body, route.params);
  const result = (await route.handler(event, lambdaContext(route.fn))) as APIGatewayProxyStructuredResultV2;
  const status = result.statusCode ?? 200;
  if (isDelivery) {
    let responseBody: unknown = result.body;
    try {
      responseBody = JSON.parse(result.body ?? 'null');
    } catch {
      // Not JSON: keep the text.
    }
    await runtime.store.recordDeliveryResponse(deliveryId, { status, body: responseBody });
  }
  res.writeHead(status, result.headers as Record<string, string>);
  res.end(result.isBase64Encoded ? Buffer.from(result.body ?? '', 'base64') : (result.body ?? ''));
}

async function api(
  runtime: LocalRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const [, resource, id, action] = parts;
  const { store } = runtime;
  if (req.method === 'GET' && resource === 'runs' && id === undefined) {
    return send(
      res,
      200,
      store.executions().map((r) => readRunSummary(runtime, r)),
    );
  }
  if (resource === 'runs' && id !== undefined) {
    const record = store.execution(id);
    if (!record) return send(res, 404, { message: `No run named ${id}` });
    if (req.method === 'POST' && action === 'restart') {
      const restarted = await runtime.restart(record.name);
      return send(res, 202, readRunSummary(runtime, restarted));
    }
    if (req.method === 'GET' && action === undefined) {
      return send(res, 200, readRunDetail(runtime, record));
    }
  }
  if (req.method === 'GET' && resource === 'statemachines' && id !== undefined) {
    const machine = runtime.wiring.machines[id];
    if (!machine) return send(res, 404, { message: `No state machine named ${id}` });
    return send(res, 200, { key: id, name: machine.name, definition: machine.definition });
  }
  if (req.method === 'POST' && resource === 'teardown' && id !== undefined) {
    try {
      const record = await runtime.teardown(id);
      return send(res, 202, { name: record.name, executionArn: record.executionArn });
    } catch (error) {
      if (isClientError(error)) return send(res, error.status, { message: error.message });
      throw error;
    }
  }
  if (req.method === 'GET' && resource === 'approvals') return send(res, 200, runtime.pendingApprovals());
  if (req.method === 'GET' && resource === 'outbox') return send(res, 200, store.outbox());
  if (req.method === 'GET' && resource === 'builds' && id !== undefined && action === 'log') {
    return sendLog(res, store.buildLogPath(id), Number(url.searchParams.get('offset') ?? 0));
  }
  if (req.method === 'GET' && resource === 'events') return events(runtime, req, res);
  return send(res, 404, { message: `No API route for ${req.method} ${url.pathname}` });
}

async function sendLog(res: ServerResponse, path: string, offset: number): Promise<void> {
  const size = await stat(path).then(
    (s) => s.size,
    () => -1,
  );
  if (size < 0) return send(res, 404, { message: 'No log for this build (yet)' });
  res.writeHead(200, {
    'content-type': 'text/plain; charset=utf-8',
    'x-log-size': String(size),
    'cache-control': 'no-store',
  });
  if (offset >= size) return void res.end();
  createReadStream(path, { start: Math.max(0, offset) }).pipe(res);
}

function events(runtime: LocalRuntime, req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-store',
    connection: 'keep-alive',
  });
  res.write(': stepline\n\n');
  const unsubscribe = runtime.store.subscribe((change) =>
    res.write(`event: ${change.kind}\ndata: ${JSON.stringify(change)}\n\n`),
  );
  req.on('close', unsubscribe);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
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
