import { readFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';

/** A request as the forge stand-in received it. */
export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** An answer the stand-in gives, in order; after the script runs out, `fallback`. */
export interface ScriptedAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

/**
 * A local HTTP server standing in for a forge's API in tests: it records every request (method, path,
 * headers, JSON body) and answers from a script, so a test checks each request as the provider documents
 * it and drives the client through rate limits and 5xx.
 */
export class ForgeServer {
  readonly requests: ReceivedRequest[] = [];
  #script: ScriptedAnswer[] = [];
  #fallback: ScriptedAnswer = { status: 201, body: { id: 1 } };
  readonly #server: Server;
  /** A folder served to GET requests as git's dumb HTTP protocol reads it (a bare repository's files). */
  #files: string | undefined;

  private constructor() {
    this.#server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', async () => {
        if (request.method === 'GET' && this.#files) {
          const path = normalize(decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname));
          const file = await readFile(join(this.#files, path)).catch(() => undefined);
          response.writeHead(file ? 200 : 404, { 'content-type': 'application/octet-stream' });
          response.end(file ?? '');
          return;
        }
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = text === '' ? undefined : JSON.parse(text);
        } catch {
          // Kept as text: the test sees what was sent.
        }
        this.requests.push({
          method: request.method ?? '',
          path: request.url ?? '',
          headers: request.headers,
          body,
        });
        const answer = this.#script.shift() ?? this.#fallback;
        const json = answer.body === undefined ? {} : { 'content-type': 'application/json' };
        response.writeHead(answer.status, { ...json, ...answer.headers });
        response.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
      });
    });
  }

  static async start(): Promise<ForgeServer> {
    const server = new ForgeServer();
    await new Promise<void>((resolve) => server.#server.listen(0, '127.0.0.1', resolve));
    return server;
  }

  /** `http://127.0.0.1:<port>`. */
  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** Serves `folder`'s files to GET requests (git clones over dumb HTTP); POSTs stay scripted. */
  serveFiles(folder: string): void {
    this.#files = folder;
  }

  /** The next answers, in order. */
  answer(...answers: ScriptedAnswer[]): void {
    this.#script.push(...answers);
  }

  /** What every request gets once the script has run out. */
  answerAlways(answer: ScriptedAnswer): void {
    this.#fallback = answer;
  }

  reset(): void {
    this.requests.length = 0;
    this.#script = [];
    this.#fallback = { status: 201, body: { id: 1 } };
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
