import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  alignDown,
  alignUp,
  checkedAdd,
  isAligned,
  isPow2,
  isU64,
  lastOf,
  lowestSetBit,
  roundUpPow2,
  U64_MAX,
} from '../../src/hw/u64.js';

// Deterministic property runs; override with FC_SEED=<n> to explore.
const SEED = Number(process.env['FC_SEED'] ?? 0x64a11);
console.info(`u64.test.ts: fast-check seed ${SEED}`);
const params = { seed: SEED, numRuns: 500 };

const TOP = 1n << 63n;
const u64 = fc.oneof(
  fc.bigInt({ min: 0n, max: U64_MAX }),
  fc.constantFrom(0n, 1n, 4095n, 4096n, TOP - 1n, TOP, TOP + 1n, U64_MAX - 1n, U64_MAX),
  fc.bigInt({ min: U64_MAX - 8192n, max: U64_MAX }),
  fc.bigInt({ min: 0n, max: 8192n }),
);
const pow2 = fc.integer({ min: 0, max: 63 }).map((s) => 1n << BigInt(s));

describe('u64 helpers', () => {
  it('U64_MAX is 2^64 - 1 and bounds isU64', () => {
    expect(U64_MAX).toBe(18446744073709551615n);
    expect(isU64(0n)).toBe(true);
    expect(isU64(U64_MAX)).toBe(true);
    expect(isU64(U64_MAX + 1n)).toBe(false);
    expect(isU64(-1n)).toBe(false);
  });

  it('checkedAdd reports overflow exactly past 2^64 - 1', () => {
    expect(checkedAdd(U64_MAX, 0n)).toBe(U64_MAX);
    expect(checkedAdd(U64_MAX - 1n, 1n)).toBe(U64_MAX);
    expect(checkedAdd(U64_MAX, 1n)).toBeUndefined();
    expect(checkedAdd(TOP, TOP)).toBeUndefined();
    expect(checkedAdd(TOP, TOP - 1n)).toBe(U64_MAX);
    expect(() => checkedAdd(-1n, 0n)).toThrow(RangeError);
    fc.assert(
      fc.property(u64, u64, (a, b) => {
        const r = checkedAdd(a, b);
        if (a + b > U64_MAX) expect(r).toBeUndefined();
        else expect(r).toBe(a + b);
      }),
      params,
    );
  });

  it('lastOf mirrors check_add_overflow(start, length - 1) and rejects empty ranges', () => {
    expect(lastOf(0n, 1n)).toBe(0n);
    expect(lastOf(0n, U64_MAX)).toBe(U64_MAX - 1n);
    expect(lastOf(1n, U64_MAX)).toBe(U64_MAX);
    expect(lastOf(2n, U64_MAX)).toBeUndefined();
    expect(lastOf(U64_MAX, 1n)).toBe(U64_MAX);
    expect(lastOf(U64_MAX, 2n)).toBeUndefined();
    expect(lastOf(5n, 0n)).toBeUndefined();
  });

  it('roundUpPow2 matches roundup_pow_of_two and reports the undefined cases', () => {
    expect(roundUpPow2(0n)).toBeUndefined();
    expect(roundUpPow2(1n)).toBe(1n);
    expect(roundUpPow2(2n)).toBe(2n);
    expect(roundUpPow2(3n)).toBe(4n);
    expect(roundUpPow2(4097n)).toBe(8192n);
    expect(roundUpPow2(TOP)).toBe(TOP);
    expect(roundUpPow2(TOP + 1n)).toBeUndefined();
    expect(roundUpPow2(U64_MAX)).toBeUndefined();
    fc.assert(
      fc.property(u64, (x) => {
        const p = roundUpPow2(x);
        if (x === 0n || x > TOP) {
          expect(p).toBeUndefined();
          return;
        }
        expect(p !== undefined && isPow2(p) && p >= x && p / 2n < x).toBe(true);
      }),
      params,
    );
  });

  it('lowestSetBit returns the value of the lowest set bit like 1UL << __ffs64(x)', () => {
    expect(lowestSetBit(0n)).toBeUndefined();
    expect(lowestSetBit(1n)).toBe(1n);
    expect(lowestSetBit(0x3000n)).toBe(0x1000n);
    expect(lowestSetBit(TOP)).toBe(TOP);
    expect(lowestSetBit(U64_MAX)).toBe(1n);
    fc.assert(
      fc.property(u64, (x) => {
        const b = lowestSetBit(x);
        if (x === 0n) {
          expect(b).toBeUndefined();
          return;
        }
        expect(b !== undefined && isPow2(b) && x % b === 0n && (x / b) % 2n === 1n).toBe(true);
      }),
      params,
    );
  });

  it('alignUp rounds up to the alignment and reports overflow instead of wrapping to 0', () => {
    expect(alignUp(0n, 4096n)).toBe(0n);
    expect(alignUp(1n, 4096n)).toBe(4096n);
    expect(alignUp(4096n, 4096n)).toBe(4096n);
    expect(alignUp(U64_MAX, 1n)).toBe(U64_MAX);
    expect(alignUp(U64_MAX - 4095n, 4096n)).toBe(U64_MAX - 4095n);
    expect(alignUp(U64_MAX - 4094n, 4096n)).toBeUndefined();
    // The syzbot case fixed in __alloc_iova_check_range: ALIGN() used to wrap to 0.
    expect(alignUp(TOP + 1n, TOP)).toBeUndefined();
    expect(() => alignUp(1n, 3n)).toThrow(RangeError);
    expect(() => alignUp(1n, 0n)).toThrow(RangeError);
    fc.assert(
      fc.property(u64, pow2, (x, a) => {
        const r = alignUp(x, a);
        const ref = ((x + a - 1n) / a) * a;
        if (x + a - 1n > U64_MAX) expect(r).toBeUndefined();
        else expect(r).toBe(ref);
      }),
      params,
    );
  });

  it('alignDown and isAligned agree with integer division', () => {
    expect(alignDown(U64_MAX, 4096n)).toBe(U64_MAX - 4095n);
    expect(isAligned(0n, TOP)).toBe(true);
    expect(isAligned(TOP, TOP)).toBe(true);
    expect(isAligned(U64_MAX, 2n)).toBe(false);
    fc.assert(
      fc.property(u64, pow2, (x, a) => {
        expect(alignDown(x, a)).toBe((x / a) * a);
        expect(isAligned(x, a)).toBe(x % a === 0n);
      }),
      params,
    );
  });
});
