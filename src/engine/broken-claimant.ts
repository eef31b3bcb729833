/**
 * Deliberately broken claimants, for the simulation tests only (like
 * src/core/consensus/broken-variants.ts for Paxos): each is a mistake a claimant could make, and
 * the ring-change simulation (test/sim/ring-changes.sim.test.ts) must catch every one of them.
 * The engine never sets one; passing none gives the claimant of src/engine/claimant.ts.
 *
 * - `plan-down-receivers`: a joiner that is down is planned in like a live one, so the change
 *   waits for a node that cannot stream its partitions in.
 * - `complete-before-transfers`: a change completes as soon as it is planned, before the nodes
 *   that receive partitions have streamed them in (the old replicas drop data the new ones lack).
 * - `replan-from-planned`: a change that arrives while another is under way is planned from the
 *   pending owners as if the first had completed, so the first change's transfers are skipped (two
 *   queued changes overwrite each other).
 */
export type BrokenClaimant = 'plan-down-receivers' | 'complete-before-transfers' | 'replan-from-planned';

/** Every broken claimant, for tests that try each. */
export const brokenClaimants: readonly BrokenClaimant[] = ['plan-down-receivers', 'complete-before-transfers', 'replan-from-planned'];
