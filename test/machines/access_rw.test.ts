/**
 * IOMMU_TEST_OP_ACCESS_RW (selftest.c iommufd_test_access_rw → device.c iommufd_access_rw → pages.c
 * iopt_pages_rw_access): bytes really move between the user buffer and the memory behind the IOVA, and the fast
 * path (through the current page table) and the slow path (through pinned pages) see different memory once the
 * user has remapped the VA under a pin.
 */
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../../src/events/domain.js';
import { Replayer } from '../../src/replay/engine.js';

const BUF = '0x7f0000000000', UBUF = '0x7f1000000000', IOVA = 0x1000000;
const RW = { READ: 0, WRITE: 1, SLOW: 4 };

function replay(lines: object[]) {
  const entries: LogEntry[] = [];
  const r = new Replayer((e) => entries.push(e));
  r.feedLine(JSON.stringify({ iotrail: 1, iommufd_test: true, memory: 'explicit', limits: { memlock: 'unlimited', cap_sys_resource: true } }), 1);
  lines.forEach((l, i) => r.feedLine(JSON.stringify(l), i + 2));
  return { s: r.summary(), entries };
}

const anon = (addr: string, length: number): object =>
  ({ op: 'mmap', addr, length, prot: ['PROT_READ', 'PROT_WRITE'], flags: ['MAP_SHARED', 'MAP_ANONYMOUS', 'MAP_FIXED'], ret: addr });
const rw = (iova: number, length: number, flags: number, more: object = {}): object =>
  ({ op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_ACCESS_RW', id: '$access', access_rw: { iova, length, uptr: UBUF, flags } }, ret: 0, ...more });

const setup = (mapFlags = ['IOMMU_IOAS_MAP_READABLE', 'IOMMU_IOAS_MAP_WRITEABLE']): object[] => [
  anon(BUF, 16384),
  anon(UBUF, 4096),
  { op: 'open', path: '/dev/iommu', ret: '$fd' },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: '$ioas' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_CREATE_ACCESS', id: '$ioas', create_access: { flags: 1 } }, ret: 0, out: { create_access: { out_access_fd: '$access' } } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_MAP', arg: { ioas_id: '$ioas', flags: ['IOMMU_IOAS_MAP_FIXED_IOVA', ...mapFlags], user_va: BUF, length: 16384, iova: IOVA }, ret: 0 },
];

describe('IOMMU_TEST_OP_ACCESS_RW', () => {
  it('writes the user buffer into the memory behind the IOVA, where the CPU reads it', () => {
    const { s } = replay([
      ...setup(),
      { op: 'mem_write', addr: UBUF, data: 'c0ffee' },
      rw(IOVA + 0xffe, 3, RW.WRITE),
      { op: 'mem_read', addr: '0x7f0000000ffe', length: 3, ret: 0, out: { data: 'c0ffee' } },
    ]);
    expect(s.errors).toEqual([]);
    expect(s.divergences).toEqual([]);
  });

  it('reads across a page boundary into the user buffer, on the fast and on the slow path alike', () => {
    const { s } = replay([
      ...setup(),
      { op: 'mem_write', addr: '0x7f0000000ffe', data: '01020304' },
      rw(IOVA + 0xffe, 4, RW.READ),
      { op: 'mem_read', addr: UBUF, length: 4, ret: 0, out: { data: '01020304' } },
      { op: 'mem_write', addr: UBUF, data: '00000000' },
      rw(IOVA + 0xffe, 4, RW.SLOW),
      { op: 'mem_read', addr: UBUF, length: 4, ret: 0, out: { data: '01020304' } },
    ]);
    expect(s.divergences).toEqual([]);
  });

  it('answers EPERM for a write through a read-only mapping and leaves the memory as it was', () => {
    const { s } = replay([
      ...setup(['IOMMU_IOAS_MAP_READABLE']),
      { op: 'mem_write', addr: UBUF, data: 'ff' },
      rw(IOVA, 1, RW.WRITE, { ret: undefined, errno: 'EPERM' }),
      { op: 'mem_read', addr: BUF, length: 1, ret: 0, out: { data: '00' } },
    ]);
    expect(s.divergences).toEqual([]);
  });

  it('answers ENOENT past the last area, after copying the pieces before the gap', () => {
    const { s } = replay([
      ...setup(),
      { op: 'mem_write', addr: UBUF, data: 'aabb' },
      rw(IOVA + 0x3fff, 2, RW.WRITE, { ret: undefined, errno: 'ENOENT' }),
      { op: 'mem_read', addr: '0x7f0000003fff', length: 1, ret: 0, out: { data: 'aa' } },
    ]);
    expect(s.divergences).toEqual([]);
  });

  it('answers EINVAL for length 0, and EFAULT when the user buffer of a write is not mapped', () => {
    const { s } = replay([
      ...setup(),
      rw(IOVA, 0, RW.READ, { ret: undefined, errno: 'EINVAL' }),
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_ACCESS_RW', id: '$access', access_rw: { iova: IOVA, length: 4, uptr: '0x7e0000000000', flags: RW.WRITE } }, errno: 'EFAULT' },
    ]);
    expect(s.divergences).toEqual([]);
  });

  it('sees the new memory on the fast path but the pinned pages on the slow path after the VA is remapped under a pin', () => {
    const { s } = replay([
      ...setup(),
      { op: 'mem_write', addr: BUF, data: '11' },
      { op: 'mem_write', addr: '0x7f0000001000', data: '22' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_ACCESS_PAGES', id: '$access', access_pages: { iova: IOVA, length: 8192, uptr: BUF } }, ret: 0, out: { access_pages: { out_access_pages_id: '$item' } } },
      anon(BUF, 8192),
      // The fast path copies through the page table, which now shows fresh zero pages.
      rw(IOVA, 1, RW.READ),
      { op: 'mem_read', addr: UBUF, length: 1, ret: 0, out: { data: '00' } },
      // The multi-page slow path reads the still-pinned old pages.
      rw(IOVA + 0xfff, 2, RW.SLOW),
      { op: 'mem_read', addr: UBUF, length: 2, ret: 0, out: { data: '0022' } },
    ]);
    expect(s.errors).toEqual([]);
    expect(s.divergences).toEqual([]);
  });
});
