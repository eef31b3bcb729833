/**
 * Operating errors: every one has a registered `KV_*` code, an HTTP status and a message that
 * tells the caller what to do. Programmer errors use `assert()` instead.
 */

/** Every error code ringkv answers with, mapped to its HTTP status. */
export const errorStatusByCode = {
  KV_BAD_PARAMETER: 400,
  KV_BAD_CONTEXT: 400,
  KV_BAD_REQUEST: 400,
  KV_KEY_TOO_LONG: 414,
  KV_BUCKET_TOO_LONG: 414,
  KV_VALUE_TOO_LARGE: 413,
  KV_OBJECT_TOO_LARGE: 413,
  KV_HEADERS_TOO_LARGE: 431,
  KV_UNSUPPORTED_ENCODING: 415,
  KV_NOT_FOUND: 404,
  KV_UNAUTHORIZED: 401,
  KV_FORBIDDEN: 403,
  KV_INSUFFICIENT_REPLICAS: 503,
  KV_OVERLOADED: 503,
  KV_NOT_READY: 503,
  KV_TIMEOUT: 504,
  KV_PEER_UNREACHABLE: 502,
  KV_BAD_CONFIG: 500,
  KV_STORAGE: 500,
  KV_UNKNOWN_NODE: 404,
  KV_CONFLICT: 409,
  KV_TOO_MANY_SIBLINGS: 409,
  KV_PRECONDITION_FAILED: 412,
  KV_TYPE_MISMATCH: 409,
  KV_CONSISTENT_BUCKET: 409,
  KV_SET_TOO_LARGE: 413,
  KV_COUNTER_OVERFLOW: 409,
  KV_BACKUP_INVALID: 422,
  KV_LEASE_NOT_FOUND: 404,
  KV_LEASE_FULL: 409,
  KV_INTERNAL: 500,
} as const;

/** A registered error code. */
export type KvErrorCode = keyof typeof errorStatusByCode;

/** An operating error with a registered code; the HTTP layer turns it into JSON. */
export class KvError extends Error {
  override readonly name = 'KvError';
  /** The HTTP status this code maps to. */
  readonly status: number;
  /** Extra machine-readable facts (for example how many replicas answered). */
  readonly details: Record<string, unknown> | undefined;
  /** Seconds a client should wait before retrying, for overload answers. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: KvErrorCode,
    message: string,
    options: { details?: Record<string, unknown>; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = errorStatusByCode[code];
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** The JSON body every error answer carries. */
  toJSON(): { error: { code: KvErrorCode; message: string; details?: Record<string, unknown> } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

/** True for a KvError (also across module copies, by shape). */
export function isKvError(error: unknown): error is KvError {
  return error instanceof KvError;
}
