import { createHmac, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Logger } from '@aws-lambda-powertools/logger';
import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { type BenchSection, median, percentile } from './table.ts';

const DELIVERIES = 5000;
const WARM_UP = 200;
const SECRET = 'bench-webhook-secret';
const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:stepline-bench-pipeline';

const context = {
  functionName: 'stepline-bench-webhook',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:stepline-bench-webhook',
  memoryLimitInMB: '256',
  awsRequestId: 'bench',
  logGroupName: '/aws/lambda/stepline-bench-webhook',
  logStreamName: 'bench',
  callbackWaitsForEmptyEventLoop: false,
  getRemainingTimeInMillis: () => 10_000,
} as Context;

/** A GitHub push delivery as API Gateway hands it over, signed like GitHub signs it. */
function signedDelivery(body: string): APIGatewayProxyEventV2 {
  const signature = `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
  return {
    version: '2.0',
    routeKey: 'POST /webhooks/{provider}',
    rawPath: '/webhooks/github',
    rawQueryString: '',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'GitHub-Hookshot/bench',
      'x-github-event': 'push',
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': signature,
    },
    pathParameters: { provider: 'github' },
    requestContext: {
      http: {
        method: 'POST',
        path: '/webhooks/github',
        protocol: 'HTTP/1.1',
        sourceIp: '192.0.2.1',
        userAgent: 'bench',
      },
    } as APIGatewayProxyEventV2['requestContext'],
    body,
    isBase64Encoded: false,
  };
}

/**
 * The webhook handler in-process: signature check, normalization, trigger filters and the StartExecution
 * call (answered by aws-sdk-client-mock), over 5000 signed GitHub push deliveries handled one after another.
 */
export async function webhookThroughput(): Promise<BenchSection> {
  const [
    { createWebhookHandler },
    { SfnPipelineStarter },
    { TriggersSchema },
    { PipelineSettingsSchema },
    { DynamoLineStore },
  ] = await Promise.all([
    import('#shared/handlers/webhook.ts'),
    import('#shared/aws/sfn.ts'),
    import('#shared/triggers.ts'),
    import('#shared/pipeline.ts'),
    import('#shared/aws/dynamodb.ts'),
  ]);
  let pushes = 0;
  const dynamo = mockClient(DynamoDBClient);
  dynamo.on(UpdateItemCommand).callsFake(() => ({ Attributes: { sequence: { N: String(++pushes) } } }));

  const sfn = mockClient(SFNClient);
  sfn.on(StartExecutionCommand).callsFake((input: { name: string }) => ({
    executionArn: `${STATE_MACHINE_ARN.replace(':stateMachine:', ':execution:')}:${input.name}`,
    startDate: new Date(),
  }));
  const handler = createWebhookHandler({
    starter: new SfnPipelineStarter(new SFNClient({ region: 'eu-west-1' }), STATE_MACHINE_ARN),
    lines: new DynamoLineStore(new DynamoDBClient({ region: 'eu-west-1' }), 'stepline-bench-release'),
    triggers: TriggersSchema.parse({ push: [{ branches: { includes: ['**'] } }] }),
    settings: PipelineSettingsSchema.parse({}),
    // Printing 10 000 log lines would measure the terminal, not the handler.
    logger: new Logger({ serviceName: 'stepline', logLevel: 'SILENT' }),
    webhookSecrets: { github: { current: async () => SECRET, fetchAgain: async () => SECRET } },
    runStopper: { stopRunning: async () => [] },
    builds: 'codebuild',
  });

  const push = await readFile(
    new URL('../test/fixtures/github/go-playground-push.json', import.meta.url),
    'utf8',
  );
  const deliveries = Array.from({ length: WARM_UP + DELIVERIES }, () => signedDelivery(push));
  const latencies: number[] = [];
  let started = 0;
  let wallStart = 0;
  for (const [index, delivery] of deliveries.entries()) {
    if (index === WARM_UP) wallStart = performance.now();
    const before = performance.now();
    const response = (await handler(delivery, context)) as { statusCode: number };
    if (index >= WARM_UP) {
      latencies.push(performance.now() - before);
      if (response.statusCode === 202) started++;
    }
  }
  const wall = performance.now() - wallStart;
  const calls = sfn.commandCalls(StartExecutionCommand).length;
  sfn.restore();
  dynamo.restore();
  if (started !== DELIVERIES || calls !== WARM_UP + DELIVERIES) {
    throw new Error(`expected ${DELIVERIES} started runs, got ${started} (StartExecution calls: ${calls})`);
  }
  return {
    title: 'Webhook handler in-process (verify + normalize + filter + start)',
    columns: ['deliveries', 'per second', 'median', 'p99'],
    rows: [
      [
        String(DELIVERIES),
        Math.round((DELIVERIES / wall) * 1000).toLocaleString('en'),
        `${(median(latencies) * 1000).toFixed(0)} µs`,
        `${(percentile(latencies, 0.99) * 1000).toFixed(0)} µs`,
      ],
    ],
    notes: [
      `signed GitHub push deliveries (${Buffer.byteLength(push)} B body), one after another, after ${WARM_UP} warm-up`,
      'StartExecution answered by aws-sdk-client-mock; logger at SILENT level; every delivery started a run (202)',
    ],
  };
}
