/**
 * Nested HW page tables (drivers/iommu/iommufd/hw_pagetable.c `iommufd_hwpt_nested_alloc`,
 * `iommufd_viommu_alloc_hwpt_nested`; the mock driver's `mock_domain_alloc_nested`,
 * `mock_viommu_alloc_domain_nested`, `__mock_domain_alloc_nested` in selftest.c) and the fault object an HWPT may
 * be given at IOMMU_HWPT_ALLOC (`IOMMU_HWPT_FAULT_ID_VALID`).
 *
 * Theory of operation. A nested HWPT is a stage-1 domain owned by the guest that translates through a stage-2
 * parent: a NEST_PARENT HWPT_PAGING given directly, or the one a vIOMMU holds. It holds a reference on what it was
 * allocated on (so the parent is EBUSY to destroy) and has no IOVA mappings of its own. The mock nested domain
 * keeps four IOTLB words, all set from the `iommu_hwpt_selftest.iotlb` given at allocation.
 */
import type { DomainEvent } from '../events/domain.js';
import type { Failure } from '../hw/iopt_ops.js';
import type { IommufdCtx, KObject, State } from '../projections/state.js';
import type { Arg } from './ioctl.js';
import { HWPT_ALLOC_PASID, HWPT_FAULT_ID_VALID } from './hw_pagetable.js';
import { userData } from './user_data.js';

const HWPT_DATA_SELFTEST = 0xdead;

/** `__mock_domain_alloc_nested`: the IOTLB word, or why the data is refused. */
function mockNestedData(a: Arg, dataType: number, len: number): number | Failure | { unmodelled: string } {
  const fn = 'selftest.c __mock_domain_alloc_nested';
  if (dataType !== HWPT_DATA_SELFTEST) return { errno: 'EOPNOTSUPP', why: `${fn}: data_type 0x${dataType.toString(16)} is not IOMMU_HWPT_DATA_SELFTEST` };
  const d = userData(a, 'data_uptr', len, 4, `${fn}: iommu_copy_struct_from_user`);
  if ('errno' in d || 'unmodelled' in d) return d;
  return d.u32(0, 'iotlb');
}

/**
 * The events making nested HWPT `id` on `pt` (a HWPT_PAGING or a VIOMMU) for device `idev`, or why not. The
 * object is only allocated once the core's own checks pass; a driver refusal aborts it (no trace remains).
 */
export function hwptNestedAllocEvents(st: State, ctx: IommufdCtx, idev: KObject, pt: KObject, id: number, a: Arg, flags: number, dataType: number, len: number): DomainEvent[] | Failure | { unmodelled: string } {
  if (!idev.idev!.mock) return { unmodelled: 'IOMMU_HWPT_ALLOC of a nested HWPT for a platform IOMMU' };
  let parentId: number, viommu = 0;
  if (pt.kind === 'HWPT_PAGING') {
    const fn = 'hw_pagetable.c iommufd_hwpt_nested_alloc';
    if ((flags & ~(HWPT_FAULT_ID_VALID | HWPT_ALLOC_PASID)) !== 0 || len === 0) return { errno: 'EOPNOTSUPP', why: `${fn}: flags 0x${flags.toString(16)} beyond FAULT_ID_VALID|PASID, or no driver data` };
    if (pt.hwpt!.auto || !pt.hwpt!.nestParent) return { errno: 'EINVAL', why: `${fn}: HWPT ${pt.id} is an auto domain or not a NEST_PARENT` };
    parentId = pt.id;
  } else {
    const fn = 'hw_pagetable.c iommufd_viommu_alloc_hwpt_nested';
    if ((flags & ~(HWPT_FAULT_ID_VALID | HWPT_ALLOC_PASID)) !== 0) return { errno: 'EOPNOTSUPP', why: `${fn}: flags 0x${flags.toString(16)} beyond FAULT_ID_VALID|PASID` };
    if (len === 0) return { errno: 'EOPNOTSUPP', why: `${fn}: no driver data` };
    parentId = pt.viommu!.hwpt;
    viommu = pt.id;
  }
  const iotlb = mockNestedData(a, dataType, len);
  if (typeof iotlb !== 'number') return iotlb;
  const parent = ctx.objects.get(parentId)!;
  const pd = st.domains.get(parent.hwpt!.domain)!;
  const domain = st.nextDomain;
  return [
    { type: 'ObjectAllocated', ctx: ctx.id, id, kind: 'HWPT_NESTED' },
    { type: 'ObjectRefTaken', ctx: ctx.id, id: pt.id, by: id },
    { type: 'DomainAllocated', domain, kind: 'nested', driver: 'mock', pgsizeBitmap: pd.pgsizeBitmap, apertureStart: pd.apertureStart, apertureLast: pd.apertureLast, dirtyOps: false, ctx: ctx.id, hwpt: id },
    { type: 'HwptNestedInitialized', ctx: ctx.id, id, parent: parentId, viommu, domain, ioas: parent.hwpt!.ioas, iotlb, pasidCompat: (flags & HWPT_ALLOC_PASID) !== 0 },
  ];
}
