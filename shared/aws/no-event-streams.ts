/**
 * What the Lambda bundles hold in place of `@smithy/core/event-streams` (serverless.yml's esbuild `alias`).
 * The SDK's HTTP protocols import it on demand, for operations whose input or output is an event stream
 * (Transcribe streaming, Lambda's InvokeWithResponseStream…); none of the operations stepline sends is one
 * (test/unit/aws-bundle.test.ts checks every command shared/aws sends). Bundled, the module and the CRC32
 * checksum it needs, which loads `node:zlib`, would be compiled at each cold start for nothing.
 */
const LEFT_OUT =
  "@smithy/core/event-streams is left out of stepline's Lambda bundles (serverless.yml, esbuild alias): an operation that streams events needs it back";

export class EventStreamSerde {
  constructor() {
    throw new Error(LEFT_OUT);
  }
}

export function eventStreamSerdeProvider(): never {
  throw new Error(LEFT_OUT);
}
