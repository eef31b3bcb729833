import type { AcceptorStore } from './acceptor-store.js';
import { consistentBucketRefusal } from './coordinator.js';
import type { AntiEntropy } from './anti-entropy.js';
import type { ClientRequests } from './client-requests.js';
import type { DataTypes } from './data-types.js';
import type { Handoff } from './handoff.js';
import type { HintedHandoff } from './hinted-handoff.js';
import { answerListKeys } from './key-listing.js';
import type { PeerService } from './peer-service.js';
import type { Replica } from './replica.js';
import type { NodeContext } from './node-context.js';
import type { WatchLog } from './watch-log.js';

/** The roles that serve peer requests. */
export type PeerRoles = Pick<NodeContext, 'selfId' | 'gossiper' | 'requireRing' | 'bucketProperties'> & {
  readonly replica: Replica;
  readonly hintedHandoff: HintedHandoff;
  readonly antiEntropy: AntiEntropy;
  readonly handoff: Handoff;
  readonly dataTypes: DataTypes;
  readonly acceptors: AcceptorStore;
  readonly clientRequests: ClientRequests;
  readonly watchLog: WatchLog;
};

/**
 * The table of which role serves which peer request (src/engine/peer-service.ts dispatches by
 * it): the replica its reads and writes, hinted handoff a fallback's write, gossip the view,
 * anti-entropy and partition handoff their messages, key listing its coverage queries, the data
 * types their updates, the acceptor store the Paxos rounds of consistent buckets (and a backup's
 * listing of its keys), the client requests the writes other nodes forward. A new message type
 * adds its line here, pointing at its own role.
 */
export function registerPeerHandlers(peers: PeerService, roles: PeerRoles): void {
  /** A replica write of a consistent bucket would put a version beside its Paxos state that no round decided. */
  const refuseConsistent = (bucket: string): void => {
    if (roles.bucketProperties(bucket).consistent === true) throw consistentBucketRefusal(bucket, 'a replica write');
  };
  peers.register('replica-get', async (request) => ({ type: 'replica-get-reply', object: (await roles.replica.read(request.bucket, request.key)) ?? null }));
  peers.register('coordinate-put', async (request) => {
    refuseConsistent(request.bucket);
    const condition = request.precondition === undefined ? undefined : { precondition: request.precondition, base: request.base ?? null };
    const { object, dot } = await roles.replica.coordinateWrite(request.bucket, request.key, request.write, request.mode, request.sync, condition);
    return { type: 'coordinate-put-reply', object, durable: request.sync, dot };
  });
  peers.register('forward-put', async (request) => ({ type: 'forward-put-reply', context: (await roles.clientRequests.forwarded(request)).context }));
  peers.register('replica-put', async (request) => {
    refuseConsistent(request.bucket);
    if (request.hintFor !== undefined && request.hintFor !== roles.selfId) return roles.hintedHandoff.keep(request, request.hintFor);
    await roles.replica.merge(request.bucket, request.key, request.object, request.mode, request.sync);
    return { type: 'replica-put-reply', durable: request.sync };
  });
  // A removed node still runs SWIM: it hears the ring and shows its state, and tells a restart of itself it was removed.
  for (const type of ['swim-ping', 'swim-ping-req', 'swim-gossip', 'swim-digest', 'swim-records', 'cluster-state'] as const) {
    peers.register(type, (request) => roles.gossiper.receive(request), { servesWhenRemoved: true });
  }
  peers.register('handoff-held', (request) => roles.handoff.handleHeld(request), { refusesMalformed: true });
  peers.register('handoff-fetch', (request) => roles.handoff.handleFetch(request), { refusesMalformed: true });
  for (const type of ['ae-keys', 'ae-fetch', 'ae-push', 'ae-summary', 'ae-leaves', 'ae-digest', 'ae-reap'] as const)
    peers.register(type, (request) => roles.antiEntropy.handleMessage(request), { refusesMalformed: true });
  peers.register('dt-update', async (request) => {
    refuseConsistent(request.bucket);
    return roles.dataTypes.handleUpdate(request);
  });
  for (const type of ['paxos-prepare', 'paxos-propose', 'paxos-commit'] as const) peers.register(type, (request) => roles.acceptors.handle(request));
  peers.register('paxos-keys', (request) => roles.acceptors.keys(request, roles.requireRing().partitionCount), { refusesMalformed: true });
  peers.register('watch-poll', (request) => roles.watchLog.poll(request));
  peers.register('list-keys', (request) =>
    answerListKeys({ index: roles.replica.bucketIndex, replica: roles.replica, partitionCount: () => roles.requireRing().partitionCount }, request),
  );
}
