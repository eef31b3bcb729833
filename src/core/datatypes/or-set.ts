import { KvError } from '../../util/errors.js';
import { type CausalContext, contextCovers } from '../versioning/context.js';
import { counterOf, sortVector, withCounter } from '../versioning/version-vector.js';
import type { Sibling, VersionedObject } from '../versioning/versioned-object.js';
import { sortedByDot } from './dotted-entries.js';

/**
 * An add-wins observed-remove set of strings without tombstones (ORSWOT, Bieniusa et al. and
 * Riak's riak_dt_orswot), on dotted entries: each add of an element is an event with its own dot
 * (a sibling whose value is the element's UTF-8 bytes) and the state's clock records every event
 * it has seen. A remove drops the element's dots that the remover's context had seen, and no
 * others: an add concurrent with the remove has a dot the context never saw, so it survives
 * (add wins). The dotted merge (versioned-object.ts) keeps a dot unless the other side has seen
 * it and dropped it, which is exactly ORSWOT's merge.
 */

/** Bounds of one set, from limits.maxSetElements and limits.maxSetBytes. */
export interface SetLimits {
  readonly maxSetElements: number;
  readonly maxSetBytes: number;
}

/** An update of a set: elements to add, and elements to remove as the context (a read's) saw them. */
export interface SetUpdate {
  readonly add: readonly string[];
  readonly remove: readonly string[];
  /** The context of the read the remove follows; required when `remove` is not empty. */
  readonly context?: CausalContext;
}

function elementOf(sibling: Sibling): string {
  return Buffer.from(sibling.value.buffer, sibling.value.byteOffset, sibling.value.byteLength).toString('utf8');
}

/** Compares strings in the byte order of their UTF-8 encoding (the order listing uses). */
function compareBytes(left: string, right: string): number {
  return Buffer.compare(Buffer.from(left, 'utf8'), Buffer.from(right, 'utf8'));
}

/** The set's elements, each once, in the byte order of their UTF-8 encoding. */
export function setElements(object: VersionedObject): string[] {
  return [...new Set(object.siblings.map(elementOf))].sort(compareBytes);
}

/** Total UTF-8 bytes of the distinct elements. */
function elementBytes(elements: readonly string[]): number {
  return elements.reduce((sum, element) => sum + Buffer.byteLength(element, 'utf8'), 0);
}

/**
 * Applies an update as actor `actor`'s events: first the removes, each of which must find a dot
 * of its element that `update.context` covers (else KV_PRECONDITION_FAILED, as Riak answers a
 * remove of an element that is not there), then the adds, each with a new dot that replaces the
 * element's dots present here. The state must have seen everything the context names: a remove
 * whose context is ahead of this state could not tell which dots it removes (the caller merges in
 * a read of r replicas first; if even that has not seen the context, the remove is refused and
 * the client reads again).
 */
export function applySetUpdate(object: VersionedObject, actor: string, update: SetUpdate, nowMs: number, limits: SetLimits): VersionedObject {
  let siblings: readonly Sibling[] = object.siblings;
  if (update.remove.length > 0) {
    const context = update.context;
    if (context === undefined)
      throw new KvError('KV_BAD_CONTEXT', 'a remove needs the context of a read of the set (GET /dt/{bucket}/{key}); read the set and send its context');
    const unseen =
      Object.entries(context.vector).find(([node, counter]) => counterOf(object.clock, node) < counter) ??
      context.dots.find((dot) => counterOf(object.clock, dot.node) < dot.counter);
    if (unseen !== undefined) {
      throw new KvError(
        'KV_PRECONDITION_FAILED',
        'the replicas this remove reached have not yet seen everything its context names (it came from replicas out of reach now); read the set again and remove with the new context',
      );
    }
    const removing = new Set(update.remove);
    // One pass over the entries, so a long remove list costs its length plus the set's size.
    const seenByContext = new Set(siblings.filter((sibling) => contextCovers(context, sibling.dot)).map(elementOf));
    const missing = [...removing].filter((element) => !seenByContext.has(element));
    if (missing.length > 0) {
      const shown = missing
        .slice(0, 5)
        .map((element) => JSON.stringify(element.length > 64 ? `${element.slice(0, 64)}...` : element))
        .join(', ');
      throw new KvError(
        'KV_PRECONDITION_FAILED',
        `the set as the replicas reached hold it has no add of ${shown} that the context saw (never added, removed or added again since that read, or added after it); read the set again and remove what it shows`,
        {
          details: { notSeen: missing.slice(0, 100) },
        },
      );
    }
    siblings = siblings.filter((sibling) => !(removing.has(elementOf(sibling)) && contextCovers(context, sibling.dot)));
  }
  let counter = counterOf(object.clock, actor);
  const created: Sibling[] = [];
  for (const element of new Set(update.add)) {
    counter += 1;
    created.push({ dot: { node: actor, counter }, value: Buffer.from(element, 'utf8'), contentType: '', lastModifiedMs: nowMs, tombstone: false });
  }
  // An update that adds nothing (a remove) is still one event of the actor, with a dot of its own
  // and no element under it: a watch reports each update under its dot (README, "Watches"). The
  // clock covering a dot no element holds removes nothing a merge would keep, since no other
  // replica holds an element of this actor's dots beyond what this state has seen.
  if (created.length === 0) counter += 1;
  const adding = new Set(update.add);
  const kept = siblings.filter((sibling) => !adding.has(elementOf(sibling)));
  const result: VersionedObject = {
    clock: sortVector(withCounter(object.clock, actor, counter)),
    siblings: sortedByDot([...kept, ...created]),
    kind: 'set',
  };
  if (created.length > 0) checkBounds(object, result, limits);
  return result;
}

/** Refuses an update that takes the set past its bounds; one that only shrinks it or stays within them passes. */
function checkBounds(before: VersionedObject, after: VersionedObject, limits: SetLimits): void {
  const elements = setElements(after);
  const bytes = elementBytes(elements);
  const grew = elements.length > setElements(before).length || bytes > elementBytes(setElements(before));
  if (!grew) return;
  if (elements.length > limits.maxSetElements) {
    throw new KvError(
      'KV_SET_TOO_LARGE',
      `the set would hold ${elements.length} elements, over limits.maxSetElements (${limits.maxSetElements}); remove elements first or spread them over several keys`,
    );
  }
  if (bytes > limits.maxSetBytes) {
    throw new KvError(
      'KV_SET_TOO_LARGE',
      `the set's elements would total ${bytes} bytes, over limits.maxSetBytes (${limits.maxSetBytes}); remove elements first or spread them over several keys`,
    );
  }
}
