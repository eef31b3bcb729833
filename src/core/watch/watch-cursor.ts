import { KvError } from '../../util/errors.js';
import { isDataTypeKey } from '../datatypes/data-type.js';

/**
 * What a watch follows, and where it stands in each node's log of recent writes
 * (docs/ARCHITECTURE.md#watches). A watch's event id (the SSE `id:`) is the set of its cursors:
 * for every node it reads, the epoch of that node's log (a process start) and the sequence number
 * of the last write it has consumed there. Sent back as `Last-Event-ID`, it lets any node resume
 * the watch exactly where it stopped.
 */

/** The keys a watch follows: one key of a bucket, or every key of a bucket that starts with a prefix. */
export interface WatchFilter {
  readonly bucket: string;
  readonly kind: 'key' | 'prefix';
  /** The key, or the prefix ('' for every key of the bucket). */
  readonly name: string;
}

/** A watch's position in one node's log: the log's epoch and the last sequence number consumed. */
export interface LogCursor {
  readonly epoch: string;
  readonly seq: number;
}

/**
 * True when the filter follows this key. Plain keys and data types are two namespaces of a bucket
 * (src/core/datatypes/data-type.ts): a prefix of plain keys (`''` too) never follows a data type,
 * as a listing of plain keys never shows one; a data type watch names the stored key or prefix.
 */
export function filterMatches(filter: WatchFilter, bucket: string, key: string): boolean {
  if (bucket !== filter.bucket) return false;
  if (filter.kind === 'key') return key === filter.name;
  return key.startsWith(filter.name) && isDataTypeKey(filter.name) === isDataTypeKey(key);
}

/** The most cursors an event id may name (one per node of the cluster). */
export const maxWatchIdCursors = 4096;

/** The longest event id accepted back (Last-Event-ID), in characters. */
export const maxWatchIdLength = 256 * 1024;

/** The most consistent keys whose last reported version an event id carries (the oldest reported is forgotten first). */
export const maxWatchIdVersions = 256;

/**
 * Where a watch stands: its cursor in each node's log, and for the consistent keys it reported,
 * the version it reported last (so a resumed watch drops a version it already reported and sees
 * a missing one; docs/CONSENSUS.md, "Watches").
 */
export interface WatchPosition {
  readonly cursors: Map<string, LogCursor>;
  readonly versions: Map<string, number>;
}

/**
 * The event id of a position: base64url of the JSON object {"c": [[node, epoch, seq], ...]
 * sorted by node, "v": [[key, version], ...] oldest reported first}.
 */
export function encodeWatchId(position: WatchPosition): string {
  const cursors = [...position.cursors.entries()]
    .sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0))
    .map(([node, cursor]) => [node, cursor.epoch, cursor.seq]);
  return Buffer.from(JSON.stringify({ c: cursors, v: [...position.versions.entries()] }), 'utf8').toString('base64url');
}

/** The position of an event id (a Last-Event-ID a client sent back); KV_BAD_REQUEST when it is not one this API handed out. */
export function decodeWatchId(text: string): WatchPosition {
  const refuse = (why: string): KvError =>
    new KvError(
      'KV_BAD_REQUEST',
      `Last-Event-ID is not an event id of a ringkv watch (${why}); send the id of the last event received, or no Last-Event-ID to start from now`,
    );
  if (text.length > maxWatchIdLength) throw refuse(`over ${maxWatchIdLength} characters`);
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw refuse('not base64url');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw refuse('not JSON inside');
  }
  if (typeof parsed !== 'object' || parsed === null) throw refuse('not an object of cursors and versions');
  const { c: cursorList, v: versionList } = parsed as { c?: unknown; v?: unknown };
  if (!Array.isArray(cursorList) || cursorList.length > maxWatchIdCursors) throw refuse('not a list of cursors');
  if (!Array.isArray(versionList) || versionList.length > maxWatchIdVersions) throw refuse('not a list of versions');
  const cursors = new Map<string, LogCursor>();
  for (const entry of cursorList as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 3) throw refuse('a cursor is not [node, epoch, seq]');
    const [node, epoch, seq] = entry as [unknown, unknown, unknown];
    if (typeof node !== 'string' || typeof epoch !== 'string' || epoch.length > 64 || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0)
      throw refuse('a cursor is not [node, epoch, seq]');
    cursors.set(node, { epoch, seq });
  }
  const versions = new Map<string, number>();
  for (const entry of versionList as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 2) throw refuse('a version is not [key, version]');
    const [key, version] = entry as [unknown, unknown];
    if (typeof key !== 'string' || typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1)
      throw refuse('a version is not [key, version]');
    versions.set(key, version);
  }
  return { cursors, versions };
}
