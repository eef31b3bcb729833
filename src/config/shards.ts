import type { NodeConfig } from './schema.js';

/**
 * Shards: a host's node split into one process per core, as ScyllaDB's shard-per-core
 * (docs/ARCHITECTURE.md#shards). Each shard is a ring member of its own (its own node id,
 * LevelDB, heap and event loop); this module says what each shard's config is, derived from the
 * node's config by fixed rules, so the same flags on every restart give every shard the same
 * data folder, address and placement host.
 */

/** Which shard of how many this process is. */
export interface ShardPosition {
  /** 0 .. count - 1. */
  readonly index: number;
  readonly count: number;
}

/** The port of a `host:port` address. */
function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** The host of a `host:port` address. */
function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':'));
}

/**
 * The placement host every shard of a node carries unless `placement.host` names one: the node's
 * advertised address as a label (`127.0.0.1:17201` becomes `127.0.0.1_17201`), the same for all
 * its shards and different for every node, so placement keeps a key's replicas on different
 * nodes' shards.
 */
export function defaultShardHost(advertise: string): string {
  return advertise.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128);
}

/**
 * Shard `index`'s config. The rules (README, "Shards"):
 * - data in `<dataDir>/shard-<index>`;
 * - the member address is the node's advertised `host:port + index`, so its peer port (member
 *   port + peerPortOffset) is the node's peer port + index: peers dial the owning shard directly;
 * - HTTP stays on the node's port, shared by every shard (`reusePort`): clients use one address;
 * - shards 1.. also seed from shard 0's address, so a new node's shards find each other;
 * - every shard carries the same placement host (`defaultShardHost` unless set).
 */
export function shardConfig(config: NodeConfig, shard: ShardPosition): NodeConfig {
  const node = config.advertise;
  const advertise = `${hostOf(node)}:${portOf(node) + shard.index}`;
  const seeds = shard.index === 0 ? config.seeds : [...config.seeds.filter((seed) => seed !== node), node];
  const host = config.placement.host === '' ? defaultShardHost(node) : config.placement.host;
  return { ...config, advertise, seeds, dataDir: `${config.dataDir.replace(/\/+$/, '')}/shard-${shard.index}`, placement: { ...config.placement, host } };
}

/** The peer port shard `index` listens on: the node's peer port (port + peerPortOffset) + index. */
export function shardPeerPort(config: NodeConfig, shard: ShardPosition): number {
  return config.port + config.peerPortOffset + shard.index;
}
