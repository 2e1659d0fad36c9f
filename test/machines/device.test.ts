/**
 * Devices, HW page tables and the selftest mock driver: IOMMU_TEST_OP_MOCK_DOMAIN (selftest.c
 * `iommufd_test_mock_domain`), MOCK_DOMAIN_REPLACE, IOMMU_DESTROY of each object kind, IOMMU_HWPT_ALLOC of a
 * paging HWPT (hw_pagetable.c `iommufd_hwpt_alloc`), MD_CHECK_MAP, DEV_CHECK_CACHE and IOMMU_GET_HW_INFO
 * (device.c `iommufd_get_hw_info`). Spec: iommufd-device-spec.md §2, §3.2, §5.
 */
import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import { memRead } from '../../src/hw/mm.js';
import { given, ioasAllocated, ioctl, opened } from '../support/given.js';
import {
  BUF, MOCK_APERTURE_START, PAGE, TEST_HEADER, U64_MAX, after, allowIovas, areasOf, checkMap, checkRefs, copy, destroy, execute,
  expectOk, mapFixed, mmapped, mockDomain, mockDomainFlags,
} from '../support/steps.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const IOVA = MOCK_APERTURE_START;
const SZ64K = 0x10000n;
const base = (): DomainEvent[][] => [opened(), ioasAllocated(1)];
const st = (events: DomainEvent[]) => after([events]).state;
const kinds = (s: ReturnType<typeof st>) => [...s.ctxs.get(1)!.objects.values()].map((o) => [o.id, o.kind, o.users]);
const ioptOf = (s: ReturnType<typeof st>, id = 1) => s.ctxs.get(1)!.objects.get(id)!.ioas!.iopt;
const md = (out: unknown) => (out as { mock_domain: { out_stdev_id: bigint; out_hwpt_id: bigint; out_idev_id: bigint } }).mock_domain;
const replace = (stdev: number, pt: number) =>
  ioctl('IOMMU_TEST_CMD', { op: 'IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', id: stdev, mock_domain_replace: { pt_id: pt } });
const hwptAlloc = (arg: Record<string, unknown>) => ioctl('IOMMU_HWPT_ALLOC', { dev_id: 3, pt_id: 1, ...arg });
const devCache = (id: number, cid: number, cache: number) =>
  ioctl('IOMMU_TEST_CMD', { op: 'IOMMU_TEST_OP_DEV_CHECK_CACHE', id, check_dev_cache: { id: cid, cache } });
const hwInfo = (arg: Record<string, unknown>) => ioctl('IOMMU_GET_HW_INFO', { dev_id: 3, data_len: 8, data_uptr: hex(BUF), ...arg });

describe('IOMMU_TEST_OP_MOCK_DOMAIN', () => {
  it('consumes ids N (selftest object), N+1 (device) and N+2 (auto HWPT) on an IOAS', () => {
    const s = after(base(), mockDomain(1));
    expect(md(s.outs[0])).toEqual({ out_stdev_id: 2n, out_idev_id: 3n, out_hwpt_id: 4n });
    // selftest users 1 (destroyable); the idev: table + driver + attachment; the HWPT: table + the device.
    expect(kinds(s.state)).toEqual([[1, 'IOAS', 2], [2, 'SELFTEST', 1], [3, 'DEVICE', 3], [4, 'HWPT_PAGING', 2]]);
    // The auto domain is the mock's default paging domain: 2 KiB pages, aperture [16 MiB, 2 GiB - 1].
    expect(ioptOf(s.state).iovaAlignment).toBe(2048n);
    expect([...ioptOf(s.state).reserved.inOrder()].map((n) => [n.start, n.last])).toEqual([[0n, IOVA - 1n], [1n << 31n, U64_MAX]]);
  });

  it('takes the lowest free ids, one at a time', () => {
    const s = after([opened(), ioasAllocated(1), ioasAllocated(2), ioasAllocated(3), [{ type: 'ObjectDestroyed', ctx: 1, id: 2 }]], mockDomain(1));
    expect(md(s.outs[0])).toEqual({ out_stdev_id: 2n, out_idev_id: 4n, out_hwpt_id: 5n });
  });

  it('reuses the auto domain of the IOAS for a second device, consuming only two ids', () => {
    const s = after(base(), mockDomain(1), mockDomain(1), ioctl('IOMMU_IOAS_ALLOC', {}));
    expect(md(s.outs[1])).toEqual({ out_stdev_id: 5n, out_idev_id: 6n, out_hwpt_id: 4n });
    expect(s.outs[2]).toMatchObject({ out_ioas_id: 7n });
    expect(s.state.ctxs.get(1)!.objects.get(4)!.users).toBe(3);
    expect(s.state.domains.size).toBe(1);
  });

  it('attaches directly to a HWPT given as the id', () => {
    const s = after(base(), mockDomain(1), mockDomain(4));
    expect(md(s.outs[1])).toEqual({ out_stdev_id: 5n, out_idev_id: 6n, out_hwpt_id: 4n });
  });

  it('answers EINVAL for unknown dev_flags after reserving the selftest id, and frees it', () => {
    const r = given(...base()).when(mockDomainFlags(1, 2)).thenFails('EINVAL');
    expect(r.state.ctxs.get(1)!.ids.lowestFree()).toBe(2);
  });

  it('answers ENOENT for a missing pt and EINVAL for an object that is neither an IOAS nor a HWPT, leaving nothing behind', () => {
    // device.c iommufd_device_change_pt: iommufd_get_object(ANY) → ENOENT; `default: return -EINVAL`.
    const r = given(...base()).when(mockDomain(9)).thenFails('ENOENT');
    expect(kinds(r.state)).toEqual([[1, 'IOAS', 1]]);
    const s = after(base(), mockDomain(1));
    given(s.events).when(mockDomain(3)).thenFails('EINVAL');
    given(s.events).when(mockDomain(2)).thenFails('EINVAL');
  });

  it('fills the new auto domain with the IOAS mappings, and MD_CHECK_MAP sees them', () => {
    const s = after([...base(), mmapped(BUF, SZ64K)], mapFixed(1, BUF, SZ64K, IOVA), mockDomain(1));
    expect(s.state.accounting.pinnedVm).toBe(16);
    expectOk(execute(st(s.events), TEST_HEADER, checkMap(4, IOVA, SZ64K, BUF)));
  });

  it('answers EADDRINUSE when an existing area lies outside the mock aperture, consuming no id', () => {
    const s = after(base(), mapFixed(1, BUF, 0x1000n, 0x1000n));
    const r = given(s.events).when(mockDomain(1)).thenFails('EADDRINUSE', /aperture/);
    expect(kinds(r.state)).toEqual([[1, 'IOAS', 1]]);
  });

  it('answers EADDRINUSE when an existing area is not aligned to the 2 KiB mock page', () => {
    const s = after(base(), mapFixed(1, BUF + 0x400n, 0x800n, IOVA + 0x400n));
    given(s.events).when(mockDomain(1)).thenFails('EADDRINUSE', /aligned/);
  });

  it('answers EADDRINUSE when an allowed range lies outside the mock aperture', () => {
    const s = after(base(), allowIovas(1, [[0x1000n, 0x1fffn]]));
    given(s.events).when(mockDomain(1)).thenFails('EADDRINUSE', /allowed/);
  });
});

describe('IOMMU_DESTROY of devices, HWPTs and IOASes', () => {
  it('answers EBUSY for a device id: the driver holds it', () => {
    const s = after(base(), mockDomain(1));
    given(s.events).when(destroy(3)).thenFails('EBUSY');
  });

  it('answers EBUSY for an auto HWPT with a device attached and for an IOAS with a HWPT', () => {
    const s = after(base(), mockDomain(1));
    given(s.events).when(destroy(4)).thenFails('EBUSY');
    given(s.events).when(destroy(1)).thenFails('EBUSY');
  });

  it('destroys the selftest object: the device detaches and unbinds, and its auto domain disappears with it', () => {
    const s = after([...base(), mmapped(BUF, SZ64K)], mockDomain(1), mapFixed(1, BUF, SZ64K, IOVA));
    const r = execute(st(s.events), TEST_HEADER, destroy(2));
    expectOk(r);
    expect(kinds(r.state)).toEqual([[1, 'IOAS', 1]]);
    expect(r.state.domains.size).toBe(0);
    // The aperture reservations went with the domain; the area stays, unpinned.
    expect(ioptOf(r.state).reserved.isEmpty).toBe(true);
    expect(ioptOf(r.state).iovaAlignment).toBe(1n);
    expect(areasOf(r.state, 1)).toEqual([[IOVA, IOVA + SZ64K - 1n]]);
    expect(r.state.accounting.pinnedVm).toBe(0);
    expectOk(execute(r.state, TEST_HEADER, destroy(1)));
  });

  it('keeps an auto domain while another device still uses it', () => {
    const s = after(base(), mockDomain(1), mockDomain(1));
    const r = execute(st(s.events), TEST_HEADER, destroy(2));
    expectOk(r);
    expect(kinds(r.state)).toEqual([[1, 'IOAS', 2], [4, 'HWPT_PAGING', 2], [5, 'SELFTEST', 1], [6, 'DEVICE', 3]]);
  });

  it('keeps a manually allocated HWPT when its last device goes, which then can be destroyed', () => {
    const s = after(base(), mockDomain(1), hwptAlloc({}), replace(2, 5));
    expect(s.outs[1]).toMatchObject({ out_hwpt_id: 5n });
    const r = execute(st(s.events), TEST_HEADER, destroy(2));
    expectOk(r);
    expect(kinds(r.state)).toEqual([[1, 'IOAS', 2], [5, 'HWPT_PAGING', 1]]);
    expectOk(execute(r.state, TEST_HEADER, destroy(5)));
    expectOk(execute(r.state, TEST_HEADER, destroy(1)));
  });
});

describe('IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', () => {
  it('moves the device onto another IOAS through a new auto domain, and the old auto domain disappears', () => {
    const s = after([...base(), ioasAllocated(2)], mockDomain(1));
    const r = execute(st(s.events), TEST_HEADER, replace(3, 2));
    // ids: IOAS 1, 2; stdev 3, idev 4, hwpt 5; the new auto domain takes 6.
    expectOk(r, { mock_domain_replace: { pt_id: 6n } });
    expect(kinds(r.state)).toEqual([[1, 'IOAS', 1], [2, 'IOAS', 2], [3, 'SELFTEST', 1], [4, 'DEVICE', 3], [6, 'HWPT_PAGING', 2]]);
    expect(r.state.domains.size).toBe(1);
  });

  it('moves the device onto a manually allocated HWPT', () => {
    const s = after(base(), mockDomain(1), hwptAlloc({}));
    const r = execute(st(s.events), TEST_HEADER, replace(2, 5));
    expectOk(r, { mock_domain_replace: { pt_id: 5n } });
    expect(kinds(r.state)).toEqual([[1, 'IOAS', 2], [2, 'SELFTEST', 1], [3, 'DEVICE', 3], [5, 'HWPT_PAGING', 2]]);
  });

  it('succeeds without change when the target is the current HWPT, and reuses the auto domain of the same IOAS', () => {
    const s = after(base(), mockDomain(1));
    given(s.events).when(replace(2, 4)).then([], { mock_domain_replace: { pt_id: 4n } });
    given(s.events).when(replace(2, 1)).then([], { mock_domain_replace: { pt_id: 4n } });
  });

  it('keeps the shared pages pinned when the old auto domain of another IOAS goes and the new one maps them', () => {
    // IOAS 2 shares IOAS 1's pages (COPY). Replacing onto IOAS 2 fills a new auto domain there from the pages already
    // pinned, then the old auto domain leaves IOAS 1: pages.c iopt_area_unfill_domain unpins only what no other
    // domains_itree entry (IOAS 2's area, now filled) still covers.
    const s = after([...base(), ioasAllocated(2), mmapped(BUF, SZ64K)], mockDomain(1), mapFixed(1, BUF, SZ64K, IOVA), copy(2, 1, IOVA, SZ64K, IOVA));
    const r = execute(st(s.events), TEST_HEADER, replace(3, 2));
    expectOk(r, { mock_domain_replace: { pt_id: 6n } });
    expect(r.state.accounting.pinnedVm).toBe(16);
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, SZ64K, 1)));
    expectOk(execute(r.state, TEST_HEADER, checkMap(6, IOVA, SZ64K, BUF)));
  });

  it('answers ENOENT for an id that is not a selftest object, and for a missing pt', () => {
    const s = after(base(), mockDomain(1));
    // selftest.c iommufd_test_get_selftest_obj: iommufd_get_object(ictx, id, IOMMUFD_OBJ_SELFTEST) → -ENOENT for
    // any other object type (main.c iommufd_get_object: `obj->type != type` → ERR_PTR(-ENOENT)).
    given(s.events).when(replace(3, 1)).thenFails('ENOENT');
    given(s.events).when(replace(1, 1)).thenFails('ENOENT');
    given(s.events).when(replace(9, 1)).thenFails('ENOENT');
    given(s.events).when(replace(2, 9)).thenFails('ENOENT');
  });
});

describe('IOMMU_HWPT_ALLOC of a paging HWPT', () => {
  const dev = () => after(base(), mockDomain(1));

  it('checks __reserved, then data_type against data_len, then the device, then the pt (whose failed lookup is EINVAL)', () => {
    const s = dev();
    given(s.events).when(hwptAlloc({ __reserved: 1, dev_id: 9 })).thenFails('EOPNOTSUPP');
    given(s.events).when(hwptAlloc({ data_len: 8, dev_id: 9 })).thenFails('EINVAL');
    given(s.events).when(hwptAlloc({ data_type: 'IOMMU_HWPT_DATA_SELFTEST', data_len: 0, dev_id: 9 })).thenFails('EINVAL');
    given(s.events).when(hwptAlloc({ dev_id: 9, pt_id: 9 })).thenFails('ENOENT');
    given(s.events).when(hwptAlloc({ dev_id: 1 })).thenFails('ENOENT');
    // hw_pagetable.c iommufd_hwpt_alloc: `pt_obj = iommufd_get_object(ucmd->ictx, cmd->pt_id, IOMMUFD_OBJ_ANY); if (IS_ERR(pt_obj)) { rc = -EINVAL; ...`
    given(s.events).when(hwptAlloc({ pt_id: 9 })).thenFails('EINVAL');
    given(s.events).when(hwptAlloc({ pt_id: 3 })).thenFails('EINVAL');
  });

  it('allocates a non-auto paging HWPT on the IOAS with the lowest free id', () => {
    const s = dev();
    const r = execute(st(s.events), TEST_HEADER, hwptAlloc({}));
    expectOk(r, { out_hwpt_id: 5n });
    expect(r.state.ctxs.get(1)!.objects.get(5)!.hwpt).toMatchObject({ ioas: 1, auto: false });
    // A manual HWPT is never picked by the auto-domain search: a second device on the IOAS reuses auto HWPT 4.
    expectOk(execute(r.state, TEST_HEADER, mockDomain(1)), { mock_domain: { out_hwpt_id: 4n } });
  });

  it('answers EOPNOTSUPP for an unknown flag, dirty tracking on a NO_DIRTY device, and FAULT_ID_VALID with NEST_PARENT', () => {
    const s = dev();
    given(s.events).when(hwptAlloc({ flags: 0x20 })).thenFails('EOPNOTSUPP');
    given(s.events).when(hwptAlloc({ flags: ['IOMMU_HWPT_FAULT_ID_VALID', 'IOMMU_HWPT_ALLOC_NEST_PARENT'] })).thenFails('EOPNOTSUPP');
    const nd = after(base(), mockDomainFlags(1, 1));
    given(nd.events).when(hwptAlloc({ flags: 'IOMMU_HWPT_ALLOC_DIRTY_TRACKING' })).thenFails('EOPNOTSUPP');
    expectOk(execute(st(s.events), TEST_HEADER, hwptAlloc({ flags: 'IOMMU_HWPT_ALLOC_DIRTY_TRACKING' })), { out_hwpt_id: 5n });
    expectOk(execute(st(s.events), TEST_HEADER, hwptAlloc({ flags: ['IOMMU_HWPT_ALLOC_NEST_PARENT', 'IOMMU_HWPT_ALLOC_PASID'] })), { out_hwpt_id: 5n });
  });

  it('takes IOMMU_HWPT_DATA_SELFTEST driver data of 4 to 8 bytes and refuses other data types', () => {
    const s = dev();
    given(s.events).when(hwptAlloc({ data_type: 'IOMMU_HWPT_DATA_VTD_S1', data_len: 8, data_uptr: { iotlb: 0 } })).thenFails('EOPNOTSUPP');
    given(s.events).when(hwptAlloc({ data_type: 'IOMMU_HWPT_DATA_SELFTEST', data_len: 2, data_uptr: { iotlb: 0 } })).thenFails('EINVAL');
    given(s.events).when(hwptAlloc({ data_type: 'IOMMU_HWPT_DATA_SELFTEST', data_len: 8, data_uptr: { iotlb: 0, pagetable_type: 7 } })).thenFails('EOPNOTSUPP');
    expectOk(execute(st(s.events), TEST_HEADER, hwptAlloc({ data_type: 'IOMMU_HWPT_DATA_SELFTEST', data_len: 4, data_uptr: { iotlb: 0 } })));
  });

  it('allocates the HUGE mock page table: PAGE_SIZE alignment and no aperture reservation', () => {
    const s = after([opened(), ioasAllocated(1), ioasAllocated(2)], mockDomain(2));
    // ids: IOAS 1, 2; stdev 3, idev 4, hwpt 5. The HUGE HWPT goes on the empty IOAS 1.
    const r = execute(st(s.events), TEST_HEADER, hwptAlloc({ dev_id: 4, pt_id: 1, data_type: 'IOMMU_HWPT_DATA_SELFTEST', data_len: 8, data_uptr: { iotlb: 0, pagetable_type: 1 } }));
    expectOk(r, { out_hwpt_id: 6n });
    expect(ioptOf(r.state).iovaAlignment).toBe(PAGE);
    expect(ioptOf(r.state).reserved.isEmpty).toBe(true);
  });

  it('answers EADDRINUSE when the IOAS has an area outside the aperture, and frees the id it reserved', () => {
    // The device comes from IOAS 2 (stdev 3, idev 4, hwpt 5); IOAS 1 has an area at 0x1000, below the aperture.
    const t = after([opened(), ioasAllocated(1), ioasAllocated(2)], mockDomain(2), mapFixed(1, BUF, 0x1000n, 0x1000n));
    const r = given(t.events).when(hwptAlloc({ dev_id: 4, pt_id: 1 })).thenFails('EADDRINUSE');
    expect(r.state.ctxs.get(1)!.ids.lowestFree()).toBe(6);
  });
});

describe('IOMMU_TEST_OP_MD_CHECK_MAP', () => {
  const mapped = () => after([...base(), mmapped(BUF, SZ64K)], mockDomain(1), mapFixed(1, BUF, SZ64K, IOVA));

  it('succeeds when every mock page of the IOVA range translates to the user buffer', () => {
    given(mapped().events).when(checkMap(4, IOVA, SZ64K, BUF)).then([]);
    given(mapped().events).when(checkMap(4, IOVA + 0x800n, 0x800n, BUF + 0x800n)).then([]);
  });

  it('answers ENOENT for an id that is not a paging HWPT', () => {
    given(mapped().events).when(checkMap(1, IOVA, SZ64K, BUF)).thenFails('ENOENT');
    given(mapped().events).when(checkMap(9, IOVA, SZ64K, BUF)).thenFails('ENOENT');
  });

  it('answers EINVAL for an iova, length or uptr that is not a multiple of the 2 KiB mock page', () => {
    given(mapped().events).when(checkMap(4, IOVA + 0x400n, 0x800n, BUF)).thenFails('EINVAL');
    given(mapped().events).when(checkMap(4, IOVA, 0x400n, BUF)).thenFails('EINVAL');
    given(mapped().events).when(checkMap(4, IOVA, 0x800n, BUF + 0x400n)).thenFails('EINVAL');
  });

  it('answers EINVAL where the IOVA is not mapped or maps another page', () => {
    given(mapped().events).when(checkMap(4, IOVA + SZ64K, 0x800n, BUF)).thenFails('EINVAL');
    given(mapped().events).when(checkMap(4, IOVA, 0x1000n, BUF + 0x1000n)).thenFails('EINVAL');
  });
});

describe('IOMMU_TEST_OP_DEV_CHECK_CACHE', () => {
  it('reads the mock device cache words, 0xbaddad by default, by the device id', () => {
    const s = after(base(), mockDomain(1));
    for (const cid of [0, 1, 2, 3]) given(s.events).when(devCache(3, cid, 0xbaddad)).then([]);
  });

  it('answers EINVAL for a cache id above 3 or another value, and ENOENT for the selftest id', () => {
    const s = after(base(), mockDomain(1));
    given(s.events).when(devCache(3, 4, 0xbaddad)).thenFails('EINVAL');
    given(s.events).when(devCache(3, 0, 0)).thenFails('EINVAL');
    given(s.events).when(devCache(2, 0, 0xbaddad)).thenFails('ENOENT');
  });
});

describe('IOMMU_GET_HW_INFO', () => {
  /** The info goes to user memory: the buffer is mapped. */
  const withBuf = (): DomainEvent[][] => [...base(), mmapped(BUF, PAGE)];

  it('checks flags, then __reserved, then the device', () => {
    const s = after(withBuf(), mockDomain(1));
    given(s.events).when(hwInfo({ flags: 2, dev_id: 9 })).thenFails('EOPNOTSUPP');
    given(s.events).when(hwInfo({ __reserved: '000100', dev_id: 9 })).thenFails('EOPNOTSUPP');
    given(s.events).when(hwInfo({ dev_id: 9 })).thenFails('ENOENT');
    given(s.events).when(hwInfo({ dev_id: 2 })).thenFails('ENOENT');
  });

  it('reports the mock driver info: 8 bytes of type SELFTEST, dirty tracking, ATS not supported, no PASID', () => {
    const s = after(withBuf(), mockDomain(1));
    const r = given(s.events).when(hwInfo({ data_len: 64 })).thenOk({
      data_len: 8n, out_data_type: 0xfeedbeefn, out_capabilities: 1n | 8n, out_max_pasid_log2: 0n,
    });
    // struct iommu_test_hw_info {flags = 0, test_reg = IOMMU_HW_INFO_SELFTEST_REGVAL}, then the rest of the buffer cleared.
    const mem = memRead(r.state.mm, r.state.memory, 4096, BUF, 16);
    expect(Buffer.from(mem as Uint8Array).toString('hex')).toBe('00000000efbeadde0000000000000000');
    // A zero-length buffer learns the size the kernel has.
    given(s.events).when(hwInfo({ data_len: 0, data_uptr: 0 })).then([], { data_len: 8n });
  });

  it('reports no dirty tracking for a NO_DIRTY device and 20 PASID bits for a PASID device', () => {
    const s = after(withBuf(), mockDomainFlags(1, 1), mockDomainFlags(1, 4));
    given(s.events).when(hwInfo({ dev_id: 3 })).thenOk({ out_capabilities: 8n, out_max_pasid_log2: 0n });
    given(s.events).when(hwInfo({ dev_id: 6 })).thenOk({ out_capabilities: 9n, out_max_pasid_log2: 20n });
  });

  it('takes a requested type with IOMMU_HW_INFO_FLAG_INPUT_TYPE: DEFAULT or SELFTEST, else EOPNOTSUPP', () => {
    const s = after(withBuf(), mockDomain(1));
    given(s.events).when(hwInfo({ flags: 1, in_data_type: 'IOMMU_HW_INFO_TYPE_SELFTEST' })).thenOk({ out_data_type: 0xfeedbeefn });
    given(s.events).when(hwInfo({ flags: 1, in_data_type: 'IOMMU_HW_INFO_TYPE_INTEL_VTD' })).thenFails('EOPNOTSUPP');
    // Without the flag the input type is ignored (forced to DEFAULT).
    given(s.events).when(hwInfo({ in_data_type: 'IOMMU_HW_INFO_TYPE_INTEL_VTD' })).thenOk({ out_data_type: 0xfeedbeefn });
  });

  it('answers EFAULT for a NULL buffer, or one that is not mapped, with a non-zero data_len', () => {
    const s = after(base(), mockDomain(1));
    given(s.events).when(hwInfo({ data_uptr: 0 })).thenFails('EFAULT');
    given(s.events).when(hwInfo({})).thenFails('EFAULT');
  });
});
