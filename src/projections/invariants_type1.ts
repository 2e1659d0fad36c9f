/**
 * Invariants of the legacy VFIO container's type1 backend (drivers/vfio/vfio_iommu_type1.c): the mapping count
 * against `dma_entry_limit`, and that the container's IOMMU domain maps exactly the vfio_dmas, each onto the frames it
 * pinned (or, for a PFNMAP chunk, onto device memory it pinned nothing of). Pin conservation per frame and the
 * `mm->locked_vm` balance of type1 pins are invariants_pins.ts's, which count the vfio_dmas beside the iopt_pages.
 */
import type { DomainEvent } from '../events/domain.js';
import type { RangeMap } from '../hw/range_map.js';
import type { VfioContainer } from '../hw/vfio_dma.js';
import { hex, scopeAddDomain, type InvariantViolation, type Scope } from './invariants_core.js';
import type { State } from './state.js';

export const R_T1_LIMIT = 'vfio_iommu_type1.c vfio_dma_do_map: dma_avail starts at dma_entry_limit, counts down per vfio_dma and answers ENOSPC at 0, so a container never holds more than dma_entry_limit vfio_dmas (CVE-2019-3882)';
export const R_T1_VPFN = 'vfio_iommu_type1.c vfio_iommu_type1_pin_pages / vfio_unpin_page_external / vfio_find_vpfn: a vpfn is keyed by the exact IOVA pinned and counts one reference per vfio_pin_pages of it not yet unpinned (a driver that unpins what it pinned empties pfn_list, which vfio_dma_do_unmap\'s notifier loop needs: BUG_ON(++retries > 10))';
export const R_T1_VPFN_PAGE = 'vfio_iommu_type1.c vfio_iommu_type1_pin_pages: if (!pfn_valid(phys_pfn)) → EINVAL: an external pin hands the driver a struct page, never a PFNMAP (device memory) pfn';
export const R_T1_MAPPED = 'vfio_iommu_type1.c vfio_pin_map_dma / vfio_unmap_unpin: a vfio_dma is mapped into the container\'s domain onto exactly the pages it pinned (PFNMAP chunks: pinned nothing), and unmapped before they are unpinned; nothing else is mapped there';

/** The vfio_dmas overlapping [start, last] are mapped onto exactly their pinned frames, and every PTE there is a dma's. */
function checkRange(st: State, c: VfioContainer, start: bigint, last: bigint, out: InvariantViolation[]): void {
  const i = c.iommu!;
  const d = st.domains.get(i.domain!)!;
  const ps = BigInt(st.pageSize);
  const bad = (message: string): void => void out.push({ name: 'type1-dma-mapped', rule: R_T1_MAPPED, message: `container ${c.id}, domain ${d.id}: ${message}` });
  for (const r of d.map.intersecting(start, last)) {
    const dma = i.dmas.iterFirst(r.start, r.start)?.value;
    if (dma === undefined || dma.iova + dma.size - 1n < r.last) return bad(`[${hex(r.start)}, ${hex(r.last)}] is mapped, but no vfio_dma covers it (a device reaches a page nobody pinned for it)`);
  }
  for (const n of i.dmas.intersecting(start, last)) {
    const dma = n.value;
    if (dma.hasRsvd) continue;
    // Walk the dma's pinned runs in IOVA order against the domain's mapped runs.
    let at = dma.iova;
    for (const run of dma.pinned) {
      const runLast = at + BigInt(run.npages) * ps - 1n;
      let cur = at;
      for (const m of d.map.intersecting(at, runLast)) {
        const s0 = m.start > at ? m.start : at;
        if (s0 !== cur) return bad(`IOVA ${hex(cur)} of the vfio_dma at ${hex(dma.iova)} is not mapped, though it pinned frame ${run.frame + Number((cur - at) / ps)} for it`);
        const want = BigInt(run.frame) * ps + (s0 - at), got = m.value + (s0 - m.start);
        if (got !== want) return bad(`IOVA ${hex(s0)} maps ${hex(got)}, but the vfio_dma at ${hex(dma.iova)} pinned ${hex(want)} there`);
        cur = (m.last < runLast ? m.last : runLast) + 1n;
      }
      if (cur !== runLast + 1n) return bad(`IOVA ${hex(cur)} of the vfio_dma at ${hex(dma.iova)} is not mapped, though it pinned a frame for it`);
      at = runLast + 1n;
    }
    if (at !== dma.iova + dma.size) return bad(`the vfio_dma [${hex(dma.iova)}, ${hex(dma.iova + dma.size - 1n)}] pinned ${(at - dma.iova) / ps} page(s) of its ${dma.size / ps}`);
  }
}

/** The container's vpfns against what its mdev drivers say they pinned (State.mdevPins), by exact IOVA. */
function checkVpfns(st: State, c: VfioContainer, out: InvariantViolation[]): void {
  const i = c.iommu!;
  const want = new Map<bigint, number>();
  const mine = [...st.mdevPins].filter(([, p]) => p.container === c.id);
  for (const [, p] of mine) for (const [iova, n] of p.pins) want.set(iova, (want.get(iova) ?? 0) + n);
  const drivers = mine.map(([dev]) => dev).join(', ') || 'no driver';
  const bad = (message: string): void => void out.push({ name: 'type1-vpfn-balance', rule: R_T1_VPFN, message: `container ${c.id}: ${message}` });
  for (const at of i.vpfnDmas) {
    const n = i.dmas.iterFirst(at, at);
    if (n === undefined) continue;
    for (const [iova, v] of n.value.vpfns) {
      if (!v.ram) out.push({ name: 'type1-vpfn-page', rule: R_T1_VPFN_PAGE, message: `container ${c.id}: the vpfn at ${hex(iova)} of the vfio_dma at ${hex(n.start)} holds pfn ${hex(v.pfn)}, which has no struct page` });
      const w = want.get(iova) ?? 0;
      if (w !== v.ref) return bad(`the vpfn at ${hex(iova)} of the vfio_dma at ${hex(n.start)} has ${v.ref} reference(s), but ${drivers} hold(s) ${w} pin(s) of that IOVA`);
      want.delete(iova);
    }
  }
  for (const [iova, w] of want) return bad(`${drivers} hold(s) ${w} pin(s) of IOVA ${hex(iova)}, which has no vpfn${i.dmas.iterFirst(iova, iova) === undefined ? ' (nor a vfio_dma)' : ''}`);
}

function checkContainer(st: State, c: VfioContainer, ranges: readonly { iova: bigint; last: bigint }[] | 'all', out: InvariantViolation[]): void {
  const i = c.iommu;
  if (i === undefined) return;
  const n = i.dmas.size;
  if (n > i.dmaLimit || i.dmaAvail !== i.dmaLimit - n)
    out.push({ name: 'type1-dma-limit', rule: R_T1_LIMIT, message: `container ${c.id}: ${n} vfio_dma(s), dma_avail ${i.dmaAvail}, dma_entry_limit ${i.dmaLimit}` });
  checkVpfns(st, c, out);
  if (i.domain === undefined || !st.domains.has(i.domain)) return;
  for (const r of ranges === 'all' ? [{ iova: 0n, last: (1n << 64n) - 1n }] : ranges) checkRange(st, c, r.iova, r.last, out);
}

/** The type1 invariants over the containers the step touched (all of them for a full check). */
export function checkType1(st: State, scope: Scope, out: InvariantViolation[]): void {
  if (!scope.all && scope.containers.size === 0) return;
  for (const c of st.containers.values()) {
    if (!scope.all && !scope.containers.has(c.id)) continue;
    const dom = c.iommu?.domain;
    checkContainer(st, c, scope.all ? 'all' : (dom === undefined ? undefined : scope.domains.get(dom)) ?? [], out);
  }
}

type Type1Monitored = Extract<DomainEvent, { type: 'VfioDmaLinked' | 'VfioDmaRemoved' | 'VfioPfnPinned' | 'VfioPfnUnpinned' | 'VfioPfnRefChanged' |
  'VfioDmaOwnerChanged' | 'VfioDmaPinsSet' | 'ProcessExeced' | 'Type1EmulatedGroupAdded' | 'Type1EmulatedGroupRemoved' | 'VfioDmaDirtied' | 'MdevDriverPins' }>;

/**
 * The invariant monitor's bookkeeping for a type1 event, before it is folded: what it touches (scope), and the totals
 * the accounting and frame checks compare against (the live mm's type1 charge; FOLL_PINs of dmas and vpfns).
 */
export function type1Before(st: State, ev: Type1Monitored, s: Scope, totals: { frames: RangeMap; type1LockedVm: number }): void {
  const frames = (runs: readonly { readonly frame: number; readonly npages: number }[], d: number): void => {
    for (const r of runs) {
      s.frames.push({ start: r.frame, last: r.frame + r.npages - 1 });
      try { totals.frames.add(r.frame, r.frame + r.npages - 1, d); } catch { /* the projection reports it */ }
    }
  };
  if (ev.type === 'ProcessExeced') {
    // Every charge so far stays with the old mm; the new one starts at 0.
    totals.type1LockedVm = 0;
    s.accounting = true;
    return;
  }
  s.containers.add(ev.container);
  if (ev.type === 'Type1EmulatedGroupAdded' || ev.type === 'Type1EmulatedGroupRemoved' || ev.type === 'VfioDmaDirtied' || ev.type === 'MdevDriverPins') return;
  s.accounting = true;
  const i = st.containers.get(ev.container)?.iommu;
  if (ev.type === 'VfioDmaLinked') {
    // A type1 vfio_dma's pins count on their frames like an iopt_pages'.
    if (i?.domain !== undefined) scopeAddDomain(s, i.domain, ev.iova, ev.iova + ev.size - 1n);
    if (ev.mm === st.mmId) totals.type1LockedVm += ev.lockedVm;
    frames(ev.pinned, 1);
    return;
  }
  const at = ev.type === 'VfioPfnPinned' || ev.type === 'VfioPfnUnpinned' || ev.type === 'VfioPfnRefChanged' ? ev.dma : ev.iova;
  const dma = i?.dmas.iterFirst(at, at)?.value;
  if (dma === undefined) return;
  const live = dma.mm === st.mmId;
  if (ev.type === 'VfioDmaRemoved' || ev.type === 'VfioDmaPinsSet') {
    if (i?.domain !== undefined) scopeAddDomain(s, i.domain, dma.iova, dma.iova + dma.size - 1n);
    frames(dma.pinned, -1);
  }
  switch (ev.type) {
    case 'VfioDmaRemoved':
      if (live) totals.type1LockedVm -= dma.lockedVm;
      // External pins left on a removed dma: nothing holds them any more (vfio_remove_dma only WARNs).
      frames([...dma.vpfns.values()].filter((v) => v.ram).map((v) => ({ frame: Number(v.pfn), npages: 1 })), -1);
      return;
    case 'VfioDmaPinsSet':
      frames(ev.pinned, 1);
      if (live) totals.type1LockedVm += ev.lockedVm - dma.lockedVm;
      return;
    case 'VfioPfnPinned':
      if (ev.ram) frames([{ frame: Number(ev.pfn), npages: 1 }], 1);
      if (ev.charged && live) totals.type1LockedVm++;
      return;
    case 'VfioPfnUnpinned': {
      const v = dma.vpfns.get(ev.iova);
      if (v?.ram === true) frames([{ frame: Number(v.pfn), npages: 1 }], -1);
      if (ev.uncharged && live) totals.type1LockedVm--;
      return;
    }
    case 'VfioDmaOwnerChanged':
      totals.type1LockedVm += (ev.mm === st.mmId ? dma.lockedVm : 0) - (live ? dma.lockedVm : 0);
      return;
    case 'VfioPfnRefChanged':
      return;
  }
}
