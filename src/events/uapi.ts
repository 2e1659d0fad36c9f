/**
 * The ioctl command table: every command the trace format can name, its number, which kind of file serves it,
 * and what its argument is. iommufd commands are `_IO(';', nr)` = 0x3B00 | nr (main.c `IOCTL_OP`); VFIO ones
 * are `_IO(';', 100 + n)` (vfio.h). The same number means different commands on a VFIO container and a VFIO
 * device (0x3B70 is VFIO_IOMMU_GET_INFO and VFIO_DEVICE_GET_PCI_HOT_RESET_INFO): the fd decides, so a numeric
 * `cmd` is resolved against the fd at dispatch, not here.
 */
import { iommu_test_cmd, S, type StructDef } from './structs.js';

export const IOMMUFD_TYPE = 0x3b;
export const IOMMUFD_CMD_BASE = 0x80;
export const VFIO_BASE = 100;

export type Family = 'iommufd' | 'vfio_container' | 'vfio_group' | 'vfio_device';
export type ArgKind =
  | { readonly k: 'struct'; readonly def: StructDef }
  /** The argument is an integer, not a pointer (VFIO_SET_IOMMU, VFIO_CHECK_EXTENSION). */
  | { readonly k: 'int' }
  /** The argument points at one integer (VFIO_GROUP_SET_CONTAINER reads a container fd). */
  | { readonly k: 'intptr' }
  /** The argument points at a NUL-terminated string (VFIO_GROUP_GET_DEVICE_FD). */
  | { readonly k: 'string' }
  | { readonly k: 'none' }
  /** A struct this model does not decode yet: accepted as given and answered "not modelled". */
  | { readonly k: 'opaque' };

export interface CommandDef {
  readonly name: string;
  readonly value: number;
  readonly families: readonly Family[];
  readonly arg: ArgKind;
}

const io = (nr: number) => (IOMMUFD_TYPE << 8) | nr;
const cmd = (name: string, value: number, families: Family[], arg: ArgKind): CommandDef => ({ name, value, families, arg });
const st = (def: StructDef): ArgKind => ({ k: 'struct', def });
const IFD: Family[] = ['iommufd'];
/** iommufd's vfio_compat.c answers the container ioctls on /dev/iommu too (core spec §7). */
const CONT: Family[] = ['vfio_container', 'iommufd'];

export const COMMANDS: readonly CommandDef[] = [
  cmd('IOMMU_DESTROY', io(0x80), IFD, st(S.iommu_destroy)),
  cmd('IOMMU_IOAS_ALLOC', io(0x81), IFD, st(S.iommu_ioas_alloc)),
  cmd('IOMMU_IOAS_ALLOW_IOVAS', io(0x82), IFD, st(S.iommu_ioas_allow_iovas)),
  cmd('IOMMU_IOAS_COPY', io(0x83), IFD, st(S.iommu_ioas_copy)),
  cmd('IOMMU_IOAS_IOVA_RANGES', io(0x84), IFD, st(S.iommu_ioas_iova_ranges)),
  cmd('IOMMU_IOAS_MAP', io(0x85), IFD, st(S.iommu_ioas_map)),
  cmd('IOMMU_IOAS_UNMAP', io(0x86), IFD, st(S.iommu_ioas_unmap)),
  cmd('IOMMU_OPTION', io(0x87), IFD, st(S.iommu_option)),
  cmd('IOMMU_VFIO_IOAS', io(0x88), IFD, st(S.iommu_vfio_ioas)),
  cmd('IOMMU_HWPT_ALLOC', io(0x89), IFD, st(S.iommu_hwpt_alloc)),
  cmd('IOMMU_GET_HW_INFO', io(0x8a), IFD, st(S.iommu_hw_info)),
  cmd('IOMMU_HWPT_SET_DIRTY_TRACKING', io(0x8b), IFD, st(S.iommu_hwpt_set_dirty_tracking)),
  cmd('IOMMU_HWPT_GET_DIRTY_BITMAP', io(0x8c), IFD, st(S.iommu_hwpt_get_dirty_bitmap)),
  cmd('IOMMU_HWPT_INVALIDATE', io(0x8d), IFD, st(S.iommu_hwpt_invalidate)),
  cmd('IOMMU_FAULT_QUEUE_ALLOC', io(0x8e), IFD, st(S.iommu_fault_alloc)),
  cmd('IOMMU_IOAS_MAP_FILE', io(0x8f), IFD, st(S.iommu_ioas_map_file)),
  cmd('IOMMU_VIOMMU_ALLOC', io(0x90), IFD, st(S.iommu_viommu_alloc)),
  cmd('IOMMU_VDEVICE_ALLOC', io(0x91), IFD, st(S.iommu_vdevice_alloc)),
  cmd('IOMMU_IOAS_CHANGE_PROCESS', io(0x92), IFD, st(S.iommu_ioas_change_process)),
  cmd('IOMMU_VEVENTQ_ALLOC', io(0x93), IFD, st(S.iommu_veventq_alloc)),
  cmd('IOMMU_HW_QUEUE_ALLOC', io(0x94), IFD, st(S.iommu_hw_queue_alloc)),
  cmd('IOMMU_TEST_CMD', io(0xa0), IFD, st(iommu_test_cmd)),
  // VFIO container (and iommufd's compat personality), group and device.
  cmd('VFIO_GET_API_VERSION', io(VFIO_BASE + 0), CONT, { k: 'none' }),
  cmd('VFIO_CHECK_EXTENSION', io(VFIO_BASE + 1), CONT, { k: 'int' }),
  cmd('VFIO_SET_IOMMU', io(VFIO_BASE + 2), CONT, { k: 'int' }),
  cmd('VFIO_GROUP_GET_STATUS', io(VFIO_BASE + 3), ['vfio_group'], st(S.vfio_group_status)),
  cmd('VFIO_GROUP_SET_CONTAINER', io(VFIO_BASE + 4), ['vfio_group'], { k: 'intptr' }),
  cmd('VFIO_GROUP_UNSET_CONTAINER', io(VFIO_BASE + 5), ['vfio_group'], { k: 'none' }),
  cmd('VFIO_GROUP_GET_DEVICE_FD', io(VFIO_BASE + 6), ['vfio_group'], { k: 'string' }),
  cmd('VFIO_DEVICE_GET_INFO', io(VFIO_BASE + 7), ['vfio_device'], { k: 'opaque' }),
  cmd('VFIO_DEVICE_GET_REGION_INFO', io(VFIO_BASE + 8), ['vfio_device'], { k: 'opaque' }),
  cmd('VFIO_DEVICE_GET_IRQ_INFO', io(VFIO_BASE + 9), ['vfio_device'], { k: 'opaque' }),
  cmd('VFIO_DEVICE_SET_IRQS', io(VFIO_BASE + 10), ['vfio_device'], { k: 'opaque' }),
  cmd('VFIO_DEVICE_RESET', io(VFIO_BASE + 11), ['vfio_device'], { k: 'none' }),
  cmd('VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', io(VFIO_BASE + 12), ['vfio_device'], { k: 'opaque' }),
  cmd('VFIO_IOMMU_GET_INFO', io(VFIO_BASE + 12), CONT, st(S.vfio_iommu_type1_info)),
  cmd('VFIO_DEVICE_PCI_HOT_RESET', io(VFIO_BASE + 13), ['vfio_device'], { k: 'opaque' }),
  cmd('VFIO_IOMMU_MAP_DMA', io(VFIO_BASE + 13), CONT, st(S.vfio_iommu_type1_dma_map)),
  cmd('VFIO_DEVICE_QUERY_GFX_PLANE', io(VFIO_BASE + 14), ['vfio_device'], { k: 'opaque' }),
  cmd('VFIO_IOMMU_UNMAP_DMA', io(VFIO_BASE + 14), CONT, st(S.vfio_iommu_type1_dma_unmap)),
  cmd('VFIO_IOMMU_ENABLE', io(VFIO_BASE + 15), ['vfio_container'], { k: 'none' }),
  cmd('VFIO_IOMMU_DISABLE', io(VFIO_BASE + 16), ['vfio_container'], { k: 'none' }),
  cmd('VFIO_DEVICE_FEATURE', io(VFIO_BASE + 17), ['vfio_device'], st(S.vfio_device_feature)),
  cmd('VFIO_IOMMU_DIRTY_PAGES', io(VFIO_BASE + 17), CONT, st(S.vfio_iommu_type1_dirty_bitmap)),
  cmd('VFIO_DEVICE_BIND_IOMMUFD', io(VFIO_BASE + 18), ['vfio_device'], st(S.vfio_device_bind_iommufd)),
  cmd('VFIO_DEVICE_ATTACH_IOMMUFD_PT', io(VFIO_BASE + 19), ['vfio_device'], st(S.vfio_device_attach_iommufd_pt)),
  cmd('VFIO_DEVICE_DETACH_IOMMUFD_PT', io(VFIO_BASE + 20), ['vfio_device'], st(S.vfio_device_detach_iommufd_pt)),
];

export const COMMAND_BY_NAME: ReadonlyMap<string, CommandDef> = new Map(COMMANDS.map((c) => [c.name, c]));
const BY_VALUE = new Map<number, CommandDef[]>();
for (const c of COMMANDS) BY_VALUE.set(c.value, [...(BY_VALUE.get(c.value) ?? []), c]);

/** The commands a number can mean; more than one only for the VFIO numbers that containers and devices share. */
export const commandsByValue = (value: number): readonly CommandDef[] => BY_VALUE.get(value) ?? [];

/** The command a number means on a file of `family`, if any. */
export function commandFor(value: number, family: Family): CommandDef | undefined {
  return BY_VALUE.get(value)?.find((c) => c.families.includes(family));
}
