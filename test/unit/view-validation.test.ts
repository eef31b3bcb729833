import { describe, expect, it } from 'vitest';
import type { BucketProperties } from '../../src/core/buckets.js';
import { validateView } from '../../src/core/membership/view-validation.js';
import { maxTtlSeconds } from '../../src/core/versioning/versioned-object.js';
import defaults from '../../config/default.json' with { type: 'json' };

/**
 * Bucket properties travel in the gossiped (and persisted) cluster view, and validateView keeps
 * only the fields it checks. Every field of BucketProperties must survive it, or a property
 * set on the founding node silently reverts to the default on every other node (and on the
 * founder itself after a restart, since the persisted view is validated the same way).
 */

const expectations = { partitionCount: undefined, knownMemberIds: [], nowMs: 1_700_000_000_000 };

function viewWith(bucketProperties: unknown): unknown {
  return { members: {}, ring: null, bucketProperties, bucketPropertiesVersion: 3 };
}

describe('view validation of bucket properties', () => {
  it('keeps every field of a well-formed bucket, ttlSeconds included', () => {
    const full: BucketProperties = { nVal: 3, r: 'quorum', w: 2, conflictMode: 'lww', ttlSeconds: 3600 };
    const { view, problems } = validateView(viewWith({ '': { ...full, ttlSeconds: 0 }, sessions: full }), expectations);
    expect(problems).toEqual([]);
    expect(view.bucketProperties.sessions).toEqual(full);
    expect(view.bucketProperties['']).toEqual({ ...full, ttlSeconds: 0 });
    expect(view.bucketPropertiesVersion).toBe(3);
  });

  it('keeps every bucket property the config schema has (so a new one cannot be dropped unnoticed)', () => {
    // bucketDefaults in the default config has every field of the schema's bucket properties.
    const everyField = defaults.bucketDefaults;
    const { view, problems } = validateView(viewWith({ '': everyField, one: everyField }), expectations);
    expect(problems).toEqual([]);
    expect(view.bucketProperties['']).toEqual(everyField);
    expect(view.bucketProperties.one).toEqual(everyField);
  });

  it('keeps the largest ttl a write may have, and a bucket that sets ttlSeconds alone', () => {
    const { view, problems } = validateView(viewWith({ sessions: { ttlSeconds: maxTtlSeconds } }), expectations);
    expect(problems).toEqual([]);
    expect(view.bucketProperties.sessions).toEqual({ ttlSeconds: maxTtlSeconds });
  });

  it.each([[-1], [1.5], [maxTtlSeconds + 1], ['60'], [null]])('refuses the bucket properties when ttlSeconds is %j, and says why', (ttlSeconds) => {
    const { view, problems } = validateView(viewWith({ sessions: { ttlSeconds } }), expectations);
    expect(view.bucketProperties).toEqual({});
    expect(view.bucketPropertiesVersion).toBe(0);
    expect(problems).toEqual([`bucketProperties["sessions"]: ttlSeconds is not an integer in 0..${maxTtlSeconds}`]);
  });

  it('counts a bucket name in UTF-8 bytes, as the wire does', () => {
    const { view, problems } = validateView(viewWith({ ['é'.repeat(600)]: { nVal: 2 } }), expectations);
    expect(view.bucketProperties).toEqual({});
    expect(problems).toEqual(['bucketProperties has a bucket name over 1024 UTF-8 bytes']);
  });

  it('still leaves out fields it does not know', () => {
    const { view } = validateView(viewWith({ sessions: { nVal: 2, colour: 'blue' } }), expectations);
    expect(view.bucketProperties.sessions).toEqual({ nVal: 2 });
  });
});
