import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readRunDetail, readRunSummary } from '#local/runs/run-reader.ts';
import type { LocalRuntime } from '#local/runtime.ts';
import { isClientError } from '#shared/errors.ts';

/**
 * The JSON API under /api/ that the CLI and the console read runs from and act on them through. The
 * server (server.ts) has checked the Host, the origin of state-changing requests and the path first.
 *
 * Answers a request under /api/: runs, approvals, environments (each line's holds and current commits),
 * builds' logs, the event stream, redrive, restart, rollback and teardown.
 */
export async function serveApi(
  runtime: LocalRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const [, resource, id, action] = parts;
  // No route has more than /api/<resource>/<id>/<action>: a longer path is none of them.
  if (parts.length > 4) {
    return sendJson(res, 404, { message: `No API route for ${req.method} ${url.pathname}` });
  }
  const { store } = runtime;
  if (req.method === 'GET' && resource === 'runs' && id === undefined) {
    return sendJson(
      res,
      200,
      store.executions().map((r) => readRunSummary(runtime, r)),
    );
  }
  if (resource === 'runs' && id !== undefined) {
    const record = store.execution(id);
    if (!record) return sendJson(res, 404, { message: `No run named ${id}` });
    if (req.method === 'POST' && action === 'redrive') {
      try {
        const redriven = await runtime.operations.redrive(record.name);
        return sendJson(res, 202, readRunSummary(runtime, redriven));
      } catch (error) {
        // ExecutionNotRedrivable (409) with Step Functions' reason: running, succeeded, past 14 days.
        if (isClientError(error))
          return sendJson(res, error.status, { error: error.name, message: error.message });
        throw error;
      }
    }
    if (req.method === 'POST' && action === 'restart') {
      const restarted = await runtime.operations.restart(record.name);
      return sendJson(res, 202, readRunSummary(runtime, restarted));
    }
    if (req.method === 'GET' && action === undefined) {
      return sendJson(res, 200, readRunDetail(runtime, record));
    }
  }
  if (req.method === 'GET' && resource === 'statemachines' && id !== undefined) {
    const machine = runtime.wiring.machines[id];
    if (!machine) return sendJson(res, 404, { message: `No state machine named ${id}` });
    return sendJson(res, 200, { key: id, name: machine.name, definition: machine.definition });
  }
  if (req.method === 'POST' && resource === 'teardown' && id !== undefined) {
    try {
      const record = await runtime.operations.teardown(id, url.searchParams.get('repository') || undefined);
      return sendJson(res, 202, { name: record.name, executionArn: record.executionArn });
    } catch (error) {
      if (isClientError(error)) return sendJson(res, error.status, { message: error.message });
      throw error;
    }
  }
  // POST /api/environments/<env>/rollback[?to=<run|commit>&repo=<name>&infrastructure=true]
  if (req.method === 'POST' && resource === 'environments' && id !== undefined && action === 'rollback') {
    try {
      const record = await runtime.operations.rollback(id, {
        to: url.searchParams.get('to') || undefined,
        repository: url.searchParams.get('repo') || undefined,
        infrastructure: url.searchParams.get('infrastructure') === 'true',
      });
      return sendJson(res, 202, { name: record.name, executionArn: record.executionArn });
    } catch (error) {
      // Nothing recorded to go back to (409), an invalid environment or an ambiguous one (400).
      if (isClientError(error))
        return sendJson(res, error.status, { error: error.name, message: error.message });
      throw error;
    }
  }
  if (req.method === 'GET' && resource === 'approvals') return sendJson(res, 200, runtime.pendingApprovals());
  if (req.method === 'GET' && resource === 'environments') return sendJson(res, 200, runtime.environments());
  if (req.method === 'GET' && resource === 'outbox') return sendJson(res, 200, store.outbox());
  if (req.method === 'GET' && resource === 'builds' && id !== undefined && action === 'log') {
    return sendLog(res, store.buildLogPath(id), Number(url.searchParams.get('offset') ?? 0));
  }
  if (req.method === 'GET' && resource === 'events') return events(runtime, req, res);
  return sendJson(res, 404, { message: `No API route for ${req.method} ${url.pathname}` });
}

async function sendLog(res: ServerResponse, path: string, offset: number): Promise<void> {
  const size = await stat(path).then(
    (s) => s.size,
    () => -1,
  );
  if (size < 0) return sendJson(res, 404, { message: 'No log for this build (yet)' });
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

/** Answers with a JSON body that no cache keeps. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}
