/**
 * The automatic IOVA allocator (io_pagetable.c `iopt_alloc_iova`, `__alloc_iova_check_range`, newest: commit
 * 85e0d1de of torvalds/linux; spec: iommufd-core-spec.md §4.2) at its edges, and against an independent, naive
 * restatement of §4.2 that finds holes by scanning addresses one by one instead of walking interval trees.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newIopt, type Area, type Iopt } from '../../src/hw/io_pagetable.js';
import { iopt_alloc_iova, iopt_check_iova } from '../../src/hw/iova_alloc.js';

const U64_MAX = (1n << 64n) - 1n;
const PAGE = 4096;
const P = BigInt(PAGE);
const THP = 2n * 1024n * 1024n;
const SEED = Number(process.env.FC_SEED ?? 4242);

let nextArea = 1;
function area(start: bigint, last: bigint): Area {
  return {
    id: nextArea++, start, last, pages: 1, pagesStart: 0, pagesLast: 0, pageOffset: 0, prot: 3, line: 0, published: true,
    numAccesses: 0, preventAccess: false, numLocks: 0,
  };
}
interface Layout {
  readonly reserved?: readonly (readonly [bigint, bigint])[];
  readonly areas?: readonly (readonly [bigint, bigint])[];
  readonly allowed?: readonly (readonly [bigint, bigint])[];
  readonly alignment?: bigint;
}
function iopt(l: Layout = {}): Iopt {
  const i = newIopt();
  for (const [s, e] of l.reserved ?? []) i.reserved.insert(s, e, '');
  for (const [s, e] of l.areas ?? []) i.areaById.set(nextArea, i.areas.insert(s, e, area(s, e)));
  for (const [s, e] of l.allowed ?? []) i.allowed.insert(s, e, null);
  if (l.alignment !== undefined) i.iovaAlignment = l.alignment;
  return i;
}
const alloc = (i: Iopt, addr: bigint, length: bigint, pageSize = PAGE, maxAlign = THP): bigint | string => {
  const r = iopt_alloc_iova(i, addr, length, pageSize, maxAlign);
  return 'iova' in r ? r.iova : r.errno;
};

describe('iopt_alloc_iova at the edges', () => {
  it('never hands out IOVA 0..PAGE_SIZE-1: the first window starts at PAGE_SIZE', () => {
    expect(alloc(iopt(), 0n, 1n)).toBe(P);
    expect(alloc(iopt(), 0x7f0000000000n, 0x1000n)).toBe(P);
    expect(alloc(iopt({ allowed: [[0n, 0x1fffn]] }), 0n, 0x1000n)).toBe(P);
    expect(alloc(iopt({ allowed: [[0n, 0xfffn]] }), 0n, 1n)).toBe('ENOSPC');
  });

  it('never hands out the top page: the window ends at ULONG_MAX - PAGE_SIZE', () => {
    const top = U64_MAX - 2n * P + 1n; // the last page below the excluded top page
    const full = iopt({ reserved: [[0x1000n, top - 1n]] });
    expect(alloc(full, 0n, P)).toBe(top);
    expect(alloc(full, 0n, P + 1n)).toBe('ENOSPC');
    expect(alloc(iopt({ allowed: [[U64_MAX - 0x1fffn, U64_MAX]] }), 0n, P)).toBe(top);
    expect(alloc(iopt({ allowed: [[U64_MAX - 0xfffn, U64_MAX]] }), 0n, 1n)).toBe('ENOSPC');
  });

  it('skips a window whose aligned start overflows instead of wrapping to 0', () => {
    // __alloc_iova_check_range: check_add_overflow(*start, iova_alignment - 1, &aligned_start) → false.
    const i = iopt({ allowed: [[U64_MAX - 0x10000n, U64_MAX - 0x1000n]] });
    expect(alloc(i, 0n, 0x200000n)).toBe('ENOSPC');
    expect(alloc(i, 0n, 0x1000n)).toBe(U64_MAX - 0xffffn);
  });

  it('clips the allowed ranges to the window and tries them in ascending order', () => {
    const i = iopt({ allowed: [[0x40000000n, 0x4fffffffn], [0x3000n, 0x3fffn]] });
    expect(alloc(i, 0n, 0x1000n)).toBe(0x3000n);
    expect(alloc(i, 0n, 0x2000n)).toBe(0x40000000n);
    expect(alloc(iopt({ allowed: [[0x3000n, 0x3fffn]] }), 0n, 0x2000n)).toBe('ENOSPC');
  });

  it('searches an allowed window from its aligned start, skipping the reserved ranges and areas in it', () => {
    const i = iopt({ allowed: [[0x10000n, 0x8ffffn]], reserved: [[0x10000n, 0x1ffffn]], areas: [[0x20000n, 0x2ffffn]] });
    expect(alloc(i, 0n, 0x10000n)).toBe(0x30000n);
    expect(alloc(i, 0n, 0x60000n)).toBe('ENOSPC');
  });

  it('rejects a candidate at the last byte of its hole (cand >= last), even for a 1-byte length', () => {
    // __alloc_iova_check_range: `if (aligned_start >= last || last - aligned_start < length - 1) return false;`
    const i = iopt({ areas: [[0x1001n, 0x1fffn]] });
    expect(alloc(i, 0n, 1n)).toBe(0x2000n);
    expect(alloc(iopt({ areas: [[0x1002n, 0x1fffn]] }), 0n, 1n)).toBe(0x1000n);
    expect(alloc(iopt({ areas: [[0x1002n, 0x1fffn]] }), 0n, 2n)).toBe(0x1000n);
    // The window's own candidate (0x1000 | 1) already starts the search at 0x1001, the hole's last byte.
    expect(alloc(iopt({ areas: [[0x1002n, 0x1fffn]] }), 1n, 2n)).toBe(0x2001n);
  });

  it('aligns to roundup_pow_of_two(length) without a user address, and to the lowest set bit of the address with one', () => {
    expect(alloc(iopt({ reserved: [[0x1000n, 0x1000n]] }), 0n, 0x3000n)).toBe(0x4000n);
    expect(alloc(iopt({ reserved: [[0x1000n, 0x1000n]] }), 0x7f0000003000n, 0x3000n)).toBe(0x2000n);
    expect(alloc(iopt({ reserved: [[0x1000n, 0x1000n]] }), 0x7f0000001000n, 0x3000n)).toBe(0x2000n);
    expect(alloc(iopt({ reserved: [[0x1000n, 0x1000n]] }), 0x7f0000010000n, 0x3000n)).toBe(0x4000n);
  });

  it('keeps the address in-page offset by OR-ing it into the aligned candidate', () => {
    expect(alloc(iopt(), 0x7f0000000123n, 0x1000n)).toBe(0x1123n);
    expect(alloc(iopt({ reserved: [[0x1000n, 0x10ffn]] }), 0x7f0000000800n, 0x800n)).toBe(0x1800n);
    // align 0x10 (the length) is below the offset's lowest bit: round_up(0x1110, 0x10) | 0x100 = 0x1110.
    expect(alloc(iopt({ reserved: [[0x1000n, 0x110fn]] }), 0x7f0000000100n, 0x10n)).toBe(0x1110n);
  });

  it('clamps the alignment to max_alignment (HPAGE_SIZE with THP, PAGE_SIZE without)', () => {
    expect(alloc(iopt(), 0n, 0x400000n)).toBe(THP);
    expect(alloc(iopt(), 0x7f0000000000n, 0x10000000n)).toBe(THP);
    expect(alloc(iopt(), 0n, 0x400000n, PAGE, P)).toBe(P);
  });

  it('answers EINVAL when the alignment is below the IOAS iova_alignment', () => {
    expect(alloc(iopt({ alignment: P }), 0x7f0000000800n, 0x1000n)).toBe('EINVAL');
    expect(alloc(iopt({ alignment: P }), 0n, 0x800n)).toBe('EINVAL');
    expect(alloc(iopt({ alignment: P }), 0x7f0000001000n, 0x1000n)).toBe(P);
    expect(alloc(iopt({ alignment: 2n * THP }), 0n, 0x10000000n)).toBe('EINVAL');
  });

  it('answers EOVERFLOW for length 0 and for length >= ULONG_MAX / 2', () => {
    expect(alloc(iopt(), 0n, 0n)).toBe('EOVERFLOW');
    expect(alloc(iopt(), 0n, U64_MAX / 2n)).toBe('EOVERFLOW');
    expect(alloc(iopt(), 0n, U64_MAX / 2n - 1n)).toBe(THP);
  });

  it('answers ENOSPC when no hole fits', () => {
    expect(alloc(iopt({ reserved: [[0n, U64_MAX]] }), 0n, 1n)).toBe('ENOSPC');
    expect(alloc(iopt({ areas: [[0x1000n, U64_MAX - 0x1000n]] }), 0n, 1n)).toBe('ENOSPC');
  });

  it('returns an IOVA that iopt_check_iova accepts (the CONFIG_IOMMUFD_TEST WARN_ON)', () => {
    const i = iopt({ reserved: [[0x1000n, 0x4fffn]], areas: [[0x8000n, 0x8fffn]], alignment: 0x100n });
    // The hole [0x5000, 0x7fff] is 0x3000 long, but the in-page offset pushes its candidate to 0x5100.
    const got = alloc(i, 0x7f0000000100n, 0x3000n);
    expect(got).toBe(0x9100n);
    expect(iopt_check_iova(i, got as bigint, 0x3000n)).toEqual({ iova: got });
  });
});

// ---- the naive restatement of spec §4.2 -------------------------------------------------------------------

/** A layout confined to [base, base + SPAN): everything outside is free and not allowed. */
interface Small {
  readonly base: bigint;
  readonly reserved: [bigint, bigint][];
  readonly areas: [bigint, bigint][];
  readonly allowed: [bigint, bigint][];
  readonly alignment: bigint;
  readonly pageSize: number;
  readonly maxAlign: bigint;
}
const SPAN = 256n;

/**
 * The address space as segments: the bytes [base, base + SPAN) one by one, and the free, not-allowed stretches
 * below and above them. Scanning them byte by byte is the whole point: no interval tree, no span iterator.
 */
function* segments(l: Small): Generator<{ start: bigint; last: bigint; used: boolean; allowed: boolean }> {
  const inAny = (rs: [bigint, bigint][], x: bigint): boolean => rs.some(([s, e]) => s <= x && x <= e);
  if (l.base > 0n) yield { start: 0n, last: l.base - 1n, used: false, allowed: false };
  for (let x = l.base; x < l.base + SPAN; x++)
    yield { start: x, last: x, used: inAny(l.reserved, x) || inAny(l.areas, x), allowed: inAny(l.allowed, x) };
  if (l.base + SPAN - 1n < U64_MAX) yield { start: l.base + SPAN, last: U64_MAX, used: false, allowed: false };
}

/** Maximal runs of consecutive segments inside [lo, hi] that satisfy `pick`. */
function runs(l: Small, lo: bigint, hi: bigint, pick: (s: { used: boolean; allowed: boolean }) => boolean): [bigint, bigint][] {
  const out: [bigint, bigint][] = [];
  for (const s of segments(l)) {
    const a = s.start > lo ? s.start : lo, b = s.last < hi ? s.last : hi;
    if (a > b || !pick(s)) continue;
    const prev = out[out.length - 1];
    if (prev !== undefined && prev[1] + 1n === a) prev[1] = b;
    else out.push([a, b]);
  }
  return out;
}

function naiveAlloc(l: Small, addr: bigint, length: bigint): bigint | string {
  if (length === 0n || length >= U64_MAX / 2n) return 'EOVERFLOW';
  let align = 1n;
  while (align < length) align *= 2n;
  if (addr !== 0n) {
    let low = 1n;
    while ((addr / low) % 2n === 0n) low *= 2n;
    if (low < align) align = low;
  }
  if (align >= l.maxAlign) align = l.maxAlign;
  if (align < l.alignment) return 'EINVAL';
  const page = BigInt(l.pageSize);
  const offset = addr % page;
  /** §4.2's candidate test on [start, last]. */
  const candidate = (start: bigint, last: bigint): bigint | undefined => {
    const up = ((start + align - 1n) / align) * align;
    if (up > U64_MAX) return undefined;
    const cand = up | offset;
    return cand >= last || last - cand < length - 1n ? undefined : cand;
  };
  const lo = page, hi = U64_MAX - page;
  const windows = l.allowed.length === 0 ? [[lo, hi] as [bigint, bigint]] : runs(l, lo, hi, (s) => s.allowed);
  for (const [ws, wl] of windows) {
    const first = candidate(ws, wl);
    if (first === undefined) continue;
    for (const [hs, hl] of runs(l, first, wl, (s) => !s.used)) {
      const c = candidate(hs, hl);
      if (c !== undefined) return c;
    }
  }
  return 'ENOSPC';
}

const range = (max: number) =>
  fc.tuple(fc.integer({ min: 0, max: max - 1 }), fc.integer({ min: 1, max: 48 })).map(([s, n]) => [BigInt(s), BigInt(Math.min(s + n, max) - 1)] as const);

/** Random small layouts that respect the kernel's invariants (areas disjoint; allowed ranges disjoint, not reserved). */
const smallLayout = fc.record({
  base: fc.constantFrom(0n, 1n << 63n, (1n << 40n) + 0x37n, U64_MAX - SPAN + 1n),
  reserved: fc.array(range(Number(SPAN)), { maxLength: 4 }),
  areas: fc.array(range(Number(SPAN)), { maxLength: 5 }),
  allowed: fc.oneof(fc.constant<(readonly [bigint, bigint])[]>([]), fc.array(range(Number(SPAN)), { minLength: 1, maxLength: 3 })),
  pageSize: fc.constantFrom(16, 32),
  alignLog: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 5 }) }),
  maxMul: fc.constantFrom(1n, 2n, 4n),
}).map((r): Small => {
  const shift = ([s, e]: readonly [bigint, bigint]): [bigint, bigint] => [r.base + s, r.base + e];
  const hit = (rs: [bigint, bigint][], [s, e]: [bigint, bigint]) => rs.some(([a, b]) => a <= e && s <= b);
  const reserved = r.reserved.map(shift);
  const areas: [bigint, bigint][] = [];
  for (const a of r.areas.map(shift)) if (!hit(areas, a) && !hit(reserved, a)) areas.push(a);
  const allowed: [bigint, bigint][] = [];
  for (const a of r.allowed.map(shift)) if (a[0] < a[1] && !hit(allowed, a) && !hit(reserved, a)) allowed.push(a);
  const pageSize = r.pageSize;
  return { base: r.base, reserved, areas, allowed, pageSize, alignment: 1n << BigInt(Math.min(r.alignLog, Math.log2(pageSize))), maxAlign: BigInt(pageSize) * r.maxMul };
});

const userAddr = fc.oneof(
  fc.constant(0n),
  fc.bigInt({ min: 1n, max: 1023n }),
  fc.tuple(fc.bigInt({ min: 1n, max: (1n << 20n) - 1n }), fc.integer({ min: 0, max: 43 })).map(([v, s]) => v << BigInt(s)),
);

describe('iopt_alloc_iova against a naive scan of spec §4.2', () => {
  it('chooses the same IOVA, or fails with the same errno, on small random layouts', () => {
    console.log(`fast-check seed ${SEED} (set FC_SEED to change)`);
    fc.assert(
      fc.property(smallLayout, userAddr, fc.bigInt({ min: 0n, max: 80n }), (l, addr, length) => {
        const i = iopt({ reserved: l.reserved, areas: l.areas, allowed: l.allowed, alignment: l.alignment });
        const want = naiveAlloc(l, addr, length);
        expect(alloc(i, addr, length, l.pageSize, l.maxAlign)).toBe(want);
        if (typeof want === 'bigint') {
          // The result is a real hole: not reserved, no area, inside an allowed range when there are any.
          const last = want + length - 1n;
          expect(i.reserved.iterFirst(want, last)).toBeUndefined();
          expect(i.areas.iterFirst(want, last)).toBeUndefined();
          if (l.allowed.length > 0) expect(l.allowed.some(([s]) => s <= want)).toBe(true);
          // The user address's offset in its page is OR-ed into the IOVA.
          const off = addr % BigInt(l.pageSize);
          expect(want & off).toBe(off);
        }
      }),
      { seed: SEED, numRuns: 5000 },
    );
  });
});
