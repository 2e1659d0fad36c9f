/**
 * The process's user memory as the IOMMU API sees it (mm/mmap.c, mm/memfd.c as far as pinning needs them):
 * VMAs made by mmap/munmap and the header's `vmas`, and memfds with their sizes. Later layers add the page
 * table, page contents, pins and the mmu_notifier chain on this seam.
 *
 * VMAs are kept sorted by start in an array: lookups are binary searches; mmap/munmap splice, which is O(n) in
 * the number of VMAs — processes have hundreds, not the hundreds of thousands an IOAS can have areas.
 */
import type { DomainEvent } from '../events/domain.js';
import { U64_MAX } from '../events/values.js';
import { RangeMap } from './range_map.js';

export interface Vma {
  readonly start: bigint;
  /** Inclusive. */
  readonly last: bigint;
  readonly prot: number;
  readonly flags: number;
  readonly memfd: number | undefined;
  /** Byte offset into the memfd of `start`. */
  readonly offset: bigint;
}
export interface Memfd {
  readonly id: number;
  readonly name: string;
  size: bigint;
}
export interface MmState {
  vmas: Vma[];
  readonly memfds: Map<number, Memfd>;
  /** FOLL_PIN references per host page index (pages.c pins them; munmap does not drop them). */
  readonly pins: RangeMap;
}

export const emptyMm = (): MmState => ({ vmas: [], memfds: new Map(), pins: new RangeMap() });
export const cloneMm = (m: MmState): MmState => ({
  vmas: m.vmas.slice(),
  memfds: new Map([...m.memfds].map(([k, v]) => [k, { ...v }])),
  pins: m.pins.clone(),
});

/** Index of the first VMA whose last ≥ addr (the candidate containing or following addr). */
function lowerBound(vmas: readonly Vma[], addr: bigint): number {
  let lo = 0, hi = vmas.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (vmas[mid]!.last < addr) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function findVma(m: MmState, addr: bigint): Vma | undefined {
  const v = m.vmas[lowerBound(m.vmas, addr)];
  return v !== undefined && v.start <= addr ? v : undefined;
}

/** Whether every byte of [start, last] lies in some VMA. */
export function isFullyMapped(m: MmState, start: bigint, last: bigint): boolean {
  let at = start;
  for (let i = lowerBound(m.vmas, start); i < m.vmas.length; i++) {
    const v = m.vmas[i]!;
    if (v.start > at) return false;
    if (v.last >= last) return true;
    at = v.last + 1n;
  }
  return false;
}

/** Removes [start, last] from the VMA list, splitting VMAs that straddle its edges (munmap semantics). */
function punch(m: MmState, start: bigint, last: bigint): void {
  const out: Vma[] = [];
  const i0 = lowerBound(m.vmas, start);
  let i = i0;
  for (; i < m.vmas.length; i++) {
    const v = m.vmas[i]!;
    if (v.start > last) break;
    if (v.start < start) out.push({ ...v, last: start - 1n });
    if (v.last > last) out.push({ ...v, start: last + 1n, offset: v.offset + (last + 1n - v.start) });
  }
  m.vmas.splice(i0, i - i0, ...out);
}

/**
 * Where mmap without MAP_FIXED places `length` bytes when the trace does not say: the highest gap below
 * `top` that fits, as the x86-64 top-down allocator does (mm/mmap.c `unmapped_area_topdown`).
 */
export function chooseMmapAddress(m: MmState, length: bigint, pageSize: number, top = 0x7fff_f000_0000n): bigint | undefined {
  const page = BigInt(pageSize);
  const len = (length + page - 1n) & ~(page - 1n);
  let ceiling = top; // exclusive end of the gap under consideration
  for (let i = m.vmas.length - 1; i >= 0; i--) {
    const v = m.vmas[i]!;
    if (v.start >= ceiling) continue;
    if (v.last < ceiling && ceiling - (v.last + 1n) >= len) return ceiling - len;
    ceiling = v.start;
  }
  return ceiling >= len + page ? ceiling - len : undefined;
}

export function mmEvolve(m: MmState, ev: DomainEvent): void {
  switch (ev.type) {
    case 'VmaMapped': {
      const last = ev.start + ev.length - 1n;
      if (last > U64_MAX) throw new Error('VMA past the end of the address space');
      punch(m, ev.start, last);
      const i = lowerBound(m.vmas, ev.start);
      m.vmas.splice(i, 0, { start: ev.start, last, prot: ev.prot, flags: ev.flags, memfd: ev.memfd, offset: ev.offset });
      return;
    }
    case 'VmaUnmapped':
      punch(m, ev.start, ev.start + ev.length - 1n);
      return;
    case 'MemfdCreated':
      m.memfds.set(ev.memfd, { id: ev.memfd, name: ev.name, size: 0n });
      return;
    case 'MemfdResized': {
      const f = m.memfds.get(ev.memfd);
      if (f === undefined) throw new Error(`no memfd ${ev.memfd}`);
      f.size = ev.size;
      return;
    }
    default:
      return;
  }
}
