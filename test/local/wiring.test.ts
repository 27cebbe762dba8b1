import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { matchRoute } from '#local/lambda/routes.ts';
import { readWiring, resolveReferences, type Wiring } from '#local/wiring.ts';

const projectDir = fileURLToPath(new URL('../..', import.meta.url));
let wiring: Wiring;

beforeAll(async () => {
  wiring = await readWiring(projectDir);
});

describe('readWiring (serverless.yml through serverless print)', () => {
  it('finds every function with its module, routes and rules', () => {
    const byKey = Object.fromEntries(wiring.functions.map((fn) => [fn.key, fn]));
    expect(Object.keys(byKey).sort()).toEqual(
      [
        'approval',
        'approvalRequest',
        'buildEvents',
        'codecommit',
        'holds',
        'commitStatus',
        'notify',
        'pipelineEvents',
        'webhook',
      ].sort(),
    );
    expect(byKey.webhook).toMatchObject({
      name: 'stepline-local-webhook',
      module: 'functions/webhook.ts',
      http: [{ method: 'POST', path: '/webhooks/{provider}' }],
    });
    expect(byKey.approval?.http).toEqual([
      { method: 'GET', path: '/approvals/{token}' },
      { method: 'POST', path: '/approvals/{token}' },
    ]);
    expect(byKey.buildEvents?.eventBridge[0]).toMatchObject({
      source: ['aws.codebuild'],
      detail: { 'project-name': expect.arrayContaining(['stepline-local-image']) },
    });
    // The commit statuses' rules: the pipeline's execution status changes and its builds' state changes.
    expect(byKey.commitStatus?.eventBridge.map((pattern) => pattern.source)).toEqual([
      ['aws.states'],
      ['aws.codebuild'],
    ]);
  });

  it('resolves the state machines with their deployed names', () => {
    expect(wiring.machines.pipeline?.name).toBe('stepline-local-pipeline');
    expect(JSON.stringify(wiring.machines.pipeline?.definition)).not.toContain('${');
    expect(JSON.stringify(wiring.machines.pipeline?.definition)).toContain('stepline-local-image');
  });

  it('takes build timeouts from the CodeBuild projects', () => {
    expect(wiring.buildTimeouts['stepline-local-image']).toBeGreaterThan(0);
  });

  it('passes parameters to the framework as a deploy does', async () => {
    const triggers = JSON.stringify({ push: [{ tags: { includes: ['v*'] } }] });
    const withParams = await readWiring(projectDir, { params: [`triggers=${triggers}`] });
    const webhook = withParams.functions.find((fn) => fn.key === 'webhook');
    expect(webhook?.environment.STEPLINE_TRIGGERS).toBe(triggers);
  });
});

describe('resolveReferences', () => {
  it('replaces Ref and GetAtt with local stand-ins', () => {
    expect(
      resolveReferences(
        { a: { Ref: 'PipelineStateMachine' }, b: [{ 'Fn::GetAtt': ['Topic', 'Arn'] }], c: 'x' },
        { PipelineStateMachine: 'arn:local:sm' },
      ),
    ).toEqual({ a: 'arn:local:sm', b: ['local:Topic'], c: 'x' });
  });
});

describe('matchRoute', () => {
  it('matches path parameters and decodes them', () => {
    expect(matchRoute('/approvals/{token}', '/approvals/a%2Fb')).toEqual({ token: 'a/b' });
    expect(matchRoute('/webhooks/{provider}', '/webhooks/github')).toEqual({ provider: 'github' });
  });

  it('refuses other paths and empty parameters', () => {
    expect(matchRoute('/webhooks/{provider}', '/webhooks/')).toBeUndefined();
    expect(matchRoute('/webhooks/{provider}', '/webhooks/github/x')).toBeUndefined();
    expect(matchRoute('/webhooks/{provider}', '/approvals/github')).toBeUndefined();
  });
});
