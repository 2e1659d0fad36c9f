/**
 * Trace builders for the type1 container tests (test/machines/vfio_type1*.test.ts): a header with two VFIO devices in
 * groups 15 and 16, and the lines a VMM issues on a legacy container.
 */
import { expect } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import { Replayer } from '../../src/replay/engine.js';
import type { State } from '../../src/projections/state.js';

export const IOMMU = (aperture = '0x7fffffffff') => ({
  pgsize_bitmap: '0x40201000', aperture: { start: 0, last: aperture },
  reserved: [{ start: '0xfee00000', last: '0xfeefffff', type: 'msi' }], dirty_tracking: false, max_pasids: 0,
});
export const DEV0 = { path: '/dev/vfio/devices/vfio0', name: '0000:01:00.0', group: 15, iommu: IOMMU(), bars: [{ index: 0, size: '0x100000' }, { index: 2, size: '0x800' }] };
export const DEV1 = { path: '/dev/vfio/devices/vfio1', name: '0000:02:00.0', group: 16, iommu: IOMMU(), bars: [{ index: 0, size: '0x100000' }] };

export function header(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { iotrail: 1, vfio_container: 'type1', limits: { memlock: 'unlimited', cap_ipc_lock: false }, devices: [DEV0, DEV1], ...extra };
}

export interface Played {
  readonly r: Replayer;
  readonly st: State;
  /** Per trace line (after the header), the model's outcome: 'ok' or the errno. */
  readonly outcomes: string[];
  readonly events: DomainEvent[];
}

/** Replays `lines` after header `h`; `after(st, i)` runs once line `i` (0-based, after the header) is replayed. */
export function play(h: Record<string, unknown>, lines: readonly object[], after?: (st: State, i: number) => void): Played {
  const events: DomainEvent[] = [];
  const r = new Replayer((e) => events.push(e.ev));
  r.feedLine(JSON.stringify(h), 1);
  lines.forEach((l, i) => {
    r.feedLine(JSON.stringify(l), i + 2);
    after?.(r.st, i);
  });
  expect(r.errors).toEqual([]);
  expect(r.internal).toEqual([]);
  const outcomes = events.flatMap((e) => (e.type === 'CallCompleted' ? [e.errno ?? (e.why.startsWith('not modelled') ? `unmodelled: ${e.why}` : 'ok')] : []));
  return { r, st: r.st, outcomes, events };
}

export const RW = ['VFIO_DMA_MAP_FLAG_READ', 'VFIO_DMA_MAP_FLAG_WRITE'];
export const RAM = 0x7f0000000000n;
export const hex = (v: bigint): string => `0x${v.toString(16)}`;
export const ram = (len: bigint, shared = false): object =>
  ({ op: 'mmap', addr: hex(RAM), length: hex(len), prot: ['PROT_READ', 'PROT_WRITE'], flags: [shared ? 'MAP_SHARED' : 'MAP_PRIVATE', 'MAP_ANONYMOUS', 'MAP_FIXED'] });
export const openContainer = (): object[] => [
  { op: 'open', path: '/dev/vfio/vfio', ret: '$c' },
  { op: 'open', path: '/dev/vfio/15', ret: '$g' },
  { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_SET_CONTAINER', arg: '$c' },
];
export const setIommu = (type = 3): object => ({ op: 'ioctl', fd: '$c', cmd: 'VFIO_SET_IOMMU', arg: type });
export const map = (iova: bigint, size: bigint, vaddr = RAM + iova, flags: unknown = RW): object =>
  ({ op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_MAP_DMA', arg: { flags, vaddr: hex(vaddr), iova: hex(iova), size: hex(size) } });
export const unmap = (iova: bigint, size: bigint, flags: unknown = 0): object =>
  ({ op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_UNMAP_DMA', arg: { flags, iova: hex(iova), size: hex(size) } });
export const dmaCount = (st: State): number => [...st.containers.values()].reduce((a, c) => a + (c.iommu?.dmas.size ?? 0), 0);
export const MB = 0x100000n;


/** An mdev (emulated IOMMU group 20) whose driver pins (dma_unmap), as vfio-ccw, vfio-ap and gvt drivers are. */
export const MDEV = { path: '/sys/bus/mdev/devices/83b8f4f2-509f-382f-3c1e-e6bfe0fa1001', name: '83b8f4f2-509f-382f-3c1e-e6bfe0fa1001', group: 20, mdev: true };
/** Opens the mdev's group into the container `$c` (opened first when `open`), and its device fd as `$m`. */
export const openMdev = (open = true): object[] => [
  ...(open ? [{ op: 'open', path: '/dev/vfio/vfio', ret: '$c' }] : []),
  { op: 'open', path: '/dev/vfio/20', ret: '$mg' },
  { op: 'ioctl', fd: '$mg', cmd: 'VFIO_GROUP_SET_CONTAINER', arg: '$c' },
];
export const mdevFd = (): object => ({ op: 'ioctl', fd: '$mg', cmd: 'VFIO_GROUP_GET_DEVICE_FD', arg: MDEV.name, ret: '$m' });
export const pin = (iova: bigint, npage: number, prot: string[] = ['IOMMU_READ', 'IOMMU_WRITE'], dev = MDEV.path): object =>
  ({ op: 'mdev_pin', dev, iova: hex(iova), npage, prot });
export const unpin = (iova: bigint, npage: number): object => ({ op: 'mdev_unpin', dev: MDEV.path, iova: hex(iova), npage });
/** The vpfns of every dma of container 1: [iova, ref]. */
export const vpfnsOf = (st: State): [bigint, number][] =>
  [...(st.containers.get(1)?.iommu?.dmas.inOrder() ?? [])].flatMap((n) => [...n.value.vpfns].map(([k, v]): [bigint, number] => [k, v.ref]));
