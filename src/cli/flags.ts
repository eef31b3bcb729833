import { maxTtlSeconds } from '../core/versioning/versioned-object.js';
import { maxListLimit, maxTimeoutMs } from '../core/client-limits.js';
import { KvError } from '../util/errors.js';
import { maxNVal } from '../core/buckets.js';

/**
 * Parsers of the `ringkv` command's numeric flags. A value out of range is refused before any
 * request is sent, with one line naming the flag, the accepted range and what was typed
 * (`ringkv: --timeout-ms must be an integer from 1 to 600000 (milliseconds), got 'x'`), and the
 * command exits 1. Each parser is a commander argument parser; its KvError reaches the command's
 * one error handler, which prints the message alone (no usage dump).
 */

/** The largest partition count (partitionCount's bound): a partition number is below it. */
const maxPartitions = 65_536;

function refuse(flag: string, expected: string, text: string): never {
  throw new KvError('KV_BAD_PARAMETER', `${flag} must be ${expected}, got '${text.slice(0, 40)}'`);
}

/** An integer flag in min..max (decimal digits, an optional minus sign when min is negative). */
export function integerFlag(flag: string, min: number, max: number, unit?: string): (text: string) => number {
  return (text) => {
    const value = /^-?[0-9]{1,16}$/.test(text.trim()) ? Number(text) : Number.NaN;
    if (!(Number.isSafeInteger(value) && value >= min && value <= max))
      refuse(flag, `an integer from ${min} to ${max}${unit === undefined ? '' : ` (${unit})`}`, text);
    return value;
  };
}

/** A quorum flag (--r, --w, --pr, --pw, --dw): one, quorum, all, or a count of replicas. */
export function quorumFlag(flag: string): (text: string) => number | 'one' | 'quorum' | 'all' {
  const count = integerFlag(flag, 1, maxNVal);
  return (text) => {
    if (text === 'one' || text === 'quorum' || text === 'all') return text;
    try {
      return count(text);
    } catch {
      return refuse(flag, `one, quorum, all or an integer from 1 to ${maxNVal} (at most the bucket's n_val)`, text);
    }
  };
}

/** --timeout-ms: the coordinator's deadline, as the HTTP API's timeout_ms allows it. */
export const timeoutFlag = integerFlag('--timeout-ms', 1, maxTimeoutMs, 'milliseconds');

/** --ttl: seconds until a written value expires, as the HTTP API's ttl allows it. */
export const ttlFlag = integerFlag('--ttl', 1, maxTtlSeconds, 'seconds');

/** --limit of `ringkv list`: keys per page. */
export const limitFlag = integerFlag('--limit', 1, maxListLimit, 'keys per page');

/** --incr of `ringkv counter`: any safe integer, negative to decrement. */
export const incrementFlag = integerFlag('--incr', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'negative to decrement');

/** --partition of `ringkv compact`: a partition number (the node checks it against its ring's count). */
export const partitionFlag = integerFlag('--partition', 0, maxPartitions - 1, "below the cluster's partitionCount");

/** --rate of `ringkv backup` and `restore`: megabytes per second, 0 for unthrottled. */
export function rateFlag(text: string): number {
  const value = /^[0-9]{1,9}(\.[0-9]+)?$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isFinite(value)) refuse('--rate', 'megabytes per second, a number from 0 (0: unthrottled) to 999999999', text);
  return value;
}
