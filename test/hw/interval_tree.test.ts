import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntervalTree, type IntervalNode } from '../../src/hw/interval_tree.js';
import { U64_MAX } from '../../src/hw/u64.js';

// Deterministic property runs; override with FC_SEED=<n> to explore.
const SEED = Number(process.env['FC_SEED'] ?? 0x17e3);
console.info(`interval_tree.test.ts: fast-check seed ${SEED}`);

const TOP = 1n << 63n;

function spans<T>(it: Iterable<IntervalNode<T>>): Array<[bigint, bigint]> {
  return [...it].map((n) => [n.start, n.last]);
}

describe('IntervalTree at the edges', () => {
  it('stores intervals touching 0 and 2^64-1 and finds them with point queries', () => {
    const t = new IntervalTree<string>();
    t.insert(0n, 0n, 'zero');
    t.insert(U64_MAX, U64_MAX, 'top');
    t.insert(0n, U64_MAX, 'all');
    expect(t.iterFirst(0n, 0n)?.value).toBe('zero');
    expect([...t.intersecting(U64_MAX, U64_MAX)].map((n) => n.value)).toEqual(['all', 'top']);
    expect([...t.intersecting(1n, U64_MAX - 1n)].map((n) => n.value)).toEqual(['all']);
    expect(t.first()?.value).toBe('zero');
    expect(t.last()?.value).toBe('top');
    t.checkInvariants();
  });

  it('keeps adjacent intervals apart: [0,9] and [10,19] only meet queries that cover their own bytes', () => {
    const t = new IntervalTree<number>();
    t.insert(0n, 9n, 1);
    t.insert(10n, 19n, 2);
    expect(spans(t.intersecting(9n, 9n))).toEqual([[0n, 9n]]);
    expect(spans(t.intersecting(10n, 10n))).toEqual([[10n, 19n]]);
    expect(spans(t.intersecting(9n, 10n))).toEqual([
      [0n, 9n],
      [10n, 19n],
    ]);
    expect(t.iterFirst(20n, U64_MAX)).toBeUndefined();
  });

  it('orders equal starts by insertion and findExact picks the first exact match', () => {
    const t = new IntervalTree<string>();
    t.insert(5n, 9n, 'a');
    t.insert(5n, 5n, 'b');
    t.insert(5n, 9n, 'c');
    expect([...t.inOrder()].map((n) => n.value)).toEqual(['a', 'b', 'c']);
    expect(t.findExact(5n, 9n)?.value).toBe('a');
    expect(t.findExact(5n, 9n, (v) => v === 'c')?.value).toBe('c');
    expect(t.findExact(5n, 6n)).toBeUndefined();
    expect(t.findExact(4n, 9n)).toBeUndefined();
  });

  it('rejects empty, negative and beyond-u64 intervals', () => {
    const t = new IntervalTree<null>();
    expect(() => t.insert(2n, 1n, null)).toThrow(RangeError);
    expect(() => t.insert(-1n, 1n, null)).toThrow(RangeError);
    expect(() => t.insert(0n, U64_MAX + 1n, null)).toThrow(RangeError);
    expect(() => t.iterFirst(3n, 2n)).toThrow(RangeError);
    const n = new IntervalTree<null, number>();
    expect(() => n.insert(0.5, 1, null)).toThrow(RangeError);
    expect(() => n.insert(0, 2 ** 53, null)).toThrow(RangeError);
  });

  it('keeps node handles valid and identical across removal of other nodes', () => {
    const t = new IntervalTree<{ id: number }>();
    const hs = Array.from({ length: 64 }, (_, i) => t.insert(BigInt(i * 10), BigInt(i * 10 + 5), { id: i }));
    for (let i = 0; i < 64; i += 2) t.remove(hs[i] as IntervalNode<{ id: number }>);
    t.checkInvariants();
    for (let i = 1; i < 64; i += 2) {
      const h = hs[i] as IntervalNode<{ id: number }>;
      expect(t.has(h)).toBe(true);
      expect(t.iterFirst(h.start, h.start)).toBe(h);
      expect(h.value.id).toBe(i);
    }
    expect(t.size).toBe(32);
  });

  it('refuses to remove or walk from a detached or foreign handle', () => {
    const t = new IntervalTree<number>();
    const other = new IntervalTree<number>();
    const h = t.insert(1n, 2n, 0);
    const f = other.insert(1n, 2n, 0);
    expect(() => t.remove(f)).toThrow();
    t.remove(h);
    expect(t.has(h)).toBe(false);
    expect(() => t.remove(h)).toThrow();
    expect(() => t.iterNext(h, 0n, 5n)).toThrow();
  });

  it('throws when the tree is modified during an intersecting() walk', () => {
    const t = new IntervalTree<number>();
    t.insert(1n, 2n, 0);
    t.insert(3n, 4n, 0);
    expect(() => {
      for (const n of t.intersecting(0n, 10n)) t.remove(n);
    }).toThrow(/modified/);
  });

  it('walks neighbours with next() and prev() and empties with clear()', () => {
    const t = new IntervalTree<number>();
    const a = t.insert(1n, 1n, 1);
    const b = t.insert(2n, 2n, 2);
    const c = t.insert(3n, 3n, 3);
    expect(t.next(a)).toBe(b);
    expect(t.next(c)).toBeUndefined();
    expect(t.prev(b)).toBe(a);
    expect(t.prev(a)).toBeUndefined();
    t.clear();
    expect(t.size).toBe(0);
    expect(t.has(b)).toBe(false);
    expect(t.first()).toBeUndefined();
  });

  it('supports number keys for page-index trees', () => {
    const t = new IntervalTree<string, number>();
    t.insert(0, Number.MAX_SAFE_INTEGER, 'all');
    t.insert(7, 7, 'seven');
    expect([...t.intersecting(7, 8)].map((n) => n.value)).toEqual(['all', 'seven']);
    t.checkInvariants();
  });
});

// ---- model-based property test -------------------------------------------

type Op =
  | { t: 'ins'; s: number; len: number }
  | { t: 'rm'; pick: number }
  | { t: 'q'; s: number; len: number };

const opArb = (span: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.record({ t: fc.constant('ins' as const), s: fc.nat(span), len: fc.nat(24) }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('rm' as const), pick: fc.nat() }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('q' as const), s: fc.nat(span), len: fc.nat(40) }) },
  );

interface ModelEntry {
  start: bigint;
  last: bigint;
  seq: number;
  node: IntervalNode<number>;
}

function runModel(base: bigint, span: number, ops: Op[]): void {
  const tree = new IntervalTree<number>();
  let model: ModelEntry[] = [];
  let seq = 0;
  const clip = (x: bigint): bigint => (x > U64_MAX ? U64_MAX : x);
  const expectMatches = (s: bigint, l: bigint): void => {
    const want = model.filter((e) => e.start <= l && s <= e.last).map((e) => e.node);
    expect([...tree.intersecting(s, l)]).toEqual(want);
    expect(tree.iterFirst(s, l)).toBe(want[0]);
  };
  for (const op of ops) {
    if (op.t === 'ins') {
      const s = clip(base + BigInt(op.s));
      const l = clip(s + BigInt(op.len));
      const e = { start: s, last: l, seq: seq++, node: tree.insert(s, l, seq) };
      // Model order: (start, insertion sequence).
      const at = model.findIndex((m) => m.start > s);
      model.splice(at < 0 ? model.length : at, 0, e);
    } else if (op.t === 'rm') {
      if (model.length === 0) continue;
      const i = op.pick % model.length;
      const [e] = model.splice(i, 1);
      tree.remove((e as ModelEntry).node);
    } else {
      const s = clip(base + BigInt(op.s));
      expectMatches(s, clip(s + BigInt(op.len)));
    }
    expect(tree.size).toBe(model.length);
  }
  tree.checkInvariants();
  expect([...tree.inOrder()]).toEqual(model.map((e) => e.node));
  expect(tree.first()).toBe(model[0]?.node);
  expect(tree.last()).toBe(model[model.length - 1]?.node);
  for (const e of model) {
    expect([e.node.start, e.node.last]).toEqual([e.start, e.last]);
    expect(tree.findExact(e.start, e.last)).toBe(model.find((m) => m.start === e.start && m.last === e.last)?.node);
  }
  expectMatches(base, clip(base + BigInt(span) + 64n));
  expectMatches(0n, U64_MAX);
}

describe('IntervalTree against a naive array model', () => {
  it('agrees with the model on random insert/remove/query sequences near 0, 2^63 and 2^64-1', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0n, TOP - 100n, U64_MAX - 150n, U64_MAX - 20n),
        fc.array(opArb(150), { maxLength: 200 }),
        (base, ops) => runModel(base, 150, ops),
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('agrees with the model on sparse intervals spread over the whole u64 space', () => {
    const iv = fc
      .tuple(fc.bigInt({ min: 0n, max: U64_MAX }), fc.bigInt({ min: 0n, max: U64_MAX }))
      .map(([a, b]): [bigint, bigint] => (a <= b ? [a, b] : [b, a]));
    fc.assert(
      fc.property(fc.array(iv, { maxLength: 60 }), fc.array(iv, { maxLength: 20 }), (ivs, qs) => {
        const tree = new IntervalTree<number>();
        const nodes = ivs.map(([s, l], i) => tree.insert(s, l, i));
        const ordered = [...nodes].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.value - b.value));
        expect([...tree.inOrder()]).toEqual(ordered);
        for (const [s, l] of qs) {
          expect([...tree.intersecting(s, l)]).toEqual(ordered.filter((n) => n.start <= l && s <= n.last));
        }
        tree.checkInvariants();
      }),
      { seed: SEED, numRuns: 200 },
    );
  });
});

// ---- balance at scale ----------------------------------------------------

/** xorshift32: a deterministic PRNG (Math.random is forbidden in this project). */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

describe('IntervalTree balance', () => {
  it('stays AVL-balanced (height <= 1.45*log2(n)+2) while inserting and removing 100,000 intervals', () => {
    const N = 100_000;
    const rnd = xorshift(SEED);
    const tree = new IntervalTree<number>();
    const bound = (n: number): number => 1.45 * Math.log2(n) + 2;
    const handles: Array<IntervalNode<number>> = [];
    for (let i = 0; i < N; i++) {
      // Half ascending (the classic degenerate input), half scattered, some at the top of u64.
      const start = i % 2 === 0 ? BigInt(i) * 4096n : U64_MAX - BigInt(rnd()) * 65536n - 65536n;
      handles.push(tree.insert(start, start + BigInt(rnd() % 8192), i));
      if ((i + 1) % 1000 === 0) expect(tree.height).toBeLessThanOrEqual(bound(tree.size));
    }
    expect(tree.size).toBe(N);
    tree.checkInvariants();
    // Remove in a deterministic shuffled order.
    for (let i = N - 1; i > 0; i--) {
      const j = rnd() % (i + 1);
      const tmp = handles[i] as IntervalNode<number>;
      handles[i] = handles[j] as IntervalNode<number>;
      handles[j] = tmp;
    }
    for (let i = 0; i < N; i++) {
      tree.remove(handles[i] as IntervalNode<number>);
      if (tree.size > 0 && (i + 1) % 1000 === 0) expect(tree.height).toBeLessThanOrEqual(bound(tree.size));
      if (i === N / 2) tree.checkInvariants();
    }
    expect(tree.size).toBe(0);
    expect(tree.height).toBe(0);
  });
});
