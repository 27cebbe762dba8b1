import { Logger } from '@aws-lambda-powertools/logger';

/** A Powertools log level: `DEBUG`, `INFO`, `WARN`, `ERROR`, `SILENT`… */
export type LogLevel = NonNullable<NonNullable<ConstructorParameters<typeof Logger>[0]>['logLevel']>;

/**
 * The one structured logger. A fixed message plus a data object; correlation keys (execution, commit,
 * delivery id) are appended per request with `logger.appendKeys`. Never log secrets, task tokens or
 * signatures. Without `logLevel`, Powertools reads `POWERTOOLS_LOG_LEVEL` (Lambda's configuration).
 */
export function createLogger(serviceName: string, logLevel?: LogLevel): Logger {
  return new Logger({ serviceName, ...(logLevel ? { logLevel } : {}) });
}

export type { Logger };
