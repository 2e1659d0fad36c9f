/**
 * The selftest mock driver's ioctl (drivers/iommu/iommufd/selftest.c `iommufd_test`), present only when the
 * trace header says the kernel has CONFIG_IOMMUFD_TEST. Implemented here: IOMMU_TEST_OP_MD_CHECK_REFS, which the
 * selftest's teardown runs to prove no page of its buffer stays pinned. The other ops arrive with the objects they
 * test (mock domains, accesses, dirty tracking, vIOMMU).
 */
import { ENUMS } from '../events/flags.js';
import { U64_MAX } from '../events/values.js';
import { fail, member, succeed, u32, u64, unmodelled, type Arg, type Call, type Handler, type Step } from './ioctl.js';
import { isFullyMapped } from '../hw/mm.js';
import { pinRefs } from '../hw/pages.js';
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

const T = ENUMS.test_op;
const OPS: ReadonlyMap<number, Handler> = new Map([
  [T.IOMMU_TEST_OP_MD_CHECK_REFS, md_check_refs],
  [T.IOMMU_TEST_OP_ADD_RESERVED, add_reserved],
  [T.IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT, set_temp_memory_limit],
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
