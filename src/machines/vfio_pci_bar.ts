/**
 * mmap of a VFIO PCI device's regions (drivers/vfio/vfio_main.c `vfio_device_fops_mmap`, drivers/vfio/pci/
 * vfio_pci_core.c `vfio_pci_core_mmap`; spec vfio-type1-spec.md §5.1–§5.2).
 *
 * Theory of operation. The file offset selects the region: `index << 40` (VFIO_PCI_OFFSET_SHIFT) plus an offset in
 * it. Only memory BARs (index 0–5) that the header declares with a size of at least a page can be mapped, only
 * MAP_SHARED, and only within the page-aligned BAR. Success installs no PTE: the VMA is VM_IO|VM_PFNMAP
 * (hw/vfio_bar.ts) and pages are inserted by the fault handler. A device fd opened through a cdev must be bound to
 * an iommufd first (`df->access_granted`); one opened through its group always is.
 *
 * Peer-to-peer: a reset (`vfio_pci_ioctl_reset`) or the device's release zaps its BAR VMAs (mmu_notifier
 * invalidation) and revokes its dma-bufs (vfio_pci_dmabuf.ts: iommufd unmaps every IOMMU mapping of them first,
 * a P2pUnmap each), but leaves type1 IOMMU mappings of the BAR in place; each such mapping is reported as a
 * StaleDeviceMapping warning; so does a PCI_COMMAND write through the config region that clears MEMORY
 * (`vfio_basic_config_write`), after which BAR faults SIGBUS and the dma-bufs stay revoked until MEMORY is set again.
 */
import type { DomainEvent } from '../events/domain.js';
import { FLAG_SETS } from '../events/flags.js';
import { barPhys, VFIO_PCI_OFFSET_SHIFT } from '../hw/vfio_bar.js';
import { fail, succeed, unmodelled, type Done, type Kernel } from './ioctl.js';
import { dmabufCleanupEvents, dmabufMoveEvents, dmabufResetEvents } from './vfio_pci_dmabuf.js';

const M = FLAG_SETS.mmap;
const VFIO_PCI_NUM_REGIONS = 9, VFIO_PCI_ROM_REGION_INDEX = 6;

/** `df->access_granted`: a cdev fd once bound to an iommufd; a fd opened through a legacy container's group always. */
const accessGranted = (k: Kernel, fd: number): boolean => k.header.vfio_container === 'type1' || k.st.vfioBinds.has(fd);

/** The checks of `vfio_device_fops_mmap` + `vfio_pci_core_mmap`, in order; undefined when the mmap may go ahead. */
export function vfio_pci_core_mmap(k: Kernel, fd: number, path: string, offset: bigint, len: bigint, flags: bigint): Done | undefined {
  const fn = 'vfio_pci_core.c vfio_pci_core_mmap';
  if (!accessGranted(k, fd)) return fail('EINVAL', `vfio_main.c vfio_device_fops_mmap: device fd ${fd} is not bound to an iommufd (access not granted)`);
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

/**
 * `vfio_pci_zap_bars`: `unmap_mapping_range` over the BAR offsets of the device's inode mapping, so every BAR VMA
 * of the device in the process gets an mmu_notifier invalidation and loses its PTEs (the model inserts none, so
 * the invalidation is all there is); the next CPU access faults again.
 */
export function zapBarsEvents(k: Kernel, path: string): DomainEvent[] {
  return k.st.mm.vmas.filter((v) => v.pfnmap === path).map((v) => ({ type: 'MmuNotifierInvalidate', start: v.start, last: v.last, reason: 'vfio_zap' }));
}

/**
 * The type1 mappings that still reach `path`'s BARs: none of the reset, disable or release paths of vfio-pci
 * touches them (vfio-type1-spec.md §4.2; the 2021 "vfio/type1: Register device notifier" RFC that would have
 * dropped them was not merged), so a peer device's DMA keeps reaching the exporter's BAR.
 */
export function staleDeviceMappingEvents(k: Kernel, path: string, what: string): DomainEvent[] {
  const nth = k.header.devices.findIndex((d) => d.path === path);
  if (nth < 0) return [];
  const lo = barPhys(nth, 0, 0n), hi = barPhys(nth + 1, 0, 0n) - 1n;
  const out: DomainEvent[] = [];
  for (const c of k.st.containers.values()) {
    const i = c.iommu;
    const d = i?.domain === undefined ? undefined : k.st.domains.get(i.domain);
    if (i === undefined || d === undefined) continue;
    for (const n of i.dmas.inOrder()) {
      if (!n.value.hasRsvd) continue;
      const phys = d.map.iterFirst(n.start, n.start)?.value;
      if (phys === undefined || phys < lo || phys > hi) continue;
      out.push({
        type: 'StaleDeviceMapping', exporter: path, container: c.id, iova: n.start, last: n.last,
        why: `${what}, but the type1 mapping [0x${n.start.toString(16)}, 0x${n.last.toString(16)}] of container ${c.id} still points at its BAR: devices in the container can still DMA to memory its owner disabled (vfio_iommu_type1.c keeps PFNMAP mappings until UNMAP_DMA or the last group leaves; CVE-2020-12888)`,
      });
    }
  }
  return out;
}

/**
 * `vfio_pci_ioctl_reset`: zap and take memory_lock, revoke the dma-bufs (iommufd unmaps them), FLR, un-revoke if
 * memory decode is on; type1 mappings of the BARs are untouched.
 */
export function vfio_pci_ioctl_reset(k: Kernel, path: string): Done {
  const what = `vfio_pci_core.c vfio_pci_ioctl_reset: ${path} was reset (its BARs zapped, its memory briefly disabled)`;
  const events = [...zapBarsEvents(k, path), ...dmabufResetEvents(k, path), ...staleDeviceMappingEvents(k, path, what)];
  const n = (t: DomainEvent['type']): number => events.filter((e) => e.type === t).length;
  return succeed(`${what}; ${n('MmuNotifierInvalidate')} BAR mapping(s) zapped, ${n('P2pUnmap')} IOMMU mapping(s) of its dma-bufs removed`, undefined, events);
}

/**
 * What the release of a VFIO device file does to P2P state: `vfio_pci_core_close_device` disables the device
 * once no fd and no BAR VMA (each VMA holds the file) is left. `gone` says which fd or VMA range goes now.
 */
export function deviceReleaseEvents(k: Kernel, path: string, gone: { fd: number } | { start: bigint; last: bigint }): DomainEvent[] {
  const fds = [...k.st.fds].filter(([fd, f]) => f.kind === 'vfio_device' && f.path === path && !('fd' in gone && gone.fd === fd));
  const vmas = k.st.mm.vmas.filter((v) => v.pfnmap === path && !('start' in gone && v.start >= gone.start && v.last <= gone.last));
  if (fds.length > 0 || vmas.length > 0) return [];
  if ('start' in gone && !k.st.mm.vmas.some((v) => v.pfnmap === path)) return [];
  return [
    ...dmabufCleanupEvents(k, path),
    ...staleDeviceMappingEvents(k, path, `vfio_pci_core.c vfio_pci_core_close_device: ${path}'s last file reference is gone and the device is disabled (memory decode off)`),
  ];
}

const VFIO_PCI_CONFIG_REGION_INDEX = 7n, PCI_COMMAND = 4n, PCI_COMMAND_MEMORY = 0x2;

/**
 * pwrite on a VFIO device fd: only a write that starts at PCI_COMMAND in the config region is modelled
 * (`vfio_pci_config_rw` → `vfio_basic_config_write`): MEMORY cleared → memory_lock, zap, MEMORY saved in vconfig;
 * MEMORY set → re-enabled, the next access refaults. The write's bytes count is returned.
 */
export function vfio_pci_config_pwrite(k: Kernel, fd: number, path: string, offset: bigint, data: Uint8Array): Done {
  if (!accessGranted(k, fd)) return fail('EINVAL', `vfio_main.c vfio_device_fops_write: device fd ${fd} is not bound to an iommufd (access not granted)`);
  const index = offset >> VFIO_PCI_OFFSET_SHIFT, at = offset & ((1n << VFIO_PCI_OFFSET_SHIFT) - 1n);
  if (index !== VFIO_PCI_CONFIG_REGION_INDEX || at !== PCI_COMMAND || data.length === 0)
    return unmodelled(`pwrite of region ${index} at 0x${at.toString(16)} (only PCI_COMMAND in the config region is modelled)`);
  const fn = 'vfio_pci_config.c vfio_basic_config_write';
  const on = (data[0]! & PCI_COMMAND_MEMORY) !== 0, wasOn = !k.st.vfioMemoryOff.has(path);
  const ret = BigInt(data.length);
  if (on === wasOn) return succeed(`${fn}: PCI_COMMAND.MEMORY of ${path} stays ${on ? 'on' : 'off'}`, undefined, [], ret);
  if (on) {
    const events: DomainEvent[] = [{ type: 'VfioPciMemoryDecodeSet', dev: path, enabled: true }, ...dmabufMoveEvents(k, path, false)];
    return succeed(`${fn}: PCI_COMMAND.MEMORY of ${path} set: memory decode on, BAR accesses refault, its dma-bufs can be mapped again`, undefined, events, ret);
  }
  const what = `${fn}: PCI_COMMAND.MEMORY of ${path} cleared (memory decode off, BARs zapped and dma-bufs revoked, later CPU access SIGBUS)`;
  const events: DomainEvent[] = [...zapBarsEvents(k, path), ...dmabufMoveEvents(k, path, true), { type: 'VfioPciMemoryDecodeSet', dev: path, enabled: false }, ...staleDeviceMappingEvents(k, path, what)];
  return succeed(what, undefined, events, ret);
}
