import type { VersionVector } from './version-vector.js';

/**
 * The actors that issue a node's dots, as Riak's per-key actor epochs (riak_kv 2.1, "kv679").
 *
 * A node's actor is `nodeId.storageEpoch`: the storage epoch is drawn once, when the node's
 * storage is first created, so a node whose disk was wiped is a new actor and can never issue a
 * dot it issued before. Its dots on one key come from one *key epoch* `nodeId.storageEpoch.keyEpoch`
 * (key epochs are numbered from a counter the node persists ahead of use), and within a key
 * epoch they count 1, 2, 3... on that key without gaps. A clock entry `actor: n` therefore
 * claims exactly the events `actor:1..n` of that key, which holds only while the node's copy of
 * the key has held every event of the key epoch. A node starts a new key epoch whenever that may
 * not hold: its copy is absent (never written here, reaped, handed off), or the key epoch was
 * begun before the node last lost writes (an unclean stop, or a copy it had lost taken back from
 * another replica). Restarts therefore do not grow a key's clock: it has one entry per node that
 * coordinated writes of it, plus one per time such a node lost its copy.
 */

/** The name of a key epoch of `nodeActor`. */
export function keyActorName(nodeActor: string, keyEpoch: number): string {
  return `${nodeActor}.${keyEpoch.toString(36)}`;
}

/** The key epoch `actor` names, when it is one of `nodeActor`'s; undefined for any other actor. */
export function keyEpochOf(actor: string, nodeActor: string): number | undefined {
  if (!actor.startsWith(nodeActor) || actor.charCodeAt(nodeActor.length) !== 0x2e) return undefined;
  const suffix = actor.slice(nodeActor.length + 1);
  return /^[0-9a-z]{1,11}$/.test(suffix) ? parseInt(suffix, 36) : undefined;
}

/**
 * The key epoch this node continues on a key whose stored clock is `clock`: its newest key epoch
 * there, when that is at least `trustedFromEpoch` (begun after the node last lost writes);
 * undefined when the node must begin a new key epoch.
 */
export function trustedKeyActor(clock: VersionVector, nodeActor: string, trustedFromEpoch: number): string | undefined {
  let newest: number | undefined;
  for (const actor of Object.keys(clock)) {
    const epoch = keyEpochOf(actor, nodeActor);
    if (epoch !== undefined && (newest === undefined || epoch > newest)) newest = epoch;
  }
  return newest === undefined || newest < trustedFromEpoch ? undefined : keyActorName(nodeActor, newest);
}
