import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { builtVersion, createService, listen } from '../server.mjs';

describe('hello-service', () => {
  let server;
  let base;

  before(async () => {
    server = createService({ environment: 'qa', version: '1a2b3c4d5e6f' });
    const port = await listen(server, 0);
    base = `http://127.0.0.1:${port}`;
  });

  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('answers /health with 503 when made to fail', async () => {
    const failing = createService({ environment: 'prod', version: '1a2b3c4d5e6f', failing: true });
    const port = await listen(failing, 0);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/health`);
      assert.equal(response.status, 503);
      assert.equal((await response.json()).status, 'failing');
    } finally {
      failing.closeAllConnections();
      failing.close();
    }
  });

  it('answers /health with 200, the environment and the version', async () => {
    const response = await fetch(`${base}/health`);

    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type'), /^application\/json/);
    assert.deepEqual(await response.json(), { status: 'ok', environment: 'qa', version: '1a2b3c4d5e6f' });
  });

  it('greets on / with the version and the environment', async () => {
    const response = await fetch(`${base}/`);

    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'Hello from hello-service 1a2b3c4d5e6f in qa\n');
  });

  it('answers 404 for other paths', async () => {
    const response = await fetch(`${base}/nope`);

    assert.equal(response.status, 404);
  });

  it('refuses methods other than GET and HEAD with 405', async () => {
    const response = await fetch(`${base}/health`, { method: 'POST' });

    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'GET, HEAD');
  });
});

describe('builtVersion', () => {
  it('reads the VERSION file packed next to the server', () => {
    const directory = mkdtempSync(join(tmpdir(), 'hello-version-'));
    try {
      writeFileSync(join(directory, 'VERSION'), 'abc123def456\n');

      assert.equal(builtVersion(directory, {}), 'abc123def456');
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('falls back to APP_VERSION, then to "unknown", when nothing was packed', () => {
    const directory = mkdtempSync(join(tmpdir(), 'hello-version-'));
    try {
      assert.equal(builtVersion(directory, { APP_VERSION: 'v2' }), 'v2');
      assert.equal(builtVersion(directory, {}), 'unknown');
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
