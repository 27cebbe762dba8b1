import { awsReleaseLedger } from '#shared/aws/release.ts';
import { requireEnv } from '#shared/config.ts';
import { createHoldsHandler, type HoldsDeps } from '#shared/handlers/holds.ts';
import { createLogger } from '#shared/logger.ts';

function awsDeps(): HoldsDeps {
  const logger = createLogger('holds');
  const repository = requireEnv('IMAGE_REPOSITORY_URI');
  return {
    ledger: awsReleaseLedger(logger),
    logger,
    now: () => new Date(),
    // For a Leave without the image URI: the shipped image buildspec tags each image with its full commit
    // (buildspecs/image.yml).
    images: { imageOf: async ({ commit }) => `${repository}:${commit}` },
  };
}

export const handler = createHoldsHandler(awsDeps());
