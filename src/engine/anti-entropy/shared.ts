import { hashText, itemHash } from '../../core/antientropy/merkle-tree.js';
import type { PeerReply, PeerRequest, StoredItem } from '../../core/wire/messages.js';
import { KvError } from '../../util/errors.js';

/** One key as this side holds it: storage key and digest (values are read again when pushed). */
export interface LocalDigest {
  readonly dataKey: Buffer;
  readonly digest: string;
}

/** Refuses a malformed request from a peer. */
export function badRequest(message: string): KvError {
  return new KvError('KV_BAD_REQUEST', `${message}; the peer runs another ringkv version or is misbehaving`);
}

/** The digest of a stored item, as exchanged between replicas. */
export function digestOf(dataKey: Uint8Array, storedBytes: Uint8Array): string {
  const hash = itemHash(dataKey, storedBytes);
  return hashText(hash.high, hash.low);
}

/** The storage-key bound of a ring position (undefined past the last position). */
export function positionBound(position: number): Buffer | undefined {
  if (position >= 2 ** 32) return undefined;
  const bound = Buffer.alloc(4);
  bound.writeUInt32BE(position, 0);
  return bound;
}

/** About how many bytes a message carries: keys, digests, hashes and values (for the bytesExchanged figure). */
export function messageBytes(message: PeerRequest | PeerReply): number {
  const objectBytes = (items: readonly StoredItem[]): number =>
    items.reduce((sum, item) => sum + item.dataKey.byteLength + item.object.siblings.reduce((total, sibling) => total + sibling.value.byteLength + 32, 16), 0);
  const keyListBytes = (keys: readonly Uint8Array[]): number => keys.reduce((sum, key) => sum + key.byteLength + 1, 0);
  switch (message.type) {
    case 'handoff-held':
      return 2 + message.partitions.length * 2;
    case 'handoff-held-reply':
      return 2 + message.held.length * 2;
    case 'ae-summary':
      return 2 + message.roots.length * 11;
    case 'ae-summary-reply':
      return 2 + message.differing.reduce((sum, entry) => sum + 2 + entry.branches.length * 9, 0) + message.notReady.length * 2;
    case 'ae-leaves':
      return 4 + message.branches.length;
    case 'ae-leaves-reply':
      return 2 + message.branches.reduce((sum, entry) => sum + 1 + entry.leaves.length * 9, 0);
    case 'ae-digest':
      return 2 + message.dataKey.byteLength;
    case 'ae-reap':
      return 11 + message.dataKey.byteLength;
    case 'ae-keys':
      return 8 + 2 * message.leaves.length + message.items.reduce((sum, item) => sum + item.dataKey.byteLength + 10, 0);
    case 'ae-keys-reply':
      return 2 + keyListBytes(message.differing) + keyListBytes(message.need);
    case 'ae-fetch':
      return 8 + keyListBytes(message.keys);
    case 'ae-push':
    case 'object-page':
      return 4 + objectBytes(message.items);
    default:
      return 8;
  }
}

/** What sending an anti-entropy request needs of a role's dependencies: the peer link and the byte counter. */
export interface PeerLink {
  send(node: string, request: PeerRequest): Promise<PeerReply>;
  countBytes(bytes: number): void;
}

/** Sends a peer request, counts its bytes and checks the reply's type; a wrong type means the peer could not serve it. */
export async function requestOf<T extends PeerReply['type']>(
  link: PeerLink,
  peer: string,
  request: PeerRequest,
  replyType: T,
): Promise<Extract<PeerReply, { type: T }>> {
  const reply = await link.send(peer, request);
  if (reply.type !== replyType) throw new KvError('KV_PEER_UNREACHABLE', `peer ${peer} answered ${reply.type} to ${request.type}`);
  link.countBytes(messageBytes(request) + messageBytes(reply));
  return reply as Extract<PeerReply, { type: T }>;
}
