/**
 * The selftest mock driver's ioctl (drivers/iommu/iommufd/selftest.c `iommufd_test`), present only when the
 * trace header says the kernel has CONFIG_IOMMUFD_TEST. Implemented here: IOMMU_TEST_OP_MD_CHECK_REFS, which the
 * selftest's teardown runs to prove no page of its buffer stays pinned. The other ops arrive with the objects they
 * test (mock domains, accesses, dirty tracking, vIOMMU).
 */
import { ENUMS } from '../events/flags.js';
import { U64_MAX } from '../events/values.js';
import { fail, member, respond, succeed, u32, u64, unmodelled, type Arg, type Call, type Handler, type Step } from './ioctl.js';
import { isFullyMapped } from '../hw/mm.js';
import { pinRefs } from '../hw/pages.js';
import { frameAt } from '../hw/mm.js';
import type { DomainEvent } from '../events/domain.js';
import { iovaToPhys, minPageSize } from '../hw/domain.js';
import { isFailure } from '../hw/iopt_ops.js';
import { cloneState, evolve, type IommufdCtx, type KObject, type State } from '../projections/state.js';
import { test_dirty } from './dirty.js';
import { md_check_iotlb } from './hwpt_nested.js';
import { trigger_iopf } from './fault.js';
import { dmabuf_get, dmabuf_revoke } from './selftest_dmabuf.js';
import { trigger_vevent } from './veventq.js';
import { pasid_attach, pasid_check_hwpt, pasid_detach, pasid_replace } from './selftest_pasid.js';
import { access_pages, access_replace_ioas, access_rw, create_access, destroy_access_pages } from './selftest_access.js';
import { attachPt, detachEvents, IOMMU_NO_PASID, replacePt, unbindEvents } from './device.js';
import { iopt_reserve_iova } from '../hw/iopt_ops.js';
import { getObject, lookupWhy } from './objects.js';

const OP_NAME = new Map<number, string>(Object.entries(ENUMS.test_op).map(([k, v]) => [v, k]));

/**
 * `iommufd_test_md_check_refs`: every page of [uptr, uptr+length) must have `refs` FOLL_PIN references
 * (page_ref_count / GUP_PIN_COUNTING_BIAS). get_user_pages_fast of an unmapped address is EFAULT.
 */
function md_check_refs(c: Call, a: Arg): Step {
  const m = member(a, 'check_refs');
  const length = m ? u64(m, 'length') : 0n, uptr = m ? u64(m, 'uptr') : 0n, refs = m ? u32(m, 'refs') : 0;
  const fn = 'selftest.c iommufd_test_md_check_refs';
  const page = BigInt(c.k.st.pageSize);
  if (length % page !== 0n || uptr % page !== 0n || uptr + length > U64_MAX + 1n)
    return fail('EINVAL', `${fn}: uptr 0x${uptr.toString(16)} or length 0x${length.toString(16)} is not PAGE_SIZE aligned, or their sum overflows`);
  for (let va = uptr; va < uptr + length; va += page) {
    if (c.k.st.memory === 'explicit' && !isFullyMapped(c.k.st.mm, va, va + page - 1n))
      return fail('EFAULT', `${fn}: get_user_pages_fast(0x${va.toString(16)}): no VMA maps it`);
    const have = pinRefs(c.k.st, va);
    if (have !== refs)
      return fail('EIO', `${fn}: page at 0x${va.toString(16)} has ${have} pin reference(s), expected ${refs}`);
  }
  return succeed(`${fn}: all ${length / page} page(s) have ${refs} pin reference(s)`);
}

/** `iommufd_test_add_reserved`: a reserved range with no owner, kept until the IOAS is destroyed. */
function add_reserved(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_add_reserved';
  const m = member(a, 'add_reserved');
  const start = m ? u64(m, 'start') : 0n, length = m ? u64(m, 'length') : 0n;
  if (length === 0n) return fail('EINVAL', `${fn}: length 0`);
  const last = start + length - 1n;
  if (last > U64_MAX) return fail('EOVERFLOW', `${fn}: start + length - 1 overflows`);
  const id = u32(a, 'id');
  const o = getObject(c.ctx, id, 'IOAS');
  if (o === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, id, 'IOAS')}`);
  const clash = iopt_reserve_iova(o.ioas!.iopt, start, last);
  if (clash) return fail(clash.errno, clash.why);
  return succeed(`${fn}: [0x${start.toString(16)}, 0x${last.toString(16)}] reserved in IOAS ${id}`, undefined,
    [{ type: 'ReservedAdded', ctx: c.ctx.id, ioas: id, start, last, owner: '' }]);
}

/** `iommufd_test` SET_TEMP_MEMORY_LIMIT: the pinning batch size, a module global (restored by the selftests). */
function set_temp_memory_limit(_c: Call, a: Arg): Step {
  const m = member(a, 'memory_limit');
  const limit = m ? u32(m, 'limit') : 0;
  if (limit < 12) return fail('EINVAL', `selftest.c iommufd_test: memory limit ${limit} is below 12`);
  return succeed(`selftest.c: iommufd_test_memory_limit = ${limit}`, undefined, [{ type: 'TestMemoryLimitSet', limit }]);
}

const MOCK_FLAGS_DEVICE_NO_DIRTY = 1, MOCK_FLAGS_DEVICE_PASID = 4;

/**
 * `iommufd_test_mock_domain`: a selftest object (ID N), a mock device bound to this context (its idev is N+1), and
 * its attachment to `id` (an IOAS gets an auto domain, N+2, unless an existing auto domain takes the device).
 */
function mock_domain(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_mock_domain';
  const withFlags = u32(a, 'op') === T.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS;
  const m = member(a, withFlags ? 'mock_domain_flags' : 'mock_domain');
  const devFlags = withFlags && m ? u32(m, 'dev_flags') : 0;
  const ids = c.ctx.ids.clone();
  const stdev = ids.lowestFree();
  if (stdev === undefined) return fail('EBUSY', 'main.c _iommufd_object_alloc: no free id');
  ids.take(stdev);
  if ((devFlags & ~(MOCK_FLAGS_DEVICE_NO_DIRTY | MOCK_FLAGS_DEVICE_PASID)) !== 0)
    return fail('EINVAL', `${fn}: dev_flags 0x${devFlags.toString(16)} outside NO_DIRTY|PASID`);
  const mockDev = c.k.st.nextMockDev;
  const idevId = ids.lowestFree();
  if (idevId === undefined) return fail('EBUSY', 'main.c _iommufd_object_alloc: no free id');
  ids.take(idevId);
  const ctx = c.ctx.id;
  const bound: DomainEvent[] = [
    { type: 'ObjectAllocated', ctx, id: stdev, kind: 'SELFTEST' },
    { type: 'ObjectAllocated', ctx, id: idevId, kind: 'DEVICE' },
    { type: 'DeviceBound', ctx, id: idevId, dev: `mock:${mockDev}`, group: `mock:${mockDev}`, mock: true,
      dirtyCapable: (devFlags & MOCK_FLAGS_DEVICE_NO_DIRTY) === 0, pasidBits: (devFlags & MOCK_FLAGS_DEVICE_PASID) ? 20 : 0,
      pgsizeBitmap: 0n, apertureStart: 0n, apertureLast: 0n, resv: [] },
    { type: 'ObjectRefTaken', ctx, id: idevId, by: 0 },
    { type: 'ObjectFinalized', ctx, id: idevId },
  ];
  // The attach reads the device as bound: decide it against a state that already has the events above.
  const scratch = cloneState(c.k.st);
  for (const e of bound) evolve(scratch, e);
  const sctx = scratch.ctxs.get(ctx)!;
  const r = attachPt(scratch, c.k.header, sctx, sctx.objects.get(idevId)!, IOMMU_NO_PASID, u32(a, 'id'), ids);
  if ('unmodelled' in r) return unmodelled(r.unmodelled);
  if (isFailure(r)) return fail(r.errno, r.why);
  const out = { [withFlags ? 'mock_domain_flags' : 'mock_domain']: { out_stdev_id: BigInt(stdev), out_hwpt_id: BigInt(r.hwpt), out_idev_id: BigInt(idevId), ...(withFlags ? { dev_flags: BigInt(devFlags) } : {}) } };
  return succeed(`${fn}: mock device ${mockDev} as selftest ${stdev}, device ${idevId}, attached to HWPT ${r.hwpt}`, respond(a, out), [
    ...bound, ...r.events,
    { type: 'SelftestInitialized', ctx, id: stdev, idev: idevId, mockDev },
    { type: 'ObjectFinalized', ctx, id: stdev },
  ]);
}

/** `iommufd_test_mock_domain_replace`: move the mock device to another HWPT or IOAS. */
function mock_domain_replace(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_mock_domain_replace';
  const id = u32(a, 'id');
  const o = getObject(c.ctx, id, 'ANY');
  if (o === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, id, 'SELFTEST')}`);
  // iommufd_test_get_selftest_obj looks up IOMMUFD_OBJ_SELFTEST: another kind is ENOENT, as iommufd_get_object says.
  if (o.kind !== 'SELFTEST') return fail('ENOENT', `${fn}: object ${id} is a ${o.kind}, not a selftest object`);
  const m = member(a, 'mock_domain_replace');
  const ptId = m ? u32(m, 'pt_id') : 0;
  const idev = c.ctx.objects.get(o.stdev!.idev)!;
  const r = replacePt(c.k.st, c.k.header, c.ctx, idev, IOMMU_NO_PASID, ptId, c.ctx.ids.clone());
  if ('unmodelled' in r) return unmodelled(r.unmodelled);
  if (isFailure(r)) return fail(r.errno, r.why);
  return succeed(`${fn}: device ${idev.id} now uses HWPT ${r.hwpt}`, respond(a, { mock_domain_replace: { pt_id: BigInt(r.hwpt) } }), r.events);
}

/** `iommufd_test_md_check_pa`: every mock page of the IOVA range translates to the user buffer's page. */
function md_check_map(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_md_check_pa';
  const id = u32(a, 'id');
  const o = getObject(c.ctx, id, 'HWPT_PAGING');
  if (o === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, id, 'HWPT_PAGING')}`);
  const d = c.k.st.domains.get(o.hwpt!.domain)!;
  if (d.driver !== 'mock') return fail('EINVAL', `${fn}: HWPT ${id} is not a mock domain`);
  const m = member(a, 'check_map');
  const iova = m ? u64(m, 'iova') : 0n, length = m ? u64(m, 'length') : 0n, uptr = m ? u64(m, 'uptr') : 0n;
  const ps = minPageSize(d);
  if (iova % ps !== 0n || length % ps !== 0n || uptr % ps !== 0n || uptr + length > U64_MAX)
    return fail('EINVAL', `${fn}: iova, length or uptr is not a multiple of the mock page size ${ps}, or uptr + length overflows`);
  const page = BigInt(c.k.st.pageSize);
  for (let off = 0n; off < length; off += ps) {
    const va = uptr + off;
    if (c.k.st.memory === 'explicit' && !isFullyMapped(c.k.st.mm, va, va)) return fail('EFAULT', `${fn}: get_user_pages_fast(0x${va.toString(16)}): no VMA maps it`);
    const frame = frameAt(c.k.st.mm, va);
    // An untouched page would be faulted in fresh by GUP: no domain can map a page that did not exist yet.
    if (frame === undefined) return fail('EINVAL', `${fn}: the user page at 0x${va.toString(16)} was never touched, so IOVA 0x${(iova + off).toString(16)} cannot translate to it`);
    const want = BigInt(frame) * page + (va % page);
    const got = iovaToPhys(d, iova + off);
    if (got !== want)
      return fail('EINVAL', `${fn}: IOVA 0x${(iova + off).toString(16)} translates to ${got === undefined ? 'nothing' : `phys 0x${got.toString(16)}`}, the user page at 0x${va.toString(16)} is phys 0x${want.toString(16)}`);
  }
  return succeed(`${fn}: [0x${iova.toString(16)}, +0x${length.toString(16)}) maps the user buffer`);
}

/** `iommufd_test_dev_check_cache`: a mock device's cache word. */
function dev_check_cache(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_dev_check_cache';
  const id = u32(a, 'id');
  const o = getObject(c.ctx, id, 'DEVICE');
  if (o === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, id, 'DEVICE')}`);
  const m = member(a, 'check_dev_cache');
  const cid = m ? u32(m, 'id') : 0, want = m ? u32(m, 'cache') : 0;
  if (cid > 3) return fail('EINVAL', `${fn}: cache id ${cid} > 3`);
  const have = o.idev!.cache[cid];
  if (have !== want) return fail('EINVAL', `${fn}: cache[${cid}] is 0x${(have ?? 0).toString(16)}, not 0x${want.toString(16)}`);
  return succeed(`${fn}: cache[${cid}] is 0x${want.toString(16)}`);
}

/** `iommufd_selftest_destroy`: detach the mock device (NO_PASID), unbind it, destroy the mock device. */
export function selftestDestroyEvents(st: State, ctx: IommufdCtx, o: KObject): DomainEvent[] {
  const idev = ctx.objects.get(o.stdev!.idev);
  if (idev === undefined) return [];
  return [...detachEvents(st, ctx, idev, IOMMU_NO_PASID), ...unbindEvents(ctx, idev)];
}

const T = ENUMS.test_op;
const OPS: ReadonlyMap<number, Handler> = new Map([
  [T.IOMMU_TEST_OP_MD_CHECK_REFS, md_check_refs],
  [T.IOMMU_TEST_OP_ADD_RESERVED, add_reserved],
  [T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, set_temp_memory_limit],
  [T.IOMMU_TEST_OP_MOCK_DOMAIN, mock_domain],
  [T.IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, mock_domain],
  [T.IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, mock_domain_replace],
  [T.IOMMU_TEST_OP_MD_CHECK_MAP, md_check_map],
  [T.IOMMU_TEST_OP_DEV_CHECK_CACHE, dev_check_cache],
  [T.IOMMU_TEST_OP_CREATE_ACCESS, create_access],
  [T.IOMMU_TEST_OP_ACCESS_PAGES, access_pages],
  [T.IOMMU_TEST_OP_DESTROY_ACCESS_PAGES, destroy_access_pages],
  [T.IOMMU_TEST_OP_ACCESS_REPLACE_IOAS, access_replace_ioas],
  [T.IOMMU_TEST_OP_ACCESS_RW, access_rw],
  [T.IOMMU_TEST_OP_DIRTY, test_dirty],
  [T.IOMMU_TEST_OP_MD_CHECK_IOTLB, md_check_iotlb],
  [T.IOMMU_TEST_OP_TRIGGER_IOPF, trigger_iopf],
  [T.IOMMU_TEST_OP_PASID_ATTACH, pasid_attach],
  [T.IOMMU_TEST_OP_PASID_REPLACE, pasid_replace],
  [T.IOMMU_TEST_OP_PASID_DETACH, pasid_detach],
  [T.IOMMU_TEST_OP_PASID_CHECK_HWPT, pasid_check_hwpt],
  [T.IOMMU_TEST_OP_DMABUF_GET, dmabuf_get],
  [T.IOMMU_TEST_OP_DMABUF_REVOKE, dmabuf_revoke],
  [T.IOMMU_TEST_OP_TRIGGER_VEVENT, trigger_vevent],
]);

/** `iommufd_test`: dispatch on `op`; an op the driver does not know is EOPNOTSUPP. */
export function iommufd_test(c: Call, a: Arg): Step {
  const op = u32(a, 'op');
  const h = OPS.get(op);
  if (h !== undefined) return h(c, a);
  const name = OP_NAME.get(op);
  if (name === undefined) return fail('EOPNOTSUPP', `selftest.c iommufd_test: unknown op ${op}`);
  return unmodelled(`IOMMU_TEST_CMD ${name}`);
}
