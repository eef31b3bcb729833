import { describe, expect, it } from 'vitest';
import { configDefaults, validateConfig } from '../../src/config/validate.js';
import type { ClusterView } from '../../src/core/membership/membership.js';
import { leaseBucket } from '../../src/core/leases/lease-record.js';
import { BucketSettings } from '../../src/engine/bucket-settings.js';

/**
 * Goal: a node's bucket properties follow the cluster's shared ones as they change, although
 * BucketSettings keeps the merged properties of recently asked buckets: before the node has
 * joined they are its own config's, then the shared ones', and every new version of the shared
 * properties is seen at the next ask.
 */
describe('bucket settings', () => {
  const config = validateConfig({ ...(configDefaults() as object), buckets: { photos: { nVal: 2 } } });
  const view = (version: number, shared: ClusterView['bucketProperties']): ClusterView => ({
    members: {},
    ring: null,
    bucketProperties: shared,
    bucketPropertiesVersion: version,
  });

  it('answers the config before the node joined, then each version of the shared properties', () => {
    const gossiper = { view: view(0, {}) };
    const settings = new BucketSettings(config, gossiper);
    expect(settings.properties('photos').nVal).toBe(2);
    expect(settings.properties('other').nVal).toBe(config.bucketDefaults.nVal);

    gossiper.view = view(1, { '': { nVal: 5 }, photos: { nVal: 4, conflictMode: 'lww' } });
    expect(settings.properties('photos')).toMatchObject({ nVal: 4, conflictMode: 'lww' });
    expect(settings.properties('other').nVal).toBe(5);

    gossiper.view = view(2, { '': { nVal: 5 }, photos: { nVal: 1 } });
    expect(settings.properties('photos').nVal).toBe(1);
    expect(settings.properties(leaseBucket)).toMatchObject({ nVal: 5, consistent: true });
  });

  it('keeps answering right when clients name more buckets than it keeps', () => {
    const gossiper = { view: view(1, { '': { nVal: 3 }, b7: { nVal: 1 } }) };
    const settings = new BucketSettings(config, gossiper);
    for (let index = 0; index < 3000; index++) expect(settings.properties(`b${index}`).nVal).toBe(index === 7 ? 1 : 3);
  });
});
