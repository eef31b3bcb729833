import { createHash } from 'node:crypto';

/**
 * The register a consistent key is: its value (null when absent: never written or deleted) and
 * a version that grows by one with every write, deletes included. The version is the key's
 * fencing token (Kleppmann's argument: a storage service that remembers the highest token it
 * saw can refuse a write from a lock holder whose lease ran out). Each Paxos round decides the
 * register's next state, so a compare-and-set is judged against the state the round decided
 * on, never against a replica's possibly stale copy.
 */

/** A consistent key's state. */
export interface RegisterState {
  /** 0 before the first write; every write (a delete too) adds one. */
  readonly version: number;
  /** The value, or null when the key is absent. */
  readonly value: Uint8Array | null;
  /**
   * The operation ids of the writes that made the newest versions, newest first: `writes[i]` made
   * version `version - i`; at most `recentWritesKept`, fewer when the key has had fewer writes
   * (or was restored from a backup). A proposer that lost a race reads them to learn whether its
   * own write was decided (proposer.ts, `recover`).
   */
  readonly writes: readonly string[];
}

/** The state of a key that was never written. */
export const emptyRegister: RegisterState = { version: 0, value: null, writes: [] };

/**
 * How many writes' operation ids a register state remembers. A proposer whose proposal lost a
 * race can tell whether it was decided only while fewer than this many writes were decided after
 * it, else it answers "unknown"; each id costs 9 bytes in every stored and sent state.
 */
export const recentWritesKept = 16;

/** The bytes of an operation id. */
export const operationIdBytes = 8;

/**
 * The id of a proposer's `counter`-th operation: 64 bits of SHA-256 of its identity (unique to the
 * process, as for ballots) and the counter, as hex. Unique for practical purposes, and drawn
 * from no clock or randomness, so a simulation replays it.
 */
export function operationId(proposer: string, counter: number): string {
  return createHash('sha256').update(`${proposer}/${counter}`).digest().subarray(0, operationIdBytes).toString('hex');
}

/** The version `operation` wrote in `state`'s history, null when none of the remembered writes is it. */
export function versionWrittenBy(state: RegisterState, operation: string): number | null {
  const index = state.writes.indexOf(operation);
  return index < 0 ? null : state.version - index;
}

/** True when `state` remembers which operation wrote every version from `version` on, so versionWrittenBy's null is an answer. */
export function remembersFrom(state: RegisterState, version: number): boolean {
  return version > state.version - state.writes.length;
}

/**
 * A write's precondition: HTTP's `If-None-Match: *` (absent) and `If-Match` (a version), and a
 * restore's (README, "Backup and restore"): `restore` holds while the key's version is below
 * `version`, and the write then takes that version instead of the next one, so a restored key's
 * fencing token is the backed-up one and never goes back (a newer or equal version stays).
 */
export type WriteCondition =
  | { readonly kind: 'none' }
  | { readonly kind: 'absent' }
  | { readonly kind: 'version'; readonly version: number }
  | { readonly kind: 'restore'; readonly version: number };

/**
 * The condition that holds only on a key never written (version 0, not merely absent: a deleted
 * key keeps its version), and writes version 1 as any first write does. A lease is granted so
 * (src/engine/leases.ts), which is why no lease id is ever granted twice.
 */
export const neverWritten: WriteCondition = { kind: 'restore', version: 1 };

/**
 * One operation on a consistent key. A delete is a write of null. A repair reads like a read but
 * always proposes the state it read under a fresh ballot: the handoff of a ring change runs one
 * per key, so the newest state is accepted by a quorum of the new replicas (docs/CONSENSUS.md).
 */
export type RegisterOperation =
  { readonly kind: 'read' } | { readonly kind: 'repair' } | { readonly kind: 'write'; readonly value: Uint8Array | null; readonly condition: WriteCondition };

/** What an operation does to a state. */
export type OperationResult =
  | { readonly outcome: 'read'; readonly state: RegisterState }
  | { readonly outcome: 'written'; readonly state: RegisterState }
  | { readonly outcome: 'precondition-failed'; readonly state: RegisterState };

/** Whether `condition` holds on `state`. */
export function conditionHolds(state: RegisterState, condition: WriteCondition): boolean {
  switch (condition.kind) {
    case 'none':
      return true;
    case 'absent':
      return state.value === null;
    case 'version':
      return state.version === condition.version && state.value !== null;
    case 'restore':
      return state.version < condition.version;
  }
}

/**
 * Applies `operation` (whose id is `id`) to `state`: a read (or repair) leaves it, a write whose
 * condition holds makes the next version and remembers its id as that version's writer. A
 * restore jumps to the backed-up version and remembers only its own id: the writers of the
 * versions it skipped are unknown, and `writes[i]` must be the writer of `version - i`.
 */
export function applyOperation(state: RegisterState, operation: RegisterOperation, id: string): OperationResult {
  if (operation.kind !== 'write') return { outcome: 'read', state };
  if (!conditionHolds(state, operation.condition)) return { outcome: 'precondition-failed', state };
  if (operation.condition.kind === 'restore')
    return { outcome: 'written', state: { version: operation.condition.version, value: operation.value, writes: [id] } };
  return { outcome: 'written', state: { version: state.version + 1, value: operation.value, writes: [id, ...state.writes].slice(0, recentWritesKept) } };
}
