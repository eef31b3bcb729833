import { randomBytes } from 'node:crypto';
import { type AddressInfo, type Server, type Socket, createServer as createNetServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { decodeRequest, encodeReply } from '../core/wire/codec.js';
import { peerErrorReply, undecodableRequestReply } from '../core/wire/error-reply.js';
import {
  type Frame,
  FrameDecoder,
  FrameTooLargeError,
  handshakeMaxFrameBytes,
  oversizedFrameError,
  type HandshakeTranscript,
  type VersionRange,
  chooseVersion,
  decodeHello,
  defaultMaxFrameBytes,
  encodeChallenge,
  encodeReason,
  frameLengthOf,
  frameTypes,
  protocolVersions,
  handshakeProof,
  nonceBytes,
  proofMatches,
} from '../core/wire/frames.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import type { PeerHandler } from '../ports/transport.js';
import { assert } from '../util/assert.js';
import { isKvError } from '../util/errors.js';
import { FrameWriter } from './frame-writer.js';
import { keepAliveDelayMs } from './peer-connection.js';

/** Settings of the framed peer server. */
export interface FramedPeerServerOptions {
  /** What the node does with a peer's request. */
  readonly handler: PeerHandler;
  /** The cluster secret a client must prove in the handshake. */
  readonly secret: string;
  readonly versions?: VersionRange;
  /** The node's certificate and key when the cluster runs TLS; plain TCP when absent. */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
  /** The largest frame accepted (default 64 MiB); a larger one is answered with an error and the connection closed. */
  readonly maxFrameBytes?: number;
  /** Request bytes being handled per connection before the server stops reading from it (default 64 MiB). */
  readonly maxInFlightBytesPerConnection?: number;
  /**
   * How long a connection may take to finish the handshake (default 2 s: a real peer needs one
   * round trip and two HMACs; a stranger that says nothing is cut off well before a peer's own
   * connect timeout of 5 s).
   */
  readonly handshakeTimeoutMs?: number;
  /** Connections open at once (default 1024: two per peer leaves room for hundreds of peers). */
  readonly maxConnections?: number;
  /**
   * Connections still in their handshake, in all (default 128, below maxConnections): past it
   * the oldest of them is closed to make room, so strangers can never hold the slots that
   * authenticated peers need, nor keep the door shut to a peer that is handshaking now.
   */
  readonly maxHandshakingConnections?: number;
  /** Connections in their handshake from one source address (default 16); past it that source's oldest is closed. */
  readonly maxHandshakingConnectionsPerSource?: number;
  /** Told about an unexpected error of a handler (a KvError is an answer, not an error). */
  readonly onError?: (error: unknown, request: PeerRequest) => void;
}

/** The settings of a FramedPeerServer that its connections read. */
interface ServerLimits {
  readonly versions: VersionRange;
  readonly maxFrameBytes: number;
  readonly maxInFlightBytes: number;
  readonly handshakeTimeoutMs: number;
  readonly maxHandshaking: number;
  readonly maxHandshakingPerSource: number;
}

type ServerConnectionState = 'hello' | 'proof' | 'ready' | 'closed';

/**
 * The server side of the framed peer protocol: one listener on the peer port, the handshake on
 * each connection (a client that cannot prove the cluster secret, or shares no protocol version,
 * is refused with the reason and disconnected), then every request frame is handed to the
 * node's PeerHandler and answered with a reply frame of the same request id, in whatever order
 * the handler finishes. Back-pressure: when the request bytes being handled on a connection pass
 * the cap, or the client does not read its replies, the server stops reading from that
 * connection until it is below the cap again, so TCP slows the sender down.
 */
export class FramedPeerServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** Settings shared by every connection. */
  readonly limits: ServerLimits;
  /**
   * Connections still in their handshake, oldest first (a Map keeps insertion order), with the
   * address each came from; and how many each address has. Only these are bounded here: once
   * authenticated, a connection counts against maxConnections alone.
   */
  private readonly handshaking = new Map<ServerConnection, string>();
  private readonly handshakingBySource = new Map<string, number>();
  /** Connections refused in the handshake, for tests and figures. */
  refusedConnections = 0;

  constructor(private readonly options: FramedPeerServerOptions) {
    const maxConnections = options.maxConnections ?? 1024;
    this.limits = {
      versions: options.versions ?? protocolVersions,
      maxFrameBytes: options.maxFrameBytes ?? defaultMaxFrameBytes,
      maxInFlightBytes: options.maxInFlightBytesPerConnection ?? 64 * 1024 * 1024,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 2_000,
      maxHandshaking: options.maxHandshakingConnections ?? 128,
      maxHandshakingPerSource: options.maxHandshakingConnectionsPerSource ?? 16,
    };
    assert(this.limits.maxHandshaking < maxConnections, 'maxHandshakingConnections must stay below maxConnections, or strangers could hold every slot');
    assert(this.limits.maxHandshakingPerSource <= this.limits.maxHandshaking, 'maxHandshakingConnectionsPerSource must not exceed maxHandshakingConnections');
    const accept = (socket: Socket): void => this.accept(socket);
    this.server =
      options.tls === undefined
        ? createNetServer({ noDelay: true }, accept)
        : createTlsServer({ key: options.tls.key, cert: options.tls.cert, noDelay: true }, accept);
    this.server.maxConnections = maxConnections;
  }

  /** Connections open now that have not finished their handshake (for tests and figures). */
  get handshakingConnections(): number {
    return this.handshaking.size;
  }

  /** Listens on host:port (0 picks a free port) and resolves with where it listens. */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const address = this.server.address() as AddressInfo;
    return { host: address.address, port: address.port };
  }

  /** Stops listening and closes every connection (requests being handled get no reply). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, keepAliveDelayMs);
    const connection = new ServerConnection(socket, this, this.options);
    socket.on('close', () => this.sockets.delete(socket));
    this.admit(connection, socket.remoteAddress ?? 'unknown');
    connection.start();
  }

  /**
   * Counts a new connection as handshaking, first closing the oldest handshaking connection of
   * its source, or of all, when a bound is reached. The newest is kept, not refused: a real peer
   * finishes its handshake in one round trip, so a flood would have to replace every slot within
   * that time to shut it out, while refusing new ones would let a few silent strangers do it.
   */
  private admit(connection: ServerConnection, source: string): void {
    const fromSource = this.handshakingBySource.get(source) ?? 0;
    if (fromSource >= this.limits.maxHandshakingPerSource) {
      for (const [waiting, waitingSource] of this.handshaking) {
        if (waitingSource !== source) continue;
        waiting.evict();
        break;
      }
    }
    if (this.handshaking.size >= this.limits.maxHandshaking) {
      const [oldest] = this.handshaking.keys();
      oldest?.evict();
    }
    this.handshaking.set(connection, source);
    this.handshakingBySource.set(source, (this.handshakingBySource.get(source) ?? 0) + 1);
  }

  /** Called by a connection when its handshake ends, by success or by closing (again is harmless). */
  handshakeEnded(connection: ServerConnection): void {
    const source = this.handshaking.get(connection);
    if (source === undefined) return;
    this.handshaking.delete(connection);
    const left = (this.handshakingBySource.get(source) ?? 1) - 1;
    if (left === 0) this.handshakingBySource.delete(source);
    else this.handshakingBySource.set(source, left);
  }
}

/** One accepted connection: its handshake, then its requests. */
class ServerConnection {
  private state: ServerConnectionState = 'hello';
  private readonly writer: FrameWriter;
  private readonly decoder: FrameDecoder;
  private readonly serverNonce = randomBytes(nonceBytes);
  private transcript: HandshakeTranscript | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private handlingBytes = 0;
  private readingPaused = false;

  constructor(
    private readonly socket: Socket,
    private readonly owner: FramedPeerServer,
    private readonly options: FramedPeerServerOptions,
  ) {
    this.writer = new FrameWriter(socket, () => this.adjustReading());
    this.decoder = new FrameDecoder(handshakeMaxFrameBytes);
  }

  start(): void {
    this.handshakeTimer = setTimeout(
      () => this.refuse(`the handshake did not finish within ${this.owner.limits.handshakeTimeoutMs} ms`),
      this.owner.limits.handshakeTimeoutMs,
    );
    this.socket.on('data', (chunk: Buffer) => this.receive(chunk));
    // A client that goes away is no error of this node: the close below cleans up.
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.state = 'closed';
      clearTimeout(this.handshakeTimer);
      this.owner.handshakeEnded(this);
    });
  }

  /**
   * Closed at once to make room for a newer connection while still in its handshake (or while
   * its refusal is being flushed): no reason is sent, since whoever holds a connection silent
   * for so long is not waiting for one, and the slot must be free now.
   */
  evict(): void {
    this.owner.handshakeEnded(this);
    this.state = 'closed';
    clearTimeout(this.handshakeTimer);
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      if (error instanceof FrameTooLargeError && error.frameType === frameTypes.request && this.state === 'ready') {
        this.sendReply(error.requestId, { type: 'error', code: error.code, message: error.message });
      }
      this.refuse((error as Error).message);
      return;
    }
    for (const frame of frames) {
      if (this.state === 'closed') return;
      this.handleFrame(frame);
    }
  }

  private handleFrame(frame: Frame): void {
    if (this.state === 'ready' && frame.type === frameTypes.request) {
      this.handleRequest(frame);
      return;
    }
    if (this.state === 'hello' && frame.type === frameTypes.hello) {
      this.answerHello(frame.payload);
      return;
    }
    if (this.state === 'proof' && frame.type === frameTypes.proof) {
      this.checkProof(frame.payload);
      return;
    }
    this.refuse(`frame type ${frame.type} is not expected now (connection state ${this.state}); run the same ringkv version on every node`);
  }

  private answerHello(payload: Buffer): void {
    let offered: VersionRange;
    let clientNonce: Buffer;
    try {
      ({ versions: offered, clientNonce } = decodeHello(payload));
    } catch (error) {
      this.refuse((error as Error).message);
      return;
    }
    const { versions } = this.owner.limits;
    const chosenVersion = chooseVersion(versions, offered);
    if (chosenVersion === undefined) {
      this.refuse(
        `no common protocol version: this node speaks ${versions.min}..${versions.max}, the peer ${offered.min}..${offered.max}; run neighbouring ringkv versions`,
      );
      return;
    }
    this.transcript = { clientNonce, serverNonce: this.serverNonce, offered, chosenVersion };
    this.state = 'proof';
    this.writer.write(
      frameTypes.challenge,
      0,
      0,
      encodeChallenge({ chosenVersion, serverNonce: this.serverNonce, serverProof: handshakeProof(this.options.secret, 'server', this.transcript) }),
    );
  }

  private checkProof(payload: Buffer): void {
    if (this.transcript === undefined || !proofMatches(this.options.secret, 'client', this.transcript, payload)) {
      this.refuse(
        "peer refused the cluster secret: the client's handshake proof does not match this node's secret; set the same RINGKV_CLUSTER_SECRET on every node",
      );
      return;
    }
    this.state = 'ready';
    this.decoder.maxFrameBytes = this.owner.limits.maxFrameBytes;
    clearTimeout(this.handshakeTimer);
    this.owner.handshakeEnded(this);
    this.writer.write(frameTypes.accepted, 0, 0, Buffer.alloc(0));
  }

  private handleRequest(frame: Frame): void {
    // A deadline of 0 means the sender has already given up: the work would be wasted.
    if (frame.deadlineMs === 0) return;
    let request: PeerRequest;
    try {
      request = decodeRequest(frame.payload);
    } catch (error) {
      // The framing is intact, so only this request is refused; the connection goes on.
      this.sendReply(frame.requestId, undecodableRequestReply(error));
      return;
    }
    const bytes = frameLengthOf(frame.payload.length);
    this.handlingBytes += bytes;
    this.adjustReading();
    const answered = (reply: PeerReply): void => {
      this.handlingBytes -= bytes;
      try {
        this.sendReply(frame.requestId, reply);
      } finally {
        // Even when the reply could not be written, the bytes it held are released and a socket paused for them resumes.
        this.adjustReading();
      }
    };
    // One promise per request, not an async wrapper's three: this is the per-message hot path.
    this.handle(request)
      .then(answered, (error: unknown) => answered(peerErrorReply(error, (unexpected) => this.options.onError?.(unexpected, request))))
      .catch((error: unknown) => this.options.onError?.(error, request));
  }

  /** The handler's promise; a handler that throws instead of rejecting is treated the same. */
  private handle(request: PeerRequest): Promise<PeerReply> {
    try {
      return this.options.handler(request);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  private sendReply(requestId: number, reply: PeerReply): void {
    if (this.state === 'closed') return;
    let payload: Uint8Array;
    try {
      payload = encodeReply(reply);
    } catch (error) {
      // A reply the table cannot write (a handler's bug, such as a view outside the gossip layout) is still answered, as that error.
      if (!isKvError(error)) throw error;
      payload = encodeReply({ type: 'error', code: error.code, message: error.message });
    }
    const oversized = oversizedFrameError('reply', reply.type, payload.byteLength, this.owner.limits.maxFrameBytes);
    if (oversized !== undefined) payload = encodeReply({ type: 'error', code: oversized.code, message: oversized.message });
    this.writer.write(frameTypes.reply, requestId, 0, payload);
  }

  /** Reads while the bytes being handled are under the cap and the client takes its replies; pauses otherwise. */
  private adjustReading(): void {
    if (this.state === 'closed') return;
    const shouldPause = this.writer.full || this.handlingBytes >= this.owner.limits.maxInFlightBytes;
    if (shouldPause && !this.readingPaused) this.socket.pause();
    if (!shouldPause && this.readingPaused) this.socket.resume();
    this.readingPaused = shouldPause;
  }

  /** Tells the client why, then closes; nothing more is read from it. */
  private refuse(reason: string): void {
    if (this.state === 'closed') return;
    if (this.state !== 'ready') this.owner.refusedConnections += 1;
    this.state = 'closed';
    clearTimeout(this.handshakeTimer);
    // A connection refused in its handshake keeps its slot until its socket is gone (close calls handshakeEnded), so
    // strangers that fail handshakes in a loop are bounded like those that say nothing.
    this.socket.removeAllListeners('data');
    this.writer.write(frameTypes.refused, 0, 0, encodeReason(reason));
    this.writer.flush();
    // end() flushes the reason first; a client that never reads it is cut off after a second.
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1_000).unref();
  }
}
