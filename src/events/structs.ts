/**
 * uapi struct layouts: include/uapi/linux/iommufd.h, include/uapi/linux/vfio.h and
 * drivers/iommu/iommufd/iommufd_test.h, as restated in ../shared/spec (core §3, device §2.6, §2.7, §3.1, §5.2;
 * type1 §1, §5.5). VFIO_DEVICE_FEATURE carries its feature's payload under the payload's name (`dma_buf`), as
 * IOMMU_TEST_CMD carries its union members. Offsets and sizes matter: the ioctl size rules (EINVAL below min_size, E2BIG for non-zero bytes
 * past the kernel struct) and the copy-out rule (min(user size, sizeof)) are decided on them. `minSize` is the
 * kernel's `offsetofend` of the last field it requires (main.c IOCTL_OP), which for the extensible structs is
 * smaller than `size`.
 */
import type { EnumName, FlagSetName } from './flags.js';

export type Scalar = 'u8' | 'u16' | 'u32' | 's32' | 'u64';
export type FieldType =
  | { readonly t: Scalar }
  | { readonly t: 'flags'; readonly width: Scalar; readonly set: FlagSetName }
  | { readonly t: 'enum'; readonly width: Scalar; readonly set: EnumName }
  /** A user pointer (u64) to an array of structs: inline as a JSON array, or a raw pointer number. */
  | { readonly t: 'array'; readonly elem: StructDef }
  /** A user pointer (u64) to driver data: inline as an object of fields, hex bytes, or a raw pointer. */
  | { readonly t: 'data' }
  /** A union member of IOMMU_TEST_CMD, written under its C name. */
  | { readonly t: 'struct'; readonly def: StructDef }
  | { readonly t: 'bytes'; readonly len: number };

export interface FieldDef {
  readonly name: string;
  readonly off: number;
  readonly type: FieldType;
}
export interface StructDef {
  readonly name: string;
  readonly size: number;
  readonly minSize: number;
  /** Which leading u32 carries the caller's size: iommufd's `size`, VFIO's `argsz`, or none. */
  readonly sizeField: 'size' | 'argsz' | null;
  readonly fields: readonly FieldDef[];
  readonly byName: ReadonlyMap<string, FieldDef>;
}

const f = (name: string, off: number, type: FieldType): FieldDef => ({ name, off, type });
const u8 = (n: string, o: number) => f(n, o, { t: 'u8' });
const u16 = (n: string, o: number) => f(n, o, { t: 'u16' });
const u32 = (n: string, o: number) => f(n, o, { t: 'u32' });
const s32 = (n: string, o: number) => f(n, o, { t: 's32' });
const u64 = (n: string, o: number) => f(n, o, { t: 'u64' });
const flags = (n: string, o: number, set: FlagSetName, width: Scalar = 'u32') => f(n, o, { t: 'flags', width, set });
const en = (n: string, o: number, set: EnumName, width: Scalar = 'u32') => f(n, o, { t: 'enum', width, set });
const arr = (n: string, o: number, elem: StructDef) => f(n, o, { t: 'array', elem });
const data = (n: string, o: number) => f(n, o, { t: 'data' });

function struct(
  name: string, size: number, fields: FieldDef[], opts: { minSize?: number; sizeField?: 'size' | 'argsz' | null } = {},
): StructDef {
  const sizeField = opts.sizeField === undefined ? 'size' : opts.sizeField;
  const all = sizeField ? [u32(sizeField, 0), ...fields] : fields;
  return { name, size, minSize: opts.minSize ?? size, sizeField, fields: all, byName: new Map(all.map((x) => [x.name, x])) };
}
const plain = (name: string, size: number, fields: FieldDef[]) => struct(name, size, fields, { sizeField: null });
const vfio = (name: string, size: number, fields: FieldDef[], minSize?: number) =>
  struct(name, size, fields, { sizeField: 'argsz', ...(minSize === undefined ? {} : { minSize }) });

export const iommu_iova_range = plain('iommu_iova_range', 16, [u64('start', 0), u64('last', 8)]);
export const vfio_region_dma_range = plain('vfio_region_dma_range', 16, [u64('offset', 0), u64('length', 8)]);
/**
 * The payload of VFIO_DEVICE_FEATURE_DMA_BUF in `struct vfio_device_feature`'s `data[]`, at its offsets in the whole
 * argument (8 + its own); `dma_ranges[]` is a flexible array member, given inline.
 */
export const vfio_device_feature_dma_buf = plain('vfio_device_feature_dma_buf', 16, [
  u32('region_index', 8), flags('open_flags', 12, 'open'), u32('flags', 16), u32('nr_ranges', 20),
  arr('dma_ranges', 24, vfio_region_dma_range),
]);

// The flexible `__u8 data[]` tails of two VFIO structs, named by what they hold there (docs/trace-format-type1.md):
// the kernel reads them at `arg + minsz` only for the flags that need them, so they sit past the struct's size.
/** `struct vfio_bitmap` (vfio.h): `data` is the user pointer to the bitmap (u64 words), `size` its bytes. */
export const vfio_bitmap = plain('vfio_bitmap', 24, [u64('pgsize', 0), u64('size', 8), data('data', 16)]);
/** `struct vfio_iommu_type1_dirty_bitmap_get` (vfio.h): the range VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP reads. */
export const vfio_iommu_type1_dirty_bitmap_get = plain('vfio_iommu_type1_dirty_bitmap_get', 40, [
  u64('iova', 0), u64('size', 8), f('bitmap', 16, { t: 'struct', def: vfio_bitmap }),
]);

export const S = {
  iommu_destroy: struct('iommu_destroy', 8, [u32('id', 4)]),
  iommu_ioas_alloc: struct('iommu_ioas_alloc', 12, [u32('flags', 4), u32('out_ioas_id', 8)]),
  iommu_ioas_allow_iovas: struct('iommu_ioas_allow_iovas', 24, [
    u32('ioas_id', 4), u32('num_iovas', 8), u32('__reserved', 12), arr('allowed_iovas', 16, iommu_iova_range),
  ]),
  iommu_ioas_copy: struct('iommu_ioas_copy', 40, [
    flags('flags', 4, 'ioas_map'), u32('dst_ioas_id', 8), u32('src_ioas_id', 12), u64('length', 16),
    u64('dst_iova', 24), u64('src_iova', 32),
  ]),
  iommu_ioas_iova_ranges: struct('iommu_ioas_iova_ranges', 32, [
    u32('ioas_id', 4), u32('num_iovas', 8), u32('__reserved', 12), arr('allowed_iovas', 16, iommu_iova_range),
    u64('out_iova_alignment', 24),
  ]),
  iommu_ioas_map: struct('iommu_ioas_map', 40, [
    flags('flags', 4, 'ioas_map'), u32('ioas_id', 8), u32('__reserved', 12), u64('user_va', 16),
    u64('length', 24), u64('iova', 32),
  ]),
  iommu_ioas_unmap: struct('iommu_ioas_unmap', 24, [u32('ioas_id', 4), u64('iova', 8), u64('length', 16)]),
  iommu_option: struct('iommu_option', 24, [
    en('option_id', 4, 'option_id'), en('op', 8, 'option_op', 'u16'), u16('__reserved', 10), u32('object_id', 12),
    u64('val64', 16),
  ]),
  iommu_vfio_ioas: struct('iommu_vfio_ioas', 12, [
    u32('ioas_id', 4), en('op', 8, 'vfio_ioas_op', 'u16'), u16('__reserved', 10),
  ]),
  iommu_hwpt_alloc: struct('iommu_hwpt_alloc', 48, [
    flags('flags', 4, 'hwpt_alloc'), u32('dev_id', 8), u32('pt_id', 12), u32('out_hwpt_id', 16),
    u32('__reserved', 20), en('data_type', 24, 'hwpt_data_type'), u32('data_len', 28), data('data_uptr', 32),
    u32('fault_id', 40), u32('__reserved2', 44),
  ], { minSize: 24 }),
  iommu_hw_info: struct('iommu_hw_info', 40, [
    flags('flags', 4, 'hw_info'), u32('dev_id', 8), u32('data_len', 12), data('data_uptr', 16),
    en('in_data_type', 24, 'hw_info_type'), en('out_data_type', 24, 'hw_info_type'), u8('out_max_pasid_log2', 28),
    f('__reserved', 29, { t: 'bytes', len: 3 }), u64('out_capabilities', 32),
  ], { minSize: 32 }),
  iommu_hwpt_set_dirty_tracking: struct('iommu_hwpt_set_dirty_tracking', 16, [
    flags('flags', 4, 'set_dirty'), u32('hwpt_id', 8), u32('__reserved', 12),
  ]),
  iommu_hwpt_get_dirty_bitmap: struct('iommu_hwpt_get_dirty_bitmap', 48, [
    u32('hwpt_id', 4), flags('flags', 8, 'get_dirty'), u32('__reserved', 12), u64('iova', 16), u64('length', 24),
    u64('page_size', 32), data('data', 40),
  ]),
  iommu_hwpt_invalidate: struct('iommu_hwpt_invalidate', 32, [
    u32('hwpt_id', 4), data('data_uptr', 8), en('data_type', 16, 'hwpt_invalidate_data_type'), u32('entry_len', 20),
    u32('entry_num', 24), u32('__reserved', 28),
  ]),
  iommu_fault_alloc: struct('iommu_fault_alloc', 16, [u32('flags', 4), u32('out_fault_id', 8), u32('out_fault_fd', 12)]),
  iommu_ioas_map_file: struct('iommu_ioas_map_file', 40, [
    flags('flags', 4, 'ioas_map'), u32('ioas_id', 8), s32('fd', 12), u64('start', 16), u64('length', 24),
    u64('iova', 32),
  ]),
  iommu_viommu_alloc: struct('iommu_viommu_alloc', 40, [
    u32('flags', 4), en('type', 8, 'viommu_type'), u32('dev_id', 12), u32('hwpt_id', 16), u32('out_viommu_id', 20),
    u32('data_len', 24), u32('__reserved', 28), data('data_uptr', 32),
  ], { minSize: 24 }),
  iommu_vdevice_alloc: struct('iommu_vdevice_alloc', 24, [
    u32('viommu_id', 4), u32('dev_id', 8), u32('out_vdevice_id', 12), u64('virt_id', 16),
  ]),
  iommu_ioas_change_process: struct('iommu_ioas_change_process', 8, [u32('__reserved', 4)]),
  iommu_veventq_alloc: struct('iommu_veventq_alloc', 32, [
    u32('flags', 4), u32('viommu_id', 8), en('type', 12, 'veventq_type'), u32('veventq_depth', 16),
    u32('out_veventq_id', 20), u32('out_veventq_fd', 24), u32('__reserved', 28),
  ], { minSize: 28 }),
  iommu_hw_queue_alloc: struct('iommu_hw_queue_alloc', 40, [
    u32('flags', 4), u32('viommu_id', 8), en('type', 12, 'hw_queue_type'), u32('index', 16),
    u32('out_hw_queue_id', 20), u64('nesting_parent_iova', 24), u64('length', 32),
  ]),
  // VFIO (include/uapi/linux/vfio.h).
  vfio_group_status: vfio('vfio_group_status', 8, [flags('flags', 4, 'vfio_group_status')]),
  vfio_iommu_type1_info: vfio('vfio_iommu_type1_info', 24, [
    flags('flags', 4, 'vfio_info'), u64('iova_pgsizes', 8), u32('cap_offset', 16), u32('pad', 20),
  ], 16),
  vfio_iommu_type1_dma_map: vfio('vfio_iommu_type1_dma_map', 32, [
    flags('flags', 4, 'vfio_dma_map'), u64('vaddr', 8), u64('iova', 16), u64('size', 24),
  ]),
  vfio_iommu_type1_dma_unmap: vfio('vfio_iommu_type1_dma_unmap', 24, [
    flags('flags', 4, 'vfio_dma_unmap'), u64('iova', 8), u64('size', 16),
    f('data', 24, { t: 'struct', def: vfio_bitmap }),
  ]),
  vfio_iommu_type1_dirty_bitmap: vfio('vfio_iommu_type1_dirty_bitmap', 8, [
    flags('flags', 4, 'vfio_dirty'), f('data', 8, { t: 'struct', def: vfio_iommu_type1_dirty_bitmap_get }),
  ]),
  vfio_device_bind_iommufd: vfio('vfio_device_bind_iommufd', 24, [
    flags('flags', 4, 'vfio_bind'), s32('iommufd', 8), u32('out_devid', 12), data('token_uuid_ptr', 16),
  ], 16),
  vfio_device_attach_iommufd_pt: vfio('vfio_device_attach_iommufd_pt', 16, [
    flags('flags', 4, 'vfio_attach'), u32('pt_id', 8), u32('pasid', 12),
  ], 12),
  vfio_device_detach_iommufd_pt: vfio('vfio_device_detach_iommufd_pt', 12, [
    flags('flags', 4, 'vfio_detach'), u32('pasid', 8),
  ], 8),
  vfio_device_feature: vfio('vfio_device_feature', 24, [
    flags('flags', 4, 'vfio_device_feature'), f('dma_buf', 8, { t: 'struct', def: vfio_device_feature_dma_buf }),
  ], 8),
} as const;

const U = 16; // the IOMMU_TEST_CMD union starts at offset 16
const member = (name: string, fields: FieldDef[]) => plain(name, 48, fields);
const TEST_UNION: readonly StructDef[] = [
  member('add_reserved', [u64('start', U), u64('length', U + 8)]),
  member('mock_domain', [u32('out_stdev_id', U), u32('out_hwpt_id', U + 4), u32('out_idev_id', U + 8)]),
  member('mock_domain_flags', [
    u32('out_stdev_id', U), u32('out_hwpt_id', U + 4), u32('out_idev_id', U + 8), flags('dev_flags', U + 12, 'test_dev'),
  ]),
  member('mock_domain_replace', [u32('pt_id', U)]),
  member('check_map', [u64('iova', U), u64('length', U + 8), u64('uptr', U + 16)]),
  member('check_refs', [u64('length', U), u64('uptr', U + 8), u32('refs', U + 16)]),
  member('create_access', [u32('out_access_fd', U), flags('flags', U + 4, 'test_create_access')]),
  member('destroy_access_pages', [u32('access_pages_id', U)]),
  member('access_pages', [
    flags('flags', U, 'test_access'), u32('out_access_pages_id', U + 4), u64('iova', U + 8), u64('length', U + 16),
    u64('uptr', U + 24),
  ]),
  member('access_rw', [u64('iova', U), u64('length', U + 8), u64('uptr', U + 16), flags('flags', U + 24, 'test_access')]),
  member('memory_limit', [u32('limit', U)]),
  member('access_replace_ioas', [u32('ioas_id', U)]),
  member('dirty', [
    u32('flags', U), u64('iova', U + 8), u64('length', U + 16), u64('page_size', U + 24), u64('uptr', U + 32),
    u64('out_nr_dirty', U + 40),
  ]),
  member('check_iotlb', [u32('id', U), u32('iotlb', U + 4)]),
  member('trigger_iopf', [u32('dev_id', U), u32('pasid', U + 4), u32('grpid', U + 8), flags('perm', U + 12, 'pgfault_perm'), u64('addr', U + 16)]),
  member('check_dev_cache', [u32('id', U), u32('cache', U + 4)]),
  member('trigger_vevent', [u32('dev_id', U)]),
  member('pasid_attach', [u32('pasid', U), u32('pt_id', U + 4)]),
  member('pasid_replace', [u32('pasid', U), u32('pt_id', U + 4)]),
  member('pasid_detach', [u32('pasid', U)]),
  member('pasid_check', [u32('pasid', U), u32('hwpt_id', U + 4)]),
  member('dmabuf_get', [u32('length', U), u32('open_flags', U + 4)]),
  member('dmabuf_revoke', [s32('dmabuf_fd', U), u32('revoked', U + 4)]),
];

export const iommu_test_cmd = struct('iommu_test_cmd', 72, [
  en('op', 4, 'test_op'), u32('id', 8), u32('__reserved', 12),
  ...TEST_UNION.map((m) => f(m.name, U, { t: 'struct', def: m })),
  u32('last', 64),
], { minSize: 68 });
