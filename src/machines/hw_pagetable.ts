/**
 * HW page tables (drivers/iommu/iommufd/hw_pagetable.c): IOMMU_HWPT_ALLOC, IOMMU_HWPT_SET_DIRTY_TRACKING,
 * IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE. Domains are not modelled yet: each call is answered as far
 * as its leading checks (in the kernel's order) reach, and "not modelled" beyond.
 */
import { fail, isNullPtr, respond, u32, unmodelled, type Arg, type Call, type Handler, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';

/** `iommufd_hwpt_alloc`. */
function iommufd_hwpt_alloc(c: Call, a: Arg): Step {
  const fn = 'hw_pagetable.c iommufd_hwpt_alloc';
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', `${fn}: __reserved != 0`);
  const type = u32(a, 'data_type'), len = u32(a, 'data_len');
  if ((type === 0 && len !== 0) || (type !== 0 && len === 0))
    return fail('EINVAL', `${fn}: data_type ${type} with data_len ${len} (NONE needs 0, any other type needs data)`);
  const dev = u32(a, 'dev_id');
  if (getObject(c.ctx, dev, 'DEVICE') === undefined) return fail('ENOENT', `${fn}: iommufd_get_device(${dev}): ${lookupWhy(c.ctx, dev, 'DEVICE')}`);
  const pt = u32(a, 'pt_id');
  if (getObject(c.ctx, pt, 'ANY') === undefined) return fail('EINVAL', `${fn}: pt_id ${pt}: ${lookupWhy(c.ctx, pt, 'ANY')} (a failed pt lookup is EINVAL)`);
  return unmodelled('IOMMU_HWPT_ALLOC (domains)');
}

function iommufd_hwpt_set_dirty_tracking(c: Call, a: Arg): Step {
  const fn = 'hw_pagetable.c iommufd_hwpt_set_dirty_tracking';
  if ((u32(a, 'flags') & ~1) !== 0) return fail('EOPNOTSUPP', `${fn}: flags outside IOMMU_HWPT_DIRTY_TRACKING_ENABLE`);
  const id = u32(a, 'hwpt_id');
  if (getObject(c.ctx, id, 'HWPT_PAGING') === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, id, 'HWPT_PAGING')}`);
  return unmodelled('IOMMU_HWPT_SET_DIRTY_TRACKING (dirty tracking)');
}

function iommufd_hwpt_get_dirty_bitmap(c: Call, a: Arg): Step {
  const fn = 'hw_pagetable.c iommufd_hwpt_get_dirty_bitmap';
  if ((u32(a, 'flags') & ~1) !== 0 || u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', `${fn}: flags outside NO_CLEAR, or __reserved != 0`);
  const id = u32(a, 'hwpt_id');
  if (getObject(c.ctx, id, 'HWPT_PAGING') === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, id, 'HWPT_PAGING')}`);
  return unmodelled('IOMMU_HWPT_GET_DIRTY_BITMAP (dirty tracking)');
}

/** `iommufd_hwpt_invalidate`: `entry_num` is written back on every path, 0 when nothing was processed. */
function iommufd_hwpt_invalidate(c: Call, a: Arg): Step {
  const fn = 'hw_pagetable.c iommufd_hwpt_invalidate';
  const out = respond(a, { entry_num: 0n });
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', `${fn}: __reserved != 0`, [], out);
  if (u32(a, 'entry_num') !== 0 && (isNullPtr(a, 'data_uptr') || u32(a, 'entry_len') === 0))
    return fail('EINVAL', `${fn}: entry_num != 0 with a NULL data_uptr or entry_len 0`, [], out);
  const id = u32(a, 'hwpt_id');
  if (getObject(c.ctx, id, 'ANY') === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, id, 'ANY')}`, [], out);
  return unmodelled('IOMMU_HWPT_INVALIDATE (nested domains and vIOMMUs)');
}

export const HWPT_HANDLERS: Readonly<Record<string, Handler>> = {
  IOMMU_HWPT_ALLOC: iommufd_hwpt_alloc,
  IOMMU_HWPT_SET_DIRTY_TRACKING: iommufd_hwpt_set_dirty_tracking,
  IOMMU_HWPT_GET_DIRTY_BITMAP: iommufd_hwpt_get_dirty_bitmap,
  IOMMU_HWPT_INVALIDATE: iommufd_hwpt_invalidate,
};
