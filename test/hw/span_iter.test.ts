import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntervalTree } from '../../src/hw/interval_tree.js';
import { doubleSpanIter, SpanIterator, spanIter, type DoubleSpan, type Span } from '../../src/hw/span_iter.js';
import { alignUp, U64_MAX } from '../../src/hw/u64.js';

// Deterministic property runs; override with FC_SEED=<n> to explore.
const SEED = Number(process.env['FC_SEED'] ?? 0x5a4);
console.info(`span_iter.test.ts: fast-check seed ${SEED}`);

type S = [kind: 'hole' | 'used', start: bigint, last: bigint];
type D = [used: 0 | 1 | 2, start: bigint, last: bigint];

const single = (it: Iterable<Span>): S[] => [...it].map((s) => [s.isHole ? 'hole' : 'used', s.start, s.last]);
const dbl = (it: Iterable<DoubleSpan>): D[] => [...it].map((s) => [s.isUsed, s.start, s.last]);

function treeOf(...ivs: Array<[bigint, bigint]>): IntervalTree<null> {
  const t = new IntervalTree<null>();
  for (const [s, l] of ivs) t.insert(s, l, null);
  return t;
}

describe('spanIter at the edges', () => {
  it('reports the whole window as one hole for an empty tree, even [0, 2^64-1]', () => {
    expect(single(spanIter(treeOf(), 0n, U64_MAX))).toEqual([['hole', 0n, U64_MAX]]);
    expect(single(spanIter(treeOf(), U64_MAX, U64_MAX))).toEqual([['hole', U64_MAX, U64_MAX]]);
  });

  it('reports one used span for a node covering the whole u64 space', () => {
    expect(single(spanIter(treeOf([0n, U64_MAX]), 0n, U64_MAX))).toEqual([['used', 0n, U64_MAX]]);
    expect(single(spanIter(treeOf([0n, U64_MAX]), 7n, 7n))).toEqual([['used', 7n, 7n]]);
  });

  it('handles single-byte nodes at 0 and at 2^64-1 without wrapping', () => {
    expect(single(spanIter(treeOf([U64_MAX, U64_MAX]), 0n, U64_MAX))).toEqual([
      ['hole', 0n, U64_MAX - 1n],
      ['used', U64_MAX, U64_MAX],
    ]);
    expect(single(spanIter(treeOf([0n, 0n]), 0n, U64_MAX))).toEqual([
      ['used', 0n, 0n],
      ['hole', 1n, U64_MAX],
    ]);
    expect(single(spanIter(treeOf([0n, 0n], [U64_MAX, U64_MAX]), 0n, U64_MAX))).toEqual([
      ['used', 0n, 0n],
      ['hole', 1n, U64_MAX - 1n],
      ['used', U64_MAX, U64_MAX],
    ]);
  });

  it('merges adjacent and nested nodes into one used span and clips it to the window', () => {
    const t = treeOf([10n, 19n], [20n, 29n], [12n, 100n], [40n, 50n], [102n, 110n]);
    expect(single(spanIter(t, 0n, 200n))).toEqual([
      ['hole', 0n, 9n],
      ['used', 10n, 100n],
      ['hole', 101n, 101n],
      ['used', 102n, 110n],
      ['hole', 111n, 200n],
    ]);
    expect(single(spanIter(t, 15n, 25n))).toEqual([['used', 15n, 25n]]);
    expect(single(spanIter(t, 101n, 101n))).toEqual([['hole', 101n, 101n]]);
  });

  it('rejects an empty window and notices tree modification mid-walk', () => {
    expect(() => [...spanIter(treeOf(), 5n, 4n)]).toThrow(RangeError);
    const t = treeOf([1n, 1n]);
    expect(() => {
      for (const _ of spanIter(t, 0n, 10n)) t.insert(5n, 5n, null);
    }).toThrow(/modified/);
  });
});

describe('doubleSpanIter at the edges', () => {
  it('gives the first tree priority and cuts second-tree spans around it', () => {
    const a = treeOf([10n, 20n]);
    const b = treeOf([0n, 30n]);
    expect(dbl(doubleSpanIter(a, b, 0n, 40n))).toEqual([
      [2, 0n, 9n],
      [1, 10n, 20n],
      [2, 21n, 30n],
      [0, 31n, 40n],
    ]);
    expect(dbl(doubleSpanIter(b, a, 0n, 40n))).toEqual([
      [1, 0n, 30n],
      [0, 31n, 40n],
    ]);
  });

  it('walks holes of the union up to 2^64-1 and stops without wrapping', () => {
    const a = treeOf([U64_MAX, U64_MAX]);
    const b = treeOf([0n, 0n]);
    expect(dbl(doubleSpanIter(a, b, 0n, U64_MAX))).toEqual([
      [2, 0n, 0n],
      [0, 1n, U64_MAX - 1n],
      [1, U64_MAX, U64_MAX],
    ]);
    expect(dbl(doubleSpanIter(treeOf(), treeOf(), 0n, U64_MAX))).toEqual([[0, 0n, U64_MAX]]);
    expect(dbl(doubleSpanIter(treeOf(), treeOf([0n, U64_MAX]), 0n, U64_MAX))).toEqual([[2, 0n, U64_MAX]]);
  });

  it('supports the iopt_alloc_iova first-fit pattern over reserved and area trees', () => {
    const PAGE = 4096n;
    const reserved = treeOf([0xfee00000n, 0xfeefffffn]);
    const areas = treeOf([PAGE, 0xfedfffffn]);
    // First hole of reserved ∪ areas inside [PAGE, ULONG_MAX - PAGE] that fits 2 MiB aligned to 2 MiB.
    const len = 0x200000n;
    let found: bigint | undefined;
    for (const s of doubleSpanIter(reserved, areas, PAGE, U64_MAX - PAGE)) {
      if (!s.isHole) continue;
      const cand = alignUp(s.start, len);
      if (cand !== undefined && cand < s.last && s.last - cand >= len - 1n) {
        found = cand;
        break;
      }
    }
    expect(found).toBe(0xff000000n);
  });
});

// ---- model-based property tests ------------------------------------------

const W = 96; // model window width in points

/** Random interval near `base`: mostly small, sometimes running to 0 or 2^64-1. */
const ivArb = (base: bigint): fc.Arbitrary<[bigint, bigint]> => {
  const pt = fc.nat(W + 8).map((o) => {
    const x = base + BigInt(o);
    return x > U64_MAX ? U64_MAX : x;
  });
  return fc.oneof(
    { weight: 8, arbitrary: fc.tuple(pt, fc.nat(12)).map(([s, n]): [bigint, bigint] => [s, s + BigInt(n) > U64_MAX ? U64_MAX : s + BigInt(n)]) },
    { weight: 1, arbitrary: pt.map((s): [bigint, bigint] => [s, U64_MAX]) },
    { weight: 1, arbitrary: pt.map((l): [bigint, bigint] => [0n, l]) },
  );
};

/** Query window inside the model region; sometimes pinned to the region edges. */
const windowArb = (base: bigint): fc.Arbitrary<[bigint, bigint]> =>
  fc.tuple(fc.nat(W - 1), fc.nat(W - 1)).map(([a, b]): [bigint, bigint] => {
    const lo = base + BigInt(Math.min(a, b));
    const hi = base + BigInt(Math.max(a, b));
    return [lo, hi];
  });

const BASES = [0n, 1n << 63n, U64_MAX - BigInt(W) + 1n] as const;

/** Maximal runs of `state(p)` over [s, l] — the naive model of a greedy span walk. */
function runsOf<V>(s: bigint, l: bigint, state: (p: bigint) => V): Array<[V, bigint, bigint]> {
  const out: Array<[V, bigint, bigint]> = [];
  for (let p = s; p <= l; p++) {
    const v = state(p);
    const top = out[out.length - 1];
    if (top !== undefined && top[0] === v) top[2] = p;
    else out.push([v, p, p]);
  }
  return out;
}

const covers = (ivs: Array<[bigint, bigint]>, p: bigint): boolean => ivs.some(([s, l]) => s <= p && p <= l);

describe('span iterators against a naive per-point model', () => {
  it('spanIter yields the maximal used/hole runs, including windows at 0 and 2^64-1', () => {
    const arb = fc.constantFrom(...BASES).chain((base) =>
      fc.tuple(fc.constant(base), fc.array(ivArb(base), { maxLength: 12 }), windowArb(base)),
    );
    fc.assert(
      fc.property(arb, ([, ivs, [s, l]]) => {
        const want = runsOf(s, l, (p) => (covers(ivs, p) ? 'used' : 'hole'));
        expect(single(spanIter(treeOf(...ivs), s, l))).toEqual(want);
      }),
      { seed: SEED, numRuns: 400 },
    );
  });

  it('doubleSpanIter yields maximal runs of (in A ? 1 : in B ? 2 : hole)', () => {
    const arb = fc.constantFrom(...BASES).chain((base) =>
      fc.tuple(
        fc.array(ivArb(base), { maxLength: 8 }),
        fc.array(ivArb(base), { maxLength: 8 }),
        windowArb(base),
      ),
    );
    fc.assert(
      fc.property(arb, ([ivA, ivB, [s, l]]) => {
        const want = runsOf(s, l, (p) => (covers(ivA, p) ? 1 : covers(ivB, p) ? 2 : 0));
        expect(dbl(doubleSpanIter(treeOf(...ivA), treeOf(...ivB), s, l))).toEqual(want);
      }),
      { seed: SEED, numRuns: 400 },
    );
  });

  it('SpanIterator.advance continues exactly like a fresh walk from the new index', () => {
    const arb = fc.constantFrom(...BASES).chain((base) =>
      fc.tuple(fc.array(ivArb(base), { maxLength: 10 }), windowArb(base), fc.nat(6), fc.nat(W)),
    );
    fc.assert(
      fc.property(arb, ([ivs, [s, l], steps, off]) => {
        const t = treeOf(...ivs);
        const it = new SpanIterator(t).first(s, l);
        for (let i = 0; i < steps && !it.done; i++) it.next();
        if (it.done) return;
        // The kernel only advances forward from the current span start.
        const ni = it.start + BigInt(off);
        it.advance(ni);
        const got: S[] = [];
        for (; !it.done; it.next()) got.push([it.isHole === 1 ? 'hole' : 'used', it.start, it.last]);
        expect(got).toEqual(ni > l ? [] : single(spanIter(t, ni, l)));
      }),
      { seed: SEED, numRuns: 400 },
    );
  });
});
