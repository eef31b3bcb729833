import type { BucketProperties } from '../../core/buckets.js';
import { decodeDataKey, partitionOfPosition } from '../../core/keys.js';
import { type Ring, preferenceList } from '../../core/ring/ring.js';
import type { StoredItem } from '../../core/wire/messages.js';
import type { Replica } from '../replica.js';
import type { TreeKeeper } from './tree-keeper.js';

/** What merging repaired keys needs from the node. */
export interface KeyRepairDependencies {
  readonly selfId: string;
  readonly replica: Replica;
  readonly keeper: TreeKeeper;
  ring(): Ring | null;
  bucketProperties(bucket: string): BucketProperties;
  /** Told how many keys changed here (the initiator counts them into a repair's progress). */
  onRepaired(changed: number): void;
}

/** Merges the objects an exchange brought (fetched by the initiator, or pushed to the responder) into this replica. */
export class KeyRepair {
  keysRepaired = 0;

  constructor(private readonly deps: KeyRepairDependencies) {}

  /** Merges objects of a partition from a peer into this replica; answers how many keys changed here. */
  async mergeItems(partition: number, items: readonly StoredItem[]): Promise<number> {
    let changed = 0;
    for (const item of items) {
      const dataKey = Buffer.from(item.dataKey);
      // A key outside the partition asked about is the peer's mistake; it is not merged.
      if (!this.deps.keeper.inPartition(partition, dataKey) || !this.replicates(dataKey)) continue;
      const { bucket } = decodeDataKey(dataKey);
      const result = await this.deps.replica.mergeByDataKey(dataKey, item.object, this.deps.bucketProperties(bucket).conflictMode, false);
      if (result.changed) changed += 1;
    }
    this.keysRepaired += changed;
    if (changed > 0) this.deps.onRepaired(changed);
    return changed;
  }

  /** True when this node is a replica of the key under the current owners (its bucket's own n_val). */
  private replicates(dataKey: Buffer): boolean {
    const ring = this.deps.ring();
    if (ring === null) return false;
    const { bucket, position } = decodeDataKey(dataKey);
    const partition = partitionOfPosition(position, ring.partitionCount);
    return preferenceList(ring, partition, this.deps.bucketProperties(bucket).nVal).includes(this.deps.selfId);
  }
}
