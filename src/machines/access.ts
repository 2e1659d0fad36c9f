/**
 * iommufd accesses (drivers/iommu/iommufd/device.c `iommufd_access_*`): the in-kernel API emulated devices (mdev
 * drivers, the selftest's test access) use to pin and read/write IOAS memory without an IOMMU domain.
 *
 * Theory of operation. An access attaches to one IOAS and raises its alignment (PAGE_SIZE when it pins pages). A pin
 * item holds page ranges of the areas it covers; those pages stay pinned until the item is unpinned, whatever the
 * domains do. An unmap that meets an area with access pins marks it `prevent_access`, drops its locks and asks every
 * access of the IOAS to unpin (the driver's `unmap` callback), then rescans; after 100 rounds without progress it
 * gives up with EDEADLOCK.
 */
import type { DomainEvent } from '../events/domain.js';
import type { TraceHeader } from '../events/header.js';
import { contigAreas, describeArea, IOMMU_READ, IOMMU_WRITE, type Iopt } from '../hw/io_pagetable.js';
import { ioptAlignment, pinPagesRange, StepScratch, unpinPagesEvents } from '../hw/iopt_domains.js';
import type { Failure } from '../hw/iopt_ops.js';
import { iopt_pages_rw_access, type PagesRw } from '../hw/pages_rw.js';
import { denseRuns, gapsOf, RangeMap } from '../hw/range_map.js';
import { mmDraft } from '../hw/mm.js';
import { U64_MAX } from '../hw/u64.js';
import type { AccessPiece } from '../projections/access.js';
import type { IommufdCtx, KObject, State } from '../projections/state.js';

export const IOMMUFD_ACCESS_RW_WRITE = 1;
const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** `iommufd_access_attach` → `iopt_add_access`: the alignment may rise, and every area must then conform. */
export function accessAttachEvents(st: State, ctx: IommufdCtx, access: KObject, ioas: KObject): DomainEvent[] | Failure {
  const a = access.access!;
  const i = ioas.ioas!.iopt;
  const align = a.needsPinPages ? BigInt(st.pageSize) : 1n;
  const accesses = new Map(i.accesses).set(access.id, align);
  const want = ioptAlignment(st, i, { accesses });
  if (want > i.iovaAlignment) {
    for (const n of i.areas.inOrder()) {
      const ar = n.value;
      if (ar.start % want !== 0n || (ar.last + 1n) % want !== 0n || BigInt(ar.pageOffset) % want !== 0n)
        return { errno: 'EADDRINUSE', why: `io_pagetable.c iopt_add_access: area ${describeArea(ar)} is not aligned to the access's ${hex(want)}` };
    }
  }
  return [
    { type: 'AccessAttached', ctx: ctx.id, id: access.id, ioas: ioas.id, alignment: align, iovaAlignment: want },
    { type: 'ObjectRefTaken', ctx: ctx.id, id: ioas.id, by: access.id },
  ];
}

/** `iommufd_access_detach`: leave the IOAS (its alignment may shrink) and drop the reference on it. */
export function accessDetachEvents(st: State, ctx: IommufdCtx, access: KObject): DomainEvent[] {
  const ioasId = access.access!.ioas;
  if (ioasId === 0) return [];
  const i = ctx.objects.get(ioasId)!.ioas!.iopt;
  const accesses = new Map(i.accesses);
  accesses.delete(access.id);
  return [
    { type: 'AccessDetached', ctx: ctx.id, id: access.id, ioas: ioasId, iovaAlignment: ioptAlignment(st, i, { accesses }) },
    { type: 'ObjectRefDropped', ctx: ctx.id, id: ioasId, by: access.id },
  ];
}

/**
 * `iommufd_access_pin_pages`: every contiguous area piece must be whole pages of its pages (but at the range's ends),
 * not being unmapped, and allow the access's direction. Pages not pinned yet are pinned and charged.
 */
export function accessPinEvents(st: State, h: TraceHeader, ctx: IommufdCtx, access: KObject, iova: bigint, length: bigint, flags: number, scratch = new StepScratch()): DomainEvent[] | Failure {
  const fn = 'device.c iommufd_access_pin_pages';
  if (length === 0n) return { errno: 'EINVAL', why: `${fn}: length 0` };
  const last = iova + length - 1n;
  if (last > U64_MAX) return { errno: 'EOVERFLOW', why: `${fn}: iova + length - 1 overflows` };
  const a = access.access!;
  if (a.ioas === 0) return { errno: 'ENOENT', why: `${fn}: access ${access.id} is not attached to an IOAS` };
  const i: Iopt = ctx.objects.get(a.ioas)!.ioas!.iopt;
  const page = BigInt(st.pageSize);
  const w = contigAreas(i, iova, last);
  const events: DomainEvent[] = [];
  const pieces: AccessPiece[] = [];
  for (const area of w.areas) {
    const from = area.start > iova ? area.start : iova;
    const to = area.last < last ? area.last : last;
    const byteFrom = from - area.start + BigInt(area.pageOffset), byteTo = to - area.start + BigInt(area.pageOffset);
    if (area.preventAccess) return { errno: 'EINVAL', why: `${fn}: area ${describeArea(area)} is being unmapped (prevent_access)` };
    if (byteFrom % page !== 0n || (to !== last && (byteTo + 1n) % page !== 0n))
      return { errno: 'EINVAL', why: `${fn}: [${hex(from)}, ${hex(to)}] of area ${describeArea(area)} does not cover whole pages` };
    if ((flags & IOMMUFD_ACCESS_RW_WRITE) !== 0 ? (area.prot & IOMMU_WRITE) === 0 : (area.prot & IOMMU_READ) === 0)
      return { errno: 'EPERM', why: `${fn}: area ${describeArea(area)} is not mapped for ${(flags & IOMMUFD_ACCESS_RW_WRITE) !== 0 ? 'write' : 'read'}` };
    const p = st.pages.get(area.pages)!;
    if ((flags & IOMMUFD_ACCESS_RW_WRITE) !== 0 && !p.writable) return { errno: 'EPERM', why: `${fn}: the pages of area ${describeArea(area)} are read-only` };
    const start = area.pagesStart + Number(byteFrom / page), lastIdx = area.pagesStart + Number(byteTo / page);
    const pinned = pinPagesRange(st, h, p, start, lastIdx, scratch);
    if (!Array.isArray(pinned)) return pinned;
    events.push(...pinned);
    pieces.push({ area: area.id, pages: p.id, start, last: lastIdx });
  }
  if (w.gap !== undefined) return { errno: 'ENOENT', why: `${fn}: ${w.gap}` };
  events.push({ type: 'AccessPinned', ctx: ctx.id, id: access.id, item: a.nextItem, iova, length, pieces });
  return events;
}

/**
 * `iommufd_access_rw`: copy `rw.data` to or from [iova, iova + length) piece by piece through each area's pages
 * (`iopt_pages_rw_access`). The checks of an area run when the walk reaches it, so a copy that fails part way has
 * already stored the bytes of the pieces before (and their faults stay); ENOENT for a gap comes last.
 */
export function accessRwEvents(st: State, ctx: IommufdCtx, access: KObject, iova: bigint, rw: PagesRw, d = mmDraft(st.mm, st.pageSize)): DomainEvent[] | (Failure & { events: DomainEvent[] }) {
  const fn = 'device.c iommufd_access_rw';
  const length = BigInt(rw.data.length);
  const none: DomainEvent[] = [];
  if (length === 0n) return { errno: 'EINVAL', why: `${fn}: length 0`, events: none };
  const last = iova + length - 1n;
  if (last > U64_MAX) return { errno: 'EOVERFLOW', why: `${fn}: iova + length - 1 overflows`, events: none };
  const a = access.access!;
  if (a.ioas === 0) return { errno: 'ENOENT', why: `${fn}: access ${access.id} is not attached to an IOAS`, events: none };
  const i: Iopt = ctx.objects.get(a.ioas)!.ioas!.iopt;
  const w = contigAreas(i, iova, last);
  const events: DomainEvent[] = [];
  for (const area of w.areas) {
    const from = area.start > iova ? area.start : iova;
    const to = area.last < last ? area.last : last;
    if (area.preventAccess) return { errno: 'EINVAL', why: `${fn}: area ${describeArea(area)} is being unmapped (prevent_access)`, events };
    if ((rw.write ? area.prot & IOMMU_WRITE : area.prot & IOMMU_READ) === 0)
      return { errno: 'EPERM', why: `${fn}: area ${describeArea(area)} is not mapped for ${rw.write ? 'write' : 'read'}`, events };
    const startByte = from - area.start + BigInt(area.pageOffset) + BigInt(area.pagesStart) * BigInt(st.pageSize);
    const at = Number(from - iova), n = Number(to - from) + 1;
    const r = iopt_pages_rw_access(st, st.pages.get(area.pages)!, startByte, { ...rw, data: rw.data.subarray(at, at + n) }, d);
    events.push(...r.events);
    if ('errno' in r) return { errno: r.errno, why: `${fn}: area ${describeArea(area)}: ${r.why}`, events };
  }
  if (w.gap !== undefined) return { errno: 'ENOENT', why: `${fn}: ${w.gap}`, events };
  return events;
}

/** `iommufd_access_unpin_pages` of one item: pages that no filled area and no other item hold are unpinned. */
export function accessUnpinEvents(st: State, ctx: IommufdCtx, access: KObject, item: number, scratch = new AccessScratch()): DomainEvent[] {
  const it = access.access!.items.get(item);
  if (it === undefined) return [];
  const events: DomainEvent[] = [{ type: 'AccessUnpinned', ctx: ctx.id, id: access.id, item }];
  for (const piece of it.pieces) {
    const p = st.pages.get(piece.pages)!;
    let n = 0;
    for (const r of p.accessUsers.runs(piece.start, piece.last)) {
      for (const d of scratch.droppedRuns(p.id, r.start, r.last)) {
        if (r.count - d.count !== 1) continue;
        for (const f of gapsOf(p.fillUsers.runs(d.start, d.last), d.start, d.last)) {
          events.push(...unpinPagesEvents(st, p, f.start, f.last, scratch.step));
          n += f.last - f.start + 1;
        }
      }
    }
    scratch.drop(p.id, piece.start, piece.last);
    if (n > 0) events.push({ type: 'AccountingUncharged', mode: p.accountMode, npages: n });
  }
  return events;
}

/** Items unpinned earlier in the same step (the unmap callback can unpin several), and the step's mm draft. */
export class AccessScratch {
  readonly step = new StepScratch();
  /** Per pages id: how many item pieces this step already dropped over each page index. */
  private readonly m = new Map<number, RangeMap>();
  /** [start, last] cut where the count of already-dropped pieces changes, with that count (0 included). */
  droppedRuns(p: number, start: number, last: number): Iterable<{ start: number; last: number; count: number }> {
    return denseRuns(this.m.get(p), start, last);
  }
  drop(p: number, s: number, l: number): void {
    let m = this.m.get(p);
    if (m === undefined) this.m.set(p, (m = new RangeMap()));
    m.add(s, l, 1);
  }
}

/**
 * `iommufd_access_notify_unmap`: every access attached to the IOAS is told, in the order they attached; the selftest
 * access is the only driver modelled.
 */
export function notifyAccessesEvents(st: State, ctx: IommufdCtx, ioas: number, iova: bigint, last: bigint): DomainEvent[] {
  const i = ctx.objects.get(ioas)?.ioas?.iopt;
  if (i === undefined) return [];
  const scratch = new AccessScratch();
  const out: DomainEvent[] = [];
  for (const id of i.accesses.keys()) {
    const acc = ctx.objects.get(id);
    if (acc?.access !== undefined) out.push(...testAccessUnmapEvents(st, ctx, acc, iova, last, scratch));
  }
  return out;
}

/** The selftest access's `unmap` callback (`iommufd_test_access_unmap`): it unpins every item overlapping [iova, last]. */
export function testAccessUnmapEvents(st: State, ctx: IommufdCtx, access: KObject, iova: bigint, last: bigint, scratch = new AccessScratch()): DomainEvent[] {
  const out: DomainEvent[] = [];
  for (const [id, it] of access.access!.items)
    if (iova <= it.iova + it.length - 1n && last >= it.iova) out.push(...accessUnpinEvents(st, ctx, access, id, scratch));
  return out;
}

/**
 * Closing a selftest access's file (`iommufd_test_staccess_release`): unpin everything, then `iommufd_access_destroy`
 * (leave the IOAS, drop the driver's reference and the context file reference).
 */
export function accessReleaseEvents(st: State, ctx: IommufdCtx, access: KObject): DomainEvent[] {
  return [
    ...testAccessUnmapEvents(st, ctx, access, 0n, U64_MAX),
    ...accessDetachEvents(st, ctx, access),
    { type: 'ObjectRefDropped', ctx: ctx.id, id: access.id, by: 0 },
    { type: 'ObjectDestroyed', ctx: ctx.id, id: access.id },
    { type: 'CtxRefDropped', ctx: ctx.id },
  ];
}
