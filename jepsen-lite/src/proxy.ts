/**
 * The links between nodes. Every ordered pair of nodes (i -> j) gets a TCP proxy of its own, to
 * node j's peer port (HTTP port + peerPortOffset, where ringkv nodes talk to each other): node i
 * dials node j through it (ringkv's `--peer-map`), so the harness can cut exactly that link.
 *
 * A cut link behaves like iptables DROP, not REJECT: connections stay open and new ones are
 * accepted, but no byte moves in either direction. The proxy does this by pausing both sockets,
 * so the kernel's buffers fill and senders stall as they would while TCP retransmits into a
 * black hole; when the link heals, the held bytes flow on, just as retransmissions get through
 * after a real partition heals. Peers notice the partition only through their own timeouts.
 * Clients (the workloads) reach the nodes' HTTP ports directly: only node-to-node traffic is cut.
 */
import { type Server, type Socket, connect, createServer } from 'node:net';

/** One proxied TCP connection: the side node i opened, and the side the proxy opened to node j. */
class Conduit {
  private readonly held: { from: Socket; to: Socket; chunk: Buffer }[] = [];
  private upstreamClosedWhileCut = false;

  constructor(
    readonly downstream: Socket,
    readonly upstream: Socket,
    private readonly isCut: () => boolean,
    private readonly onClosed: (conduit: Conduit) => void,
    /** Told of every chunk forwarded. */
    private readonly count: (bytes: number) => void = () => undefined,
  ) {
    this.pump(downstream, upstream);
    this.pump(upstream, downstream);
    // Node i closing a connection frees both ends. While the link is cut the paused socket cannot
    // see that close, just as a black hole would swallow the FIN; it arrives when the link heals.
    downstream.on('close', () => this.destroy());
    upstream.on('close', () => {
      if (this.isCut()) this.upstreamClosedWhileCut = true;
      else this.destroy();
    });
    downstream.on('error', () => undefined);
    upstream.on('error', () => undefined);
    if (isCut()) this.cut();
  }

  private pump(from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (this.isCut()) {
        // A chunk read just before the pause took effect is held, never forwarded during the cut.
        this.held.push({ from, to, chunk });
        from.pause();
        return;
      }
      this.count(chunk.length);
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => {
      if (!this.isCut()) from.resume();
    });
    from.on('end', () => to.end());
  }

  /** Stops every byte, both ways. */
  cut(): void {
    this.downstream.pause();
    this.upstream.pause();
  }

  /** Lets the held bytes and everything after them through again. */
  mend(): void {
    if (this.upstreamClosedWhileCut) {
      // Node j went away during the cut (killed): node i learns it now, as a late RST would tell it.
      this.destroy();
      return;
    }
    for (const { to, chunk } of this.held.splice(0)) {
      this.count(chunk.length);
      to.write(chunk);
    }
    this.downstream.resume();
    this.upstream.resume();
  }

  /** Closes both sides. */
  destroy(): void {
    this.downstream.destroy();
    this.upstream.destroy();
    this.onClosed(this);
  }
}

/** The proxy of one directed link, node `from` dialling node `to`. */
export class LinkProxy {
  private server: Server | undefined;
  private readonly conduits = new Set<Conduit>();
  private isCutNow = false;
  /** Bytes moved through the link, both ways together (held bytes count once they move). */
  bytesForwarded = 0;
  /**
   * What the link carried while healed before each cut, and while cut (which must be nothing):
   * proof that a partition stopped traffic that was flowing. Times from `now`.
   */
  readonly cutStats = { cuts: 0, bytesBefore: 0, msBefore: 0, bytesDuring: 0, msDuring: 0 };
  private healedSinceMs: number;
  private bytesAtHeal = 0;
  private cutSinceMs = 0;
  private bytesAtCut = 0;

  constructor(
    /** Index of the dialling node. */
    readonly from: number,
    /** Index of the dialled node. */
    readonly to: number,
    /** The loopback port this proxy listens on (0: any free port). */
    readonly listenPort: number,
    /** The port of node `to`. */
    readonly targetPort: number,
    /** Connections the link keeps at most; beyond it the oldest are closed (a bounded resource). */
    private readonly maxConnections = 64,
    /** The clock of cutStats, in ms. */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.healedSinceMs = now();
  }

  /** Whether the link is cut now. */
  get cut(): boolean {
    return this.isCutNow;
  }

  /** The port the proxy listens on: listenPort, or the one the system chose when that was 0. */
  get port(): number {
    const address = this.server?.address();
    return typeof address === 'object' && address !== null ? address.port : this.listenPort;
  }

  /** Open connections (for tests and status). */
  get connectionCount(): number {
    return this.conduits.size;
  }

  /** Starts listening on 127.0.0.1:listenPort. */
  async start(): Promise<void> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (downstream) => this.accept(downstream));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
  }

  private accept(downstream: Socket): void {
    // Accepting while cut is the point: a dropped SYN-ACK path looks like a hang, not a refusal.
    const upstream = connect({ host: '127.0.0.1', port: this.targetPort, allowHalfOpen: true });
    upstream.pause();
    const conduit = new Conduit(
      downstream,
      upstream,
      () => this.isCutNow,
      (closed) => this.conduits.delete(closed),
      (bytes) => {
        this.bytesForwarded += bytes;
      },
    );
    this.conduits.add(conduit);
    if (!this.isCutNow) {
      downstream.resume();
      upstream.resume();
    }
    if (this.conduits.size > this.maxConnections) {
      const oldest = this.conduits.values().next().value;
      oldest?.destroy();
    }
  }

  /** Cuts the link: every byte on every connection, new ones included, stops. */
  sever(): void {
    if (this.isCutNow) return;
    this.isCutNow = true;
    const nowMs = this.now();
    this.cutStats.cuts += 1;
    this.cutStats.bytesBefore += this.bytesForwarded - this.bytesAtHeal;
    this.cutStats.msBefore += nowMs - this.healedSinceMs;
    this.cutSinceMs = nowMs;
    this.bytesAtCut = this.bytesForwarded;
    for (const conduit of this.conduits) conduit.cut();
  }

  /** Heals the link. */
  heal(): void {
    if (!this.isCutNow) return;
    this.isCutNow = false;
    const nowMs = this.now();
    this.cutStats.bytesDuring += this.bytesForwarded - this.bytesAtCut;
    this.cutStats.msDuring += nowMs - this.cutSinceMs;
    for (const conduit of [...this.conduits]) conduit.mend();
    this.healedSinceMs = nowMs;
    this.bytesAtHeal = this.bytesForwarded;
  }

  /** Closes every connection and stops listening. */
  async stop(): Promise<void> {
    for (const conduit of [...this.conduits]) conduit.destroy();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** One proxy's traffic, for run.json and the summary. */
export interface LinkCounters {
  readonly from: number;
  readonly to: number;
  /** Which shard of node `to` the link reaches (0 for nodes of one shard). */
  readonly toShard: number;
  readonly bytesForwarded: number;
  /** See LinkProxy.cutStats. */
  readonly cuts: number;
  readonly bytesBeforeCuts: number;
  readonly msBeforeCuts: number;
  readonly bytesDuringCuts: number;
  readonly msDuringCuts: number;
}

/**
 * Every directed link of an n-node cluster. A partition is a set of unordered node pairs that
 * cannot talk; both directions of each pair are cut, as a real network partition cuts both.
 *
 * A node of several shards (`ringkv start --shards S`) is S ring members, shard s at the node's
 * port + s with its peer port + s. Node i then has a proxy to each shard of node j, and the
 * node's one `--peer-map` (every shard of it gets the same command line) sends each of its shards
 * through them, so a partition between two nodes cuts every shard of one from every shard of the
 * other, as a network partition between two hosts would. Shards of one node talk directly (one
 * host: no network between them to cut).
 */
export class LinkNetwork {
  private readonly links: { readonly proxy: LinkProxy; readonly toShard: number }[] = [];

  constructor(
    readonly nodeCount: number,
    readonly shardCount: number,
    /** The port shard s of node i (0-based) is known by: its member address's port (the node's HTTP port + s). */
    private readonly memberPort: (node: number, shard: number) => number,
    /** The peer port of shard s of node i, where the proxies of the links to it forward. */
    memberPeerPort: (node: number, shard: number) => number,
    /** Port of the proxy of link i -> shard s of node j. */
    private readonly proxyPort: (from: number, to: number, shard: number) => number,
  ) {
    for (let from = 0; from < nodeCount; from++) {
      for (let to = 0; to < nodeCount; to++) {
        if (from === to) continue;
        for (let shard = 0; shard < shardCount; shard++)
          this.links.push({ proxy: new LinkProxy(from, to, proxyPort(from, to, shard), memberPeerPort(to, shard)), toShard: shard });
      }
    }
  }

  /** Starts every proxy. */
  async start(): Promise<void> {
    await Promise.all(this.links.map((link) => link.proxy.start()));
  }

  /**
   * The `--peer-map` of node `from` (of each of its shards): each other node's shards' addresses
   * mapped to the proxies of the links to them (ringkv dials a mapped address exactly as given,
   * with no peer port offset added).
   */
  peerMap(from: number): string {
    const entries: string[] = [];
    for (let to = 0; to < this.nodeCount; to++) {
      if (to === from) continue;
      for (let shard = 0; shard < this.shardCount; shard++)
        entries.push(`127.0.0.1:${this.memberPort(to, shard)}=127.0.0.1:${this.proxyPort(from, to, shard)}`);
    }
    return entries.join(',');
  }

  /** Every proxy's traffic so far. */
  counters(): LinkCounters[] {
    return this.links.map(({ proxy: link, toShard }) => ({
      from: link.from,
      to: link.to,
      toShard,
      bytesForwarded: link.bytesForwarded,
      cuts: link.cutStats.cuts,
      bytesBeforeCuts: link.cutStats.bytesBefore,
      msBeforeCuts: Math.round(link.cutStats.msBefore),
      bytesDuringCuts: link.cutStats.bytesDuring,
      msDuringCuts: Math.round(link.cutStats.msDuring),
    }));
  }

  /** Cuts both directions between each pair (0-based node indexes), every shard of each; other links are healed. */
  partition(blockedPairs: readonly (readonly [number, number])[]): void {
    const blocked = new Set(blockedPairs.flatMap(([left, right]) => [`${left}>${right}`, `${right}>${left}`]));
    for (const { proxy: link } of this.links) {
      if (blocked.has(`${link.from}>${link.to}`)) link.sever();
      else link.heal();
    }
  }

  /** Heals every link. */
  healAll(): void {
    for (const link of this.links) link.proxy.heal();
  }

  /** The node pairs with a cut link now, as "from>to" with 0-based node indexes. */
  cutLinks(): string[] {
    return [...new Set(this.links.filter((link) => link.proxy.cut).map(({ proxy: link }) => `${link.from}>${link.to}`))];
  }

  /** Stops every proxy. */
  async stop(): Promise<void> {
    await Promise.all(this.links.map((link) => link.proxy.stop()));
  }
}
