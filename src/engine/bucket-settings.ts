import type { ClusterView } from '../core/membership/membership.js';
import type { BucketProperties, NodeConfig } from '../config/schema.js';
import { bucketProperties } from '../config/validate.js';
import { leaseBucket } from '../core/leases/lease-record.js';

/** Buckets whose merged properties are kept at once. */
const memoLimit = 1024;

/**
 * The bucket properties in force on this node: the cluster-wide ones from the gossiped view (the
 * founding node's config, so every node agrees), else this node's own config before it has
 * joined.
 */
export class BucketSettings {
  constructor(
    private readonly config: NodeConfig,
    private readonly gossiper: { readonly view: ClusterView },
  ) {}

  /**
   * The merged properties of recently asked buckets, for the shared properties they were merged
   * from: a request asks several times (its entry, its coordinator, each replica path), and the
   * merge was about 2% of a node's CPU under a PUT load. Cleared when the shared properties
   * change, and when full (any client can name new buckets).
   */
  private memo = new Map<string, BucketProperties>();
  private memoOf: ClusterView['bucketProperties'] | undefined;

  /** The bucket's properties (defaults merged with its own). */
  properties(bucket: string): BucketProperties {
    const view = this.gossiper.view;
    const shared = view.bucketPropertiesVersion > 0 ? view.bucketProperties : undefined;
    if (this.memoOf !== shared || this.memo.size >= memoLimit) {
      this.memo = new Map();
      this.memoOf = shared;
    }
    let properties = this.memo.get(bucket);
    if (properties === undefined) {
      properties = this.merged(bucket, shared);
      this.memo.set(bucket, properties);
    }
    return properties;
  }

  private merged(bucket: string, shared: ClusterView['bucketProperties'] | undefined): BucketProperties {
    // The lease records' reserved bucket is consistent on every cluster (src/engine/leases.ts), whatever the config says.
    if (bucket === leaseBucket) return { ...this.merged('', shared), consistent: true };
    if (shared === undefined) return bucketProperties(this.config, bucket);
    return { ...this.config.bucketDefaults, ...(shared[''] ?? {}), ...(shared[bucket] ?? {}) };
  }

  /**
   * Every n_val a bucket can have here, ascending: the defaults' and each configured or shared
   * bucket's. Per-partition decisions (ring changes, clean-up, anti-entropy pairs) look at the
   * preference list of each, since a smaller n_val's list is a prefix of a larger one's.
   */
  nVals(): number[] {
    const shared = this.gossiper.view.bucketProperties;
    const configured = [this.config.bucketDefaults.nVal, ...Object.values(this.config.buckets).map((properties) => properties.nVal)];
    const all = [...configured, ...Object.values(shared).map((properties) => properties.nVal)].filter((nVal): nVal is number => nVal !== undefined && nVal > 0);
    return [...new Set(all)].sort((left, right) => left - right);
  }
}
