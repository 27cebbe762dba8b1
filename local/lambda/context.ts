import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';
import type { LocalFunction } from '../wiring.ts';

/** The account every local ARN names (no AWS account is involved). */
export const LOCAL_ACCOUNT = '000000000000';

/** The context Lambda passes a function, for local invocations. */
export function lambdaContext(fn: Pick<LocalFunction, 'name'>): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: fn.name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:${LOCAL_ACCOUNT}:function:${fn.name}`,
    memoryLimitInMB: '256',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${fn.name}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
