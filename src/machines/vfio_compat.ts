/**
 * The VFIO type1 container personality of an iommufd (drivers/iommu/iommufd/vfio_compat.c `iommufd_vfio_ioctl`),
 * reached for any command number outside the iommufd table. Commands it does not know are ENOIOCTLCMD, which
 * the VFS reports as ENOTTY. MAP_DMA, UNMAP_DMA, SET_IOMMU and GET_INFO need the io_pagetable and are not
 * modelled yet.
 */
import { ENUMS } from '../events/flags.js';
import { COMMAND_BY_NAME } from '../events/uapi.js';
import { fail, succeed, unmodelled, type Call, type Step } from './ioctl.js';
import { getObject } from './objects.js';
import type { IoctlInput } from './main.js';

const V = (name: string): number => COMMAND_BY_NAME.get(name)!.value;
const GET_API_VERSION = V('VFIO_GET_API_VERSION'), CHECK_EXTENSION = V('VFIO_CHECK_EXTENSION'), SET_IOMMU = V('VFIO_SET_IOMMU');
const GET_INFO = V('VFIO_IOMMU_GET_INFO'), MAP_DMA = V('VFIO_IOMMU_MAP_DMA'), UNMAP_DMA = V('VFIO_IOMMU_UNMAP_DMA');
const T = ENUMS.vfio_iommu_type;

/** `iommufd_vfio_check_extension`. */
function checkExtension(c: Call, ext: bigint): Step {
  {
    const fn = 'vfio_compat.c iommufd_vfio_check_extension';
    switch (Number(ext)) {
      case T.VFIO_TYPE1_IOMMU: case T.VFIO_TYPE1v2_IOMMU: case T.VFIO_UNMAP_ALL:
        return succeed(`${fn}: extension ${ext} is supported`, undefined, [], 1n);
      case T.VFIO_DMA_CC_IOMMU: {
        const id = c.ctx.vfioIoas;
        if (id === 0 || getObject(c.ctx, id, 'IOAS') === undefined) return fail('ENODEV', `${fn}: DMA_CC with no compat IOAS`);
        return succeed(`${fn}: DMA_CC: no HWPT of IOAS ${id} breaks cache coherency`, undefined, [], 1n);
      }
      default:
        return succeed(`${fn}: extension ${ext} is not supported (NOIOMMU needs CONFIG_VFIO_NOIOMMU)`, undefined, [], 0n);
    }
  }
}

export function iommufd_vfio_ioctl(c: Call, cmd: number, input: IoctlInput): Step {
  if (cmd === GET_API_VERSION) return succeed('vfio_compat.c: VFIO_API_VERSION is 0');
  if (cmd === CHECK_EXTENSION) return checkExtension(c, input.k === 'int' ? input.v : 0n);
  if (cmd === SET_IOMMU || cmd === GET_INFO || cmd === MAP_DMA || cmd === UNMAP_DMA)
    return unmodelled(`${[...COMMAND_BY_NAME.values()].find((d) => d.value === cmd && d.families.includes('iommufd'))?.name} (type1 compat on the io_pagetable)`);
  return fail('ENOTTY', `vfio_compat.c iommufd_vfio_ioctl: 0x${cmd.toString(16)} is neither an iommufd nor a VFIO compat command (ENOIOCTLCMD)`);
}
