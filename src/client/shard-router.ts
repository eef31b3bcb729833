import { hash } from 'node:crypto';
import { Client, type Dispatcher } from 'undici';

/**
 * Shard-aware routing (README, "Shards"), as ScyllaDB's drivers do: the client learns the ring
 * (which member owns each partition, and each member's address) from a node's /status and sends
 * a request for a key straight to the member that owns the key's partition, so no node has to
 * hand it on to a replica. Shard i >= 1 of a node serves HTTP on its own member address; shard 0's
 * member address is the node's shared port, where the kernel picks a shard per connection: every
 * answer names the member that gave it (`x-ringkv-member`), and a new connection that reached
 * another shard is closed and dialled again before it carries a request, as Scylla's drivers
 * kept opening connections to the shared port until each shard had its own.
 */

/** The header every ringkv answer carries: the id of the ring member that gave it (src/http/app.ts). */
export const memberHeader = 'x-ringkv-member';

/** What the router needs of a node's /status. */
export interface RingRoutes {
  readonly partitionCount: number;
  /** owners[p]: the member that owns partition p, the first of its preference list. */
  readonly owners: readonly string[];
  /** Every member's id and address (host:port), where it serves HTTP. */
  readonly members: readonly { readonly id: string; readonly address: string; readonly status: string }[];
}

/** The routing part of a node's /status: its ring's owners and the members' addresses (an error while it has no ring yet). */
export function ringRoutesOf(status: unknown): RingRoutes {
  const report = status as { partitionCount?: number; ring?: { owners?: string[] } | null; members?: { id: string; address: string; status: string }[] } | null;
  const owners = report?.ring?.owners;
  if (report?.partitionCount === undefined || owners === undefined || report.members === undefined) throw new Error('the node has no ring yet');
  return { partitionCount: report.partitionCount, owners, members: report.members };
}

/**
 * The partition of a bucket/key: the first 32 bits of SHA-1(bucket, 0x00, key) scaled to the
 * partition count (a power of two), exactly as the nodes place keys (`partitionOf` in
 * src/core/keys.ts, which the separately built client cannot import; test/client/shard-router.test.ts checks that the two agree).
 */
export function keyPartition(bucket: string, key: string, partitionCount: number): number {
  const position = hash('sha1', `${bucket}\u0000${key}`, 'buffer').readUInt32BE(0);
  return Math.floor(position / (2 ** 32 / partitionCount));
}

/** New connections in a row that reached another member before the member is routed the shard-unaware way (its shard may be down). */
const maxMisses = 32;

interface Connection {
  readonly client: Client;
  inFlight: number;
}

/**
 * The connections to one member's address that reach that member. A new connection is asked who
 * answers it (GET /health, whose answer names its member) before any request goes on it; one
 * that reached another shard is closed and another dialled, so no request is sent down a
 * connection to the wrong shard.
 */
class MemberConnections {
  private readonly connections: Connection[] = [];
  private dialling = 0;
  private misses = 0;

  constructor(
    readonly member: string,
    private readonly limit: number,
    private readonly dial: () => Client,
    private readonly probe: (client: Client) => Promise<string | undefined>,
  ) {}

  /** The least busy connection to the member, or a new one while all are busy and the limit allows; undefined when new connections keep reaching other members. */
  async take(): Promise<Connection | undefined> {
    for (;;) {
      let best: Connection | undefined;
      for (const connection of this.connections) if (best === undefined || connection.inFlight < best.inFlight) best = connection;
      const full = this.connections.length + this.dialling >= this.limit;
      if (best !== undefined && (best.inFlight === 0 || full)) {
        best.inFlight++;
        return best;
      }
      if (this.misses >= maxMisses) return undefined;
      if (full) {
        // Every slot is being dialled: wait for the dials, then look again.
        await new Promise((resolve) => setTimeout(resolve, 1));
        continue;
      }
      const connection = await this.connect();
      if (connection !== undefined) {
        connection.inFlight++;
        return connection;
      }
    }
  }

  /** Dials one connection and keeps it when the member answers on it. */
  private async connect(): Promise<Connection | undefined> {
    this.dialling++;
    const client = this.dial();
    let answeredBy: string | undefined;
    try {
      answeredBy = await this.probe(client);
    } catch {
      answeredBy = undefined;
    } finally {
      this.dialling--;
    }
    if (answeredBy !== this.member) {
      this.misses++;
      client.destroy().catch(() => undefined);
      return undefined;
    }
    this.misses = 0;
    const connection: Connection = { client, inFlight: 0 };
    this.connections.push(connection);
    return connection;
  }

  /** Notes who answered on `connection`: one that now reaches another member (it was dialled again after a close) is dropped. */
  settle(connection: Connection, answeredBy: string | undefined): void {
    connection.inFlight--;
    if (answeredBy !== undefined && answeredBy !== this.member) this.remove(connection);
  }

  /** A connection failed: drop it, so the next request dials anew. */
  drop(connection: Connection): void {
    connection.inFlight--;
    this.remove(connection);
  }

  private remove(connection: Connection): void {
    const index = this.connections.indexOf(connection);
    if (index >= 0) this.connections.splice(index, 1);
    connection.client.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    const connections = this.connections.splice(0);
    await Promise.all(connections.map((connection) => connection.client.close().catch(() => undefined)));
  }
}

/** One request's way to a key's owner: its dispatcher, and what to call when its answer (or failure) is in. */
export interface ShardRoute {
  /** The member the request goes to. */
  readonly member: string;
  /** Its address as an origin (scheme://host:port). */
  readonly origin: string;
  readonly dispatcher: Dispatcher;
  /** Call with the answer's headers once it is in. */
  settle(headers: Record<string, string | string[] | undefined>): void;
  /** Call when the exchange failed (no answer). */
  fail(): void;
}

/** Settings of a {@link ShardRouter}. */
export interface ShardRouterOptions {
  /** Reads a node's /status (any node: every member knows the ring). */
  readonly fetchRoutes: () => Promise<RingRoutes>;
  /** scheme://host:port of a member address. */
  readonly originOf: (address: string) => string;
  /** Dials one connection to an origin. */
  readonly dial: (origin: string) => Client;
  /** Timeout of the GET /health that asks a new connection who answers it. */
  readonly probeTimeoutMs: number;
  /** Connections per member. */
  readonly connectionsPerMember: number;
  /** How often the ring is read again. Default 10 s. */
  readonly refreshMs?: number;
  /** The clock (milliseconds). Default Date.now. */
  readonly nowMs?: () => number;
}

/**
 * Routes each key to the member that owns it. The ring is read before the first route and again
 * every `refreshMs` (in the background once one is known); until a ring is known, for a key whose
 * owner is not up in it, and for an owner whose address keeps reaching other members, `route`
 * answers undefined and the caller sends the request the shard-unaware way.
 */
export class ShardRouter {
  private routes: RingRoutes | undefined;
  private readAtMs = Number.NEGATIVE_INFINITY;
  private reading: Promise<void> | undefined;
  private readonly members = new Map<string, MemberConnections>();
  private readonly nowMs: () => number;

  constructor(private readonly options: ShardRouterOptions) {
    this.nowMs = options.nowMs ?? Date.now;
  }

  /** The route to the owner of bucket/key, reading the ring first when none is known yet. */
  async route(bucket: string, key: string): Promise<ShardRoute | undefined> {
    // At most one read per refreshMs, even while no ring is known (a node without one yet is not asked per request).
    if (this.nowMs() - this.readAtMs >= (this.options.refreshMs ?? 10_000)) {
      if (this.routes === undefined) await this.read();
      else void this.read();
    }
    const routes = this.routes;
    if (routes === undefined) return undefined;
    const owner = routes.owners[keyPartition(bucket, key, routes.partitionCount)];
    const member = routes.members.find((each) => each.id === owner);
    if (member === undefined || member.status !== 'up') return undefined;
    const origin = this.options.originOf(member.address);
    const slot = this.slotOf(member.id, origin);
    let owned = this.members.get(slot);
    if (owned === undefined) {
      owned = new MemberConnections(
        member.id,
        this.options.connectionsPerMember,
        () => this.options.dial(origin),
        async (client) => this.probe(client),
      );
      this.members.set(slot, owned);
    }
    const connections = owned;
    const connection = await connections.take();
    if (connection === undefined) return undefined;
    return {
      member: member.id,
      origin,
      dispatcher: connection.client,
      settle: (headers) => {
        const answeredBy = headers[memberHeader];
        connections.settle(connection, Array.isArray(answeredBy) ? answeredBy[0] : answeredBy);
      },
      fail: () => connections.drop(connection),
    };
  }

  /** Asks a new connection who answers on it: GET /health (open without a token), whose answer names its member. */
  private async probe(client: Client): Promise<string | undefined> {
    const timeoutMs = this.options.probeTimeoutMs;
    const response = await client.request({ method: 'GET', path: '/health', headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    await response.body.dump();
    const member = response.headers[memberHeader];
    return Array.isArray(member) ? member[0] : member;
  }

  /** Reads the ring (one read at a time); a failed read keeps the last ring and is tried again at the next refresh. */
  private async read(): Promise<void> {
    this.reading ??= this.options
      .fetchRoutes()
      .then(
        (routes) => {
          this.routes = routes;
          this.closeDeparted(routes);
        },
        () => undefined,
      )
      .finally(() => {
        this.readAtMs = this.nowMs();
        this.reading = undefined;
      });
    await this.reading;
  }

  /** Closes the connections to members that are no longer in the ring, or no longer at that address, so they do not pile up as members come and go. */
  private closeDeparted(routes: RingRoutes): void {
    const current = new Set(routes.members.map((member) => this.slotOf(member.id, this.options.originOf(member.address))));
    for (const [slot, connections] of this.members) {
      if (current.has(slot)) continue;
      this.members.delete(slot);
      // A request still on one of them finishes first: undici's close waits for it.
      connections.close().catch(() => undefined);
    }
  }

  private slotOf(member: string, origin: string): string {
    return `${member} ${origin}`;
  }

  async close(): Promise<void> {
    const members = [...this.members.values()];
    this.members.clear();
    await Promise.all(members.map((each) => each.close()));
  }
}
