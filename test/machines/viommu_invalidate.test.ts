/**
 * IOMMU_HWPT_INVALIDATE on a mock vIOMMU (selftest.c `mock_viommu_cache_invalidate`): an empty array of the right type
 * is a probe, the whole array is copied before any entry runs, each entry clears one or all cache words of the mock
 * device behind a vDEVICE of this vIOMMU, and `entry_num` reports how many entries ran before the first bad one.
 */
import { describe, expect, it } from 'vitest';
import { replayOps } from '../support/replay.js';

const DEFAULT = 0xbaddad;
const setup: object[] = [
  { op: 'open', path: '/dev/iommu', ret: '$fd' },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: '$ioas' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN', id: '$ioas', mock_domain: {} }, ret: 0, out: { mock_domain: { out_idev_id: '$idev' } } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_HWPT_ALLOC', arg: { flags: ['IOMMU_HWPT_ALLOC_NEST_PARENT'], dev_id: '$idev', pt_id: '$ioas' }, ret: 0, out: { out_hwpt_id: '$hwpt' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VIOMMU_ALLOC', arg: { type: 0xdeadbeef, dev_id: '$idev', hwpt_id: '$hwpt' }, ret: 0, out: { out_viommu_id: '$viommu' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VDEVICE_ALLOC', arg: { viommu_id: '$viommu', dev_id: '$idev', virt_id: 0x99 }, ret: 0 },
];
/** Little-endian bytes of u32 words, as the entries' hex. */
const words = (...w: number[]): string => w.map((x) => [0, 8, 16, 24].map((s) => ((x >>> s) & 0xff).toString(16).padStart(2, '0')).join('')).join('');
const invalidate = (entries: string, num: number, over: object, len = 12, type = 'IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST'): object => ({
  op: 'ioctl', fd: '$fd', cmd: 'IOMMU_HWPT_INVALIDATE',
  arg: { hwpt_id: '$viommu', data_type: type, entry_len: len, entry_num: num, ...(entries === '' ? {} : { data_uptr: entries }) }, ...over,
});
const cache = (id: number, value: number): object => ({
  op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_DEV_CHECK_CACHE', id: '$idev', check_dev_cache: { id, cache: value } }, ret: 0,
});

describe('IOMMU_HWPT_INVALIDATE on a vIOMMU', () => {
  it('probes the type with an empty array and refuses another type, empty or not', () => {
    const { problems } = replayOps([
      ...setup,
      invalidate('', 0, { ret: 0, out: { entry_num: 0 } }),
      invalidate('', 0, { errno: 'EINVAL', out: { entry_num: 0 } }, 12, 'IOMMU_HWPT_INVALIDATE_DATA_VTD_S1'),
      invalidate(words(0, 0x99, 0), 1, { errno: 'EINVAL', out: { entry_num: 0 } }, 12, 'IOMMU_HWPT_INVALIDATE_DATA_VTD_S1'),
    ]);
    expect(problems).toEqual([]);
  });

  it('clears one cache word, then all of them (cache_id still checked), of the device behind the vDEVICE', () => {
    const { problems } = replayOps([
      ...setup,
      cache(2, DEFAULT),
      invalidate(words(0, 0x99, 2), 1, { ret: 0, out: { entry_num: 1 } }),
      cache(2, 0), cache(1, DEFAULT),
      invalidate(words(1, 0x99, 7), 1, { errno: 'EINVAL', out: { entry_num: 0 } }),
      invalidate(words(1, 0x99, 3), 1, { ret: 0, out: { entry_num: 1 } }),
      cache(0, 0), cache(1, 0), cache(3, 0),
    ]);
    expect(problems).toEqual([]);
  });

  it('stops at the first bad entry and reports the entries done before it', () => {
    const good = words(0, 0x99, 0);
    const { problems } = replayOps([
      ...setup,
      invalidate(good + words(2, 0x99, 1), 2, { errno: 'EOPNOTSUPP', out: { entry_num: 1 } }),
      cache(0, 0), cache(1, DEFAULT),
      invalidate(good + words(0, 0x99, 4), 2, { errno: 'EINVAL', out: { entry_num: 1 } }),
      invalidate(good + good + words(0, 0x98, 1), 3, { errno: 'EINVAL', out: { entry_num: 2 } }),
      cache(1, DEFAULT),
    ]);
    expect(problems).toEqual([]);
  });

  it('copies the whole array first: short entries are zero-extended, long ones need zero tails', () => {
    const { problems } = replayOps([
      ...setup,
      invalidate(words(0, 0x99, 3, 0) + words(0, 0x99, 0, 5), 2, { errno: 'E2BIG', out: { entry_num: 0 } }, 16),
      cache(3, DEFAULT),
      invalidate(words(0, 0x99), 1, { ret: 0, out: { entry_num: 1 } }, 8),
      cache(0, 0), cache(3, DEFAULT),
      invalidate(words(0, 0x99, 3), 2, { errno: 'EFAULT', out: { entry_num: 0 } }),
      cache(3, DEFAULT),
    ]);
    expect(problems).toEqual([]);
  });
});
