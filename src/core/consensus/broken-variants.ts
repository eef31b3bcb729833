/**
 * Deliberately broken versions of the protocol, for the simulation tests only: each one is a
 * mistake a real implementation made or could make, and the linearizability checker must catch
 * every one of them (a checker that never fails proves nothing). The engine never sets one;
 * passing none gives the protocol as documented in docs/CONSENSUS.md.
 *
 * - `skip-repair`: a proposer ignores an accepted value newer than the newest commit it heard
 *   of, and builds on the committed one (the in-progress value of a paused proposer is lost).
 * - `accept-without-persisting`: an acceptor answers a proposal before its state is durable, so
 *   a power loss forgets an acceptance a quorum was counted on.
 * - `half-quorum`: a proposer counts floor(N/2) answers as a quorum, so two quorums can miss
 *   each other.
 * - `skip-promise-check`: an acceptor accepts a proposal whose ballot is older than a promise
 *   it made (the bug class of the Jepsen analyses of Cassandra LWT).
 * - `skip-carried-report`: a round that carries forward (repairs) a decided state no acceptor
 *   committed does not report it to the watches, so the write of a proposer that died after
 *   the decision vanishes from them (the watch simulation must catch it).
 */
export type BrokenVariant = 'skip-repair' | 'accept-without-persisting' | 'half-quorum' | 'skip-promise-check' | 'skip-carried-report';

/** Every broken variant, for tests that try each. */
export const brokenVariants: readonly BrokenVariant[] = ['skip-repair', 'accept-without-persisting', 'half-quorum', 'skip-promise-check'];
