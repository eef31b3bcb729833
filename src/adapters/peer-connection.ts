import { randomBytes } from 'node:crypto';
import { type Socket, connect as netConnect, isIP } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { decodeReply, encodeRequest } from '../core/wire/codec.js';
import {
  type Frame,
  FrameDecoder,
  FrameTooLargeError,
  handshakeMaxFrameBytes,
  oversizedFrameError,
  type HandshakeTranscript,
  type VersionRange,
  decodeChallenge,
  encodeHello,
  frameLengthOf,
  frameTypes,
  handshakeProof,
  nonceBytes,
  proofMatches,
} from '../core/wire/frames.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import { KvError } from '../util/errors.js';
import { FrameWriter } from './frame-writer.js';

/** Settings of one framed connection to a peer (one lane). */
export interface PeerConnectionOptions {
  readonly host: string;
  readonly port: number;
  /** The cluster secret; it proves this node in the handshake and never travels. */
  readonly secret: string;
  /** The protocol versions offered in the hello. */
  readonly versions: VersionRange;
  /** TLS options (the CA peers are verified against) when the cluster runs TLS; plain TCP when absent. */
  readonly tls: ConnectionOptions | undefined;
  /** The largest frame sent or accepted (its length field). */
  readonly maxFrameBytes: number;
  /** Request bytes sent and not yet answered before further requests wait (one request always goes, however large). */
  readonly maxInFlightBytes: number;
  /** Requests sent and not yet answered before further requests wait (a bound on what one node asks of a peer at once). */
  readonly maxInFlightRequests: number;
  /** Request bytes waiting to be sent before new requests are refused with KV_OVERLOADED. */
  readonly maxQueuedBytes: number;
  /** Requests waiting to be sent before new ones are refused with KV_OVERLOADED. */
  readonly maxQueuedRequests: number;
  /** How long connecting plus the handshake may take before the connection gives up. */
  readonly connectTimeoutMs: number;
  /** Names the connection in error messages, e.g. 'peer 127.0.0.1:17101 (replica lane)'. */
  readonly label: string;
}

interface Call {
  readonly payload: Buffer;
  /** The frame's length field: what the in-flight and queue caps count. */
  readonly bytes: number;
  readonly deadlineAtMs: number;
  readonly timeoutMs: number;
  readonly resolve: (reply: PeerReply) => void;
  readonly reject: (error: Error) => void;
  timer: NodeJS.Timeout | undefined;
  requestId: number;
  state: 'queued' | 'sent' | 'done';
}

type ConnectionState = 'connecting' | 'handshaking' | 'ready' | 'closed';

/** Idle time before TCP keep-alive probes start. */
export const keepAliveDelayMs = 10_000;

/** The largest request id before ids wrap around (0 is never used, so a zero in a frame is always a bug). */
const maxRequestId = 0xffff_ffff;

/**
 * One persistent framed connection to a peer: it connects and runs the handshake on first use,
 * then carries many requests at once, matched to their replies by request id. Bounded at every
 * step: a frame over the cap is refused before it is sent; request bytes in flight are capped,
 * and requests beyond that wait in a queue that is itself capped (KV_OVERLOADED past it); the
 * socket's own buffer is respected (nothing more is written until it drains). A request that
 * times out is forgotten at once, so its late reply is dropped. When the connection fails,
 * every request on it fails with KV_PEER_UNREACHABLE and the cause; the owner opens a new
 * connection for the next request.
 */
export class PeerConnection {
  private state: ConnectionState = 'connecting';
  private readonly socket: Socket;
  private readonly writer: FrameWriter;
  private readonly decoder: FrameDecoder;
  private readonly queue: Call[] = [];
  private readonly sent = new Map<number, Call>();
  private queuedBytes = 0;
  /** Requests in the queue that still wait (timed-out ones stay in the array until the pump passes them). */
  private queuedRequests = 0;
  private inFlightBytes = 0;
  private nextRequestId = 1;
  private failure: KvError | undefined;
  private readonly clientNonce = randomBytes(nonceBytes);
  /** The protocol version the handshake agreed; until then, the highest offered. */
  private version: number;
  /** The version the server's challenge named (checked against its proof before it is used). */
  private challengedVersion: number | undefined;
  /** Set once the server's proof checked out and this node sent its own. */
  private proofSent = false;
  private readonly connectTimer: NodeJS.Timeout;
  /** Called once when the connection is closed, so its owner stops handing it requests. */
  onClosed: (() => void) | undefined;

  constructor(private readonly options: PeerConnectionOptions) {
    this.decoder = new FrameDecoder(handshakeMaxFrameBytes);
    this.version = options.versions.max;
    this.socket = this.dial();
    this.writer = new FrameWriter(this.socket, () => this.pump());
    this.connectTimer = setTimeout(() => {
      this.fail(new KvError('KV_PEER_UNREACHABLE', `${options.label} did not complete connecting and the handshake within ${options.connectTimeoutMs} ms`));
    }, options.connectTimeoutMs);
  }

  /** True once the handshake has finished and requests go out as they come. */
  get ready(): boolean {
    return this.state === 'ready';
  }

  /** True once the connection has failed or been closed: it takes no more requests. */
  get closed(): boolean {
    return this.state === 'closed';
  }

  /** The protocol version in use: the one the handshake agreed once it has finished. */
  get protocolVersion(): number {
    return this.version;
  }

  /** Request bytes sent and not answered yet (for tests and figures). */
  get bytesInFlight(): number {
    return this.inFlightBytes;
  }

  /** Requests sent and not answered yet (for tests and figures). */
  get requestsInFlight(): number {
    return this.sent.size;
  }

  /** Sends one request; resolves with the reply, or rejects with KV_TIMEOUT, KV_PEER_UNREACHABLE, KV_OVERLOADED or KV_VALUE_TOO_LARGE. */
  request(message: PeerRequest, timeoutMs: number): Promise<PeerReply> {
    if (this.state === 'closed') return Promise.reject(this.failure ?? new KvError('KV_PEER_UNREACHABLE', `${this.options.label}: the connection is closed`));
    const payload = encodeRequest(message);
    const bytes = frameLengthOf(payload.byteLength);
    const oversized = oversizedFrameError('request', message.type, payload.byteLength, this.options.maxFrameBytes);
    if (oversized !== undefined) return Promise.reject(oversized);
    // The first waiting request is always taken, however large, so a big value is never refused for size alone.
    if (this.queuedRequests > 0 && (this.queuedRequests >= this.options.maxQueuedRequests || this.queuedBytes + bytes > this.options.maxQueuedBytes)) {
      return Promise.reject(
        new KvError('KV_OVERLOADED', `${this.queuedRequests} requests (${this.queuedBytes} bytes) already wait for ${this.options.label}; retry later`, {
          retryAfterSeconds: 1,
        }),
      );
    }
    return new Promise<PeerReply>((resolve, reject) => {
      const call: Call = { payload, bytes, deadlineAtMs: Date.now() + timeoutMs, timeoutMs, resolve, reject, timer: undefined, requestId: 0, state: 'queued' };
      call.timer = setTimeout(() => this.timeOut(call), timeoutMs);
      this.queue.push(call);
      this.queuedBytes += bytes;
      this.queuedRequests += 1;
      this.pump();
    });
  }

  /** Closes the connection; its requests fail with KV_PEER_UNREACHABLE. */
  close(): void {
    this.fail(new KvError('KV_PEER_UNREACHABLE', `${this.options.label}: the transport closed`));
  }

  private dial(): Socket {
    const { host, port, tls } = this.options;
    const socket =
      tls === undefined ? netConnect({ host, port, noDelay: true }) : tlsConnect({ ...tls, host, port, ...(isIP(host) === 0 ? { servername: host } : {}) });
    // Requests are small and answered one by one: Nagle's delay would be pure latency (FrameWriter already coalesces a turn's frames).
    socket.setNoDelay(true);
    // A peer that vanished without a word (power loss, a cut cable) is found by TCP keep-alive instead of never.
    socket.setKeepAlive(true, keepAliveDelayMs);
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => this.startHandshake());
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => this.fail(this.describeSocketError(error)));
    socket.on('close', () => this.fail(new KvError('KV_PEER_UNREACHABLE', `${this.options.label} closed the connection`)));
    return socket;
  }

  private describeSocketError(error: NodeJS.ErrnoException): KvError {
    const { label } = this.options;
    if (error.code === 'ECONNREFUSED')
      return new KvError('KV_PEER_UNREACHABLE', `connection to ${label} refused: is a ringkv node running there, with the same peerPortOffset?`, {
        cause: error,
      });
    return new KvError('KV_PEER_UNREACHABLE', `${label} unreachable: ${error.message}`, { cause: error });
  }

  private startHandshake(): void {
    this.state = 'handshaking';
    this.writer.write(frameTypes.hello, 0, this.options.connectTimeoutMs, encodeHello({ versions: this.options.versions, clientNonce: this.clientNonce }));
  }

  private receive(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      // A reply over the cap: the stream cannot be read past it, so the connection goes (and its requests with it).
      if (error instanceof FrameTooLargeError) this.failOne(error.requestId, error);
      this.fail(new KvError('KV_PEER_UNREACHABLE', `${this.options.label} sent a malformed frame: ${(error as Error).message}`));
      return;
    }
    for (const frame of frames) {
      if (this.state === 'closed') return;
      this.handleFrame(frame);
    }
  }

  private handleFrame(frame: Frame): void {
    switch (frame.type) {
      case frameTypes.reply:
        if (this.state === 'ready') this.answer(frame);
        else this.fail(new KvError('KV_PEER_UNREACHABLE', `${this.options.label} sent a reply before the handshake finished`));
        return;
      case frameTypes.challenge:
        if (this.state !== 'handshaking' || this.challengedVersion !== undefined) {
          this.fail(new KvError('KV_PEER_UNREACHABLE', `${this.options.label} sent a second handshake challenge`));
          return;
        }
        this.checkChallenge(frame.payload);
        return;
      case frameTypes.accepted:
        if (this.state !== 'handshaking') return;
        // Only a server that proved the secret (its challenge checked out, so this node sent its proof) may accept: an
        // `accepted` before that comes from something that does not hold the secret and must never see a request.
        if (!this.proofSent) {
          this.fail(
            new KvError(
              'KV_PEER_UNREACHABLE',
              `${this.options.label} accepted the connection without proving the cluster secret; it is not a ringkv node of this cluster`,
            ),
          );
          return;
        }
        this.state = 'ready';
        this.version = this.challengedVersion ?? this.options.versions.min;
        this.decoder.maxFrameBytes = this.options.maxFrameBytes;
        clearTimeout(this.connectTimer);
        this.pump();
        return;
      case frameTypes.refused:
        this.fail(new KvError('KV_PEER_UNREACHABLE', `${this.options.label}: ${frame.payload.toString('utf8')}`));
        return;
      default:
        this.fail(
          new KvError(
            'KV_PEER_UNREACHABLE',
            `${this.options.label} sent frame type ${frame.type}, which this node does not know; run the same ringkv version on every node`,
          ),
        );
    }
  }

  private checkChallenge(payload: Buffer): void {
    const { label, secret, versions } = this.options;
    let transcript: HandshakeTranscript;
    let serverProof: Buffer;
    try {
      const challenge = decodeChallenge(payload);
      transcript = { clientNonce: this.clientNonce, serverNonce: challenge.serverNonce, offered: versions, chosenVersion: challenge.chosenVersion };
      this.challengedVersion = challenge.chosenVersion;
      serverProof = challenge.serverProof;
    } catch (error) {
      this.fail(new KvError('KV_PEER_UNREACHABLE', `${label}: ${(error as Error).message}`));
      return;
    }
    if (transcript.chosenVersion < versions.min || transcript.chosenVersion > versions.max) {
      this.fail(
        new KvError(
          'KV_PEER_UNREACHABLE',
          `${label}: no common protocol version (the peer chose ${transcript.chosenVersion}, this node speaks ${versions.min}..${versions.max})`,
        ),
      );
      return;
    }
    if (!proofMatches(secret, 'server', transcript, serverProof)) {
      this.fail(
        new KvError(
          'KV_PEER_UNREACHABLE',
          `${label}: the peer refused the cluster secret (its handshake proof does not match this node's secret); set the same RINGKV_CLUSTER_SECRET on every node`,
        ),
      );
      return;
    }
    this.proofSent = true;
    this.writer.write(frameTypes.proof, 0, this.options.connectTimeoutMs, handshakeProof(secret, 'client', transcript));
  }

  private answer(frame: Frame): void {
    const call = this.sent.get(frame.requestId);
    // A reply to a request that timed out: its caller has moved on, so the reply is dropped.
    if (call === undefined) return;
    this.sent.delete(frame.requestId);
    this.inFlightBytes -= call.bytes;
    let reply: PeerReply | undefined;
    let problem: Error | undefined;
    try {
      reply = decodeReply(frame.payload);
    } catch (error) {
      problem = new KvError('KV_PEER_UNREACHABLE', `${this.options.label} sent a reply that does not decode: ${(error as Error).message}`);
    }
    this.settle(call, () => (problem === undefined ? call.resolve(reply as PeerReply) : call.reject(problem)));
    this.pump();
  }

  /** Sends queued requests while the caps and the socket allow (a full socket resumes this on 'drain'). */
  private pump(): void {
    while (this.queue.length > 0 && this.state === 'ready' && !this.writer.full) {
      const call = this.queue[0] as Call;
      if (call.state === 'done') {
        this.queue.shift();
        continue;
      }
      // One request always goes however large, so a frame bigger than the in-flight cap cannot wait forever.
      if (this.inFlightBytes > 0 && this.inFlightBytes + call.bytes > this.options.maxInFlightBytes) return;
      if (this.sent.size >= this.options.maxInFlightRequests) return;
      this.queue.shift();
      this.queuedBytes -= call.bytes;
      this.queuedRequests -= 1;
      call.state = 'sent';
      call.requestId = this.takeRequestId();
      this.sent.set(call.requestId, call);
      this.inFlightBytes += call.bytes;
      this.writer.write(frameTypes.request, call.requestId, call.deadlineAtMs - Date.now(), call.payload);
    }
  }

  private takeRequestId(): number {
    // Ids wrap after 2^32 - 1 requests; an id still in use (a request that has waited that long) is skipped.
    do {
      const id = this.nextRequestId;
      this.nextRequestId = id >= maxRequestId ? 1 : id + 1;
      if (!this.sent.has(id)) return id;
    } while (true);
  }

  private timeOut(call: Call): void {
    if (call.state === 'queued') {
      this.queuedBytes -= call.bytes;
      this.queuedRequests -= 1;
    }
    if (call.state === 'sent') {
      this.sent.delete(call.requestId);
      this.inFlightBytes -= call.bytes;
    }
    this.settle(call, () => call.reject(new KvError('KV_TIMEOUT', `${this.options.label} did not answer within ${call.timeoutMs} ms`)));
    this.pump();
  }

  private settle(call: Call, action: () => void): void {
    if (call.state === 'done') return;
    call.state = 'done';
    clearTimeout(call.timer);
    action();
  }

  private failOne(requestId: number, error: Error): void {
    const call = this.sent.get(requestId);
    if (call !== undefined) this.settle(call, () => call.reject(error));
  }

  /** Closes the connection once: every request on it fails with the first cause seen. */
  private fail(error: KvError): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.failure = error;
    clearTimeout(this.connectTimer);
    this.socket.destroy();
    const calls = [...this.sent.values(), ...this.queue];
    this.sent.clear();
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.queuedRequests = 0;
    this.inFlightBytes = 0;
    for (const call of calls) this.settle(call, () => call.reject(error));
    this.onClosed?.();
  }
}
