import { Client, Pool } from 'undici';
import { RingClient, RingClientError } from '../src/client/ring-client.js';
import { type ShardRoute, ShardRouter, ringRoutesOf } from '../src/client/shard-router.js';
import { keyName } from './key-chooser.js';

/**
 * The request shapes the load generator drives. Every driver answers an operation with a
 * status label: '2xx' for success, else the HTTP status ('503', '404') or a network error code,
 * so the report can count errors by status without the loop knowing the protocol.
 */

/** What an operation ended as: 'ok', an HTTP status, or a network error code. */
export type Outcome = string;

/** The success outcome. */
export const okOutcome: Outcome = 'ok';

/** Sends one kind of system's reads and writes. */
export interface RequestDriver {
  /** Short name for reports. */
  readonly name: string;
  /** Writes the value under the key index. */
  put(keyIndex: number): Promise<Outcome>;
  /** Reads the key index; a missing key is the outcome '404'. */
  get(keyIndex: number): Promise<Outcome>;
  /** Closes every connection. */
  close(): Promise<void>;
}

/** The settings shared by every driver. */
export interface DriverOptions {
  /** host:port of every node; requests rotate over them so load is spread evenly. */
  readonly nodes: readonly string[];
  /** The value written by every put (the same bytes each time: its size is what matters). */
  readonly value: Buffer;
  /** Connections per node; at least the concurrency, so no request waits for a socket. */
  readonly connectionsPerNode: number;
  /** ringkv bucket. */
  readonly bucket: string;
  /** Query string of reads, with its '?', or ''. */
  readonly readQuery: string;
  /** Query string of writes, with its '?', or ''. */
  readonly writeQuery: string;
  /** Per-request timeout. */
  readonly timeoutMs: number;
  /**
   * ringkv in siblings mode: remember the causal context each key last answered with (from a
   * write or a read) and send it with the next write of that key, as a real client must; else
   * every blind overwrite becomes one more sibling and the objects grow without bound. The value
   * is the key space size (one slot per key); absent for lww buckets and other systems.
   */
  readonly contextSlots?: number;
  /** ringkv only: send each key to the ring member (shard) that owns it, as a shard-aware client does (README, "Shards"). */
  readonly shardAware?: boolean;
}

function networkOutcome(error: unknown): Outcome {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'network';
}

function pools(options: DriverOptions): Pool[] {
  return options.nodes.map(
    (node) =>
      new Pool(`http://${node}`, {
        connections: options.connectionsPerNode,
        keepAliveTimeout: 60_000,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
      }),
  );
}

/**
 * ringkv's request shape (PUT/GET /kv/:bucket/:key with r/w in the query) straight on undici
 * pools. Also drives the ceiling server, which takes the same shape. Used for the hot loop
 * because it is the thinnest client undici allows; `RingClientDriver` sends byte-identical
 * requests through the project's client for comparison.
 */
export class RawKvDriver implements RequestDriver {
  readonly name: string;
  private readonly pools: Pool[];
  private next = 0;
  private readonly prefix: string;
  private readonly putHeaders = { 'content-type': 'application/octet-stream' };
  private readonly contexts: (string | undefined)[] | undefined;
  private readonly router: ShardRouter | undefined;

  constructor(private readonly options: DriverOptions) {
    this.name = options.shardAware === true ? 'undici, shard-aware' : 'undici';
    this.pools = pools(options);
    this.prefix = `/kv/${encodeURIComponent(options.bucket)}/`;
    this.contexts = options.contextSlots === undefined ? undefined : new Array<string | undefined>(options.contextSlots);
    this.router =
      options.shardAware === true
        ? new ShardRouter({
            fetchRoutes: async () => {
              const response = await this.pool().request({ method: 'GET', path: '/status' });
              return ringRoutesOf(await response.body.json());
            },
            originOf: (address) => `http://${address}`,
            dial: (origin) => new Client(origin, { keepAliveTimeout: 60_000, headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs }),
            connectionsPerMember: options.connectionsPerNode,
            probeTimeoutMs: options.timeoutMs,
          })
        : undefined;
  }

  /** Where a request for the key goes: its owner's connection when shard-aware, else the next pool. */
  private async target(keyIndex: number): Promise<{ dispatcher: Pool | Client; route: ShardRoute | undefined }> {
    const route = this.router === undefined ? undefined : await this.router.route(this.options.bucket, keyName(keyIndex));
    return route === undefined ? { dispatcher: this.pool(), route } : { dispatcher: route.dispatcher as Client, route };
  }

  private remember(keyIndex: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.contexts === undefined) return;
    const context = headers['x-ringkv-context'];
    if (typeof context === 'string') this.contexts[keyIndex] = context;
  }

  private pool(): Pool {
    const pool = this.pools[this.next] as Pool;
    this.next = this.next + 1 === this.pools.length ? 0 : this.next + 1;
    return pool;
  }

  async put(keyIndex: number): Promise<Outcome> {
    const { dispatcher, route } = await this.target(keyIndex);
    try {
      const context = this.contexts?.[keyIndex];
      const response = await dispatcher.request({
        method: 'PUT',
        path: this.prefix + keyName(keyIndex) + this.options.writeQuery,
        headers: context === undefined ? this.putHeaders : { ...this.putHeaders, 'x-ringkv-context': context },
        body: this.options.value,
      });
      await response.body.dump();
      route?.settle(response.headers);
      this.remember(keyIndex, response.headers);
      return response.statusCode === 204 || response.statusCode === 200 ? okOutcome : String(response.statusCode);
    } catch (error) {
      route?.fail();
      return networkOutcome(error);
    }
  }

  async get(keyIndex: number): Promise<Outcome> {
    const { dispatcher, route } = await this.target(keyIndex);
    try {
      const response = await dispatcher.request({ method: 'GET', path: this.prefix + keyName(keyIndex) + this.options.readQuery });
      // The value is read, not dumped: a real reader pays for the bytes.
      await response.body.arrayBuffer();
      route?.settle(response.headers);
      this.remember(keyIndex, response.headers);
      return response.statusCode === 200 ? okOutcome : String(response.statusCode);
    } catch (error) {
      route?.fail();
      return networkOutcome(error);
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.map((pool) => pool.close().catch(() => undefined)), this.router?.close()]);
  }
}

/** ringkv through the project's `RingClient` (one attempt per request, so a retry never hides an error). */
export class RingClientDriver implements RequestDriver {
  readonly name = 'ring-client';
  private readonly client: RingClient;
  private readonly readOptions: { r?: number };
  private readonly writeOptions: { w?: number };
  private readonly bucket: string;
  private readonly value: Buffer;
  private readonly contexts: (string | undefined)[] | undefined;

  constructor(options: DriverOptions, quorum: { r?: number; w?: number }) {
    this.contexts = options.contextSlots === undefined ? undefined : new Array<string | undefined>(options.contextSlots);
    this.client = new RingClient({
      nodes: options.nodes,
      connectionsPerNode: options.connectionsPerNode,
      maxAttempts: 1,
      httpTimeoutMs: options.timeoutMs,
      shardAware: options.shardAware === true,
    });
    this.readOptions = quorum.r === undefined ? {} : { r: quorum.r };
    this.writeOptions = quorum.w === undefined ? {} : { w: quorum.w };
    this.bucket = options.bucket;
    this.value = options.value;
  }

  async put(keyIndex: number): Promise<Outcome> {
    try {
      const context = this.contexts?.[keyIndex];
      const written = await this.client.put(
        this.bucket,
        keyName(keyIndex),
        this.value,
        context === undefined ? this.writeOptions : { ...this.writeOptions, context },
      );
      if (this.contexts !== undefined) this.contexts[keyIndex] = written.context;
      return okOutcome;
    } catch (error) {
      return error instanceof RingClientError ? (error.status === 0 ? error.code : String(error.status)) : networkOutcome(error);
    }
  }

  async get(keyIndex: number): Promise<Outcome> {
    try {
      const read = await this.client.get(this.bucket, keyName(keyIndex), this.readOptions);
      if (this.contexts !== undefined && read.context !== undefined) this.contexts[keyIndex] = read.context;
      if (read.siblings.length > 1) return '300';
      return read.found ? okOutcome : '404';
    } catch (error) {
      return error instanceof RingClientError ? (error.status === 0 ? error.code : String(error.status)) : networkOutcome(error);
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/**
 * etcd v3 through its JSON gateway: POST /v3/kv/put and /v3/kv/range with base64 key and value.
 * Ranges are etcd's default linearizable reads (a read index round through the leader), the
 * closest match to a quorum read.
 */
export class EtcdDriver implements RequestDriver {
  readonly name = 'etcd-gateway';
  private readonly pools: Pool[];
  private next = 0;
  private readonly valueBase64: string;
  private readonly headers = { 'content-type': 'application/json' };

  constructor(options: DriverOptions) {
    this.pools = pools(options);
    this.valueBase64 = options.value.toString('base64');
  }

  private pool(): Pool {
    const pool = this.pools[this.next] as Pool;
    this.next = this.next + 1 === this.pools.length ? 0 : this.next + 1;
    return pool;
  }

  async put(keyIndex: number): Promise<Outcome> {
    try {
      const key = Buffer.from(keyName(keyIndex)).toString('base64');
      const response = await this.pool().request({
        method: 'POST',
        path: '/v3/kv/put',
        headers: this.headers,
        body: `{"key":"${key}","value":"${this.valueBase64}"}`,
      });
      await response.body.dump();
      return response.statusCode === 200 ? okOutcome : String(response.statusCode);
    } catch (error) {
      return networkOutcome(error);
    }
  }

  async get(keyIndex: number): Promise<Outcome> {
    try {
      const key = Buffer.from(keyName(keyIndex)).toString('base64');
      const response = await this.pool().request({ method: 'POST', path: '/v3/kv/range', headers: this.headers, body: `{"key":"${key}"}` });
      const answer = (await response.body.json()) as { kvs?: unknown[] };
      if (response.statusCode !== 200) return String(response.statusCode);
      return answer.kvs !== undefined && answer.kvs.length > 0 ? okOutcome : '404';
    } catch (error) {
      return networkOutcome(error);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((pool) => pool.close().catch(() => undefined)));
  }
}

/** Which request shape a run uses. */
export type DriverKind = 'undici' | 'ring-client' | 'etcd';

/** Builds a driver; r and w go into the query of ringkv requests when given. */
export function createDriver(kind: DriverKind, options: Omit<DriverOptions, 'readQuery' | 'writeQuery'>, quorum: { r?: number; w?: number }): RequestDriver {
  const readQuery = quorum.r === undefined ? '' : `?r=${quorum.r}`;
  const writeQuery = quorum.w === undefined ? '' : `?w=${quorum.w}`;
  const full: DriverOptions = { ...options, readQuery, writeQuery };
  if (kind === 'etcd') return new EtcdDriver(full);
  if (kind === 'ring-client') return new RingClientDriver(full, quorum);
  return new RawKvDriver(full);
}
