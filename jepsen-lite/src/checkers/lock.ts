/**
 * The lock checker. Clients take a lock by writing their holder id to the lock's key with
 * `If-None-Match: *`, hold it a moment, and release it by deleting the key; each acquisition's
 * reply carries the key's version, a fencing token (Kleppmann's argument: a resource that only
 * accepts growing tokens is safe even from a holder that paused and lost its lock). Two promises
 * are judged, per lock, on what the history proves:
 *
 * - **Holders never overlap.** A holder certainly held the lock from the completion of its
 *   acknowledged acquire (the acquire took effect no later) until the invocation of its release
 *   (the release took effect no earlier). When its acquire's outcome was unknown, a later read
 *   that saw its holder id shows it held the lock no later than that read's completion, which
 *   then starts the interval. A release that failed (412, 503) did nothing: the hold goes on to
 *   the next release. A release of unknown outcome may have taken effect at its invocation or
 *   never; the interval ends at its invocation, and whatever acquires the lock next proves it
 *   was released by then. Two such intervals that overlap are two holders at once.
 * - **Fencing tokens grow in acquisition order.** Tokens of one lock are distinct, and when one
 *   acquisition certainly took effect before another was invoked, its token is the smaller.
 *
 * Recorded operations (by the lock workload): `acquire` (invocation value: the holder id;
 * ok value `{ holder, token }`), `release` (value: the holder id), and `read` (invocation value:
 * the holder id whose unknown acquire or release it checks; ok value `{ holder, token }`, holder
 * null when the lock is free). A token is null where the server sent none (a plain bucket).
 */
import { type Operation, pairOperations } from '../history.js';
import { nothingTested } from './checker.js';

/** What an acknowledged acquire or read of a lock returned. */
export interface LockState {
  /** Who holds it, or null when free. */
  readonly holder: number | null;
  /** The key's version (x-ringkv-version), or null when the reply had none. */
  readonly token: number | null;
}

/** One holder's certain tenure of a lock. */
export interface Tenure {
  readonly key: string;
  readonly holder: number;
  /** Since when the holder certainly held it (its acquire's completion, or the read that saw it). */
  readonly fromMs: number;
  /** Until when at least (its release's invocation); Infinity when never released. */
  readonly untilMs: number;
  /** The fencing token, or null when unknown. */
  readonly token: number | null;
  /** When the acquire was invoked: it took effect no earlier. */
  readonly acquireInvokedMs: number;
  /** History index of the acquire's invocation. */
  readonly index: number;
}

/** Two holders at once. */
export interface Overlap {
  readonly key: string;
  readonly first: Tenure;
  readonly second: Tenure;
}

/** An acquisition certainly before another whose token is not smaller. */
export interface TokenViolation {
  readonly key: string;
  readonly earlier: Tenure;
  readonly later: Tenure;
}

/** What the lock checker found. */
export interface LockResult {
  readonly valid: boolean;
  readonly nothingTested?: string;
  readonly locks: number;
  /** Acquires acknowledged, and of unknown outcome later seen held by a read. */
  readonly acquired: number;
  readonly confirmedByRead: number;
  readonly refused: number;
  readonly released: number;
  /** Pairs of acquisitions whose tokens were compared (certain real-time order, both tokens known). */
  readonly tokenPairsChecked: number;
  readonly overlaps: number;
  readonly tokenViolations: number;
  /** Up to 20 of each. */
  readonly overlapExamples: readonly Overlap[];
  readonly tokenExamples: readonly TokenViolation[];
}

const maxExamples = 20;

function lockStateOf(value: unknown): LockState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { holder, token } = value as { holder?: unknown; token?: unknown };
  if (holder !== null && typeof holder !== 'number') return undefined;
  return { holder, token: typeof token === 'number' ? token : null };
}

interface Grant {
  key: string;
  holder: number;
  fromMs: number;
  untilMs: number;
  token: number | null;
  acquireInvokedMs: number;
  index: number;
}

/** What the lock checker knows besides the history. */
export interface LockCheckOptions {
  /** Whether acquisitions carry fencing tokens (a consistent bucket): then a run that compared none tested nothing. */
  readonly fencingTokens: boolean;
}

/** Judges a lock history. */
export function checkLock(history: readonly Operation[], options: LockCheckOptions = { fencingTokens: false }): LockResult {
  const grants = new Map<number, Grant>();
  /** Acquires of unknown outcome, by holder: a read that sees the holder turns one into a grant. */
  const unknownAcquires = new Map<number, { key: string; invokedMs: number; index: number }>();
  const releases: { holder: number; invokedMs: number }[] = [];
  let refused = 0;
  let confirmedByRead = 0;
  let released = 0;
  const pairs = pairOperations(history).filter(({ invoke }) => typeof invoke.process === 'number' && invoke.key !== undefined);
  for (const { invoke, completion } of pairs) {
    const key = invoke.key as string;
    const holder = invoke.value as number;
    const type = completion?.type ?? 'info';
    if (invoke.f === 'acquire') {
      if (type === 'ok') {
        const state = lockStateOf(completion?.value);
        grants.set(holder, {
          key,
          holder,
          fromMs: (completion as Operation).timeMs,
          untilMs: Infinity,
          token: state?.token ?? null,
          acquireInvokedMs: invoke.timeMs,
          index: invoke.index,
        });
      } else if (type === 'info') unknownAcquires.set(holder, { key, invokedMs: invoke.timeMs, index: invoke.index });
      else refused += 1;
    } else if (invoke.f === 'release') {
      // A failed release did nothing; one acknowledged or unknown ends the certain tenure at its invocation.
      if (type === 'fail') continue;
      if (type === 'ok') released += 1;
      releases.push({ holder, invokedMs: invoke.timeMs });
    }
  }
  // Reads that saw a holder whose acquire's outcome was unknown: it held the lock by then.
  for (const { invoke, completion } of pairs) {
    if (invoke.f !== 'read' || completion?.type !== 'ok') continue;
    const state = lockStateOf(completion.value);
    if (state?.holder === null || state === undefined) continue;
    const pending = unknownAcquires.get(state.holder);
    if (pending === undefined || pending.key !== invoke.key) continue;
    const existing = grants.get(state.holder);
    if (existing !== undefined && existing.fromMs <= completion.timeMs) continue;
    if (existing === undefined) confirmedByRead += 1;
    grants.set(state.holder, {
      key: pending.key,
      holder: state.holder,
      fromMs: completion.timeMs,
      untilMs: Infinity,
      token: state.token,
      acquireInvokedMs: pending.invokedMs,
      index: pending.index,
    });
  }
  for (const release of releases) {
    const grant = grants.get(release.holder);
    if (grant !== undefined && release.invokedMs >= grant.fromMs) grant.untilMs = Math.min(grant.untilMs, release.invokedMs);
  }

  const byKey = new Map<string, Grant[]>();
  for (const grant of grants.values()) byKey.set(grant.key, [...(byKey.get(grant.key) ?? []), grant]);
  const overlapExamples: Overlap[] = [];
  const tokenExamples: TokenViolation[] = [];
  let overlaps = 0;
  let tokenViolations = 0;
  let tokenPairsChecked = 0;
  for (const [key, tenures] of byKey) {
    tenures.sort((left, right) => left.fromMs - right.fromMs || left.index - right.index);
    for (let i = 0; i < tenures.length; i++) {
      const first = tenures[i] as Grant;
      for (let j = i + 1; j < tenures.length; j++) {
        const second = tenures[j] as Grant;
        // Sorted by start: once one starts after the first ends, later ones do too.
        if (second.fromMs >= first.untilMs) break;
        overlaps += 1;
        if (overlapExamples.length < maxExamples) overlapExamples.push({ key, first: { ...first }, second: { ...second } });
      }
    }
    for (const earlier of tenures) {
      for (const later of tenures) {
        if (earlier === later || earlier.token === null || later.token === null) continue;
        // The earlier acquisition took effect by its tenure's start; the later one not before its invocation.
        if (!(earlier.fromMs < later.acquireInvokedMs)) continue;
        tokenPairsChecked += 1;
        if (earlier.token < later.token) continue;
        tokenViolations += 1;
        if (tokenExamples.length < maxExamples) tokenExamples.push({ key, earlier: { ...earlier }, later: { ...later } });
      }
    }
    // Tokens of one lock are distinct, whatever the order.
    const seen = new Map<number, Grant>();
    for (const tenure of tenures) {
      if (tenure.token === null) continue;
      const twin = seen.get(tenure.token);
      if (twin !== undefined && !(twin.fromMs < tenure.acquireInvokedMs) && !(tenure.fromMs < twin.acquireInvokedMs)) {
        tokenViolations += 1;
        if (tokenExamples.length < maxExamples) tokenExamples.push({ key, earlier: { ...twin }, later: { ...tenure } });
      }
      seen.set(tenure.token, tenure);
    }
  }
  const acquired = grants.size - confirmedByRead;
  const empty = nothingTested([
    [grants.size === 0, 'no acquire was acknowledged'],
    [released === 0, 'no release was acknowledged'],
    [options.fencingTokens && tokenPairsChecked === 0, 'no two acquisitions in a certain order both had a fencing token (x-ringkv-version)'],
  ]);
  return {
    valid: empty === undefined && overlaps === 0 && tokenViolations === 0,
    ...(empty === undefined ? {} : { nothingTested: empty }),
    locks: byKey.size,
    acquired,
    confirmedByRead,
    refused,
    released,
    tokenPairsChecked,
    overlaps,
    tokenViolations,
    overlapExamples,
    tokenExamples,
  };
}
