import type { ConnectionOptions } from 'node:tls';
import { type VersionRange, defaultMaxFrameBytes, protocolVersions } from '../core/wire/frames.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import type { PeerAddress, Transport } from '../ports/transport.js';
import { KvError } from '../util/errors.js';
import { PeerConnection } from './peer-connection.js';

/**
 * The two lanes to each peer. Replica reads and writes have a connection of their own, so a
 * large anti-entropy or handoff exchange, or a burst of gossip, never sits in front of them in
 * a socket buffer or behind them in a byte cap (Cassandra keeps small and large messages on
 * separate connections for the same reason).
 */
export type Lane = 'replica' | 'background';

/** The lane a message travels on. */
export function laneOf(message: PeerRequest): Lane {
  switch (message.type) {
    case 'replica-get':
    case 'coordinate-put':
    case 'forward-put':
    case 'replica-put':
    case 'dt-update':
    // SWIM's probes: a ping stuck behind a handoff page would be a false suspicion (memberlist sends them over UDP, apart from its TCP sync).
    case 'swim-ping':
    case 'swim-ping-req':
      return 'replica';
    default:
      return 'background';
  }
}

/** The default distance between a node's HTTP port and its peer port (see peerPortOf). */
export const defaultPeerPortOffset = 1000;

/**
 * Where a node's framed peer server listens, from the HTTP address gossip advertises: the same
 * host, the HTTP port plus `offset`. Every node applies the same rule on both sides (the server
 * listens there, the transport dials there), so the member record needs no second address.
 */
export function peerPortOf(address: PeerAddress, offset: number = defaultPeerPortOffset): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port + offset > 65_535 || port + offset < 1) {
    throw new KvError('KV_PEER_UNREACHABLE', `peer address '${address}' has no peer port (HTTP port + ${offset}); addresses are host:port`);
  }
  return { host: address.slice(0, colon), port: port + offset };
}

/** Settings of the framed transport; everything but the secret has a default. */
export interface FramedTransportOptions {
  /** The cluster secret the handshake proves (it never travels). */
  readonly secret: string;
  /** Logical address -> the address dialled instead, exactly (the chaos harness's per-link proxies, which must forward to the peer port). */
  readonly peerDialOverrides?: Readonly<Record<string, string>>;
  /** HTTP port -> peer port distance (default 1000). */
  readonly peerPortOffset?: number;
  /** Maps a peer's address to where its framed server listens; overrides peerPortOffset (tests dial servers on port 0). */
  readonly resolvePeer?: (address: PeerAddress) => { host: string; port: number };
  /** TLS options (at least the CA peers are verified against) when the cluster runs TLS. */
  readonly tls?: ConnectionOptions;
  readonly versions?: VersionRange;
  /** The largest frame sent or accepted (default 64 MiB). */
  readonly maxFrameBytes?: number;
  /** Request bytes in flight per peer and lane before more wait (default 16 MiB). */
  readonly maxInFlightBytesPerLane?: number;
  /** Requests in flight per peer and lane before more wait (default 1024). */
  readonly maxInFlightRequestsPerLane?: number;
  /** Request bytes waiting per peer and lane before new requests get KV_OVERLOADED (default 256 MiB). */
  readonly maxQueuedBytesPerLane?: number;
  /** Requests waiting per peer and lane before new ones get KV_OVERLOADED (default 10,000). */
  readonly maxQueuedRequestsPerLane?: number;
  /** How long connecting and the handshake may take (default 5 s). */
  readonly connectTimeoutMs?: number;
}

/**
 * Peer calls over persistent framed connections (src/core/wire/frames.ts): two lanes per peer,
 * each one TCP or TLS connection opened on first use and re-opened after it fails, with the
 * caps and back-pressure of PeerConnection. The counterpart of FramedPeerServer.
 */
export class FramedTransport implements Transport {
  /** Per peer, its open connection of each lane (a map per peer: the lookup is on every request). */
  private readonly connections = new Map<PeerAddress, Partial<Record<Lane, PeerConnection>>>();
  private closed = false;
  /** Connections opened, to observe reuse in tests. */
  connectionsOpened = 0;

  constructor(private readonly options: FramedTransportOptions) {}

  /**
   * Sends one message on its lane to the peer at `target` (its HTTP address, as gossip knows it).
   * The peer port is the only way to a peer: a refused or failed connection fails the request
   * (KV_PEER_UNREACHABLE) and nothing else is tried, so no downgrade can put the cluster secret,
   * or anything else, on another path.
   */
  request(target: PeerAddress, message: PeerRequest, options: { readonly timeoutMs: number }): Promise<PeerReply> {
    if (this.closed)
      return Promise.reject(
        new KvError('KV_PEER_UNREACHABLE', 'this node is stopping: its peer transport is closed, so no peer call is sent; send the request to another node'),
      );
    let connection: PeerConnection;
    try {
      connection = this.connection(target, laneOf(message));
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return connection.request(message, options.timeoutMs);
  }

  /** Closes every connection; requests on them fail with KV_PEER_UNREACHABLE. */
  close(): Promise<void> {
    this.closed = true;
    const lanes = [...this.connections.values()];
    this.connections.clear();
    for (const connections of lanes) for (const connection of Object.values(connections)) connection.close();
    return Promise.resolve();
  }

  /** The open connection of a peer's lane, or undefined (for tests). */
  connectionOf(target: PeerAddress, lane: Lane): PeerConnection | undefined {
    return this.connections.get(target)?.[lane];
  }

  /**
   * Where to dial a peer: an override is dialled exactly as given (a harness's proxy of that
   * link, which forwards to the peer port); otherwise the peer port rule applies to the address.
   */
  private dialAddress(target: PeerAddress): { host: string; port: number } {
    if (this.options.resolvePeer !== undefined) return this.options.resolvePeer(target);
    const override = this.options.peerDialOverrides?.[target];
    return override === undefined ? peerPortOf(target, this.options.peerPortOffset) : peerPortOf(override, 0);
  }

  private connection(target: PeerAddress, lane: Lane): PeerConnection {
    let lanes = this.connections.get(target);
    const existing = lanes?.[lane];
    if (existing !== undefined && !existing.closed) return existing;
    if (lanes === undefined) {
      lanes = {};
      this.connections.set(target, lanes);
    }
    const { host, port } = this.dialAddress(target);
    const connection = new PeerConnection({
      host,
      port,
      secret: this.options.secret,
      versions: this.options.versions ?? protocolVersions,
      tls: this.options.tls,
      maxFrameBytes: this.options.maxFrameBytes ?? defaultMaxFrameBytes,
      maxInFlightBytes: this.options.maxInFlightBytesPerLane ?? 16 * 1024 * 1024,
      maxInFlightRequests: this.options.maxInFlightRequestsPerLane ?? 1024,
      maxQueuedBytes: this.options.maxQueuedBytesPerLane ?? 256 * 1024 * 1024,
      maxQueuedRequests: this.options.maxQueuedRequestsPerLane ?? 10_000,
      connectTimeoutMs: this.options.connectTimeoutMs ?? 5_000,
      label: `peer ${target} (${lane} lane, ${host}:${port})`,
    });
    const owner = lanes;
    connection.onClosed = () => {
      if (owner[lane] === connection) delete owner[lane];
    };
    owner[lane] = connection;
    this.connectionsOpened += 1;
    return connection;
  }
}
