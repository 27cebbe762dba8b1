import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NormalizedSchema } from '@smithy/core/schema';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defaultProvider } from '#shared/aws/lambda-credentials.ts';
import { EventStreamSerde, eventStreamSerdeProvider } from '#shared/aws/no-event-streams.ts';

/**
 * The two SDK parts serverless.yml's esbuild `alias` leaves out of the Lambda bundles: the credential chain
 * past the environment, and the event-stream support (test/template/bundles.test.ts checks the bundles).
 */

const SHARED = fileURLToPath(new URL('../../shared/', import.meta.url));

/** Every `*Command` (or paginator's command) that a module of shared/ imports from an AWS SDK client. */
async function commandsSent(): Promise<{ client: string; command: string }[]> {
  const files = (await readdir(SHARED, { recursive: true })).filter((file) => file.endsWith('.ts'));
  const found = new Map<string, { client: string; command: string }>();
  for (const file of files) {
    const source = await readFile(join(SHARED, file), 'utf8');
    for (const [, names = '', client = ''] of source.matchAll(
      /import\s*\{([^}]*)\}\s*from\s*'(@aws-sdk\/client-[a-z0-9-]+)'/g,
    )) {
      for (const name of names.split(',').map((part) => part.replace(/^\s*type\s+/, '').trim())) {
        const command = name.endsWith('Command')
          ? name
          : name.startsWith('paginate')
            ? `${name.slice('paginate'.length)}Command`
            : undefined;
        if (command) found.set(`${client} ${command}`, { client, command });
      }
    }
  }
  return [...found.values()];
}

/** True when the command's operation has an event stream in its input or output, as the SDK decides it. */
async function streamsEvents(client: string, command: string): Promise<boolean> {
  const module = (await import(client)) as Record<string, new (input: object) => { schema?: unknown }>;
  const Command = module[command];
  if (Command === undefined) throw new Error(`${client} exports no ${command}`);
  const schema = new Command({}).schema;
  if (!Array.isArray(schema)) throw new Error(`${command} has no operation schema`);
  const [, , , , input, output] = schema;
  return [input, output].some((member) => NormalizedSchema.of(member).getEventStreamMember() !== '');
}

describe('the event streams left out of the bundles', () => {
  it('are needed by no operation that shared/ sends', async () => {
    const commands = await commandsSent();
    expect(commands.map(({ command }) => command)).toEqual(
      expect.arrayContaining(['PublishCommand', 'StartExecutionCommand', 'GetParameterCommand']),
    );
    const streaming: string[] = [];
    for (const { client, command } of commands) {
      if (await streamsEvents(client, command)) streaming.push(command);
    }

    expect(streaming).toEqual([]);
  });

  it('are seen where an operation does stream events', async () => {
    expect(await streamsEvents('@aws-sdk/client-lambda', 'InvokeWithResponseStreamCommand')).toBe(true);
    expect(await streamsEvents('@aws-sdk/client-lambda', 'InvokeCommand')).toBe(false);
  });

  it('fail loudly, naming what was left out, if an operation ever needs them', () => {
    expect(() => new EventStreamSerde()).toThrow(/event-streams is left out .* esbuild alias/);
    expect(() => eventStreamSerdeProvider()).toThrow(/event-streams is left out/);
  });
});

describe('the credential provider of the bundles', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("returns the execution role's credentials Lambda puts in the environment", async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'ASIAEXAMPLEKEY');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'example-secret');
    vi.stubEnv('AWS_SESSION_TOKEN', 'example-token');

    await expect(defaultProvider()()).resolves.toMatchObject({
      accessKeyId: 'ASIAEXAMPLEKEY',
      secretAccessKey: 'example-secret',
      sessionToken: 'example-token',
    });
  });

  it('fails, as the SDK fails, when the environment holds no credentials', async () => {
    vi.stubEnv('AWS_ACCESS_KEY_ID', '');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', '');

    await expect(defaultProvider()()).rejects.toThrow(/environment variable credentials/);
  });
});
