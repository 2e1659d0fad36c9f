import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_PAGE_INDEX, RangeMap, type Run } from '../../src/hw/range_map.js';

// Deterministic property runs; override with FC_SEED=<n> to explore.
const SEED = Number(process.env['FC_SEED'] ?? 0x4a9e);
console.info(`range_map.test.ts: fast-check seed ${SEED}`);

const runs = (m: RangeMap, s?: number, l?: number): Array<[number, number, number]> =>
  [...m.runs(s, l)].map((r: Run) => [r.start, r.last, r.count]);

describe('RangeMap at the edges', () => {
  it('stores a 1 TiB mapping of 4 KiB pages as a single run', () => {
    const m = new RangeMap();
    const pages = 2 ** 28; // 1 TiB / 4 KiB
    m.add(0, pages - 1, 1);
    expect(m.runCount).toBe(1);
    expect(m.countNonZero()).toBe(pages);
    expect(m.sum()).toBe(BigInt(pages));
    m.add(1000, 1000, 1);
    expect(runs(m)).toEqual([
      [0, 999, 1],
      [1000, 1000, 2],
      [1001, pages - 1, 1],
    ]);
    m.add(1000, 1000, -1);
    expect(runs(m)).toEqual([[0, pages - 1, 1]]);
    m.checkInvariants();
  });

  it('merges adjacent runs with equal counts and drops runs that reach zero', () => {
    const m = new RangeMap();
    m.add(0, 9, 1);
    m.add(10, 19, 1);
    expect(runs(m)).toEqual([[0, 19, 1]]);
    m.add(5, 14, 1);
    expect(runs(m)).toEqual([
      [0, 4, 1],
      [5, 14, 2],
      [15, 19, 1],
    ]);
    m.add(0, 19, -1);
    expect(runs(m)).toEqual([[5, 14, 1]]);
    m.add(5, 14, -1);
    expect(m.isEmpty).toBe(true);
    expect(m.countNonZero()).toBe(0);
  });

  it('works at index 0 and at the largest safe index', () => {
    const m = new RangeMap();
    m.add(MAX_PAGE_INDEX - 1, MAX_PAGE_INDEX, 3);
    m.add(0, 0, 1);
    expect(m.get(MAX_PAGE_INDEX)).toBe(3);
    expect(m.get(MAX_PAGE_INDEX - 2)).toBe(0);
    expect(m.get(0)).toBe(1);
    m.add(0, MAX_PAGE_INDEX, 1);
    expect(runs(m)).toEqual([
      [0, 0, 2],
      [1, MAX_PAGE_INDEX - 2, 1],
      [MAX_PAGE_INDEX - 1, MAX_PAGE_INDEX, 4],
    ]);
    // 2^53 indexes are non-zero: still exact as a number.
    expect(m.countNonZero()).toBe(2 ** 53);
    expect(m.sum()).toBe(2n ** 53n + 1n + 3n * 2n);
    m.checkInvariants();
  });

  it('rejects underflow atomically, leaving the map unchanged', () => {
    const m = new RangeMap();
    m.add(10, 19, 1);
    m.add(12, 13, 1);
    expect(() => m.add(10, 20, -1)).toThrow(RangeError); // index 20 has count 0
    expect(() => m.add(9, 19, -1)).toThrow(RangeError); // index 9 has count 0
    expect(() => m.add(11, 13, -2)).toThrow(RangeError); // index 11 has count 1
    expect(runs(m)).toEqual([
      [10, 11, 1],
      [12, 13, 2],
      [14, 19, 1],
    ]);
    m.checkInvariants();
  });

  it('rejects non-integer, negative, unsafe and empty index ranges', () => {
    const m = new RangeMap();
    expect(() => m.add(1.5, 2, 1)).toThrow(RangeError);
    expect(() => m.add(-1, 2, 1)).toThrow(RangeError);
    expect(() => m.add(0, 2 ** 53, 1)).toThrow(RangeError);
    expect(() => m.add(3, 2, 1)).toThrow(RangeError);
    expect(() => m.add(0, 1, 0.5)).toThrow(RangeError);
    expect(() => m.get(-1)).toThrow(RangeError);
  });

  it('clips runs() and range queries to the requested window', () => {
    const m = new RangeMap();
    m.add(10, 29, 2);
    expect(runs(m, 15, 40)).toEqual([[15, 29, 2]]);
    expect(m.sum(0, 12)).toBe(6n);
    expect(m.countNonZero(25, 100)).toBe(5);
    expect(m.anyNonZero(30, 100)).toBe(false);
    expect(m.anyNonZero(29, 29)).toBe(true);
  });

  it('handles 100,000 runs and merges them back into one when the gaps are filled', () => {
    const m = new RangeMap();
    const N = 100_000;
    for (let i = 0; i < N; i++) m.add(2 * i, 2 * i, 1);
    expect(m.runCount).toBe(N);
    for (let i = 0; i < N - 1; i++) m.add(2 * i + 1, 2 * i + 1, 1);
    expect(m.runCount).toBe(1);
    expect(runs(m)).toEqual([[0, 2 * N - 2, 1]]);
    m.checkInvariants();
  });
});

// ---- model-based property test -------------------------------------------

const W = 48;
type Op =
  | { t: 'add'; s: number; n: number; d: number }
  | { t: 'q'; s: number; n: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('add' as const),
      s: fc.nat(W - 1),
      n: fc.nat(W - 1),
      d: fc.integer({ min: -3, max: 3 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('q' as const), s: fc.nat(W - 1), n: fc.nat(W - 1) }) },
);

/** Maximal non-zero runs of the model counts, offset by `base`. */
function modelRuns(counts: number[], base: number, s: number, l: number): Array<[number, number, number]> {
  const out: Array<[number, number, number]> = [];
  for (let i = s; i <= l; i++) {
    const c = counts[i] ?? 0;
    const top = out[out.length - 1];
    if (c === 0) continue;
    if (top !== undefined && top[2] === c && top[1] === base + i - 1) top[1] = base + i;
    else out.push([base + i, base + i, c]);
  }
  return out;
}

describe('RangeMap against a naive per-index model', () => {
  it('agrees with the model on random add/query sequences near 0, 2^40 and the largest index', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 2 ** 40, MAX_PAGE_INDEX - W + 1),
        fc.array(opArb, { maxLength: 120 }),
        (base, ops) => {
          const m = new RangeMap();
          const counts = new Array<number>(W).fill(0);
          for (const op of ops) {
            const s = op.s;
            const l = Math.min(W - 1, op.s + op.n);
            if (op.t === 'add') {
              const ok = counts.slice(s, l + 1).every((c) => c + op.d >= 0);
              if (ok) {
                m.add(base + s, base + l, op.d);
                for (let i = s; i <= l; i++) counts[i] = (counts[i] ?? 0) + op.d;
              } else {
                expect(() => m.add(base + s, base + l, op.d)).toThrow(RangeError);
              }
            } else {
              const slice = counts.slice(s, l + 1);
              expect(runs(m, base + s, base + l)).toEqual(modelRuns(counts, base, s, l));
              expect(m.sum(base + s, base + l)).toBe(BigInt(slice.reduce((a, c) => a + c, 0)));
              expect(m.countNonZero(base + s, base + l)).toBe(slice.filter((c) => c > 0).length);
              expect(m.anyNonZero(base + s, base + l)).toBe(slice.some((c) => c > 0));
              expect(m.get(base + s)).toBe(counts[s]);
            }
          }
          m.checkInvariants();
          expect(runs(m)).toEqual(modelRuns(counts, base, 0, W - 1));
          expect(m.countNonZero()).toBe(counts.filter((c) => c > 0).length);
        },
      ),
      { seed: SEED, numRuns: 400 },
    );
  });
});
