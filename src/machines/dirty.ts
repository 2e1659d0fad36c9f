/**
 * Dirty tracking: IOMMU_HWPT_SET_DIRTY_TRACKING and IOMMU_HWPT_GET_DIRTY_BITMAP (drivers/iommu/iommufd/
 * hw_pagetable.c, io_pagetable.c `iopt_set_dirty_tracking`, `iopt_read_and_clear_dirty_data`), and the selftest's
 * IOMMU_TEST_OP_DIRTY (selftest.c `iommufd_test_dirty`), which plays the device: it sets the dirty bit of the IOPTEs
 * at the IOVAs a user bitmap names. The dirty bits and their geometry are src/hw/dirty.ts.
 *
 * User memory. GET_DIRTY_BITMAP sets bits in the caller's bitmap through pinned pages (`iova_bitmap_set` is
 * `bitmap_set` on kmap'ed pages): it ORs them in and leaves every other bit as it was, so writing the result needs
 * the bytes there now. IOMMU_TEST_OP_DIRTY reads its bitmap with copy_from_user. Both go through `UserMemory`; the
 * production one reads nothing yet (ioctl.ts has no copy_from_user seam), so a call that must read a raw pointer
 * answers "not modelled" rather than guess its contents.
 */
import type { DomainEvent } from '../events/domain.js';
import { FLAG_SETS } from '../events/flags.js';
import {
  asDomainEvent, bitsToSpans, clearedEvents, dirtiedEvents, dirtyOf, IovaBitmap, mapPageSizes, pteAt, pteHull, pteInRun,
  type IovaRange, type Pte,
} from '../hw/dirty.js';
import type { HwDomain } from '../hw/domain.js';
import type { Iopt } from '../hw/io_pagetable.js';
import { findVma, mmDraft, type MmDraft } from '../hw/mm.js';
import { U64_MAX } from '../hw/u64.js';
import type { State } from '../projections/state.js';
import { copyFromUser, copyToUser, fail, member, respond, succeed, u32, u64, unmodelled, type Arg, type Call, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';

const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;
const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;
const INT_MAX = 0x7fff_ffffn;
/** The largest bitmap IOMMU_TEST_OP_DIRTY reads that the model takes on (a trace's bitmap is a few KiB). */
const MAX_MODELLED_BITMAP = 1n << 24n;

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;
const wrap = (v: bigint): bigint => BigInt.asUintN(64, v);

// ---- User memory -------------------------------------------------------------------------------------------------------

export type UserRead = Uint8Array | { readonly errno: 'EFAULT'; readonly why: string } | { readonly unmodelled: string };
/** The user memory the handlers read and write (a seam: tests give their own). */
export interface UserMemory {
  /** copy_from_user of [ptr, ptr + length), or a load through pages the kernel pinned. */
  read(c: Call, ptr: bigint, length: number): UserRead;
  /** Stores of `data` at `ptr` (copy_to_user, or through pinned pages); the stores of one step share `d`. */
  write(c: Call, ptr: bigint, data: Uint8Array, d?: MmDraft): readonly DomainEvent[];
}

/** The production memory: copy_to_user and copy_from_user through the modelled user memory (ioctl.ts). */
export const USER_MEMORY: UserMemory = {
  read: (c, ptr, length) => copyFromUser(c, ptr, length),
  write: (c, ptr, data, d) => copyToUser(c, ptr, data, d).events,
};

/** pin_user_pages_fast(FOLL_WRITE) of one page: a VMA with PROT_WRITE maps it (any page but page 0 without mmaps recorded). */
function pinnableForWrite(st: State, pageVa: bigint): boolean {
  if (st.memory === 'implicit') return pageVa >= BigInt(st.pageSize);
  const v = findVma(st.mm, pageVa);
  return v !== undefined && (v.prot & FLAG_SETS.prot.PROT_WRITE) !== 0;
}

// ---- IOMMU_HWPT_SET_DIRTY_TRACKING --------------------------------------------------------------------------------------

/** The published areas of an io_pagetable (`area->pages` set): what `iopt_clear_dirty_data` walks. */
function publishedAreas(i: Iopt): IovaRange[] {
  const out: IovaRange[] = [];
  for (const n of i.areas.inOrder()) if (n.value.published) out.push({ start: n.start, last: n.last });
  return out;
}

/** `iommufd_hwpt_set_dirty_tracking` → `iopt_set_dirty_tracking` → `mock_domain_set_dirty_tracking`. Nothing is copied back. */
export function iommufd_hwpt_set_dirty_tracking(c: Call, a: Arg): Step {
  const fn = 'hw_pagetable.c iommufd_hwpt_set_dirty_tracking';
  const flags = u32(a, 'flags');
  if ((flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0)
    return fail('EOPNOTSUPP', `${fn}: flags ${hex(flags)} outside IOMMU_HWPT_DIRTY_TRACKING_ENABLE (__reserved is not checked)`);
  const id = u32(a, 'hwpt_id');
  const o = getObject(c.ctx, id, 'HWPT_PAGING');
  if (o === undefined) return fail('ENOENT', `${fn}: iommufd_get_hwpt_paging(${id}): ${lookupWhy(c.ctx, id, 'HWPT_PAGING')}`);
  const h = o.hwpt!;
  const d = c.k.st.domains.get(h.domain)!;
  const enable = (flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0;
  const fi = 'io_pagetable.c iopt_set_dirty_tracking';
  if (!d.dirtyOps)
    return fail('EOPNOTSUPP', `${fi}: the domain of HWPT ${id} has no dirty_ops (${h.auto ? 'an auto domain is never allocated with them' : 'it was allocated without IOMMU_HWPT_ALLOC_DIRTY_TRACKING'})`);
  const setter = d.driver === 'mock' ? 'selftest.c mock_domain_set_dirty_tracking (MOCK_DIRTY_TRACK)' : "the IOMMU driver's set_dirty_tracking";
  const events: DomainEvent[] = [];
  let why: string;
  if (enable) {
    // iopt_clear_dirty_data: read_and_clear_dirty over every published area with no bitmap, to start from a clean snapshot.
    const iopt = c.ctx.objects.get(h.ioas)!.ioas!.iopt;
    const areas = publishedAreas(iopt).flatMap((r) => pteHull(c.k.st, d, r.start, r.last));
    events.push(...clearedEvents(d, areas));
    why = events.length > 0 ? `${fi}: dirty IOPTEs of the mapped areas cleared first (iopt_clear_dirty_data), then ` : `${fi}: no dirty IOPTE to clear, then `;
  } else why = `${fi}: `;
  if (enable !== d.dirtyTracking) {
    events.push(asDomainEvent({ type: 'DomainDirtyTrackingSet', domain: d.id, enabled: enable }));
    why += `${setter}: tracking ${enable ? 'enabled' : 'disabled'} on HWPT ${id}`;
  } else why += `${setter}: tracking already ${enable ? 'on' : 'off'} for HWPT ${id} (no change is success)`;
  return succeed(why, undefined, events);
}

// ---- IOMMU_HWPT_GET_DIRTY_BITMAP ------------------------------------------------------------------------------------------

/** One `iova_bitmap_set` the walk makes: the IOVA range it reports dirty. */
interface DirtyRecord {
  readonly iova: bigint;
  readonly length: bigint;
}

/**
 * generic_pt iommu_pt.h `record_dirty` for IOPTE `p` met by a walk of [ws, we]: the range starts at the walk's
 * current VA (`pts->range->va`: the walk's start for the first entry it meets, the entry's start after that) and is
 * one whole item long (a contiguous entry: up to its end or the walk's last item). So an IOPTE that begins before the
 * walk reports a full entry's length from the walk's start.
 */
function recordOf(p: Pte, ws: bigint, we: bigint): DirtyRecord {
  const va = p.head < ws ? ws : p.head;
  if (p.size === p.item) return { iova: va, length: p.size };
  const blockEnd = p.head + p.size;
  const walkEnd = (we / p.item + 1n) * p.item;
  const end = blockEnd < walkEnd ? blockEnd : walkEnd;
  return { iova: va, length: end - (va - (va % p.item)) };
}

/**
 * io_pagetable.c `__iommu_read_and_clear_dirty`: the walk over the areas contiguous from `iova` (iopt_for_each_contig_area;
 * a gap or an unpublished area ends it), each span handed to `read_and_clear_dirty`. Returns the dirty IOPTEs met, in order,
 * with the span that met them, and where the walk stopped short.
 */
function walkDirty(st: State, d: HwDomain, iopt: Iopt, iova: bigint, last: bigint):
  { ptes: { p: Pte; ws: bigint; we: bigint }[]; stoppedAt: bigint | undefined } {
  const ptes: { p: Pte; ws: bigint; we: bigint }[] = [];
  const sizes = mapPageSizes(st, d);
  const dirty = dirtyOf(d);
  let area = iopt.areas.iterFirst(iova, iova);
  if (area === undefined || !area.value.published) return { ptes, stoppedAt: iova };
  let cur = iova;
  for (;;) {
    const segLast = last < area.last ? last : area.last;
    for (const r of dirty.intersecting(cur, segLast)) {
      for (let x = r.start; x <= r.last;) {
        const n = d.map.iterFirst(x, r.last);
        if (n === undefined) break;
        if (n.start > x) x = n.start;
        const p = pteInRun(sizes, n.start, n.last, n.value, x);
        ptes.push({ p, ws: cur, we: segLast });
        x = p.head + p.size;
      }
    }
    if (last <= area.last) return { ptes, stoppedAt: undefined };
    cur = area.last + 1n;
    const next = iopt.areas.iterNext(area, cur, last);
    if (next === undefined || next.start !== cur || !next.value.published) return { ptes, stoppedAt: cur };
    area = next;
  }
}

export function iommufd_hwpt_get_dirty_bitmap(c: Call, a: Arg): Step {
  return getDirtyBitmap(c, a, USER_MEMORY);
}

/** `iommufd_hwpt_get_dirty_bitmap` with the given user memory. Nothing of the struct is copied back. */
export function getDirtyBitmap(c: Call, a: Arg, mem: UserMemory): Step {
  const fn = 'hw_pagetable.c iommufd_hwpt_get_dirty_bitmap';
  const flags = u32(a, 'flags');
  if ((flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0 || u32(a, '__reserved') !== 0)
    return fail('EOPNOTSUPP', `${fn}: flags ${hex(flags)} outside IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, or __reserved != 0`);
  const id = u32(a, 'hwpt_id');
  const o = getObject(c.ctx, id, 'HWPT_PAGING');
  if (o === undefined) return fail('ENOENT', `${fn}: iommufd_get_hwpt_paging(${id}): ${lookupWhy(c.ctx, id, 'HWPT_PAGING')}`);
  const h = o.hwpt!;
  const st = c.k.st;
  const d = st.domains.get(h.domain)!;
  const iopt = c.ctx.objects.get(h.ioas)!.ioas!.iopt;

  // iommufd_check_iova_range, in u64 arithmetic: length 0 makes last = iova + U64_MAX.
  const fc = 'io_pagetable.c iommufd_check_iova_range';
  const iova = u64(a, 'iova'), length = u64(a, 'length'), pageSize = u64(a, 'page_size');
  const last = iova + wrap(length - 1n);
  if (last > U64_MAX)
    return fail('EOVERFLOW', `${fc}: iova ${hex(iova)} + (length ${hex(length)} - 1)${length === 0n ? ' (length 0 wraps to U64_MAX)' : ''} overflows u64`);
  const end = wrap(last + 1n);
  const align = iopt.iovaAlignment;
  if ((iova & (align - 1n)) !== 0n || (end & (align - 1n)) !== 0n)
    return fail('EINVAL', `${fc}: iova ${hex(iova)} or its end ${hex(end)} is not aligned to the IOAS iova_alignment ${hex(align)}`);
  if (pageSize === 0n) return fail('EINVAL', `${fc}: page_size 0`);
  if ((iova & (pageSize - 1n)) !== 0n || (end & (pageSize - 1n)) !== 0n)
    return fail('EINVAL', `${fc}: iova ${hex(iova)} or its end ${hex(end)} has bits of page_size - 1 (${hex(pageSize - 1n)}) set`);

  const fr = 'io_pagetable.c iommu_read_and_clear_dirty';
  if (!d.dirtyOps) return fail('EOPNOTSUPP', `${fr}: the domain of HWPT ${id} has no dirty_ops (read_and_clear_dirty)`);
  // A platform domain (VT-d, AMD, SMMUv3 with HTTU) keeps the same per-leaf-IOPTE dirty bits as the mock's generic
  // page table, at the page sizes its pgsize_bitmap allows; see src/hw/dirty.ts.

  // The walk: every dirty IOPTE met is reported through iova_bitmap_set, and cleaned unless NO_CLEAR.
  const { ptes, stoppedAt } = walkDirty(st, d, iopt, iova, last);
  const noClear = (flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0;
  const dv = a.v.data;
  const inline = dv instanceof Uint8Array ? dv : undefined;
  const page = BigInt(st.pageSize);
  const data = inline !== undefined ? page : typeof dv === 'bigint' ? dv : 0n;
  const pinnable = inline !== undefined
    ? (va: bigint): boolean => va >= page && va < page + BigInt(inline.length)
    : (va: bigint): boolean => pinnableForWrite(st, va);
  const bitmap = new IovaBitmap(iova, length, pageSize, data, page, pinnable);
  for (const { p, ws, we } of ptes) {
    const r = recordOf(p, ws, we);
    bitmap.set(r.iova, r.length);
  }
  const spans = bitsToSpans(bitmap.sets);

  const events: DomainEvent[] = [];
  let out: { data: Uint8Array } | undefined;
  if (inline !== undefined) {
    // Inline data names no memory: the buffer is taken as page aligned, and the result comes back as `out.data`.
    const result = inline.slice();
    for (const s of spans)
      for (let i = 0; i < s.mask.length; i++) {
        const at = s.addr + BigInt(i) - data;
        if (at >= 0n && at < BigInt(result.length)) result[Number(at)] = result[Number(at)]! | s.mask[i]!;
      }
    out = { data: result };
  } else {
    const draft = mmDraft(st.mm, st.pageSize);
    for (const s of spans) {
      const old = mem.read(c, s.addr, s.mask.length);
      if (!(old instanceof Uint8Array)) {
        return unmodelled('unmodelled' in old
          ? `IOMMU_HWPT_GET_DIRTY_BITMAP ORs its bits into the user bitmap: ${old.unmodelled}`
          : `IOMMU_HWPT_GET_DIRTY_BITMAP: a page the kernel pinned for the bitmap reads as EFAULT (${old.why})`);
      }
      const bytes = new Uint8Array(s.mask.length);
      for (let i = 0; i < bytes.length; i++) bytes[i] = old[i]! | s.mask[i]!;
      events.push(...mem.write(c, s.addr, bytes, draft));
    }
  }
  if (!noClear) events.push(...clearedEvents(d, ptes.map(({ p }) => ({ start: p.head, last: p.head + p.size - 1n }))));

  let why = `${fr}: ${ptes.length} dirty IOPTE(s) of HWPT ${id} in [${hex(iova)}, ${hex(last)}] reported`;
  why += noClear ? ' and left dirty (NO_CLEAR)' : ptes.length > 0 ? ' and cleaned' : '';
  if (stoppedAt !== undefined)
    why += `; the walk stopped at ${hex(stoppedAt)}, where no published area continues it (__iommu_read_and_clear_dirty's -EINVAL is dropped: success)`;
  if (bitmap.pinFailures.length > 0)
    why += `; iova_bitmap could not pin the bitmap at ${bitmap.pinFailures.map((x) => hex(x)).join(', ')} (pin_user_pages_fast FOLL_WRITE), those bits were dropped silently`;
  return succeed(why, out, events);
}

// ---- IOMMU_TEST_OP_DIRTY ------------------------------------------------------------------------------------------------

export function test_dirty(c: Call, a: Arg): Step {
  return testDirty(c, a, USER_MEMORY);
}

/**
 * `iommufd_test_dirty` with the given user memory: for every set bit i of the `length / page_size`-bit bitmap at
 * `uptr`, `set_dirty(iova + i * page_size)` dirties the IOPTE mapping that IOVA (nothing when none does); the count
 * of set bits (an `int`) is written back as `out_nr_dirty`, mapped or not.
 */
export function testDirty(c: Call, a: Arg, mem: UserMemory): Step {
  const fn = 'selftest.c iommufd_test_dirty';
  const m = member(a, 'dirty');
  const iova = m ? u64(m, 'iova') : 0n, length = m ? u64(m, 'length') : 0n;
  const pageSize = m ? u64(m, 'page_size') : 0n, uptr = m ? u64(m, 'uptr') : 0n;
  if (pageSize === 0n || length === 0n || iova % pageSize !== 0n || length % pageSize !== 0n || uptr === 0n)
    return fail('EINVAL', `${fn}: page_size ${hex(pageSize)} or length ${hex(length)} is 0, iova ${hex(iova)} or length is not a multiple of page_size, or uptr is NULL`);
  const id = u32(a, 'id');
  const o = getObject(c.ctx, id, 'HWPT_PAGING');
  if (o === undefined) return fail('ENOENT', `${fn}: get_md_pagetable(${id}): ${lookupWhy(c.ctx, id, 'HWPT_PAGING')}`);
  const st = c.k.st;
  const d = st.domains.get(o.hwpt!.domain)!;
  if (d.kind !== 'paging' || d.driver !== 'mock') return fail('EINVAL', `${fn}: get_md_pagetable: HWPT ${id} is not a mock paging domain`);
  if (!d.dirtyTracking)
    return fail('EINVAL', `${fn}: MOCK_DIRTY_TRACK is not set on HWPT ${id} (IOMMU_HWPT_SET_DIRTY_TRACKING has not enabled tracking)`);
  const max = length / pageSize;
  if (max + 63n > U64_MAX) return unmodelled(`${fn}: DIV_ROUND_UP(${hex(max)}, BITS_PER_LONG) wraps, the kernel would read past its bitmap`);
  const allocBytes = ((max + 63n) / 64n) * 8n;
  if (allocBytes > INT_MAX) return fail('ENOMEM', `${fn}: kvzalloc(${allocBytes}) is above INT_MAX, which kvmalloc refuses`);
  const nbytes = (max + 7n) / 8n;
  if (nbytes > MAX_MODELLED_BITMAP) return unmodelled(`IOMMU_TEST_OP_DIRTY with a ${nbytes}-byte bitmap`);
  const bits = mem.read(c, uptr, Number(nbytes));
  if (!(bits instanceof Uint8Array)) {
    if ('unmodelled' in bits) return unmodelled(`IOMMU_TEST_OP_DIRTY reads its bitmap from uptr: ${bits.unmodelled}`);
    return fail('EFAULT', `${fn}: copy_from_user of ${nbytes} byte(s) at uptr ${hex(uptr)}: ${bits.why}`);
  }

  // The IOPTEs the set bits name: runs of set bits become runs of IOVA points page_size apart.
  const sizes = mapPageSizes(st, d);
  const minPte = sizes[sizes.length - 1]!;
  const hit: IovaRange[] = [];
  let count = 0;
  const markPoint = (x: bigint): void => {
    const p = pteAt(st, d, x, sizes);
    if (p !== undefined) hit.push({ start: p.head, last: p.head + p.size - 1n });
  };
  const markRun = (i0: bigint, i1: bigint): void => {
    const p0 = wrap(iova + i0 * pageSize), p1 = wrap(iova + i1 * pageSize);
    if (pageSize <= minPte && p1 >= p0) hit.push(...pteHull(st, d, p0, p1, sizes)); // every IOPTE between holds a point
    else for (let i = i0; i <= i1; i++) markPoint(wrap(iova + i * pageSize));
  };
  let runStart = -1n;
  for (let i = 0n; i < max; i++) {
    const set = ((bits[Number(i / 8n)]! >> Number(i % 8n)) & 1) === 1;
    if (set) {
      count++;
      if (runStart < 0n) runStart = i;
    } else if (runStart >= 0n) {
      markRun(runStart, i - 1n);
      runStart = -1n;
    }
    if (!set && (i & 7n) === 0n && i + 8n <= max && bits[Number(i / 8n)] === 0) i += 7n; // skip a zero byte
  }
  if (runStart >= 0n) markRun(runStart, max - 1n);

  const events = dirtiedEvents(d, hit);
  const nr = BigInt.asUintN(64, BigInt(count | 0)); // `int count` stored into the u64 out_nr_dirty
  const out = respond(a, {
    dirty: { flags: m ? u64(m, 'flags') : 0n, iova, length, page_size: pageSize, uptr, out_nr_dirty: nr },
  });
  return succeed(`${fn}: ${count} bit(s) set in the ${max}-bit bitmap; set_dirty ${events.length > 0 ? 'dirtied the IOPTEs mapping them' : 'found no clean mapped IOPTE at them'} in HWPT ${id}`, out, events);
}
