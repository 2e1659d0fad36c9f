/**
 * Choosing and checking IOVA (io_pagetable.c `iopt_alloc_iova`, `__alloc_iova_check_range`, `iopt_check_iova`),
 * as the newest kernel does it (core spec §4.2): the lowest-address first fit over the holes of
 * reserved ∪ areas, inside the allowed ranges when there are any, keeping the user address's offset in its page
 * and its natural alignment up to the THP size. The kernel's exact IOVAs matter: traces and VMMs observe them.
 */
import type { Errno } from '../events/errno.js';
import { areaIterFirst, describeArea, type Iopt } from './io_pagetable.js';
import { doubleSpanIter, spanIter } from './span_iter.js';
import { alignUp, lowestSetBit, roundUpPow2, U64_MAX } from './u64.js';
import { isMutant } from '../check/mutants.js';

export type IovaResult = { readonly iova: bigint } | { readonly errno: Errno; readonly why: string };

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/**
 * `__alloc_iova_check_range`: the aligned candidate in [start, last] keeping `pageOffset`, if `length` bytes fit
 * from it. Round-up overflow rejects the range (the ≈v6.13 fix of an ALIGN() that wrapped to 0).
 */
function checkRange(start: bigint, last: bigint, length: bigint, align: bigint, pageOffset: bigint): bigint | undefined {
  const up = alignUp(start, align) ?? (isMutant('iova-align-wrap') ? 0n : undefined); // MUTANT (B5, CVE-2025-38688): ALIGN() wraps
  if (up === undefined) return undefined;
  const cand = up | pageOffset;
  // `>=`, not `>`: a candidate equal to the range's last byte is rejected even for a 1-byte length.
  return cand >= last || last - cand < length - 1n ? undefined : cand;
}

export function iopt_alloc_iova(i: Iopt, addr: bigint, length: bigint, pageSize: number, maxAlign: bigint): IovaResult {
  const fn = 'io_pagetable.c iopt_alloc_iova';
  if (length === 0n || length >= U64_MAX / 2n) return { errno: 'EOVERFLOW', why: `${fn}: length ${hex(length)} is 0 or >= ULONG_MAX/2` };
  let align = roundUpPow2(length)!;
  if (addr !== 0n) {
    const low = lowestSetBit(addr)!;
    if (low < align) align = low;
  }
  if (align >= maxAlign) align = maxAlign;
  if (align < i.iovaAlignment)
    return { errno: 'EINVAL', why: `${fn}: the alignment ${hex(align)} this address and length allow is below the IOAS iova_alignment ${hex(i.iovaAlignment)}` };
  const page = BigInt(pageSize);
  const pageOffset = addr % page;
  const winFirst = page, winLast = U64_MAX - page;
  const windows: { start: bigint; last: bigint }[] = [];
  if (i.allowed.isEmpty) windows.push({ start: winFirst, last: winLast });
  else for (const s of spanIter(i.allowed, winFirst, winLast)) if (!s.isHole) windows.push({ start: s.start, last: s.last });
  for (const w of windows) {
    const wStart = checkRange(w.start, w.last, length, align, pageOffset);
    if (wStart === undefined) continue;
    for (const span of doubleSpanIter(i.reserved, i.areas, wStart, w.last)) {
      if (!span.isHole) continue;
      const cand = checkRange(span.start, span.last, length, align, pageOffset);
      if (cand !== undefined) return { iova: cand };
    }
  }
  return {
    errno: 'ENOSPC',
    why: `${fn}: no hole of ${hex(length)} bytes aligned to ${hex(align)}${i.allowed.isEmpty ? '' : ' inside the allowed ranges'} outside the reserved ranges and areas`,
  };
}

/** Why an IOVA range is reserved, from its owner. */
export function describeOwner(owner: string): string {
  if (owner.startsWith('domain:')) return `outside the aperture of IOMMU domain ${owner.slice(7)}: the IOMMU cannot translate those addresses`;
  if (owner.startsWith('dev:')) return `a reserved region (e.g. the MSI window) of device ${owner.slice(4)}`;
  return 'reserved with IOMMU_TEST_OP_ADD_RESERVED';
}

/** `iopt_check_iova`: a FIXED_IOVA placement. Allowed ranges do not restrict it. */
export function iopt_check_iova(i: Iopt, iova: bigint, length: bigint): IovaResult {
  const fn = 'io_pagetable.c iopt_check_iova';
  if (iova % i.iovaAlignment !== 0n) return { errno: 'EINVAL', why: `${fn}: IOVA ${hex(iova)} is not a multiple of the IOAS iova_alignment ${hex(i.iovaAlignment)}` };
  const last = iova + length - 1n;
  if (last > U64_MAX) return { errno: 'EOVERFLOW', why: `${fn}: IOVA ${hex(iova)} + length ${hex(length)} - 1 overflows` };
  const r = i.reserved.iterFirst(iova, last);
  if (r !== undefined)
    return { errno: 'EINVAL', why: `${fn}: [${hex(iova)}, ${hex(last)}] intersects the reserved range [${hex(r.start)}, ${hex(r.last)}] (${describeOwner(r.value)})` };
  const a = areaIterFirst(i, iova, last);
  if (a !== undefined) return { errno: 'EEXIST', why: `${fn}: [${hex(iova)}, ${hex(last)}] overlaps area ${describeArea(a)}` };
  return { iova };
}
