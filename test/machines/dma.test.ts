/**
 * Device DMA (`dma` op) through a mock domain: translations come from the IOTLB or the page table, writes land in
 * the very pages the CPU reads, and an access without a translation or without the permission is an IO page fault.
 */
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../../src/events/domain.js';
import { Replayer } from '../../src/replay/engine.js';

const BUF = '0x7f0000000000';

function replay(lines: object[]) {
  const entries: LogEntry[] = [];
  const r = new Replayer((e) => entries.push(e));
  r.feedLine(JSON.stringify({ iotrail: 1, iommufd_test: true, memory: 'explicit', limits: { memlock: 'unlimited', cap_sys_resource: true } }), 1);
  lines.forEach((l, i) => r.feedLine(JSON.stringify(l), i + 2));
  return { s: r.summary(), entries };
}

const setup = (prot = ['IOMMU_IOAS_MAP_READABLE', 'IOMMU_IOAS_MAP_WRITEABLE']): object[] => [
  { op: 'mmap', addr: BUF, length: 16384, prot: ['PROT_READ', 'PROT_WRITE'], flags: ['MAP_SHARED', 'MAP_ANONYMOUS', 'MAP_FIXED'], ret: BUF },
  { op: 'open', path: '/dev/iommu', ret: '$fd' },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: '$ioas' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN', id: '$ioas', mock_domain: {} }, ret: 0,
    out: { mock_domain: { out_stdev_id: '$stdev', out_hwpt_id: '$hwpt', out_idev_id: '$idev' } } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_MAP', arg: { ioas_id: '$ioas', flags: ['IOMMU_IOAS_MAP_FIXED_IOVA', ...prot], user_va: BUF, length: 16384, iova: '0x1000000' }, ret: 0 },
];

describe('device DMA', () => {
  it('writes into the pinned page so the CPU reads the device bytes back', () => {
    const { s, entries } = replay([
      ...setup(),
      { op: 'dma', dev: '$stdev', iova: '0x1001010', length: 4, write: true, data: 'deadbeef', ret: 0 },
      { op: 'mem_read', addr: '0x7f0000001010', length: 4, ret: 0, out: { data: 'deadbeef' } },
      { op: 'dma', dev: '$stdev', iova: '0x1001010', length: 4, ret: 0, out: { data: 'deadbeef' } },
    ]);
    expect(s.errors).toEqual([]);
    expect(s.divergences).toEqual([]);
    const types = entries.map((e) => e.ev.type);
    expect(types).toContain('DmaCompleted');
    expect(types).toContain('IotlbFilled');
  });

  it('serves the second access from the IOTLB the first one filled', () => {
    const { entries } = replay([...setup(), { op: 'dma', dev: '$stdev', iova: '0x1000000', length: 8, ret: 0 }, { op: 'dma', dev: '$stdev', iova: '0x1000008', length: 8, ret: 0 }]);
    const done = entries.filter((e) => e.ev.type === 'DmaCompleted').map((e) => e.ev);
    expect(done).toHaveLength(2);
    const second = done[1] as Extract<LogEntry['ev'], { type: 'DmaCompleted' }>;
    expect(second.pieces.every((p) => p.fromIotlb)).toBe(true);
    expect(entries.filter((e) => e.ev.type === 'IotlbFilled')).toHaveLength(1);
  });

  it('faults with EFAULT on an IOVA that nothing maps', () => {
    const { s, entries } = replay([...setup(), { op: 'dma', dev: '$stdev', iova: '0x2000000', length: 4, errno: 'EFAULT' }]);
    expect(s.divergences).toEqual([]);
    expect(entries.some((e) => e.ev.type === 'IoPageFault')).toBe(true);
  });

  it('faults with EFAULT on a write through a read-only mapping', () => {
    const { s } = replay([...setup(['IOMMU_IOAS_MAP_READABLE']), { op: 'dma', dev: '$stdev', iova: '0x1000000', length: 4, write: true, data: '01020304', ret: 0 }]);
    expect(s.divergences.map((d) => [d.field, d.predicted])).toEqual([['ret', 'EFAULT']]);
  });

  it('faults after an unmap, because the unmap flushed the IOTLB entry the earlier DMA filled', () => {
    const { s } = replay([
      ...setup(),
      { op: 'dma', dev: '$stdev', iova: '0x1000000', length: 4, ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_UNMAP', arg: { ioas_id: '$ioas', iova: '0x1000000', length: 16384 }, ret: 0, out: { length: 16384 } },
      { op: 'dma', dev: '$stdev', iova: '0x1000000', length: 4, errno: 'EFAULT' },
    ]);
    expect(s.divergences).toEqual([]);
  });

  it('reports a DMA crossing into an unmapped page as a fault at the first untranslated IOVA', () => {
    const { entries } = replay([...setup(), { op: 'dma', dev: '$stdev', iova: '0x1003ffc', length: 8, errno: 'EFAULT' }]);
    const f = entries.find((e) => e.ev.type === 'IoPageFault')?.ev as Extract<LogEntry['ev'], { type: 'IoPageFault' }> | undefined;
    expect(f?.iova).toBe(0x1004000n);
  });
});
