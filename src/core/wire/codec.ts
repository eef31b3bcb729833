import { KvError } from '../../util/errors.js';
import { ByteReader, ByteWriter } from './bytes.js';
import { type MessageEntry, type PeerMessage, repliesByTag, replyMessages, requestMessages, requestsByTag } from './message-table.js';
import type { PeerReply, PeerRequest } from './messages.js';

/**
 * The binary encoding of one peer message, a driver over the message table (message-table.ts):
 * [u8 tag][the entry's fields]. A frame (frames.ts) carries one message; its frame type says
 * whether it is a request or a reply, and the handshake has already agreed the protocol version.
 */

function encode<M extends PeerMessage>(entry: MessageEntry<M>, message: M): Buffer {
  const writer = new ByteWriter().u8(entry.tag);
  entry.write(writer, message);
  return writer.finish();
}

function decode<M extends PeerMessage>(bytes: Uint8Array, byTag: readonly (MessageEntry<M> | undefined)[], direction: string): M {
  const reader = new ByteReader(bytes);
  const tag = reader.u8();
  const entry = byTag[tag];
  if (entry === undefined)
    throw new KvError('KV_BAD_REQUEST', `unknown peer ${direction} tag ${tag}; run ringkv versions that share a protocol version on every node (docs/WIRE.md)`);
  const message = entry.read(reader);
  if (!reader.done()) throw new KvError('KV_BAD_REQUEST', `trailing bytes after a peer ${entry.name} ${direction}`);
  return message;
}

/** The bytes of one request. */
export function encodeRequest(request: PeerRequest): Buffer {
  return encode(requestMessages[request.type] as MessageEntry<PeerRequest>, request);
}

/** Decodes one request; throws KV_BAD_REQUEST on anything malformed or over a bound. */
export function decodeRequest(bytes: Uint8Array): PeerRequest {
  return decode(bytes, requestsByTag, 'request');
}

/** The bytes of one reply. */
export function encodeReply(reply: PeerReply): Buffer {
  return encode(replyMessages[reply.type] as MessageEntry<PeerReply>, reply);
}

/** Decodes one reply; throws KV_BAD_REQUEST on anything malformed or over a bound. */
export function decodeReply(bytes: Uint8Array): PeerReply {
  return decode(bytes, repliesByTag, 'reply');
}
