import type { Ring } from '../core/ring/ring.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import type { BucketProperties, NodeConfig } from '../config/schema.js';
import type { Clock } from '../ports/clock.js';
import type { FaultPoints } from '../ports/fault-points.js';
import type { Logger } from '../ports/logger.js';
import type { Random } from '../ports/random.js';
import type { KeySpace, Storage } from '../ports/storage.js';
import type { Transport } from '../ports/transport.js';
import { KvError } from '../util/errors.js';
import { BucketSettings } from './bucket-settings.js';
import type { BrokenClaimant } from './broken-claimant.js';
import type { BrokenVariant } from '../core/consensus/broken-variants.js';
import { Claimant } from './claimant.js';
import { clockWithFaults, storageWithFaults, transportWithFaults } from './fault-points.js';
import { Gossiper, type GossiperSelf } from './gossiper.js';
import { PeerService } from './peer-service.js';

/** Who this node is; persisted in its data directory by main.ts. */
export interface NodeIdentity {
  readonly nodeId: string;
  readonly generation: number;
  readonly clusterSecret: string;
  readonly address: string;
}

/** The ports and settings a node runs on (what main.ts and the simulator hand `RingNode.open`). */
export interface NodePorts {
  readonly identity: NodeIdentity;
  readonly config: NodeConfig;
  readonly storage: Storage;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /** Where a simulation makes things go wrong (src/ports/fault-points.ts); production's never fire. */
  readonly faultPoints: FaultPoints;
  /** A deliberately broken claimant, for the simulation tests only (src/engine/broken-claimant.ts); production passes none. */
  readonly brokenClaimant?: BrokenClaimant;
  /** A deliberately broken proposer, for the simulation tests only (src/core/consensus/broken-variants.ts); production passes none. */
  readonly brokenProposer?: BrokenVariant;
}

/**
 * What every role of one node shares, built once by `RingNode.open` before any role exists: the
 * ports (storage, transport and clock through the seeded fault points, which never fire in
 * production), who the node is, its settings, the gossiper, and the functions over them that
 * the roles call. A role takes this context, or a `Pick<>` of what it uses.
 */
export interface NodeContext extends NodePorts {
  readonly selfId: string;
  /** The membership view and failure detector: it exists from the start, on the view the last run persisted. */
  readonly gossiper: Gossiper;
  /** The ring, or null before this node has one. */
  readonly ring: () => Ring | null;
  /** The ring, or the KV_NOT_READY refusal of a node that has none yet (or was removed). */
  readonly requireRing: () => Ring;
  /** Why this node serves no data now (it was removed), or undefined while it serves. */
  readonly refusal: () => KvError | undefined;
  readonly isUp: (nodeId: string) => boolean;
  /** Sends a peer request (this node's own requests are served locally), within `timeoutMs` when given. */
  readonly send: (nodeId: string, request: PeerRequest, timeoutMs?: number) => Promise<PeerReply>;
  /** The bucket's properties in force (src/engine/bucket-settings.ts). */
  readonly bucketProperties: (bucket: string) => BucketProperties;
  /** Every bucket n_val, ascending. */
  readonly nVals: () => readonly number[];
}

const viewMetaKey = Buffer.from('cluster-view');

/**
 * Loads what must exist before a node's roles do (the cluster view its last run persisted) and
 * builds the node's context on it. The peer service comes back beside the context: the node
 * registers its roles' handlers on it.
 */
export async function openNodeContext(options: NodePorts): Promise<{ context: NodeContext; peers: PeerService }> {
  const { faultPoints, clock: systemClock } = options;
  const storage = storageWithFaults(options.storage, faultPoints, systemClock);
  const transport = transportWithFaults(options.transport, faultPoints, systemClock);
  const clock = clockWithFaults(systemClock, faultPoints);
  const { config, identity, logger } = options;
  const selfId = identity.nodeId;
  const initialView = await loadStoredView(storage.meta, logger);
  // Where the node runs travels in its member record; the claimant puts it in the ring when the node joins.
  const { host, zone } = config.placement;
  const location = host === '' && zone === '' ? undefined : { host: host === '' ? selfId : host, ...(zone === '' ? {} : { zone }) };
  const self: GossiperSelf = { id: selfId, address: identity.address, generation: identity.generation, ...(location === undefined ? {} : { location }) };
  const gossiper: Gossiper = new Gossiper({
    self,
    seeds: config.seeds.filter((seed) => seed !== identity.address),
    partitionCount: config.partitionCount,
    bucketProperties: { ...config.buckets, '': config.bucketDefaults },
    intervalMs: config.gossip.intervalMs,
    fanout: config.gossip.fanout,
    peerTimeoutMs: config.limits.peerTimeoutMs,
    // The claimant asks only once gossip runs, when `buckets` below exists.
    claimant: new Claimant({
      selfId,
      nVals: (): readonly number[] => buckets.nVals(),
      logger,
      ...(options.brokenClaimant === undefined ? {} : { broken: options.brokenClaimant }),
    }),
    initialView,
    transport,
    clock,
    random: options.random,
    logger,
    persist: (view) => storage.meta.put(viewMetaKey, Buffer.from(JSON.stringify(view), 'utf8'), { sync: true }),
  });
  const buckets: BucketSettings = new BucketSettings(config, gossiper);
  const refusal = (): KvError | undefined => (gossiper.ownStatus === 'removed' ? removedError(selfId) : undefined);
  const peers = new PeerService({
    selfId,
    transport,
    logger,
    peerTimeoutMs: config.limits.peerTimeoutMs,
    addressOf: (node) => gossiper.addressOf(node),
    refusal,
  });
  const context: NodeContext = {
    ...options,
    storage,
    transport,
    clock,
    selfId,
    gossiper,
    ring: () => gossiper.ring,
    requireRing: () => {
      const removed = refusal();
      if (removed !== undefined) throw removed;
      const ring = gossiper.ring;
      if (ring === null)
        throw new KvError('KV_NOT_READY', 'this node has not joined a ring yet; check that --seeds points at a running node of the cluster', {
          retryAfterSeconds: 1,
        });
      return ring;
    },
    refusal,
    isUp: (node) => gossiper.isUp(node),
    send: (node, request, timeoutMs) => peers.send(node, request, timeoutMs),
    bucketProperties: (bucket) => buckets.properties(bucket),
    nVals: () => buckets.nVals(),
  };
  return { context, peers };
}

/** The refusal a removed node answers every data request with. */
function removedError(nodeId: string): KvError {
  return new KvError(
    'KV_NOT_READY',
    `node ${nodeId} was removed from the cluster and serves no data; use another node. To bring this machine back, wipe its data directory and start it again: it joins with a new id`,
  );
}

/** The persisted view as JSON, or undefined when there is none or it is not readable (the gossiper checks its schema). */
async function loadStoredView(meta: KeySpace, logger: Logger): Promise<unknown> {
  const stored = await meta.get(viewMetaKey);
  if (stored === undefined) return undefined;
  try {
    return JSON.parse(Buffer.from(stored).toString('utf8')) as unknown;
  } catch (error) {
    logger.error({ error: String(error) }, 'the persisted cluster view is not JSON; starting without it and learning the cluster from the seeds');
    return undefined;
  }
}
