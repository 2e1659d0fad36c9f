/**
 * The io_pagetable of an IOAS (drivers/iommu/iommufd/io_pagetable.c, io_pagetable.h): areas mapping IOVA ranges
 * onto slices of `iopt_pages`, the allowed and reserved IOVA interval trees, and `iova_alignment`.
 *
 * Theory of operation. An area is born with `pages == NULL` (here `published: false`): it already owns its IOVA
 * (a FIXED map over it is EEXIST, the allocator skips it) but contiguous walks (COPY, access pin/rw) do not see it
 * and an UNMAP over it is EBUSY. MAP publishes it after filling the domains; UNMAP unpublishes it before unfilling.
 * Byte x of an area maps to byte `(x - start) + page_offset + pages_start * PAGE_SIZE` of its iopt_pages.
 * All three trees are AVL interval trees (interval_tree.ts) and every query is O(log n + k).
 */
import type { DomainEvent } from '../events/domain.js';
import { IntervalTree, type IntervalNode } from './interval_tree.js';
import { spanIter } from './span_iter.js';
import { U64_MAX } from './u64.js';
import { applyAreaSplit } from './iopt_split.js';
import { frozenEmptyMap } from './cow_map.js';

export const IOMMU_READ = 1, IOMMU_WRITE = 2;

export interface Area {
  readonly id: number;
  readonly start: bigint;
  readonly last: bigint;
  readonly pages: number;
  /** `pages_node`: the page index range of the iopt_pages this area covers. */
  readonly pagesStart: number;
  readonly pagesLast: number;
  /** Byte offset of `start` inside page `pagesStart`. */
  readonly pageOffset: number;
  readonly prot: number;
  /** The trace line that created the area, for explanations. */
  readonly line: number;
  published: boolean;
  numAccesses: number;
  preventAccess: boolean;
  numLocks: number;
}

export interface Iopt {
  readonly areas: IntervalTree<Area>;
  readonly areaById: Map<number, IntervalNode<Area>>;
  allowed: IntervalTree<null>;
  /** Value: the owner: '' for none (ADD_RESERVED), `domain:N` for an aperture, `dev:N` for a device's regions. */
  readonly reserved: IntervalTree<string>;
  iovaAlignment: bigint;
  disableLargePages: boolean;
  /** `iopt->domains`: the attached hardware domains, dense (removal moves the last into the hole). */
  readonly domains: number[];
  /** `iopt->access_list`: attached accesses and the IOVA alignment each needs. */
  readonly accesses: Map<number, bigint>;
}

export const newIopt = (): Iopt => ({
  areas: new IntervalTree(), areaById: new Map(), allowed: new IntervalTree(), reserved: new IntervalTree(),
  iovaAlignment: 1n, disableLargePages: false, domains: [], accesses: new Map(),
});

/**
 * A deep copy. `frozen`: for a snapshot that nothing will ever change (time travel keeps thousands of them): empty
 * trees, maps and lists are then one shared frozen instance each, so an idle IOAS costs a few hundred bytes per
 * snapshot instead of a kilobyte. A write to a shared empty throws (a frozen object, or cow_map.ts `frozenEmptyMap`).
 */
export function cloneIopt(i: Iopt, frozen = false): Iopt {
  if (frozen) {
    const { areas, areaById } = i.areas.isEmpty ? { areas: FROZEN_TREE as IntervalTree<Area>, areaById: frozenEmptyMap<number, IntervalNode<Area>>() } : cloneAreas(i);
    return {
      areas, areaById,
      allowed: i.allowed.isEmpty ? (FROZEN_TREE as IntervalTree<null>) : cloneTree(i.allowed),
      reserved: i.reserved.isEmpty ? (FROZEN_TREE as IntervalTree<string>) : cloneTree(i.reserved),
      iovaAlignment: i.iovaAlignment,
      disableLargePages: i.disableLargePages,
      domains: i.domains.length === 0 ? (FROZEN_LIST as number[]) : i.domains.slice(),
      accesses: i.accesses.size === 0 ? frozenEmptyMap<number, bigint>() : new Map(i.accesses),
    };
  }
  const { areas, areaById } = cloneAreas(i);
  return {
    areas, areaById, allowed: cloneTree(i.allowed), reserved: cloneTree(i.reserved), iovaAlignment: i.iovaAlignment,
    disableLargePages: i.disableLargePages, domains: i.domains.slice(), accesses: new Map(i.accesses),
  };
}

function cloneAreas(i: Iopt): Pick<Iopt, 'areas' | 'areaById'> {
  const areas = new IntervalTree<Area>(), areaById = new Map<number, IntervalNode<Area>>();
  for (const n of i.areas.inOrder()) areaById.set(n.value.id, areas.insert(n.start, n.last, { ...n.value }));
  return { areas, areaById };
}

function cloneTree<T>(t: IntervalTree<T>): IntervalTree<T> {
  const c = new IntervalTree<T>();
  for (const n of t.inOrder()) c.insert(n.start, n.last, n.value);
  return c;
}

const FROZEN_TREE = Object.freeze(new IntervalTree<unknown>()) as unknown as IntervalTree<unknown>;
const FROZEN_LIST: readonly number[] = Object.freeze([]);

export const areaLength = (a: Area): bigint => a.last - a.start + 1n;

/** The events that change an io_pagetable, folded in by `ioptEvolve`. */
export type IoptEvent = Extract<DomainEvent, {
  type: 'AreaReserved' | 'AreaPublished' | 'AreaUnpublished' | 'AreaRemoved' | 'AreaSplit' | 'AllowedIovasSet' | 'ReservedAdded' | 'ReservedRemoved' | 'IoasLargePagesSet';
}>;

export function ioptEvolve(i: Iopt, ev: IoptEvent, pageSize: number): void {
  switch (ev.type) {
    case 'AreaReserved': {
      if (i.areas.iterFirst(ev.start, ev.last) !== undefined) throw new Error(`area [${ev.start}, ${ev.last}] overlaps another`);
      const area: Area = {
        id: ev.area, start: ev.start, last: ev.last, pages: ev.pages, pagesStart: ev.pagesStart, pagesLast: ev.pagesLast,
        pageOffset: ev.pageOffset, prot: ev.prot, line: ev.mappedAt, published: false, numAccesses: 0, preventAccess: false, numLocks: 0,
      };
      i.areaById.set(ev.area, i.areas.insert(ev.start, ev.last, area));
      return;
    }
    case 'AreaPublished':
    case 'AreaUnpublished':
      areaNode(i, ev.area).value.published = ev.type === 'AreaPublished';
      return;
    case 'AreaRemoved': {
      const n = areaNode(i, ev.area);
      i.areas.remove(n);
      i.areaById.delete(ev.area);
      return;
    }
    case 'AreaSplit':
      applyAreaSplit(i, ev, pageSize);
      return;
    case 'AllowedIovasSet': {
      const t = new IntervalTree<null>();
      for (const r of ev.ranges) t.insert(r.start, r.last, null);
      i.allowed = t;
      return;
    }
    case 'ReservedAdded':
      i.reserved.insert(ev.start, ev.last, ev.owner);
      return;
    case 'ReservedRemoved': {
      const n = i.reserved.findExact(ev.start, ev.last, (o) => o === ev.owner);
      if (n === undefined) throw new Error(`no reserved range [${ev.start}, ${ev.last}] owned by ${ev.owner}`);
      i.reserved.remove(n);
      return;
    }
    case 'IoasLargePagesSet':
      i.disableLargePages = ev.disableLargePages;
      i.iovaAlignment = ev.iovaAlignment;
      void pageSize;
      return;
  }
}

function areaNode(i: Iopt, id: number): IntervalNode<Area> {
  const n = i.areaById.get(id);
  if (n === undefined) throw new Error(`no area ${id}`);
  return n;
}

/** The holes of the reserved tree over [0, ULONG_MAX]: what IOMMU_IOAS_IOVA_RANGES reports. */
export function usableRanges(i: Iopt): { start: bigint; last: bigint }[] {
  const out: { start: bigint; last: bigint }[] = [];
  for (const s of spanIter(i.reserved, 0n, U64_MAX)) if (s.isHole) out.push({ start: s.start, last: s.last });
  return out;
}

/** The first area intersecting [start, last], or undefined (`iopt_area_iter_first`). */
export const areaIterFirst = (i: Iopt, start: bigint, last: bigint): Area | undefined => i.areas.iterFirst(start, last)?.value;

/** An explanation of an area for divergence reports: `[0x1000, 0x1fff] mapped at line 14`. */
export const describeArea = (a: Area): string =>
  `[0x${a.start.toString(16)}, 0x${a.last.toString(16)}] mapped at line ${a.line}${a.published ? '' : ' (still being mapped or unmapped)'}`;

/**
 * `iopt_for_each_contig_area`: the areas covering [start, last] back to back, each published, and, when the walk
 * stopped short (a gap, a missing or half-built area), why — the callers' ENOENT, which they answer only after
 * checking the areas the walk did reach, as the kernel's loop body runs before `iopt_area_contig_done`.
 */
export function contigAreas(i: Iopt, start: bigint, last: bigint): { areas: Area[]; gap: string | undefined } {
  const areas: Area[] = [];
  let n = i.areas.iterFirst(start, start);
  let cur = start;
  for (;;) {
    if (n === undefined || n.start > cur) return { areas, gap: `no area covers IOVA 0x${cur.toString(16)}` };
    if (!n.value.published) return { areas, gap: `area ${describeArea(n.value)} is not fully built` };
    areas.push(n.value);
    if (n.last >= last) return { areas, gap: undefined };
    cur = n.last + 1n;
    n = i.areas.iterNext(n, cur, last);
  }
}
