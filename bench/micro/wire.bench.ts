/**
 * Micro-benchmarks of the peer wire codec (src/core/wire/): encoding and decoding the messages
 * every write and every gossip round sends. `npm run bench:micro`.
 */
import { bench, describe } from 'vitest';
import { createRing } from '../../src/core/ring/ring.js';
import { encodeDataKey } from '../../src/core/keys.js';
import type { VersionedObject } from '../../src/core/versioning/versioned-object.js';
import { decodeReply, decodeRequest, encodeReply, encodeRequest } from '../../src/core/wire/codec.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';

const object = (size: number): VersionedObject => ({
  clock: { 'node-01': 12, 'node-02': 7, 'node-03': 3 },
  siblings: [
    {
      dot: { node: 'node-01', counter: 12 },
      value: Buffer.alloc(size, 7),
      contentType: 'application/octet-stream',
      lastModifiedMs: 1_764_000_000_000,
      tombstone: false,
    },
  ],
});
const ids = Array.from({ length: 5 }, (_, index) => `node-${index}`);

/** The messages measured: a replica put of a 100-byte value, a forwarded client write, a gossip view, a handoff page. */
const wireSamples: { readonly name: string; readonly request?: PeerRequest; readonly reply?: PeerReply }[] = [
  {
    name: 'replica-put, 100-byte value',
    request: { type: 'replica-put', bucket: 'users', key: 'user:123456', object: object(100), mode: 'siblings', sync: false },
  },
  {
    name: 'coordinate-put, 100-byte value',
    request: {
      type: 'coordinate-put',
      bucket: 'users',
      key: 'user:123456',
      write: {
        value: Buffer.alloc(100, 7),
        contentType: 'application/octet-stream',
        tombstone: false,
        nowMs: 1_764_000_000_000,
        context: { vector: { 'node-01': 11 }, dots: [] },
      },
      mode: 'siblings',
      sync: false,
    },
  },
  {
    name: 'cluster-state-reply, a 256-partition ring of 5 members',
    reply: {
      type: 'cluster-state-reply',
      from: 'node-01',
      state: {
        ring: createRing(256, ids),
        bucketProperties: { '': { nVal: 3, r: 'quorum', w: 'quorum', conflictMode: 'siblings' } },
        bucketPropertiesVersion: 1,
      },
    },
  },
  {
    name: 'swim-ping with 5 records of news',
    request: {
      type: 'swim-ping',
      sequence: 123_456,
      from: 'node-01',
      target: 'node-02',
      updates: ids.map((id, index) => ({
        id,
        address: `10.0.0.${index}:17101`,
        generation: 1_764_000_000,
        version: 3,
        state: 'alive' as const,
        lifecycle: 'up' as const,
        accuser: '',
        transfersDoneForRing: 7,
      })),
    },
  },
  {
    name: 'object-page, 100 objects of 100 bytes',
    reply: {
      type: 'object-page',
      items: Array.from({ length: 100 }, (_, index) => ({ dataKey: encodeDataKey('users', `user:${index}`), object: object(100) })),
      done: false,
    },
  },
];

for (const sample of wireSamples) {
  describe(`peer codec: ${sample.name}`, () => {
    if (sample.request !== undefined) {
      const request = sample.request;
      const bytes = encodeRequest(request);
      bench('encode', () => {
        encodeRequest(request);
      });
      bench('decode', () => {
        decodeRequest(bytes);
      });
    } else if (sample.reply !== undefined) {
      const reply = sample.reply;
      const bytes = encodeReply(reply);
      bench('encode', () => {
        encodeReply(reply);
      });
      bench('decode', () => {
        decodeReply(bytes);
      });
    }
  });
}
