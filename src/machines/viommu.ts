/**
 * vIOMMU family (drivers/iommu/iommufd/viommu.c, eventq.c): IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC,
 * IOMMU_HW_QUEUE_ALLOC, IOMMU_VEVENTQ_ALLOC, IOMMU_FAULT_QUEUE_ALLOC. Not modelled yet beyond the leading checks,
 * which follow the kernel's order so that early errors are already exact.
 */
import { U64_MAX } from '../events/values.js';
import { fail, u32, u64, unmodelled, type Arg, type Call, type Handler, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';

function iommufd_viommu_alloc_ioctl(c: Call, a: Arg): Step {
  const fn = 'viommu.c iommufd_viommu_alloc_ioctl';
  if (u32(a, 'flags') !== 0 || u32(a, 'type') === 0) return fail('EOPNOTSUPP', `${fn}: flags != 0 or type DEFAULT`);
  const dev = u32(a, 'dev_id');
  if (getObject(c.ctx, dev, 'DEVICE') === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, dev, 'DEVICE')}`);
  return unmodelled('IOMMU_VIOMMU_ALLOC');
}

function iommufd_vdevice_alloc_ioctl(c: Call, a: Arg): Step {
  const fn = 'viommu.c iommufd_vdevice_alloc_ioctl';
  const v = u32(a, 'viommu_id');
  if (getObject(c.ctx, v, 'VIOMMU') === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, v, 'VIOMMU')}`);
  const dev = u32(a, 'dev_id');
  if (getObject(c.ctx, dev, 'DEVICE') === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, dev, 'DEVICE')}`);
  return unmodelled('IOMMU_VDEVICE_ALLOC');
}

function iommufd_hw_queue_alloc_ioctl(c: Call, a: Arg): Step {
  const fn = 'viommu.c iommufd_hw_queue_alloc_ioctl';
  if (u32(a, 'flags') !== 0 || u32(a, 'type') === 0) return fail('EOPNOTSUPP', `${fn}: flags != 0 or type DEFAULT`);
  const len = u64(a, 'length');
  if (len === 0n) return fail('EINVAL', `${fn}: length 0`);
  if (u64(a, 'nesting_parent_iova') + len - 1n > U64_MAX) return fail('EOVERFLOW', `${fn}: nesting_parent_iova + length - 1 overflows`);
  const v = u32(a, 'viommu_id');
  if (getObject(c.ctx, v, 'VIOMMU') === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, v, 'VIOMMU')}`);
  return unmodelled('IOMMU_HW_QUEUE_ALLOC');
}

function iommufd_veventq_alloc(c: Call, a: Arg): Step {
  const fn = 'eventq.c iommufd_veventq_alloc';
  if (u32(a, 'flags') !== 0 || u32(a, '__reserved') !== 0 || u32(a, 'type') === 0)
    return fail('EOPNOTSUPP', `${fn}: flags or __reserved != 0, or type DEFAULT`);
  if (u32(a, 'veventq_depth') === 0) return fail('EINVAL', `${fn}: veventq_depth 0`);
  const v = u32(a, 'viommu_id');
  if (getObject(c.ctx, v, 'VIOMMU') === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, v, 'VIOMMU')}`);
  return unmodelled('IOMMU_VEVENTQ_ALLOC');
}

function iommufd_fault_alloc(_c: Call, a: Arg): Step {
  if (u32(a, 'flags') !== 0) return fail('EOPNOTSUPP', 'eventq.c iommufd_fault_alloc: flags != 0');
  return unmodelled('IOMMU_FAULT_QUEUE_ALLOC (fault objects and their fd)');
}

export const VIOMMU_HANDLERS: Readonly<Record<string, Handler>> = {
  IOMMU_FAULT_QUEUE_ALLOC: iommufd_fault_alloc,
  IOMMU_VIOMMU_ALLOC: iommufd_viommu_alloc_ioctl,
  IOMMU_VDEVICE_ALLOC: iommufd_vdevice_alloc_ioctl,
  IOMMU_VEVENTQ_ALLOC: iommufd_veventq_alloc,
  IOMMU_HW_QUEUE_ALLOC: iommufd_hw_queue_alloc_ioctl,
};
