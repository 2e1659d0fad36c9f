/**
 * VFIO PCI BAR memory as the IOMMU sees it (drivers/vfio/pci/vfio_pci_core.c `vfio_pci_mmap_huge_fault`,
 * `vfio_pci_vmf_insert_pfn`; drivers/vfio/vfio_iommu_type1.c `follow_fault_pfn`).
 *
 * Theory of operation. A BAR mmap is a VM_IO|VM_PFNMAP VMA (`Vma.pfnmap` names the device): no struct page stands
 * behind it, GUP refuses it, and the PFN of a page is the BAR's host physical address plus the page's offset in the
 * BAR (`vm_pgoff` keeps the region offset `index << 40`, VFIO_PCI_OFFSET_SHIFT). The model gives every BAR a host
 * address of its own far above any RAM frame (`barPhys`), so a device DMA that reaches it never touches user memory
 * and reads zeros (BAR contents are not modelled). The fault refuses (SIGBUS → EFAULT) while the device's memory
 * decode is off (`State.vfioMemoryOff`, a PCI_COMMAND write); D3/low-power is not modelled.
 */
import type { State } from '../projections/state.js';
import type { Failure } from './iopt_ops.js';
import { findVma, type Vma } from './mm_state.js';
import { PROT_WRITE } from './mm_state.js';

export const VFIO_PCI_OFFSET_SHIFT = 40n;
const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** The host physical address of byte `off` of region `index` of the `nth` device the header declares. */
export const barPhys = (nth: number, index: number, off: bigint): bigint => (1n << 52n) + (BigInt(nth) << 44n) + (BigInt(index) << 40n) + off;

/** The BAR VMA at `va`, if `va` lies in one. */
export function pfnmapVmaOf(st: State, va: bigint): Vma | undefined {
  const v = findVma(st.mm, va);
  return v?.pfnmap === undefined ? undefined : v;
}

export interface PfnRun {
  /** Byte offset in the mapped range. */
  readonly offset: bigint;
  readonly length: bigint;
  readonly phys: bigint;
}

/**
 * `follow_fault_pfn` over [va, va + size): each VMA must be a BAR mapping (a MAP mixing RAM and BAR pages is not
 * modelled and answers EFAULT here), writable if `write` (IOMMU write ⊆ CPU PTE write, S4), and yields one PFN run
 * per VMA. `nth` resolves a device path to its index in the header.
 */
export function pfnmapFrames(st: State, devIndex: (path: string) => number, va: bigint, size: bigint, write: boolean):
  { runs: PfnRun[]; what: string } | Failure {
  const runs: PfnRun[] = [];
  const names = new Set<string>();
  for (let at = va; at < va + size;) {
    const v = pfnmapVmaOf(st, at);
    if (v === undefined)
      return { errno: 'EFAULT', why: `vfio_iommu_type1.c vaddr_get_pfns: ${hex(at)} is not in a VM_PFNMAP VMA (a MAP mixing BAR and RAM pages is not modelled)` };
    if (st.vfioMemoryOff.has(v.pfnmap!))
      return { errno: 'EFAULT', why: `vfio_pci_core.c vfio_pci_mmap_huge_fault: ${v.pfnmap!}'s memory decode is off (__vfio_pci_memory_enabled is false): VM_FAULT_SIGBUS, which fixup_user_fault turns into EFAULT; the MAP is rolled back` };
    if (write && (v.prot & PROT_WRITE) === 0)
      return { errno: 'EFAULT', why: `vfio_iommu_type1.c follow_fault_pfn: IOMMU_WRITE requested but the BAR mapping [${hex(v.start)}, ${hex(v.last)}] is not writable` };
    const end = v.last + 1n < va + size ? v.last + 1n : va + size;
    const index = Number(v.offset >> VFIO_PCI_OFFSET_SHIFT);
    const inBar = (v.offset & ((1n << VFIO_PCI_OFFSET_SHIFT) - 1n)) + (at - v.start);
    runs.push({ offset: at - va, length: end - at, phys: barPhys(devIndex(v.pfnmap!), index, inBar) });
    names.add(`${v.pfnmap!} BAR${index}`);
    at = end;
  }
  return { runs, what: [...names].join(', ') };
}
