/**
 * The legacy VFIO container and its type1 IOMMU state (drivers/vfio/container.c `struct vfio_container`,
 * drivers/vfio/vfio_iommu_type1.c `struct vfio_iommu` and `struct vfio_dma`), and their projection.
 *
 * Theory of operation. A container holds groups (most recently added first, `container->group_list`) and, once
 * VFIO_SET_IOMMU succeeded, a type1 instance (`iommu_data`). The instance keeps its mappings in `dma_list`, an
 * rb-tree of closed, pairwise disjoint intervals [iova, iova + size - 1] — here the shared interval tree — never
 * merged and never split (`vfio_dma_do_map`, `vfio_dma_do_unmap`). `dma_avail` starts at the module parameter
 * `dma_entry_limit` and counts down per vfio_dma. Hardware groups share one `vfio_domain` per container in this
 * model (the kernel joins an existing domain when the IOMMU ops and coherency match, `vfio_iommu_type1_attach_group`,
 * which is the case for every device a trace header describes); `iova_list` is the domain's aperture minus the
 * groups' reserved regions (`vfio_iommu_aper_resize`, `vfio_iommu_resv_exclude`), empty when no domain.
 *
 * A vfio_dma remembers the frames it pinned (`vfio_pin_pages_remote`) and the pages it charged to the mapper's
 * `mm->locked_vm` (`dma->locked_vm`), so `vfio_remove_dma` gives back exactly what the MAP took.
 * Only `type1Evolve` changes this state; the handlers (machines/vfio_type1*.ts) decide the events.
 */
import type { DomainEvent } from '../events/domain.js';
import { IntervalTree } from './interval_tree.js';
import { seeded, vpfnEvolve } from './type1_vpfn.js';

/** A run of consecutive frames one vfio_dma pinned (one FOLL_PIN reference each). */
export interface FrameRun {
  readonly frame: number;
  readonly npages: number;
}

export interface VfioDma {
  readonly iova: bigint;
  readonly size: bigint;
  readonly vaddr: bigint;
  /** IOMMU_READ 1 | IOMMU_WRITE 2. */
  readonly prot: number;
  /** `capable(CAP_IPC_LOCK)` of the mapper at MAP time. */
  readonly lockCap: boolean;
  /** What this dma pinned; PFNMAP chunks (`has_rsvd`) pin nothing. */
  readonly pinned: readonly FrameRun[];
  /** `dma->locked_vm`: pages charged to the mapper's mm. */
  readonly lockedVm: number;
  readonly hasRsvd: boolean;
  /** `dma->vaddr_invalid`: UNMAP(VADDR) done, MAP(VADDR) not yet (live update across exec). */
  readonly vaddrInvalid: boolean;
  /**
   * While dirty tracking is on: the bits of `dma->bitmap` past its first `size >> pgshift` (bit 0 here is bit
   * nbits there), which a report that shifted and OR-merged the bitmap leaves behind (machines/vfio_type1_dirty.ts).
   */
  readonly bitmapTail: bigint;
  /** `dma->mm`: the mm its charges go to (State.mmId; an exec leaves it on the old, dead mm until MAP_DMA VADDR). */
  readonly mm: number;
  /** `dma->iommu_mapped`: mapped into the hardware domain (false for a dma mapped with emulated groups only). */
  readonly iommuMapped: boolean;
  /** `dma->pfn_list`: the external (mdev) pins, by exact IOVA (hw/type1_vpfn.ts). */
  readonly vpfns: ReadonlyMap<bigint, Vpfn>;
  /** While tracking: the set bits among the dma's first nbits (page indices, ascending), and whether all are set. */
  readonly dirty: readonly bigint[];
  readonly dirtyFull: boolean;
}

/** A `struct vfio_pfn`: an external pin of the page behind an exact IOVA. */
export interface Vpfn {
  readonly pfn: bigint;
  /** The pfn has a struct page (`pfn_valid`): the vpfn holds a FOLL_PIN on frame `pfn`. */
  readonly ram: boolean;
  readonly ref: number;
}

export interface IovaRange {
  readonly start: bigint;
  readonly last: bigint;
}

export interface Type1Iommu {
  /** SET_IOMMU(VFIO_TYPE1v2_IOMMU): the v2 unmap rules. */
  readonly v2: boolean;
  /** `dma_entry_limit` when the instance was opened (`dma_avail` starts there). */
  readonly dmaLimit: number;
  dmaAvail: number;
  /** The hardware domain every attached group translates through, once one is attached. */
  domain: number | undefined;
  /** The groups attached to the hardware domain. */
  readonly domainGroups: number[];
  /** `iommu->emulated_iommu_groups`: mdev groups (no domain, pinned-page dirty scope), most recently added first. */
  readonly emulatedGroups: number[];
  /** The dmas (by iova) whose `pfn_list` is not empty: an index, so that checks need not walk every dma. */
  readonly vpfnDmas: Set<bigint>;
  iovaList: readonly IovaRange[];
  pgsizeBitmap: bigint;
  readonly dmas: IntervalTree<VfioDma>;
  /** `iommu->dirty_page_tracking`: VFIO_IOMMU_DIRTY_PAGES START done, STOP not yet; every dma has a bitmap. */
  dirtyTracking: boolean;
}

export interface VfioContainer {
  readonly id: number;
  /** `container->group_list`, most recently added first. */
  readonly groups: number[];
  /** The type1 instance, while a driver is set. */
  iommu: Type1Iommu | undefined;
}

export type Type1Event = Extract<DomainEvent, {
  type: 'VfioContainerOpened' | 'VfioContainerGroupAdded' | 'VfioContainerGroupRemoved' | 'Type1IommuOpened' |
  'Type1IommuReleased' | 'Type1DomainAttached' | 'Type1DomainDetached' | 'VfioDmaLinked' | 'VfioDmaRemoved' |
  'VfioDmaVaddrInvalidated' | 'VfioDmaVaddrUpdated' | 'Type1DirtyTrackingSet' | 'VfioDmaBitmapReported' |
  'Type1EmulatedGroupAdded' | 'Type1EmulatedGroupRemoved' | 'VfioPfnPinned' | 'VfioPfnRefChanged' | 'VfioPfnUnpinned' |
  'VfioDmaOwnerChanged' | 'VfioDmaPinsSet' | 'VfioDmaDirtied';
}>;

/** `vfio_find_dma`: some dma overlapping [start, last] (the kernel returns whichever the rb-tree walk meets). */
export const vfio_find_dma = (i: Type1Iommu, start: bigint, last: bigint): VfioDma | undefined => i.dmas.iterFirst(start, last)?.value;

/** The dmas overlapping [start, last], lowest first (`vfio_find_dma_first_node` and rb_next). */
export function dmasIn(i: Type1Iommu, start: bigint, last: bigint): VfioDma[] {
  return [...i.dmas.intersecting(start, last)].map((n) => n.value);
}

export const dmaLast = (d: VfioDma): bigint => d.iova + d.size - 1n;

/** `1 << __ffs(iommu->pgsize_bitmap)`: the alignment every MAP/UNMAP argument needs, and the dirty bitmap's page. */
export const type1PageSize = (i: Type1Iommu): bigint => i.pgsizeBitmap & -i.pgsizeBitmap;

/**
 * The v2 rule that a range may not bisect a mapping (`vfio_dma_do_unmap`, `vfio_iova_dirty_bitmap`): a dma holding
 * `iova` must start there (`vfio_find_dma(iova, 1)`), one holding `last` must end there (`vfio_find_dma(last, 0)`).
 * Why the range [iova, last] breaks it, or undefined.
 */
export function bisectWhy(i: Type1Iommu, iova: bigint, last: bigint): string | undefined {
  const hex = (v: bigint): string => `0x${v.toString(16)}`;
  const lo = vfio_find_dma(i, iova, iova);
  if (lo !== undefined && lo.iova !== iova) return `the vfio_dma [${hex(lo.iova)}, ${hex(dmaLast(lo))}] contains iova ${hex(iova)} but starts below it`;
  const hi = vfio_find_dma(i, last, last);
  if (hi !== undefined && dmaLast(hi) !== last) return `the vfio_dma [${hex(hi.iova)}, ${hex(dmaLast(hi))}] contains the range end ${hex(last)} but ends past it`;
  return undefined;
}

/** `iommu->vaddr_invalid_count`. */
export function vaddrInvalidCount(i: Type1Iommu): number {
  let n = 0;
  for (const d of i.dmas.inOrder()) if (d.value.vaddrInvalid) n++;
  return n;
}

export function containerOf(containers: ReadonlyMap<number, VfioContainer>, group: number): VfioContainer | undefined {
  for (const c of containers.values()) if (c.groups.includes(group)) return c;
  return undefined;
}

export class Type1Error extends Error {}

function get(m: Map<number, VfioContainer>, id: number): VfioContainer {
  const c = m.get(id);
  if (c === undefined) throw new Type1Error(`no VFIO container ${id}`);
  return c;
}
function iommuOf(m: Map<number, VfioContainer>, id: number): Type1Iommu {
  const i = get(m, id).iommu;
  if (i === undefined) throw new Type1Error(`container ${id} has no type1 IOMMU`);
  return i;
}

export function type1Evolve(m: Map<number, VfioContainer>, ev: Type1Event, pageSize: number): void {
  switch (ev.type) {
    case 'VfioContainerOpened':
      if (m.has(ev.container)) throw new Type1Error(`container ${ev.container} exists`);
      m.set(ev.container, { id: ev.container, groups: [], iommu: undefined });
      return;
    case 'VfioContainerGroupAdded': {
      for (const c of m.values()) if (c.groups.includes(ev.group)) throw new Type1Error(`group ${ev.group} is already in container ${c.id}`);
      get(m, ev.container).groups.unshift(ev.group);
      return;
    }
    case 'VfioContainerGroupRemoved': {
      const c = get(m, ev.container);
      const at = c.groups.indexOf(ev.group);
      if (at < 0) throw new Type1Error(`group ${ev.group} is not in container ${ev.container}`);
      c.groups.splice(at, 1);
      return;
    }
    case 'Type1IommuOpened': {
      const c = get(m, ev.container);
      if (c.iommu !== undefined) throw new Type1Error(`container ${ev.container} already has a driver`);
      c.iommu = {
        v2: ev.v2, dmaLimit: ev.dmaAvail, dmaAvail: ev.dmaAvail, domain: undefined, domainGroups: [], emulatedGroups: [], vpfnDmas: new Set(), iovaList: [],
        pgsizeBitmap: BigInt.asUintN(64, ~(BigInt(pageSize) - 1n)), dmas: new IntervalTree(), dirtyTracking: false,
      };
      return;
    }
    case 'Type1IommuReleased': {
      const i = iommuOf(m, ev.container);
      if (!i.dmas.isEmpty || i.domain !== undefined || i.emulatedGroups.length > 0) throw new Type1Error(`type1 of container ${ev.container} released with mappings, a domain or a group`);
      get(m, ev.container).iommu = undefined;
      return;
    }
    case 'Type1DomainAttached': {
      const i = iommuOf(m, ev.container);
      if (i.domain !== undefined && i.domain !== ev.domain) throw new Type1Error(`container ${ev.container} already uses domain ${i.domain}`);
      if (i.domainGroups.includes(ev.group)) throw new Type1Error(`group ${ev.group} is already attached`);
      i.domain = ev.domain;
      i.domainGroups.push(ev.group);
      i.iovaList = ev.iovaList;
      i.pgsizeBitmap = ev.pgsizeBitmap;
      return;
    }
    case 'Type1DomainDetached': {
      const i = iommuOf(m, ev.container);
      const at = i.domainGroups.indexOf(ev.group);
      if (at < 0) throw new Type1Error(`group ${ev.group} is not attached to container ${ev.container}`);
      i.domainGroups.splice(at, 1);
      i.iovaList = ev.iovaList;
      i.pgsizeBitmap = ev.pgsizeBitmap;
      if (i.domainGroups.length === 0) {
        // vfio_iommu_unmap_unpin_all, or (emulated groups remain) vfio_iommu_unmap_unpin_reaccount.
        for (const n of i.dmas.inOrder()) if (n.value.iommuMapped) throw new Type1Error(`last hardware group left container ${ev.container} with the dma at ${n.start} still mapped`);
        if (!i.dmas.isEmpty && i.emulatedGroups.length === 0) throw new Type1Error(`last group left container ${ev.container} with mappings`);
        i.domain = undefined;
      }
      // A group without pinned-page dirty scope leaving: vfio_iommu_populate_bitmap_full.
      if (i.dirtyTracking) for (const n of i.dmas.inOrder()) n.value = { ...n.value, dirtyFull: true };
      return;
    }
    case 'Type1EmulatedGroupAdded': case 'Type1EmulatedGroupRemoved': {
      const i = iommuOf(m, ev.container);
      const at = i.emulatedGroups.indexOf(ev.group);
      if ((at >= 0) === (ev.type === 'Type1EmulatedGroupAdded')) throw new Type1Error(`emulated group ${ev.group} is ${at >= 0 ? 'already' : 'not'} in container ${ev.container}`);
      if (at >= 0) i.emulatedGroups.splice(at, 1);
      else i.emulatedGroups.unshift(ev.group);
      if (i.emulatedGroups.length === 0 && i.domain === undefined && !i.dmas.isEmpty) throw new Type1Error(`the last emulated group left container ${ev.container} with mappings`);
      return;
    }
    case 'VfioPfnPinned': case 'VfioPfnRefChanged': case 'VfioPfnUnpinned': case 'VfioDmaOwnerChanged': case 'VfioDmaPinsSet': case 'VfioDmaDirtied':
      vpfnEvolve(iommuOf(m, ev.container), ev);
      return;
    case 'VfioDmaLinked': {
      const i = iommuOf(m, ev.container);
      const last = ev.iova + ev.size - 1n;
      if (i.dmas.iterFirst(ev.iova, last) !== undefined) throw new Type1Error(`vfio_dma [${ev.iova}, ${last}] overlaps another`);
      // dma_avail going below 0 is what the invariant `type1-dma-limit` reports (CVE-2019-3882), not a refusal here.
      const { iova, size, vaddr, prot, lockCap, pinned, lockedVm, hasRsvd, mm } = ev;
      if (ev.mapped !== (i.domain !== undefined)) throw new Type1Error(`vfio_dma [${ev.iova}, ${last}] ${ev.mapped ? 'mapped without' : 'not mapped with'} a hardware domain`);
      i.dmas.insert(iova, last, { iova, size, vaddr, prot, lockCap, pinned, lockedVm, hasRsvd, vaddrInvalid: false, bitmapTail: 0n, mm, iommuMapped: ev.mapped, vpfns: new Map(), dirty: [], dirtyFull: false });
      i.dmaAvail--;
      return;
    }
    case 'VfioDmaRemoved': {
      const i = iommuOf(m, ev.container);
      const n = i.dmas.iterFirst(ev.iova, ev.iova);
      if (n === undefined || n.start !== ev.iova) throw new Type1Error(`no vfio_dma at ${ev.iova}`);
      i.dmas.remove(n);
      i.vpfnDmas.delete(ev.iova);
      i.dmaAvail++;
      return;
    }
    case 'VfioDmaVaddrInvalidated':
    case 'VfioDmaVaddrUpdated': {
      const n = iommuOf(m, ev.container).dmas.iterFirst(ev.iova, ev.iova);
      if (n === undefined || n.start !== ev.iova) throw new Type1Error(`no vfio_dma at ${ev.iova}`);
      const invalidate = ev.type === 'VfioDmaVaddrInvalidated';
      if (n.value.vaddrInvalid === invalidate) throw new Type1Error(`vfio_dma at ${ev.iova} is already ${invalidate ? 'invalid' : 'valid'}`);
      n.value = { ...n.value, vaddrInvalid: invalidate, vaddr: ev.type === 'VfioDmaVaddrUpdated' ? ev.vaddr : n.value.vaddr };
      return;
    }
    case 'Type1DirtyTrackingSet': {
      const i = iommuOf(m, ev.container);
      if (i.dirtyTracking === ev.enabled) throw new Type1Error(`container ${ev.container}: dirty tracking is already ${ev.enabled ? 'on' : 'off'}`);
      i.dirtyTracking = ev.enabled;
      // START allocates zeroed bitmaps (kvzalloc) seeded with the external pins (vfio_dma_populate_bitmap); STOP frees them.
      for (const n of i.dmas.inOrder()) n.value = { ...n.value, bitmapTail: 0n, dirty: ev.enabled ? seeded(i, n.value) : [], dirtyFull: false };
      return;
    }
    case 'VfioDmaBitmapReported': {
      const i = iommuOf(m, ev.container);
      if (!i.dirtyTracking) throw new Type1Error(`container ${ev.container}: a dma bitmap reported with dirty tracking off`);
      const n = i.dmas.iterFirst(ev.iova, ev.iova);
      if (n === undefined || n.start !== ev.iova) throw new Type1Error(`no vfio_dma at ${ev.iova}`);
      // bitmap_clear of the first nbits, then vfio_dma_populate_bitmap: only the external pins stay dirty.
      n.value = { ...n.value, bitmapTail: ev.tail, dirty: seeded(i, n.value), dirtyFull: false };
      return;
    }
  }
}

export function cloneContainers(m: ReadonlyMap<number, VfioContainer>): Map<number, VfioContainer> {
  const out = new Map<number, VfioContainer>();
  for (const [id, c] of m) {
    const i = c.iommu;
    let iommu: Type1Iommu | undefined;
    if (i !== undefined) {
      const dmas = new IntervalTree<VfioDma>();
      for (const n of i.dmas.inOrder()) dmas.insert(n.start, n.last, n.value);
      iommu = { ...i, domainGroups: i.domainGroups.slice(), emulatedGroups: i.emulatedGroups.slice(), vpfnDmas: new Set(i.vpfnDmas), dmas };
    }
    out.set(id, { id, groups: c.groups.slice(), iommu });
  }
  return out;
}
