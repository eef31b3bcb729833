import type { Sibling } from '../versioning/versioned-object.js';

/** Orders entries by dot (as versioned-object.ts orders siblings), so equal states encode to equal bytes. */
export function sortedByDot(siblings: readonly Sibling[]): Sibling[] {
  return [...siblings].sort((left, right) =>
    left.dot.node === right.dot.node ? left.dot.counter - right.dot.counter : left.dot.node < right.dot.node ? -1 : 1,
  );
}
