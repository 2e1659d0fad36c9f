/**
 * mmap of a VFIO PCI device's regions (drivers/vfio/vfio_main.c `vfio_device_fops_mmap`, drivers/vfio/pci/
 * vfio_pci_core.c `vfio_pci_core_mmap`; spec vfio-type1-spec.md §5.1–§5.2).
 *
 * Theory of operation. The file offset selects the region: `index << 40` (VFIO_PCI_OFFSET_SHIFT) plus an offset in
 * it. Only memory BARs (index 0–5) that the header declares with a size of at least a page can be mapped, only
 * MAP_SHARED, and only within the page-aligned BAR. Success installs no PTE: the VMA is VM_IO|VM_PFNMAP
 * (hw/vfio_bar.ts) and pages are inserted by the fault handler. A device fd opened through a cdev must be bound to
 * an iommufd first (`df->access_granted`); one opened through its group always is.
 */
import { FLAG_SETS } from '../events/flags.js';
import { VFIO_PCI_OFFSET_SHIFT } from '../hw/vfio_bar.js';
import { fail, type Done, type Kernel } from './ioctl.js';

const M = FLAG_SETS.mmap;
const VFIO_PCI_NUM_REGIONS = 9, VFIO_PCI_ROM_REGION_INDEX = 6;

/** The checks of `vfio_device_fops_mmap` + `vfio_pci_core_mmap`, in order; undefined when the mmap may go ahead. */
export function vfio_pci_core_mmap(k: Kernel, fd: number, path: string, offset: bigint, len: bigint, flags: bigint): Done | undefined {
  const fn = 'vfio_pci_core.c vfio_pci_core_mmap';
  const viaGroup = k.header.vfio_container === 'type1' || k.st.vfioBinds.has(fd);
  if (!viaGroup) return fail('EINVAL', `vfio_main.c vfio_device_fops_mmap: device fd ${fd} is not bound to an iommufd (access not granted)`);
  const index = Number(offset >> VFIO_PCI_OFFSET_SHIFT);
  if (index >= VFIO_PCI_NUM_REGIONS) return fail('EINVAL', `${fn}: region index ${index} >= VFIO_PCI_NUM_REGIONS (no vendor regions)`);
  if ((flags & BigInt(M.MAP_SHARED)) === 0n) return fail('EINVAL', `${fn}: not MAP_SHARED`);
  if (index >= VFIO_PCI_ROM_REGION_INDEX) return fail('EINVAL', `${fn}: region ${index} (ROM, config or VGA) cannot be mmapped`);
  const dev = k.header.devices.find((d) => d.path === path);
  const bar = dev?.bars.find((b) => b.index === index);
  const page = BigInt(k.st.pageSize);
  if (bar === undefined || bar.size < page) return fail('EINVAL', `${fn}: BAR ${index} of ${path} is not mmap-supported (absent from the header, or smaller than a page)`);
  const inBar = offset & ((1n << VFIO_PCI_OFFSET_SHIFT) - 1n);
  const barPages = (bar.size + page - 1n) & ~(page - 1n);
  if (inBar + len > barPages) return fail('EINVAL', `${fn}: [0x${inBar.toString(16)}, +0x${len.toString(16)}) runs past BAR ${index} (0x${barPages.toString(16)} bytes)`);
  return undefined;
}
