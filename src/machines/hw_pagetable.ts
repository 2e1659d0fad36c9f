/**
 * HW page tables (drivers/iommu/iommufd/hw_pagetable.c): IOMMU_HWPT_ALLOC, IOMMU_HWPT_SET_DIRTY_TRACKING,
 * IOMMU_HWPT_GET_DIRTY_BITMAP, IOMMU_HWPT_INVALIDATE (of a nested HWPT or a vIOMMU, both the mock's:
 * hwpt_nested.ts), and the paging HWPT's life: `iommufd_hwpt_paging_alloc`
 * (a domain from the device's driver, added to the IOAS: its aperture reserved, its IOVA mappings filled) and
 * `iommufd_hwpt_paging_destroy` (the domain removed from the IOAS, unmapped and freed).
 *
 * A paging HWPT holds a reference on its IOAS; an attached device holds one on the HWPT. An auto domain (made by
 * attaching a device to an IOAS) disappears when its last device leaves.
 */
import type { DomainEvent } from '../events/domain.js';
import { iopt_table_add_domain, iopt_table_remove_domain, StepScratch } from '../hw/iopt_domains.js';
import { isFailure, type Failure } from '../hw/iopt_ops.js';
import { mockPagingParams, type HwDomain } from '../hw/domain.js';
import { IntervalTree } from '../hw/interval_tree.js';
import { newIotlb } from '../hw/iotlb.js';
import type { IommufdCtx, KObject, State } from '../projections/state.js';
import type { TraceHeader } from '../events/header.js';
import { fail, respond, succeed, u32, unmodelled, type Arg, type Call, type Handler, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';
import { attachEvents } from './device.js';
import { hwptNestedAllocEvents, nestedInvalidate, viommuInvalidate } from './hwpt_nested.js';
import { iommufd_hwpt_get_dirty_bitmap, iommufd_hwpt_set_dirty_tracking } from './dirty.js';

export const HWPT_ALLOC_NEST_PARENT = 1, HWPT_ALLOC_DIRTY_TRACKING = 2, HWPT_FAULT_ID_VALID = 4, HWPT_ALLOC_PASID = 8;
const HWPT_DATA_NONE = 0, HWPT_DATA_SELFTEST = 0xdead;

/** What the caller asks of a paging domain. */
export interface PagingRequest {
  readonly flags: number;
  readonly dataType: number;
  /** Driver data: `iommu_hwpt_selftest` {iotlb u32, pagetable_type u32} for the mock. */
  readonly data: Readonly<Record<string, bigint>> | Uint8Array | undefined;
  readonly dataLen: number;
}
export const AUTO_REQUEST: PagingRequest = { flags: 0, dataType: HWPT_DATA_NONE, data: undefined, dataLen: 0 };

/** The mock driver's `mock_domain_alloc_paging_flags`: the domain it makes, or why it refuses. */
function mockDomain(st: State, idev: KObject, r: PagingRequest): { pgsizeBitmap: bigint; apertureStart: bigint; apertureLast: bigint } | Failure {
  const fn = 'selftest.c mock_domain_alloc_paging_flags';
  const flags = r.flags & ~HWPT_FAULT_ID_VALID;
  if ((flags & ~(HWPT_ALLOC_DIRTY_TRACKING | HWPT_ALLOC_NEST_PARENT | HWPT_ALLOC_PASID)) !== 0)
    return { errno: 'EOPNOTSUPP', why: `${fn}: flags 0x${flags.toString(16)} outside DIRTY_TRACKING|NEST_PARENT|PASID` };
  if ((flags & HWPT_ALLOC_DIRTY_TRACKING) !== 0 && !idev.idev!.dirtyCapable)
    return { errno: 'EOPNOTSUPP', why: `${fn}: dirty tracking asked of a MOCK_FLAGS_DEVICE_NO_DIRTY device` };
  if (r.dataType !== HWPT_DATA_NONE && r.dataType !== HWPT_DATA_SELFTEST)
    return { errno: 'EOPNOTSUPP', why: `${fn}: data_type 0x${r.dataType.toString(16)} is not IOMMU_HWPT_DATA_SELFTEST` };
  let pagetableType = 0;
  if (r.dataType === HWPT_DATA_SELFTEST) {
    if (r.dataLen < 4 || r.dataLen > 8) return { errno: 'EINVAL', why: `${fn}: data_len ${r.dataLen} outside [4, 8] for struct iommu_hwpt_selftest` };
    if (r.data instanceof Uint8Array) pagetableType = r.data.length >= 8 ? r.data[4]! | (r.data[5]! << 8) | (r.data[6]! << 16) | (r.data[7]! << 24) : 0;
    else if (r.data !== undefined && r.dataLen >= 8) pagetableType = Number(r.data.pagetable_type ?? 0n);
    if (pagetableType !== 0 && pagetableType !== 1) return { errno: 'EOPNOTSUPP', why: `${fn}: pagetable_type ${pagetableType} is neither DEFAULT nor HUGE` };
  }
  return mockPagingParams(pagetableType, st.pageSize);
}

/**
 * `iommufd_hwpt_paging_alloc` for device `idev` on IOAS `ioas`: the events that create HWPT `id` with its domain and
 * add the domain to the IOAS. With `attachPasid` set (an auto domain in attach mode) the device is attached before
 * the IOAS's mappings are filled, as the kernel does.
 */
export function hwptPagingAllocEvents(
  st: State, h: TraceHeader, ctx: IommufdCtx, idev: KObject, ioas: KObject, id: number, r: PagingRequest, auto: boolean,
  attachPasid: number | undefined, scratch = new StepScratch(),
): DomainEvent[] | Failure {
  const fn = 'hw_pagetable.c iommufd_hwpt_paging_alloc';
  if ((r.flags & ~(HWPT_ALLOC_NEST_PARENT | HWPT_ALLOC_DIRTY_TRACKING | HWPT_FAULT_ID_VALID | HWPT_ALLOC_PASID)) !== 0)
    return { errno: 'EOPNOTSUPP', why: `${fn}: unknown flags 0x${r.flags.toString(16)}` };
  if ((r.flags & HWPT_ALLOC_DIRTY_TRACKING) !== 0 && !idev.idev!.dirtyCapable)
    return { errno: 'EOPNOTSUPP', why: `${fn}: DIRTY_TRACKING on a device that cannot track dirty pages` };
  if ((r.flags & HWPT_FAULT_ID_VALID) !== 0 && (r.flags & HWPT_ALLOC_NEST_PARENT) !== 0)
    return { errno: 'EOPNOTSUPP', why: `${fn}: FAULT_ID_VALID with NEST_PARENT` };
  const d = idev.idev!;
  let params: { pgsizeBitmap: bigint; apertureStart: bigint; apertureLast: bigint } | Failure;
  if (d.mock) params = mockDomain(st, idev, r);
  else if (r.dataType !== HWPT_DATA_NONE) params = { errno: 'EOPNOTSUPP', why: `${fn}: driver data (type ${r.dataType}) for a platform IOMMU is not modelled` };
  else params = { pgsizeBitmap: d.pgsizeBitmap, apertureStart: d.apertureStart, apertureLast: d.apertureLast };
  if (isFailure(params)) return params;
  const driver = d.mock ? 'mock' as const : 'platform' as const;
  const domain: HwDomain = {
    id: st.nextDomain, kind: 'paging', driver, ...params, dirtyOps: (r.flags & HWPT_ALLOC_DIRTY_TRACKING) !== 0,
    dirtyTracking: false, map: new IntervalTree(), iotlb: newIotlb(),
  };
  const events: DomainEvent[] = [
    { type: 'ObjectAllocated', ctx: ctx.id, id, kind: 'HWPT_PAGING' },
    { type: 'ObjectRefTaken', ctx: ctx.id, id: ioas.id, by: id },
    { type: 'DomainAllocated', domain: domain.id, kind: 'paging', driver, pgsizeBitmap: domain.pgsizeBitmap, apertureStart: domain.apertureStart, apertureLast: domain.apertureLast, dirtyOps: domain.dirtyOps, ctx: ctx.id, hwpt: id },
    { type: 'HwptInitialized', ctx: ctx.id, id, ioas: ioas.id, domain: domain.id, auto, nestParent: (r.flags & HWPT_ALLOC_NEST_PARENT) !== 0, pasidCompat: (r.flags & HWPT_ALLOC_PASID) !== 0 },
  ];
  if (attachPasid !== undefined) {
    const hw = { id, hwpt: { ioas: ioas.id, domain: domain.id, auto, nestParent: false, pasidCompat: false } };
    const a = attachEvents(st, ctx, idev, attachPasid, hw, domain.dirtyOps);
    if (isFailure(a)) return a;
    events.push(...a);
  }
  const add = iopt_table_add_domain(st, h, { ctx: ctx.id, ioas: ioas.id }, ioas.ioas!.iopt, domain, scratch);
  if (isFailure(add)) return add;
  events.push(...add, { type: 'ObjectFinalized', ctx: ctx.id, id });
  return events;
}

/** `iommufd_hwpt_paging_destroy`: the domain leaves the IOAS (unmapped, unpinned if last) and is freed. */
export function hwptPagingDestroyEvents(st: State, ctx: IommufdCtx, o: KObject, scratch = new StepScratch()): DomainEvent[] {
  const h = o.hwpt!;
  const ioas = ctx.objects.get(h.ioas)!;
  return [
    ...iopt_table_remove_domain(st, { ctx: ctx.id, ioas: h.ioas }, ioas.ioas!.iopt, h.domain, scratch),
    { type: 'DomainFreed', domain: h.domain },
    { type: 'ObjectRefDropped', ctx: ctx.id, id: h.ioas, by: o.id },
  ];
}

/** `iommufd_hwpt_alloc`. */
function iommufd_hwpt_alloc(c: Call, a: Arg): Step {
  const fn = 'hw_pagetable.c iommufd_hwpt_alloc';
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', `${fn}: __reserved != 0`);
  const type = u32(a, 'data_type'), len = u32(a, 'data_len');
  if ((type === 0 && len !== 0) || (type !== 0 && len === 0))
    return fail('EINVAL', `${fn}: data_type ${type} with data_len ${len} (NONE needs 0, any other type needs data)`);
  const devId = u32(a, 'dev_id');
  const idev = getObject(c.ctx, devId, 'DEVICE');
  if (idev === undefined) return fail('ENOENT', `${fn}: iommufd_get_device(${devId}): ${lookupWhy(c.ctx, devId, 'DEVICE')}`);
  const ptId = u32(a, 'pt_id');
  const pt = getObject(c.ctx, ptId, 'ANY');
  if (pt === undefined) return fail('EINVAL', `${fn}: pt_id ${ptId}: ${lookupWhy(c.ctx, ptId, 'ANY')} (a failed pt lookup is EINVAL)`);
  if (pt.kind !== 'IOAS' && pt.kind !== 'HWPT_PAGING' && pt.kind !== 'VIOMMU')
    return fail('EINVAL', `${fn}: pt_id ${ptId} is a ${pt.kind}, neither an IOAS, a HWPT_PAGING nor a VIOMMU`);
  const flags = u32(a, 'flags');
  const id = c.ctx.ids.lowestFree();
  if (id === undefined) return fail('EBUSY', 'main.c _iommufd_object_alloc: no free id');
  let ev: DomainEvent[] | Failure | { unmodelled: string };
  if (pt.kind === 'IOAS') {
    const dv = a.v.data_uptr;
    const data = dv instanceof Uint8Array ? dv : typeof dv === 'object' && dv !== null && 'inline' in dv ? dv.inline : undefined;
    if (len > 0 && data === undefined) return unmodelled('IOMMU_HWPT_ALLOC driver data given as a raw pointer');
    ev = hwptPagingAllocEvents(c.k.st, c.k.header, c.ctx, idev, pt, id, { flags, dataType: type, data, dataLen: len }, false, undefined);
  } else ev = hwptNestedAllocEvents(c.k.st, c.ctx, idev, pt, id, a, flags, type, len);
  if ('unmodelled' in ev) return unmodelled(ev.unmodelled);
  if (isFailure(ev)) return fail(ev.errno, ev.why);
  if ((flags & HWPT_FAULT_ID_VALID) !== 0) {
    // After the HWPT is made: a bad fault_id aborts and destroys it, which leaves nothing behind.
    const faultId = u32(a, 'fault_id');
    if (getObject(c.ctx, faultId, 'FAULT') === undefined) return fail('ENOENT', `${fn}: iommufd_get_fault(${faultId}): ${lookupWhy(c.ctx, faultId, 'FAULT')}`);
    ev = ev.filter((e) => e.type !== 'ObjectFinalized' || e.id !== id);
    ev.push({ type: 'ObjectRefTaken', ctx: c.ctx.id, id: faultId, by: id });
  }
  if (!ev.some((e) => e.type === 'ObjectFinalized' && e.id === id)) ev.push({ type: 'ObjectFinalized', ctx: c.ctx.id, id });
  return succeed(`${fn}: ${pt.kind === 'IOAS' ? 'HWPT_PAGING' : 'HWPT_NESTED'} ${id} on ${pt.kind} ${ptId}`, respond(a, { out_hwpt_id: BigInt(id) }), ev);
}

/** `iommufd_hwpt_invalidate`: `entry_num` is written back on every path, 0 when nothing was processed. */
function iommufd_hwpt_invalidate(c: Call, a: Arg): Step {
  const fn = 'hw_pagetable.c iommufd_hwpt_invalidate';
  const out = respond(a, { entry_num: 0n });
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', `${fn}: __reserved != 0`, [], out);
  const v = a.v.data_uptr;
  if (u32(a, 'entry_num') !== 0 && (v === undefined || v === 0n || u32(a, 'entry_len') === 0))
    return fail('EINVAL', `${fn}: entry_num != 0 with a NULL data_uptr or entry_len 0`, [], out);
  const id = u32(a, 'hwpt_id');
  const o = getObject(c.ctx, id, 'ANY');
  if (o === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, id, 'ANY')}`, [], out);
  if (o.kind !== 'HWPT_NESTED' && o.kind !== 'VIOMMU') return fail('EINVAL', `${fn}: object ${id} is a ${o.kind}; only nested HWPTs and vIOMMUs take invalidations`, [], out);
  // Every vIOMMU the model allocates is the mock's, whose ops have cache_invalidate.
  if (o.kind === 'VIOMMU') return viommuInvalidate(c, a, o, (n) => ({ entry_num: BigInt(n) }));
  return nestedInvalidate(c, a, o, (n) => ({ entry_num: BigInt(n) }));
}

export const HWPT_HANDLERS: Readonly<Record<string, Handler>> = {
  IOMMU_HWPT_ALLOC: iommufd_hwpt_alloc,
  IOMMU_HWPT_SET_DIRTY_TRACKING: iommufd_hwpt_set_dirty_tracking,
  IOMMU_HWPT_GET_DIRTY_BITMAP: iommufd_hwpt_get_dirty_bitmap,
  IOMMU_HWPT_INVALIDATE: iommufd_hwpt_invalidate,
};
