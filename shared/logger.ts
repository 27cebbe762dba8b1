import { Logger } from '@aws-lambda-powertools/logger';

/**
 * The one structured logger. A fixed message plus a data object; correlation keys (execution, commit,
 * delivery id) are appended per request with `logger.appendKeys`. Never log secrets, task tokens or
 * signatures.
 */
export function createLogger(serviceName: string): Logger {
  return new Logger({ serviceName });
}

export type { Logger };
