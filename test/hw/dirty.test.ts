import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import {
  bitsToSpans, DirtyProjectionError, DirtyRanges, dirtyEvolve, dirtyOf, IovaBitmap, leafPtes, markDirtyEvents, normalizeRanges,
  pteHull, pteInRun, viewDirty, type DirtyEvent, type IovaRange,
} from '../../src/hw/dirty.js';
import { domainEvolve, type HwDomain } from '../../src/hw/domain.js';
import { cloneState, evolve, initialState, type State } from '../../src/projections/state.js';

const SEED = Number(process.env['FC_SEED'] ?? 0xd1e7);
console.info(`dirty.test.ts (hw): fast-check seed ${SEED}`);

const K2 = 2048n, K4 = 4096n, M1 = 1n << 20n;
const r = (start: bigint | number, last: bigint | number): IovaRange => ({ start: BigInt(start), last: BigInt(last) });
const plain = (s: DirtyRanges): [number, number][] => s.ranges().map((x) => [Number(x.start), Number(x.last)]);

describe('DirtyRanges', () => {
  it('merges overlapping and adjacent ranges and keeps them sorted', () => {
    expect(plain(DirtyRanges.of([r(10, 19), r(0, 4), r(5, 7), r(18, 30)]))).toEqual([[0, 7], [10, 30]]);
    expect(() => normalizeRanges([r(5, 4)])).toThrow(RangeError);
    expect(DirtyRanges.of([]).isEmpty).toBe(true);
  });

  it('subtracts, splitting ranges and dropping what is covered', () => {
    const s = DirtyRanges.of([r(0, 99), r(200, 299)]);
    expect(plain(s.subtract([r(10, 19), r(50, 210), r(290, 400)]))).toEqual([[0, 9], [20, 49], [211, 289]]);
    expect(s.subtract([r(0, 1000)]).isEmpty).toBe(true);
    expect(s.subtract([])).toBe(s);
  });

  it('reports the parts inside a window and the parts missing from the set', () => {
    const s = DirtyRanges.of([r(0, 9), r(20, 29)]);
    expect(s.intersecting(5n, 24n)).toEqual([r(5, 9), r(20, 24)]);
    expect(s.missing([r(8, 22)])).toEqual([r(10, 19)]);
    expect(s.has(9n)).toBe(true);
    expect(s.has(10n)).toBe(false);
  });

  it('works at the top of the u64 space', () => {
    const top = (1n << 64n) - 1n;
    const s = DirtyRanges.of([r(top - 10n, top)]).union([r(0, 0)]);
    expect(s.subtract([r(top, top)]).ranges()).toEqual([r(0, 0), r(top - 10n, top - 1n)]);
  });

  it('behaves like a set of pages under any sequence of unions and subtractions', () => {
    const range = fc.tuple(fc.integer({ min: 0, max: 120 }), fc.integer({ min: 0, max: 10 })).map(([s, n]) => r(s, s + n));
    const op = fc.record({ add: fc.boolean(), rs: fc.array(range, { maxLength: 4 }) });
    fc.assert(fc.property(fc.array(op, { maxLength: 25 }), (ops) => {
      let s = DirtyRanges.EMPTY;
      const naive = new Set<number>();
      for (const o of ops) {
        s = o.add ? s.union(o.rs) : s.subtract(o.rs);
        for (const x of o.rs) for (let i = Number(x.start); i <= Number(x.last); i++) o.add ? naive.add(i) : naive.delete(i);
      }
      for (let i = 0; i <= 140; i++) expect(s.has(BigInt(i))).toBe(naive.has(i));
      const rs = s.ranges();
      for (let i = 1; i < rs.length; i++) expect(rs[i]!.start > rs[i - 1]!.last + 1n).toBe(true);
    }), { seed: SEED, numRuns: 300 });
  });
});

describe('IOPTE geometry (iommu_pgsize over a mapped run)', () => {
  it('splits a default mock run into 2 KiB entries', () => {
    expect(pteInRun([K2], 0x100_0000n, 0x100_3fffn, 0x5000n, 0x100_1234n)).toEqual({ head: 0x100_1000n, size: K2, item: K2 });
  });

  it('uses 1 MiB entries where IOVA and phys agree mod 1 MiB and a whole aligned block fits, 4 KiB contiguous entries elsewhere', () => {
    const sizes = [M1, K4];
    // run [0x0ff000, 0x2fffff] -> phys 0x4ff000: congruent mod 1 MiB
    expect(pteInRun(sizes, 0xff000n, 0x2fffffn, 0x4ff000n, 0xff800n)).toEqual({ head: 0xff000n, size: K4, item: K2 });
    expect(pteInRun(sizes, 0xff000n, 0x2fffffn, 0x4ff000n, 0x180000n)).toEqual({ head: 0x100000n, size: M1, item: M1 });
    expect(pteInRun(sizes, 0xff000n, 0x2fffffn, 0x4ff000n, 0x2fffffn)).toEqual({ head: 0x200000n, size: M1, item: M1 });
    // phys off by 4 KiB: no 1 MiB entry can be used anywhere
    expect(pteInRun(sizes, 0x100000n, 0x2fffffn, 0x401000n, 0x180000n)).toEqual({ head: 0x180000n, size: K4, item: K2 });
  });

  it('agrees with itself: the hull of a window is the union of the entries it meets', () => {
    const st = initialState();
    domainEvolve(st.domains, { type: 'DomainAllocated', domain: 1, kind: 'paging', driver: 'mock', pgsizeBitmap: M1 | K4, apertureStart: 0n, apertureLast: (1n << 64n) - 1n, dirtyOps: true, ctx: 1, hwpt: 2 });
    domainEvolve(st.domains, { type: 'DomainMapped', domain: 1, iova: 0xff000n, last: 0x2fffffn, phys: 0x4ff000n });
    domainEvolve(st.domains, { type: 'DomainMapped', domain: 1, iova: 0x400000n, last: 0x4fffffn, phys: 0x9000n });
    const d = st.domains.get(1)!;
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 0x520000n }), fc.bigInt({ min: 0n, max: 0x300000n }), (s, n) => {
      const hull = DirtyRanges.of(pteHull(st, d, s, s + n));
      const ptes = DirtyRanges.of([...leafPtes(st, d, s, s + n)].map((p) => r(p.head, p.head + p.size - 1n)));
      expect(hull.ranges()).toEqual(ptes.ranges());
    }), { seed: SEED, numRuns: 200 });
  });
});

describe('IovaBitmap (iova_bitmap.c, lazy pinning)', () => {
  const PAGE = 4096n;
  const all = (): boolean => true;
  const bitsOf = (b: IovaBitmap): [bigint, bigint][] => b.sets.map((s) => [s.bit, s.nbits]);

  it('sets bit (iova - base) / page_size counted from the bitmap address, little-endian within bytes', () => {
    const b = new IovaBitmap(0x100_0000n, 0x2_0000n, K2, 0x7f20_0000_0000n, PAGE, all);
    b.set(0x100_0000n + 4n * K2, K2);
    b.set(0x100_0000n + 9n * K2, 2n * K2);
    expect(bitsOf(b)).toEqual([[0x7f20_0000_0000n * 8n + 4n, 1n], [0x7f20_0000_0000n * 8n + 9n, 2n]]);
    expect(bitsToSpans(b.sets)).toEqual([{ addr: 0x7f20_0000_0000n, mask: Uint8Array.from([0x10, 0x06]) }]);
  });

  it('handles a bitmap that is not page (nor u64) aligned', () => {
    const b = new IovaBitmap(0n, 0x10_0000n, K2, 0x7f20_0000_0ff1n, PAGE, all);
    b.set(0n, 16n * K2);
    expect(bitsToSpans(b.sets)).toEqual([{ addr: 0x7f20_0000_0ff1n, mask: Uint8Array.from([0xff, 0xff]) }]);
  });

  it('drops a range whose first page cannot be pinned, and the rest of a range past the pinned prefix', () => {
    const data = 0x10_0000n;
    const pinnable = (va: bigint): boolean => va !== data + PAGE; // the second bitmap page is not writable
    const b = new IovaBitmap(0n, 1n << 40n, K2, data, PAGE, pinnable);
    // 40000 bits from bit 0: page 0 holds bits 0..32767, the rest would be in the unpinnable page 1
    b.set(0n, 40000n * K2);
    expect(bitsOf(b)).toEqual([[data * 8n, 32768n]]);
    expect(b.pinFailures).toEqual([data + PAGE]);
    // a range in page 2 pins from its own byte and is written
    b.set(70000n * K2, K2);
    expect(bitsOf(b)[1]).toEqual([data * 8n + 70000n, 1n]);
  });

  it('writes bits past the bitmap length as long as they fall in a page it pinned (the kernel does)', () => {
    const b = new IovaBitmap(0x100_0000n, 8n * K2, K2, 0x20_0000n, PAGE, all);
    b.set(0x100_0000n + 6n * K2, 4n * K2); // bits 6..9 of an 8-bit bitmap
    expect(bitsOf(b)).toEqual([[0x20_0000n * 8n + 6n, 4n]]);
  });

  it('moves its window of PAGE_SIZE / 8 pages along a long range', () => {
    const data = 0x40_0000n;
    const b = new IovaBitmap(0n, 1n << 46n, K4, data, PAGE, all);
    const nbits = 512n * 32768n + 100n; // one bit past the 512-page window, and then some
    b.set(0n, nbits * K4);
    const total = b.sets.reduce((s, x) => s + x.nbits, 0n);
    expect(total).toBe(nbits);
    expect(normalizeRanges(b.sets.map((s) => r(s.bit, s.bit + s.nbits - 1n)))).toEqual([r(data * 8n, data * 8n + nbits - 1n)]);
  });

  it('ignores ranges past the end of the bitmap', () => {
    const b = new IovaBitmap(0n, 64n * K2, K2, 0x20_0000n, PAGE, all);
    b.set(1000n * K2, K2);
    expect(b.sets).toEqual([]);
  });
});

describe('dirtyEvolve', () => {
  const alloc = (dirtyOps: boolean): DomainEvent => ({ type: 'DomainAllocated', domain: 1, kind: 'paging', driver: 'mock', pgsizeBitmap: K2, apertureStart: 0n, apertureLast: (1n << 64n) - 1n, dirtyOps, ctx: 1, hwpt: 2 });
  const state = (dirtyOps = true): { st: State; d: HwDomain } => {
    const st = initialState();
    evolve(st, alloc(dirtyOps));
    evolve(st, { type: 'DomainMapped', domain: 1, iova: 0x10_0000n, last: 0x10_ffffn, phys: 0n });
    return { st, d: st.domains.get(1)! };
  };
  const apply = (st: State, e: DirtyEvent | DomainEvent): void => {
    if (e.type === 'DomainDirtied' || e.type === 'DomainDirtyCleared' || e.type === 'DomainDirtyTrackingSet') dirtyEvolve(st.domains, e as DirtyEvent);
    else {
      evolve(st, e as DomainEvent);
      if (e.type === 'DomainUnmapped') dirtyEvolve(st.domains, e);
    }
  };

  it('sets and clears dirty ranges, and an unmap forgets the dirty bits of what it unmaps', () => {
    const { st, d } = state();
    apply(st, { type: 'DomainDirtied', domain: 1, ranges: [r(0x10_0000, 0x10_17ff), r(0x10_8000, 0x10_87ff)] });
    apply(st, { type: 'DomainDirtyCleared', domain: 1, ranges: [r(0x10_0800, 0x10_0fff)] });
    expect(plain(dirtyOf(d))).toEqual([[0x10_0000, 0x10_07ff], [0x10_1000, 0x10_17ff], [0x10_8000, 0x10_87ff]]);
    apply(st, { type: 'DomainUnmapped', domain: 1, iova: 0x10_0000n, last: 0x10_7fffn });
    expect(plain(dirtyOf(d))).toEqual([[0x10_8000, 0x10_87ff]]);
  });

  it('turns tracking on and off, and refuses events a domain without dirty ops cannot take', () => {
    const { st, d } = state();
    apply(st, { type: 'DomainDirtyTrackingSet', domain: 1, enabled: true });
    expect(d.dirtyTracking).toBe(true);
    const plainDomain = state(false).st;
    expect(() => dirtyEvolve(plainDomain.domains, { type: 'DomainDirtyTrackingSet', domain: 1, enabled: true })).toThrow(DirtyProjectionError);
    expect(() => dirtyEvolve(plainDomain.domains, { type: 'DomainDirtied', domain: 1, ranges: [r(0, 1)] })).toThrow(DirtyProjectionError);
    expect(() => dirtyEvolve(st.domains, { type: 'DomainDirtied', domain: 9, ranges: [] })).toThrow(DirtyProjectionError);
  });

  it('keeps snapshots apart: a cloned state does not see later changes', () => {
    const { st } = state();
    apply(st, { type: 'DomainDirtied', domain: 1, ranges: [r(0x10_0000, 0x10_07ff)] });
    const snap = cloneState(st);
    apply(st, { type: 'DomainDirtied', domain: 1, ranges: [r(0x10_0800, 0x10_0fff)] });
    expect(viewDirty(snap.domains.get(1)!)).toEqual([['0x100000', '0x1007ff']]);
    expect(viewDirty(st.domains.get(1)!)).toEqual([['0x100000', '0x100fff']]);
  });
});

describe('markDirtyEvents (the DMA path)', () => {
  const st = (): State => {
    const s = initialState();
    evolve(s, { type: 'DomainAllocated', domain: 1, kind: 'paging', driver: 'mock', pgsizeBitmap: K2, apertureStart: 0n, apertureLast: (1n << 64n) - 1n, dirtyOps: true, ctx: 1, hwpt: 2 });
    evolve(s, { type: 'DomainMapped', domain: 1, iova: 0x10_0000n, last: 0x10_3fffn, phys: 0n });
    return s;
  };

  it('dirties nothing while tracking is off', () => {
    expect(markDirtyEvents(st(), 1, 0x10_0000n, 16n)).toEqual([]);
  });

  it('dirties every whole IOPTE a write touches, and only mapped ones', () => {
    const s = st();
    dirtyEvolve(s.domains, { type: 'DomainDirtyTrackingSet', domain: 1, enabled: true });
    expect(markDirtyEvents(s, 1, 0x10_07f0n, 0x20n)).toEqual([{ type: 'DomainDirtied', domain: 1, ranges: [r(0x10_0000, 0x10_0fff)] }]);
    expect(markDirtyEvents(s, 1, 0x10_3ff0n, 0x100n)).toEqual([{ type: 'DomainDirtied', domain: 1, ranges: [r(0x10_3800, 0x10_3fff)] }]);
    dirtyEvolve(s.domains, { type: 'DomainDirtied', domain: 1, ranges: [r(0x10_0000, 0x10_0fff)] });
    expect(markDirtyEvents(s, 1, 0x10_0000n, 0x1000n)).toEqual([]);
  });
});
