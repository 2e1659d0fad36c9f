/**
 * Splitting areas (drivers/iommu/iommufd/io_pagetable.c `iopt_area_split`, `iopt_cut_iova`; core spec §4.6): the
 * VFIO type1 (v1) compatibility that lets VFIO_IOMMU_UNMAP_DMA poke a hole in the middle of a mapping. Nothing else
 * splits areas: IOMMU_IOAS_UNMAP and the type1v2 path refuse to cut one (ENOENT).
 *
 * Theory of operation. A split replaces one published area by two that keep pointing at the same `iopt_pages`
 * with different starting bytes: the left one ends at the cut IOVA, the right one starts right after it. The left
 * half inherits the area's pages reference and the right half takes a new one (`kref_get`), so the pages gain one
 * reference per split; nothing is pinned, unpinned or remapped, because the domains already hold every PFN. The
 * halves are new areas (`iopt_area_alloc` ×2): their access counts, locks and `prevent_access` start at zero, which
 * is why an area with accesses may not be split. Every cut of one `iopt_cut_iova` runs under one hold of
 * `iova_rwsem`, so the second cut sees the first one's halves; here that is an overlay of the halves decided so
 * far, and all the splits are emitted together as one atomic step.
 *
 * The decision (`iopt_area_split`, `iopt_cut_iova`) and the projection (`splitArea`, `applyAreaSplit`, which
 * `ioptEvolve` runs for an `AreaSplit` event) share `splitArea`, so the halves the decision reasons about are the
 * halves the state gets.
 */
import type { DomainEvent } from '../events/domain.js';
import type { State } from '../projections/state.js';
import type { Area, Iopt } from './io_pagetable.js';
import type { Failure, IoasRef } from './iopt_ops.js';
import { isMutant } from '../check/mutants.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const show = (a: Area): string =>
  `[${hex(a.start)}, ${hex(a.last)}] mapped at line ${a.line}${a.published ? '' : ' (still being mapped or unmapped)'}`;

/**
 * `iopt_area_split(area, last)`: area `area` of IOAS `ioas` became `lhs` = [start, last] and `rhs` = [last + 1,
 * area last], both on the same pages. The type is to join the `DomainEvent` union (src/events/domain.ts) as is;
 * until it does, `asDomainEvent` carries it.
 */
export interface AreaSplitEvent {
  readonly type: 'AreaSplit';
  readonly ctx: number;
  readonly ioas: number;
  readonly area: number;
  /** The last IOVA of the left half (the kernel's `iova` argument). */
  readonly last: bigint;
  readonly lhs: number;
  readonly rhs: number;
}
/** Until `AreaSplit` is a member of `DomainEvent`: the one place the proposed event is widened to it. */
export const asDomainEvent = (e: AreaSplitEvent): DomainEvent => e as unknown as DomainEvent;

/**
 * Whether the area has filled a domain (`area->storage_domain != NULL`): a published area is filled into every
 * domain of its IOAS (at MAP, or when the domain was added), so it has one exactly when the IOAS has a domain.
 */
export const areaStorageDomain = (i: Iopt, a: Area): boolean => a.published && i.domains.length > 0;

/**
 * The two halves of `a` cut after IOVA `last` (`a.start <= last < a.last`), as `iopt_insert_area` builds them from
 * `iopt_area_start_byte`: byte x of the area is byte `(x - start) + page_offset + pages_start * PAGE_SIZE` of its
 * pages. Fields the split does not touch (protection, the line that mapped it, anything added later such as the
 * storage domain) are inherited; the per-area counters start at zero as in a freshly allocated area.
 */
export function splitArea(a: Area, last: bigint, lhsId: number, rhsId: number, pageSize: number): [Area, Area] {
  if (last < a.start || last >= a.last) throw new Error(`cannot split area ${a.id} [${hex(a.start)}, ${hex(a.last)}] after ${hex(last)}`);
  const page = BigInt(pageSize);
  const base = BigInt(a.pageOffset) + BigInt(a.pagesStart) * page;
  const newStart = last + 1n;
  const rhsByte = newStart - a.start + base;
  const fresh = { numAccesses: 0, preventAccess: false, numLocks: 0 };
  const lhs: Area = { ...a, ...fresh, id: lhsId, last, pagesLast: Number((base + (last - a.start)) / page) };
  const rhs: Area = {
    ...a, ...fresh, id: rhsId, start: newStart, pagesStart: Number(rhsByte / page), pageOffset: Number(rhsByte % page),
    pagesLast: Number((rhsByte + (a.last - newStart)) / page),
  };
  return [lhs, rhs];
}

/**
 * The `AreaSplit` case of `ioptEvolve`: the area leaves the tree and its two halves enter it. The caller (`evolve`)
 * adds the right half's reference to the pages and moves `nextArea` past both ids. The domains keep their mappings
 * and the pages their pins; the fill counts (`domains_itree`) need no change either, because a filled area is only
 * ever split on a page boundary (splitting one needs large pages disabled, so `iova_alignment` >= PAGE_SIZE), so the
 * halves cover exactly the pages the area covered, once each.
 */
export function applyAreaSplit(i: Iopt, ev: AreaSplitEvent, pageSize: number): void {
  const n = i.areaById.get(ev.area);
  if (n === undefined) throw new Error(`no area ${ev.area} to split`);
  const [lhs, rhs] = splitArea(n.value, ev.last, ev.lhs, ev.rhs, pageSize);
  i.areas.remove(n);
  i.areaById.delete(ev.area);
  i.areaById.set(lhs.id, i.areas.insert(lhs.start, lhs.last, lhs));
  i.areaById.set(rhs.id, i.areas.insert(rhs.start, rhs.last, rhs));
}

/** `iopt_area_start_byte`: the byte of the area's pages that IOVA `iova` maps. */
const startByte = (a: Area, iova: bigint, page: bigint): bigint => iova - a.start + BigInt(a.pageOffset) + BigInt(a.pagesStart) * page;

/**
 * `iopt_area_split(area, iova)`, its checks in the kernel's order: `undefined` when there is nothing to do (`iova`
 * is the area's first or last byte), the halves, or the failure. ENOMEM (area allocation) is not modelled.
 */
export function iopt_area_split(st: State, i: Iopt, area: Area, iova: bigint, lhsId: number, rhsId: number): [Area, Area] | Failure | undefined {
  const fn = 'io_pagetable.c iopt_area_split';
  if (iova === area.start || iova === area.last) return undefined;
  if (!area.published) return { errno: 'EBUSY', why: `${fn}: area ${show(area)} is being mapped or unmapped by another thread (pages == NULL)` };
  if (area.preventAccess) return { errno: 'EBUSY', why: `${fn}: area ${show(area)} has prevent_access set (an unmap is notifying its accesses)` };
  const kind: string = st.pages.get(area.pages)?.kind ?? 'user';
  if (kind === 'dmabuf') return { errno: 'EOPNOTSUPP', why: `${fn}: area ${show(area)} maps a dma-buf, whose domains_itree cannot be split` };
  const newStart = iova + 1n;
  const align = i.iovaAlignment;
  if (newStart % align !== 0n)
    return { errno: 'EINVAL', why: `${fn}: the cut leaves an area starting at ${hex(newStart)}, not a multiple of the IOAS iova_alignment ${hex(align)}` };
  const sb = startByte(area, newStart, BigInt(st.pageSize));
  if (sb % align !== 0n)
    return { errno: 'EINVAL', why: `${fn}: IOVA ${hex(newStart)} maps byte ${hex(sb)} of its pages, not a multiple of the IOAS iova_alignment ${hex(align)}` };
  if (area.numAccesses > 0)
    return { errno: 'EINVAL', why: `${fn}: ${area.numAccesses} access pin(s) on area ${show(area)} (splitting is not permitted while an access exists)` };
  if (areaStorageDomain(i, area) && !i.disableLargePages)
    return { errno: 'EINVAL', why: `${fn}: area ${show(area)} filled a domain while large pages were enabled (it may be mapped with huge IOPTEs)` };
  return splitArea(area, iova, lhsId, rhsId, st.pageSize);
}

export interface CutResult {
  /** The splits done, in order; on failure the earlier ones stay (the kernel does not undo them). */
  readonly events: DomainEvent[];
  readonly failure: Failure | undefined;
  /** What was cut, for explanations. */
  readonly done: readonly string[];
}

/**
 * `iopt_cut_iova(iopt, iovas)`: for each IOVA inside an area, split that area so the IOVA becomes the last byte of
 * the left part; an IOVA in no area is skipped. Stops at the first failure. All under one `iova_rwsem` hold: the
 * splits are decided against the halves of the earlier ones and emitted together.
 */
export function iopt_cut_iova(st: State, where: IoasRef, i: Iopt, iovas: readonly bigint[]): CutResult {
  let next = st.nextArea;
  const gone = new Set<number>();
  let made: Area[] = [];
  const events: DomainEvent[] = [];
  const done: string[] = [];
  for (const iova of iovas) {
    let area = made.find((a) => a.start <= iova && iova <= a.last);
    if (area === undefined) {
      const n = i.areas.iterFirst(iova, iova);
      area = n !== undefined && !gone.has(n.value.id) ? n.value : undefined;
    }
    if (area === undefined) continue;
    const r = iopt_area_split(st, i, area, iova, next, next + 1);
    if (r === undefined) continue;
    if (!Array.isArray(r)) return { events, failure: r, done };
    const [lhs, rhs] = r;
    const cut = area;
    gone.add(cut.id);
    made = made.filter((a) => a.id !== cut.id);
    made.push(lhs, rhs);
    events.push(asDomainEvent({ type: 'AreaSplit', ctx: where.ctx, ioas: where.ioas, area: cut.id, last: iova, lhs: lhs.id, rhs: rhs.id }));
    // MUTANT split-no-reinsert (B6, linux@e7250ab7ca49): the split removes the area's pages_node from domains_itree
    // and never inserts the halves'.
    if (isMutant('split-no-reinsert') && areaStorageDomain(i, cut)) events.push({ type: 'AreaUnfilled', pages: cut.pages, start: cut.pagesStart, last: cut.pagesLast });
    done.push(`area ${show(cut)} split after ${hex(iova)} into areas ${lhs.id} and ${rhs.id}`);
    next += 2;
  }
  return { events, failure: undefined, done };
}
