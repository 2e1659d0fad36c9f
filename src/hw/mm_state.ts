/**
 * The state of the user memory model (see mm.ts for the whole picture) and its read-only queries: the VMA list,
 * the files (memfds and the shmem objects behind MAP_SHARED|MAP_ANONYMOUS), the page table, the frame table
 * (the model's `struct page` array: who owns each frame and its `page->index`), pins and page contents.
 *
 * VMAs are kept sorted by start in an array: lookups are binary searches; mmap/munmap splice, which is O(n) in the
 * number of VMAs — processes have hundreds, not the hundreds of thousands an IOAS can have areas. Every page-level
 * table is a `RunMap` or `RangeMap` (cost O(runs), never O(pages)); only written page contents cost per page.
 */
import { FLAG_SETS } from '../events/flags.js';
import { RangeMap } from './range_map.js';
import { LINEAR, RunMap, type RunOps } from './mm_runmap.js';

export const PROT_READ = FLAG_SETS.prot.PROT_READ, PROT_WRITE = FLAG_SETS.prot.PROT_WRITE;
const M = FLAG_SETS.mmap;

export interface Vma {
  readonly start: bigint;
  /** Inclusive. */
  readonly last: bigint;
  readonly prot: number;
  readonly flags: number;
  readonly memfd: number | undefined;
  /** Byte offset into the backing file of `start` (a MAP_SHARED|MAP_ANONYMOUS mapping's shmem object starts at 0). */
  readonly offset: bigint;
  /** The backing file: the memfd's id, the negative id of the shmem object of a shared anonymous mapping, or undefined. */
  readonly file: number | undefined;
  /** VM_IO|VM_PFNMAP: the VFIO device whose region this maps (no struct page behind it; GUP refuses it). */
  readonly pfnmap?: string;
}
export interface Memfd {
  readonly id: number;
  readonly name: string;
  size: bigint;
  /** The page cache: file page index → frame (shmem allocates a page on first touch, mm/shmem.c shmem_get_folio_gfp). */
  readonly cache: RunMap<number>;
}
/** The shmem object that `shmem_zero_setup` puts behind a MAP_SHARED|MAP_ANONYMOUS mapping; it lives while a VMA maps it. */
export interface Shmem {
  readonly id: number;
  readonly cache: RunMap<number>;
}
/**
 * A run of live frames: `owner` 0 is anonymous memory (its `index` is the virtual page that maps it), any other
 * owner is the file whose page cache holds it (`index` is the file page). `index` undefined: no page table or page
 * cache holds the frame any more; only FOLL_PIN references keep it alive (a pinned page survives munmap).
 */
export interface FrameInfo {
  readonly owner: number;
  readonly index: number | undefined;
}
export const ANON = 0;
export const FRAME_OPS: RunOps<FrameInfo> = {
  shift: (v, by) => (v.index === undefined || by === 0 ? v : { owner: v.owner, index: v.index + by }),
  eq: (a, b) => a.owner === b.owner && a.index === b.index,
};

export interface MmState {
  /** PAGE_SIZE; set from the trace header (`TraceStarted`) before any page exists. */
  pageSize: number;
  vmas: Vma[];
  readonly memfds: Map<number, Memfd>;
  /** Shared anonymous memory objects, by (negative) id. */
  readonly shmem: Map<number, Shmem>;
  /** The next shmem object is `-nextShmem`. */
  nextShmem: number;
  /** The page table: virtual page index → frame. */
  readonly pt: RunMap<number>;
  /** Every live frame. Frame ids are handed out in increasing order and never reused. */
  readonly frames: RunMap<FrameInfo>;
  nextFrame: number;
  /** FOLL_PIN references per frame (pin_user_pages, memfd_pin_folios). */
  readonly pins: RangeMap;
  /** Contents of the frames written so far (a frame never written reads as zeros). */
  readonly data: Map<number, Uint8Array>;
  /** mmu_notifier invalidations so far (the mmu_interval_notifier sequence). */
  invalidations: number;
}

export const emptyMm = (pageSize = 4096): MmState => ({
  pageSize, vmas: [], memfds: new Map(), shmem: new Map(), nextShmem: 1, pt: new RunMap(LINEAR),
  frames: new RunMap(FRAME_OPS), nextFrame: 0, pins: new RangeMap(), data: new Map(), invalidations: 0,
});

/** A deep copy, for snapshots: later events applied to either never show in the other. */
export function cloneMm(m: MmState): MmState {
  return {
    ...m,
    vmas: m.vmas.slice(),
    memfds: new Map([...m.memfds].map(([k, v]) => [k, { ...v, cache: v.cache.clone() }])),
    shmem: new Map([...m.shmem].map(([k, v]) => [k, { id: v.id, cache: v.cache.clone() }])),
    pt: m.pt.clone(),
    frames: m.frames.clone(),
    pins: m.pins.clone(),
    data: new Map([...m.data].map(([k, v]) => [k, v.slice()])),
  };
}

/** Index of the first VMA whose last ≥ addr (the candidate containing or following addr). */
export function lowerBound(vmas: readonly Vma[], addr: bigint): number {
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

/** The VMAs that intersect [start, last], ascending. */
export function vmasIn(m: MmState, start: bigint, last: bigint): Vma[] {
  const out: Vma[] = [];
  for (let i = lowerBound(m.vmas, start); i < m.vmas.length && m.vmas[i]!.start <= last; i++) out.push(m.vmas[i]!);
  return out;
}

/** Removes [start, last] from the VMA list, splitting VMAs that straddle its edges (munmap semantics). */
export function punch(m: MmState, start: bigint, last: bigint): void {
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

/** MAP_SHARED or MAP_SHARED_VALIDATE (VM_SHARED); anything else is a private (copy-on-write) mapping. */
export const isSharedMapping = (flags: number): boolean => (flags & M.MAP_SHARED_VALIDATE) === M.MAP_SHARED || (flags & M.MAP_SHARED_VALIDATE) === M.MAP_SHARED_VALIDATE;
export const isLockedMapping = (flags: number): boolean => (flags & M.MAP_LOCKED) !== 0;

/** What backs a VMA's pages (undefined VMA: implicit memory, which is private anonymous). */
export type Backing =
  | { readonly kind: 'anon' }
  /** `pgoff`: file page of the VMA's first page; `eof`: first file page wholly past EOF (memfds; shmem objects have none). */
  | { readonly kind: 'shared' | 'private'; readonly file: number; readonly pgoff: number; readonly eof: number | undefined };

export function backingOf(m: MmState, v: Vma | undefined): Backing {
  if (v === undefined || v.file === undefined) return { kind: 'anon' };
  const ps = BigInt(m.pageSize);
  const f = v.file > 0 ? m.memfds.get(v.file) : undefined;
  const eof = f === undefined ? undefined : Number((f.size + ps - 1n) / ps);
  return { kind: isSharedMapping(v.flags) ? 'shared' : 'private', file: v.file, pgoff: Number(v.offset / ps), eof };
}

export function fileCache(m: MmState, file: number): RunMap<number> | undefined {
  return file > 0 ? m.memfds.get(file)?.cache : m.shmem.get(file)?.cache;
}

/** First and last virtual page index of a VMA. */
export function vmaPages(m: MmState, v: Vma): { first: number; last: number } {
  const ps = BigInt(m.pageSize);
  return { first: Number(v.start / ps), last: Number((v.last + 1n) / ps) - 1 };
}

export interface Segment {
  readonly start: number;
  readonly last: number;
  /** undefined: no VMA (a hole, or implicit memory). */
  readonly vma: Vma | undefined;
}
/** The VMAs and holes covering virtual pages [start, last], ascending, clipped to it. */
export function* segments(m: MmState, start: number, last: number): Generator<Segment, void, undefined> {
  const ps = BigInt(m.pageSize);
  let at = start;
  for (let i = lowerBound(m.vmas, BigInt(start) * ps); i < m.vmas.length && at <= last; i++) {
    const v = m.vmas[i]!;
    const p = vmaPages(m, v);
    if (p.first > last) break;
    if (p.first > at) yield { start: at, last: p.first - 1, vma: undefined };
    const s = Math.max(at, p.first), l = Math.min(last, p.last);
    if (s <= l) yield { start: s, last: l, vma: v };
    at = Math.max(at, l + 1);
  }
  if (at <= last) yield { start: at, last, vma: undefined };
}

/** A run of virtual pages and the frames they reach (consecutive), or undefined where nothing is there yet. */
export interface FrameRunAt {
  readonly start: number;
  readonly last: number;
  readonly frame: number | undefined;
}
/**
 * The frames virtual pages [start, last] reach now without allocating: the page table's, else for a file mapping
 * the file's cached page (`through` 'shared': only shared mappings, which a fault maps directly — a DONTNEED'd PTE
 * of a memfd comes back to the same frame; 'file': private ones too, which is what a read sees before a COW).
 */
export function* frameRuns(m: MmState, start: number, last: number, through: 'shared' | 'file'): Generator<FrameRunAt, void, undefined> {
  for (const c of m.pt.cover(start, last)) {
    if (c.value !== undefined) {
      yield { start: c.start, last: c.last, frame: c.value };
      continue;
    }
    for (const s of segments(m, c.start, c.last)) {
      const b = backingOf(m, s.vma);
      const cache = b.kind === 'anon' ? undefined : fileCache(m, b.file);
      if (b.kind === 'anon' || (b.kind === 'private' && through === 'shared') || cache === undefined) {
        yield { start: s.start, last: s.last, frame: undefined };
        continue;
      }
      const p0 = b.pgoff + (s.start - vmaPages(m, s.vma!).first);
      for (const r of cache.cover(p0, p0 + (s.last - s.start)))
        yield { start: s.start + (r.start - p0), last: s.start + (r.last - p0), frame: r.value };
    }
  }
}

/** The frame behind the byte at `va` (shared mappings through their page cache), or undefined. */
export function frameAt(m: MmState, va: bigint): number | undefined {
  const v = Number(va / BigInt(m.pageSize));
  for (const r of frameRuns(m, v, v, 'shared')) return r.frame;
  return undefined;
}

/** Sub-runs of frames [first, last] whose pin count is 0, ascending. */
export function* unpinnedRuns(m: MmState, first: number, last: number): Generator<{ start: number; last: number }, void, undefined> {
  let at = first;
  for (const r of m.pins.runs(first, last)) {
    if (r.start > at) yield { start: at, last: r.start - 1 };
    at = r.last + 1;
  }
  if (at <= last) yield { start: at, last };
}

/** Sorts frame runs and merges touching ones (for FramesFreed / FramesPinned events). */
export function mergeFrameRuns(runs: readonly { start: number; last: number }[]): { start: number; last: number }[] {
  const s = [...runs].sort((a, b) => a.start - b.start);
  const out: { start: number; last: number }[] = [];
  for (const r of s) {
    const p = out[out.length - 1];
    if (p !== undefined && p.last + 1 >= r.start) p.last = Math.max(p.last, r.last);
    else out.push({ start: r.start, last: r.last });
  }
  return out;
}
