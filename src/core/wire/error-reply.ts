import { isKvError } from '../../util/errors.js';
import type { ErrorReply } from './messages.js';
import { wireLimits } from './message-table.js';

/**
 * The error reply a peer answers when serving a request failed: the one mapping every path uses
 * (`PeerService.handle`, `FramedPeerServer` and the simulator's `SimulatedNetwork`), so a
 * simulation hears exactly what a production node would send. A `KvError` is an answer: its
 * code and message say what to do. Anything else is a bug of the serving node: `onUnexpected`
 * is told (to log it with its stack), and the reply carries no message of it, which may hold
 * internals.
 */
export function peerErrorReply(error: unknown, onUnexpected: (error: unknown) => void): ErrorReply {
  if (isKvError(error)) {
    // The details and Retry-After travel too: a forwarded write's client acts on them (details.written, details.applied).
    const details = error.details === undefined ? undefined : JSON.stringify(error.details);
    return {
      type: 'error',
      code: error.code,
      message: error.message,
      ...(details === undefined || Buffer.byteLength(details) > wireLimits.maxErrorDetailsBytes ? {} : { details }),
      ...(error.retryAfterSeconds === undefined
        ? {}
        : { retryAfterSeconds: Math.min(Math.max(0, Math.ceil(error.retryAfterSeconds)), wireLimits.maxRetryAfterSeconds) }),
    };
  }
  onUnexpected(error);
  return { type: 'error', code: 'KV_INTERNAL', message: 'an unexpected error happened on the peer; its log has the details' };
}

/**
 * The reply to a request frame whose message does not decode: the framing is intact, so only this
 * request is refused, with what the decoder found.
 */
export function undecodableRequestReply(error: unknown): ErrorReply {
  return { type: 'error', code: 'KV_BAD_REQUEST', message: error instanceof Error ? error.message : String(error) };
}

/** An error reply's details as KvError.details: the JSON object text a peer sent, or nothing when it is not one. */
export function errorReplyDetails(reply: ErrorReply): Record<string, unknown> | undefined {
  if (reply.details === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(reply.details);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
