import { describe, expect, it } from 'vitest';
import { given, ioasAllocated, ioctl, opened } from '../support/given.js';

describe('iommufd_fops_ioctl size rules', () => {
  it('answers EFAULT for a NULL argument before it looks at the command', () => {
    given(opened()).when(ioctl('IOMMU_DESTROY', null)).thenFails('EFAULT');
    given(opened()).when(ioctl(0x3b95, null)).thenFails('EFAULT');
  });

  it('answers ENOTTY for a number below the table, which the VFIO compat switch does not know', () => {
    given(opened()).when(ioctl(0x3b7f, { size: 8 })).thenFails('ENOTTY');
  });

  it('answers ENOTTY for a command whose type byte differs from iommufd even though its nr is in the table', () => {
    given(opened()).when(ioctl(0x1280, {})).thenFails('ENOTTY');
  });

  it('answers ENOTTY for IOMMU_TEST_CMD when the kernel lacks CONFIG_IOMMUFD_TEST', () => {
    given(opened()).withHeader({ iommufd_test: false })
      .when(ioctl('IOMMU_TEST_CMD', { op: 'IOMMU_TEST_OP_MD_CHECK_REFS', check_refs: { length: 0, uptr: 0, refs: 0 } }))
      .thenFails('ENOTTY');
  });

  it('answers EINVAL when size is one byte short of min_size', () => {
    given(opened()).when(ioctl('IOMMU_DESTROY', { size: 7 })).thenFails('EINVAL', /min_size 8/);
    given(opened()).when(ioctl('IOMMU_HWPT_ALLOC', { size: 23 })).thenFails('EINVAL');
  });

  it('accepts an extensible struct between min_size and sizeof, zero-filling the rest', () => {
    // 24 bytes of iommu_hwpt_alloc reach pt_id; data_type etc. read as 0, so the device lookup decides.
    given(opened()).when(ioctl('IOMMU_HWPT_ALLOC', { size: 24, data_type: 'IOMMU_HWPT_DATA_SELFTEST' })).thenFails('ENOENT');
  });

  it('answers E2BIG for a non-zero byte past the kernel struct and accepts zero bytes there', () => {
    given(opened()).when(ioctl('IOMMU_DESTROY', { size: 9, tail: 'ff' })).thenFails('E2BIG');
    given(opened()).when(ioctl('IOMMU_DESTROY', { size: 16, id: 0, tail: '0000000000000000' })).thenFails('ENOENT');
  });
});

describe('IOMMU_DESTROY', () => {
  it('destroys a finalized IOAS whose only user is the object table', () => {
    given(opened(), ioasAllocated(1)).when(ioctl('IOMMU_DESTROY', { id: 1 })).then([{ type: 'ObjectDestroyed', ctx: 1, id: 1 }]);
  });

  it('answers ENOENT for id 0, a free id, and an id that is reserved but not finalized', () => {
    given(opened()).when(ioctl('IOMMU_DESTROY', { id: 0 })).thenFails('ENOENT');
    given(opened(), ioasAllocated(1)).when(ioctl('IOMMU_DESTROY', { id: 2 })).thenFails('ENOENT');
    given(opened(), [{ type: 'ObjectAllocated', ctx: 1, id: 1, kind: 'IOAS' }]).when(ioctl('IOMMU_DESTROY', { id: 1 })).thenFails('ENOENT', /not finalized/);
  });

  it('answers EBUSY while anything else holds a reference, and changes nothing', () => {
    const r = given(opened(), ioasAllocated(1), ioasAllocated(2), [{ type: 'ObjectRefTaken', ctx: 1, id: 1, by: 2 }])
      .when(ioctl('IOMMU_DESTROY', { id: 1 })).thenFails('EBUSY', /users=2/);
    expect(r.state.ctxs.get(1)!.objects.get(1)!.users).toBe(2);
  });

  it('destroys without a type check: any kind of object id is accepted', () => {
    const r = given(opened(), [{ type: 'ObjectAllocated', ctx: 1, id: 1, kind: 'FAULT' }, { type: 'ObjectFinalized', ctx: 1, id: 1 }])
      .when(ioctl('IOMMU_DESTROY', { id: 1 })).then([{ type: 'ObjectDestroyed', ctx: 1, id: 1 }]);
    expect(r.state.ctxs.get(1)!.objects.size).toBe(0);
  });
});

describe('IOMMU_OPTION', () => {
  it('reads RLIMIT_MODE as 0 on a fresh /dev/iommu and copies only val64 back', () => {
    given(opened()).when(ioctl('IOMMU_OPTION', { option_id: 'IOMMU_OPTION_RLIMIT_MODE', op: 'IOMMU_OPTION_OP_GET', val64: 7 }))
      .then([], { val64: 0n });
  });

  it('sets RLIMIT_MODE only while the object table is empty', () => {
    given(opened()).when(ioctl('IOMMU_OPTION', { option_id: 0, op: 0, val64: 1 })).then([{ type: 'AccountModeSet', ctx: 1, mode: 1 }]);
    given(opened(), ioasAllocated(1)).when(ioctl('IOMMU_OPTION', { option_id: 0, op: 0, val64: 1 })).thenFails('EBUSY');
    given(opened(), [{ type: 'ObjectAllocated', ctx: 1, id: 1, kind: 'IOAS' }])
      .when(ioctl('IOMMU_OPTION', { option_id: 0, op: 0, val64: 0 })).thenFails('EBUSY');
  });

  it('checks CAP_SYS_RESOURCE before the table and the value', () => {
    given(opened(), ioasAllocated(1)).withHeader({ limits: { memlock: 'unlimited', cap_sys_resource: false, cap_ipc_lock: false } })
      .when(ioctl('IOMMU_OPTION', { option_id: 0, op: 0, val64: 2 })).thenFails('EPERM');
    given(opened()).when(ioctl('IOMMU_OPTION', { option_id: 0, op: 0, val64: 2 })).thenFails('EINVAL');
  });

  it('rejects a non-zero object_id for RLIMIT_MODE, an unknown op, an unknown option and __reserved', () => {
    given(opened()).when(ioctl('IOMMU_OPTION', { option_id: 0, op: 1, object_id: 1 })).thenFails('EOPNOTSUPP');
    given(opened()).when(ioctl('IOMMU_OPTION', { option_id: 0, op: 2 })).thenFails('EOPNOTSUPP');
    given(opened()).when(ioctl('IOMMU_OPTION', { option_id: 2, op: 1 })).thenFails('EOPNOTSUPP');
    given(opened()).when(ioctl('IOMMU_OPTION', { option_id: 0, op: 1, __reserved: 1 })).thenFails('EOPNOTSUPP');
  });

  it('looks up the IOAS for HUGE_PAGES before checking the op', () => {
    given(opened()).when(ioctl('IOMMU_OPTION', { option_id: 'IOMMU_OPTION_HUGE_PAGES', op: 7, object_id: 0 })).thenFails('ENOENT');
    given(opened(), ioasAllocated(1)).when(ioctl('IOMMU_OPTION', { option_id: 1, op: 7, object_id: 1 })).thenFails('EOPNOTSUPP');
  });

  it('disables large pages on an IOAS, which raises its IOVA alignment to PAGE_SIZE', () => {
    const r = given(opened(), ioasAllocated(1)).when(ioctl('IOMMU_OPTION', { option_id: 1, op: 0, object_id: 1, val64: 0 }))
      .then([{ type: 'IoasLargePagesSet', ctx: 1, id: 1, disableLargePages: true, iovaAlignment: 4096n }], { val64: 0n });
    expect(r.state.ctxs.get(1)!.objects.get(1)!.ioas!.iopt.iovaAlignment).toBe(4096n);
    given(opened(), ioasAllocated(1)).when(ioctl('IOMMU_OPTION', { option_id: 1, op: 1, object_id: 1 })).then([], { val64: 1n });
  });
});
