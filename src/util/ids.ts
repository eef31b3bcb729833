import { randomBytes } from 'node:crypto';

/** A new random node id: 'n' and 12 hex digits, short enough to read in a table. */
export function newNodeId(): string {
  return `n${randomBytes(6).toString('hex')}`;
}

/** A new random cluster secret (32 bytes, hex). */
export function newClusterSecret(): string {
  return randomBytes(32).toString('hex');
}
