/**
 * The io_pagetable operations that change it (io_pagetable.c `iopt_map_pages`, `iopt_unmap_iova_range`,
 * `iopt_get_pages`, `iopt_set_allow_iova`, `iopt_reserve_iova`), written as decisions: they read the state and
 * return the domain events, yielding where the kernel drops `iova_rwsem`.
 *
 * MAP is three steps, as in the kernel: reserve the IOVA with unpublished areas (under iova_rwsem), fill the
 * domains (under domains_rwsem only), publish (iova_rwsem again). UNMAP takes one area at a time: unpublish it,
 * drop iova_rwsem to unfill the domains, then remove it; so it is not atomic, and an error on a later area leaves the
 * earlier ones unmapped.
 */
import type { DomainEvent } from '../events/domain.js';
import type { Errno } from '../events/errno.js';
import type { State } from '../projections/state.js';
import { areaLength, contigAreas, describeArea, type Iopt } from './io_pagetable.js';
import { iopt_alloc_iova, iopt_check_iova } from './iova_alloc.js';
import type { IoptPages } from './pages.js';
import { U64_MAX } from './u64.js';
import type { TraceHeader } from '../events/header.js';
import { fillArea, StepScratch, unfillArea } from './iopt_domains.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

export interface Failure { readonly errno: Errno; readonly why: string; readonly undo?: readonly DomainEvent[] }
export const isFailure = (x: unknown): x is Failure => typeof x === 'object' && x !== null && 'errno' in x;

/** One element of an `iopt_pages_list`: a byte range of some pages, new (MAP) or shared (COPY). */
export interface PagesSlice {
  readonly pages: IoptPages;
  /** Set when this MAP creates the pages: the event that does. */
  readonly created: DomainEvent | undefined;
  readonly startByte: bigint;
  readonly length: bigint;
}

/** Where an IOAS lives, for the events that name it. */
export interface IoasRef { readonly ctx: number; readonly ioas: number }

/** The THP size the allocator clamps alignment to (x86-64 HPAGE_PMD_SIZE, with CONFIG_TRANSPARENT_HUGEPAGE). */
export const HPAGE_SIZE = 2n * 1024n * 1024n;

/**
 * `iopt_alloc_area_pages` (the IOVA reservation): checks the length against `iova_alignment`, chooses or checks
 * the IOVA and lays the areas back to back. Returns the AreaReserved events, or the failure; nothing is emitted on
 * failure, as the kernel removes what it inserted before dropping the lock.
 */
export function iopt_alloc_area_pages(
  st: State, where: IoasRef, i: Iopt, list: readonly PagesSlice[], length: bigint, fixedIova: bigint | undefined,
  prot: number, line: number,
): { iova: bigint; events: DomainEvent[] } | Failure {
  const fn = 'io_pagetable.c iopt_alloc_area_pages';
  const page = BigInt(st.pageSize);
  if (length === 0n || length % i.iovaAlignment !== 0n)
    return { errno: 'EINVAL', why: `${fn}: length ${hex(length)} is 0 or not a multiple of the IOAS iova_alignment ${hex(i.iovaAlignment)}` };
  const first = list[0]!;
  const hint = (first.pages.kind === 'user' ? first.pages.uptr : first.pages.fileStart) + first.startByte;
  const r = fixedIova === undefined ? iopt_alloc_iova(i, hint, length, st.pageSize, HPAGE_SIZE) : iopt_check_iova(i, fixedIova, length);
  if ('errno' in r) return r;
  const events: DomainEvent[] = [];
  let iova = r.iova;
  let area = st.nextArea;
  for (const elm of list) {
    // iopt_insert_area
    if ((prot & 2) !== 0 && !elm.pages.writable)
      return { errno: 'EPERM', why: 'io_pagetable.c iopt_insert_area: a writable mapping of pages that were mapped read-only' };
    const pageOffset = elm.startByte % page;
    if (pageOffset % i.iovaAlignment !== 0n)
      return { errno: 'EINVAL', why: `io_pagetable.c iopt_insert_area: the user address's offset ${hex(pageOffset)} in its page is not a multiple of iova_alignment ${hex(i.iovaAlignment)}` };
    const last = iova + elm.length - 1n;
    if (last > U64_MAX) return { errno: 'EOVERFLOW', why: 'io_pagetable.c iopt_insert_area: IOVA + length - 1 overflows' };
    events.push({
      type: 'AreaReserved', ctx: where.ctx, ioas: where.ioas, area: area++, start: iova, last, pages: elm.pages.id,
      pagesStart: Number(elm.startByte / page), pagesLast: Number((elm.startByte + elm.length - 1n) / page),
      pageOffset: Number(pageOffset), prot, mappedAt: line,
    });
    iova = last + 1n;
  }
  return { iova: r.iova, events };
}

/**
 * `iopt_map_pages`: reserve, fill the domains, publish. The `created` events of new pages go out with the
 * reservation, so pages that fail to get an IOVA are never seen.
 */
export function* iopt_map_pages(
  read: () => { st: State; iopt: Iopt }, h: TraceHeader, where: IoasRef, list: readonly PagesSlice[], length: bigint,
  fixedIova: bigint | undefined, prot: number, line: number,
): Generator<readonly DomainEvent[], { iova: bigint; publish: DomainEvent[] } | Failure, void> {
  const { st, iopt } = read();
  const r = iopt_alloc_area_pages(st, where, iopt, list, length, fixedIova, prot, line);
  if (isFailure(r)) return r;
  const created = list.flatMap((e) => (e.created ? [e.created] : []));
  yield [...created, ...r.events];
  // iopt_fill_domains_pages, under domains_rwsem: the domains are the ones attached now, not at reservation.
  const now = read();
  const scratch = new StepScratch();
  const fill: DomainEvent[] = [];
  const ids = r.events.flatMap((e) => (e.type === 'AreaReserved' ? [e.area] : []));
  for (const id of ids) {
    const a = now.iopt.areaById.get(id)!.value;
    const f = fillArea(now.st, h, a, now.iopt.domains, true, scratch);
    if (isFailure(f)) {
      // The undo (iopt_fill_domains_pages err_undo) unfills what this call filled; nothing was published.
      return { ...f, undo: [...(f.undo ?? []), ...abortAreas(now.st, where, ids)] };
    }
    fill.push(...f);
  }
  yield fill;
  return { iova: r.iova, publish: publishEvents(where, r.events) };
}

/** `iopt_abort_area` + `iopt_put_pages` for areas a failed MAP reserved. */
function abortAreas(st: State, where: IoasRef, areas: readonly number[]): DomainEvent[] {
  const out: DomainEvent[] = [];
  const dropped = new Map<number, number>();
  for (const id of areas) {
    const i = st.ctxs.get(where.ctx)?.objects.get(where.ioas)?.ioas?.iopt;
    const a = i?.areaById.get(id)?.value;
    if (a === undefined) continue;
    const d = dropped.get(a.pages) ?? 0;
    out.push({ type: 'AreaRemoved', ctx: where.ctx, ioas: where.ioas, area: id }, ...putPages(st, a.pages, d));
    dropped.set(a.pages, d + 1);
  }
  return out;
}

/** The events that publish the areas a reservation created. */
export const publishEvents = (where: IoasRef, reserved: readonly DomainEvent[]): DomainEvent[] =>
  reserved.flatMap((e) => (e.type === 'AreaReserved' ? [{ type: 'AreaPublished' as const, ctx: where.ctx, ioas: where.ioas, area: e.area }] : []));

/** Dropping a reference on pages: the last one releases them. `extra` counts references already dropped. */
export function putPages(st: State, pages: number, dropped: number): DomainEvent[] {
  const p = st.pages.get(pages);
  return p !== undefined && p.refs - dropped === 1 ? [{ type: 'PagesReleased', pages }] : [];
}

export interface UnmapResult { readonly unmapped: bigint; readonly failure: Failure | undefined }

/**
 * `iopt_unmap_iova_range` (newest: `rc = 0` before the loop, so an empty range succeeds with 0 bytes). Each
 * area: unpublish, [unfill the domains], remove and put its pages.
 */
/** `iommufd_access_notify_unmap`: asks every access of the IOAS to stop using [iova, last]; returns what they do. */
export type NotifyUnmap = (iova: bigint, last: bigint) => DomainEvent[];
const MAX_NOTIFY_ROUNDS = 100;

export function* iopt_unmap_iova_range(
  read: () => { st: State; iopt: Iopt }, where: IoasRef, start: bigint, last: bigint, notify: NotifyUnmap = () => [],
): Generator<readonly DomainEvent[], UnmapResult, void> {
  const fn = 'io_pagetable.c iopt_unmap_iova_range';
  let unmapped = 0n;
  let rounds = 0;
  for (;;) {
    const { st, iopt } = read();
    const n = iopt.areas.iterFirst(start, last);
    if (n === undefined) return { unmapped, failure: undefined };
    const area = n.value;
    if (!area.published) return { unmapped, failure: { errno: 'EBUSY', why: `${fn}: area ${describeArea(area)} is being mapped or unmapped by another thread` } };
    if (area.numLocks > 0) return { unmapped, failure: { errno: 'EBUSY', why: `${fn}: area ${describeArea(area)} is pinned by an internal access` } };
    if (area.start < start || area.last > last)
      return { unmapped, failure: { errno: 'ENOENT', why: `${fn}: [${hex(start)}, ${hex(last)}] cuts area ${describeArea(area)}; unmap must cover whole areas` } };
    if (area.numAccesses > 0) {
      // An internal access (a HW queue's) cannot be asked to unpin: the unmap fails before prevent_access is set.
      const owner = [...iopt.accesses.keys()].find((id) => st.ctxs.get(where.ctx)?.objects.get(id)?.kind === 'HW_QUEUE');
      if (owner !== undefined)
        return { unmapped, failure: { errno: 'EBUSY', why: `${fn}: area ${describeArea(area)} is pinned and HW queue ${owner} holds an internal access on the IOAS` } };
      // The counter only restarts when the scan moves on to an area that does not begin where it stood.
      if (area.start !== start) rounds = 0;
      if (++rounds > MAX_NOTIFY_ROUNDS)
        return { unmapped, failure: { errno: 'EDEADLOCK', why: `${fn}: accesses still pin area ${describeArea(area)} after ${MAX_NOTIFY_ROUNDS} unmap notifications` } };
      start = area.start;
      const prevent: DomainEvent[] = area.preventAccess ? [] : [{ type: 'AreaAccessPrevented', ctx: where.ctx, ioas: where.ioas, area: area.id }];
      yield prevent;
      // Both locks are dropped while the drivers are told (iommufd_access_notify_unmap), then the scan restarts.
      yield notify(area.start, area.last);
      continue;
    }
    yield [{ type: 'AreaUnpublished', ctx: where.ctx, ioas: where.ioas, area: area.id }];
    // iopt_area_unfill_domains without iova_rwsem: unmap from every domain, then unpin (and flush, for IOTLBs).
    const now = read();
    yield [
      ...unfillArea(now.st, area, now.iopt.domains, now.iopt.domains.length > 0),
      { type: 'AreaRemoved', ctx: where.ctx, ioas: where.ioas, area: area.id }, ...putPages(now.st, area.pages, 0),
    ];
    void st;
    unmapped += areaLength(area);
    if (area.last >= last) return { unmapped, failure: undefined };
    start = area.last + 1n;
  }
}

/** `iopt_get_pages`: the slices of the areas covering [iova, iova+length-1], contiguous and published. */
export function iopt_get_pages(st: State, i: Iopt, iova: bigint, length: bigint): PagesSlice[] | Failure {
  const fn = 'io_pagetable.c iopt_get_pages';
  if (length === 0n) return { errno: 'EINVAL', why: `${fn}: length 0` };
  const last = iova + length - 1n;
  if (last > U64_MAX) return { errno: 'EOVERFLOW', why: `${fn}: IOVA + length - 1 overflows` };
  const w = contigAreas(i, iova, last);
  if (w.gap !== undefined) return { errno: 'ENOENT', why: `${fn}: [${hex(iova)}, ${hex(last)}] is not fully mapped: ${w.gap}` };
  const page = BigInt(st.pageSize);
  return w.areas.map((a) => {
    const from = a.start > iova ? a.start : iova;
    const to = a.last < last ? a.last : last;
    return {
      pages: st.pages.get(a.pages)!, created: undefined,
      startByte: from - a.start + BigInt(a.pageOffset) + BigInt(a.pagesStart) * page, length: to - from + 1n,
    };
  });
}

/** `iopt_reserve_iova`: a reserved range may not cover an area (even a half-built one) or an allowed range. */
export function iopt_reserve_iova(i: Iopt, start: bigint, last: bigint): Failure | undefined {
  const a = i.areas.iterFirst(start, last);
  if (a !== undefined) return { errno: 'EADDRINUSE', why: `io_pagetable.c iopt_reserve_iova: [${hex(start)}, ${hex(last)}] covers area ${describeArea(a.value)}` };
  const al = i.allowed.iterFirst(start, last);
  if (al !== undefined) return { errno: 'EADDRINUSE', why: `io_pagetable.c iopt_reserve_iova: [${hex(start)}, ${hex(last)}] covers the allowed range [${hex(al.start)}, ${hex(al.last)}]` };
  return undefined;
}

/**
 * Every area of an IOAS removed and its pages put: `iopt_unmap_all` as run by `iommufd_ioas_destroy`. `dropped`
 * counts the page references already dropped by earlier events of the same step (several IOASes destroyed by one
 * close can share pages through COPY).
 */
export function ioasTeardownEvents(st: State, where: IoasRef, i: Iopt, dropped: Map<number, number>): DomainEvent[] {
  const out: DomainEvent[] = [];
  for (const n of i.areas.inOrder()) {
    const d = dropped.get(n.value.pages) ?? 0;
    out.push({ type: 'AreaRemoved', ctx: where.ctx, ioas: where.ioas, area: n.value.id }, ...putPages(st, n.value.pages, d));
    dropped.set(n.value.pages, d + 1);
  }
  return out;
}
