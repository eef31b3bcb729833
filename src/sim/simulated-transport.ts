import { decodeReply, decodeRequest, encodeReply, encodeRequest } from '../core/wire/codec.js';
import { defaultMaxFrameBytes, oversizedFrameError } from '../core/wire/frames.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import { KvError } from '../util/errors.js';
import { peerErrorReply, undecodableRequestReply } from '../core/wire/error-reply.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { Random } from '../ports/random.js';
import type { PeerAddress, PeerHandler, Transport } from '../ports/transport.js';

/** A clock whose timers may carry a label for the simulation's trace (the VirtualClock and NodeClock do). */
export interface LabelledClock extends Clock {
  setTimer(delayMs: number, callback: () => void, label?: string): TimerHandle;
  /** Adds a line to the simulation's trace, when the clock keeps one. */
  note?(line: string): void;
}

/** The Transport of one simulated node, which its crash can freeze. */
export interface SimulatedTransport extends Transport {
  /**
   * The node crashed: nothing it sent is answered any more, and nothing it sends from now on
   * leaves, so its work waiting on the network never resumes (a dead process waits forever).
   */
  kill(): void;
}

/** Link behaviour of the simulated network. */
export interface NetworkFaults {
  /** One-way delay bounds of a message, in virtual milliseconds. */
  minDelayMs: number;
  maxDelayMs: number;
  /** Probability that a message (request or reply) is lost. */
  dropProbability: number;
  /**
   * Messages (requests and replies) this answers true for are lost, by sender, receiver and
   * message: a link that carries some messages and not others (the ring reaches a node while the
   * SWIM records that would tell it of its removal do not). Unset: none.
   */
  blocks?: (source: PeerAddress, target: PeerAddress, message: PeerRequest | PeerReply) => boolean;
}

/**
 * An in-process network for simulation: messages between registered nodes are delivered after
 * a random delay of virtual time, can be dropped, and links can be cut by partitions. Every
 * message goes through the real binary codec, so simulation exercises the wire format too.
 * A lost message shows up as a timeout, as it does on a real network; a node that is not
 * registered (crashed) refuses at once, like a closed port.
 */
export class SimulatedNetwork {
  private readonly handlers = new Map<PeerAddress, PeerHandler>();
  /** Unordered pairs 'a|b' whose link is cut. */
  private readonly cut = new Set<string>();
  readonly faults: NetworkFaults = { minDelayMs: 1, maxDelayMs: 5, dropProbability: 0 };
  /** Messages delivered and dropped, for tests. */
  delivered = 0;
  dropped = 0;
  /** Bytes of the encoded requests and replies put on the wire (dropped ones included), for figures such as gossip bytes per round. */
  bytesSent = 0;
  /** Requests and replies put on the wire (each one frame on the framed transport), dropped ones included. */
  framesSent = 0;
  /**
   * The peer frame cap, judged by the same rule as the framed transport's (oversizedFrameError):
   * a request over it is refused before it leaves, a reply over it becomes an error reply.
   */
  readonly maxFrameBytes = defaultMaxFrameBytes;

  /**
   * `clock` is the simulation's scheduler: message deliveries are its events, labelled with
   * sender, receiver and message type for its trace. `random` draws delays and losses.
   */
  constructor(
    private readonly clock: LabelledClock,
    private readonly random: Random,
  ) {}

  /** Makes `address` reachable, served by `handler`. */
  register(address: PeerAddress, handler: PeerHandler): void {
    this.handlers.set(address, handler);
  }

  /** Makes `address` unreachable (a crashed node). */
  unregister(address: PeerAddress): void {
    this.handlers.delete(address);
  }

  /** Cuts every link between the groups (nodes in the same group still talk). */
  partition(groups: readonly (readonly PeerAddress[])[]): void {
    for (const [index, group] of groups.entries()) {
      for (const other of groups.slice(index + 1)) {
        for (const left of group) for (const right of other) this.cut.add(linkKey(left, right));
      }
    }
  }

  /** Restores every link. */
  heal(): void {
    this.cut.clear();
  }

  /** True when messages between the two addresses get through. */
  connected(left: PeerAddress, right: PeerAddress): boolean {
    return !this.cut.has(linkKey(left, right));
  }

  /**
   * The Transport a node at `source` sends with. Its request timeouts run on `nodeClock` (the
   * node's own clock, which its crash stops), else on the scheduler. After `close()` every
   * request rejects with KV_PEER_UNREACHABLE, as with the real transport; after `kill()` (a
   * crash) nothing it sent or sends ever settles.
   */
  transportFor(source: PeerAddress, nodeClock: LabelledClock = this.clock): SimulatedTransport {
    const state: SenderState = { closed: false, killed: false, pending: new Set() };
    return {
      request: (target, message, options) => {
        if (state.killed) return new Promise<PeerReply>(() => undefined);
        if (state.closed) return Promise.reject(new KvError('KV_PEER_UNREACHABLE', 'the transport is closed'));
        return this.send(source, target, message, options.timeoutMs, nodeClock, state);
      },
      close: async () => {
        state.closed = true;
        for (const fail of [...state.pending]) fail(new KvError('KV_PEER_UNREACHABLE', 'the transport closed'));
      },
      kill: () => {
        state.killed = true;
        this.clock.note?.(`crash ${source}`);
      },
    };
  }

  private delay(): number {
    const { minDelayMs, maxDelayMs } = this.faults;
    return minDelayMs + this.random.int(Math.max(1, maxDelayMs - minDelayMs + 1));
  }

  private lost(source: PeerAddress, target: PeerAddress, message: PeerRequest | PeerReply): boolean {
    if (!this.connected(source, target) || this.faults.blocks?.(source, target, message) === true) return true;
    return this.faults.dropProbability > 0 && this.random.next() < this.faults.dropProbability;
  }

  /** What the receiver answers: its handler's reply, or the error reply the framed peer server sends for the same failure. */
  private async served(handler: PeerHandler, body: Uint8Array): Promise<PeerReply> {
    let request: PeerRequest;
    try {
      request = decodeRequest(body);
    } catch (error) {
      return undecodableRequestReply(error);
    }
    try {
      return await handler(request);
    } catch (error) {
      // Production logs an unexpected error; the simulation writes it to the trace.
      return peerErrorReply(error, (unexpected) => this.clock.note?.(`unexpected error serving ${request.type}: ${String(unexpected)}`));
    }
  }

  private send(
    source: PeerAddress,
    target: PeerAddress,
    message: PeerRequest,
    timeoutMs: number,
    nodeClock: LabelledClock,
    sender: SenderState,
  ): Promise<PeerReply> {
    const body = encodeRequest(message);
    const oversized = oversizedFrameError('request', message.type, body.byteLength, this.maxFrameBytes);
    if (oversized !== undefined) return Promise.reject(oversized);
    this.bytesSent += body.byteLength;
    this.framesSent += 1;
    return new Promise<PeerReply>((resolve, reject) => {
      let done = false;
      const fail = (error: KvError): void => settle(() => reject(error));
      const settle = (action: () => void): void => {
        // A crashed sender hears nothing back: its work waiting on this request stays waiting.
        if (done || sender.killed) return;
        done = true;
        sender.pending.delete(fail);
        timer.cancel();
        action();
      };
      sender.pending.add(fail);
      const timer = nodeClock.setTimer(timeoutMs, () => fail(new KvError('KV_TIMEOUT', `peer ${target} did not answer within ${timeoutMs} ms`)));
      if (this.lost(source, target, message)) {
        this.dropped += 1;
        this.clock.note?.(`drop ${message.type} ${source}->${target}`);
        return;
      }
      this.clock.setTimer(
        this.delay(),
        () => {
          const handler = this.handlers.get(target);
          if (handler === undefined) {
            fail(new KvError('KV_PEER_UNREACHABLE', `connection to ${target} refused`));
            return;
          }
          this.delivered += 1;
          // The receiver answers as the framed peer server does: an undecodable body and a failed handler each become its error reply.
          void this.served(handler, body).then((reply) => {
            let replyBody = encodeReply(reply);
            const oversized = oversizedFrameError('reply', reply.type, replyBody.byteLength, this.maxFrameBytes);
            if (oversized !== undefined) replyBody = encodeReply({ type: 'error', code: oversized.code, message: oversized.message });
            // A node that crashed while handling the request never answers.
            if (this.handlers.get(target) !== handler) {
              this.dropped += 1;
              return;
            }
            this.bytesSent += replyBody.byteLength;
            this.framesSent += 1;
            if (this.lost(target, source, reply)) {
              this.dropped += 1;
              this.clock.note?.(`drop ${reply.type} ${target}->${source}`);
              return;
            }
            this.clock.setTimer(this.delay(), () => settle(() => resolve(decodeReply(replyBody))), `reply ${reply.type} ${target}->${source}`);
          });
        },
        `deliver ${message.type} ${source}->${target}`,
      );
    });
  }
}

/** What a sender's transport knows of itself: closed, killed, and how to fail its requests under way. */
interface SenderState {
  closed: boolean;
  killed: boolean;
  readonly pending: Set<(error: KvError) => void>;
}

function linkKey(left: PeerAddress, right: PeerAddress): string {
  return left < right ? `${left}|${right}` : `${right}|${left}`;
}
