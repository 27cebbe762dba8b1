import {
  ConditionalCheckFailedException,
  type DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { LineStore } from '../ports.ts';
import { emptyLine, type LineState, LineStateSchema } from '../release.ts';

/**
 * The lines' release state in one DynamoDB table (on-demand, point-in-time recovery: serverless.yml),
 * one item per line keyed by `line`: `sequence` (the push counter), `version` and `state` (JSON).
 *
 * One item per line makes every decision about a line one conditional write: a transition replaces
 * `state` only if `version` is still the one it read (UpdateItem with a ConditionExpression, which fails
 * with ConditionalCheckFailedException otherwise:
 * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html),
 * so no two items ever have to change together. The push counter is an atomic `ADD` on the same item
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.AtomicCounters),
 * which leaves `state` and `version` alone. Reads are strongly consistent (`ConsistentRead`), so a
 * transition never decides on a state older than the last write. An item holds up to 400 KB
 * (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html#limits-items):
 * a line's runs leave it when they end, and each waiting run keeps one task token (at most 2 KiB).
 */
export class DynamoLineStore implements LineStore {
  readonly #client: DynamoDBClient;
  readonly #table: string;

  constructor(client: DynamoDBClient, table: string) {
    this.#client = client;
    this.#table = table;
  }

  async nextSequence(line: string): Promise<number> {
    const output = await this.#client.send(
      new UpdateItemCommand({
        TableName: this.#table,
        Key: { line: { S: line } },
        UpdateExpression: 'ADD #sequence :one',
        ExpressionAttributeNames: { '#sequence': 'sequence' },
        ExpressionAttributeValues: { ':one': { N: '1' } },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    const value = Number(output.Attributes?.sequence?.N);
    if (!Number.isInteger(value) || value < 1) throw new Error(`No push number came back for ${line}`);
    return value;
  }

  async read(line: string): Promise<{ state: LineState; version: number }> {
    const output = await this.#client.send(
      new GetItemCommand({
        TableName: this.#table,
        Key: { line: { S: line } },
        ConsistentRead: true,
        ProjectionExpression: '#state, #version',
        ExpressionAttributeNames: { '#state': 'state', '#version': 'version' },
      }),
    );
    const stored = output.Item?.state?.S;
    const version = Number(output.Item?.version?.N ?? '0');
    if (stored === undefined) return { state: emptyLine(line), version };
    return { state: LineStateSchema.parse(JSON.parse(stored)), version };
  }

  async write(line: string, state: LineState, version: number): Promise<boolean> {
    try {
      await this.#client.send(
        new UpdateItemCommand({
          TableName: this.#table,
          Key: { line: { S: line } },
          UpdateExpression: 'SET #state = :state, #version = :next',
          ConditionExpression: version === 0 ? 'attribute_not_exists(#version)' : '#version = :expected',
          ExpressionAttributeNames: { '#state': 'state', '#version': 'version' },
          ExpressionAttributeValues: {
            ':state': { S: JSON.stringify(state) },
            ':next': { N: String(version + 1) },
            ...(version === 0 ? {} : { ':expected': { N: String(version) } }),
          },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
