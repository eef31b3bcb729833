/**
 * The linearizability checker for a compare-and-set register per key (Jepsen's Knossos and
 * Porcupine, after Wing & Gong and Lowe's "Testing for linearizability", 2016). A history is
 * linearizable when every operation can be given one instant between its invocation and its
 * completion such that the operations, taken in that order, are legal for a single register.
 *
 * Registers on different keys are independent objects, so the history is split per key and each
 * key is searched alone (linearizability is compositional: Herlihy & Wing's locality). The search
 * is Lowe's just-in-time variant of Wing–Gong: walk the entries in time order, try to linearize
 * each call whose completion has not yet been passed, backtrack when a completion is reached
 * whose call could not be placed, and cache (placed set, register state) pairs so that no
 * configuration is explored twice.
 *
 * Outcomes follow Jepsen: `ok` happened within its interval; `fail` certainly did not happen
 * and is dropped; `info` may have happened at any instant after its invocation, or never, so it
 * is open-ended and need not be placed. A read whose outcome is unknown tells nothing and is
 * dropped. One failure is also an observation: a compare-and-set refused because the register
 * held another value (`fail` with error `precondition-failed`) must be placed, at an instant when
 * the register did not hold its expected value (Porcupine's etcd model does the same).
 *
 * The search can take exponential time on adversarial histories. Each key gets a budget of search
 * steps (a count, not a clock, so a verdict never depends on the machine's speed); a key whose
 * search runs out is "unknown", and so is the whole history then: never "valid".
 */
import { type Operation, pairOperations } from '../history.js';
import { nothingTested } from './checker.js';

/** A register's value: a number, or null for "no value" (never written, or deleted). */
export type RegisterValue = number | null;

/** A register operation as the model sees it. */
export type RegisterCall =
  | { readonly f: 'read'; readonly value: RegisterValue }
  | { readonly f: 'write'; readonly value: RegisterValue }
  | { readonly f: 'cas'; readonly from: RegisterValue; readonly to: RegisterValue }
  /** A compare-and-set the register refused: it saw a value other than `from` and changed nothing. */
  | { readonly f: 'cas-refused'; readonly from: RegisterValue };

/** One operation of one key, with the instants that bound it. */
export interface TimedCall {
  readonly call: RegisterCall;
  /** History index of the invocation (names the operation in reports). */
  readonly index: number;
  readonly invokeMs: number;
  /** Infinity when the outcome is unknown. */
  readonly completeMs: number;
}

/** The verdict on one key. */
export interface KeyVerdict {
  readonly key: string;
  readonly verdict: 'valid' | 'invalid' | 'unknown';
  readonly operations: number;
  /** Search steps taken. */
  readonly steps: number;
  /** For an invalid key: the operations of the longest legal order found, by history index. */
  readonly longestPrefix?: readonly number[];
  /** For an invalid key: history indexes of the acknowledged operations that order could not place. */
  readonly unplaced?: readonly number[];
}

/** What the linearizability checker found. */
export interface LinearizableResult {
  /** True only when every key was searched to the end and found linearizable. */
  readonly valid: boolean;
  /** 'unknown' when no key is invalid but some search ran out of its budget. */
  readonly verdict: 'valid' | 'invalid' | 'unknown';
  readonly nothingTested?: string;
  readonly keys: number;
  readonly operations: number;
  readonly invalidKeys: readonly KeyVerdict[];
  readonly unknownKeys: readonly string[];
}

/** Search steps per key before it is judged "unknown". */
export const defaultStepBudget = 5_000_000;

/**
 * The register's transition: the state after `call` from `state`, or undefined when `call` is
 * not legal in `state` (a read of another value, a compare-and-set whose expectation fails).
 */
export function stepRegister(state: RegisterValue, call: RegisterCall): RegisterValue | undefined {
  switch (call.f) {
    case 'read':
      return call.value === state ? state : undefined;
    case 'write':
      return call.value;
    case 'cas':
      return call.from === state ? call.to : undefined;
    case 'cas-refused':
      return call.from === state ? undefined : state;
  }
}

interface Entry {
  readonly id: number;
  readonly isCall: boolean;
  readonly operation: TimedCall;
  /** The call's completion entry (for calls); undefined for an open-ended operation. */
  match: Entry | undefined;
  previous: Entry | undefined;
  next: Entry | undefined;
}

/**
 * Searches one key's operations (Lowe's algorithm). `initial` is the register's value before the
 * history began.
 */
export function checkKeyLinearizable(key: string, operations: readonly TimedCall[], initial: RegisterValue = null, stepBudget = defaultStepBudget): KeyVerdict {
  // The entry list in time order: a call at its invocation, a completion at its end; at equal
  // times calls go first, so operations that touch at an instant are taken as concurrent.
  const events: { atMs: number; isCall: boolean; id: number }[] = [];
  operations.forEach((operation, id) => {
    events.push({ atMs: operation.invokeMs, isCall: true, id });
    if (Number.isFinite(operation.completeMs)) events.push({ atMs: operation.completeMs, isCall: false, id });
  });
  events.sort((a, b) => a.atMs - b.atMs || (a.isCall === b.isCall ? a.id - b.id : a.isCall ? -1 : 1));
  const head: Entry = { id: -1, isCall: false, operation: undefined as unknown as TimedCall, match: undefined, previous: undefined, next: undefined };
  const calls = new Map<number, Entry>();
  let tail = head;
  for (const event of events) {
    const operation = operations[event.id] as TimedCall;
    const entry: Entry = { id: event.id, isCall: event.isCall, operation, match: undefined, previous: tail, next: undefined };
    tail.next = entry;
    tail = entry;
    if (event.isCall) calls.set(event.id, entry);
    else (calls.get(event.id) as Entry).match = entry;
  }
  const acknowledged = operations.filter((operation) => Number.isFinite(operation.completeMs)).length;

  // Lift an entry (and its completion) out of the list when its operation is placed; unlift restores both.
  const lift = (entry: Entry): void => {
    (entry.previous as Entry).next = entry.next;
    if (entry.next !== undefined) entry.next.previous = entry.previous;
    const match = entry.match;
    if (match !== undefined) {
      (match.previous as Entry).next = match.next;
      if (match.next !== undefined) match.next.previous = match.previous;
    }
  };
  const unlift = (entry: Entry): void => {
    const match = entry.match;
    if (match !== undefined) {
      (match.previous as Entry).next = match;
      if (match.next !== undefined) match.next.previous = match;
    }
    (entry.previous as Entry).next = entry;
    if (entry.next !== undefined) entry.next.previous = entry;
  };

  // The placed set as bits, 15 to a word (so no word is a lone surrogate when read as a character).
  const placed = new Uint16Array(Math.ceil(operations.length / 15));
  const place = (id: number): void => {
    placed[Math.floor(id / 15)] = (placed[Math.floor(id / 15)] as number) | (1 << (id % 15));
  };
  const unplace = (id: number): void => {
    placed[Math.floor(id / 15)] = (placed[Math.floor(id / 15)] as number) & ~(1 << (id % 15));
  };
  const seen = new Set<string>();
  const stack: { entry: Entry; state: RegisterValue }[] = [];
  let state = initial;
  let placedAcknowledged = 0;
  let longest: number[] = [];
  let steps = 0;
  let entry = head.next;
  while (placedAcknowledged < acknowledged) {
    steps += 1;
    if (steps > stepBudget) return { key, verdict: 'unknown', operations: operations.length, steps };
    if (entry === undefined) {
      // Only open-ended calls are left to try and none fits here: backtrack.
      const top = stack.pop();
      if (top === undefined) break;
      ({ entry, state } = undo(top));
      continue;
    }
    if (entry.isCall) {
      const next = stepRegister(state, entry.operation.call);
      if (next !== undefined) {
        place(entry.id);
        const configuration = `${placedKey(placed)}|${String(next)}`;
        if (!seen.has(configuration)) {
          seen.add(configuration);
          stack.push({ entry, state });
          state = next;
          if (entry.match !== undefined) placedAcknowledged += 1;
          lift(entry);
          if (stack.length > longest.length) longest = stack.map((frame) => frame.entry.operation.index);
          entry = head.next;
          continue;
        }
        unplace(entry.id);
      }
      entry = entry.next;
      continue;
    }
    // A completion whose call is still unplaced: this order cannot go on; take back the last choice.
    const top = stack.pop();
    if (top === undefined) break;
    ({ entry, state } = undo(top));
  }
  if (placedAcknowledged === acknowledged) return { key, verdict: 'valid', operations: operations.length, steps };
  const inLongest = new Set(longest);
  const unplaced = operations
    .filter((operation) => Number.isFinite(operation.completeMs) && !inLongest.has(operation.index))
    .map((operation) => operation.index);
  return { key, verdict: 'invalid', operations: operations.length, steps, longestPrefix: longest, unplaced };

  function undo(top: { entry: Entry; state: RegisterValue }): { entry: Entry | undefined; state: RegisterValue } {
    unplace(top.entry.id);
    if (top.entry.match !== undefined) placedAcknowledged -= 1;
    unlift(top.entry);
    return { entry: top.entry.next, state: top.state };
  }
}

/** The placed set as a cache key: one character per 15 operations. */
function placedKey(placed: Uint16Array): string {
  let key = '';
  // In slices, since String.fromCharCode takes its characters as arguments.
  for (let start = 0; start < placed.length; start += 4096) key += String.fromCharCode(...placed.subarray(start, start + 4096));
  return key;
}

/**
 * The register call of a history entry, or undefined for an entry that is not a register
 * operation. Histories record `read` (value read, null when absent), `write` (value written),
 * `delete`, and `cas` (value `[from, to]`).
 */
export function registerCallOf(invoke: Operation, completion: Operation): RegisterCall | undefined {
  switch (invoke.f) {
    case 'read':
      return { f: 'read', value: (completion.value ?? null) as RegisterValue };
    case 'write':
      return { f: 'write', value: invoke.value as RegisterValue };
    case 'delete':
      return { f: 'write', value: null };
    case 'cas': {
      const [from, to] = invoke.value as [RegisterValue, RegisterValue];
      return { f: 'cas', from, to };
    }
    default:
      return undefined;
  }
}

/** The error a `fail` completion of a compare-and-set carries when the register held another value. */
export const casRefusedError = 'precondition-failed';

/** Splits a history into each key's timed register calls, as the search takes them. */
export function registerCallsByKey(history: readonly Operation[]): Map<string, TimedCall[]> {
  const byKey = new Map<string, TimedCall[]>();
  for (const { invoke, completion } of pairOperations(history)) {
    // The final reads after healing are reads of the register like any other.
    if (invoke.f === 'final-read' && invoke.key !== undefined && completion?.type === 'ok') {
      const calls = byKey.get(invoke.key) ?? [];
      calls.push({
        call: { f: 'read', value: (completion.value ?? null) as RegisterValue },
        index: invoke.index,
        invokeMs: invoke.timeMs,
        completeMs: completion.timeMs,
      });
      byKey.set(invoke.key, calls);
      continue;
    }
    if (typeof invoke.process !== 'number' || invoke.key === undefined) continue;
    // No completion (the run ended first) is as unknown as `info`.
    const type = completion?.type ?? 'info';
    const refused = type === 'fail' && invoke.f === 'cas' && completion?.error === casRefusedError;
    if (type === 'fail' && !refused) continue;
    if (type === 'info' && invoke.f === 'read') continue;
    const call = refused
      ? { f: 'cas-refused' as const, from: (invoke.value as [RegisterValue, RegisterValue])[0] }
      : registerCallOf(invoke, completion ?? invoke);
    if (call === undefined) continue;
    const calls = byKey.get(invoke.key) ?? [];
    calls.push({ call, index: invoke.index, invokeMs: invoke.timeMs, completeMs: type === 'info' ? Infinity : (completion as Operation).timeMs });
    byKey.set(invoke.key, calls);
  }
  return byKey;
}

/** Judges a compare-and-set register history, key by key. */
export function checkLinearizable(history: readonly Operation[], stepBudget = defaultStepBudget): LinearizableResult {
  const byKey = registerCallsByKey(history);
  const verdicts = [...byKey].map(([key, calls]) => checkKeyLinearizable(key, calls, null, stepBudget));
  const invalidKeys = verdicts.filter((verdict) => verdict.verdict === 'invalid');
  const unknownKeys = verdicts.filter((verdict) => verdict.verdict === 'unknown').map((verdict) => verdict.key);
  const operations = verdicts.reduce((sum, verdict) => sum + verdict.operations, 0);
  const acknowledgedWrites = [...byKey.values()]
    .flat()
    .filter((call) => (call.call.f === 'write' || call.call.f === 'cas') && Number.isFinite(call.completeMs)).length;
  const acknowledgedReads = [...byKey.values()].flat().filter((call) => call.call.f === 'read').length;
  const empty = nothingTested([
    [acknowledgedWrites === 0, 'no write or compare-and-set was acknowledged'],
    [acknowledgedReads === 0, 'no read was acknowledged'],
  ]);
  const verdict = invalidKeys.length > 0 ? 'invalid' : unknownKeys.length > 0 ? 'unknown' : 'valid';
  return {
    valid: verdict === 'valid' && empty === undefined,
    verdict,
    ...(empty === undefined ? {} : { nothingTested: empty }),
    keys: byKey.size,
    operations,
    invalidKeys,
    unknownKeys,
  };
}

/** What the cas-register checker found: the linearizability verdict and the compare-and-sets by outcome. */
export interface CasRegisterResult extends LinearizableResult {
  /** Compare-and-sets acknowledged, refused (412: the register held another value), and of unknown outcome. */
  readonly casOk: number;
  readonly casRefused: number;
  readonly casUnknown: number;
}

/**
 * Judges a cas-register run: linearizable per key, and something to judge: besides an
 * acknowledged write and read, an acknowledged compare-and-set (a run where every cas failed
 * proves nothing about them).
 */
export function checkCasRegister(history: readonly Operation[], stepBudget = defaultStepBudget): CasRegisterResult {
  const result = checkLinearizable(history, stepBudget);
  let casOk = 0;
  let casRefused = 0;
  let casUnknown = 0;
  for (const { invoke, completion } of pairOperations(history)) {
    if (invoke.f !== 'cas' || typeof invoke.process !== 'number') continue;
    if (completion?.type === 'ok') casOk += 1;
    else if (completion?.type === 'fail' && completion.error === casRefusedError) casRefused += 1;
    else if (completion === undefined || completion.type === 'info') casUnknown += 1;
  }
  const empty = result.nothingTested ?? nothingTested([[casOk === 0, 'no compare-and-set was acknowledged']]);
  return { ...result, valid: result.valid && empty === undefined, ...(empty === undefined ? {} : { nothingTested: empty }), casOk, casRefused, casUnknown };
}
