import { Pool } from 'undici';

/**
 * A small client for ringkv applications and tools (the CLI, bench and jepsen-lite use it). It
 * carries causal contexts for the caller, returns siblings with a helper to resolve them, and
 * retries on another node only when that cannot apply a write twice by surprise.
 */

/** A quorum as a request may ask for it. */
export type Quorum = number | 'one' | 'quorum' | 'all';

/** Per-request options of a read. */
export interface ReadRequestOptions {
  readonly r?: Quorum;
  readonly pr?: Quorum;
  readonly consistency?: 'one' | 'quorum' | 'all';
  readonly timeoutMs?: number;
  /** Read only the contacted node's own copy (no coordination, no read repair). */
  readonly local?: boolean;
  /** Ask this node (host:port) rather than the next one in rotation. */
  readonly node?: string;
}

/** Per-request options of a write or delete. */
export interface WriteRequestOptions {
  readonly w?: Quorum;
  readonly pw?: Quorum;
  readonly dw?: Quorum;
  readonly consistency?: 'one' | 'quorum' | 'all';
  readonly timeoutMs?: number;
  /** The causal context of the read this write follows; omit for a blind write. */
  readonly context?: string;
  readonly contentType?: string;
  /** Retry on another node even when the first attempt's outcome is unknown (may apply twice). */
  readonly retryUnknown?: boolean;
  readonly node?: string;
}

/** One version of a value. */
export interface StoredValue {
  readonly value: Buffer;
  readonly contentType: string;
  readonly lastModified: string;
}

/** What a read returns: no value, one value, or siblings. */
export interface ReadResult {
  readonly found: boolean;
  /** The causal context to send back with the next write of this key (present for tombstones too). */
  readonly context: string | undefined;
  /** The live versions: empty when not found, one normally, several for concurrent writes. */
  readonly siblings: readonly StoredValue[];
}

/** What a write returns. */
export interface WriteResult {
  readonly context: string;
}

/** The settings of a client. */
export interface RingClientOptions {
  /** Nodes to talk to, as host:port (or http://host:port). Requests rotate over them. */
  readonly nodes: readonly string[];
  /** Timeout of one HTTP exchange, on top of the server-side timeout_ms. Default 15 s. */
  readonly httpTimeoutMs?: number;
  /** Nodes tried per request before giving up. Default: every node. */
  readonly maxAttempts?: number;
  /** Bearer token for clusters with client authentication. */
  readonly token?: string;
  /** Connections per node. Default 16. */
  readonly connectionsPerNode?: number;
}

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
    readonly outcome: 'failed' | 'unknown',
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

const retryableCodes = new Set(['KV_OVERLOADED', 'KV_NOT_READY']);

function header(answer: HttpAnswer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function normaliseNode(node: string): string {
  return node.replace(/^https?:\/\//, '').replace(/\/+$/, '');
}

/** The client. */
export class RingClient {
  private readonly nodes: string[];
  private readonly pools = new Map<string, Pool>();
  private next = 0;

  constructor(private readonly options: RingClientOptions) {
    if (options.nodes.length === 0) throw new Error('RingClient needs at least one node (host:port)');
    this.nodes = options.nodes.map(normaliseNode);
  }

  /** Reads a key. */
  async get(bucket: string, key: string, options: ReadRequestOptions = {}): Promise<ReadResult> {
    const query = queryString({ r: options.r, pr: options.pr, consistency: options.consistency, timeout_ms: options.timeoutMs, local: options.local ? 'true' : undefined });
    const answer = await this.send('GET', kvPath(bucket, key) + query, { idempotent: true, node: options.node });
    const context = header(answer, 'x-ringkv-context');
    if (answer.status === 404) return { found: false, context, siblings: [] };
    if (answer.status === 200) {
      return {
        found: true,
        context,
        siblings: [{ value: answer.body, contentType: header(answer, 'content-type') ?? 'application/octet-stream', lastModified: header(answer, 'last-modified') ?? '' }],
      };
    }
    if (answer.status === 300) {
      const parsed = JSON.parse(answer.body.toString('utf8')) as { context: string; siblings: { value: string; contentType: string; lastModified: string }[] };
      return {
        found: true,
        context: parsed.context,
        siblings: parsed.siblings.map((sibling) => ({ value: Buffer.from(sibling.value, 'base64'), contentType: sibling.contentType, lastModified: sibling.lastModified })),
      };
    }
    throw errorOf(answer, 'failed');
  }

  /** Writes a value (with the context of the read it follows, when there was one). */
  async put(bucket: string, key: string, value: Uint8Array | string, options: WriteRequestOptions = {}): Promise<WriteResult> {
    const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/octet-stream' };
    if (options.context !== undefined) headers['x-ringkv-context'] = options.context;
    const body = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
    const answer = await this.send('PUT', kvPath(bucket, key) + writeQuery(options), { idempotent: options.retryUnknown === true, headers, body, node: options.node });
    if (answer.status !== 204) throw errorOf(answer, writeOutcome(answer));
    return { context: header(answer, 'x-ringkv-context') ?? '' };
  }

  /** Deletes a key (a tombstone); pass the context of the last read. */
  async delete(bucket: string, key: string, options: WriteRequestOptions = {}): Promise<WriteResult> {
    const headers: Record<string, string> = {};
    if (options.context !== undefined) headers['x-ringkv-context'] = options.context;
    const answer = await this.send('DELETE', kvPath(bucket, key) + writeQuery(options), { idempotent: options.retryUnknown === true, headers, node: options.node });
    if (answer.status !== 204) throw errorOf(answer, writeOutcome(answer));
    return { context: header(answer, 'x-ringkv-context') ?? '' };
  }

  /**
   * Resolves siblings: reads the key, hands every live version to `merge`, and writes the merged
   * value back with the read's context, so it supersedes exactly what was merged.
   */
  async resolve(
    bucket: string,
    key: string,
    merge: (siblings: readonly StoredValue[]) => Uint8Array | string,
    options: WriteRequestOptions & ReadRequestOptions = {},
  ): Promise<WriteResult> {
    const read = await this.get(bucket, key, options);
    return this.put(bucket, key, merge(read.siblings), { ...options, ...(read.context === undefined ? {} : { context: read.context }) });
  }

  /** A node's /status JSON. */
  async status(node?: string): Promise<unknown> {
    return this.json('GET', '/status', node);
  }

  /** Any JSON endpoint of one node (admin and status routes). */
  async json(method: 'GET' | 'POST', path: string, node?: string): Promise<unknown> {
    const answer = await this.send(method, path, { idempotent: method === 'GET', node });
    if (answer.status < 200 || answer.status >= 300) throw errorOf(answer, 'failed');
    return answer.body.length === 0 ? null : (JSON.parse(answer.body.toString('utf8')) as unknown);
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.close().catch(() => undefined)));
  }

  private pool(node: string): Pool {
    let pool = this.pools.get(node);
    if (pool === undefined) {
      pool = new Pool(`http://${node}`, { connections: this.options.connectionsPerNode ?? 16, keepAliveTimeout: 30_000 });
      this.pools.set(node, pool);
    }
    return pool;
  }

  /**
   * Sends to one node after another: a refused connection or an overload answer moves on to the
   * next node (nothing happened there); an unknown outcome moves on only for idempotent requests.
   */
  private async send(
    method: 'GET' | 'PUT' | 'DELETE' | 'POST',
    path: string,
    request: { idempotent: boolean; node?: string | undefined; headers?: Record<string, string>; body?: Buffer },
  ): Promise<HttpAnswer> {
    const order = request.node === undefined ? this.rotation() : [normaliseNode(request.node)];
    const attempts = Math.min(order.length, this.options.maxAttempts ?? order.length);
    let lastError: RingClientError | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const node = order[attempt] as string;
      let answer: HttpAnswer;
      try {
        answer = await this.exchange(node, method, path, request.headers, request.body);
      } catch (error) {
        lastError = networkError(node, error);
        if (lastError.outcome === 'failed' || request.idempotent) continue;
        throw lastError;
      }
      if (answer.status === 503 && retryableCodes.has(errorCode(answer)) && attempt + 1 < attempts) {
        lastError = errorOf(answer, 'failed');
        continue;
      }
      return answer;
    }
    throw lastError ?? new RingClientError('no node to send to', 0, 'KV_CONNECTION', 'failed');
  }

  private rotation(): string[] {
    const start = this.next;
    this.next = (this.next + 1) % this.nodes.length;
    return [...this.nodes.slice(start), ...this.nodes.slice(0, start)];
  }

  private async exchange(node: string, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<HttpAnswer> {
    const timeoutMs = this.options.httpTimeoutMs ?? 15_000;
    const allHeaders = this.options.token === undefined ? headers : { ...headers, authorization: `Bearer ${this.options.token}` };
    const response = await this.pool(node).request({
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

function kvPath(bucket: string, key: string): string {
  return `/kv/${encodeURIComponent(bucket)}/${encodeURIComponent(key)}`;
}

function queryString(parameters: Record<string, string | number | undefined>): string {
  const parts = Object.entries(parameters)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name}=${encodeURIComponent(String(value))}`);
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

function writeQuery(options: WriteRequestOptions): string {
  return queryString({ w: options.w, pw: options.pw, dw: options.dw, consistency: options.consistency, timeout_ms: options.timeoutMs });
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
function writeOutcome(answer: HttpAnswer): 'failed' | 'unknown' {
  if (answer.status < 500) return 'failed';
  const code = errorCode(answer);
  if (retryableCodes.has(code)) return 'failed';
  if (code === 'KV_INSUFFICIENT_REPLICAS') {
    try {
      const details = (JSON.parse(answer.body.toString('utf8')) as { error?: { details?: { written?: boolean } } }).error?.details;
      if (details?.written === false) return 'failed';
    } catch {
      // fall through: unknown
    }
  }
  return 'unknown';
}

function errorOf(answer: HttpAnswer, outcome: 'failed' | 'unknown'): RingClientError {
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

/** A refused connection certainly did nothing; anything later in the exchange might have. */
function networkError(node: string, error: unknown): RingClientError {
  const code = (error as { code?: string }).code ?? '';
  const refused = code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH';
  const timedOut = code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT';
  return new RingClientError(
    `${node}: ${error instanceof Error ? error.message : String(error)}`,
    0,
    timedOut ? 'KV_CLIENT_TIMEOUT' : 'KV_CONNECTION',
    refused ? 'failed' : 'unknown',
  );
}
