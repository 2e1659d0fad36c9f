/**
 * The external pins of a type1 vfio_dma (drivers/vfio/vfio_iommu_type1.c `struct vfio_pfn`, `dma->pfn_list`,
 * `vfio_find_vpfn`, `vfio_link_pfn`, `vfio_iova_get_vfio_pfn`, `vfio_iova_put_vfio_pfn`), and the dma fields that
 * change after it is linked: its owner mm (`vfio_change_dma_owner`), its IOMMU pins and charge
 * (`vfio_iommu_unmap_unpin_reaccount`) and its dirty bits (`vfio_dma_rw`, pins while tracking).
 *
 * Theory of operation. A mediated device's driver pins guest IOVAs one page at a time (`vfio_pin_pages`): each pin of
 * an IOVA that has no vpfn yet pins the page behind `dma->vaddr + (iova - dma->iova)` in the dma's mm and links a vpfn
 * keyed by that exact IOVA with ref_count 1; pinning the same IOVA again only takes a reference. The key is the exact
 * IOVA, not its page: two pins at IOVAs that share a page are two vpfns, each with its own page pin. Unpinning drops a
 * reference, and the last one unpins the page and unlinks the vpfn. Only `type1Evolve` (hw/vfio_dma.ts) calls
 * `vpfnEvolve`; the handlers are machines/vfio_type1_mdev.ts.
 */
import type { DomainEvent } from '../events/domain.js';
import { isMutant } from '../check/mutants.js';
import { Type1Error, type Type1Iommu, type VfioDma, type Vpfn } from './vfio_dma.js';

type VpfnEvent = Extract<DomainEvent, { type: 'VfioPfnPinned' | 'VfioPfnRefChanged' | 'VfioPfnUnpinned' | 'VfioDmaOwnerChanged' | 'VfioDmaPinsSet' | 'VfioDmaDirtied' }>;

/**
 * `vfio_find_vpfn(dma, iova)`: the vpfn keyed by exactly `iova`. Mutant type1-vpfn-range-lookup (S13): 492d1e9f0df7
 * looked up any vpfn in [iova, iova + PAGE_SIZE), whichever the rb-tree walk meets first; the model takes the highest,
 * one of the walk's possible answers.
 */
export function findVpfn(vpfns: ReadonlyMap<bigint, Vpfn>, iova: bigint, pageSize: number): { iova: bigint; v: Vpfn } | undefined {
  if (isMutant('type1-vpfn-range-lookup')) {
    let hit: { iova: bigint; v: Vpfn } | undefined;
    for (const [k, v] of vpfns) if (k >= iova && k < iova + BigInt(pageSize) && (hit === undefined || k > hit.iova)) hit = { iova: k, v };
    return hit;
  }
  const v = vpfns.get(iova);
  return v === undefined ? undefined : { iova, v };
}

/** `__ffs(iommu->pgsize_bitmap)`: the dirty bitmap's page shift. */
export function pgshiftOf(i: Type1Iommu): bigint {
  const low = i.pgsizeBitmap & -i.pgsizeBitmap;
  let n = 0n;
  while ((1n << n) < low) n++;
  return n;
}

/** `vfio_dma_populate_bitmap`: one bit per vpfn, at its IOVA's page (ascending, unique). */
export function seeded(i: Type1Iommu, dma: VfioDma): bigint[] {
  const sh = pgshiftOf(i);
  return [...new Set([...dma.vpfns.keys()].filter((k) => k >= dma.iova).map((k) => (k - dma.iova) >> sh))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

const withBits = (dirty: readonly bigint[], first: bigint, last: bigint): bigint[] => {
  const s = new Set(dirty);
  for (let b = first; b <= last; b++) s.add(b);
  return [...s].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
};

export function vpfnEvolve(i: Type1Iommu, ev: VpfnEvent): void {
  const key = ev.type === 'VfioPfnPinned' || ev.type === 'VfioPfnRefChanged' || ev.type === 'VfioPfnUnpinned' ? ev.dma : ev.iova;
  const n = i.dmas.iterFirst(key, key);
  if (n === undefined || n.start !== key) throw new Type1Error(`no vfio_dma at ${key}`);
  const d = n.value;
  switch (ev.type) {
    case 'VfioPfnPinned': {
      // The IOVA may lie below the dma: vfio_find_dma(iova, PAGE_SIZE) meets a dma its unaligned page reaches into.
      if (ev.iova > n.last) throw new Type1Error(`vpfn ${ev.iova} past the vfio_dma at ${d.iova}`);
      if (d.vpfns.has(ev.iova)) throw new Type1Error(`vpfn ${ev.iova} of the vfio_dma at ${d.iova} is already linked`);
      const vpfns = new Map(d.vpfns).set(ev.iova, { pfn: ev.pfn, ram: ev.ram, ref: 1 });
      // vfio_iommu_type1_pin_pages sets the page's bit while tracking (an IOVA below the dma: a bit before the bitmap, not kept).
      const bit = (ev.iova - d.iova) >> pgshiftOf(i);
      const dirty = i.dirtyTracking && bit >= 0n ? withBits(d.dirty, bit, bit) : d.dirty;
      n.value = { ...d, vpfns, dirty, lockedVm: d.lockedVm + (ev.charged ? 1 : 0) };
      i.vpfnDmas.add(d.iova);
      return;
    }
    case 'VfioPfnRefChanged': case 'VfioPfnUnpinned': {
      const v = d.vpfns.get(ev.iova);
      if (v === undefined) throw new Type1Error(`no vpfn ${ev.iova} in the vfio_dma at ${d.iova}`);
      const ref = v.ref + (ev.type === 'VfioPfnRefChanged' ? ev.delta : -1);
      if ((ref === 0) !== (ev.type === 'VfioPfnUnpinned') || ref < 0) throw new Type1Error(`vpfn ${ev.iova}: ref_count ${v.ref} -> ${ref} by ${ev.type}`);
      const vpfns = new Map(d.vpfns);
      if (ref === 0) vpfns.delete(ev.iova);
      else vpfns.set(ev.iova, { ...v, ref });
      n.value = { ...d, vpfns, lockedVm: d.lockedVm - (ev.type === 'VfioPfnUnpinned' && ev.uncharged ? 1 : 0) };
      if (vpfns.size === 0) i.vpfnDmas.delete(d.iova);
      return;
    }
    case 'VfioDmaOwnerChanged':
      n.value = { ...d, mm: ev.mm, lockCap: ev.lockCap };
      return;
    case 'VfioDmaPinsSet':
      n.value = { ...d, pinned: ev.pinned, lockedVm: ev.lockedVm, iommuMapped: ev.mapped };
      return;
    case 'VfioDmaDirtied':
      if (i.dirtyTracking) n.value = { ...d, dirty: withBits(d.dirty, ev.first, ev.last) };
      return;
  }
}
