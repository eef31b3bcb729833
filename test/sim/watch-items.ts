import type { WatchItem, WatchStream } from '../../src/engine/watches.js';

/** A watch stream's items as they arrive, and a promise that settles when the stream ends. */
export function collect(stream: WatchStream): { items: WatchItem[]; done: Promise<void> } {
  const items: WatchItem[] = [];
  const done = (async () => {
    for await (const item of stream) items.push(item);
  })();
  return { items, done };
}

/** The versions of the decided items, in the order they came. */
export const versionsOf = (items: readonly WatchItem[]): number[] => items.flatMap((item) => (item.kind === 'decided' ? [item.version] : []));
