import { type Ring, locationOf, memberLocation, partitionsOwnedBy, placementWarnings, plannedMembers, ringMembers } from '../core/ring/ring.js';
import type { ClusterView } from '../core/membership/membership.js';
import type { AntiEntropy } from './anti-entropy.js';
import type { Handoff } from './handoff.js';
import type { HintedHandoff } from './hinted-handoff.js';
import type { MemberStatus, NodeStatus } from './kv-service.js';
import type { Replica } from './replica.js';
import type { NodeContext } from './node-context.js';

/** Where the status report reads its figures. */
export type StatusOptions = Pick<NodeContext, 'identity' | 'config' | 'storage' | 'gossiper' | 'nVals'> & {
  /** When this node started, by its clock. */
  readonly startedAtMs: number;
  readonly replica: Replica;
  readonly hintedHandoff: HintedHandoff;
  readonly antiEntropy: AntiEntropy;
  readonly handoff: Handoff;
  /** Client requests in flight now. */
  readonly inFlight: () => number;
  /** Client requests taken for keys this node holds no replica of (`Coordinator.offReplica`). */
  readonly offReplica: () => { readonly forwardedWrites: number; readonly reads: number };
  /** Memory figures of the process (main.ts reads them; simulation has none). */
  readonly processFigures?: (() => Readonly<Record<string, number>>) | undefined;
};

/**
 * The node's report for the admin API (`GET /status`, `ringkv status` and `ringkv ring`) and for
 * the metrics built from it: who this node is, the members as it sees them, the ring, storage,
 * and the figures of each role (Cassandra's `nodetool status`, Riak's `riak-admin member-status`).
 */
export class Status {
  constructor(private readonly options: StatusOptions) {}

  /** What GET /status shows. */
  async report(): Promise<NodeStatus> {
    const gossiper = this.options.gossiper;
    const ring = gossiper.ring;
    const view = gossiper.view;
    const members: MemberStatus[] = Object.values(view.members)
      .filter((member) => member.status !== 'removed')
      .map((member) => {
        const location = memberLocation(ring, member);
        return {
          id: member.id,
          address: member.address,
          status: !gossiper.isUp(member.id) ? 'down' : member.status === 'left' ? 'leaving' : member.status,
          generation: member.generation,
          partitionsOwned: ring === null ? 0 : partitionsOwnedBy(ring, member.id).length,
          host: location.host,
          ...(location.zone === undefined ? {} : { zone: location.zone }),
          ...(member.id === this.options.identity.nodeId ? {} : { membership: gossiper.stateOf(member.id) ?? 'dead' }),
        } as MemberStatus;
      })
      .sort((left, right) => left.address.localeCompare(right.address, 'en', { numeric: true }));
    const storage = await this.options.storage.stats();
    // The shards of this node's host: the members placed on its host (one per shard of a sharded node, docs/ARCHITECTURE.md#shards).
    const self = view.members[this.options.identity.nodeId];
    const host = self === undefined ? this.options.identity.nodeId : memberLocation(ring, self).host;
    const shards: HostShards = {
      host,
      members: members.filter((member) => member.host === host).map((member) => ({ id: member.id, address: member.address, status: member.status })),
    };
    return {
      node: {
        id: this.options.identity.nodeId,
        address: this.options.identity.address,
        generation: this.options.identity.generation,
        startedAtMs: this.options.startedAtMs,
      },
      members,
      // The ring's own Q: a node that joined with a different partitionCount in its config uses the cluster's.
      partitionCount: ring?.partitionCount ?? this.options.config.partitionCount,
      ring: ring === null ? null : { version: ring.version, owners: ring.owners, members: ringMembers(ring), next: ring.next },
      placement: { warnings: this.placementWarnings(ring, view) },
      shards,
      storage: { ...storage, keys: this.options.antiEntropy.keyCount },
      antiEntropy: this.options.antiEntropy.status(),
      handoff: this.options.handoff.status(),
      lifecycle: gossiper.ownStatus,
      // SWIM's own figures: frames sent (requests and replies, headers included), protocol periods run, Lifeguard's local health.
      gossip: { bytesSent: gossiper.bytesSent, rounds: gossiper.rounds, healthScore: gossiper.healthScore },
      hints: this.options.hintedHandoff.status(),
      siblings: {
        manyWrites: this.options.replica.manySiblingWrites,
        refused: this.options.replica.siblingRefusals,
        warnAbove: this.options.config.limits.siblingsWarn,
        max: this.options.config.limits.maxSiblings,
      },
      inFlight: this.options.inFlight(),
      offReplica: this.options.offReplica(),
      ...(this.options.processFigures === undefined ? {} : { process: this.options.processFigures() }),
    };
  }

  /**
   * Why a key's replicas may share a host or zone: a ring with fewer hosts or zones than the
   * largest n_val, or this node configured with a location the ring does not hold (a location is
   * fixed while the node is a member, since changing it would move replicas without streaming them).
   */
  private placementWarnings(ring: Ring | null, view: ClusterView): string[] {
    if (ring === null) return [];
    const warnings = placementWarnings(ring, Math.max(...this.options.nVals()));
    const self = view.members[this.options.identity.nodeId];
    if (self !== undefined && plannedMembers(ring).includes(self.id)) {
      const configured = self.location ?? { host: self.id };
      const placed = locationOf(ring, self.id);
      if (configured.host !== placed.host || configured.zone !== placed.zone) {
        warnings.push(
          `this node is configured with host ${configured.host} and zone ${configured.zone ?? '(none)'}, but the ring places it on host ${placed.host} and zone ${placed.zone ?? '(none)'}; a member's location is fixed: restart it with the ring's labels, or \`ringkv leave\` it and join it again (with a new data directory) under the new ones`,
        );
      }
    }
    return warnings;
  }
}

/** The ring members on this node's host as /status shows them: the shards of a sharded node. */
export interface HostShards {
  readonly host: string;
  readonly members: readonly { readonly id: string; readonly address: string; readonly status: string }[];
}
