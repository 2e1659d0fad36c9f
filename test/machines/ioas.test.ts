import { describe, expect, it } from 'vitest';
import { given, ioasAllocated, ioctl, opened } from '../support/given.js';
import { memRead } from '../../src/hw/mm.js';

describe('IOMMU_IOAS_ALLOC', () => {
  it('allocates the lowest free id from 1, reserving it before it is finalized', () => {
    given(opened()).when(ioctl('IOMMU_IOAS_ALLOC', {})).then(
      [{ type: 'ObjectAllocated', ctx: 1, id: 1, kind: 'IOAS' }, { type: 'ObjectFinalized', ctx: 1, id: 1 }],
      { out_ioas_id: 1n, flags: 0n, size: 12n },
    );
  });

  it('reuses a destroyed id before handing out a new one', () => {
    given(opened(), ioasAllocated(1), ioasAllocated(2), ioasAllocated(3), [{ type: 'ObjectDestroyed', ctx: 1, id: 2 }])
      .when(ioctl('IOMMU_IOAS_ALLOC', {}))
      .then([{ type: 'ObjectAllocated', ctx: 1, id: 2, kind: 'IOAS' }, { type: 'ObjectFinalized', ctx: 1, id: 2 }], { out_ioas_id: 2n });
  });

  it('rejects any flag with EOPNOTSUPP and consumes no id', () => {
    given(opened()).when(ioctl('IOMMU_IOAS_ALLOC', { flags: 1 })).thenFails('EOPNOTSUPP');
  });
});

describe('IOMMU_IOAS_IOVA_RANGES', () => {
  it('reports one range covering the whole u64 space with alignment 1 on a fresh IOAS', () => {
    const r = given([{ type: 'TraceStarted', pageSize: 4096, memory: 'implicit' }], opened(), ioasAllocated(1))
      .when(ioctl('IOMMU_IOAS_IOVA_RANGES', { ioas_id: 1, num_iovas: 1, allowed_iovas: '0x7f0000000000' }))
      .thenOk({ num_iovas: 1n, out_iova_alignment: 1n, allowed_iovas: [{ start: 0n, last: (1n << 64n) - 1n }] });
    // The range went to user memory as {start, last}, little endian.
    const mem = memRead(r.state.mm, 'implicit', 4096, 0x7f0000000000n, 16);
    expect(Buffer.from(mem as Uint8Array).toString('hex')).toBe('0000000000000000ffffffffffffffff');
  });

  it('answers EFAULT when the ranges are to be written to memory that is not mapped', () => {
    given(opened(), ioasAllocated(1)).when(ioctl('IOMMU_IOAS_IOVA_RANGES', { ioas_id: 1, num_iovas: 1, allowed_iovas: '0x7f0000000000' })).thenFails('EFAULT');
  });

  it('answers EFAULT when there is a range to write and allowed_iovas is NULL', () => {
    given(opened(), ioasAllocated(1)).when(ioctl('IOMMU_IOAS_IOVA_RANGES', { ioas_id: 1, num_iovas: 1 })).thenFails('EFAULT');
  });

  it('answers EMSGSIZE with the required count when the array is too small', () => {
    const r = given(opened(), ioasAllocated(1)).when(ioctl('IOMMU_IOAS_IOVA_RANGES', { ioas_id: 1, num_iovas: 0 })).thenFails('EMSGSIZE');
    const o = r.done.outcome;
    expect(o.kind === 'err' ? o.out?.num_iovas : undefined).toBe(1n);
  });

  it('checks __reserved before the IOAS lookup', () => {
    given(opened()).when(ioctl('IOMMU_IOAS_IOVA_RANGES', { ioas_id: 9, __reserved: 1 })).thenFails('EOPNOTSUPP');
    given(opened()).when(ioctl('IOMMU_IOAS_IOVA_RANGES', { ioas_id: 9 })).thenFails('ENOENT');
  });
});

describe('IOMMU_IOAS_MAP argument checks', () => {
  const u64max = '0xffffffffffffffff';
  it('checks flags, then overflow, then the R/W flags, then the IOAS, in that order', () => {
    given(opened()).when(ioctl('IOMMU_IOAS_MAP', { flags: 8, ioas_id: 9, length: u64max })).thenFails('EOPNOTSUPP');
    given(opened()).when(ioctl('IOMMU_IOAS_MAP', { flags: 0, ioas_id: 9, length: u64max })).thenFails('EOVERFLOW');
    given(opened()).when(ioctl('IOMMU_IOAS_MAP', { flags: 1, ioas_id: 9, length: 4096 })).thenFails('EINVAL');
    given(opened()).when(ioctl('IOMMU_IOAS_MAP', { flags: 'IOMMU_IOAS_MAP_READABLE', ioas_id: 9, length: 4096 })).thenFails('ENOENT');
  });
});

describe('IOMMU_VFIO_IOAS', () => {
  it('answers ENODEV for GET before any SET, and returns the IOAS after SET', () => {
    given(opened(), ioasAllocated(1)).when(ioctl('IOMMU_VFIO_IOAS', { op: 'IOMMU_VFIO_IOAS_GET' })).thenFails('ENODEV');
    given(opened(), ioasAllocated(1)).when(ioctl('IOMMU_VFIO_IOAS', { op: 'IOMMU_VFIO_IOAS_SET', ioas_id: 1 }))
      .then([{ type: 'VfioIoasSet', ctx: 1, id: 1 }]);
    given(opened(), ioasAllocated(1), [{ type: 'VfioIoasSet', ctx: 1, id: 1 }])
      .when(ioctl('IOMMU_VFIO_IOAS', { op: 0 })).then([], { ioas_id: 1n });
  });

  it('forgets the compat IOAS when that IOAS is destroyed', () => {
    given(opened(), ioasAllocated(1), [{ type: 'VfioIoasSet', ctx: 1, id: 1 }, { type: 'ObjectDestroyed', ctx: 1, id: 1 }])
      .when(ioctl('IOMMU_VFIO_IOAS', { op: 0 })).thenFails('ENODEV');
  });
});
