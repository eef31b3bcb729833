import { wireLimits } from './wire/message-table.js';

/**
 * The bounds of what a client request may ask for, checked at both edges that take one: the
 * HTTP query string (src/http) and the command line's flags (src/cli).
 */

/** The longest timeout a request may ask for (`timeout_ms`, `--timeout-ms`), matching limits.requestTimeoutMs's own bound. */
export const maxTimeoutMs = wireLimits.maxTimeoutMs;

/** The largest page a key listing may ask for (`limit`, `--limit`): what one list-keys reply may carry. */
export const maxListLimit = wireLimits.maxListKeys;
