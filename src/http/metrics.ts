import type { AntiEntropyStatus } from '../engine/anti-entropy.js';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MemberStatus, NodeStatus } from '../engine/kv-service.js';
import type { HostShards } from '../engine/status.js';

/** The operations whose requests are counted and timed. */
export type MeteredOperation = 'get' | 'get_local' | 'put' | 'delete' | 'dt_get' | 'dt_update';

const memberStatuses: readonly MemberStatus['status'][] = ['joining', 'up', 'down', 'leaving'];

/** Latency buckets in seconds, from a local read (sub-millisecond) to a request timing out. */
const durationBucketsSeconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * A counter that mirrors a running total the node keeps itself (hints delivered, compactions):
 * Prometheus wants counters, and prom-client counters only go up, so each scrape adds the growth
 * since the last one.
 */
class MirroredCounter {
  private last = 0;

  constructor(private readonly counter: Counter) {}

  /** Raises the counter to `total` (a total that went down, as after a restart, restarts the mirror). */
  sync(total: number): void {
    if (total > this.last) this.counter.inc(total - this.last);
    this.last = total;
  }
}

/**
 * The Prometheus metrics of one HTTP app, in its own registry: tests build many apps in one
 * process, and the global registry would refuse the second registration of every name.
 */
export class HttpMetrics {
  /** This app's registry (never prom-client's global one). */
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'ringkv_requests_total',
    help: 'Client requests answered, by operation and HTTP status',
    labelNames: ['operation', 'status'],
    registers: [this.registry],
  });
  private readonly durations = new Histogram({
    name: 'ringkv_request_duration_seconds',
    help: 'Time from receiving a request to answering it, by operation',
    labelNames: ['operation'],
    buckets: durationBucketsSeconds,
    registers: [this.registry],
  });
  // Riak's operators asked for these two: how many siblings reads carry, and how big objects are.
  private readonly siblingsPerRead = new Histogram({
    name: 'ringkv_read_siblings',
    help: 'Live siblings a coordinated read answered with (1 for a plain value)',
    buckets: [1, 2, 3, 5, 10, 25, 50, 100],
    registers: [this.registry],
  });
  private readonly objectBytes = new Histogram({
    name: 'ringkv_read_object_bytes',
    help: 'Bytes of the live values a read answered with, all siblings together',
    buckets: [100, 1024, 10_240, 102_400, 1_048_576, 8_388_608],
    registers: [this.registry],
  });
  private readonly gauges = {
    keys: this.gauge('ringkv_keys_stored', 'Keys stored on this node (live and tombstones)'),
    hintsPending: this.gauge('ringkv_hints_pending', 'Hints held for other nodes, waiting for delivery'),
    members: this.gauge('ringkv_members', 'Cluster members as this node sees them, by status', ['status']),
    partitionsOwned: this.gauge('ringkv_partitions_owned', 'Ring partitions this node owns'),
    shards: this.gauge('ringkv_shards', "Ring members on this node's host (its shards, with --shards), by status", ['status']),
    storageBytes: this.gauge('ringkv_storage_bytes', "LevelDB's approximate size of the data on disk"),
    levelFiles: this.gauge('ringkv_storage_level_files', 'LevelDB SSTable files per level', ['level']),
    levelBytes: this.gauge('ringkv_storage_level_bytes', 'LevelDB bytes per level', ['level']),
    sinceFullExchange: this.gauge(
      'ringkv_anti_entropy_seconds_since_full_exchange',
      'Per partition this node replicates: seconds since every replica last agreed with it in an anti-entropy exchange',
      ['partition'],
    ),
    tombstonesPending: this.gauge('ringkv_tombstones_pending', 'Tombstones stored here and not reaped yet'),
  };
  private readonly mirrored = {
    hintsDelivered: this.mirroredCounter('ringkv_hints_delivered_total', 'Hints delivered to the node they were for'),
    hintsExpired: this.mirroredCounter('ringkv_hints_expired_total', 'Hints dropped after hintedHandoff.windowMs without delivery'),
    hintsDropped: this.mirroredCounter(
      'ringkv_hints_dropped_total',
      'Hints not stored because their target already had hintedHandoff.maxHintsPerTarget hints or maxBytesPerTarget bytes waiting (anti-entropy repairs what they carried)',
    ),
    compactions: this.mirroredCounter('ringkv_storage_compactions_total', 'LevelDB compactions since the database was opened'),
    exchanges: this.mirroredCounter('ringkv_anti_entropy_exchanges_total', 'Anti-entropy exchanges this node started'),
    keysRepaired: this.mirroredCounter('ringkv_anti_entropy_keys_repaired_total', 'Keys anti-entropy changed on this node or on a peer it exchanged with'),
    bytesExchanged: this.mirroredCounter('ringkv_anti_entropy_bytes_total', 'Bytes of anti-entropy messages this node sent and received'),
    tombstonesReaped: this.mirroredCounter('ringkv_tombstones_reaped_total', 'Tombstones removed after every replica had them and the grace period passed'),
    gossipBytesSent: this.mirroredCounter(
      'ringkv_gossip_bytes_sent_total',
      'Bytes of SWIM membership frames this node sent, requests and replies, frame headers included',
    ),
    gossipRounds: this.mirroredCounter('ringkv_gossip_rounds_total', 'SWIM protocol periods (gossip.intervalMs) this node has run'),
    manySiblingWrites: this.mirroredCounter('ringkv_sibling_warnings_total', 'Coordinated writes that left a key with more than limits.siblingsWarn siblings'),
    siblingRefusals: this.mirroredCounter(
      'ringkv_sibling_refusals_total',
      'Writes without a context refused because their key had limits.maxSiblings siblings (409 KV_TOO_MANY_SIBLINGS)',
    ),
    forwardedWrites: this.mirroredCounter(
      'ringkv_writes_forwarded_total',
      'Client writes taken for a key this node holds no replica of, handed whole to its coordinating replica (a shard-aware client sends none)',
    ),
    offReplicaReads: this.mirroredCounter(
      'ringkv_reads_off_replica_total',
      'Client reads taken for a key this node holds no replica of, answered by asking other members (a shard-aware client sends none)',
    ),
    staleVersionsRefused: this.mirroredCounter(
      'ringkv_stale_versions_refused_total',
      'Pushed versions refused because a tombstone reaped on this node had superseded them (each would have brought a deleted key back)',
    ),
  };

  private gauge(name: string, help: string, labelNames: string[] = []): Gauge {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  private mirroredCounter(name: string, help: string): MirroredCounter {
    return new MirroredCounter(new Counter({ name, help, registers: [this.registry] }));
  }

  /** Records one answered request. */
  observe(operation: MeteredOperation, statusCode: number, durationSeconds: number): void {
    this.requests.inc({ operation, status: String(statusCode) });
    this.durations.observe({ operation }, durationSeconds);
  }

  /** Records what one read answered: its live siblings and their bytes. */
  observeRead(siblings: number, bytes: number): void {
    this.siblingsPerRead.observe(siblings);
    this.objectBytes.observe(bytes);
  }

  /** The content type of the exposition text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Fills the gauges from the node's status (read once per scrape) and renders the text format. */
  async render(status: NodeStatus): Promise<string> {
    this.gauges.keys.set(status.storage.keys);
    this.gauges.hintsPending.set(status.hints.pending);
    this.mirrored.hintsDelivered.sync(status.hints.delivered);
    this.mirrored.hintsExpired.sync(status.hints.expired);
    this.mirrored.hintsDropped.sync(status.hints.dropped ?? 0);
    const siblings = status.siblings as { manyWrites?: number; refused?: number } | undefined;
    this.mirrored.manySiblingWrites.sync(siblings?.manyWrites ?? 0);
    this.mirrored.siblingRefusals.sync(siblings?.refused ?? 0);
    for (const memberStatus of memberStatuses) {
      this.gauges.members.set({ status: memberStatus }, status.members.filter((member) => member.status === memberStatus).length);
    }
    const shards = (status.shards as HostShards | undefined)?.members ?? [];
    for (const memberStatus of memberStatuses)
      this.gauges.shards.set({ status: memberStatus }, shards.filter((member) => member.status === memberStatus).length);
    this.gauges.partitionsOwned.set(status.members.find((member) => member.id === status.node.id)?.partitionsOwned ?? 0);
    this.gauges.storageBytes.set(status.storage.approximateBytes);
    this.mirrored.compactions.sync(status.storage.compactions);
    // Reset first so a level that no longer reports does not keep a stale figure.
    this.gauges.levelFiles.reset();
    this.gauges.levelBytes.reset();
    for (const level of status.storage.levels) {
      this.gauges.levelFiles.set({ level: String(level.level) }, level.files);
      this.gauges.levelBytes.set({ level: String(level.level) }, level.bytes);
    }
    const gossip = status.gossip as { bytesSent?: number; rounds?: number } | undefined;
    this.mirrored.gossipBytesSent.sync(gossip?.bytesSent ?? 0);
    this.mirrored.gossipRounds.sync(gossip?.rounds ?? 0);
    const offReplica = status.offReplica as { forwardedWrites: number; reads: number } | undefined;
    this.mirrored.forwardedWrites.sync(offReplica?.forwardedWrites ?? 0);
    this.mirrored.offReplicaReads.sync(offReplica?.reads ?? 0);
    this.renderAntiEntropy(status);
    return this.registry.metrics();
  }

  private renderAntiEntropy(status: NodeStatus): void {
    const antiEntropy = status.antiEntropy as AntiEntropyStatus | undefined;
    if (antiEntropy === undefined) return;
    this.mirrored.exchanges.sync(antiEntropy.exchanges);
    this.mirrored.keysRepaired.sync(antiEntropy.keysRepaired);
    this.mirrored.bytesExchanged.sync(antiEntropy.bytesExchanged);
    this.mirrored.tombstonesReaped.sync(antiEntropy.tombstonesReaped);
    this.mirrored.staleVersionsRefused.sync(antiEntropy.staleVersionsRefused ?? 0);
    this.gauges.tombstonesPending.set(antiEntropy.tombstonesPending);
    this.gauges.sinceFullExchange.reset();
    for (const [partition, ageMs] of Object.entries(antiEntropy.lastFullExchangeAgeMs)) {
      this.gauges.sinceFullExchange.set({ partition }, ageMs / 1000);
    }
  }
}
