import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layoutMachine } from '#local/console/graph.ts';
import {
  causeSummary,
  type HistoryEventLike,
  iterationNames,
  machineGraph,
  stateRuns,
  webLink,
} from '#local/console/model.ts';
import { serveConsole } from '#local/console/serve.ts';

const PIPELINE = JSON.parse(
  readFileSync(new URL('../../statemachines/pipeline.asl.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;

const at = (second: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString();

function event(type: string, state: string, second: number, extra: Partial<HistoryEventLike> = {}) {
  return { type, state, timestamp: at(second), ...extra };
}

describe('machineGraph', () => {
  const graph = machineGraph(PIPELINE);
  const edge = (from: string, to: string) =>
    graph.edges.find((e) => e.from === `state:${from}` && e.to === `state:${to}`);

  it('draws a Choice rule and its Default as labelled edges', () => {
    expect(edge('Approval required?', 'Approval')).toMatchObject({
      kind: 'choice',
      label: '$.approvalRequired == true',
    });
    expect(edge('Approval required?', 'Enter environment')).toMatchObject({ kind: 'default' });
  });

  it('draws each Catch as an edge naming the errors it catches', () => {
    expect(edge('Approval', 'Notify rejected')).toMatchObject({
      kind: 'catch',
      label: 'catch Approval.Rejected',
    });
    expect(edge('Approval', 'Notify expired')).toMatchObject({
      kind: 'catch',
      label: 'catch States.Timeout',
    });
    expect(edge('Image', 'Retry Image?')).toMatchObject({ kind: 'catch', label: 'catch States.TaskFailed' });
    expect(edge('Image', 'Record the Image failure')).toMatchObject({ kind: 'catch' });
  });

  it('holds a Map state and its inner states in one group, leaving it from the group end', () => {
    const inner = [
      'Environments',
      'Approval',
      'Enter environment',
      'Infrastructure',
      'Deploy',
      'Leave environment',
      'Stage failed',
    ];
    for (const state of inner)
      expect(graph.nodes.find((n) => n.id === `state:${state}`)?.parent).toBe('group:Environments');
    expect(graph.nodes.find((n) => n.id === 'state:Image')?.parent).toBeUndefined();
    expect(graph.edges).toContainEqual(
      expect.objectContaining({ from: 'state:Environments', to: 'state:Approval required?', kind: 'items' }),
    );
    expect(graph.edges).toContainEqual({
      from: 'state:Leave environment',
      to: 'end-of:Environments',
      kind: 'next',
    });
    expect(graph.edges).toContainEqual({
      from: 'end-of:Environments',
      to: 'state:Notify succeeded',
      kind: 'next',
    });
  });

  it('ends the drawing at End from top-level Succeed and Fail states only', () => {
    const intoEnd = graph.edges.filter((e) => e.to === 'end').map((e) => e.from);
    expect(intoEnd.sort()).toEqual(['state:Line failed', 'state:Succeeded']);
  });

  it('marks the approval gate as a state that waits for a task token, and the environment hold as none', () => {
    const gates = graph.nodes.filter((n) => n.waitsForToken).map((n) => n.state);
    expect(gates).toEqual(['Approval']);
  });

  it('joins only nodes that exist', () => {
    const ids = new Set(graph.nodes.map((n) => n.id));
    const dangling = graph.edges.filter((e) => !ids.has(e.from) || !ids.has(e.to));
    expect(dangling).toEqual([]);
  });
});

describe('layoutMachine', () => {
  it('places every state of a group inside the group box', () => {
    const placed = layoutMachine(
      machineGraph(PIPELINE),
      (text) => text.length * 7,
      () => 40,
    );
    const groups = new Map(placed.groups.map((g) => [g.id, g.box]));
    const outside = placed.nodes.filter((node) => {
      const box = node.parent ? groups.get(node.parent) : undefined;
      if (!box) return false;
      return (
        node.x < box.x ||
        node.y < box.y ||
        node.x + node.width > box.x + box.width ||
        node.y + node.height > box.y + box.height
      );
    });
    expect(outside).toEqual([]);
    expect(placed.edges.every((e) => e.points.length >= 2)).toBe(true);
  });
});

describe('stateRuns', () => {
  const waits = (state: string) => state === 'Approval';

  it('tells succeeded, running and waiting states apart while the run runs', () => {
    const runs = stateRuns(
      [
        event('StateEntered', 'Image', 1),
        event('StateExited', 'Image', 2),
        event('StateEntered', 'Environments', 2),
        event('StateEntered', 'Approval', 3, { index: 0 }),
      ],
      { running: true, waitsForToken: waits },
    );
    expect(runs.get('Image')?.status).toBe('succeeded');
    expect(runs.get('Environments')?.status).toBe('running');
    expect(runs.get('Approval')?.status).toBe('waiting');
    expect(runs.has('Deploy')).toBe(false);
  });

  it('calls a failure the state machine caught "caught", and one it did not "failed", with error and cause', () => {
    const runs = stateRuns(
      [
        event('StateEntered', 'Image', 1),
        event('StateFailed', 'Image', 2, { error: 'States.TaskFailed', cause: '{"BuildStatus":"FAILED"}' }),
        event('StateCaught', 'Image', 2),
        event('StateExited', 'Image', 2),
        event('StateEntered', 'Image failed', 3),
        event('StateFailed', 'Image failed', 3, { error: 'Pipeline.StageFailed', cause: 'A stage failed.' }),
      ],
      { running: false },
    );
    expect(runs.get('Image')).toMatchObject({
      status: 'caught',
      error: 'States.TaskFailed',
      cause: '{"BuildStatus":"FAILED"}',
    });
    expect(runs.get('Image failed')).toMatchObject({ status: 'failed', error: 'Pipeline.StageFailed' });
  });

  it('after a redrive, colours the failed stage by its new attempt and forgets the Fail state of the old one', () => {
    const runs = stateRuns(
      [
        event('StateEntered', 'Image', 1),
        event('StateExited', 'Image', 2),
        event('StateEntered', 'Deploy', 3, { index: 1 }),
        event('StateFailed', 'Deploy', 4, { index: 1, error: 'States.TaskFailed' }),
        event('StateCaught', 'Deploy', 4, { index: 1 }),
        event('StateExited', 'Deploy', 4, { index: 1 }),
        event('StateEntered', 'Stage failed', 5, { index: 1 }),
        event('StateFailed', 'Stage failed', 5, { index: 1, error: 'Pipeline.StageFailed' }),
        { type: 'ExecutionRedriven', timestamp: at(9) },
        event('StateEntered', 'Deploy', 10, { index: 1 }),
        event('StateExited', 'Deploy', 11, { index: 1 }),
      ],
      { running: false },
    );
    expect(runs.get('Image')?.status).toBe('succeeded');
    expect(runs.get('Deploy')?.status).toBe('succeeded');
    expect(runs.get('Stage failed')?.status ?? 'not-reached').toBe('not-reached');
  });

  it('counts retries and calls a state that succeeded after one "retried"', () => {
    const runs = stateRuns(
      [
        event('StateEntered', 'Image', 1),
        event('StateFailed', 'Image', 2, { error: 'CodeBuild.ThrottlingException' }),
        event('StateRetried', 'Image', 2, { attempt: 1 }),
        event('StateExited', 'Image', 5),
      ],
      { running: true },
    );
    expect(runs.get('Image')).toMatchObject({ status: 'retried', retries: 1 });
    expect(runs.get('Image')?.error).toBeUndefined();
  });

  it('calls a state left unfinished by a run that ended "stopped"', () => {
    const runs = stateRuns([event('StateEntered', 'Deploy', 1, { index: 0 })], { running: false });
    expect(runs.get('Deploy')?.status).toBe('stopped');
  });

  it('keeps one outcome per Map iteration and shows the liveliest one on the state', () => {
    const runs = stateRuns(
      [
        event('StateEntered', 'Deploy', 1, { index: 0 }),
        event('StateExited', 'Deploy', 2, { index: 0 }),
        event('StateEntered', 'Deploy', 3, { index: 1 }),
      ],
      { running: true },
    );
    const deploy = runs.get('Deploy');
    expect(deploy?.status).toBe('running');
    expect(deploy?.iterations.map((i) => [i.index, i.status])).toEqual([
      [0, 'succeeded'],
      [1, 'running'],
    ]);
  });
});

describe('causeSummary', () => {
  it("reads a failed build's phase and message out of the build JSON", () => {
    const cause = JSON.stringify({
      Id: 'stepline-local-image:1',
      BuildStatus: 'FAILED',
      Phases: [
        { PhaseType: 'INSTALL', PhaseStatus: 'SUCCEEDED', Contexts: [] },
        {
          PhaseType: 'BUILD',
          PhaseStatus: 'FAILED',
          Contexts: [
            { StatusCode: 'COMMAND_EXECUTION_ERROR', Message: 'Error while executing command: npm test' },
          ],
        },
      ],
    });
    expect(causeSummary(cause)).toBe(
      'Build stepline-local-image:1 FAILED in BUILD: Error while executing command: npm test',
    );
  });

  it("reads a Lambda error's type and message", () => {
    expect(causeSummary('{"errorType":"TypeError","errorMessage":"x is undefined"}')).toBe(
      'TypeError: x is undefined',
    );
  });

  it('keeps the first line of a plain cause', () => {
    expect(causeSummary('A stage failed.\nmore')).toBe('A stage failed.');
  });
});

describe('iterationNames', () => {
  it("names a Map's iterations after the items the run input holds", () => {
    const names = iterationNames(PIPELINE, {
      settings: { environments: [{ name: 'dev' }, { name: 'prod' }] },
    });
    expect(names.get('Deploy')).toEqual(['dev', 'prod']);
    expect(names.get('Name stages')).toEqual(['dev', 'prod']);
    expect(names.has('Image')).toBe(false);
  });
});

describe('serveConsole', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    server = createServer((req, res) => {
      void serveConsole(req, res, new URL(req.url ?? '/', 'http://localhost')).then((served) => {
        if (!served) {
          res.writeHead(418);
          res.end();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const address = server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('serves the page with a policy that allows only its own origin', async () => {
    const response = await fetch(`${base}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await response.text();
    const references = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(references.filter((r) => r?.includes('//'))).toEqual([]);
    expect(references).toContain('/console/app.js');
  });

  it('serves the script bundled with its graph layout library', async () => {
    const response = await fetch(`${base}/console/app.js`);
    expect(response.headers.get('content-type')).toMatch(/^text\/javascript/);
    const script = await response.text();
    expect(script).toContain('EventSource');
    // Bundled: nothing is left for the browser to import from elsewhere.
    expect(script).not.toMatch(/\bfrom\s*["']@dagrejs/);
  });

  it('leaves every other path to the rest of the server', async () => {
    expect((await fetch(`${base}/api/runs`)).status).toBe(418);
    expect((await fetch(`${base}/`, { method: 'POST' })).status).toBe(418);
  });
});

describe('webLink', () => {
  it.each(['http://127.0.0.1:4811/', 'https://dev.acme.example/health?x=1'])('links %s', (url) => {
    expect(webLink(url)).toBe(new URL(url).href);
  });

  it.each([
    'javascript:alert(1)',
    ' JAVASCRIPT:alert(1)',
    '\tjava\nscript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'vbscript:msgbox(1)',
    'file:///etc/passwd',
    '//evil.example/',
    'not a url',
  ])('leaves %j as text', (text) => {
    expect(webLink(text)).toBeUndefined();
  });
});
