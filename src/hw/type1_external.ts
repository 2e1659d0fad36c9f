/**
 * Type1's external pins, one page at a time (drivers/vfio/vfio_iommu_type1.c `vfio_pin_page_external`,
 * `vaddr_get_pfns`, `vfio_add_to_pfn_list`, `vfio_unpin_page_external`, `vfio_iova_put_vfio_pfn`, `vfio_lock_acct`),
 * and the draft that chains several of them in one atomic step.
 *
 * Theory of operation. `vfio_pin_page_external` pins the page behind the IOVA from the dma's own mm (`dma->mm`, which
 * must still be alive: after an exec it is not, ENODEV), with FOLL_WRITE when the dma is writable, whatever the
 * caller asked. A VM_PFNMAP VMA (a BAR mmap) gives a pfn without a struct page and without a pin, which
 * `vfio_iommu_type1_pin_pages` then refuses (`!pfn_valid` → EINVAL). Without a hardware domain each new page is
 * charged to the dma's mm (`vfio_lock_acct(dma, 1)`: RLIMIT_MEMLOCK unless the dma's lock_cap); with one, MAP_DMA
 * already pinned and charged the page and nothing more is charged. A pinned IOVA that has a vpfn only takes a
 * reference. `vfio_unpin_page_external` drops one; the last unpins the page and, without a hardware domain,
 * un-charges it (asynchronously: nothing when the dma's mm is gone).
 *
 * The draft keeps what the step decided so far: the mm draft (faults, pins), the vpfns it changed per dma, the
 * locked_vm it charged; `events` is what to emit.
 */
import type { DomainEvent } from '../events/domain.js';
import type { TraceHeader } from '../events/header.js';
import { isMutant } from '../check/mutants.js';
import type { State } from '../projections/state.js';
import type { Failure } from './iopt_ops.js';
import { IOMMU_WRITE } from './io_pagetable.js';
import { isMmFault, mmDraft, pinUserRange, unpinFrames, type MmDraft } from './mm.js';
import { memlockPages } from './type1_pins.js';
import { findVpfn } from './type1_vpfn.js';
import { pfnmapFrames, pfnmapVmaOf } from './vfio_bar.js';
import type { VfioDma, Vpfn } from './vfio_dma.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

export class ExtDraft {
  readonly events: DomainEvent[] = [];
  /** locked_vm charged to the current mm by this step so far. */
  charged = 0;
  private readonly vpfns = new Map<string, Map<bigint, Vpfn>>();
  private readonly lockedVm = new Map<string, number>();
  constructor(readonly st: State, readonly header: TraceHeader, readonly mm: MmDraft = mmDraft(st.mm, st.pageSize)) {}

  /** The dma's vpfns as this step left them. */
  vpfnsOf(c: number, dma: VfioDma): ReadonlyMap<bigint, Vpfn> {
    return this.vpfns.get(`${c}:${dma.iova}`) ?? dma.vpfns;
  }
  /** The dma as this step left it (its vpfns and `dma->locked_vm`). */
  dmaAsLeft(c: number, dma: VfioDma): VfioDma {
    return { ...dma, vpfns: this.vpfnsOf(c, dma), lockedVm: dma.lockedVm + (this.lockedVm.get(`${c}:${dma.iova}`) ?? 0) };
  }
  private charge(c: number, dma: VfioDma, n: number): void {
    const key = `${c}:${dma.iova}`;
    this.lockedVm.set(key, (this.lockedVm.get(key) ?? 0) + n);
    this.charged += n;
  }
  private set(c: number, dma: VfioDma, iova: bigint, v: Vpfn | undefined): void {
    const m = new Map(this.vpfnsOf(c, dma));
    if (v === undefined) m.delete(iova);
    else m.set(iova, v);
    this.vpfns.set(`${c}:${dma.iova}`, m);
  }

  /** `vfio_iova_get_vfio_pfn`, else `vfio_pin_page_external` + `vfio_add_to_pfn_list`, for `iova` of `dma`. */
  pinPage(c: number, dma: VfioDma, iova: bigint, doAccounting: boolean): { ok: string } | Failure | { leaked: string } {
    const fn = 'vfio_iommu_type1.c vfio_pin_page_external';
    const hit = findVpfn(this.vpfnsOf(c, dma), iova, this.st.pageSize);
    if (hit !== undefined) {
      this.events.push({ type: 'VfioPfnRefChanged', container: c, dma: dma.iova, iova: hit.iova, delta: 1 });
      this.set(c, dma, hit.iova, { ...hit.v, ref: hit.v.ref + 1 });
      return { ok: `vfio_iova_get_vfio_pfn: the vpfn at ${hex(hit.iova)} takes reference ${hit.v.ref + 1}` };
    }
    if (dma.mm !== this.st.mmId) return { errno: 'ENODEV', why: `${fn}: mmget_not_zero(dma->mm) fails: the dma's mm ${dma.mm} is gone (the process exec'ed; MAP_DMA VADDR did not move the dma to mm ${this.st.mmId})` };
    const ps = BigInt(this.st.pageSize);
    // remote_vaddr = dma->vaddr + (iova - dma->iova): for an unaligned IOVA whose page reaches into the dma from below
    // (vfio_find_dma(iova, PAGE_SIZE) found it) this is below dma->vaddr.
    const vaddr = BigInt.asUintN(64, dma.vaddr + (iova - dma.iova)), page = vaddr & ~(ps - 1n);
    const write = (dma.prot & IOMMU_WRITE) !== 0;
    let pfn: bigint, ram: boolean, what: string;
    const pinEvents: DomainEvent[] = [];
    if (pfnmapVmaOf(this.st, page) !== undefined) {
      // vaddr_get_pfns: GUP refuses VM_PFNMAP; follow_fault_pfn gives the BAR's pfn, no struct page, no pin.
      const r = pfnmapFrames(this.st, (path) => this.header.devices.findIndex((d) => d.path === path), page, ps, write);
      if ('errno' in r) return r;
      pfn = r.runs[0]!.phys / ps;
      ram = false;
      what = `${hex(vaddr)} is a VM_PFNMAP VMA (${r.what}): pfn ${hex(pfn)} has no struct page`;
    } else {
      const r = pinUserRange(this.mm, this.st.memory, this.st.pageSize, page, 1, write);
      if (isMmFault(r)) return { errno: r.errno === 'EACCES' ? 'EFAULT' : r.errno, why: `vfio_iommu_type1.c vaddr_get_pfns: ${r.why}` };
      pinEvents.push(...r.events);
      pfn = BigInt(r.runs[0]!.frame);
      ram = true;
      what = `${hex(vaddr)} pinned (frame ${pfn})`;
    }
    // Mutant type1-mdev-pin-count (S10): vaddr_get_pfns returns the count, 1; the pre-fix vfio_pin_page_external
    // passed it on when it did not charge (a hardware domain, or a reserved pfn), and pin_pages took 1 for an error.
    if (isMutant('type1-mdev-pin-count') && (!doAccounting || !ram)) {
      this.events.push(...pinEvents);
      return { leaked: `${fn}: ${what}; vaddr_get_pfns' count 1 is returned as an error: the pin is never put and no vpfn is linked` };
    }
    let charged = false;
    if (doAccounting && ram) {
      // vfio_lock_acct(dma, 1, false) → mm_lock_acct → __account_locked_vm against the dma's task's RLIMIT_MEMLOCK.
      const limit = memlockPages(this.header, this.st.pageSize);
      const locked = this.st.accounting.mmLockedVm + this.charged;
      if (!dma.lockCap && limit !== undefined && locked + 1 > limit)
        return { errno: 'ENOMEM', why: `${fn}: locked_vm ${locked} + 1 > RLIMIT_MEMLOCK ${limit} page(s) (dmesg 'vfio_pin_page_external: Task ... RLIMIT_MEMLOCK (${limit * this.st.pageSize}) exceeded'); the page is unpinned` };
      charged = true;
    }
    // Mutant type1-mdev-pfnmap-pin (S11): without the pfn_valid check a BAR pfn is linked as a page.
    if (!ram && !isMutant('type1-mdev-pfnmap-pin')) return { errno: 'EINVAL', why: `vfio_iommu_type1.c vfio_iommu_type1_pin_pages: ${what}: !pfn_valid(phys_pfn)` };
    this.events.push(...pinEvents, { type: 'VfioPfnPinned', container: c, dma: dma.iova, iova, pfn, ram, charged });
    if (charged) {
      this.events.push({ type: 'LockedVmAccounted', npages: 1 });
      this.charge(c, dma, 1);
    }
    this.set(c, dma, iova, { pfn, ram, ref: 1 });
    return { ok: `${what}${charged ? ', charged to locked_vm' : doAccounting ? '' : ' (a hardware domain: MAP_DMA charged it)'}; vpfn at ${hex(iova)}` };
  }

  /** `vfio_unpin_page_external(dma, iova, do_accounting)`: pages unpinned (0 or 1), and what it did. */
  unpinPage(c: number, dma: VfioDma, iova: bigint, doAccounting: boolean): string {
    const hit = findVpfn(this.vpfnsOf(c, dma), iova, this.st.pageSize);
    if (hit === undefined) return `no vpfn at ${hex(iova)}: nothing to unpin`;
    if (hit.v.ref > 1) {
      this.events.push({ type: 'VfioPfnRefChanged', container: c, dma: dma.iova, iova: hit.iova, delta: -1 });
      this.set(c, dma, hit.iova, { ...hit.v, ref: hit.v.ref - 1 });
      return `the vpfn at ${hex(hit.iova)} drops to reference ${hit.v.ref - 1}`;
    }
    // put_pfn: a page with a struct page is unpinned (dirtied if the dma is writable); a reserved pfn holds nothing.
    if (hit.v.ram) this.events.push(...unpinFrames(this.mm, [{ frame: Number(hit.v.pfn), npages: 1 }]).events);
    // vfio_lock_acct(dma, -unlocked, true): async, nothing when the dma's mm is gone.
    const uncharged = doAccounting && hit.v.ram && dma.mm === this.st.mmId;
    this.events.push({ type: 'VfioPfnUnpinned', container: c, dma: dma.iova, iova: hit.iova, uncharged });
    if (uncharged) {
      this.events.push({ type: 'LockedVmAccounted', npages: -1 });
      this.charge(c, dma, -1);
    }
    this.set(c, dma, hit.iova, undefined);
    return `the vpfn at ${hex(hit.iova)} is unpinned${uncharged ? ' and un-charged' : ''}`;
  }
}
