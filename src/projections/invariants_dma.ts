/**
 * Invariants of what devices can reach (pages.c, io_pagetable.c): every PTE of a domain translates an IOVA of an
 * area of the domain's IOAS to the frame of that area's page, and the area's iopt_pages pin it (no DMA use after
 * free); every published area is mapped in every domain of its IOAS; pages are unpinned only once no PTE (and no
 * IOTLB entry) reaches them.
 *
 * IOTLBs (hw/iotlb.ts): `HwDomain.iotlb` holds the translations device DMA cached (IOVA run → `{phys, prot}`, phys of
 * the run's first byte) until a flush; the checks read it through `domainIotlb`, so a domain without one (a model
 * that does not fill IOTLBs) checks nothing there.
 */
import type { HwDomain } from '../hw/domain.js';
import { isDeadPages } from '../hw/dmabuf.js';
import type { IntervalTree } from '../hw/interval_tree.js';
import type { Area } from '../hw/io_pagetable.js';
import {
  allIoas, hex, ioasByKey, iovaLastOfIndex, iovaOfIndex, type1Domains, type Indexes, type InvariantViolation, type IoasRef, type Scope,
} from './invariants_core.js';
import { deadAreaMapped, isDeadArea } from './invariants_devmem.js';
import { frameRuns, type AreaIndex } from './invariants_pins.js';
import type { State } from './state.js';

export const R_PTE_SOUND = 'pages.c iopt_area_fill_domain / __iopt_area_unfill_domain ("we must not unpin something that is still DMA mapped"): a PTE maps an IOVA of an area of its IOAS onto that area\'s page, pinned by the area\'s iopt_pages';
export const R_PTE_COMPLETE = 'io_pagetable.c iopt_map_pages (fill before publish, under domains_rwsem) and iopt_fill_domain: every published area (but one a dma-buf revocation killed) is mapped in every domain of its IOAS';
export const R_UNPIN_ORDER = 'pages.c __iopt_area_unfill_domain / iopt_area_unpin_domain: unmap from every domain (and flush the IOTLB) before unpinning';
export const R_IOTLB = 'iommu.c iommu_unmap / iommu_iotlb_sync (strict mode): no IOTLB entry outlives the unmap of its PTE';

/** What the IOTLB invariants read of a domain: its cached translations (IOVA run → phys of the run's first byte). */
export interface IotlbView {
  readonly iotlb?: IntervalTree<{ readonly phys: bigint }>;
}
/** A domain's IOTLB, when the model has one. */
export const domainIotlb = (d: HwDomain): IntervalTree<{ readonly phys: bigint }> | undefined => (d as HwDomain & IotlbView).iotlb;

function v(out: InvariantViolation[], name: string, rule: string, message: string): void {
  out.push({ name, rule, message });
}

/** Checks the PTEs of `d` in [from, to] against the areas of `owner`. Stops at the first bad run. */
function checkPtes(st: State, d: HwDomain, owner: IoasRef | undefined, from: bigint, to: bigint, out: InvariantViolation[]): void {
  const page = BigInt(st.pageSize);
  for (const n of d.map.intersecting(from, to)) {
    if (owner === undefined) {
      v(out, 'dma-pte-sound', R_PTE_SOUND, `domain ${d.id} is in no IOAS but maps [${hex(n.start)}, ${hex(n.last)}]`);
      return;
    }
    let x = n.start > from ? n.start : from;
    const end = n.last < to ? n.last : to;
    while (x <= end) {
      const an = owner.iopt.areas.iterFirst(x, x);
      if (an === undefined) {
        v(out, 'dma-pte-sound', R_PTE_SOUND, `domain ${d.id} maps IOVA ${hex(x)} (PTE [${hex(n.start)}, ${hex(n.last)}]) but no area of IOAS ${owner.obj.id} covers it: a device can still reach memory the IOAS no longer maps`);
        return;
      }
      const a: Area = an.value;
      if (isDeadArea(st, a)) return deadAreaMapped(d, owner, a, out);
      const u = x, w = a.last < end ? a.last : end;
      const p = st.pages.get(a.pages);
      if (p === undefined) {
        v(out, 'dma-pte-sound', R_PTE_SOUND, `domain ${d.id} maps [${hex(u)}, ${hex(w)}] of area ${a.id}, whose iopt_pages ${a.pages} were released`);
        return;
      }
      const off = (b: bigint): bigint => b - a.start + BigInt(a.pageOffset);
      const iu = a.pagesStart + Number(off(u) / page), iw = a.pagesStart + Number(off(w) / page);
      if (p.pinned.countNonZero(iu, iw) !== iw - iu + 1) {
        const firstFree = [...p.pinned.runs(iu, iw)].reduce((at, r) => (r.start === at ? r.last + 1 : at), iu);
        v(out, 'dma-pte-sound', R_PTE_SOUND, `domain ${d.id} maps IOVA ${hex(iovaOfIndex(st, a, firstFree))} of area ${a.id} to page ${firstFree} of iopt_pages ${p.id}, which is not pinned (DMA use after free)`);
        return;
      }
      // Physical addresses: per run of consecutive frames.
      for (const fr of frameRuns(p, iu, iw)) {
        const iova = fr.index === iu ? u : iovaOfIndex(st, a, fr.index);
        const want = BigInt(fr.frame) * page + (off(iova) % page);
        const got = n.value + (iova - n.start);
        if (want !== got) {
          v(out, 'dma-pte-sound', R_PTE_SOUND, `domain ${d.id} translates IOVA ${hex(iova)} to ${hex(got)}, but area ${a.id} holds frame ${hex(fr.frame)} there (phys ${hex(want)})`);
          return;
        }
      }
      if (w === end) break;
      x = w + 1n;
    }
  }
}

/** Whether `d` maps all of [s, l]. */
function covers(d: HwDomain, s: bigint, l: bigint): bigint | undefined {
  let at = s;
  for (const n of d.map.intersecting(s, l)) {
    if (n.start > at) return at;
    if (n.last >= l) return undefined;
    at = n.last + 1n;
  }
  return at <= l ? at : undefined;
}

function checkComplete(st: State, r: IoasRef, a: Area, out: InvariantViolation[]): void {
  if (!a.published) return;
  // A dma-buf revocation unmapped it for good (pages.c iopt_revoke_notify): the area keeps its IOVA, no domain maps it.
  const p = st.pages.get(a.pages);
  if (p !== undefined && isDeadPages(st, p)) return;
  for (const id of r.iopt.domains) {
    const d = st.domains.get(id);
    if (d === undefined) continue;
    const hole = covers(d, a.start, a.last);
    if (hole !== undefined)
      v(out, 'dma-pte-complete', R_PTE_COMPLETE, `IOAS ${r.obj.id} (ctx ${r.ctx.id}): published area ${a.id} [${hex(a.start)}, ${hex(a.last)}] is not mapped in domain ${id} at ${hex(hole)}`);
  }
}

function checkIotlb(d: HwDomain, out: InvariantViolation[]): void {
  const t = domainIotlb(d);
  if (t === undefined) return;
  for (const e of t.inOrder()) {
    let at = e.start;
    for (const n of d.map.intersecting(e.start, e.last)) {
      if (n.start > at || n.value + (at - n.start) !== e.value.phys + (at - e.start)) break;
      at = n.last + 1n;
    }
    if (at <= e.last)
      v(out, 'iotlb-coherent', R_IOTLB, `domain ${d.id}: the IOTLB still translates IOVA ${hex(at)} (entry [${hex(e.start)}, ${hex(e.last)}]) which its page table no longer maps that way`);
  }
}

export function checkDma(st: State, scope: Scope, idx: Indexes, out: InvariantViolation[]): void {
  const ownerOf = (id: number): IoasRef | undefined => idx.ioasOfDomain(id)[0];
  // Type1 containers' domains map vfio_dmas, not areas; nested domains translate through their parent.
  const type1 = type1Domains(st);
  const mine = (d: HwDomain): boolean => d.kind === 'paging' && !type1.has(d.id);
  if (scope.all) {
    for (const d of st.domains.values()) {
      if (!mine(d)) continue;
      checkPtes(st, d, ownerOf(d.id), 0n, (1n << 64n) - 1n, out);
      checkIotlb(d, out);
    }
    for (const r of allIoas(st)) if (r.iopt.domains.length > 0) for (const n of r.iopt.areas.inOrder()) checkComplete(st, r, n.value, out);
    return;
  }
  for (const [id, ranges] of scope.domains) {
    const d = st.domains.get(id);
    if (d === undefined || !mine(d)) continue;
    const owner = ownerOf(id);
    if (ranges === 'all') checkPtes(st, d, owner, 0n, (1n << 64n) - 1n, out);
    else for (const r of ranges) {
      checkPtes(st, d, owner, r.iova, r.last, out);
      // PTEs that went away under a published area.
      if (owner !== undefined) for (const n of owner.iopt.areas.intersecting(r.iova, r.last)) checkComplete(st, owner, n.value, out);
    }
    checkIotlb(d, out);
  }
  for (const key of scope.ioas) {
    const r = ioasByKey(st, key);
    if (r !== undefined && r.iopt.domains.length > 0) for (const n of r.iopt.areas.inOrder()) checkComplete(st, r, n.value, out);
  }
  for (const [key, ids] of scope.areas) {
    const r = ioasByKey(st, key);
    if (r === undefined) continue;
    for (const id of ids) {
      const n = r.iopt.areaById.get(id);
      if (n !== undefined) checkComplete(st, r, n.value, out);
    }
  }
}

/**
 * After `PagesUnpinned` of [start, last] of iopt_pages `pages`: no domain of an area backed by them still maps those
 * pages, or still caches a translation of them in its IOTLB (the per-iopt_pages order: unmap, flush, unpin).
 */
export function checkUnpinOrder(st: State, index: AreaIndex, pages: number, start: number, last: number, out: InvariantViolation[]): void {
  for (const u of index.areasOf(pages)) {
    const a = u.area;
    const s = Math.max(start, a.pagesStart), l = Math.min(last, a.pagesLast);
    if (s > l) continue;
    const from = iovaOfIndex(st, a, s), to = iovaLastOfIndex(st, a, l);
    for (const id of u.ioas.iopt.domains) {
      const d = st.domains.get(id);
      if (d === undefined) continue;
      const n = d.map.iterFirst(from, to);
      if (n !== undefined)
        v(out, 'unpin-after-unmap', R_UNPIN_ORDER, `pages [${s}, ${l}] of iopt_pages ${pages} were unpinned while domain ${id} still maps IOVA [${hex(n.start)}, ${hex(n.last)}] of area ${a.id} onto them`);
      const e = domainIotlb(d)?.iterFirst(from, to);
      if (e !== undefined)
        v(out, 'unpin-after-unmap', R_UNPIN_ORDER, `pages [${s}, ${l}] of iopt_pages ${pages} were unpinned while the IOTLB of domain ${id} still caches IOVA [${hex(e.start)}, ${hex(e.last)}] of area ${a.id} (flush after unpin)`);
    }
  }
}

/** After a frame loses its last pin: no IOTLB entry of any domain may still reach it (DMA into a free page). */
export function checkFrameRelease(st: State, frame: number, count: number, out: InvariantViolation[]): void {
  const page = BigInt(st.pageSize);
  const free: { s: bigint; l: bigint }[] = [];
  let at = frame;
  for (const r of st.mm.pins.runs(frame, frame + count - 1)) {
    if (r.start > at) free.push({ s: BigInt(at) * page, l: BigInt(r.start) * page - 1n });
    at = r.last + 1;
  }
  if (at <= frame + count - 1) free.push({ s: BigInt(at) * page, l: BigInt(frame + count) * page - 1n });
  if (free.length === 0) return;
  for (const d of st.domains.values()) {
    const t = domainIotlb(d);
    if (t === undefined || t.isEmpty) continue;
    for (const e of t.inOrder()) {
      const es = e.value.phys, el = e.value.phys + (e.last - e.start);
      const hit = free.find((r) => r.s <= el && es <= r.l);
      if (hit !== undefined)
        v(out, 'unpin-after-unmap', R_UNPIN_ORDER, `frame ${hex(hit.s / page)} lost its last pin while the IOTLB of domain ${d.id} still translates IOVA [${hex(e.start)}, ${hex(e.last)}] onto it (a device can DMA into a free page)`);
    }
  }
}
