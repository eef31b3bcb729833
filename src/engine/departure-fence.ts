import type { SwimRecord } from '../core/membership/swim-messages.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import type { Clock } from '../ports/clock.js';

/** What the fence needs from its node. */
export interface DepartureFenceDependencies {
  readonly selfId: string;
  readonly clock: Clock;
  readonly send: (node: string, request: PeerRequest, timeoutMs?: number) => Promise<PeerReply>;
  /** SWIM's record of a member. */
  readonly recordOf: (node: string) => SwimRecord | undefined;
  /** The members that have not departed. */
  readonly members: () => readonly string[];
  /** How long one push waits for its answer, and how long before the members that did not answer are asked again. */
  readonly settings: () => { readonly peerTimeoutMs: number; readonly retryMs: number };
}

/**
 * Makes sure a node removed while it still ran decides nothing more before a watch reads its log
 * the last time (docs/CONSENSUS.md, "Watches"). Acceptors refuse the proposals of a node they
 * hold as removed, but gossip may not have told every one yet, and the removed node with one
 * acceptor that has not heard can be a majority of a group of three: so its record is pushed to
 * every other member as `swim-records` (the receiver merges it before it answers, and a removal
 * beats every other record of the node), asking again those that do not answer until each has
 * answered or departed too. Then the removed node itself is told, so it refuses the watch's last
 * read (a removed node serves no data) instead of answering it while a decision built on
 * acceptances from before the fence may still be on its way to its log; the watch then says
 * `compacted` for it, and that decision, made before the fence held, is found by reading the key
 * again. A node that left drained its operations before it said so, and needs none of this.
 * Resolves at once when `stopped()` turns true.
 */
export async function fenceDeparture(dependencies: DepartureFenceDependencies, node: string, stopped: () => boolean): Promise<void> {
  const record = dependencies.recordOf(node);
  if (record === undefined || record.state !== 'removed') return;
  const push: PeerRequest = { type: 'swim-records', from: dependencies.selfId, records: [record] };
  let waiting = dependencies.members().filter((member) => member !== node && member !== dependencies.selfId);
  while (waiting.length > 0 && !stopped()) {
    const { peerTimeoutMs, retryMs } = dependencies.settings();
    const answered = await Promise.all(
      waiting.map(async (member) =>
        dependencies.send(member, push, peerTimeoutMs).then(
          (reply) => reply.type !== 'error',
          () => false,
        ),
      ),
    );
    const members = new Set(dependencies.members());
    waiting = waiting.filter((member, index) => !answered[index]! && members.has(member));
    if (waiting.length > 0 && !stopped()) await dependencies.clock.sleep(retryMs);
  }
  if (stopped()) return;
  // A node that does not answer is not told: its last read fails too, and the watch says compacted for it.
  await dependencies.send(node, push, dependencies.settings().peerTimeoutMs).catch(() => undefined);
}
