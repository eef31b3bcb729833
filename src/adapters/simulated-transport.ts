import { decodeReplyBatch, decodeRequestBatch, encodeReplyBatch, encodeRequestBatch } from '../core/wire/codec.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import { KvError, isKvError } from '../util/errors.js';
import type { Clock } from '../ports/clock.js';
import type { Random } from '../ports/random.js';
import type { PeerAddress, PeerHandler, Transport } from '../ports/transport.js';

/** Link behaviour of the simulated network. */
export interface NetworkFaults {
  /** One-way delay bounds of a message, in virtual milliseconds. */
  minDelayMs: number;
  maxDelayMs: number;
  /** Probability that a message (request or reply) is lost. */
  dropProbability: number;
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

  constructor(
    private readonly clock: Clock,
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

  /** The Transport a node at `source` sends with. */
  transportFor(source: PeerAddress): Transport {
    return {
      request: (target, message, options) => this.send(source, target, message, options.timeoutMs),
      close: async () => undefined,
    };
  }

  private delay(): number {
    const { minDelayMs, maxDelayMs } = this.faults;
    return minDelayMs + this.random.int(Math.max(1, maxDelayMs - minDelayMs + 1));
  }

  private lost(source: PeerAddress, target: PeerAddress): boolean {
    if (!this.connected(source, target)) return true;
    return this.faults.dropProbability > 0 && this.random.next() < this.faults.dropProbability;
  }

  private send(source: PeerAddress, target: PeerAddress, message: PeerRequest, timeoutMs: number): Promise<PeerReply> {
    const body = encodeRequestBatch([message]);
    return new Promise<PeerReply>((resolve, reject) => {
      let done = false;
      const settle = (action: () => void): void => {
        if (done) return;
        done = true;
        timer.cancel();
        action();
      };
      const timer = this.clock.setTimer(timeoutMs, () =>
        settle(() => reject(new KvError('KV_TIMEOUT', `peer ${target} did not answer within ${timeoutMs} ms`))),
      );
      if (this.lost(source, target)) {
        this.dropped += 1;
        return;
      }
      this.clock.setTimer(this.delay(), () => {
        const handler = this.handlers.get(target);
        if (handler === undefined) {
          settle(() => reject(new KvError('KV_PEER_UNREACHABLE', `connection to ${target} refused`)));
          return;
        }
        this.delivered += 1;
        // A body the receiver cannot decode gets an error reply, as the peer route answers 400.
        void Promise.resolve()
          .then(() => handler(decodeRequestBatch(body)[0] as PeerRequest))
          .catch((error: unknown): PeerReply => ({
            type: 'error',
            code: isKvError(error) ? error.code : 'KV_INTERNAL',
            message: error instanceof Error ? error.message : String(error),
          }))
          .then((reply) => {
            const replyBody = encodeReplyBatch([reply]);
            // A node that crashed while handling the request never answers.
            if (this.handlers.get(target) !== handler || this.lost(target, source)) {
              this.dropped += 1;
              return;
            }
            this.clock.setTimer(this.delay(), () => settle(() => resolve(decodeReplyBatch(replyBody)[0] as PeerReply)));
          });
      });
    });
  }
}

function linkKey(left: PeerAddress, right: PeerAddress): string {
  return left < right ? `${left}|${right}` : `${right}|${left}`;
}
