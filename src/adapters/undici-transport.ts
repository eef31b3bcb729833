import { Pool } from 'undici';
import { decodeReplyBatch, encodeRequestBatch, maxBatchMessages, peerProtocolVersions } from '../core/wire/codec.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import { KvError } from '../util/errors.js';
import type { PeerAddress, Transport } from '../ports/transport.js';

/** The path of the peer endpoint (src/http serves it). */
export const peerPath = '/internal/v1/peer';

/** The header that carries the cluster secret on peer calls. */
export const secretHeader = 'x-ringkv-secret';

/** Settings of the peer transport. */
export interface UndiciTransportOptions {
  /** The cluster secret every peer call presents. */
  readonly secret: string;
  /** Logical address -> the address actually dialled (the chaos harness's per-link proxies). */
  readonly peerDialOverrides?: Readonly<Record<string, string>>;
  /** Batches in flight per peer at once (one keep-alive connection each). */
  readonly connectionsPerPeer?: number;
  /** Messages waiting per peer before new ones are refused with KV_OVERLOADED. */
  readonly maxQueuedPerPeer?: number;
  /** Messages per batch. */
  readonly maxMessagesPerBatch?: number;
  /** 'https' with a CA to verify peers against, when the cluster runs TLS. */
  readonly protocol?: 'http' | 'https';
  readonly connect?: Pool.Options['connect'];
}

interface PendingCall {
  readonly message: PeerRequest;
  readonly deadlineMs: number;
  settled: boolean;
  readonly resolve: (reply: PeerReply) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** One peer: its connection pool and its queue of messages waiting to be batched. */
class PeerChannel {
  readonly queue: PendingCall[] = [];
  inFlight = 0;
  flushScheduled = false;

  constructor(
    readonly address: PeerAddress,
    readonly pool: Pool,
  ) {}
}

/**
 * Peer calls over HTTP with undici: a keep-alive pool per peer, a timeout on every call, the
 * compact binary encoding, and coalescing. Messages for the same peer that are sent in the same
 * event-loop turn, or while all of that peer's connections are busy, travel together in one
 * request; under load this turns many small round trips into few large ones.
 */
export class UndiciTransport implements Transport {
  private readonly channels = new Map<PeerAddress, PeerChannel>();
  private readonly connectionsPerPeer: number;
  private readonly maxQueuedPerPeer: number;
  private readonly maxMessagesPerBatch: number;
  private closed = false;
  /** Batches sent and messages carried, to observe coalescing. */
  batchesSent = 0;
  messagesSent = 0;

  constructor(private readonly options: UndiciTransportOptions) {
    this.connectionsPerPeer = options.connectionsPerPeer ?? 2;
    this.maxQueuedPerPeer = options.maxQueuedPerPeer ?? 10_000;
    this.maxMessagesPerBatch = Math.min(options.maxMessagesPerBatch ?? 256, maxBatchMessages);
  }

  /** Sends one message; resolves with the peer's reply or rejects with KV_TIMEOUT / KV_PEER_UNREACHABLE / KV_OVERLOADED. */
  request(target: PeerAddress, message: PeerRequest, options: { readonly timeoutMs: number }): Promise<PeerReply> {
    if (this.closed) return Promise.reject(new KvError('KV_PEER_UNREACHABLE', 'the transport is closed'));
    const channel = this.channel(target);
    if (channel.queue.length >= this.maxQueuedPerPeer) {
      return Promise.reject(
        new KvError('KV_OVERLOADED', `${channel.queue.length} messages already wait for peer ${target}; retry later`, { retryAfterSeconds: 1 }),
      );
    }
    return new Promise<PeerReply>((resolve, reject) => {
      const call: PendingCall = {
        message,
        deadlineMs: Date.now() + options.timeoutMs,
        settled: false,
        resolve,
        reject,
        timer: setTimeout(() => {
          settle(call, () => reject(new KvError('KV_TIMEOUT', `peer ${target} did not answer within ${options.timeoutMs} ms`)));
        }, options.timeoutMs),
      };
      channel.queue.push(call);
      this.scheduleFlush(channel);
    });
  }

  /** Closes every pool; calls in flight fail. */
  async close(): Promise<void> {
    this.closed = true;
    const channels = [...this.channels.values()];
    this.channels.clear();
    for (const channel of channels) {
      for (const call of channel.queue.splice(0)) settle(call, () => call.reject(new KvError('KV_PEER_UNREACHABLE', 'the transport closed')));
    }
    await Promise.all(channels.map((channel) => channel.pool.destroy().catch(() => undefined)));
  }

  private channel(target: PeerAddress): PeerChannel {
    let channel = this.channels.get(target);
    if (channel === undefined) {
      const dialled = this.options.peerDialOverrides?.[target] ?? target;
      const pool = new Pool(`${this.options.protocol ?? 'http'}://${dialled}`, {
        connections: this.connectionsPerPeer,
        keepAliveTimeout: 30_000,
        connectTimeout: 5_000,
        ...(this.options.connect === undefined ? {} : { connect: this.options.connect }),
      });
      channel = new PeerChannel(target, pool);
      this.channels.set(target, channel);
    }
    return channel;
  }

  private scheduleFlush(channel: PeerChannel): void {
    if (channel.flushScheduled) return;
    channel.flushScheduled = true;
    // Waiting one turn lets every message of the current turn join the same batch.
    setImmediate(() => {
      channel.flushScheduled = false;
      this.flush(channel);
    });
  }

  private flush(channel: PeerChannel): void {
    while (channel.inFlight < this.connectionsPerPeer && channel.queue.length > 0) {
      const batch: PendingCall[] = [];
      let batchBytes = 0;
      // A batch also closes at maxBatchBytes, well under the peer route's body limit, so large
      // values never make a whole batch too big to be accepted.
      while (batch.length < this.maxMessagesPerBatch && channel.queue.length > 0 && (batch.length === 0 || batchBytes < maxBatchBytes)) {
        const call = channel.queue.shift() as PendingCall;
        if (call.settled) continue;
        batch.push(call);
        batchBytes += approximateBytes(call.message);
      }
      if (batch.length === 0) return;
      channel.inFlight += 1;
      void this.sendBatch(channel, batch).finally(() => {
        channel.inFlight -= 1;
        if (channel.queue.length > 0) this.flush(channel);
      });
    }
  }

  private async sendBatch(channel: PeerChannel, batch: PendingCall[]): Promise<void> {
    this.batchesSent += 1;
    this.messagesSent += batch.length;
    const waitMs = Math.max(1, Math.max(...batch.map((call) => call.deadlineMs)) - Date.now());
    const failAll = (error: Error): void => {
      for (const call of batch) settle(call, () => call.reject(error));
    };
    try {
      const response = await channel.pool.request({
        path: peerPath,
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream', [secretHeader]: this.options.secret },
        // The HTTP route has no handshake to agree a version: version 1, which every node reads.
        body: encodeRequestBatch(batch.map((call) => call.message), peerProtocolVersions.jsonState),
        headersTimeout: waitMs,
        bodyTimeout: waitMs,
      });
      const body = Buffer.from(await response.body.arrayBuffer());
      if (response.statusCode !== 200) {
        failAll(new KvError('KV_PEER_UNREACHABLE', `peer ${channel.address} answered HTTP ${response.statusCode}: ${body.toString('utf8').slice(0, 300)}`));
        return;
      }
      const replies = decodeReplyBatch(body);
      if (replies.length !== batch.length) {
        failAll(new KvError('KV_PEER_UNREACHABLE', `peer ${channel.address} answered ${replies.length} replies to ${batch.length} messages`));
        return;
      }
      batch.forEach((call, index) => settle(call, () => call.resolve(replies[index] as PeerReply)));
    } catch (error) {
      failAll(new KvError('KV_PEER_UNREACHABLE', `peer ${channel.address} unreachable: ${error instanceof Error ? error.message : String(error)}`));
    }
  }
}

/** Where a batch closes: far below the peer route's 256 MiB body limit. */
const maxBatchBytes = 32 * 1024 * 1024;

/** The bulk of a message's encoded size: the values it carries. */
function approximateBytes(message: PeerRequest): number {
  switch (message.type) {
    case 'coordinate-put':
      return 64 + message.write.value.byteLength;
    case 'replica-put':
      return 64 + message.object.siblings.reduce((sum, sibling) => sum + sibling.value.byteLength + 64, 0);
    case 'ae-push':
      return 64 + message.items.reduce((sum, item) => sum + item.dataKey.byteLength + item.object.siblings.reduce((total, sibling) => total + sibling.value.byteLength + 64, 0), 0);
    default:
      return 64;
  }
}

function settle(call: PendingCall, action: () => void): void {
  if (call.settled) return;
  call.settled = true;
  clearTimeout(call.timer);
  action();
}
