import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { DynamoLineStore } from '#shared/aws/dynamodb.ts';
import { emptyLine, joinLine, type LineState } from '#shared/release.ts';

const TABLE = 'stepline-test-release';
const LINE = 'github:acme/shop:refs/heads/main';
const dynamo = mockClient(DynamoDBClient);
const state: LineState = joinLine(
  emptyLine(LINE),
  {
    executionArn: 'arn:aws:states:eu-west-1:123456789012:execution:stepline-test-pipeline:run-1',
    sequence: 1,
    commit: '1'.repeat(40),
    plan: [{ name: 'dev', approval: false }],
  },
  'QUEUED',
).state;

describe('DynamoLineStore', () => {
  const store = new DynamoLineStore(new DynamoDBClient({}), TABLE);
  beforeEach(() => dynamo.reset());

  it('numbers pushes with an atomic ADD that leaves the state alone', async () => {
    dynamo.on(UpdateItemCommand).resolves({ Attributes: { sequence: { N: '12' } } });

    expect(await store.nextSequence(LINE)).toBe(12);
    expect(dynamo).toHaveReceivedCommandWith(UpdateItemCommand, {
      TableName: TABLE,
      Key: { line: { S: LINE } },
      UpdateExpression: 'ADD #sequence :one',
      ExpressionAttributeNames: { '#sequence': 'sequence' },
      ExpressionAttributeValues: { ':one': { N: '1' } },
      ReturnValues: 'UPDATED_NEW',
    });
  });

  it('reads strongly consistent, and an absent line is empty at version 0', async () => {
    dynamo.on(GetItemCommand).resolves({});

    expect(await store.read(LINE)).toEqual({ state: emptyLine(LINE), version: 0 });
    expect(dynamo).toHaveReceivedCommandWith(GetItemCommand, {
      ConsistentRead: true,
      Key: { line: { S: LINE } },
    });
  });

  it('creates the state only where no version exists (the counter may already be there)', async () => {
    dynamo.on(UpdateItemCommand).resolves({});

    expect(await store.write(LINE, state, 0)).toBe(true);
    const input = dynamo.commandCalls(UpdateItemCommand)[0]?.args[0].input;
    expect(input).toMatchObject({
      UpdateExpression: 'SET #state = :state, #version = :next',
      ConditionExpression: 'attribute_not_exists(#version)',
      ExpressionAttributeValues: { ':state': { S: JSON.stringify(state) }, ':next': { N: '1' } },
    });
  });

  it('replaces the state only at the version read, and says false when another writer came first', async () => {
    dynamo
      .on(UpdateItemCommand)
      .rejects(
        new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
      );

    expect(await store.write(LINE, state, 3)).toBe(false);
    expect(dynamo).toHaveReceivedCommandWith(UpdateItemCommand, {
      ConditionExpression: '#version = :expected',
      ExpressionAttributeValues: expect.objectContaining({ ':expected': { N: '3' }, ':next': { N: '4' } }),
    });
  });

  it('lets any other DynamoDB error through', async () => {
    dynamo.on(UpdateItemCommand).rejects(new Error('ProvisionedThroughputExceededException'));
    await expect(store.write(LINE, state, 3)).rejects.toThrow('ProvisionedThroughputExceededException');
  });

  it('reads back what it wrote', async () => {
    dynamo.on(GetItemCommand).resolves({
      Item: {
        line: { S: LINE },
        sequence: { N: '5' },
        version: { N: '2' },
        state: { S: JSON.stringify(state) },
      },
    });
    expect(await store.read(LINE)).toEqual({ state, version: 2 });
  });
});
