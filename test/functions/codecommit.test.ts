import { readFileSync } from 'node:fs';
import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DynamoLineStore } from '#shared/aws/dynamodb.ts';
import { SfnPipelineStarter } from '#shared/aws/sfn.ts';
import { createCodeCommitHandler } from '#shared/handlers/codecommit.ts';
import type { PushOutcome } from '#shared/ingest.ts';
import { createLogger } from '#shared/logger.ts';
import { ExecutionInputSchema, PipelineSettingsSchema } from '#shared/pipeline.ts';
import { TriggersSchema } from '#shared/triggers.ts';
import { lambdaContext } from '../helpers/lambda.ts';

const sfn = mockClient(SFNClient);
const dynamo = mockClient(DynamoDBClient);
const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../fixtures/codecommit/${name}`, import.meta.url), 'utf8'));
const created = fixture('awsdocs-codecommit.00.CodeCommit-Repository-State-Change.referenceCreated.json');
const deleted = fixture('awsdocs-codecommit.02.CodeCommit-Repository-State-Change.referenceDeleted.json');
const mergeCommit = fixture(
  'awsdocs-codecommit.03.CodeCommit-Repository-State-Change.unreferencedMergeCommitCreated.json',
);

type Handler = (event: unknown, context: unknown) => Promise<PushOutcome[]>;
let handler: Handler;

beforeAll(() => {
  vi.stubEnv('POWERTOOLS_LOG_LEVEL', 'SILENT');
  handler = createCodeCommitHandler({
    starter: new SfnPipelineStarter(
      new SFNClient({}),
      'arn:aws:states:us-east-2:123456789012:stateMachine:stepline-test-pipeline',
    ),
    lines: new DynamoLineStore(new DynamoDBClient({}), 'stepline-test-release'),
    // Every branch, so the docs' sample branch names start runs.
    triggers: TriggersSchema.parse({ push: [{ branches: { includes: ['**'] } }] }),
    settings: PipelineSettingsSchema.parse({}),
    logger: createLogger('codecommit'),
  }) as unknown as Handler;
});

beforeEach(() => {
  sfn.reset();
  dynamo.reset();
  // The line's push counter: this push is the line's 7th.
  dynamo.on(UpdateItemCommand).resolves({ Attributes: { sequence: { N: '7' } } });
  sfn.on(StartExecutionCommand).resolves({ executionArn: 'arn:aws:states:us-east-2:1:execution:p:n' });
});

describe('CodeCommit Repository State Change', () => {
  it('starts a run for a created branch with the CodeCommit source', async () => {
    const outcomes = await handler(created, lambdaContext());
    expect(outcomes).toEqual([
      expect.objectContaining({ outcome: 'started', ref: created.detail.referenceFullName }),
    ]);
    const input = ExecutionInputSchema.parse(
      JSON.parse(sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input.input ?? ''),
    );
    expect(input.source).toEqual({
      type: 'CODECOMMIT',
      location: `https://git-codecommit.us-east-2.amazonaws.com/v1/repos/${created.detail.repositoryName}`,
      version: created.detail.commitId,
    });
    // Numbered in its line (repository and ref) before it starts: the atomic counter's new value.
    expect(input.sequence).toBe(7);
    expect(dynamo).toHaveReceivedCommandWith(UpdateItemCommand, {
      TableName: 'stepline-test-release',
      Key: { line: { S: `codecommit:${created.detail.repositoryName}:${created.detail.referenceFullName}` } },
      UpdateExpression: 'ADD #sequence :one',
    });
    expect(input.deliveryId).toBe(created.id);
  });

  it('starts nothing new when EventBridge delivers the same event again', async () => {
    sfn
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: 'arn:x' })
      .rejects(new ExecutionAlreadyExists({ message: 'exists', $metadata: {} }));
    await handler(created, lambdaContext());
    const again = await handler(structuredClone(created), lambdaContext());
    expect(again).toEqual([expect.objectContaining({ outcome: 'already-started' })]);
  });

  it('starts nothing for a deleted branch', async () => {
    expect(await handler(deleted, lambdaContext())).toEqual([
      expect.objectContaining({ outcome: 'skipped', reason: expect.stringMatching(/deleted/) }),
    ]);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('starts nothing for events that are not reference changes', async () => {
    expect(await handler(mergeCommit, lambdaContext())).toEqual([]);
    expect(sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 0);
  });

  it('throws a named error for an event that is not a CodeCommit change', async () => {
    await expect(
      handler({ 'detail-type': 'Something else', detail: {} }, lambdaContext()),
    ).rejects.toMatchObject({
      name: 'InvalidInputError',
    });
  });
});
