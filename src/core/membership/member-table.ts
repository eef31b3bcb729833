/**
 * The member table of a SWIM member (src/core/membership/swim.ts), indexed by a small integer.
 *
 * A member holds a record of every member it knows: N entries per member, N² for a simulated
 * cluster of N, so what an entry costs decides whether 10,000 members fit in one process. A
 * `Map` of N ids per member cost about 46 bytes an entry before its records, and every lookup
 * hashed a string into a table of megabytes that missed the caches. Here an id is turned into a
 * *slot* once, by a `MemberIdIndex`, and a member keeps its records in an array by slot (one
 * reference each) and its ids in id order as slots in an Int32Array (four bytes each).
 *
 * A real node has an index of its own; the simulator shares one index between all the members of
 * the process (src/sim/swim-cluster.ts), so the string lookup is one table that stays in the
 * caches. The index counts the tables that hold each id and frees a slot (for the next new id)
 * when none does, so it is bounded by the members known, not by every id ever seen.
 */
import type { SwimRecord } from './swim-messages.js';

/** Ids to slots (small integers from 0), for one member or for every member of a process. */
export class MemberIdIndex {
  private readonly slots = new Map<string, number>();
  private readonly ids: string[] = [];
  /** How many tables hold a record in each slot. */
  private readonly holders: number[] = [];
  private readonly free: number[] = [];

  /** One more than the highest slot handed out: every slot is below it. */
  get size(): number {
    return this.ids.length;
  }

  /** Ids that have a slot now. */
  get heldIds(): number {
    return this.slots.size;
  }

  /** The slot of `id`, or -1 when no table holds it. */
  slotOf(id: string): number {
    return this.slots.get(id) ?? -1;
  }

  /** A table starts holding `id`: its slot (a new one, or a freed one reused, when no table held it). */
  hold(id: string): number {
    let slot = this.slots.get(id);
    if (slot === undefined) {
      slot = this.free.pop() ?? this.ids.length;
      this.slots.set(id, slot);
      this.ids[slot] = id;
      this.holders[slot] = 0;
    }
    this.holders[slot] = (this.holders[slot] as number) + 1;
    return slot;
  }

  /** A table stopped holding the id in `slot`; when no table does, the id is forgotten and the slot freed. */
  release(slot: number): void {
    const holders = (this.holders[slot] as number) - 1;
    this.holders[slot] = holders;
    if (holders > 0) return;
    this.slots.delete(this.ids[slot] as string);
    this.free.push(slot);
  }
}

/** Slots in an Int32Array that grows by half: four bytes a slot, where an array of numbers takes eight. */
export class SlotList {
  private items: Int32Array;
  private count = 0;

  constructor(capacity = 8) {
    this.items = new Int32Array(Math.max(1, capacity));
  }

  /** A list of `slots` as they are (the array is taken over, not copied). */
  static of(slots: Int32Array): SlotList {
    const list = new SlotList(0);
    list.items = slots;
    list.count = slots.length;
    return list;
  }

  get length(): number {
    return this.count;
  }

  /** The slot at `position` (below length). */
  at(position: number): number {
    return this.items[position] as number;
  }

  /** Puts `slot` at `position`, moving the ones from there on one place up. */
  insert(position: number, slot: number): void {
    if (this.count === this.items.length) {
      const bigger = new Int32Array(this.items.length + (this.items.length >> 1) + 8);
      bigger.set(this.items);
      this.items = bigger;
    }
    this.items.copyWithin(position + 1, position, this.count);
    this.items[position] = slot;
    this.count++;
  }

  /** Takes out the slot at `position`, moving the ones after it one place down. */
  removeAt(position: number): void {
    this.items.copyWithin(position, position + 1, this.count);
    this.count--;
  }

  /** The first position of `slot`, or -1. */
  indexOf(slot: number): number {
    return this.items.subarray(0, this.count).indexOf(slot);
  }

  /** A copy of the slots, as many as there are. */
  copy(): Int32Array {
    return this.items.slice(0, this.count);
  }
}

/**
 * A value per slot of an index, in a plain array kept dense (a sparse one would turn into a
 * dictionary): it grows to the index's size when a slot past its end is set, by an eighth at least.
 */
export class BySlot<T> {
  private values: (T | undefined)[] = [];

  constructor(private readonly index: MemberIdIndex) {}

  get(slot: number): T | undefined {
    return this.values[slot];
  }

  set(slot: number, value: T | undefined): void {
    if (slot >= this.values.length) {
      const bigger = new Array<T | undefined>(Math.max(slot + 1, this.index.size, this.values.length + (this.values.length >> 3) + 8)).fill(undefined);
      for (let at = 0; at < this.values.length; at++) bigger[at] = this.values[at];
      this.values = bigger;
    }
    this.values[slot] = value;
  }
}

/** The records one member holds, by slot of a MemberIdIndex, and their ids in id order. */
export class MemberTable {
  private readonly records: BySlot<SwimRecord>;
  /** The slots held, in id order (UTF-16 code units, as `<` compares strings). */
  private sorted = new SlotList();
  /** The slots held, in the order their ids were added: the order `values` lists them in, as a Map's would be. */
  private arrival = new SlotList();

  constructor(readonly index: MemberIdIndex) {
    this.records = new BySlot(index);
  }

  /** Members held. */
  get size(): number {
    return this.sorted.length;
  }

  /** The slot of `id` when this table holds it, else -1. */
  slotOf(id: string): number {
    const slot = this.index.slotOf(id);
    return slot >= 0 && this.records.get(slot) !== undefined ? slot : -1;
  }

  /** The record of `id`, if held. */
  get(id: string): SwimRecord | undefined {
    const slot = this.index.slotOf(id);
    return slot >= 0 ? this.records.get(slot) : undefined;
  }

  /** The record in `slot`, if this table holds one there. */
  atSlot(slot: number): SwimRecord | undefined {
    return this.records.get(slot);
  }

  /** The slot `rank` places into id order (below size). */
  slotAtRank(rank: number): number {
    return this.sorted.at(rank);
  }

  /** The first rank whose id is after `id` ('' is before every id). */
  rankAfter(id: string): number {
    let low = 0;
    let high = this.sorted.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.records.get(this.sorted.at(middle)) as SwimRecord).id <= id) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The slots held, in id order: a copy. */
  slotsInIdOrder(): Int32Array {
    return this.sorted.copy();
  }

  /** Adds the record of an id this table does not hold: answers its slot (new, or one the index holds for other tables). */
  add(record: SwimRecord): number {
    const slot = this.index.hold(record.id);
    this.sorted.insert(this.rankAfter(record.id), slot);
    this.arrival.insert(this.arrival.length, slot);
    this.records.set(slot, record);
    return slot;
  }

  /** Puts `record` in place of the one in `slot` (held here, of the same id). */
  replace(slot: number, record: SwimRecord): void {
    this.records.set(slot, record);
  }

  /** Forgets `id`: answers the slot it had here (-1 when not held), which the index may hand to another id from now on. */
  delete(id: string): number {
    const slot = this.slotOf(id);
    if (slot < 0) return -1;
    this.sorted.removeAt(this.rankAfter(id) - 1);
    this.arrival.removeAt(this.arrival.indexOf(slot));
    this.records.set(slot, undefined);
    this.index.release(slot);
    return slot;
  }

  /**
   * Fills an empty table with `records` at once (the first of each id kept): sorted once, where
   * setting them one by one would move the sorted slots N times (O(N²) per member).
   */
  load(records: readonly SwimRecord[]): void {
    // Every id held first, so the array by slot grows once, to the index's size.
    const held = records.map((record) => this.index.hold(record.id));
    const slots: number[] = [];
    records.forEach((record, at) => {
      const slot = held[at] as number;
      if (this.records.get(slot) !== undefined) {
        this.index.release(slot);
        return;
      }
      this.records.set(slot, record);
      slots.push(slot);
    });
    this.arrival = SlotList.of(Int32Array.from(slots));
    const sorted = Int32Array.from(slots);
    sorted.sort((left, right) => ((this.records.get(left) as SwimRecord).id < (this.records.get(right) as SwimRecord).id ? -1 : 1));
    this.sorted = SlotList.of(sorted);
  }

  /** The records held, in the order their ids were added (a forgotten id added again comes last). */
  *values(): IterableIterator<SwimRecord> {
    for (let at = 0; at < this.arrival.length; at++) yield this.records.get(this.arrival.at(at)) as SwimRecord;
  }
}
