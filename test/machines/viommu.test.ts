/**
 * The vIOMMU family through replay: a vIOMMU holds its nesting parent, the mock's driver data gives an mmap cookie
 * whose VMA holds the vIOMMU, vDEVICEs are tombstoned by an unbind, HW queues pin physically contiguous memory and
 * depend on the queue before them, and a fault object's fd holds it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { replayOps } from '../support/replay.js';

const SEED = Number(process.env['FC_SEED'] ?? 0x5eed5);
console.info(`viommu.test.ts: fast-check seed ${SEED}`);

const BUF = '0x7f0000000000';
const VIOMMU = { flags: 0, type: 0xdeadbeef, dev_id: '$idev', hwpt_id: '$hwpt' };

const replay = replayOps;

const setup: object[] = [
  { op: 'mmap', addr: BUF, length: 16384, prot: ['PROT_READ', 'PROT_WRITE'], flags: ['MAP_SHARED', 'MAP_ANONYMOUS', 'MAP_FIXED'], ret: BUF },
  { op: 'open', path: '/dev/iommu', ret: '$fd' },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: '$ioas' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN', id: '$ioas', mock_domain: {} }, ret: 0,
    out: { mock_domain: { out_stdev_id: '$stdev', out_idev_id: '$idev' } } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_HWPT_ALLOC', arg: { flags: ['IOMMU_HWPT_ALLOC_NEST_PARENT'], dev_id: '$idev', pt_id: '$ioas' }, ret: 0, out: { out_hwpt_id: '$hwpt' } },
];
const withCookie: object[] = [
  ...setup,
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VIOMMU_ALLOC', arg: { ...VIOMMU, data_uptr: { in_data: 0x1234 }, data_len: 24 }, ret: 0,
    out: { out_viommu_id: '$viommu', data_uptr: { out_data: 0x1234, out_mmap_offset: 4096, out_mmap_length: 8192 } } },
];

describe('IOMMU_VIOMMU_ALLOC', () => {
  it('holds its nesting parent, so the parent is busy until the vIOMMU is destroyed', () => {
    const { problems } = replay([
      ...setup,
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VIOMMU_ALLOC', arg: VIOMMU, ret: 0, out: { out_viommu_id: '$viommu' } },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$hwpt' }, errno: 'EBUSY' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$viommu' }, ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$hwpt' }, ret: 0 },
    ]);
    expect(problems).toEqual([]);
  });

  it('hands out the first mmap cookie at PAGE_SIZE and the next one after it', () => {
    const { problems } = replay([
      ...withCookie,
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VIOMMU_ALLOC', arg: { ...VIOMMU, data_uptr: { in_data: 1 }, data_len: 24 }, ret: 0,
        out: { out_viommu_id: '$v2', data_uptr: { out_data: 1, out_mmap_offset: 12288, out_mmap_length: 8192 } } },
    ]);
    expect(problems).toEqual([]);
  });

  it('maps the cookie only MAP_SHARED, without PROT_EXEC, at its exact offset and length', () => {
    const map = (over: object) => ({ op: 'mmap', length: 8192, prot: ['PROT_READ'], flags: ['MAP_SHARED'], fd: '$fd', offset: 4096, ...over });
    const { problems } = replay([
      ...withCookie,
      map({ flags: ['MAP_PRIVATE'], errno: 'EINVAL' }),
      map({ prot: ['PROT_READ', 'PROT_EXEC'], errno: 'EPERM' }),
      map({ offset: 8192, errno: 'ENXIO' }),
      map({ length: 4096, errno: 'ENXIO' }),
      map({ offset: 0, errno: 'ENXIO' }),
      map({ ret: '0x7f0000200000' }),
      { op: 'mem_read', addr: '0x7f0000200000', length: 4, out: { data: '34120000' } },
    ]);
    expect(problems).toEqual([]);
  });

  it('keeps the owner busy while a VMA maps its cookie, and refuses a cookie whose owner is gone', () => {
    const { problems } = replay([
      ...withCookie,
      { op: 'mmap', length: 8192, prot: ['PROT_READ'], flags: ['MAP_SHARED'], fd: '$fd', offset: 4096, ret: '0x7f0000200000' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$viommu' }, errno: 'EBUSY' },
      { op: 'munmap', addr: '0x7f0000200000', length: 8192, ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$viommu' }, ret: 0 },
      { op: 'mmap', length: 8192, prot: ['PROT_READ'], flags: ['MAP_SHARED'], fd: '$fd', offset: 4096, errno: 'ENXIO' },
    ]);
    expect(problems).toEqual([]);
  });

  it('keeps the owner busy while any piece of a VMA that munmap cut in part still maps its cookie', () => {
    const { problems, st } = replay([
      ...withCookie,
      { op: 'mmap', length: 8192, prot: ['PROT_READ'], flags: ['MAP_SHARED'], fd: '$fd', offset: 4096, ret: '0x7f0000200000' },
      { op: 'munmap', addr: '0x7f0000200000', length: 4096, ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$viommu' }, errno: 'EBUSY' },
      { op: 'mem_read', addr: '0x7f0000201000', length: 4, out: { data: '00000000' } },
      { op: 'munmap', addr: '0x7f0000201000', length: 4096, ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$viommu' }, ret: 0 },
    ]);
    expect(problems).toEqual([]);
    expect([...st.ctxs.values()].map((c) => c.v.vmas.size)).toEqual([0]);
  });

  it('every successful mmap maps a live owner\'s cookie exactly, and no owner is destroyed while mapped', () => {
    const page = 4096;
    const step = fc.oneof(
      fc.record({ k: fc.constant('map' as const), off: fc.integer({ min: 0, max: 6 }), pages: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ k: fc.constant('unmap' as const) }),
      fc.record({ k: fc.constant('destroy' as const) }),
    );
    fc.assert(fc.property(fc.array(step, { maxLength: 12 }), (steps) => {
      let mapped = 0, alive = true;
      const lines: object[] = [...withCookie];
      const addrs: string[] = [];
      for (const s of steps) {
        if (s.k === 'map') {
          const ok = alive && s.off === 1 && s.pages === 2;
          const addr = `0x${(0x7f0000200000 + addrs.length * 0x10000).toString(16)}`;
          lines.push({ op: 'mmap', length: s.pages * page, prot: ['PROT_READ'], flags: ['MAP_SHARED'], fd: '$fd', offset: s.off * page, ...(ok ? { ret: addr } : { errno: 'ENXIO' }) });
          if (ok) { addrs.push(addr); mapped++; }
        } else if (s.k === 'unmap' && addrs.length > 0) {
          lines.push({ op: 'munmap', addr: addrs.pop(), length: 2 * page, ret: 0 });
          mapped--;
        } else if (s.k === 'destroy' && alive) {
          lines.push({ op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$viommu' }, ...(mapped > 0 ? { errno: 'EBUSY' } : { ret: 0 }) });
          alive = mapped > 0;
        }
      }
      const { problems, entries } = replay(lines);
      expect(problems).toEqual([]);
      const live = entries.filter((e) => e.ev.type === 'CookieVmaMapped').length - entries.filter((e) => e.ev.type === 'CookieVmaUnmapped').length;
      expect(live).toBe(mapped);
    }), { seed: SEED, numRuns: 60 });
  });
});

describe('IOMMU_VDEVICE_ALLOC', () => {
  it('is tombstoned when its device is unbound: its id stays taken and DESTROY answers ENOENT', () => {
    const { problems, entries } = replay([
      ...setup,
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VIOMMU_ALLOC', arg: VIOMMU, ret: 0, out: { out_viommu_id: '$viommu' } },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VDEVICE_ALLOC', arg: { dev_id: '$idev', viommu_id: '$viommu', virt_id: 7 }, ret: 0, out: { out_vdevice_id: '$vdev' } },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VDEVICE_ALLOC', arg: { dev_id: '$idev', viommu_id: '$viommu', virt_id: 8 }, errno: 'EEXIST' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$viommu' }, errno: 'EBUSY' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$stdev' }, ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$vdev' }, errno: 'ENOENT' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$viommu' }, ret: 0 },
      { op: 'close', fd: '$fd', ret: 0 },
    ]);
    expect(problems).toEqual([]);
    expect(entries.some((e) => e.ev.type === 'ObjectTombstoned')).toBe(true);
    expect(entries.some((e) => e.ev.type === 'IommufdReleased')).toBe(true);
  });
});

describe('IOMMU_HW_QUEUE_ALLOC', () => {
  it('pins its memory so IOAS_UNMAP is EBUSY, and queue 0 is busy while queue 1 depends on it', () => {
    const q = (index: number, over: object) => ({ op: 'ioctl', fd: '$fd', cmd: 'IOMMU_HW_QUEUE_ALLOC', arg: { viommu_id: '$viommu', type: 0xdeadbeef, index, nesting_parent_iova: '0x1000000', length: 4096 }, ...over });
    const { problems } = replay([
      ...setup,
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VIOMMU_ALLOC', arg: VIOMMU, ret: 0, out: { out_viommu_id: '$viommu' } },
      q(0, { errno: 'ENOENT' }),
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_MAP', arg: { flags: ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_READABLE', 'IOMMU_IOAS_MAP_WRITEABLE'], ioas_id: '$ioas', user_va: BUF, length: 4096, iova: '0x1000000' }, ret: 0 },
      q(1, { errno: 'EIO' }),
      q(0, { ret: 0, out: { out_hw_queue_id: '$q0' } }),
      q(1, { ret: 0, out: { out_hw_queue_id: '$q1' } }),
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_UNMAP', arg: { ioas_id: '$ioas', iova: '0x1000000', length: 4096 }, errno: 'EBUSY' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$q0' }, errno: 'EBUSY' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$q1' }, ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$q0' }, ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_UNMAP', arg: { ioas_id: '$ioas', iova: '0x1000000', length: 4096 }, ret: 0 },
    ]);
    expect(problems).toEqual([]);
  });
});

describe('IOMMU_HW_QUEUE_ALLOC of memory the HW reads by physical address', () => {
  it('refuses pages that are not physically contiguous, and a length that overflows once rounded to pages', () => {
    const q = (iova: string, length: number | string, over: object) => ({ op: 'ioctl', fd: '$fd', cmd: 'IOMMU_HW_QUEUE_ALLOC', arg: { viommu_id: '$viommu', type: 0xdeadbeef, index: 0, nesting_parent_iova: iova, length }, ...over });
    const { problems, entries } = replay([
      ...setup,
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VIOMMU_ALLOC', arg: VIOMMU, ret: 0, out: { out_viommu_id: '$viommu' } },
      // Page 1 is touched first, so page 0 gets the next frame: the two are not in physical order.
      { op: 'mem_write', addr: '0x7f0000001000', data: '01', ret: 0 },
      { op: 'mem_write', addr: BUF, data: '01', ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_MAP', arg: { flags: ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_READABLE', 'IOMMU_IOAS_MAP_WRITEABLE'], ioas_id: '$ioas', user_va: BUF, length: 8192, iova: '0x1000000' }, ret: 0 },
      q('0x1000800', 4096, { errno: 'EFAULT' }),
      q('0x10', '0xfffffffffffffff0', { errno: 'ERANGE' }),
      q('0x1000800', 2048, { ret: 0, out: { out_hw_queue_id: '$q0' } }),
    ]);
    expect(problems).toEqual([]);
    const why = entries.filter((e) => e.ev.type === 'CallCompleted' && e.ev.errno === 'EFAULT').map((e) => (e.ev as { why: string }).why);
    expect(why).toEqual([expect.stringContaining('not physically contiguous')]);
  });
});

describe('IOMMU_FAULT_QUEUE_ALLOC', () => {
  it('gives a fault object held by its fd and by the HWPTs that use it', () => {
    const { problems } = replay([
      ...setup,
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_FAULT_QUEUE_ALLOC', arg: {}, ret: 0, out: { out_fault_id: '$fault', out_fault_fd: '$ffd' } },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_HWPT_ALLOC', arg: { flags: ['IOMMU_HWPT_FAULT_ID_VALID'], dev_id: '$idev', pt_id: '$ioas', fault_id: 99 }, errno: 'ENOENT' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_HWPT_ALLOC', arg: { flags: ['IOMMU_HWPT_FAULT_ID_VALID'], dev_id: '$idev', pt_id: '$ioas', fault_id: '$fault' }, ret: 0, out: { out_hwpt_id: '$h' } },
      { op: 'close', fd: '$ffd', ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$fault' }, errno: 'EBUSY' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$h' }, ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$fault' }, ret: 0 },
    ]);
    expect(problems).toEqual([]);
  });
});
