import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BySlot, MemberIdIndex, MemberTable, SlotList } from '../../src/core/membership/member-table.js';
import type { SwimRecord } from '../../src/core/membership/swim-messages.js';

/**
 * Goal: SWIM's member table (src/core/membership/member-table.ts) finds, replaces and forgets
 * records by id through an id index that several tables may share, lists them in id order (what
 * the digest windows and the random picks of swim.ts walk), and frees an id's slot only when no
 * table holds it, so a shared index is bounded by the members known.
 */

const recordOf = (id: string, version = 0): SwimRecord => ({
  id,
  address: `${id}:7000`,
  generation: 1,
  version,
  state: 'alive',
  lifecycle: 'up',
  accuser: '',
  transfersDoneForRing: 0,
});

/** The ids in id order (what digest windows and random picks walk). */
const idsOf = (table: MemberTable): string[] => [...table.slotsInIdOrder()].map((slot) => table.atSlot(slot)?.id ?? '?');
/** The ids as `values` lists them: in the order they were added, as a Map's keys. */
const arrivalOf = (table: MemberTable): string[] => [...table.values()].map((record) => record.id);

describe('MemberTable', () => {
  it('adds, looks up, replaces and forgets records by id; keeps them in id order, and lists them in the order they came in', () => {
    const table = new MemberTable(new MemberIdIndex());
    for (const id of ['n3', 'n10', 'a', 'n2']) table.add(recordOf(id));
    expect(idsOf(table)).toEqual(['a', 'n10', 'n2', 'n3']);
    expect(arrivalOf(table)).toEqual(['n3', 'n10', 'a', 'n2']);
    expect(table.size).toBe(4);
    expect(table.get('n10')?.id).toBe('n10');
    expect(table.get('n9')).toBeUndefined();
    expect(table.slotOf('n9')).toBe(-1);

    const slot = table.slotOf('n2');
    table.replace(slot, recordOf('n2', 5));
    expect(table.get('n2')?.version).toBe(5);
    expect(table.atSlot(slot)?.version).toBe(5);

    expect(table.rankAfter('')).toBe(0);
    expect(table.rankAfter('n10')).toBe(2);
    expect(table.rankAfter('n20')).toBe(3);
    expect(table.slotAtRank(2)).toBe(slot);

    expect(table.delete('n10')).toBeGreaterThanOrEqual(0);
    expect(table.delete('n10')).toBe(-1);
    expect(table.get('n10')).toBeUndefined();
    expect(idsOf(table)).toEqual(['a', 'n2', 'n3']);
    expect(arrivalOf(table)).toEqual(['n3', 'a', 'n2']);
    table.add(recordOf('n10'));
    expect(arrivalOf(table)).toEqual(['n3', 'a', 'n2', 'n10']);
  });

  it('loads many records at once in id order, keeping the first record of an id', () => {
    const table = new MemberTable(new MemberIdIndex());
    table.load([recordOf('m', 1), recordOf('b'), recordOf('m', 2), recordOf('z')]);
    expect(idsOf(table)).toEqual(['b', 'm', 'z']);
    expect(arrivalOf(table)).toEqual(['m', 'b', 'z']);
    expect(table.get('m')?.version).toBe(1);
    table.add(recordOf('c'));
    expect(idsOf(table)).toEqual(['b', 'c', 'm', 'z']);
    expect(arrivalOf(table)).toEqual(['m', 'b', 'z', 'c']);
  });

  it('shares one index between tables: one slot per id, freed (and handed to the next new id) only when no table holds it', () => {
    const index = new MemberIdIndex();
    const left = new MemberTable(index);
    const right = new MemberTable(index);
    left.load([recordOf('a'), recordOf('b')]);
    right.add(recordOf('b'));
    right.add(recordOf('c'));
    expect(right.slotOf('b')).toBe(left.slotOf('b'));
    expect(left.slotOf('c')).toBe(-1);
    expect(index.heldIds).toBe(3);

    const slotOfB = left.slotOf('b');
    left.delete('b');
    expect(index.slotOf('b')).toBe(slotOfB);
    expect(right.get('b')?.id).toBe('b');
    right.delete('b');
    expect(index.slotOf('b')).toBe(-1);
    expect(index.heldIds).toBe(2);
    expect(right.add(recordOf('d'))).toBe(slotOfB);
    expect(left.get('d')).toBeUndefined();
    expect(index.size).toBe(3);
  });

  it('agrees with a Map and a sorted list of ids over any sequence of adds, replaces and deletes in two tables of one index', () => {
    const operation = fc.record({
      table: fc.integer({ min: 0, max: 1 }),
      id: fc.constantFrom('a', 'b', 'c', 'n1', 'n10', 'n2', 'é', 'Z'),
      remove: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 60 }), (operations) => {
        const index = new MemberIdIndex();
        const tables = [new MemberTable(index), new MemberTable(index)];
        const models = [new Map<string, SwimRecord>(), new Map<string, SwimRecord>()];
        operations.forEach(({ table: which, id, remove }, step) => {
          const table = tables[which] as MemberTable;
          const model = models[which] as Map<string, SwimRecord>;
          if (remove) {
            expect(table.delete(id) >= 0).toBe(model.delete(id));
            return;
          }
          const record = recordOf(id, step);
          const slot = table.slotOf(id);
          if (slot >= 0) table.replace(slot, record);
          else table.add(record);
          model.set(id, record);
        });
        tables.forEach((table, which) => {
          const model = models[which] as Map<string, SwimRecord>;
          expect(idsOf(table)).toEqual([...model.keys()].sort());
          expect(arrivalOf(table)).toEqual([...model.keys()]);
          for (const [id, record] of model) expect(table.get(id)).toBe(record);
        });
        expect(index.heldIds).toBe(new Set([...(models[0] as Map<string, SwimRecord>).keys(), ...(models[1] as Map<string, SwimRecord>).keys()]).size);
      }),
    );
  });
});

describe('SlotList and BySlot', () => {
  it('inserts and removes slots at any position, growing past its capacity', () => {
    const list = new SlotList(1);
    for (let slot = 0; slot < 20; slot++) list.insert(slot % 2 === 0 ? 0 : list.length, slot);
    expect(Array.from(list.copy())).toEqual([18, 16, 14, 12, 10, 8, 6, 4, 2, 0, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
    list.removeAt(list.indexOf(0));
    expect(list.indexOf(0)).toBe(-1);
    expect(list.length).toBe(19);
    expect(list.at(9)).toBe(1);
  });

  it('keeps a value per slot, undefined past what was set', () => {
    const index = new MemberIdIndex();
    const values = new BySlot<string>(index);
    for (const id of ['a', 'b', 'c']) index.hold(id);
    values.set(2, 'two');
    values.set(40, 'forty');
    expect(values.get(2)).toBe('two');
    expect(values.get(40)).toBe('forty');
    expect(values.get(1)).toBeUndefined();
    expect(values.get(1000)).toBeUndefined();
  });
});
