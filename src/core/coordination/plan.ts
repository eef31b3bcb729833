import type { QuorumSetting } from '../buckets.js';
import { type TallyRequirement, resolveQuorum } from '../quorum/quorum.js';
import { type Ring, fallbacks, plannedRing, preferenceList } from '../ring/ring.js';

/**
 * The one place where a request's quorum is resolved and its replicas are chosen (Dynamo's
 * coordinator rules): which primaries a read asks first and which it keeps as spares; where a
 * write goes (live primaries, a fallback with a hint for each down primary, the planned
 * replicas of a ring change) and how many of each must answer. Pure: it takes the ring, the
 * bucket's n_val and who is up, and decides.
 */

/** What a plan decides on. */
export interface PlacementView {
  readonly ring: Ring;
  readonly partition: number;
  readonly nVal: number;
  /** This node: a read asks it first, and a write is coordinated here when it is a live primary. */
  readonly self: string;
  readonly isUp: (node: string) => boolean;
}

/** Per-request quorums of a read (already validated at the edge). */
export interface ReadQuorums {
  readonly r: QuorumSetting;
  readonly pr?: QuorumSetting;
}

/** Per-request quorums of a write (already validated at the edge). */
export interface WriteQuorums {
  readonly w: QuorumSetting;
  readonly pw?: QuorumSetting;
  readonly dw?: QuorumSetting;
}

/** A read's plan: ask `first` now, and `spares` when one of them fails or is slow. */
export interface ReadPlan {
  readonly primaries: readonly string[];
  readonly first: readonly string[];
  readonly spares: readonly string[];
  readonly requirement: TallyRequirement;
}

/** One replica a write goes to, and how the tally counts its answer. */
export interface WriteTarget {
  readonly node: string;
  /** One of the key's primaries (a fallback is not). */
  readonly primary: boolean;
  /** Counts towards `w` (a planned replica outside the current preference list does not). */
  readonly counts: boolean;
  /** Is (or holds a hint for) one of the key's planned replicas during a ring change. */
  readonly planned: boolean;
  /** Set on a fallback: the down primary whose copy it keeps as a hint. */
  readonly hintFor?: string;
}

/** A write's plan. `coordinating` applies the write and issues its dot; then `targets` get the result. */
export interface WritePlan {
  readonly primaries: readonly string[];
  readonly coordinating: string | undefined;
  /** Every replica the write goes to, `coordinating` among them. */
  readonly targets: readonly WriteTarget[];
  /** Down primaries with no fallback to hold their hint: this node keeps those hints (they do not count for w). */
  readonly keptHints: readonly string[];
  /** The planned preference list while a ring change is under way, else empty. */
  readonly planned: readonly string[];
  readonly requirement: TallyRequirement;
  /** Durable (fsynced) replica writes are needed. */
  readonly sync: boolean;
  /** The plan cannot meet its requirement even if every target answers: refuse before writing. */
  readonly impossible: boolean;
}

/** This node first (its read is the cheapest), then live replicas, then down ones. */
function readOrder(view: PlacementView, primaries: readonly string[]): string[] {
  const rank = (node: string): number => (node === view.self ? 0 : view.isUp(node) ? 1 : 2);
  return [...primaries].sort((left, right) => rank(left) - rank(right));
}

/** Plans a read over the key's primaries: as many as it needs first, the rest as spares. */
export function planRead(view: PlacementView, quorums: ReadQuorums): ReadPlan {
  const primaries = preferenceList(view.ring, view.partition, view.nVal);
  const requirement: TallyRequirement = {
    required: resolveQuorum(quorums.r, primaries.length),
    primaryRequired: quorums.pr === undefined ? 0 : resolveQuorum(quorums.pr, primaries.length),
    durableRequired: 0,
    asked: primaries.length,
    primariesAsked: primaries.length,
  };
  const ordered = readOrder(view, primaries);
  const needed = Math.max(requirement.required, requirement.primaryRequired);
  return { primaries, first: ordered.slice(0, needed), spares: ordered.slice(needed), requirement };
}

/**
 * Plans a write. Sloppy quorum (Dynamo): a down primary's copy goes to the next live node
 * outside the preference list with a hint, counting for w but never for pw; with none left
 * and hinted handoff on, this node keeps the hint itself (Cassandra's way), not counting for w.
 * While a ring change is under way the planned replicas get the write too, and a quorum of
 * them must take it, so an r read of the new replicas after the switch still meets it.
 */
export function planWrite(view: PlacementView, quorums: WriteQuorums, hintedHandoff: boolean): WritePlan {
  const { ring, partition, nVal, isUp } = view;
  const primaries = preferenceList(ring, partition, nVal);
  const planned = ring.next === null ? [] : preferenceList(plannedRing(ring), partition, nVal);
  const livePrimaries = primaries.filter(isUp);
  const downPrimaries = primaries.filter((node) => !isUp(node));
  const spares = hintedHandoff ? fallbacks(ring, partition, nVal, isUp, downPrimaries.length) : [];
  const targets: WriteTarget[] = livePrimaries.map((node) => ({ node, primary: true, counts: true, planned: planned.includes(node) }));
  const keptHints: string[] = [];
  downPrimaries.forEach((down, index) => {
    const spare = spares[index];
    if (spare !== undefined) targets.push({ node: spare, primary: false, counts: true, planned: planned.includes(down), hintFor: down });
    else if (hintedHandoff) keptHints.push(down);
  });
  for (const node of planned) {
    if (!primaries.includes(node) && isUp(node) && !targets.some((target) => target.node === node))
      targets.push({ node, primary: false, counts: false, planned: true });
  }
  const dwRequired = quorums.dw === undefined ? 0 : resolveQuorum(quorums.dw, primaries.length);
  const requirement: TallyRequirement = {
    required: resolveQuorum(quorums.w, primaries.length),
    primaryRequired: quorums.pw === undefined ? 0 : resolveQuorum(quorums.pw, primaries.length),
    durableRequired: dwRequired,
    asked: targets.length,
    primariesAsked: livePrimaries.length,
    plannedRequired: planned.length === 0 ? 0 : Math.min(resolveQuorum(quorums.w, planned.length), planned.length),
    plannedAsked: targets.filter((target) => target.planned).length,
  };
  const coordinating = livePrimaries.includes(view.self) ? view.self : livePrimaries[0];
  const counted = targets.filter((target) => target.counts).length;
  const plannedReachable = requirement.plannedAsked ?? 0;
  const impossible =
    coordinating === undefined ||
    counted < requirement.required ||
    requirement.primaryRequired > livePrimaries.length ||
    requirement.durableRequired > counted ||
    plannedReachable < (requirement.plannedRequired ?? 0);
  return { primaries, coordinating, targets, keptHints, planned, requirement, sync: dwRequired > 0, impossible };
}
