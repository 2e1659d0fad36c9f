/**
 * Unsigned 64-bit arithmetic helpers for the io_pagetable model.
 *
 * The kernel does IOVA arithmetic in `unsigned long` (u64 on the 64-bit
 * platforms iommufd supports), where `x + 1` silently wraps to 0 at
 * ULONG_MAX.  We model values as non-negative `bigint`s that never wrap, so
 * every helper that could leave [0, 2^64-1] reports the overflow explicitly
 * (`undefined`) instead of producing a value the kernel could never hold.
 * Callers mirror the kernel's `check_add_overflow()` by testing for
 * `undefined`.
 */

/** ULONG_MAX on a 64-bit kernel: 2^64 - 1. */
export const U64_MAX: bigint = (1n << 64n) - 1n;

/** True iff `x` is representable as a u64 (0 <= x <= 2^64-1). */
export function isU64(x: bigint): boolean {
  return x >= 0n && x <= U64_MAX;
}

/** Throws RangeError unless `x` is a u64; `what` names the value in the message. */
export function assertU64(x: bigint, what = 'value'): void {
  if (!isU64(x)) throw new RangeError(`${what} ${x} is not a u64`);
}

/**
 * `check_add_overflow(a, b, &res)`: the sum, or `undefined` when it would
 * exceed U64_MAX.  Both operands must be u64.
 */
export function checkedAdd(a: bigint, b: bigint): bigint | undefined {
  assertU64(a, 'checkedAdd operand');
  assertU64(b, 'checkedAdd operand');
  const sum = a + b;
  return sum > U64_MAX ? undefined : sum;
}

/**
 * Inclusive last byte of [start, start+length): the kernel idiom
 * `check_add_overflow(iova, length - 1, &last)`.  Returns `undefined` when the
 * range runs past 2^64-1 and also for `length == 0` (an empty range has no last
 * byte; the kernel rejects length 0 before doing this sum).
 */
export function lastOf(start: bigint, length: bigint): bigint | undefined {
  assertU64(length, 'length');
  if (length === 0n) return undefined;
  return checkedAdd(start, length - 1n);
}

/** True iff `x` is a power of two (0 is not). */
export function isPow2(x: bigint): boolean {
  return x > 0n && (x & (x - 1n)) === 0n;
}

/**
 * `roundup_pow_of_two(x)`: the smallest power of two >= x.  The kernel leaves
 * x == 0 undefined and overflows for x > 2^63; both give `undefined` here.
 * (`iopt_alloc_iova` guards with `length >= ULONG_MAX / 2` for that reason.)
 */
export function roundUpPow2(x: bigint): bigint | undefined {
  assertU64(x, 'roundUpPow2 argument');
  if (x === 0n) return undefined;
  let p = 1n;
  while (p < x) p <<= 1n; // at most 64 iterations
  return p > U64_MAX ? undefined : p;
}

/**
 * `1UL << __ffs64(x)`: the value of the lowest set bit (e.g. 0x3000 -> 0x1000),
 * as used by `iopt_alloc_iova` to derive an alignment from the user address.
 * `__ffs64(0)` is undefined in the kernel; `undefined` here.
 */
export function lowestSetBit(x: bigint): bigint | undefined {
  assertU64(x, 'lowestSetBit argument');
  if (x === 0n) return undefined;
  return x & -x;
}

/**
 * `ALIGN(x, align)` with the overflow check of `__alloc_iova_check_range`
 * (`check_add_overflow(start, align - 1, ...)` then mask): the smallest
 * multiple of `align` that is >= x, or `undefined` if that exceeds U64_MAX.
 * `align` must be a power of two.
 */
export function alignUp(x: bigint, align: bigint): bigint | undefined {
  if (!isPow2(align)) throw new RangeError(`alignment ${align} is not a power of two`);
  const sum = checkedAdd(x, align - 1n);
  return sum === undefined ? undefined : sum & ~(align - 1n);
}

/** `ALIGN_DOWN(x, align)`; never overflows.  `align` must be a power of two. */
export function alignDown(x: bigint, align: bigint): bigint {
  if (!isPow2(align)) throw new RangeError(`alignment ${align} is not a power of two`);
  assertU64(x, 'alignDown argument');
  return x & ~(align - 1n);
}

/** `IS_ALIGNED(x, align)` i.e. `(x & (align - 1)) == 0`; `align` must be a power of two. */
export function isAligned(x: bigint, align: bigint): boolean {
  if (!isPow2(align)) throw new RangeError(`alignment ${align} is not a power of two`);
  assertU64(x, 'isAligned argument');
  return (x & (align - 1n)) === 0n;
}

/** min/max for bigints (Math.min/max do not accept bigint). */
export function minU64(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
export function maxU64(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
