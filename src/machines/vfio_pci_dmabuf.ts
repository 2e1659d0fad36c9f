/**
 * VFIO_DEVICE_FEATURE (drivers/vfio/vfio_main.c `vfio_ioctl_device_feature`) and vfio-pci's dma-buf exporter, its
 * DMA_BUF feature (drivers/vfio/pci/vfio_pci_dmabuf.c `vfio_pci_core_feature_dma_buf`, `vfio_pci_dma_buf_move`,
 * `vfio_pci_dma_buf_cleanup`, ≥ v6.19; spec vfio-type1-spec.md §5.4–§5.5).
 *
 * Theory of operation. `VFIO_DEVICE_FEATURE{GET|DMA_BUF}` exports ranges of one of the device's memory BARs as a new
 * dma-buf fd (the ioctl's value); it is the second exporter of hw/dmabuf.ts, whose memory is the BAR's host physical
 * range (hw/vfio_bar.ts `barPhys`). IOMMU_IOAS_MAP_FILE of it gives another device peer-to-peer access to the BAR.
 * Whenever the device's memory goes away the exporter revokes its dma-bufs, which makes iommufd unmap every IOMMU
 * mapping of them first: a reset (`vfio_pci_ioctl_reset`: revoke, FLR, un-revoke), a PCI_COMMAND write clearing
 * MEMORY (revoked until MEMORY is set again), and the device's last close (`vfio_pci_dma_buf_cleanup`: for good). A
 * buffer is created revoked while memory decode is off. Un-revoking lets new MAP_FILEs in; the areas that died stay
 * dead until IOAS_UNMAP (hw/dmabuf.ts). Not modelled: hot reset and low-power entry (they revoke too), and the
 * release of a dma-buf whose last fd and last iopt_pages are gone (`vfio_pci_dma_buf_move` skips it; here it keeps
 * receiving Revoke events that change nothing observable).
 */
import type { DomainEvent } from '../events/domain.js';
import { FLAG_SETS } from '../events/flags.js';
import { moveNotifyEvents, nextDmabufId, type DmabufData } from '../hw/dmabuf.js';
import { barPhys } from '../hw/vfio_bar.js';
import { U64_MAX } from '../hw/u64.js';
import { fail, member, succeed, u32, u64, unmodelled, type Arg, type Kernel, type Step } from './ioctl.js';
import type { IoctlInput } from './main.js';
import { pickFd } from './process.js';
import { kernelAtLeast } from './version.js';

const F = FLAG_SETS.vfio_device_feature;
const PROBE = F.VFIO_DEVICE_FEATURE_PROBE, GET = F.VFIO_DEVICE_FEATURE_GET, SET = F.VFIO_DEVICE_FEATURE_SET;
const FEATURE_MASK = 0xffff;
const VFIO_PCI_ROM_REGION_INDEX = 6;
/** `DMA_IOVA_USE_SWIOTLB`: a total length with bit 63 set is refused (`validate_dmabuf_input`). */
const DMA_IOVA_USE_SWIOTLB = 1n << 63n;
const hex = (v: bigint): string => `0x${v.toString(16)}`;

/**
 * `vfio_ioctl_device_feature`: argsz and flag checks, then the feature. Only DMA_BUF is modelled; a plain vfio-pci
 * device answers ENOTTY for a feature number it does not know (`vfio_pci_core_ioctl_feature`).
 */
export function vfio_ioctl_device_feature(k: Kernel, path: string, input: IoctlInput, want: bigint | undefined): Step {
  const fn = 'vfio_main.c vfio_ioctl_device_feature';
  if (input.k === 'null') return fail('EFAULT', `${fn}: copy_from_user of a NULL arg`);
  if (input.k !== 'struct') return unmodelled('VFIO_DEVICE_FEATURE with a non-struct argument');
  const a = input.a;
  if (a.size < 8) return fail('EINVAL', `${fn}: argsz ${a.size} < 8`);
  const flags = u32(a, 'flags');
  if ((flags & ~(FEATURE_MASK | SET | GET | PROBE)) !== 0) return fail('EINVAL', `${fn}: unknown flags 0x${flags.toString(16)}`);
  if ((flags & PROBE) === 0 && (flags & SET) !== 0 && (flags & GET) !== 0) return fail('EINVAL', `${fn}: GET and SET together without PROBE`);
  const feature = flags & FEATURE_MASK;
  // vfio_pci_dmabuf.c arrived in v6.19: before it DMA_BUF is a feature vfio-pci does not know.
  const dmabufs = kernelAtLeast(k.header, 6, 19);
  if (feature === F.VFIO_DEVICE_FEATURE_DMA_BUF && dmabufs) return featureDmaBuf(k, path, a, flags, a.size - 8, want);
  if (feature === F.VFIO_DEVICE_FEATURE_BUS_MASTER || feature >= F.VFIO_DEVICE_FEATURE_DMA_BUF)
    return fail('ENOTTY', `vfio_pci_core.c vfio_pci_core_ioctl_feature: feature ${feature} is not a vfio-pci feature`);
  return unmodelled(`VFIO_DEVICE_FEATURE ${feature} (migration, DMA logging, low power and VF token features)`);
}

/** `vfio_check_feature(flags, argsz, GET, minsz)`: 1 to go on, 0 for a PROBE, or the failure. */
function checkFeature(flags: number, argsz: number, minsz: number): 1 | 0 | Step {
  const fn = 'vfio.h vfio_check_feature';
  if ((flags & (GET | SET) & ~GET) !== 0) return fail('EINVAL', `${fn}: DMA_BUF supports GET only, SET was asked`);
  if ((flags & PROBE) !== 0) return 0;
  if ((flags & (GET | SET)) === 0) return fail('EINVAL', `${fn}: neither GET nor SET (nor PROBE)`);
  if (argsz < minsz) return fail('EINVAL', `${fn}: ${argsz} payload bytes < ${minsz}`);
  return 1;
}

/** `vfio_pci_core_feature_dma_buf`, its checks in order (ENOMEM and an unregistering device are not modelled). */
function featureDmaBuf(k: Kernel, path: string, a: Arg, flags: number, argsz: number, want: bigint | undefined): Step {
  const fn = 'vfio_pci_dmabuf.c vfio_pci_core_feature_dma_buf';
  const chk = checkFeature(flags, argsz, 16);
  if (chk === 0) return succeed(`${fn}: PROBE: DMA_BUF is supported (GET)`);
  if (chk !== 1) return chk;
  const m = member(a, 'dma_buf');
  const nr = m ? u32(m, 'nr_ranges') : 0, extra = m ? u32(m, 'flags') : 0, index = m ? u32(m, 'region_index') : 0;
  if (nr === 0 || extra !== 0) return fail('EINVAL', `${fn}: nr_ranges ${nr} is 0 or flags 0x${extra.toString(16)} is not 0`);
  if (index >= VFIO_PCI_ROM_REGION_INDEX) return fail('ENODEV', `${fn}: region ${index} is not a BAR`);
  // memdup_array_user(&arg->dma_ranges): a flexible array member right after the struct, so the trace gives it inline.
  const given = m!.v['dma_ranges'];
  if (!Array.isArray(given)) return unmodelled('dma_ranges as a pointer (it is the flexible array member after the struct: give the ranges inline)');
  if (given.length < nr) return fail('EFAULT', `${fn}: memdup_array_user of ${nr} ranges, but the trace gives ${given.length}`);
  const ranges = (given as readonly Arg[]).slice(0, nr).map((e) => ({ offset: u64(e, 'offset'), length: u64(e, 'length') }));
  const page = BigInt(k.st.pageSize);
  let total = 0n;
  for (const [i, r] of ranges.entries()) {
    if (r.length === 0n || r.offset % page !== 0n || r.length % page !== 0n)
      return fail('EINVAL', `vfio_pci_dmabuf.c validate_dmabuf_input: range ${i} [${hex(r.offset)}, +${hex(r.length)}) is empty or not page aligned`);
    total += r.length;
    if (total > U64_MAX) return fail('EINVAL', 'vfio_pci_dmabuf.c validate_dmabuf_input: the total length overflows');
  }
  if ((total & DMA_IOVA_USE_SWIOTLB) !== 0n) return fail('EINVAL', `vfio_pci_dmabuf.c validate_dmabuf_input: total length ${hex(total)} has DMA_IOVA_USE_SWIOTLB set`);
  const nth = k.header.devices.findIndex((d) => d.path === path);
  const bar = k.header.devices[nth]?.bars.find((b) => b.index === index);
  if (bar === undefined || bar.size === 0n) return fail('EINVAL', `vfio_pci_dmabuf.c vfio_pci_core_get_dmabuf_phys: BAR ${index} of ${path} has no P2P provider (not a memory BAR the header declares)`);
  // vfio_pci_core_fill_phys_vec: each range inside [start, start + len) of the BAR (its host length, not page aligned).
  const start = barPhys(nth, index, 0n);
  for (const [i, r] of ranges.entries()) {
    if (start + r.offset > U64_MAX || start + r.offset + r.length > U64_MAX)
      return fail('EOVERFLOW', `vfio_pci_dmabuf.c vfio_pci_core_fill_phys_vec: range ${i} overflows the physical address space`);
    if (r.offset + r.length > bar.size)
      return fail('EINVAL', `vfio_pci_dmabuf.c vfio_pci_core_fill_phys_vec: range ${i} [${hex(r.offset)}, +${hex(r.length)}) ends past BAR ${index} (${hex(bar.size)} bytes)`);
  }
  const dmabuf = nextDmabufId(k.st), fd = pickFd(k.st, want);
  const revoked = k.st.vfioMemoryOff.has(path);
  const events: DomainEvent[] = [
    { type: 'DmabufExported', dmabuf, size: total, memfd: undefined, dev: path, phys: barPhys(nth, index, ranges[0]!.offset), nrRanges: nr, revoked },
    { type: 'FdInstalled', fd, file: { kind: 'dmabuf', dmabuf, size: total } },
  ];
  return succeed(`${fn}: ${hex(total)} bytes of BAR ${index} of ${path} in ${nr} range(s) as dma-buf fd ${fd}${revoked ? ', created revoked (memory decode is off)' : ''}`, undefined, events, BigInt(fd));
}

/** The live (not cleaned up) dma-bufs `path` exported: `vdev->dmabufs`. */
function deviceDmabufs(k: Kernel, path: string): [number, DmabufData][] {
  return [...k.st.dmabufs].filter(([, d]) => d.dev === path && !d.orphaned);
}

/** `vfio_pci_dma_buf_move(vdev, revoked)`: each buffer whose state changes gets `dma_buf_move_notify`. */
export function dmabufMoveEvents(k: Kernel, path: string, revoked: boolean): DomainEvent[] {
  return deviceDmabufs(k, path).filter(([, d]) => d.revoked !== revoked).flatMap(([id]) => moveNotifyEvents(k.st, id, revoked));
}

/** `vfio_pci_ioctl_reset`'s dma-buf part: revoke around the FLR, un-revoke after it if memory decode is on. */
export function dmabufResetEvents(k: Kernel, path: string): DomainEvent[] {
  const revoke = dmabufMoveEvents(k, path, true);
  const on = !k.st.vfioMemoryOff.has(path);
  return on ? [...revoke, ...deviceDmabufs(k, path).flatMap(([id]) => moveNotifyEvents(k.st, id, false))] : revoke;
}

/** `vfio_pci_dma_buf_cleanup` (last close of the device): every buffer revoked for good, even one already revoked. */
export function dmabufCleanupEvents(k: Kernel, path: string): DomainEvent[] {
  return deviceDmabufs(k, path).flatMap(([id]) => moveNotifyEvents(k.st, id, true, true));
}
