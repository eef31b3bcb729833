import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type CausalContext,
  type ContextDot,
  decodeContext,
  emptyContext,
  encodeContext,
  maxContextDots,
  readContext,
  writeContext,
} from '../../src/core/versioning/context.js';
import { type VersionedObject, applyWrite, emptyObject, liveSiblings, mergeObjects } from '../../src/core/versioning/versioned-object.js';

/**
 * Goal: any context ringkv hands out, on a read or on a write reply, supersedes only what its
 * holder has seen (docs/ARCHITECTURE.md#contexts-are-safe-to-write-back). Writers that chain the context each write returns, mixed with
 * blind writes, reads and syncs between replicas, never make a value disappear unless some
 * writer whose context was derived from that value (a read that returned it, or its own write of
 * it) wrote after it.
 */

const replicas = ['a', 'b', 'c'] as const;
const writers = [0, 1, 2] as const;
type ReplicaId = (typeof replicas)[number];

type Step =
  | { kind: 'write'; writer: number; at: ReplicaId; blind: boolean; tombstone: boolean }
  | { kind: 'read'; writer: number; at: ReplicaId }
  | { kind: 'sync'; from: ReplicaId; to: ReplicaId };

const replicaArbitrary = fc.constantFrom(...replicas);
const writerArbitrary = fc.constantFrom(...writers);
const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('write' as const), writer: writerArbitrary, at: replicaArbitrary, blind: fc.boolean(), tombstone: fc.boolean() }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('read' as const), writer: writerArbitrary, at: replicaArbitrary }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('sync' as const), from: replicaArbitrary, to: replicaArbitrary }) },
);

/** How the context of a write reply is made: the rule under test, or a broken one to prove the test can fail. */
type ReplyContext = (used: CausalContext, written: VersionedObject, dot: ContextDot) => CausalContext;

const valueOf = (object: VersionedObject): string[] => liveSiblings(object).map((sibling) => Buffer.from(sibling.value).toString('utf8'));

/** Runs the steps; answers a description of the first value lost without a writer having seen it, or undefined. */
function lostUnseen(steps: readonly Step[], replyContext: ReplyContext): string | undefined {
  const stored = new Map<ReplicaId, VersionedObject>(replicas.map((id) => [id, emptyObject]));
  const held = writers.map(() => ({ context: emptyContext, seen: new Set<string>() }));
  const written: { value: string; step: number }[] = [];
  /** Values each non-blind write could legitimately supersede, with the step it ran at. */
  const supersedable: { step: number; seen: Set<string> }[] = [];
  steps.forEach((step, index) => {
    if (step.kind === 'sync') {
      stored.set(step.to, mergeObjects(stored.get(step.to) ?? emptyObject, stored.get(step.from) ?? emptyObject, 'siblings'));
      return;
    }
    const writer = held[step.writer]!;
    if (step.kind === 'read') {
      const object = stored.get(step.at) ?? emptyObject;
      writer.context = readContext(object.clock);
      writer.seen = new Set(valueOf(object));
      return;
    }
    const value = `w${index}`;
    const used = step.blind ? emptyContext : writer.context;
    if (!step.blind) supersedable.push({ step: index, seen: new Set(writer.seen) });
    const before = stored.get(step.at) ?? emptyObject;
    const object = applyWrite(
      before,
      step.at,
      { value: Buffer.from(value), contentType: 'text/plain', tombstone: step.tombstone, context: used, nowMs: index },
      'siblings',
    );
    stored.set(step.at, object);
    const dot = { node: step.at, counter: object.clock[step.at] ?? 0 };
    writer.context = replyContext(used, object, dot);
    writer.seen = step.blind ? new Set([value]) : new Set([...writer.seen, value]);
    if (!step.tombstone) written.push({ value, step: index });
  });
  const final = new Set(valueOf([...stored.values()].reduce((merged, object) => mergeObjects(merged, object, 'siblings'), emptyObject)));
  for (const { value, step } of written) {
    if (final.has(value)) continue;
    const justified = supersedable.some((write) => write.step > step && write.seen.has(value));
    if (!justified) return `${value} was lost though no writer that had seen it wrote after it`;
  }
  return undefined;
}

const dottedReply: ReplyContext = (used, _written, dot) => writeContext(used, dot);

describe('contexts handed out supersede only what their holder saw', () => {
  it('writers chaining write-reply contexts, blind writes, reads and syncs never lose an unseen value', () => {
    fc.assert(
      fc.property(fc.array(stepArbitrary, { minLength: 1, maxLength: 40 }), (steps) => {
        expect(lostUnseen(steps, dottedReply)).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });

  it('the same property finds the defect of a write reply carrying the new object clock', () => {
    // The old rule: the reply's context was the written object's clock, which also covers concurrent siblings.
    const clockReply: ReplyContext = (_used, written) => readContext(written.clock);
    const outcome = fc.check(
      fc.property(fc.array(stepArbitrary, { minLength: 1, maxLength: 40 }), (steps) => lostUnseen(steps, clockReply) === undefined),
      { numRuns: 500, seed: 42 },
    );
    expect(outcome.failed, 'the oracle must catch the clock-as-context defect').toBe(true);
  });

  it('the issue scenario on one replica: blue, red, then red2 with the context of red keeps blue', () => {
    let object = applyWrite(
      emptyObject,
      'a',
      { value: Buffer.from('blue'), contentType: 'text/plain', tombstone: false, context: emptyContext, nowMs: 1 },
      'siblings',
    );
    object = applyWrite(object, 'a', { value: Buffer.from('red'), contentType: 'text/plain', tombstone: false, context: emptyContext, nowMs: 2 }, 'siblings');
    const redContext = writeContext(emptyContext, { node: 'a', counter: object.clock.a ?? 0 });
    object = applyWrite(object, 'a', { value: Buffer.from('red2'), contentType: 'text/plain', tombstone: false, context: redContext, nowMs: 3 }, 'siblings');
    expect(valueOf(object).sort()).toEqual(['blue', 'red2']);
  });
});

describe('write contexts stay small and round-trip', () => {
  it('a chain of writes on one coordinator folds its dots into the vector', () => {
    let context = readContext({ a: 3 });
    for (let counter = 4; counter <= 100; counter++) context = writeContext(context, { node: 'a', counter });
    expect(context).toEqual({ vector: { a: 100 }, dots: [] });
  });

  it('a dot beyond a gap stays a dot, so it never claims the events before it', () => {
    const context = writeContext(emptyContext, { node: 'a', counter: 2 });
    expect(context).toEqual({ vector: {}, dots: [{ node: 'a', counter: 2 }] });
  });

  it('keeps at most maxContextDots dots, the newest first', () => {
    let context = emptyContext;
    for (let counter = 2; counter <= 200; counter += 2) context = writeContext(context, { node: 'a', counter });
    expect(context.dots.length).toBe(maxContextDots);
    expect(context.dots[0]).toEqual({ node: 'a', counter: 200 });
  });

  it('encodes and decodes a dotted context exactly; a plain clock keeps the c1 format', () => {
    const context = writeContext(readContext({ b: 2 }), { node: 'a', counter: 5 });
    const text = encodeContext(context);
    expect(text.startsWith('c2.')).toBe(true);
    expect(decodeContext(text)).toEqual(context);
    expect(encodeContext(readContext({ a: 1 })).startsWith('c1.')).toBe(true);
    expect(decodeContext(encodeContext({ a: 1 }))).toEqual({ vector: { a: 1 }, dots: [] });
  });

  it('refuses a dotted context with too many dots or a malformed dot list', () => {
    const dots = Array.from({ length: maxContextDots + 1 }, (_, index) => ['a', index * 2 + 2]);
    const tooMany = `c2.${Buffer.from(JSON.stringify([[], dots])).toString('base64url')}`;
    expect(() => decodeContext(tooMany)).toThrow(/KV_BAD_CONTEXT|more than/);
    expect(() => decodeContext(`c2.${Buffer.from(JSON.stringify([[['a', 1]]])).toString('base64url')}`)).toThrow(/vector and a list of dots/);
  });
});
