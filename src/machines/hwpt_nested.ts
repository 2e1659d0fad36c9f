/**
 * Nested HW page tables (drivers/iommu/iommufd/hw_pagetable.c `iommufd_hwpt_nested_alloc`,
 * `iommufd_viommu_alloc_hwpt_nested`; the mock driver's `mock_domain_alloc_nested`,
 * `mock_viommu_alloc_domain_nested`, `__mock_domain_alloc_nested` in selftest.c) and the fault object an HWPT may
 * be given at IOMMU_HWPT_ALLOC (`IOMMU_HWPT_FAULT_ID_VALID`).
 *
 * Theory of operation. A nested HWPT is a stage-1 domain owned by the guest that translates through a stage-2
 * parent: a NEST_PARENT HWPT_PAGING given directly, or the one a vIOMMU holds. It holds a reference on what it was
 * allocated on (so the parent is EBUSY to destroy) and has no IOVA mappings of its own. The mock nested domain
 * keeps four IOTLB words, all set from the `iommu_hwpt_selftest.iotlb` given at allocation; IOMMU_HWPT_INVALIDATE
 * clears them, and, given a mock vIOMMU, clears the cache words of the mock devices behind its vDEVICEs.
 */
import type { DomainEvent } from '../events/domain.js';
import type { Failure } from '../hw/iopt_ops.js';
import type { IommufdCtx, KObject, State } from '../projections/state.js';
import { fail, member, respond, succeed, u32, unmodelled, type Arg, type Call, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';
import { HWPT_ALLOC_PASID, HWPT_FAULT_ID_VALID } from './hw_pagetable.js';
import { userData } from './user_data.js';

const HWPT_DATA_SELFTEST = 0xdead, HWPT_INVALIDATE_DATA_SELFTEST = 0xdeadbeef;
/** `struct iommu_hwpt_selftest` {iotlb, pagetable_type}; `struct iommu_hwpt_invalidate_selftest` {flags, iotlb_id}. */
const HWPT_SELFTEST_SIZE = 8, INVALIDATE_SELFTEST_SIZE = 8;
const IOMMU_TEST_INVALIDATE_FLAG_ALL = 1, MOCK_NESTED_DOMAIN_IOTLB_ID_MAX = 3;

/** `__mock_domain_alloc_nested`: the IOTLB word, or why the data is refused. */
function mockNestedData(a: Arg, dataType: number, len: number): number | Failure | { unmodelled: string } {
  const fn = 'selftest.c __mock_domain_alloc_nested';
  if (dataType !== HWPT_DATA_SELFTEST) return { errno: 'EOPNOTSUPP', why: `${fn}: data_type 0x${dataType.toString(16)} is not IOMMU_HWPT_DATA_SELFTEST` };
  const d = userData(a, 'data_uptr', len, 4, HWPT_SELFTEST_SIZE, `${fn}: iommu_copy_struct_from_user`);
  if ('errno' in d || 'unmodelled' in d) return d;
  return d.u32(0, 'iotlb');
}

/**
 * The events making nested HWPT `id` on `pt` (a HWPT_PAGING or a VIOMMU) for device `idev`, or why not. The
 * object is only allocated once the core's own checks pass; a driver refusal aborts it (no trace remains).
 */
export function hwptNestedAllocEvents(st: State, ctx: IommufdCtx, idev: KObject, pt: KObject, id: number, a: Arg, flags: number, dataType: number, len: number): DomainEvent[] | Failure | { unmodelled: string } {
  if (!idev.idev!.mock) return { unmodelled: 'IOMMU_HWPT_ALLOC of a nested HWPT for a platform IOMMU' };
  let parentId: number, viommu = 0;
  if (pt.kind === 'HWPT_PAGING') {
    const fn = 'hw_pagetable.c iommufd_hwpt_nested_alloc';
    if ((flags & ~(HWPT_FAULT_ID_VALID | HWPT_ALLOC_PASID)) !== 0 || len === 0) return { errno: 'EOPNOTSUPP', why: `${fn}: flags 0x${flags.toString(16)} beyond FAULT_ID_VALID|PASID, or no driver data` };
    if (pt.hwpt!.auto || !pt.hwpt!.nestParent) return { errno: 'EINVAL', why: `${fn}: HWPT ${pt.id} is an auto domain or not a NEST_PARENT` };
    parentId = pt.id;
  } else {
    const fn = 'hw_pagetable.c iommufd_viommu_alloc_hwpt_nested';
    if ((flags & ~(HWPT_FAULT_ID_VALID | HWPT_ALLOC_PASID)) !== 0) return { errno: 'EOPNOTSUPP', why: `${fn}: flags 0x${flags.toString(16)} beyond FAULT_ID_VALID|PASID` };
    if (len === 0) return { errno: 'EOPNOTSUPP', why: `${fn}: no driver data` };
    parentId = pt.viommu!.hwpt;
    viommu = pt.id;
  }
  const iotlb = mockNestedData(a, dataType, len);
  if (typeof iotlb !== 'number') return iotlb;
  const parent = ctx.objects.get(parentId)!;
  const pd = st.domains.get(parent.hwpt!.domain)!;
  const domain = st.nextDomain;
  return [
    { type: 'ObjectAllocated', ctx: ctx.id, id, kind: 'HWPT_NESTED' },
    { type: 'ObjectRefTaken', ctx: ctx.id, id: pt.id, by: id },
    { type: 'DomainAllocated', domain, kind: 'nested', driver: 'mock', pgsizeBitmap: pd.pgsizeBitmap, apertureStart: pd.apertureStart, apertureLast: pd.apertureLast, dirtyOps: false, ctx: ctx.id, hwpt: id },
    { type: 'HwptNestedInitialized', ctx: ctx.id, id, parent: parentId, viommu, domain, ioas: parent.hwpt!.ioas, iotlb, pasidCompat: (flags & HWPT_ALLOC_PASID) !== 0 },
  ];
}

/**
 * `mock_domain_cache_invalidate_user` on a nested HWPT (called by `iommufd_hwpt_invalidate`): entries are copied
 * one by one (`iommu_copy_struct_from_user_array`); each names an IOTLB word or all of them. The first bad entry
 * stops the walk, and `entry_num` reports how many were done before it.
 */
export function nestedInvalidate(c: Call, a: Arg, o: KObject, out: (n: number) => Record<string, bigint>): Step {
  const fn = 'selftest.c mock_domain_cache_invalidate_user';
  if (u32(a, 'data_type') !== HWPT_INVALIDATE_DATA_SELFTEST) return fail('EINVAL', `${fn}: data_type is not IOMMU_HWPT_INVALIDATE_DATA_SELFTEST`, [], respond(a, out(0)));
  const num = u32(a, 'entry_num'), len = u32(a, 'entry_len');
  const events: DomainEvent[] = [];
  const iotlb = o.nested!.iotlb.slice();
  const done = (i: number, errno: 'EINVAL' | 'EOPNOTSUPP' | 'EFAULT', why: string): Step => fail(errno, `${fn}: entry ${i}: ${why}`, events, respond(a, out(i)));
  for (let i = 0; i < num; i++) {
    const d = userData(a, 'data_uptr', len, INVALIDATE_SELFTEST_SIZE, INVALIDATE_SELFTEST_SIZE, 'iommu_copy_struct_from_user_array', i * len);
    if ('unmodelled' in d) return unmodelled(d.unmodelled);
    if ('errno' in d) return done(i, d.errno as 'EINVAL' | 'EFAULT', d.why);
    const flags = d.u32(0, 'flags'), id = d.u32(4, 'iotlb_id');
    if ((flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0) return done(i, 'EOPNOTSUPP', `flags 0x${flags.toString(16)} beyond IOMMU_TEST_INVALIDATE_FLAG_ALL`);
    if (id > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) return done(i, 'EINVAL', `iotlb_id ${id} > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX`);
    for (let j = 0; j < iotlb.length; j++) {
      if (((flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0 || j === id) && iotlb[j] !== 0) {
        iotlb[j] = 0;
        events.push({ type: 'NestedIotlbSet', ctx: c.ctx.id, id: o.id, index: j, value: 0 });
      }
    }
  }
  return succeed(`${fn}: ${num} entr${num === 1 ? 'y' : 'ies'} invalidated in HWPT ${o.id}`, respond(a, out(num)), events);
}

/** `struct iommu_viommu_invalidate_selftest` {flags, vdev_id, cache_id}; the mock device's cache words. */
const VIOMMU_INVALIDATE_SELFTEST_SIZE = 12, MOCK_DEV_CACHE_ID_MAX = 3;

/**
 * `mock_viommu_cache_invalidate` (called by `iommufd_hwpt_invalidate` for a vIOMMU): an empty array of the right type
 * is a type probe; otherwise the whole array is copied first (`iommu_copy_struct_from_full_user_array`: type, then
 * each entry zero-extended or with a zero tail, else E2BIG), then each entry names a vDEVICE of this vIOMMU by its
 * virtual ID and one or all of its device's cache words. The first bad entry stops the walk; `entry_num` reports how
 * many were done before it.
 */
export function viommuInvalidate(c: Call, a: Arg, o: KObject, out: (n: number) => Record<string, bigint>): Step {
  const fn = 'selftest.c mock_viommu_cache_invalidate';
  const num = u32(a, 'entry_num'), len = u32(a, 'entry_len');
  const typed = u32(a, 'data_type') === HWPT_INVALIDATE_DATA_SELFTEST;
  if (num === 0 && typed) return succeed(`${fn}: an empty array of IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST (a type probe)`, respond(a, out(0)));
  const copy = 'iommu.h iommu_copy_struct_from_full_user_array';
  if (!typed) return fail('EINVAL', `${copy}: data_type is not IOMMU_VIOMMU_INVALIDATE_DATA_SELFTEST`, [], respond(a, out(0)));
  if (len > VIOMMU_INVALIDATE_SELFTEST_SIZE && (len - VIOMMU_INVALIDATE_SELFTEST_SIZE) % 4 !== 0) return unmodelled(`${len}-byte vIOMMU invalidation entries (a tail that is not whole u32s)`);
  const entries: { flags: number; vdev: number; cache: number }[] = [];
  for (let i = 0; i < num; i++) {
    const d = userData(a, 'data_uptr', len, 0, len, `${copy}: copy_struct_from_user`, i * len);
    if ('unmodelled' in d) return unmodelled(d.unmodelled);
    if ('errno' in d) return fail(d.errno, `entry ${i}: ${d.why}`, [], respond(a, out(0)));
    for (let off = VIOMMU_INVALIDATE_SELFTEST_SIZE; off < len; off += 4)
      if (d.u32(off, `tail${off}`) !== 0) return fail('E2BIG', `${copy}: entry ${i} has non-zero bytes past the kernel's 12-byte struct`, [], respond(a, out(0)));
    entries.push({ flags: d.u32(0, 'flags'), vdev: d.u32(4, 'vdev_id'), cache: d.u32(8, 'cache_id') });
  }
  const events: DomainEvent[] = [];
  const caches = new Map<number, number[]>();
  const done = (i: number, errno: 'EINVAL' | 'EOPNOTSUPP', why: string): Step => fail(errno, `${fn}: entry ${i}: ${why}`, events, respond(a, out(i)));
  for (const [i, e] of entries.entries()) {
    if ((e.flags & ~IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0) return done(i, 'EOPNOTSUPP', `flags 0x${e.flags.toString(16)} beyond IOMMU_TEST_INVALIDATE_FLAG_ALL`);
    if (e.cache > MOCK_DEV_CACHE_ID_MAX) return done(i, 'EINVAL', `cache_id ${e.cache} > MOCK_DEV_CACHE_ID_MAX`);
    // iommufd_viommu_find_dev: the vDEVICE of this vIOMMU with that virtual ID (viommu->vdevs is indexed by it).
    const vdev = [...c.ctx.objects.values()].find((x) => x.life === 1 && x.vdev?.viommu === o.id && x.vdev.virtId === BigInt(e.vdev));
    if (vdev === undefined) return done(i, 'EINVAL', `no vDEVICE with virt_id ${e.vdev} on vIOMMU ${o.id}`);
    const idev = vdev.vdev!.idev;
    const cache = caches.get(idev) ?? c.ctx.objects.get(idev)!.idev!.cache.slice();
    caches.set(idev, cache);
    for (let j = 0; j < cache.length; j++) {
      if (((e.flags & IOMMU_TEST_INVALIDATE_FLAG_ALL) !== 0 || j === e.cache) && cache[j] !== 0) {
        cache[j] = 0;
        events.push({ type: 'DeviceCacheSet', ctx: c.ctx.id, idev, index: j, value: 0 });
      }
    }
  }
  return succeed(`${fn}: ${num} entr${num === 1 ? 'y' : 'ies'} invalidated through vIOMMU ${o.id}`, respond(a, out(num)), events);
}

/** `iommufd_test_md_check_iotlb`: one IOTLB word of a mock nested HWPT. */
export function md_check_iotlb(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_md_check_iotlb';
  const id = u32(a, 'id');
  const o = getObject(c.ctx, id, 'HWPT_NESTED');
  if (o === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, id, 'HWPT_NESTED')}`);
  const m = member(a, 'check_iotlb');
  const which = m ? u32(m, 'id') : 0, want = m ? u32(m, 'iotlb') : 0;
  if (which > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX) return fail('EINVAL', `${fn}: iotlb id ${which} > MOCK_NESTED_DOMAIN_IOTLB_ID_MAX`);
  const have = o.nested!.iotlb[which]!;
  if (have !== want) return fail('EINVAL', `${fn}: iotlb[${which}] is 0x${have.toString(16)}, not 0x${want.toString(16)}`);
  return succeed(`${fn}: iotlb[${which}] of HWPT ${id} is 0x${want.toString(16)}`);
}
