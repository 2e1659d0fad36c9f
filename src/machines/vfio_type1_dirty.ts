/**
 * Type1 dirty page tracking: VFIO_IOMMU_DIRTY_PAGES (drivers/vfio/vfio_iommu_type1.c `vfio_iommu_type1_dirty_pages`:
 * START → `vfio_dma_bitmap_alloc_all`, STOP → `vfio_dma_bitmap_free_all`, GET_BITMAP → `vfio_iova_dirty_bitmap`) and
 * the GET_DIRTY_BITMAP flag of VFIO_IOMMU_UNMAP_DMA (`vfio_iommu_type1_unmap_dma`'s wrapper checks, then a report per
 * dma before it is removed, `vfio_dma_do_unmap`). Spec: vfio-type1-spec.md §2.5, §2.7.
 *
 * Theory of operation. Type1 has no hardware dirty bits: while tracking is on it reports every page of every IOMMU
 * mapped dma dirty as long as a group that never pinned pages through the external API is attached (a vfio-pci
 * device may write anywhere). With emulated (mdev) groups only — pinned-page dirty scope — only what the drivers
 * touched is dirty: pages externally pinned (while pinned, and any time they were since the last report) and pages
 * written by `vfio_dma_rw` (hw/type1_dirty.ts, hw/type1_vpfn.ts); a hardware group leaving while tracking makes every
 * page dirty once (`vfio_iommu_populate_bitmap_full`). The bitmap's layout quirks (shift,
 * whole-word OR, the tail left past a dma's bits) are the kernel's and are kept. The caller's `data[]` tails (the
 * `vfio_bitmap` after the unmap struct, the `vfio_iommu_type1_dirty_bitmap_get` after the dirty struct) are read
 * from the trace's named `data` member or from its raw `tail` bytes (docs/trace-format-type1.md); bytes the trace does
 * not give read as 0.
 *
 * Version delta (header `kernel`): before the 2025 overflow series (≈v6.18) a wrapping GET_BITMAP range is EINVAL
 * (`range.iova + range.size < range.iova`) instead of size 0 → EINVAL then EOVERFLOW.
 */
import type { DomainEvent } from '../events/domain.js';
import type { Arg } from '../events/resolve.js';
import { accessOk, DIRTY_BITMAP_PAGES_MAX, ffs, updateUserBitmap, UserBitmap, verifyBitmapSize } from '../hw/type1_dirty.js';
import { U64_MAX } from '../hw/u64.js';
import { bisectWhy, dmaLast, dmasIn, type1PageSize, type Type1Iommu, type VfioContainer, type VfioDma } from '../hw/vfio_dma.js';
import { fail, succeed, unmodelled, type Kernel, type Out, type Step } from './ioctl.js';
import type { IoctlInput } from './main.js';
import { kernelAtLeast } from './version.js';

const START = 1n, STOP = 2n, GET_BITMAP = 4n;
const hex = (v: bigint): string => `0x${v.toString(16)}`;
const fn = 'vfio_iommu_type1.c vfio_iommu_type1_dirty_pages';

/** A `struct vfio_bitmap` as the kernel copied it in. */
export interface BitmapArg {
  readonly pgsize: bigint;
  readonly size: bigint;
  readonly data: bigint | Uint8Array;
}

const u64At = (b: Uint8Array, at: number): bigint => new DataView(b.buffer, b.byteOffset).getBigUint64(at, true);
/** `copy_from_user(&x, arg + minsz, len)`: the raw `tail`, zero-extended (bytes the trace does not give read as 0). */
function tailBytes(a: Arg, len: number): Uint8Array {
  const out = new Uint8Array(len);
  if (a.tail !== undefined) out.set(a.tail.subarray(0, len));
  return out;
}
function bitmapOf(v: Arg, at: number, raw: Uint8Array | undefined): BitmapArg | string {
  if (raw !== undefined) return { pgsize: u64At(raw, at), size: u64At(raw, at + 8), data: u64At(raw, at + 16) };
  const d = v.v['data'];
  if (d !== undefined && typeof d !== 'bigint' && !(d instanceof Uint8Array)) return 'a vfio_bitmap data given as driver-data fields';
  const num = (name: string): bigint => (typeof v.v[name] === 'bigint' ? (v.v[name] as bigint) : 0n);
  return { pgsize: num('pgsize'), size: num('size'), data: d ?? 0n };
}
const member = (a: Arg): Arg | undefined => {
  const v = a.v['data'];
  return typeof v === 'object' && v !== null && 'def' in v ? v : undefined;
};

/** The `vfio_bitmap` at `arg + 24` of an UNMAP_DMA. */
function unmapBitmap(a: Arg): BitmapArg | string {
  const m = member(a);
  return m !== undefined ? bitmapOf(m, 0, undefined) : bitmapOf(a, 0, tailBytes(a, 24));
}

/** `vfio_iommu_type1_unmap_dma`'s checks of a GET_DIRTY_BITMAP argument, after the flag checks: the bitmap, or a failure. */
export function unmapDirtyArgs(a: Arg, size: bigint): { bitmap: BitmapArg } | { done: Step } {
  const wfn = 'vfio_iommu_type1.c vfio_iommu_type1_unmap_dma';
  if (a.size < 48) return { done: fail('EINVAL', `${wfn}: GET_DIRTY_BITMAP needs argsz >= 48 (the struct and a vfio_bitmap), got ${a.size}`) };
  const b = unmapBitmap(a);
  if (typeof b === 'string') return { done: unmodelled(`VFIO_IOMMU_UNMAP_DMA with ${b}`) };
  const ao = accessOk(b.data, b.size);
  if (ao !== undefined) return { done: fail('EINVAL', `${wfn}: bitmap.data: ${ao}`) };
  const v = verifyBitmap(size, b.pgsize, b.size);
  if (v !== undefined) return { done: fail('EINVAL', `${wfn}: ${v}`) };
  return { bitmap: b };
}

/** `verify_bitmap_size(size >> __ffs(pgsize), bitmap_size)`; `__ffs(0)` is undefined, and every path then ends in EINVAL. */
function verifyBitmap(size: bigint, pgsize: bigint, bsize: bigint): string | undefined {
  if (pgsize === 0n) return 'bitmap.pgsize is 0 (__ffs(0) is undefined; the call ends in EINVAL on every path: verify_bitmap_size or the pgsize check)';
  return verifyBitmapSize(size >> ffs(pgsize), bsize);
}

/** The report of one dma (`update_user_bitmap` then the clear and re-seed); events, or why it stopped. */
export function reportDma(c: VfioContainer, i: Type1Iommu, user: UserBitmap, d: VfioDma, base: bigint):
  { events: DomainEvent[]; fault: string | undefined } | { unmodelled: string } {
  // num_non_pinned_groups && dma->iommu_mapped: a vfio-pci group never pins through the external API, so every
  // hardware group counts; else the bits external pins, dma_rw writes and a group leaving set.
  const full = (i.domainGroups.length > 0 && d.iommuMapped) || d.dirtyFull;
  const r = updateUserBitmap(user, d, base, ffs(type1PageSize(i)), full, d.dirty);
  if (r === undefined) return { unmodelled: `a dirty bitmap of the ${hex(d.size)}-byte vfio_dma at ${hex(d.iova)} (larger than the model builds)` };
  // The report clears the dma's bits and re-seeds its external pins (evolve), so it is an event whenever bits were set.
  const same = r.tail === d.bitmapTail && d.dirty.length === 0 && !d.dirtyFull;
  const events: DomainEvent[] = same ? [] : [{ type: 'VfioDmaBitmapReported', container: c.id, iova: d.iova, tail: r.tail }];
  return { events, fault: r.fault };
}

/** The bitmap's result as `out` when the trace gave it inline (it names no user memory). */
export const inlineOut = (user: UserBitmap, wrap: (data: Uint8Array) => Out): Out | undefined => (user.inline === undefined ? undefined : wrap(user.inline));

/** VFIO_IOMMU_DIRTY_PAGES on a container with type1 instance `i`. Nothing of the struct is copied back. */
export function vfio_iommu_type1_dirty_pages(k: Kernel, c: VfioContainer, i: Type1Iommu, input: IoctlInput): Step {
  if (!i.v2) return fail('EACCES', `${fn}: the container is type1 v1 (dirty tracking is v2 only)`);
  if (input.k === 'null') return fail('EFAULT', `${fn}: copy_from_user of 8 bytes from a NULL arg`);
  if (input.k !== 'struct') return unmodelled('VFIO_IOMMU_DIRTY_PAGES with a raw pointer argument');
  const a = input.a;
  const flags = typeof a.v['flags'] === 'bigint' ? a.v['flags'] : 0n;
  if (a.size < 8 || (flags & ~(START | STOP | GET_BITMAP)) !== 0n) return fail('EINVAL', `${fn}: argsz ${a.size} < 8 or unknown flags ${hex(flags)}`);
  if (flags !== START && flags !== STOP && flags !== GET_BITMAP) return fail('EINVAL', `${fn}: flags ${hex(flags)} is not exactly one of START, STOP, GET_BITMAP (__ffs(flags) != __fls(flags))`);
  const pg = type1PageSize(i);
  if (flags === START) {
    if (i.dirtyTracking) return succeed(`${fn}: START: tracking is already on`);
    // vfio_dma_bitmap_alloc_all: all or nothing.
    for (const n of i.dmas.inOrder())
      if (n.value.size / pg > DIRTY_BITMAP_PAGES_MAX)
        return fail('EINVAL', `${fn}: START: vfio_dma_bitmap_alloc: the vfio_dma [${hex(n.start)}, ${hex(n.last)}] has ${n.value.size / pg} pages > DIRTY_BITMAP_PAGES_MAX; no bitmap is kept, tracking stays off`);
    return succeed(`${fn}: START: a zeroed bitmap for each of ${i.dmas.size} vfio_dma(s), tracking on`, undefined, [{ type: 'Type1DirtyTrackingSet', container: c.id, enabled: true }]);
  }
  if (flags === STOP)
    return i.dirtyTracking ? succeed(`${fn}: STOP: bitmaps freed, tracking off`, undefined, [{ type: 'Type1DirtyTrackingSet', container: c.id, enabled: false }])
      : succeed(`${fn}: STOP: tracking is already off`);
  return getBitmap(k, c, i, a);
}

/** GET_BITMAP: the checks in the kernel's order, then one report per dma starting in the range. */
function getBitmap(k: Kernel, c: VfioContainer, i: Type1Iommu, a: Arg): Step {
  if (a.size - 8 < 40) return fail('EINVAL', `${fn}: GET_BITMAP: argsz - 8 = ${a.size - 8} < sizeof(struct vfio_iommu_type1_dirty_bitmap_get) 40`);
  const m = member(a);
  const raw = m === undefined ? tailBytes(a, 40) : undefined;
  const iova = m !== undefined && typeof m.v['iova'] === 'bigint' ? m.v['iova'] : raw !== undefined ? u64At(raw, 0) : 0n;
  const size = m !== undefined && typeof m.v['size'] === 'bigint' ? m.v['size'] : raw !== undefined ? u64At(raw, 8) : 0n;
  const bm = m?.v['bitmap'];
  const b = raw !== undefined ? bitmapOf(a, 16, raw) : typeof bm === 'object' && bm !== null && 'def' in bm ? bitmapOf(bm, 0, undefined) : { pgsize: 0n, size: 0n, data: 0n };
  if (typeof b === 'string') return unmodelled(`VFIO_IOMMU_DIRTY_PAGES GET_BITMAP with ${b}`);
  if (kernelAtLeast(k.header, 6, 18)) {
    if (size === 0n) return fail('EINVAL', `${fn}: GET_BITMAP: range.size 0`);
    if (iova + size - 1n > U64_MAX) return fail('EOVERFLOW', `${fn}: GET_BITMAP: range.iova ${hex(iova)} + range.size - 1 overflows (check_add_overflow)`);
  } else if (iova + size > U64_MAX) return fail('EINVAL', `${fn}: GET_BITMAP: range.iova + range.size wraps (kernel ${k.header.kernel ?? ''} predates the EOVERFLOW checks)`);
  const ao = accessOk(b.data, b.size);
  if (ao !== undefined) return fail('EINVAL', `${fn}: GET_BITMAP: range.bitmap.data: ${ao}`);
  const v = verifyBitmap(size, b.pgsize, b.size);
  if (v !== undefined) return fail('EINVAL', `${fn}: GET_BITMAP: ${v}`);
  const pg = type1PageSize(i);
  if (b.pgsize !== pg) return fail('EINVAL', `${fn}: GET_BITMAP: bitmap.pgsize ${hex(b.pgsize)} is not the smallest IOMMU page ${hex(pg)}`);
  if ((iova & (pg - 1n)) !== 0n) return fail('EINVAL', `${fn}: GET_BITMAP: range.iova ${hex(iova)} is not aligned to ${hex(pg)}`);
  if ((size & (pg - 1n)) !== 0n) return fail('EINVAL', `${fn}: GET_BITMAP: range.size ${hex(size)} is not aligned to ${hex(pg)}`);
  if (!i.dirtyTracking) return fail('EINVAL', `${fn}: GET_BITMAP: dirty tracking is off (no START)`);
  const last = iova + size - 1n;
  const bis = bisectWhy(i, iova, last);
  if (bis !== undefined) return fail('EINVAL', `vfio_iommu_type1.c vfio_iova_dirty_bitmap: the range may not bisect a mapping: ${bis}`);
  const user = new UserBitmap(k.st, b.data);
  const events: DomainEvent[] = [];
  let n = 0;
  for (const d of dmasIn(i, iova, last)) {
    if (d.iova < iova) continue;
    const r = reportDma(c, i, user, d, iova);
    if ('unmodelled' in r) return unmodelled(r.unmodelled);
    events.push(...r.events);
    if (r.fault !== undefined) return fail('EFAULT', `vfio_iommu_type1.c update_user_bitmap: the vfio_dma [${hex(d.iova)}, ${hex(dmaLast(d))}]: ${r.fault}`, [...user.events, ...events]);
    n++;
  }
  const scope = i.domainGroups.length > 0 ? ', every page dirty (a vfio-pci group that pins no pages is attached: num_non_pinned_groups)' : ', the pages the mdev drivers pinned or wrote (pinned-page dirty scope)';
  return succeed(`vfio_iommu_type1.c vfio_iova_dirty_bitmap: ${n} vfio_dma(s) in [${hex(iova)}, ${hex(last)}] reported${n > 0 ? scope : ''}`,
    inlineOut(user, (data) => ({ data: { bitmap: { data } } })), [...user.events, ...events]);
}
