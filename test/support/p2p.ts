/**
 * A peer-to-peer platform for tests: a GPU (1 MiB BAR0) and a NIC as VFIO cdevs bound to one iommufd, the NIC
 * attached to an IOAS, the GPU's BAR0 mmapped; and the calls that export and disable the BAR (VFIO_DEVICE_FEATURE
 * DMA_BUF, a PCI_COMMAND write through the config region).
 */
export const GPU = '/dev/vfio/devices/vfio0', NIC = '/dev/vfio/devices/vfio1';
const iommu = { pgsize_bitmap: '0x40201000', aperture: { start: 0, last: '0xffffffffffff' }, reserved: [], dirty_tracking: false, max_pasids: 0 };

export const P2P_HEADER = {
  iotrail: 1, memory: 'explicit', limits: { memlock: 'unlimited', cap_sys_resource: true },
  devices: [
    { path: GPU, name: '0000:41:00.0', group: 20, iommu, bars: [{ index: 0, size: '0x100000' }, { index: 2, size: '0x800' }] },
    { path: NIC, name: '0000:42:00.0', group: 21, iommu, bars: [{ index: 0, size: '0x20000' }] },
  ],
};

/** Binds both devices (`$gpu`, `$nic`, `$nicdev`) to `$fd`, attaches the NIC to `$ioas`, mmaps BAR0 at 0x7f2000000000. */
export const vfioSetup: object[] = [
  { op: 'open', path: '/dev/iommu', ret: '$fd' },
  { op: 'open', path: GPU, ret: '$gpu' },
  { op: 'open', path: NIC, ret: '$nic' },
  { op: 'ioctl', fd: '$gpu', cmd: 'VFIO_DEVICE_BIND_IOMMUFD', arg: { iommufd: '$fd' }, ret: 0 },
  { op: 'ioctl', fd: '$nic', cmd: 'VFIO_DEVICE_BIND_IOMMUFD', arg: { iommufd: '$fd' }, ret: 0, out: { out_devid: '$nicdev' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: '$ioas' } },
  { op: 'ioctl', fd: '$nic', cmd: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', arg: { pt_id: '$ioas' }, ret: 0 },
  { op: 'mmap', length: '0x100000', prot: ['PROT_READ', 'PROT_WRITE'], flags: ['MAP_SHARED'], fd: '$gpu', offset: 0, ret: '0x7f2000000000' },
];

/** VFIO_DEVICE_FEATURE{GET|DMA_BUF} of `ranges` of BAR `index` (`[offset, length]` pairs); `over` adds the outcome. */
export function featureDmaBuf(length: number, over: object, opts: { index?: number; ranges?: [number, number][]; flags?: string[]; argsz?: number; extra?: number } = {}): object {
  const ranges = opts.ranges ?? [[0, length]];
  return {
    op: 'ioctl', fd: '$gpu', cmd: 'VFIO_DEVICE_FEATURE',
    arg: {
      argsz: opts.argsz ?? 24 + 16 * ranges.length, flags: opts.flags ?? ['VFIO_DEVICE_FEATURE_GET', 'VFIO_DEVICE_FEATURE_DMA_BUF'],
      dma_buf: { region_index: opts.index ?? 0, flags: opts.extra ?? 0, nr_ranges: ranges.length, dma_ranges: ranges.map(([offset, len]) => ({ offset, length: len })) },
    },
    ...over,
  };
}

/** A 2-byte write of PCI_COMMAND (config region 7 << 40, offset 4): MEMORY | BUS_MASTER (6), or BUS_MASTER alone (4). */
export const pciCommand = (memory: boolean): object => ({ op: 'pwrite', fd: '$gpu', offset: '0x70000000004', data: memory ? '0600' : '0400', ret: 2 });
