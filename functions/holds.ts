import { awsReleaseLedger } from '#shared/aws/release.ts';
import { createHoldsHandler, type HoldsDeps } from '#shared/handlers/holds.ts';
import { createLogger } from '#shared/logger.ts';

function awsDeps(): HoldsDeps {
  const logger = createLogger('holds');
  return { ledger: awsReleaseLedger(logger), logger, now: () => new Date() };
}

export const handler = createHoldsHandler(awsDeps());
