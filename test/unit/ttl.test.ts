import { describe, expect, it } from 'vitest';
import { emptyContext, readContext } from '../../src/core/versioning/context.js';
import { decodeObject, encodeObject } from '../../src/core/versioning/object-codec.js';
import { ByteWriter } from '../../src/core/wire/bytes.js';
import { decodeRequest, encodeRequest } from '../../src/core/wire/codec.js';
import { checkPrecondition } from '../../src/core/versioning/preconditions.js';
import {
  type VersionedObject,
  type WriteIntent,
  applyWrite,
  deadSinceMs,
  emptyObject,
  isDeleted,
  isExpired,
  liveSiblings,
  mergeObjects,
} from '../../src/core/versioning/versioned-object.js';

/**
 * Goal: a TTL is part of the version. applyWrite stamps the expiry from the write's clock; every
 * merge keeps it; the codec carries it (format 2) and still reads format 1; an expired sibling
 * reads as a tombstone; a newer write or a delete wins over an expiring version as usual.
 */

const t0 = 1_700_000_000_000;
const intent = (value: string, nowMs: number, extra: Partial<WriteIntent> = {}): WriteIntent => ({
  value: Buffer.from(value),
  contentType: 'text/plain',
  tombstone: false,
  context: emptyContext,
  nowMs,
  ...extra,
});
const values = (object: VersionedObject, nowMs: number): string[] => liveSiblings(object, nowMs).map((sibling) => Buffer.from(sibling.value).toString());

describe('TTL on versions', () => {
  it('applyWrite sets expiresAtMs to nowMs + ttl, and none without a ttl or on a delete', () => {
    expect(applyWrite(emptyObject, 'a', intent('v', t0, { ttlSeconds: 30 }), 'siblings').siblings[0]!.expiresAtMs).toBe(t0 + 30_000);
    expect(applyWrite(emptyObject, 'a', intent('v', t0), 'siblings').siblings[0]!.expiresAtMs).toBeUndefined();
    expect(applyWrite(emptyObject, 'a', intent('v', t0, { ttlSeconds: 0 }), 'siblings').siblings[0]!.expiresAtMs).toBeUndefined();
    expect(applyWrite(emptyObject, 'a', intent('', t0, { ttlSeconds: 30, tombstone: true }), 'siblings').siblings[0]!.expiresAtMs).toBeUndefined();
  });

  it('an expired sibling reads as deleted from its expiry on, by the clock of the reader', () => {
    const written = applyWrite(emptyObject, 'a', intent('v', t0, { ttlSeconds: 1 }), 'siblings');
    expect(values(written, t0 + 999)).toEqual(['v']);
    expect(isExpired(written.siblings[0]!, t0 + 1000)).toBe(true);
    expect(isDeleted(written, t0 + 1000)).toBe(true);
    expect(deadSinceMs(written)).toBe(t0 + 1000);
    expect(deadSinceMs(applyWrite(emptyObject, 'a', intent('v', t0), 'siblings'))).toBeUndefined();
  });

  it.each(['siblings', 'lww'] as const)('merges (%s) keep the expiry, in either order, so repair cannot revive the value', (mode) => {
    const written = applyWrite(emptyObject, 'a', intent('v', t0, { ttlSeconds: 1 }), mode);
    for (const merged of [mergeObjects(written, emptyObject, mode), mergeObjects(emptyObject, written, mode), mergeObjects(written, written, mode)]) {
      expect(merged.siblings.map((sibling) => sibling.expiresAtMs)).toEqual([t0 + 1000]);
      expect(isDeleted(merged, t0 + 1000)).toBe(true);
    }
  });

  it('a newer write without a ttl wins over an expiring one', () => {
    const expiring = applyWrite(emptyObject, 'a', intent('old', t0, { ttlSeconds: 1 }), 'siblings');
    const newer = applyWrite(expiring, 'b', intent('new', t0 + 10, { context: readContext(expiring.clock) }), 'siblings');
    expect(values(mergeObjects(expiring, newer, 'siblings'), t0 + 5000)).toEqual(['new']);
    expect(values(mergeObjects(newer, expiring, 'siblings'), t0 + 5000)).toEqual(['new']);
  });

  it('a delete wins over an expiring version before it expires', () => {
    const expiring = applyWrite(emptyObject, 'a', intent('old', t0, { ttlSeconds: 3600 }), 'siblings');
    const deleted = applyWrite(expiring, 'b', intent('', t0 + 10, { tombstone: true, context: readContext(expiring.clock) }), 'siblings');
    const merged = mergeObjects(expiring, deleted, 'siblings');
    expect(isDeleted(merged, t0 + 20)).toBe(true);
    expect(merged.siblings.every((sibling) => sibling.tombstone)).toBe(true);
  });

  it('concurrent with a live sibling, an expired one disappears from reads and the live one stays', () => {
    const expiring = applyWrite(emptyObject, 'a', intent('short', t0, { ttlSeconds: 1 }), 'siblings');
    const other = applyWrite(emptyObject, 'b', intent('long', t0), 'siblings');
    const merged = mergeObjects(expiring, other, 'siblings');
    expect(values(merged, t0).sort()).toEqual(['long', 'short']);
    expect(values(merged, t0 + 1000)).toEqual(['long']);
    expect(deadSinceMs(merged)).toBeUndefined();
  });
});

describe('preconditions with expiries', () => {
  // Goal: a precondition judges the current version as a read at the write's time would, so an
  // expired value counts as absent: a TTL lease can be taken again the moment it expires.
  it('If-None-Match: * holds on a key whose only value has expired, and not before', () => {
    const lease = applyWrite(emptyObject, 'a', intent('holder-1', t0, { ttlSeconds: 10 }), 'siblings');
    expect(checkPrecondition(lease, { kind: 'absent' }, t0 + 9_999).ok).toBe(false);
    const verdict = checkPrecondition(lease, { kind: 'absent' }, t0 + 10_000);
    expect(verdict.ok).toBe(true);
    // The new write supersedes the expired value, so it reads as the one value afterwards.
    const retaken = applyWrite(
      lease,
      'b',
      intent('holder-2', t0 + 10_000, { context: verdict.ok ? verdict.context : emptyContext, ttlSeconds: 10 }),
      'siblings',
    );
    expect(values(retaken, t0 + 10_000)).toEqual(['holder-2']);
    expect(retaken.siblings).toHaveLength(1);
  });

  it('If-Match fails once the value it names has expired', () => {
    const lease = applyWrite(emptyObject, 'a', intent('holder-1', t0, { ttlSeconds: 10 }), 'siblings');
    expect(checkPrecondition(lease, { kind: 'matches', vector: lease.clock }, t0 + 9_999).ok).toBe(true);
    expect(checkPrecondition(lease, { kind: 'matches', vector: lease.clock }, t0 + 10_000).ok).toBe(false);
  });
});

describe('the object codec with expiries', () => {
  it('writes format 2 only when a sibling expires, and round-trips the expiry', () => {
    const plain = applyWrite(emptyObject, 'a', intent('v', t0), 'siblings');
    const expiring = applyWrite(emptyObject, 'a', intent('v', t0, { ttlSeconds: 5 }), 'siblings');
    expect(encodeObject(plain)[0]).toBe(1);
    expect(encodeObject(expiring)[0]).toBe(2);
    expect(decodeObject(encodeObject(expiring))).toEqual(expiring);
    expect(decodeObject(encodeObject(plain))).toEqual(plain);
    const mixed = mergeObjects(expiring, applyWrite(emptyObject, 'b', intent('w', t0), 'siblings'), 'siblings');
    expect(decodeObject(encodeObject(mixed))).toEqual(mixed);
  });

  it('still reads a format 1 object written by an older release', () => {
    // Built by hand as release 1 wrote it: [1][1 entry]{a,1}[1 sibling]{a,1,flags 0,lastModified,type,value}.
    const writer = new ByteWriter().u8(1).varint(1).string('a').varint(1).varint(1);
    writer.string('a').varint(1).u8(0).f64(t0).string('text/plain').bytes(Buffer.from('old'));
    const object = decodeObject(writer.finish());
    expect(object.siblings).toEqual([
      { dot: { node: 'a', counter: 1 }, value: Buffer.from('old'), contentType: 'text/plain', lastModifiedMs: t0, tombstone: false },
    ]);
  });
});

describe('the peer codec with a ttl', () => {
  it('carries the ttl of a forwarded write, and a write without one comes back without one', () => {
    const request = (ttlSeconds?: number) => ({
      type: 'coordinate-put' as const,
      bucket: 'b',
      key: 'k',
      write: { ...intent('v', t0), ...(ttlSeconds === undefined ? {} : { ttlSeconds }) },
      mode: 'siblings' as const,
      sync: false,
    });
    expect(decodeRequest(encodeRequest(request(60)))).toEqual(request(60));
    expect(decodeRequest(encodeRequest(request()))).toEqual(request());
  });
});
