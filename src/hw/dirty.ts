/**
 * Dirty tracking in IOMMU domains: the write-dirty bits of leaf IOPTEs, and the user bitmap the kernel reports them
 * in (drivers/iommu/generic_pt/iommu_pt.h `read_and_clear_dirty` / `set_dirty`, drivers/iommu/iommufd/iova_bitmap.c).
 *
 * Which kernel. The selftest mock of the model is the iommupt one (selftest.c `mock_domain_alloc_pgtable`: an AMDv1
 * "mock" generic page table with a 2 KiB granule). Its dirty ops are the generic page table's (`IOMMU_PT_DIRTY_OPS`)
 * plus the mock's `mock_domain_set_dirty_tracking`, which only flips MOCK_DIRTY_TRACK. So:
 *  - a dirty bit belongs to a leaf IOPTE: 2 KiB in a default mock domain; in a MOCK_IOMMUPT_HUGE domain a 1 MiB
 *    entry where iommu_map could use one, else a 4 KiB contiguous entry (two 2 KiB items, dirty as one);
 *  - `set_dirty(iova)` (IOMMU_TEST_OP_DIRTY) dirties the whole IOPTE holding `iova`, if one is mapped;
 *  - `read_and_clear_dirty` does not look at MOCK_DIRTY_TRACK (the xarray mock of older kernels returned EINVAL
 *    when tracking was off and a bitmap was given; the generic one reports whatever bits are set);
 *  - unmapping an IOPTE drops its dirty bit with it.
 *
 * The state is one `DirtyRanges` per domain: the dirty IOVA as sorted, disjoint, merged ranges, each a union of
 * whole IOPTEs (never one entry per page). It is immutable: every change builds a new value, so a snapshot that
 * shares it (cloneDomain's spread) can never see a later change.
 *
 * IOPTE geometry is derived from the domain's mapped runs (`HwDomain.map`, one run per `iommu_map` of a physically
 * contiguous span): `iommu_pgsize` splits a run greedily, so the IOPTE holding `x` is the largest page size `z`
 * allowed for the run (z in pgsize_bitmap, z <= PAGE_SIZE when the IOAS disables large pages, and the run's IOVA and
 * physical address congruent mod z) whose z-aligned block around `x` lies inside the run.
 */
import type { DomainEvent } from '../events/domain.js';
import type { State } from '../projections/state.js';
import type { HwDomain } from './domain.js';
import type { Iopt } from './io_pagetable.js';
import { U64_MAX } from './u64.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const u64 = (v: bigint): bigint => BigInt.asUintN(64, v);

export interface IovaRange {
  readonly start: bigint;
  /** Inclusive. */
  readonly last: bigint;
}

// ---- The events --------------------------------------------------------------------------------------------------

/**
 * The domain events of dirty tracking (to be members of `DomainEvent`). Ranges are sorted, disjoint and made of
 * whole leaf IOPTEs.
 */
export type DirtyEvent =
  /** `mock_domain_set_dirty_tracking`: MOCK_DIRTY_TRACK of the domain changes (set_dirty_tracking with no change is no event). */
  | { readonly type: 'DomainDirtyTrackingSet'; readonly domain: number; readonly enabled: boolean }
  /** IOPTEs become write-dirty (`set_dirty`, or a device's DMA write through them while tracking is on). */
  | { readonly type: 'DomainDirtied'; readonly domain: number; readonly ranges: readonly IovaRange[] }
  /** Write-dirty IOPTEs become clean (`read_and_clear_dirty` without NO_CLEAR, or the snapshot before tracking starts). */
  | { readonly type: 'DomainDirtyCleared'; readonly domain: number; readonly ranges: readonly IovaRange[] };

export type DirtyEventType = DirtyEvent['type'];
export const DIRTY_EVENT_TYPES: readonly DirtyEventType[] = ['DomainDirtyTrackingSet', 'DomainDirtied', 'DomainDirtyCleared'];
/** Fields holding lists of {start, last} u64 ranges, for the log codec (`RANGE_LIST_FIELDS`). No plain u64 fields. */
export const DIRTY_RANGE_LIST_FIELDS: Readonly<Record<'DomainDirtied' | 'DomainDirtyCleared', readonly string[]>> = {
  DomainDirtied: ['ranges'],
  DomainDirtyCleared: ['ranges'],
};

/**
 * A dirty event as a `DomainEvent`. The identity once `DomainEvent` has the members above; until then the handlers
 * that decide dirty events go through it.
 */
export const asDomainEvent = (e: DirtyEvent): DomainEvent => e as unknown as DomainEvent;

// ---- The dirty IOVA of a domain ------------------------------------------------------------------------------------

/** Sorts and merges ranges (overlapping or adjacent ones become one). */
export function normalizeRanges(rs: readonly IovaRange[]): IovaRange[] {
  const sorted = rs.slice().sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: { start: bigint; last: bigint }[] = [];
  for (const r of sorted) {
    if (r.last < r.start) throw new RangeError(`range [${hex(r.start)}, ${hex(r.last)}] is empty`);
    const top = out[out.length - 1];
    if (top !== undefined && r.start <= top.last + 1n) {
      if (r.last > top.last) top.last = r.last;
    } else out.push({ start: r.start, last: r.last });
  }
  return out;
}

/** An immutable set of IOVA: sorted, disjoint, non-adjacent ranges. */
export class DirtyRanges {
  static readonly EMPTY = new DirtyRanges([]);
  private constructor(private readonly rs: readonly IovaRange[]) {}

  static of(ranges: readonly IovaRange[]): DirtyRanges {
    const n = normalizeRanges(ranges);
    return n.length === 0 ? DirtyRanges.EMPTY : new DirtyRanges(n);
  }

  get isEmpty(): boolean {
    return this.rs.length === 0;
  }
  /** Number of ranges (not of pages). */
  get count(): number {
    return this.rs.length;
  }
  ranges(): readonly IovaRange[] {
    return this.rs;
  }

  /** Index of the first range whose `last` is >= x. */
  private lowerBound(x: bigint): number {
    let lo = 0, hi = this.rs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.rs[mid]!.last < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  has(x: bigint): boolean {
    const r = this.rs[this.lowerBound(x)];
    return r !== undefined && r.start <= x;
  }

  /** The parts of the set inside [start, last], in order. */
  intersecting(start: bigint, last: bigint): IovaRange[] {
    const out: IovaRange[] = [];
    for (let i = this.lowerBound(start); i < this.rs.length; i++) {
      const r = this.rs[i]!;
      if (r.start > last) break;
      out.push({ start: r.start > start ? r.start : start, last: r.last < last ? r.last : last });
    }
    return out;
  }

  union(add: readonly IovaRange[]): DirtyRanges {
    if (add.length === 0) return this;
    return DirtyRanges.of([...this.rs, ...add]);
  }

  subtract(cut: readonly IovaRange[]): DirtyRanges {
    if (cut.length === 0 || this.rs.length === 0) return this;
    const c = normalizeRanges(cut);
    const out: IovaRange[] = [];
    let j = 0;
    for (const r of this.rs) {
      let s = r.start;
      while (j < c.length && c[j]!.last < s) j++;
      let k = j;
      let alive = true;
      while (k < c.length && c[k]!.start <= r.last) {
        const x = c[k]!;
        if (x.start > s) out.push({ start: s, last: x.start - 1n });
        if (x.last >= r.last) {
          alive = false;
          break;
        }
        s = x.last + 1n;
        k++;
      }
      if (alive) out.push({ start: s, last: r.last });
    }
    return out.length === 0 ? DirtyRanges.EMPTY : new DirtyRanges(out);
  }

  /** The parts of `rs` not in the set (what `union(rs)` would add). */
  missing(rs: readonly IovaRange[]): IovaRange[] {
    return [...DirtyRanges.of(rs).subtract(this.rs).ranges()];
  }
}

declare module './domain.js' {
  interface HwDomain {
    /** The write-dirty IOPTEs (absent: none). Immutable; `dirtyEvolve` replaces it. */
    dirty?: DirtyRanges;
  }
}

/** The dirty IOVA of a domain. */
export const dirtyOf = (d: HwDomain): DirtyRanges => d.dirty ?? DirtyRanges.EMPTY;

/** For `viewState`: the dirty ranges of a domain as hex pairs. */
export const viewDirty = (d: HwDomain): [string, string][] => dirtyOf(d).ranges().map((r) => [hex(r.start), hex(r.last)]);

/** For snapshots: `DirtyRanges` is immutable, so the copy is the value itself (cloneDomain's spread is already deep enough). */
export const cloneDirty = (r: DirtyRanges | undefined): DirtyRanges | undefined => r;

// ---- Evolve --------------------------------------------------------------------------------------------------------

/** What `dirtyEvolve` folds: the dirty events, and DomainUnmapped (an unmapped IOPTE takes its dirty bit with it). */
export type DirtyInput = DirtyEvent | Extract<DomainEvent, { type: 'DomainUnmapped' }>;

export class DirtyProjectionError extends Error {}

export function dirtyEvolve(domains: Map<number, HwDomain>, ev: DirtyInput): void {
  const d = domains.get(ev.domain);
  if (d === undefined) throw new DirtyProjectionError(`${ev.type}: no domain ${ev.domain}`);
  switch (ev.type) {
    case 'DomainDirtyTrackingSet':
      if (ev.enabled && !d.dirtyOps) throw new DirtyProjectionError(`domain ${ev.domain} has no dirty ops; tracking cannot be enabled`);
      d.dirtyTracking = ev.enabled;
      return;
    case 'DomainDirtied':
      if (!d.dirtyOps) throw new DirtyProjectionError(`domain ${ev.domain} has no dirty ops; nothing can dirty it`);
      d.dirty = dirtyOf(d).union(ev.ranges);
      return;
    case 'DomainDirtyCleared':
      d.dirty = dirtyOf(d).subtract(ev.ranges);
      return;
    case 'DomainUnmapped':
      if (d.dirty !== undefined) d.dirty = d.dirty.subtract([{ start: ev.iova, last: ev.last }]);
      return;
  }
}

// ---- IOPTE geometry --------------------------------------------------------------------------------------------------

/** A leaf IOPTE: [head, head + size) translates as one entry; `item` is its table's item size (size > item: contiguous). */
export interface Pte {
  readonly head: bigint;
  readonly size: bigint;
  readonly item: bigint;
}
export const pteLast = (p: Pte): bigint => p.head + p.size - 1n;

/** The item sizes of the mock's AMDv1 table levels: a 2 KiB granule, 512 items per table. */
const MOCK_ITEM_SIZES: readonly bigint[] = (() => {
  const out: bigint[] = [];
  for (let z = 2048n; z <= U64_MAX; z *= 512n) out.push(z);
  return out;
})();
/** The table item size a leaf of `size` sits at: the largest level item not above it. */
function itemOf(size: bigint): bigint {
  let item = MOCK_ITEM_SIZES[0]!;
  for (const z of MOCK_ITEM_SIZES) if (z <= size) item = z;
  return item;
}

/** The IOAS whose io_pagetable holds `domain` (a paging domain belongs to one). */
export function ioptOfDomain(st: State, domain: number): Iopt | undefined {
  for (const c of st.ctxs.values())
    for (const o of c.objects.values()) if (o.ioas !== undefined && o.ioas.iopt.domains.includes(domain)) return o.ioas.iopt;
  return undefined;
}

/**
 * The page sizes `iommu_map` uses for the domain, largest first: `pgsize_bitmap`, capped at PAGE_SIZE when the IOAS
 * disables large pages (`batch_iommu_map_small` maps one PAGE_SIZE at a time).
 */
export function mapPageSizes(st: State, d: HwDomain): bigint[] {
  const cap = ioptOfDomain(st, d.id)?.disableLargePages === true ? BigInt(st.pageSize) : U64_MAX;
  const sizes: bigint[] = [];
  for (let b = 0n; b < 64n; b++) {
    const z = 1n << b;
    if ((d.pgsizeBitmap & z) !== 0n && z <= cap) sizes.push(z);
  }
  if (sizes.length === 0) sizes.push(d.pgsizeBitmap & -d.pgsizeBitmap);
  return sizes.reverse();
}

/** The IOPTE of the mapped run [start, last] (physical address `phys` at `start`) that holds `x`. */
export function pteInRun(sizes: readonly bigint[], start: bigint, last: bigint, phys: bigint, x: bigint): Pte {
  for (const z of sizes) {
    if (u64(start - phys) % z !== 0n) continue; // iommu_pgsize: (iova ^ paddr) must agree below z
    const head = x - (x % z);
    if (head >= start && head + z - 1n <= last) return { head, size: z, item: itemOf(z) };
  }
  // Not reachable for runs aligned to the smallest page size; a clipped smallest page keeps the walk going.
  const z = sizes[sizes.length - 1]!;
  const off = (x - start) % z;
  const head = x - off;
  const end = head + z - 1n > last ? last : head + z - 1n;
  return { head, size: end - head + 1n, item: itemOf(end - head + 1n) };
}

/** The IOPTE holding `iova`, or undefined where nothing is mapped. */
export function pteAt(st: State, d: HwDomain, iova: bigint, sizes = mapPageSizes(st, d)): Pte | undefined {
  const n = d.map.iterFirst(iova, iova);
  return n === undefined ? undefined : pteInRun(sizes, n.start, n.last, n.value, iova);
}

/** The leaf IOPTEs intersecting [start, last], in IOVA order. */
export function* leafPtes(st: State, d: HwDomain, start: bigint, last: bigint, sizes = mapPageSizes(st, d)): Generator<Pte> {
  for (const n of d.map.intersecting(start, last)) {
    const end = n.last < last ? n.last : last;
    for (let x = n.start > start ? n.start : start; x <= end;) {
      const p = pteInRun(sizes, n.start, n.last, n.value, x);
      yield p;
      x = p.head + p.size;
    }
  }
}

/** The union of the IOPTEs intersecting [start, last], as ranges (one per mapped run it touches). */
export function pteHull(st: State, d: HwDomain, start: bigint, last: bigint, sizes = mapPageSizes(st, d)): IovaRange[] {
  const out: IovaRange[] = [];
  for (const n of d.map.intersecting(start, last)) {
    const a = pteInRun(sizes, n.start, n.last, n.value, n.start > start ? n.start : start);
    const b = pteInRun(sizes, n.start, n.last, n.value, n.last < last ? n.last : last);
    out.push({ start: a.head, last: pteLast(b) });
  }
  return out;
}

// ---- Deciding dirty events ---------------------------------------------------------------------------------------------

/**
 * A device's DMA write to [iova, iova + length) through domain `domain`: the IOPTEs it goes through become dirty, if
 * the domain tracks dirtiness (the IOMMU sets the D bit only while tracking is enabled: AMD DTE.HAD, VT-d SSADE, the
 * mock's MOCK_DIRTY_TRACK). Unmapped IOVA is not dirtied (the write faults). Already dirty IOPTEs give no event.
 */
export function markDirtyEvents(st: State, domain: number, iova: bigint, length: bigint): DomainEvent[] {
  const d = st.domains.get(domain);
  if (d === undefined || !d.dirtyOps || !d.dirtyTracking || length === 0n) return [];
  const last = iova + length - 1n > U64_MAX ? U64_MAX : iova + length - 1n;
  return dirtiedEvents(d, pteHull(st, d, iova, last));
}

/** The DomainDirtied event for the IOPTE ranges `rs` of `d` that are not dirty yet (none when all are). */
export function dirtiedEvents(d: HwDomain, rs: readonly IovaRange[]): DomainEvent[] {
  const fresh = dirtyOf(d).missing(rs);
  return fresh.length === 0 ? [] : [asDomainEvent({ type: 'DomainDirtied', domain: d.id, ranges: fresh })];
}

/** The DomainDirtyCleared event for the dirty parts of `rs` (whole IOPTEs), none when nothing there is dirty. */
export function clearedEvents(d: HwDomain, rs: readonly IovaRange[]): DomainEvent[] {
  const dirty = dirtyOf(d);
  const hit = normalizeRanges(rs).flatMap((r) => dirty.intersecting(r.start, r.last));
  return hit.length === 0 ? [] : [asDomainEvent({ type: 'DomainDirtyCleared', domain: d.id, ranges: normalizeRanges(hit) })];
}

// ---- The user bitmap (iova_bitmap.c) ----------------------------------------------------------------------------------

/** One `bitmap_set` on a pinned page: bits [bit, bit + nbits) counted from user address 0 (bit b is byte b/8, bit b%8). */
export interface BitsSet {
  readonly bit: bigint;
  readonly nbits: bigint;
}

/**
 * `struct iova_bitmap` with lazy pinning (iova_bitmap.c since "Dynamic pinning on iova_bitmap_set()"):
 * `iova_bitmap_alloc` pins nothing; `iova_bitmap_set` pins a window of up to PAGE_SIZE / sizeof(struct page *) user
 * pages (pin_user_pages_fast, FOLL_WRITE: a prefix of the pages asked for) from the byte holding the first bit it
 * sets, moves the window (`iova_bitmap_advance_to`) when a range leaves it, and silently gives up on a range whose
 * window cannot be pinned or lies past the bitmap. Indexes are bytes (`u8 __user *bitmap`); all arithmetic is u64.
 */
export class IovaBitmap {
  private readonly pgshift: bigint;
  private readonly total: bigint;
  private base = 0n;
  private npages = 0n;
  private mIova: bigint;
  private pgoff = 0n;
  private mLength = 0n;
  readonly sets: BitsSet[] = [];
  /** Pin failures met (each drops the rest of one `iova_bitmap_set`), for explanations. */
  readonly pinFailures: bigint[] = [];

  constructor(
    private readonly iova: bigint, private readonly length: bigint, pageSize: bigint, private readonly data: bigint,
    private readonly kernelPage: bigint, private readonly pinnable: (pageVa: bigint) => boolean,
  ) {
    this.pgshift = ffs(pageSize);
    this.total = (u64(length - 1n) >> this.pgshift) / 8n + 1n;
    this.mIova = iova;
  }

  private mappedIova(): bigint {
    return u64(this.iova + ((this.base * 8n) << this.pgshift));
  }
  private mappedLength(): bigint {
    const maxIova = u64(this.iova + this.length - 1n);
    const iova = this.mappedIova();
    const bytes = u64(this.npages * this.kernelPage - this.pgoff);
    const rem = this.total - this.base < bytes ? this.total - this.base : bytes;
    let remaining = u64((rem * 8n) << this.pgshift);
    if (u64(iova + remaining - 1n) > maxIova) remaining = u64(remaining - u64(u64(iova + remaining - 1n) - maxIova));
    return remaining;
  }
  /** `iova_bitmap_get`: pin the window from byte `base`. */
  private get(): boolean {
    let npages = (this.total - this.base + this.kernelPage - 1n) / this.kernelPage;
    const addr = u64(this.data + this.base);
    if (addr % this.kernelPage !== 0n) npages += 1n;
    const cap = this.kernelPage / 8n;
    if (npages > cap) npages = cap;
    const first = addr - (addr % this.kernelPage);
    let got = 0n;
    while (got < npages && first + got * this.kernelPage <= U64_MAX && this.pinnable(first + got * this.kernelPage)) got++;
    if (got === 0n) {
      this.pinFailures.push(addr);
      return false;
    }
    this.npages = got;
    this.mIova = this.mappedIova();
    this.pgoff = addr % this.kernelPage;
    this.mLength = this.mappedLength();
    return true;
  }
  private advanceTo(iova: bigint): boolean {
    const index = (u64(iova - this.iova) >> this.pgshift) / 8n;
    if (index >= this.total) return false;
    this.base = index;
    this.npages = 0n; // iova_bitmap_put
    return this.get();
  }
  private mappedRange(iova: bigint, length: bigint): boolean {
    return this.npages !== 0n && iova >= this.mIova && u64(iova + length - 1n) <= u64(this.mIova + this.mLength - 1n);
  }

  /** `iova_bitmap_set(bitmap, iova, length)`. */
  set(iova: bigint, length: bigint): void {
    const bitsPerPage = this.kernelPage * 8n;
    for (let guard = 0; guard < 1_000_000; guard++) {
      if (!this.mappedRange(iova, length) && !this.advanceTo(iova)) return;
      const lastPageIdx = this.npages - 1n;
      let cur = (u64(iova - this.mIova) >> this.pgshift) + this.pgoff * 8n;
      const lastBit = (u64(u64(iova + length - 1n) - this.mIova) >> this.pgshift) + this.pgoff * 8n;
      const pageBase = u64(this.data + this.base) - (u64(this.data + this.base) % this.kernelPage);
      let moved = false;
      do {
        const pageIdx = cur / bitsPerPage;
        const offset = cur % bitsPerPage;
        const nbits = bitsPerPage - offset < lastBit - cur + 1n ? bitsPerPage - offset : lastBit - cur + 1n;
        if (pageIdx > lastPageIdx) {
          const left = u64((lastBit - cur + 1n) << this.pgshift);
          iova = u64(iova + u64(length - left));
          length = left;
          moved = true;
          break;
        }
        this.sets.push({ bit: pageBase * 8n + cur, nbits });
        cur += nbits;
      } while (cur <= lastBit);
      if (!moved) return;
    }
    throw new Error('iova_bitmap_set did not converge');
  }
}

/** `__ffs`: the index of the lowest set bit (page_size is never 0 here: checked before). */
function ffs(x: bigint): bigint {
  let n = 0n;
  while (((x >> n) & 1n) === 0n && n < 64n) n++;
  return n;
}

/** Byte spans of user memory touched by bit sets, each with the OR mask to apply: [addr, addr + mask.length). */
export interface ByteSpan {
  readonly addr: bigint;
  readonly mask: Uint8Array;
}
export function bitsToSpans(sets: readonly BitsSet[]): ByteSpan[] {
  const runs = normalizeRanges(sets.filter((s) => s.nbits > 0n).map((s) => ({ start: s.bit, last: s.bit + s.nbits - 1n })));
  const spans: { start: bigint; last: bigint; runs: IovaRange[] }[] = [];
  for (const r of runs) {
    const b0 = r.start / 8n, b1 = r.last / 8n;
    const top = spans[spans.length - 1];
    if (top !== undefined && b0 <= top.last + 1n) {
      if (b1 > top.last) top.last = b1;
      top.runs.push(r);
    } else spans.push({ start: b0, last: b1, runs: [r] });
  }
  return spans.map((s) => {
    const mask = new Uint8Array(Number(s.last - s.start + 1n));
    for (const r of s.runs) {
      for (let b = r.start; b <= r.last;) {
        const byte = b / 8n, bitIn = Number(b % 8n);
        const i = Number(byte - s.start);
        if (bitIn === 0 && r.last - b >= 7n) {
          mask[i] = 0xff;
          b += 8n;
        } else {
          mask[i] = mask[i]! | (1 << bitIn);
          b += 1n;
        }
      }
    }
    return { addr: s.start, mask };
  });
}
