import { Client, type Dispatcher, Pool } from 'undici';
import { type ShardRoute, ShardRouter, ringRoutesOf } from './shard-router.js';
import { SseParser, type ServerSentEvent } from './sse.js';

/**
 * A small client for ringkv applications and tools (the CLI, bench and jepsen-lite use it). It
 * carries causal contexts for the caller, returns siblings with a helper to resolve them, and
 * retries on another node only when that cannot apply a write twice by surprise.
 */

/** A quorum as a request may ask for it. */
export type Quorum = number | 'one' | 'quorum' | 'all';

/** A consistency level: sets r and w together (an explicit r or w wins). */
export type Consistency = 'one' | 'quorum' | 'all';

/** Per-request options of a read. */
export interface ReadRequestOptions {
  /** Replicas that must answer. */
  readonly r?: Quorum;
  /** Of those, primaries that must answer. */
  readonly pr?: Quorum;
  /** one, quorum or all for r (an explicit r wins). */
  readonly consistency?: Consistency;
  /** How long the coordinating node waits for replicas (the server's timeout_ms). */
  readonly timeoutMs?: number;
  /** Read only the contacted node's own copy (no coordination, no read repair). */
  readonly local?: boolean;
  /** Ask this node (host:port or a URL) rather than the next one in rotation; no other node is tried. */
  readonly node?: string;
}

/** Per-request options of a put: a write's, and when the value expires. */
export interface PutRequestOptions extends WriteRequestOptions {
  /** Seconds until the value expires (the server's `ttl`, 1 to ten years); omit for the bucket's ttlSeconds. */
  readonly ttlSeconds?: number;
  /** Consistent buckets only: attach the key to this lease ({@link RingClient.grantLease}); it is deleted when the lease ends. */
  readonly lease?: string;
}

/** A granted or kept-alive lease (README, "Leases and ephemeral keys"). */
export interface LeaseGrant {
  readonly id: string;
  readonly ttlSeconds: number;
}

/** What {@link RingClient.lease} answers. */
export interface LeaseInfo extends LeaseGrant {
  readonly keepAlives: number;
  /** Seconds before the answering node's sweeper may end it, when that node is the one watching it. */
  readonly remainingSeconds?: number;
  readonly keys: readonly { readonly bucket: string; readonly key: string }[];
}

/** Options of {@link RingClient.lock} and {@link RingClient.electLeader}. */
export interface LockOptions {
  /** The consistent bucket that holds the lock's key. Default 'locks'. */
  readonly bucket?: string;
  /** The lease's ttl in seconds; the lease is kept alive every ttl/3 until released. Default 10. */
  readonly ttlSeconds?: number;
  /** How long to wait between attempts while another holder has it. Default 250 ms. */
  readonly retryMs?: number;
  /** Gives up waiting (the promise rejects with the signal's reason). */
  readonly signal?: AbortSignal;
  /** Called once if the lease is lost before release (a keep-alive found it ended): stop using the token. */
  readonly onLost?: (error: RingClientError) => void;
}

/**
 * A held lock, or a won election. `token` is the key's version when it was taken: it grows with
 * every holder, so a storage service that remembers the highest token it saw can refuse a
 * paused former holder (Kleppmann's fencing token).
 */
export interface LockHandle {
  readonly token: number;
  /** The lease that keeps it. */
  readonly lease: string;
  /** Stops the keep-alives and revokes the lease, which deletes the key: the next waiter takes it. */
  release(): Promise<void>;
}

/** What {@link RingClient.leader} answers: the elected candidate and its token. */
export interface LeaderInfo {
  readonly candidate: string;
  readonly token: number;
  readonly lease: string | undefined;
}

/** Per-request options of a write or delete. */
export interface WriteRequestOptions {
  /** Replicas that must acknowledge. */
  readonly w?: Quorum;
  /** Of those, primaries that must acknowledge. */
  readonly pw?: Quorum;
  /** Replicas that must have fsynced the write. */
  readonly dw?: Quorum;
  /** one, quorum or all for w (an explicit w wins). */
  readonly consistency?: Consistency;
  /** How long the coordinating node waits for replicas (the server's timeout_ms). */
  readonly timeoutMs?: number;
  /**
   * The causal context of the read this write follows, or of this client's own last write of the
   * key; omit for a blind write. It supersedes only what it covers: a write context covers the
   * version that write made, never a concurrent sibling its writer did not see.
   */
  readonly context?: string;
  /** The value's content type; default application/octet-stream. */
  readonly contentType?: string;
  /** `put` only: write only where no live value exists (If-None-Match: *); else a 412 KV_PRECONDITION_FAILED error. */
  readonly ifNoneMatch?: boolean;
  /**
   * Write only where the current version is exactly the one this read context names (If-Match);
   * else 412. `put` only, or a `delete` of a consistent bucket's key (its context is its version).
   */
  readonly ifMatch?: string;
  /** Retry on another node even when the first attempt's outcome is unknown (may apply twice). */
  readonly retryUnknown?: boolean;
  /** Ask this node (host:port or a URL) rather than the next one in rotation; no other node is tried. */
  readonly node?: string;
}

/** One version of a value. */
export interface StoredValue {
  /** The exact bytes written. */
  readonly value: Buffer;
  /** The content type it was written with. */
  readonly contentType: string;
  /** When it was written (ISO 8601 for siblings, HTTP date for a single value). */
  readonly lastModified: string;
}

/** What a read returns: no value, one value, or siblings. */
export interface ReadResult {
  /** False when no live value exists (never written, or deleted). */
  readonly found: boolean;
  /** The causal context to send back with the next write of this key (present for tombstones too). */
  readonly context: string | undefined;
  /** The live versions: empty when not found, one normally, several for concurrent writes. */
  readonly siblings: readonly StoredValue[];
  /**
   * Consistent buckets only (x-ringkv-version): the key's version, which grows with every write
   * and delete of the key (a fencing token); its `context` is the same number as text.
   */
  readonly version?: number;
  /** Consistent buckets only (x-ringkv-lease): the lease the key was written with. */
  readonly lease?: string;
}

/** What a write returns. */
export interface WriteResult {
  /**
   * The causal context of this write: what its own context covered plus the version it made.
   * Pass it to the next write of this key to supersede this write; concurrent siblings stay
   * (read, then {@link RingClient.resolve}, to merge them).
   */
  readonly context: string;
  /** Consistent buckets only (x-ringkv-version): the version this write made. */
  readonly version?: number;
}

/** The x-ringkv-version of an answer (consistent buckets), as an object field to spread. */
function leaseGrantOf(answer: HttpAnswer): LeaseGrant {
  const parsed = JSON.parse(answer.body.toString('utf8')) as { id: string; ttl: number };
  return { id: parsed.id, ttlSeconds: parsed.ttl };
}

function versionOf(answer: HttpAnswer): { version: number } | Record<string, never> {
  const text = header(answer, 'x-ringkv-version');
  return text === undefined ? {} : { version: Number(text) };
}

/** What a merge function may return: bytes or text, or a value with its own content type. */
export type MergedValue = Uint8Array | string | { readonly value: Uint8Array | string; readonly contentType: string };

/** Options of {@link RingClient.resolve}: those of the read and of the write, and optionally the read to resolve. */
export interface ResolveOptions extends ReadRequestOptions, Omit<WriteRequestOptions, 'context' | 'node'> {
  /** Resolve the siblings of this earlier read instead of reading the key again. */
  readonly read?: ReadResult;
}

/** TLS settings for https nodes. */
export interface RingClientTlsOptions {
  /** PEM certificate(s) of the CA that signed the nodes' certificates (the cluster's tls.caFile). */
  readonly ca?: string | Buffer;
  /** Host name to check the certificates against, when nodes are dialled by another name. */
  readonly servername?: string;
}

/** The settings of a client. */
export interface RingClientOptions {
  /**
   * Nodes to talk to, as host:port or as http:// or https:// URLs. Requests rotate over them.
   * A bare host:port is https when `tls` is given, else http.
   */
  readonly nodes: readonly string[];
  /** Timeout of one HTTP exchange, on top of the server-side timeout_ms. Default 15 s. */
  readonly httpTimeoutMs?: number;
  /** Nodes tried per request before giving up. Default: every node. */
  readonly maxAttempts?: number;
  /** Bearer token for clusters with client authentication (auth.tokens in the node config). */
  readonly token?: string;
  /** Connections per node. Default 16. */
  readonly connectionsPerNode?: number;
  /** TLS settings: the CA to verify https nodes against. */
  readonly tls?: RingClientTlsOptions;
  /**
   * Shard-aware routing (README, "Shards"): learn the ring from a node's /status (again every
   * 10 s) and send each read or write of a key to the ring member (the shard) that owns it, at
   * its own address, instead of the next node in rotation; no node then hands the request on.
   * A retry goes the rotation's way. Default false.
   */
  readonly shardAware?: boolean;
}

/** What {@link RingClient.watch} follows: one key, or every key of the bucket that starts with a prefix. */
export type WatchTarget = string | { readonly prefix: string };

/** Options of {@link RingClient.watch}. */
export interface WatchOptions {
  /** Resume after this event id (an earlier watch's last `id`) instead of starting from now. */
  readonly lastEventId?: string;
  /** Watch on this node (host:port or a URL) only; by default a (re)connection goes to the next node in rotation. */
  readonly node?: string;
  /** Pause before reconnecting after a dropped connection or a refusal to retry. Default 1000 ms. */
  readonly reconnectDelayMs?: number;
  /** Ends the watch (the iterator returns). Breaking out of the loop does the same. */
  readonly signal?: AbortSignal;
  /** Watch the data types (counters and sets, `ring.dt`) of these names instead of the plain keys: one `update` per update (?dt=true). */
  readonly dataTypes?: boolean;
}

/** The version a write created: the replica's actor and its counter there. */
export interface WatchDot {
  readonly node: string;
  readonly counter: number;
}

/**
 * What a watch yields (README, "Watches"). `put` and `delete`: one write of a followed key, with
 * the context of the object it left on the replica that made it; on a plain bucket with its
 * `dot` and `lastModified`, on a consistent bucket with its `version` (each version once, in
 * order per key; the context is the version). `ready`: the watch (re)started
 * on a node that has asked every replica: writes from here on are reported. `compacted`: writes
 * of the named nodes may be missing (their log restarted or no longer held them), or, with `key`,
 * the `missing` versions of that consistent key: read the keys
 * again; writes after it follow. `update` (a watch with `dataTypes`): one counter or set update,
 * with the state the replica that applied it left (its value, and a set's context) and its dot.
 * Every event carries the id the watch resumes from.
 */
export type WatchEvent =
  | {
      readonly type: 'put';
      readonly id: string;
      readonly bucket: string;
      readonly key: string;
      readonly value: Buffer;
      readonly contentType: string;
      readonly context: string;
      readonly dot?: WatchDot;
      readonly lastModified?: string;
      readonly version?: number;
    }
  | {
      readonly type: 'delete';
      readonly id: string;
      readonly bucket: string;
      readonly key: string;
      readonly context: string;
      readonly dot?: WatchDot;
      readonly version?: number;
    }
  | {
      readonly type: 'update';
      readonly id: string;
      readonly bucket: string;
      readonly key: string;
      readonly dataType: 'counter' | 'set';
      /** The counter's value, or the set's elements, as the replica that applied the update left them. */
      readonly value: number | readonly string[];
      /** A set's context there (a remove may be sent with it). */
      readonly context?: string;
      readonly dot: WatchDot;
    }
  | { readonly type: 'ready'; readonly id: string }
  | {
      readonly type: 'compacted';
      readonly id: string;
      readonly nodes: readonly string[];
      readonly message: string;
      readonly key?: string;
      readonly missing?: { readonly from: number; readonly to: number };
    };

/** Why a request failed, as far as the client can tell. */
export type RequestOutcome = 'failed' | 'unknown';

/** A failed request: the server's KV_* code, or a network failure, and whether the write may have happened. */
export class RingClientError extends Error {
  override readonly name = 'RingClientError';
  constructor(
    message: string,
    /** HTTP status, or 0 when no answer came. */
    readonly status: number,
    /** The server's KV_* code, or KV_CONNECTION / KV_CLIENT_TIMEOUT for network failures. */
    readonly code: string,
    /** 'failed': it certainly did not happen; 'unknown': a write may or may not have been applied. */
    readonly outcome: RequestOutcome,
    /** The server's machine-readable details (for example how many replicas answered). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
}

interface SendRequest {
  /** Whether a network failure after the request may have reached the node is still safe to retry. */
  readonly idempotent: boolean;
  /** Whether an answer should be retried on the next node rather than returned. */
  readonly retryAnswer: (answer: HttpAnswer) => boolean;
  readonly node?: string | undefined;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer;
  /** The key the request is about: a shard-aware client sends it to the key's owner first. */
  readonly key?: { readonly bucket: string; readonly key: string };
}

/** Answers that say the node did nothing and another node may well do it: load shedding and "no ring yet". */
const retryableCodes = new Set(['KV_OVERLOADED', 'KV_NOT_READY']);

/** Network error codes raised before a request left the client: the node certainly did nothing. */
const notSentCodes = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function header(answer: HttpAnswer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The origin (scheme://host:port) of a node given as host:port or as a URL. */
function originOf(node: string, defaultScheme: 'http' | 'https'): string {
  const trimmed = node.trim().replace(/\/+$/, '');
  if (/^https?:\/\//.test(trimmed)) return new URL(trimmed).origin;
  return new URL(`${defaultScheme}://${trimmed}`).origin;
}

function isUnknownWriteAnswer(answer: HttpAnswer): boolean {
  return answer.status >= 500 && writeOutcome(answer) === 'unknown';
}

function isRetryableAnswer(answer: HttpAnswer): boolean {
  return answer.status === 503 && retryableCodes.has(errorCode(answer));
}

/** Options of a key listing. */
export interface ListRequestOptions {
  /** Keys per page, 1..10,000 (default 1,000). */
  readonly limit?: number;
  /** Start after this key (a `next` cursor of an earlier page). */
  readonly after?: string;
  /** Only keys that start with this. */
  readonly prefix?: string;
  readonly timeoutMs?: number;
  /** Send to this node (host:port or URL) instead of rotating. */
  readonly node?: string;
}

/** Options of a data type read (`client.dt.counter`, `client.dt.set`). */
export type DataTypeReadOptions = Omit<ReadRequestOptions, 'local'>;

/**
 * Options of a data type update (`client.dt.increment`, `client.dt.updateSet`). An update is not
 * idempotent: one whose outcome is unknown (a timeout, a quorum missed after it was applied) is
 * retried elsewhere only with `retryUnknown`, and may then apply twice.
 */
export type DataTypeWriteOptions = Pick<WriteRequestOptions, 'w' | 'pw' | 'dw' | 'consistency' | 'timeoutMs' | 'retryUnknown' | 'node'> & {
  /** The r of the read a remove makes first (removes only). */
  readonly r?: Quorum;
};

/** A set as read: its elements in UTF-8 byte order and the context a remove must send back. */
export interface SetValue {
  readonly value: string[];
  readonly context: string;
}

/** An update of a set: elements to add, and elements to remove as the read of `context` saw them. */
export interface SetUpdate {
  readonly add?: readonly string[];
  readonly remove?: readonly string[];
  /** The context of `client.dt.set`; required with `remove`. */
  readonly context?: string;
}

/** The JSON of GET /dt. */
interface DataTypeAnswer {
  readonly type: string;
  readonly value: unknown;
  readonly context?: string;
}

/** Counters and sets that the replicas merge themselves (the /dt routes; README, "Data types"). */
export interface DataTypeClient {
  /** Adds `delta` (a safe integer, negative to decrement) to a counter, creating it at 0 first. */
  increment(bucket: string, key: string, delta: number, options?: DataTypeWriteOptions): Promise<void>;
  /** A counter's value, or undefined when the key holds no data type. */
  counter(bucket: string, key: string, options?: DataTypeReadOptions): Promise<number | undefined>;
  /** Adds elements to a set and removes the ones a read (its `context`) saw. */
  updateSet(bucket: string, key: string, update: SetUpdate, options?: DataTypeWriteOptions): Promise<void>;
  /** A set's elements and context, or undefined when the key holds no data type. */
  set(bucket: string, key: string, options?: DataTypeReadOptions): Promise<SetValue | undefined>;
}

/**
 * The client: `get`, `put`, `delete` with per-request quorums, contexts carried for the caller,
 * siblings with `resolve`, retries on another node when safe, and an undici pool per node.
 */
export class RingClient {
  private readonly nodes: string[];
  private readonly defaultScheme: 'http' | 'https';
  private readonly pools = new Map<string, Pool>();
  private readonly router: ShardRouter | undefined;
  private next = 0;
  /** Counters and sets (/dt). */
  readonly dt: DataTypeClient = {
    increment: async (bucket, key, delta, options = {}) => this.updateDataType(bucket, key, { type: 'counter', increment: delta }, options),
    counter: async (bucket, key, options = {}) => {
      const read = await this.readDataType(bucket, key, 'counter', options);
      return read === undefined ? undefined : (read.value as number);
    },
    updateSet: async (bucket, key, update, options = {}) =>
      this.updateDataType(
        bucket,
        key,
        {
          type: 'set',
          ...(update.add === undefined ? {} : { add: update.add }),
          ...(update.remove === undefined ? {} : { remove: update.remove }),
          ...(update.context === undefined ? {} : { context: update.context }),
        },
        options,
      ),
    set: async (bucket, key, options = {}) => {
      const read = await this.readDataType(bucket, key, 'set', options);
      return read === undefined ? undefined : { value: read.value as string[], context: read.context ?? '' };
    },
  };

  constructor(private readonly options: RingClientOptions) {
    if (options.nodes.length === 0) throw new Error('RingClient needs at least one node (host:port or URL)');
    this.defaultScheme = options.tls === undefined ? 'http' : 'https';
    this.nodes = options.nodes.map((node) => originOf(node, this.defaultScheme));
    this.router =
      options.shardAware === true
        ? new ShardRouter({
            fetchRoutes: async () => ringRoutesOf(await this.status()),
            originOf: (address) => originOf(address, this.defaultScheme),
            dial: (origin) => new Client(origin, this.connectionOptions()),
            connectionsPerMember: options.connectionsPerNode ?? 16,
            probeTimeoutMs: options.httpTimeoutMs ?? 15_000,
          })
        : undefined;
  }

  /** Reads a key: not found, one value, or siblings, with the context to write back. */
  async get(bucket: string, key: string, options: ReadRequestOptions = {}): Promise<ReadResult> {
    const query = queryString({
      r: options.r,
      pr: options.pr,
      consistency: options.consistency,
      timeout_ms: options.timeoutMs,
      local: options.local ? 'true' : undefined,
    });
    const answer = await this.send('GET', kvPath(bucket, key) + query, {
      idempotent: true,
      retryAnswer: isRetryableAnswer,
      node: options.node,
      key: { bucket, key },
    });
    const context = header(answer, 'x-ringkv-context');
    if (answer.status === 404) return { found: false, context, siblings: [], ...versionOf(answer) };
    if (answer.status === 200) {
      const lease = header(answer, 'x-ringkv-lease');
      return {
        found: true,
        context,
        ...versionOf(answer),
        ...(lease === undefined ? {} : { lease }),
        siblings: [
          {
            value: answer.body,
            contentType: header(answer, 'content-type') ?? 'application/octet-stream',
            lastModified: header(answer, 'last-modified') ?? '',
          },
        ],
      };
    }
    if (answer.status === 300) {
      const parsed = JSON.parse(answer.body.toString('utf8')) as { context: string; siblings: { value: string; contentType: string; lastModified: string }[] };
      return {
        found: true,
        context: parsed.context,
        siblings: parsed.siblings.map((sibling) => ({
          value: Buffer.from(sibling.value, 'base64'),
          contentType: sibling.contentType,
          lastModified: sibling.lastModified,
        })),
      };
    }
    throw errorOf(answer, 'failed');
  }

  /** Writes a value (with the context of the read it follows, when there was one). */
  async put(bucket: string, key: string, value: Uint8Array | string, options: PutRequestOptions = {}): Promise<WriteResult> {
    const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/octet-stream' };
    if (options.context !== undefined) headers['x-ringkv-context'] = options.context;
    if (options.ifNoneMatch === true) headers['if-none-match'] = '*';
    if (options.ifMatch !== undefined) headers['if-match'] = options.ifMatch;
    const body = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    const answer = await this.send('PUT', kvPath(bucket, key) + writeQuery(options, options.ttlSeconds, options.lease), {
      ...this.writeRetries(options),
      headers,
      body,
      node: options.node,
      key: { bucket, key },
    });
    if (answer.status !== 204) throw errorOf(answer, writeOutcome(answer));
    return { context: header(answer, 'x-ringkv-context') ?? '', ...versionOf(answer) };
  }

  /** Deletes a key (a tombstone); pass the context of the last read. */
  async delete(bucket: string, key: string, options: WriteRequestOptions = {}): Promise<WriteResult> {
    const headers: Record<string, string> = {};
    if (options.context !== undefined) headers['x-ringkv-context'] = options.context;
    if (options.ifMatch !== undefined) headers['if-match'] = options.ifMatch;
    const answer = await this.send('DELETE', kvPath(bucket, key) + writeQuery(options), {
      ...this.writeRetries(options),
      headers,
      node: options.node,
      key: { bucket, key },
    });
    if (answer.status !== 204) throw errorOf(answer, writeOutcome(answer));
    return { context: header(answer, 'x-ringkv-context') ?? '', ...versionOf(answer) };
  }

  /**
   * Resolves siblings: hands every live version (of a fresh read, or of `options.read`) to
   * `merge`, and writes the merged value back with that read's context, so it supersedes exactly
   * what was merged; a write concurrent with it stays a sibling instead of being lost. The
   * content type is the merge's own, else `options.contentType`, else the siblings' common one.
   */
  async resolve(bucket: string, key: string, merge: (siblings: readonly StoredValue[]) => MergedValue, options: ResolveOptions = {}): Promise<WriteResult> {
    const read = options.read ?? (await this.get(bucket, key, options));
    const merged = merge(read.siblings);
    const isTyped = typeof merged === 'object' && !(merged instanceof Uint8Array);
    const value = isTyped ? merged.value : merged;
    const sharedType = new Set(read.siblings.map((sibling) => sibling.contentType)).size === 1 ? read.siblings[0]?.contentType : undefined;
    const contentType = isTyped ? merged.contentType : (options.contentType ?? sharedType);
    return this.put(bucket, key, value, {
      ...options,
      ...(read.context === undefined ? {} : { context: read.context }),
      ...(contentType === undefined ? {} : { contentType }),
    });
  }

  /**
   * The live keys of a bucket in byte order, as an async iterator: it fetches a page of
   * `options.limit` keys (default 1,000) at a time, each after the `next` cursor of the one
   * before, so a listing of any size holds one page in memory. A page that fails is retried on
   * another node when the failure is retryable (the cursor makes a page safe to ask again).
   */
  async *list(bucket: string, options: ListRequestOptions = {}): AsyncGenerator<string, void, undefined> {
    let after = options.after;
    for (;;) {
      const page = await this.listPage(bucket, { ...options, ...(after === undefined ? {} : { after }) });
      yield* page.keys;
      if (page.next === null) return;
      after = page.next;
    }
  }

  /** One page of a bucket's live keys and the cursor of the next (null at the end). */
  async listPage(bucket: string, options: ListRequestOptions = {}): Promise<{ keys: string[]; next: string | null }> {
    const query = queryString({ keys: 'true', limit: options.limit, after: options.after, prefix: options.prefix, timeout_ms: options.timeoutMs });
    const answer = await this.send('GET', `/kv/${encodeURIComponent(bucket)}${query}`, {
      idempotent: true,
      retryAnswer: isRetryableAnswer,
      node: options.node,
    });
    if (answer.status !== 200) throw errorOf(answer, 'failed');
    return JSON.parse(answer.body.toString('utf8')) as { keys: string[]; next: string | null };
  }

  private async readDataType(bucket: string, key: string, type: 'counter' | 'set', options: DataTypeReadOptions): Promise<DataTypeAnswer | undefined> {
    const query = queryString({ r: options.r, pr: options.pr, consistency: options.consistency, timeout_ms: options.timeoutMs });
    const answer = await this.send('GET', dtPath(bucket, key) + query, { idempotent: true, retryAnswer: isRetryableAnswer, node: options.node });
    if (answer.status === 404 && errorCode(answer) === 'KV_NOT_FOUND') return undefined;
    if (answer.status !== 200) throw errorOf(answer, 'failed');
    const read = JSON.parse(answer.body.toString('utf8')) as DataTypeAnswer;
    if (read.type !== type)
      throw new RingClientError(`KV_TYPE_MISMATCH: ${bucket}/${key} holds a ${read.type}, not a ${type}`, 409, 'KV_TYPE_MISMATCH', 'failed');
    return read;
  }

  private async updateDataType(bucket: string, key: string, body: Record<string, unknown>, options: DataTypeWriteOptions): Promise<void> {
    const query = queryString({ w: options.w, pw: options.pw, dw: options.dw, r: options.r, consistency: options.consistency, timeout_ms: options.timeoutMs });
    const answer = await this.send('POST', dtPath(bucket, key) + query, {
      ...this.writeRetries(options),
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify(body), 'utf8'),
      node: options.node,
    });
    if (answer.status !== 204) throw errorOf(answer, writeOutcome(answer));
  }

  /**
   * Watches a key (or, with `{ prefix }`, every key of the bucket that starts with it) as an async
   * iterator of its writes, over GET /watch (Server-Sent Events). A dropped connection, a node
   * shedding load, or an `overflow` cut-off reconnects (to the next node in rotation) with the last
   * event id as Last-Event-ID, so no write is skipped; where the cluster no longer holds what was
   * missed, a `compacted` event says to read again. Break out of the loop (or abort `signal`) to stop.
   */
  async *watch(bucket: string, target: WatchTarget, options: WatchOptions = {}): AsyncGenerator<WatchEvent, void, undefined> {
    const dt = options.dataTypes === true ? 'true' : undefined;
    const path =
      typeof target === 'string'
        ? `${kvPath(bucket, target).replace(/^\/kv\//, '/watch/')}${queryString({ dt })}`
        : `/watch/${encodeURIComponent(bucket)}${queryString({ prefix: target.prefix, dt })}`;
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let lastId = options.lastEventId;
    // Waits before a reconnection; an abort ends the wait at once.
    const pause = async (): Promise<void> => {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          // Removed, so a long watch's reconnections do not pile listeners on its signal.
          stop.signal.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, options.reconnectDelayMs ?? 1000);
        stop.signal.addEventListener('abort', done, { once: true });
      });
    };
    try {
      while (!stop.signal.aborted) {
        const origin = options.node === undefined ? (this.rotation()[0] as string) : originOf(options.node, this.defaultScheme);
        const headers: Record<string, string> = { accept: 'text/event-stream' };
        if (lastId !== undefined) headers['last-event-id'] = lastId;
        if (this.options.token !== undefined) headers.authorization = `Bearer ${this.options.token}`;
        let response: Awaited<ReturnType<Pool['request']>>;
        try {
          // The node sends a comment every 15 s, so a body silent for 60 s is a dead connection.
          response = await this.pool(origin).request({
            method: 'GET',
            path,
            headers,
            signal: stop.signal,
            headersTimeout: this.options.httpTimeoutMs ?? 15_000,
            bodyTimeout: 60_000,
          });
        } catch {
          await pause();
          continue;
        }
        if (response.statusCode !== 200) {
          const answer = { status: response.statusCode, headers: response.headers, body: Buffer.from(await response.body.arrayBuffer()) };
          if (!isRetryableAnswer(answer)) throw errorOf(answer, 'failed');
          await pause();
          continue;
        }
        const parser = new SseParser();
        try {
          for await (const chunk of response.body) {
            for (const event of parser.push(chunk as Buffer)) {
              if (event.id !== undefined) lastId = event.id;
              const parsed = watchEventOf(event);
              if (parsed !== undefined) yield parsed;
            }
          }
        } catch {
          // The connection dropped: reconnect from the last id.
        }
        await pause();
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      stop.abort();
    }
  }

  /** POST /leases: a new lease of `ttlSeconds` (1 to 86,400); keep it alive with {@link keepAliveLease} before it runs out. */
  async grantLease(ttlSeconds: number): Promise<LeaseGrant> {
    const answer = await this.send('POST', '/leases', {
      ...this.writeRetries({}),
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ ttl: ttlSeconds })),
    });
    if (answer.status !== 201) throw errorOf(answer, writeOutcome(answer));
    return leaseGrantOf(answer);
  }

  /** Restarts the lease's ttl (safe to retry); KV_LEASE_NOT_FOUND once it ended. */
  async keepAliveLease(id: string): Promise<LeaseGrant> {
    const answer = await this.send('POST', `/leases/${encodeURIComponent(id)}/keepalive`, { idempotent: true, retryAnswer: isRetryableAnswer });
    if (answer.status !== 200) throw errorOf(answer, writeOutcome(answer));
    return leaseGrantOf(answer);
  }

  /** Ends the lease now: its keys are deleted, then it. */
  async revokeLease(id: string): Promise<void> {
    const answer = await this.send('DELETE', `/leases/${encodeURIComponent(id)}`, { idempotent: true, retryAnswer: isRetryableAnswer });
    if (answer.status !== 204) throw errorOf(answer, writeOutcome(answer));
  }

  /** The lease's ttl, keep-alives and keys; undefined when it does not exist (ended or never granted). */
  async lease(id: string): Promise<LeaseInfo | undefined> {
    const answer = await this.send('GET', `/leases/${encodeURIComponent(id)}`, { idempotent: true, retryAnswer: isRetryableAnswer });
    if (answer.status === 404 && errorCode(answer) === 'KV_LEASE_NOT_FOUND') return undefined;
    if (answer.status !== 200) throw errorOf(answer, 'failed');
    const parsed = JSON.parse(answer.body.toString('utf8')) as {
      id: string;
      ttl: number;
      keepAlives: number;
      remaining?: number;
      keys: { bucket: string; key: string }[];
    };
    return {
      id: parsed.id,
      ttlSeconds: parsed.ttl,
      keepAlives: parsed.keepAlives,
      keys: parsed.keys,
      ...(parsed.remaining === undefined ? {} : { remainingSeconds: parsed.remaining }),
    };
  }

  /**
   * Takes the lock `name` (README, "Client recipes"): grants a lease, then writes the key
   * `name` of the consistent bucket only if absent, attached to the lease, retrying while another
   * holder has it. Resolves with the fencing token (the key's version) once held; the lease is
   * kept alive every ttl/3 until `release()`, and a holder that stops (a crash, a pause) loses the
   * lock a ttl after its last keep-alive, when the lease's end deletes the key.
   */
  async lock(name: string, options: LockOptions = {}): Promise<LockHandle> {
    return this.holdKey(name, '', options);
  }

  /**
   * Runs for leader of the election `name` as `candidate`: resolves once elected, with the
   * token (a lock whose value is the candidate, so {@link leader} can name it). `release()`
   * resigns; a leader that stops keeping its lease alive is replaced a ttl later.
   */
  async electLeader(name: string, candidate: string, options: LockOptions = {}): Promise<LockHandle> {
    return this.holdKey(name, candidate, options);
  }

  /** The elected leader of `name` and its token; undefined while there is none. */
  async leader(name: string, options: Pick<LockOptions, 'bucket'> = {}): Promise<LeaderInfo | undefined> {
    const read = await this.get(options.bucket ?? 'locks', name);
    const value = read.siblings[0];
    if (!read.found || value === undefined) return undefined;
    return { candidate: value.value.toString('utf8'), token: read.version ?? 0, lease: read.lease };
  }

  /** The lock and election recipe: a lease, If-None-Match: * with it until written, and keep-alives until release. */
  private async holdKey(name: string, value: string, options: LockOptions): Promise<LockHandle> {
    const bucket = options.bucket ?? 'locks';
    const ttlSeconds = options.ttlSeconds ?? 10;
    const { id } = await this.grantLease(ttlSeconds);
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    // Keep-alives every ttl/3 from now (waiting counts too: a long wait must not lose the lease).
    const keepAlive = (): void => {
      timer = setTimeout(
        () => {
          this.keepAliveLease(id).then(
            () => {
              if (!stopped) keepAlive();
            },
            (error: unknown) => {
              if (stopped) return;
              if (error instanceof RingClientError && error.code === 'KV_LEASE_NOT_FOUND') {
                stopped = true;
                options.onLost?.(error);
                return;
              }
              keepAlive();
            },
          );
        },
        (ttlSeconds * 1000) / 3,
      );
      timer.unref();
    };
    const stop = async (): Promise<void> => {
      stopped = true;
      clearTimeout(timer);
      await this.revokeLease(id).catch((error: unknown) => {
        if (!(error instanceof RingClientError && error.code === 'KV_LEASE_NOT_FOUND')) throw error;
      });
    };
    keepAlive();
    try {
      for (;;) {
        try {
          const written = await this.put(bucket, name, value, { ifNoneMatch: true, lease: id, contentType: 'text/plain' });
          return { token: written.version ?? 0, lease: id, release: stop };
        } catch (error) {
          if (!(error instanceof RingClientError && error.code === 'KV_PRECONDITION_FAILED')) throw error;
        }
        if (stopped) throw new RingClientError(`the lease of ${name} ended while waiting for it`, 404, 'KV_LEASE_NOT_FOUND', 'failed');
        await pause(options.retryMs ?? 250, options.signal);
      }
    } catch (error) {
      await stop().catch(() => undefined);
      throw error;
    }
  }

  /** A node's /status JSON. */
  async status(node?: string): Promise<unknown> {
    return this.json('GET', '/status', node);
  }

  /** Any JSON endpoint of one node (admin and status routes); a POST is never retried elsewhere. */
  async json(method: 'GET' | 'POST', path: string, node?: string): Promise<unknown> {
    const idempotent = method === 'GET';
    const answer = await this.send(method, path, { idempotent, retryAnswer: isRetryableAnswer, node });
    if (answer.status < 200 || answer.status >= 300) throw errorOf(answer, idempotent ? 'failed' : writeOutcome(answer));
    return answer.body.length === 0 ? null : (JSON.parse(answer.body.toString('utf8')) as unknown);
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all([...pools.map((pool) => pool.close().catch(() => undefined)), this.router?.close()]);
  }

  /** A write is retried elsewhere after an unknown outcome only when the caller accepts it may apply twice. */
  private writeRetries(options: WriteRequestOptions): Pick<SendRequest, 'idempotent' | 'retryAnswer'> {
    const retryUnknown = options.retryUnknown === true;
    return { idempotent: retryUnknown, retryAnswer: (answer) => isRetryableAnswer(answer) || (retryUnknown && isUnknownWriteAnswer(answer)) };
  }

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, { connections: this.options.connectionsPerNode ?? 16, ...this.connectionOptions() });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /** How every connection is dialled: keep-alive, connect timeout, TLS. */
  private connectionOptions(): Client.Options {
    const timeoutMs = this.options.httpTimeoutMs ?? 15_000;
    const tls = this.options.tls;
    return {
      keepAliveTimeout: 30_000,
      connectTimeout: Math.min(timeoutMs, 5_000),
      ...(tls === undefined
        ? {}
        : { connect: { ...(tls.ca === undefined ? {} : { ca: tls.ca }), ...(tls.servername === undefined ? {} : { servername: tls.servername }) } }),
    };
  }

  /**
   * Sends to one node after another: a refused connection or an overload answer moves on to the
   * next node (nothing happened there); an unknown outcome moves on only for idempotent requests.
   */
  private async send(method: 'GET' | 'PUT' | 'DELETE' | 'POST', path: string, request: SendRequest): Promise<HttpAnswer> {
    const order: (string | ShardRoute)[] = request.node === undefined ? this.rotation() : [originOf(request.node, this.defaultScheme)];
    // Shard-aware: the key's owner first, then the rotation (a retry).
    const route = request.node === undefined && request.key !== undefined ? await this.router?.route(request.key.bucket, request.key.key) : undefined;
    if (route !== undefined) order.unshift(route);
    const attempts = Math.max(1, Math.min(order.length, this.options.maxAttempts ?? order.length));
    let lastError: RingClientError | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const target = order[attempt] as string | ShardRoute;
      const origin = typeof target === 'string' ? target : target.origin;
      let answer: HttpAnswer;
      try {
        answer = await this.exchange(typeof target === 'string' ? this.pool(target) : target.dispatcher, method, path, request.headers, request.body);
        if (typeof target !== 'string') target.settle(answer.headers);
      } catch (error) {
        if (typeof target !== 'string') target.fail();
        lastError = networkError(origin, error);
        if (lastError.outcome === 'failed' || request.idempotent) continue;
        throw lastError;
      }
      if (attempt + 1 < attempts && request.retryAnswer(answer)) continue;
      return answer;
    }
    throw lastError ?? new RingClientError('no node to send to', 0, 'KV_CONNECTION', 'failed');
  }

  private rotation(): string[] {
    const start = this.next;
    this.next = (this.next + 1) % this.nodes.length;
    return [...this.nodes.slice(start), ...this.nodes.slice(0, start)];
  }

  private async exchange(dispatcher: Dispatcher, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<HttpAnswer> {
    const timeoutMs = this.options.httpTimeoutMs ?? 15_000;
    const allHeaders = this.options.token === undefined ? headers : { ...headers, authorization: `Bearer ${this.options.token}` };
    const response = await dispatcher.request({
      method: method as 'GET',
      path,
      headers: allHeaders,
      ...(body === undefined ? {} : { body }),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const bytes = Buffer.from(await response.body.arrayBuffer());
    return { status: response.statusCode, headers: response.headers, body: bytes };
  }
}

/** A watch event as the client yields it; undefined for those that only move the id (progress, overflow). */
function watchEventOf(event: ServerSentEvent): WatchEvent | undefined {
  const id = event.id ?? '';
  const data = JSON.parse(event.data === '' ? '{}' : event.data) as Record<string, unknown>;
  // A plain bucket's write has a dot (and a put its time), a consistent bucket's a version.
  const made = {
    ...(data.dot === undefined ? {} : { dot: data.dot as WatchDot }),
    ...(data.version === undefined ? {} : { version: data.version as number }),
  };
  switch (event.event) {
    case 'put':
      return {
        type: 'put',
        id,
        bucket: data.bucket as string,
        key: data.key as string,
        value: Buffer.from(data.value as string, 'base64'),
        contentType: data.contentType as string,
        context: data.context as string,
        ...made,
        ...(data.lastModified === undefined ? {} : { lastModified: data.lastModified as string }),
      };
    case 'delete':
      return { type: 'delete', id, bucket: data.bucket as string, key: data.key as string, context: data.context as string, ...made };
    case 'update':
      return {
        type: 'update',
        id,
        bucket: data.bucket as string,
        key: data.key as string,
        dataType: data.type as 'counter' | 'set',
        value: data.value as number | string[],
        ...(data.context === undefined ? {} : { context: data.context as string }),
        dot: data.dot as WatchDot,
      };
    case 'ready':
      return { type: 'ready', id };
    case 'compacted':
      return {
        type: 'compacted',
        id,
        nodes: data.nodes as string[],
        message: data.message as string,
        ...(data.key === undefined ? {} : { key: data.key as string, missing: data.missing as { from: number; to: number } }),
      };
    default:
      return undefined;
  }
}

function kvPath(bucket: string, key: string): string {
  return `/kv/${encodeURIComponent(bucket)}/${encodeURIComponent(key)}`;
}

function dtPath(bucket: string, key: string): string {
  return `/dt/${encodeURIComponent(bucket)}/${encodeURIComponent(key)}`;
}

function queryString(parameters: Record<string, string | number | undefined>): string {
  const parts = Object.entries(parameters)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name}=${encodeURIComponent(String(value))}`);
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

function writeQuery(options: WriteRequestOptions, ttlSeconds?: number, lease?: string): string {
  return queryString({ w: options.w, pw: options.pw, dw: options.dw, consistency: options.consistency, timeout_ms: options.timeoutMs, ttl: ttlSeconds, lease });
}

/** Resolves after `delayMs`, or rejects with the signal's reason when it aborts first. */
async function pause(delayMs: number, signal: AbortSignal | undefined): Promise<void> {
  signal?.throwIfAborted();
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, delayMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function errorCode(answer: HttpAnswer): string {
  try {
    return (JSON.parse(answer.body.toString('utf8')) as { error?: { code?: string } }).error?.code ?? `HTTP_${answer.status}`;
  } catch {
    return `HTTP_${answer.status}`;
  }
}

/**
 * Whether a failed write may still have been applied. Bad input, overload and "not ready" are
 * refused before anything is written; a quorum that was not met after the coordinating replica
 * wrote (Riak's "the write may still be there"), a timeout or a server error are unknown.
 */
function writeOutcome(answer: HttpAnswer): RequestOutcome {
  if (answer.status < 500) return 'failed';
  const code = errorCode(answer);
  if (retryableCodes.has(code)) return 'failed';
  if (code === 'KV_INSUFFICIENT_REPLICAS' || code === 'KV_TIMEOUT') {
    try {
      const details = (JSON.parse(answer.body.toString('utf8')) as { error?: { details?: { written?: boolean; applied?: string } } }).error?.details;
      // A plain write that was not sent, or a consistent one whose ballot no quorum took: certainly not done.
      if (details?.written === false || details?.applied === 'no') return 'failed';
    } catch {
      // fall through: unknown
    }
  }
  return 'unknown';
}

function errorOf(answer: HttpAnswer, outcome: RequestOutcome): RingClientError {
  let code = `HTTP_${answer.status}`;
  let message = answer.body.toString('utf8').slice(0, 500);
  let details: Record<string, unknown> | undefined;
  try {
    const parsed = JSON.parse(answer.body.toString('utf8')) as { error?: { code?: string; message?: string; details?: Record<string, unknown> } };
    code = parsed.error?.code ?? code;
    message = parsed.error?.message ?? message;
    details = parsed.error?.details;
  } catch {
    // not JSON: keep the raw text
  }
  return new RingClientError(`${code}: ${message}`, answer.status, code, outcome, details);
}

/** A refused connection (or a certificate refused before sending) certainly did nothing; anything later in the exchange might have. */
function networkError(origin: string, error: unknown): RingClientError {
  const code = (error as { code?: string }).code ?? (error as { cause?: { code?: string } }).cause?.code ?? '';
  const timedOut = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
  return new RingClientError(
    `${origin}: ${error instanceof Error ? error.message : String(error)}${code === '' ? '' : ` (${code})`}`,
    0,
    timedOut ? 'KV_CLIENT_TIMEOUT' : 'KV_CONNECTION',
    notSentCodes.has(code) ? 'failed' : 'unknown',
  );
}
