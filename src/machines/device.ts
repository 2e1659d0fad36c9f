/**
 * Devices (drivers/iommu/iommufd/device.c): IOMMU_GET_HW_INFO. Binding, attach, auto domains and reserved
 * regions come with the devices model; until then the call is answered as far as its leading checks reach.
 */
import { fail, u32, unmodelled, type Arg, type Call, type Handler, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';

/** `iommufd_get_hw_info`: flags, the three reserved bytes, then the device lookup. */
function iommufd_get_hw_info(c: Call, a: Arg): Step {
  const flags = u32(a, 'flags');
  if ((flags & ~1) !== 0) return fail('EOPNOTSUPP', `device.c iommufd_get_hw_info: flags 0x${flags.toString(16)} outside IOMMU_HW_INFO_FLAG_INPUT_TYPE`);
  const r = a.v.__reserved;
  if (r instanceof Uint8Array && r.some((b) => b !== 0)) return fail('EOPNOTSUPP', 'device.c iommufd_get_hw_info: __reserved[] != 0');
  const id = u32(a, 'dev_id');
  if (getObject(c.ctx, id, 'DEVICE') === undefined)
    return fail('ENOENT', `device.c iommufd_get_hw_info: iommufd_get_device(${id}): ${lookupWhy(c.ctx, id, 'DEVICE')}`);
  return unmodelled('IOMMU_GET_HW_INFO on a device (driver hw_info)');
}

export const DEVICE_HANDLERS: Readonly<Record<string, Handler>> = {
  IOMMU_GET_HW_INFO: iommufd_get_hw_info,
};
