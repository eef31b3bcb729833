import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import { KvError } from '../util/errors.js';
import { queryStringError } from './query-parameters.js';

/**
 * Every answer that is not a success goes through here, so a client always gets the documented
 * JSON shape `{"error": {"code": "KV_...", "message": "..."}}` and a registered status, whatever
 * raised the error: our own validation, the service, or fastify itself.
 */

/** The generic message of an unexpected failure; the details go to the log, never to the client. */
const internalMessage = 'the node hit an unexpected error (see its log); a write may or may not have been applied, so read the key before retrying';

/** The same for a request that writes nothing (a GET or HEAD): there is nothing to check before retrying. */
const internalReadMessage = 'the node hit an unexpected error (see its log); a read changes nothing, so retry it, on another node if this one keeps failing';

/**
 * The raw HTTP answer to a request Node's parser refused before fastify saw it, in the
 * documented error shape: a request line and headers over Node's 16 KiB limit (a 100 KB key in
 * the URL) is 431 KV_HEADERS_TOO_LARGE; anything else unparsable is 400 KV_BAD_REQUEST.
 */
export function clientErrorAnswer(error: Error & { code?: string }): string {
  const kvError =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? new KvError(
          'KV_HEADERS_TOO_LARGE',
          "the request line and headers are over the node's 16 KiB limit; a key or bucket is at most limits.maxKeyBytes / limits.maxBucketBytes bytes, so shorten the key (or the headers)",
        )
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new KvError('KV_BAD_REQUEST', "the request did not arrive in full before the server's request timeout; send it again")
        : new KvError('KV_BAD_REQUEST', `the request is not valid HTTP/1.1 (${String(error.code ?? 'unparsable').slice(0, 40)}); send a well-formed request`);
  const body = JSON.stringify(kvError.toJSON());
  return `HTTP/1.1 ${kvError.status} ${STATUS_CODES[kvError.status] ?? 'Error'}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`;
}

/** The fastify errors a client can cause, mapped to what they mean for a ringkv client. */
function fromFastifyError(error: { code: string; message: string; statusCode?: number }, request: FastifyRequest): KvError | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new KvError(
        'KV_VALUE_TOO_LARGE',
        `the request body is over the limit of ${request.routeOptions.bodyLimit ?? '(unknown)'} bytes (limits.maxValueBytes for a value)`,
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new KvError('KV_BAD_REQUEST', 'the body does not match its content-length header; send the exact length or use chunked encoding');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return new KvError('KV_BAD_REQUEST', 'the content-type header is not a valid media type (type/subtype); fix it or leave it out');
    case 'FST_ERR_BAD_URL':
      return new KvError('KV_BAD_REQUEST', 'the URL is not valid percent-encoding; encode the bucket and key with encodeURIComponent');
    case 'FST_ERR_VALIDATION': {
      // The route schemas (route-schemas.ts): a query parameter or path segment is a bad parameter, anything else a bad request.
      const context = (error as { validationContext?: string }).validationContext;
      const issues = (error as { validation?: Parameters<typeof queryStringError>[0] }).validation;
      if (context === 'querystring' && issues !== undefined) return queryStringError(issues, request);
      const code = context === 'querystring' || context === 'params' ? 'KV_BAD_PARAMETER' : 'KV_BAD_REQUEST';
      return new KvError(code, `${error.message.slice(0, 300)}; GET /openapi.json describes what every route takes`);
    }
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new KvError('KV_KEY_TOO_LONG', 'a path segment is too long; see limits.maxKeyBytes and limits.maxBucketBytes');
    default:
      // Any other client-side fastify error (aborted upload, bad header, ...) is a malformed request.
      if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
        return new KvError('KV_BAD_REQUEST', `malformed request: ${error.message}; fix the request (GET /openapi.json describes what every route takes)`);
      }
      return undefined;
  }
}

function hasFastifyShape(error: unknown): error is { code: string; message: string; statusCode?: number } {
  const code: unknown = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('FST_');
}

/** Turns anything thrown while serving `request` into a KvError; unexpected errors are logged and become KV_INTERNAL. */
export function toKvError(error: unknown, request: FastifyRequest, log: FastifyBaseLogger): KvError {
  if (error instanceof KvError) return error;
  const mapped = hasFastifyShape(error) ? fromFastifyError(error, request) : undefined;
  if (mapped !== undefined) return mapped;
  log.error({ err: error, method: request.method, url: request.url }, 'unexpected error while serving a request');
  return new KvError('KV_INTERNAL', request.method === 'GET' || request.method === 'HEAD' ? internalReadMessage : internalMessage);
}

/** The KV_INTERNAL error a peer reply or an HTTP answer carries for an unexpected failure. */
export function internalError(): KvError {
  return new KvError('KV_INTERNAL', internalMessage);
}

/** Sends `error` as the documented JSON body with its status and, for load shedding, Retry-After. */
export function sendKvError(reply: FastifyReply, error: KvError): FastifyReply {
  if (error.retryAfterSeconds !== undefined) reply.header('retry-after', String(Math.max(0, Math.ceil(error.retryAfterSeconds))));
  return reply.code(error.status).type('application/json; charset=utf-8').send(error.toJSON());
}
