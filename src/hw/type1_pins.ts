/**
 * Type1 pinning, mapping and locked_vm accounting (drivers/vfio/vfio_iommu_type1.c `vfio_pin_map_dma`,
 * `vfio_pin_pages_remote`, `vaddr_get_pfns`, `follow_fault_pfn`, `vfio_lock_acct`, `vfio_unmap_unpin`,
 * `vfio_remove_dma`).
 *
 * Theory of operation. A MAP pins the user pages of [vaddr, vaddr + size) through the mm model's GUP
 * (`pinUserRange`, FOLL_LONGTERM, FOLL_WRITE with IOMMU_WRITE), maps each physically contiguous run into the
 * container's domain, and charges the pages to the mapper's `mm->locked_vm` — the same counter mlock and iommufd's
 * MM accounting use — unless the mapper holds CAP_IPC_LOCK, in which case locked_vm still grows but the limit is
 * not checked. The limit test is `locked_vm + new pages > RLIMIT_MEMLOCK >> PAGE_SHIFT` (strictly greater, so
 * reaching the limit exactly is allowed). A VMA with VM_PFNMAP (a VFIO BAR mmap, `vfio_pci_core_mmap`) makes GUP
 * fail; type1 then maps the raw PFNs the fault handler inserts (`follow_fault_pfn`): nothing is pinned or charged
 * and the dma is `has_rsvd`. A MAP is all or nothing: on any failure nothing stays pinned, mapped or charged.
 * Unmap: unmap the IOVA range from the domain, flush the IOTLB, unpin, un-charge (`vfio_unmap_unpin`).
 *
 * Simplification: on ENOMEM the kernel has already faulted in (and then unpinned) the pages below the limit; the
 * model faults nothing in. Only the outcome and the pins/charges are compared, which agree.
 */
import type { DomainEvent } from '../events/domain.js';
import type { TraceHeader } from '../events/header.js';
import type { State } from '../projections/state.js';
import { flushEvents } from './iotlb.js';
import { isMmFault, mmDraft, pinUserRange, unpinFrames, type MmDraft } from './mm.js';
import { IOMMU_WRITE } from './io_pagetable.js';
import { dmaLast, type FrameRun, type VfioDma } from './vfio_dma.js';
import type { Failure } from './iopt_ops.js';
import { pfnmapFrames, pfnmapVmaOf } from './vfio_bar.js';
import { isMutant } from '../check/mutants.js';
import { zeroPagePinRuns } from '../check/mutant_ops.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

export interface PinnedDma {
  readonly events: DomainEvent[];
  readonly pinned: FrameRun[];
  readonly lockedVm: number;
  readonly hasRsvd: boolean;
  readonly why: string;
}

/** RLIMIT_MEMLOCK in pages (`rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT`), undefined for RLIM_INFINITY. */
export function memlockPages(h: TraceHeader, pageSize: number): number | undefined {
  const m = h.limits.memlock;
  return m === 'unlimited' ? undefined : Number(m / BigInt(pageSize));
}

/**
 * `vfio_iommu_unmap_unpin_reaccount` (the last hardware domain goes, emulated groups stay): the dma is unmapped and
 * its IOMMU pins put, and its charge becomes its external pins of pages with a struct page
 * (`vfio_lock_acct(dma, locked - unlocked, true)`: nothing when its mm is gone).
 */
export function reaccountDma(st: State, container: number, domain: number, dma: VfioDma, draft: MmDraft): DomainEvent[] {
  const last = dmaLast(dma);
  const events: DomainEvent[] = [{ type: 'DomainUnmapped', domain, iova: dma.iova, last }, ...flushEvents(st.domains.get(domain), dma.iova, last)];
  if (dma.pinned.length > 0) events.push(...unpinFrames(draft, dma.pinned).events);
  const unlocked = dma.pinned.reduce((a, r) => a + r.npages, 0);
  const locked = [...dma.vpfns.values()].filter((v) => v.ram).length;
  const alive = dma.mm === st.mmId && locked - unlocked !== 0;
  if (alive) events.push({ type: 'LockedVmAccounted', npages: locked - unlocked });
  events.push({ type: 'VfioDmaPinsSet', container, iova: dma.iova, pinned: [], lockedVm: alive ? dma.lockedVm + locked - unlocked : dma.lockedVm, mapped: false });
  return events;
}

/** `vfio_pin_map_dma` of a new dma [iova, iova + size) from `vaddr` into `domain`. */
export function vfio_pin_map_dma(st: State, h: TraceHeader, domain: number, iova: bigint, vaddr: bigint, size: bigint, prot: number, lockCap: boolean): PinnedDma | Failure {
  const ps = BigInt(st.pageSize);
  let npages = Number(size / ps);
  const write = (prot & IOMMU_WRITE) !== 0;
  const pfnmap = pfnmapVmaOf(st, vaddr);
  if (pfnmap !== undefined) {
    // vaddr_get_pfns: GUP refuses VM_IO|VM_PFNMAP; follow_fault_pfn maps the BAR's PFNs, unpinned and uncharged.
    const r = pfnmapFrames(st, (path) => h.devices.findIndex((d) => d.path === path), vaddr, size, write);
    if ('errno' in r) return r;
    const events: DomainEvent[] = [];
    for (const run of r.runs) events.push({ type: 'DomainMapped', domain, iova: iova + run.offset, last: iova + run.offset + run.length - 1n, phys: run.phys });
    return { events, pinned: [], lockedVm: 0, hasRsvd: true, why: `vfio_iommu_type1.c vaddr_get_pfns: ${hex(vaddr)} is a VM_PFNMAP VMA (${r.what}): follow_fault_pfn maps its PFNs, nothing pinned or charged` };
  }
  const limit = memlockPages(h, st.pageSize);
  const locked = st.accounting.mmLockedVm;
  if (!lockCap && limit !== undefined && locked + npages > limit)
    return { errno: 'ENOMEM', why: `vfio_iommu_type1.c vfio_pin_pages_remote: locked_vm ${locked} + ${npages} page(s) > RLIMIT_MEMLOCK ${limit} page(s) and no CAP_IPC_LOCK (dmesg 'vfio_pin_pages_remote: RLIMIT_MEMLOCK (${limit * st.pageSize}) exceeded'); the MAP is rolled back` };
  // vaddr_get_pfns → pin_user_pages_remote; a VA that GUP cannot pin and that is not PFNMAP is its error.
  const r = pinUserRange(st.mm, st.memory, st.pageSize, vaddr, npages, write);
  if (isMmFault(r)) return { errno: r.errno === 'EACCES' ? 'EFAULT' : r.errno, why: `vfio_iommu_type1.c vaddr_get_pfns: ${r.why}; the MAP is rolled back` };
  const events: DomainEvent[] = [...r.events];
  const pinned: FrameRun[] = [];
  for (const run of r.runs) {
    const off = run.start - vaddr;
    events.push({ type: 'DomainMapped', domain, iova: iova + off, last: iova + off + BigInt(run.npages) * ps - 1n, phys: BigInt(run.frame) * ps });
    pinned.push({ frame: run.frame, npages: run.npages });
  }
  let zeroRsvd = false;
  if (isMutant('type1-zero-page-pin') && !write) {
    // The zero page counts as reserved: mapped, never charged, never unpinned (mutant_ops.ts zeroPagePinRuns).
    const z = zeroPagePinRuns(r.events, r.runs, st.pageSize);
    pinned.splice(0, pinned.length, ...z.runs.map((x) => ({ frame: x.frame, npages: x.npages })));
    npages -= z.zero;
    zeroRsvd = z.zero > 0;
  }
  events.push({ type: 'LockedVmAccounted', npages });
  const capNote = lockCap ? ' (CAP_IPC_LOCK: the limit is not checked, locked_vm still grows)' : limit === undefined ? ' (RLIMIT_MEMLOCK unlimited)' : ` of ${limit}`;
  return { events, pinned, lockedVm: npages, hasRsvd: zeroRsvd, why: `vfio_iommu_type1.c vfio_pin_map_dma: ${npages} page(s) pinned, mapped and charged, locked_vm ${locked} -> ${locked + npages}${capNote}` };
}

/**
 * `vfio_remove_dma` → `vfio_unmap_unpin`: unmap from the domain, flush, unpin, un-charge, unlink. Several removals
 * in one call share `draft`, so a frame two dmas pinned is freed only by its last unpin.
 */
export function vfio_remove_dma(st: State, container: number, domain: number | undefined, dma: VfioDma, draft: MmDraft): DomainEvent[] {
  const events: DomainEvent[] = [];
  const last = dmaLast(dma);
  if (domain !== undefined) {
    events.push({ type: 'DomainUnmapped', domain, iova: dma.iova, last }, ...flushEvents(st.domains.get(domain), dma.iova, last));
    if (dma.pinned.length > 0) events.push(...unpinFrames(draft, dma.pinned).events);
  }
  // vfio_lock_acct(dma, -unlocked, true): async, so nothing when the dma's mm is gone (exec; mmget_not_zero fails).
  if (dma.lockedVm !== 0 && dma.mm === st.mmId) events.push({ type: 'LockedVmAccounted', npages: -dma.lockedVm });
  events.push({ type: 'VfioDmaRemoved', container, iova: dma.iova });
  return events;
}

/**
 * `vfio_change_dma_owner` (MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR): from another mm than the dma's (after an exec), the
 * dma's charge moves to the caller's mm, checked against its RLIMIT_MEMLOCK with the caller's CAP_IPC_LOCK (ENOMEM
 * leaves everything as it was); the old mm is un-charged only if it still lives, which after an exec it does not.
 * Mutant type1-exec-locked-vm (S6): before 046eca5018f8 the charge never moved, and every later (un)charge went to
 * the mm of the dma's task as it was then: the new mm, which an UNMAP then un-charges without having been charged.
 */
export function changeDmaOwner(k: { readonly st: State; readonly header: TraceHeader }, c: { readonly id: number }, dma: VfioDma): { events: DomainEvent[]; why: string } | Failure {
  const st = k.st;
  if (dma.mm === st.mmId) return { events: [], why: '' };
  const lockCap = k.header.limits.cap_ipc_lock;
  const moved: DomainEvent = { type: 'VfioDmaOwnerChanged', container: c.id, iova: dma.iova, mm: st.mmId, lockCap };
  if (isMutant('type1-exec-locked-vm')) return { events: [moved], why: `; the dma now follows mm ${st.mmId} (its charge stays with mm ${dma.mm})` };
  const limit = memlockPages(k.header, st.pageSize);
  const locked = st.accounting.mmLockedVm;
  if (!lockCap && limit !== undefined && dma.lockedVm > 0 && locked + dma.lockedVm > limit)
    return { errno: 'ENOMEM', why: `vfio_iommu_type1.c vfio_change_dma_owner: mm_lock_acct: locked_vm ${locked} + ${dma.lockedVm} > RLIMIT_MEMLOCK ${limit} page(s) of the new mm; nothing changes` };
  const charge: DomainEvent[] = dma.lockedVm !== 0 ? [{ type: 'LockedVmAccounted', npages: dma.lockedVm }] : [];
  return { events: [...charge, moved], why: `; vfio_change_dma_owner: its ${dma.lockedVm} charged page(s) move to mm ${st.mmId} (mm ${dma.mm} is gone: nothing un-charged there)` };
}

export const unpinDraft = (st: State): MmDraft => mmDraft(st.mm, st.pageSize);
