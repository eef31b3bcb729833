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
}

/** The state of a key that was never written. */
export const emptyRegister: RegisterState = { version: 0, value: null };

/** A write's precondition: HTTP's `If-None-Match: *` (absent) and `If-Match` (a version). */
export type WriteCondition = { readonly kind: 'none' } | { readonly kind: 'absent' } | { readonly kind: 'version'; readonly version: number };

/**
 * One operation on a consistent key. A delete is a write of null. A repair reads like a read but
 * always proposes the state it read under a fresh ballot: the handoff of a ring change runs one
 * per key, so the newest state is accepted by a quorum of the new replicas (docs/CONSENSUS.md).
 */
export type RegisterOperation =
  | { readonly kind: 'read' }
  | { readonly kind: 'repair' }
  | { readonly kind: 'write'; readonly value: Uint8Array | null; readonly condition: WriteCondition };

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
  }
}

/** Applies `operation` to `state`: a read (or repair) leaves it, a write whose condition holds makes the next version. */
export function applyOperation(state: RegisterState, operation: RegisterOperation): OperationResult {
  if (operation.kind !== 'write') return { outcome: 'read', state };
  if (!conditionHolds(state, operation.condition)) return { outcome: 'precondition-failed', state };
  return { outcome: 'written', state: { version: state.version + 1, value: operation.value } };
}
