import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { InvalidInputError, isClientError, PayloadTooLargeError } from './errors.ts';
import type { Logger } from './logger.ts';

export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResult = APIGatewayProxyStructuredResultV2;

/** Headers with lower-cased names, so that lookups by name are exact. */
export function lowerCaseHeaders(
  headers: Record<string, string | undefined> | undefined,
): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers ?? {})) {
    if (value !== undefined) result[key.toLowerCase()] = value;
  }
  return result;
}

/**
 * The request body's raw bytes, as the sender signed them, refusing bodies over `maxBytes` before decoding
 * anything else.
 */
export function rawBody(event: Pick<HttpEvent, 'body' | 'isBase64Encoded'>, maxBytes: number): Buffer {
  const body = event.body ?? '';
  // Refuse from the encoded length alone, so a huge body is never decoded: every UTF-16 unit is at least
  // one byte, and base64 spends 4 characters per 3 bytes.
  const encodedLimit = event.isBase64Encoded ? Math.ceil(maxBytes / 3) * 4 : maxBytes;
  if (body.length > encodedLimit) throw tooLarge(maxBytes);
  const bytes = event.isBase64Encoded ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8');
  if (bytes.length > maxBytes) throw tooLarge(maxBytes);
  return bytes;
}

function tooLarge(maxBytes: number): PayloadTooLargeError {
  return new PayloadTooLargeError(`The request body is over the limit of ${maxBytes} bytes`);
}

/** A JSON response. */
export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): HttpResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(body),
  };
}

/**
 * Maps an error to a JSON response: a client error's own status and message, anything else a generic 500
 * (logged with its details, which never reach the caller).
 */
export function jsonError(error: unknown, logger: Logger): HttpResult {
  if (isClientError(error)) {
    logger.info('Request refused', { status: error.status, error: error.name, reason: error.message });
    return json(error.status, { error: error.name, message: error.message });
  }
  logger.error('Request failed', error as Error);
  return json(500, {
    error: 'InternalError',
    message: 'Something went wrong on our side; the request was not accepted.',
  });
}

/**
 * Parses a webhook body as JSON, or GitHub's form encoding (`payload=<json>`) when the content type says so.
 * Malformed input is a 400 naming what is wrong.
 */
export function parseJsonBody(body: Buffer, contentType: string | undefined): unknown {
  let text = body.toString('utf8');
  if (contentType?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    const payload = new URLSearchParams(text).get('payload');
    if (payload === null) throw new InvalidInputError('The form-encoded body has no payload field');
    text = payload;
  }
  if (text.trim() === '')
    throw new InvalidInputError('The request body is empty; a JSON payload is expected');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidInputError(`The request body is not valid JSON (${(error as Error).message})`);
  }
}
