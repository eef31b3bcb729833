import { describe, expect, it } from 'vitest';
import { decodeRequest, encodeRequest } from '../../src/core/wire/codec.js';
import type { PeerRequest } from '../../src/core/wire/messages.js';

/**
 * Goal: a forwarded write keeps its options across the peer hop: a TTL, a precondition with the
 * read it is checked against, or both; a plain write comes back without any of them.
 */
const base = { type: 'coordinate-put', bucket: 'b', key: 'k', mode: 'siblings', sync: false } as const;
const write = { value: Buffer.from('v'), contentType: 'text/plain', tombstone: false, nowMs: 1_700_000_000_000, context: { vector: { a: 1 }, dots: [] } };
const object = {
  clock: { a: 1 },
  siblings: [{ dot: { node: 'a', counter: 1 }, value: Buffer.from('old'), contentType: 'text/plain', lastModifiedMs: 1, tombstone: false }],
};

describe('coordinate-put options on the wire', () => {
  it.each<[string, PeerRequest]>([
    ['plain', { ...base, write }],
    ['with a ttl', { ...base, write: { ...write, ttlSeconds: 60 } }],
    ['with If-None-Match', { ...base, write, precondition: { kind: 'absent' }, base: null }],
    ['with If-Match and its read', { ...base, write, precondition: { kind: 'matches', vector: { a: 1 } }, base: object }],
    ['with a ttl and a precondition', { ...base, write: { ...write, ttlSeconds: 5 }, precondition: { kind: 'matches', vector: { a: 1 } }, base: object }],
  ])('round-trips a write %s', (_name, request) => {
    expect(decodeRequest(encodeRequest(request))).toEqual(request);
  });
});
