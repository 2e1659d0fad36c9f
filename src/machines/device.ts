/**
 * Devices (drivers/iommu/iommufd/device.c): binding (`iommufd_device_bind`/`_unbind`), attaching a device to a HWPT
 * or an IOAS at a PASID (`iommufd_device_attach`/`_replace`/`_detach`, `iommufd_hw_pagetable_attach`,
 * `iommufd_device_auto_get_domain`), and IOMMU_GET_HW_INFO.
 *
 * Theory of operation. Every device of an iommu_group must use the same HWPT at a PASID; the first device of a
 * group does the real attach, the others join it. Attaching to an IOAS walks the IOAS's auto domains in creation
 * order and takes the first that accepts the device (EINVAL means "incompatible, try the next"), else makes a new
 * auto domain. A device holds a reference on each HWPT it is attached to; when an auto domain loses its last device
 * it is destroyed on the spot.
 */
import { StepScratch } from '../hw/iopt_domains.js';
import type { DomainEvent } from '../events/domain.js';
import { iopt_reserve_iova, isFailure, type Failure } from '../hw/iopt_ops.js';
import { groupAttachment, type HwptData } from '../projections/devices.js';
import type { IdAllocator } from '../projections/ids.js';
import type { IommufdCtx, KObject, State } from '../projections/state.js';
import type { TraceHeader } from '../events/header.js';
import { copyToUser, fail, respond, succeed, u32, unmodelled, type Arg, type Call, type Handler, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';
import { vdeviceTombstoneEvents } from './viommu.js';
import { faultAutoResponseEvents } from './fault.js';
import { AUTO_REQUEST, hwptPagingAllocEvents, hwptPagingDestroyEvents } from './hw_pagetable.js';
import { isMutant } from '../check/mutants.js';

export const IOMMU_NO_PASID = 0;
export interface HwptRef { readonly id: number; readonly hwpt: HwptData }

/** `iommufd_hw_pagetable_attach` checks, then the events of `idev` joining HWPT `h` at `pasid`. */
export function attachEvents(st: State, ctx: IommufdCtx, idev: KObject, pasid: number, h: HwptRef, dirtyOps: boolean): DomainEvent[] | Failure {
  const fn = 'device.c iommufd_hw_pagetable_attach';
  const d = idev.idev!;
  if (d.attached.has(pasid)) return { errno: 'EBUSY', why: `${fn}: device ${idev.id} is already attached at pasid ${pasid}` };
  const g = groupAttachment(ctx, d.group, pasid);
  if (g.hwpt !== undefined && g.hwpt !== h.id)
    return { errno: 'EINVAL', why: `${fn}: the device's group is attached to HWPT ${g.hwpt} at pasid ${pasid}; every device of a group uses one HWPT` };
  if (g.hwpt === undefined) {
    if (pasid === IOMMU_NO_PASID && !h.hwpt.pasidCompat && [...ctx.objects.values()].some((o) => o.idev?.group === d.group && [...o.idev.attached.keys()].some((p) => p !== 0)))
      return { errno: 'EINVAL', why: `${fn} (iommufd_hwpt_pasid_compat): a PASID is attached, so the RID needs a HWPT allocated with IOMMU_HWPT_ALLOC_PASID` };
    if (pasid !== IOMMU_NO_PASID && !h.hwpt.pasidCompat)
      return { errno: 'EINVAL', why: `${fn} (iommufd_hwpt_pasid_compat): HWPT ${h.id} was not allocated with IOMMU_HWPT_ALLOC_PASID` };
    if (pasid !== IOMMU_NO_PASID) {
      const rid = d.attached.get(IOMMU_NO_PASID);
      if (rid !== undefined && !(ctx.objects.get(rid)?.hwpt?.pasidCompat ?? false))
        return { errno: 'EINVAL', why: `${fn} (iommufd_hwpt_pasid_compat): the RID's HWPT ${rid} is not PASID compatible` };
      if (pasid >= 2 ** d.pasidBits) return { errno: 'EINVAL', why: `iommu.c iommu_attach_device_pasid: pasid ${pasid} beyond the device's ${d.pasidBits} PASID bits` };
    }
    if (d.mock && dirtyOps && !d.dirtyCapable)
      return { errno: 'EINVAL', why: 'selftest.c mock_domain_attach_dev: a dirty-tracking domain on a MOCK_FLAGS_DEVICE_NO_DIRTY device' };
  }
  const resv: DomainEvent[] = [];
  if (pasid === IOMMU_NO_PASID && d.resv.length > 0) {
    // iopt_table_enforce_dev_resv_regions: the device's reserved regions enter the IOAS it now translates through.
    const i = ctx.objects.get(h.hwpt.ioas)!.ioas!.iopt;
    for (const r of d.resv) {
      const bad = iopt_reserve_iova(i, r.start, r.last);
      if (bad) return { errno: bad.errno, why: `io_pagetable.c iopt_table_enforce_dev_resv_regions: the device's reserved region: ${bad.why}` };
      resv.push({ type: 'ReservedAdded', ctx: ctx.id, ioas: h.hwpt.ioas, start: r.start, last: r.last, owner: `dev:${idev.id}` });
    }
  }
  void st;
  return [
    ...resv,
    { type: 'DeviceAttached', ctx: ctx.id, idev: idev.id, pasid, hwpt: h.id },
    { type: 'ObjectRefTaken', ctx: ctx.id, id: h.id, by: idev.id },
    { type: 'ObjectRefTaken', ctx: ctx.id, id: idev.id, by: 0 },
  ];
}

/** `iommufd_hw_pagetable_detach` + `iommufd_hw_pagetable_put`: an auto domain left with no device is destroyed. */
export function detachEvents(st: State, ctx: IommufdCtx, idev: KObject, pasid: number): DomainEvent[] {
  const hwptId = idev.idev!.attached.get(pasid);
  if (hwptId === undefined) return [];
  const hwpt = ctx.objects.get(hwptId)!;
  const i = ctx.objects.get(hwpt.hwpt!.ioas)?.ioas?.iopt;
  const owner = `dev:${idev.id}`;
  const resv: DomainEvent[] = [];
  if (pasid === IOMMU_NO_PASID && i !== undefined)
    for (const n of i.reserved.inOrder()) if (n.value === owner) resv.push({ type: 'ReservedRemoved', ctx: ctx.id, ioas: hwpt.hwpt!.ioas, start: n.start, last: n.last, owner });
  const events: DomainEvent[] = [
    ...resv,
    ...faultAutoResponseEvents(ctx, hwptId, idev.id, pasid),
    { type: 'DeviceDetached', ctx: ctx.id, idev: idev.id, pasid },
    { type: 'ObjectRefDropped', ctx: ctx.id, id: hwptId, by: idev.id },
    { type: 'ObjectRefDropped', ctx: ctx.id, id: idev.id, by: 0 },
  ];
  if (hwpt.hwpt?.auto && hwpt.users === 2 && !isMutant('auto-domain-leak')) events.push(...hwptPagingDestroyEvents(st, ctx, hwpt), { type: 'ObjectDestroyed', ctx: ctx.id, id: hwptId });
  return events;
}

export interface ChangePt { readonly events: DomainEvent[]; readonly hwpt: number }

/**
 * `iommufd_device_change_pt` in attach mode: to a HWPT directly, or to an IOAS through its auto domains. `ids` is the
 * step's own view of the ID allocator (a new auto domain takes the lowest free ID).
 */
export function attachPt(st: State, h: TraceHeader, ctx: IommufdCtx, idev: KObject, pasid: number, ptId: number, ids: IdAllocator): ChangePt | Failure | { unmodelled: string } {
  const fn = 'device.c iommufd_device_change_pt';
  const pt = getObject(ctx, ptId, 'ANY');
  if (pt === undefined) return { errno: 'ENOENT', why: `${fn}: pt_id ${ptId}: ${lookupWhy(ctx, ptId, 'ANY')}` };
  if (pt.kind === 'HWPT_PAGING' || pt.kind === 'HWPT_NESTED') {
    const ev = attachEvents(st, ctx, idev, pasid, { id: pt.id, hwpt: pt.hwpt! }, st.domains.get(pt.hwpt!.domain)!.dirtyOps);
    // MUTANT hwpt-list-dup (B9, CVE-2023-54043): a leftover path re-adds the HWPT to ioas->hwpt_list.
    if (isMutant('hwpt-list-dup') && pt.kind === 'HWPT_PAGING' && !isFailure(ev)) ev.push({ type: 'HwptInitialized', ctx: ctx.id, id: pt.id, ...pt.hwpt! });
    return isFailure(ev) ? ev : { events: ev, hwpt: pt.id };
  }
  if (pt.kind !== 'IOAS') return { errno: 'EINVAL', why: `${fn}: pt_id ${ptId} is a ${pt.kind}, neither a HWPT nor an IOAS` };
  // iommufd_device_auto_get_domain: reuse an auto domain that takes the device, else make one.
  for (const hid of pt.ioas!.hwpts) {
    const ho = ctx.objects.get(hid);
    if (ho?.hwpt === undefined || !ho.hwpt.auto || getObject(ctx, hid, 'HWPT_PAGING') === undefined) continue;
    const ev = attachEvents(st, ctx, idev, pasid, { id: hid, hwpt: ho.hwpt }, st.domains.get(ho.hwpt.domain)!.dirtyOps);
    if (!isFailure(ev)) return { events: ev, hwpt: hid };
    if (ev.errno !== 'EINVAL') return ev;
  }
  const id = ids.lowestFree();
  if (id === undefined) return { errno: 'EBUSY', why: 'main.c _iommufd_object_alloc: no free id' };
  const ev = hwptPagingAllocEvents(st, h, ctx, idev, pt, id, AUTO_REQUEST, true, pasid);
  if (isFailure(ev)) return ev;
  ids.take(id);
  return { events: ev, hwpt: id };
}

/**
 * `iommufd_device_do_replace`: the whole group moves from its HWPT at `pasid` to `h`; the new HWPT gains a reference
 * per device, the old one loses them, and an auto domain left without devices is destroyed.
 */
export function replaceEvents(st: State, ctx: IommufdCtx, idev: KObject, pasid: number, h: HwptRef, dirtyOps: boolean, scratch = new StepScratch()): DomainEvent[] | Failure {
  const fn = 'device.c iommufd_device_do_replace';
  const d = idev.idev!;
  const g = groupAttachment(ctx, d.group, pasid);
  if (g.hwpt === undefined) return { errno: 'EINVAL', why: `${fn}: the device's group is not attached at pasid ${pasid}` };
  if (!g.devices.includes(idev.id)) return { errno: 'EINVAL', why: `${fn}: device ${idev.id} is not attached at pasid ${pasid}` };
  if (g.hwpt === h.id) return [];
  if (pasid === IOMMU_NO_PASID && !h.hwpt.pasidCompat && [...ctx.objects.values()].some((o) => o.idev?.group === d.group && [...o.idev.attached.keys()].some((p) => p !== 0)))
    return { errno: 'EINVAL', why: `${fn} (iommufd_hwpt_pasid_compat): a PASID is attached, so the RID needs a HWPT allocated with IOMMU_HWPT_ALLOC_PASID` };
  if (pasid !== IOMMU_NO_PASID && !h.hwpt.pasidCompat)
    return { errno: 'EINVAL', why: `${fn} (iommufd_hwpt_pasid_compat): HWPT ${h.id} was not allocated with IOMMU_HWPT_ALLOC_PASID` };
  if (d.mock && dirtyOps && !d.dirtyCapable)
    return { errno: 'EINVAL', why: 'selftest.c mock_domain_attach_dev: a dirty-tracking domain on a MOCK_FLAGS_DEVICE_NO_DIRTY device' };
  const old = ctx.objects.get(g.hwpt)!;
  const events: DomainEvent[] = [];
  for (const dev of g.devices) {
    events.push(
      ...faultAutoResponseEvents(ctx, old.id, dev, pasid),
      { type: 'DeviceDetached', ctx: ctx.id, idev: dev, pasid },
      { type: 'DeviceAttached', ctx: ctx.id, idev: dev, pasid, hwpt: h.id },
      { type: 'ObjectRefTaken', ctx: ctx.id, id: h.id, by: dev },
      { type: 'ObjectRefDropped', ctx: ctx.id, id: old.id, by: dev },
    );
  }
  if (old.hwpt?.auto && old.users - g.devices.length === 1)
    events.push(...hwptPagingDestroyEvents(st, ctx, old, scratch), { type: 'ObjectDestroyed', ctx: ctx.id, id: old.id });
  return events;
}

/** `iommufd_device_change_pt` in replace mode: to a HWPT, or to an IOAS through its auto domains. */
export function replacePt(st: State, h: TraceHeader, ctx: IommufdCtx, idev: KObject, pasid: number, ptId: number, ids: IdAllocator): ChangePt | Failure | { unmodelled: string } {
  const fn = 'device.c iommufd_device_change_pt';
  const pt = getObject(ctx, ptId, 'ANY');
  if (pt === undefined) return { errno: 'ENOENT', why: `${fn}: pt_id ${ptId}: ${lookupWhy(ctx, ptId, 'ANY')}` };
  if (pt.kind === 'HWPT_PAGING' || pt.kind === 'HWPT_NESTED') {
    const ev = replaceEvents(st, ctx, idev, pasid, { id: pt.id, hwpt: pt.hwpt! }, st.domains.get(pt.hwpt!.domain)!.dirtyOps);
    return isFailure(ev) ? ev : { events: ev, hwpt: pt.id };
  }
  if (pt.kind !== 'IOAS') return { errno: 'EINVAL', why: `${fn}: pt_id ${ptId} is a ${pt.kind}, neither a HWPT nor an IOAS` };
  for (const hid of pt.ioas!.hwpts) {
    const ho = ctx.objects.get(hid);
    if (ho?.hwpt === undefined || !ho.hwpt.auto || getObject(ctx, hid, 'HWPT_PAGING') === undefined) continue;
    const ev = replaceEvents(st, ctx, idev, pasid, { id: hid, hwpt: ho.hwpt }, st.domains.get(ho.hwpt.domain)!.dirtyOps);
    if (!isFailure(ev)) return { events: ev, hwpt: hid };
    if (ev.errno !== 'EINVAL') return ev;
  }
  const id = ids.lowestFree();
  if (id === undefined) return { errno: 'EBUSY', why: 'main.c _iommufd_object_alloc: no free id' };
  // Replace mode: the new auto domain is filled first, then the group is moved onto it; one scratch, so the old
  // domain's unfill counts the new domain's fills of pages the two IOASes share.
  const scratch = new StepScratch();
  const alloc = hwptPagingAllocEvents(st, h, ctx, idev, pt, id, AUTO_REQUEST, true, undefined, scratch);
  if (isFailure(alloc)) return alloc;
  const rep = replaceEvents(st, ctx, idev, pasid, { id, hwpt: { ioas: pt.id, domain: st.nextDomain, auto: true, nestParent: false, pasidCompat: false } }, false, scratch);
  if (isFailure(rep)) return rep;
  ids.take(id);
  return { events: [...alloc, ...rep], hwpt: id };
}

/** `iommufd_device_unbind` of a device with no attachment left: the driver's reference goes, then the object. */
export function unbindEvents(ctx: IommufdCtx, idev: KObject): DomainEvent[] {
  return [...vdeviceTombstoneEvents(ctx, idev.id), { type: 'ObjectRefDropped', ctx: ctx.id, id: idev.id, by: 0 }, { type: 'ObjectDestroyed', ctx: ctx.id, id: idev.id }];
}

const IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1;
const IOMMU_HW_INFO_TYPE_DEFAULT = 0, IOMMU_HW_INFO_TYPE_SELFTEST = 0xfeedbeef;
const IOMMU_HW_CAP_DIRTY_TRACKING = 1n, IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = 1n << 3n;
/** `struct iommu_test_hw_info` {flags = 0, test_reg = IOMMU_HW_INFO_SELFTEST_REGVAL}, little endian. */
const MOCK_HW_INFO = Uint8Array.from([0, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde]);

/**
 * `iommufd_get_hw_info`: the driver's info (the mock's 8-byte `iommu_test_hw_info`) copied into the caller's
 * buffer up to its `data_len` (a longer buffer's tail is zeroed), then `data_len` set to the driver's length, the
 * capabilities and the PASID width.
 */
function iommufd_get_hw_info(c: Call, a: Arg): Step {
  const fn = 'device.c iommufd_get_hw_info';
  const flags = u32(a, 'flags');
  if ((flags & ~IOMMU_HW_INFO_FLAG_INPUT_TYPE) !== 0) return fail('EOPNOTSUPP', `${fn}: flags 0x${flags.toString(16)} outside IOMMU_HW_INFO_FLAG_INPUT_TYPE`);
  const r = a.v.__reserved;
  if (r instanceof Uint8Array && r.some((b) => b !== 0)) return fail('EOPNOTSUPP', `${fn}: __reserved[] != 0`);
  const type = (flags & IOMMU_HW_INFO_FLAG_INPUT_TYPE) !== 0 ? u32(a, 'in_data_type') : IOMMU_HW_INFO_TYPE_DEFAULT;
  const id = u32(a, 'dev_id');
  const o = getObject(c.ctx, id, 'DEVICE');
  if (o === undefined) return fail('ENOENT', `${fn}: iommufd_get_device(${id}): ${lookupWhy(c.ctx, id, 'DEVICE')}`);
  const d = o.idev!;
  if (!d.mock) return unmodelled('IOMMU_GET_HW_INFO of a platform IOMMU driver (hw_info)');
  if (type !== IOMMU_HW_INFO_TYPE_DEFAULT && type !== IOMMU_HW_INFO_TYPE_SELFTEST)
    return fail('EOPNOTSUPP', `selftest.c mock_domain_hw_info: requested type 0x${type.toString(16)} is neither DEFAULT nor SELFTEST`);
  const userLen = u32(a, 'data_len');
  const data = new Uint8Array(userLen);
  data.set(MOCK_HW_INFO.subarray(0, Math.min(userLen, MOCK_HW_INFO.length)));
  const copied = copyToUser(c, a.v.data_uptr, data);
  if (copied.fault !== undefined) return fail('EFAULT', `${fn}: ${copied.fault}`, copied.events);
  const caps = (d.dirtyCapable ? IOMMU_HW_CAP_DIRTY_TRACKING : 0n) | IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED;
  return succeed(`${fn}: the mock IOMMU's ${MOCK_HW_INFO.length}-byte iommu_test_hw_info`, respond(a, {
    data_len: BigInt(MOCK_HW_INFO.length), out_data_type: BigInt(IOMMU_HW_INFO_TYPE_SELFTEST), in_data_type: BigInt(IOMMU_HW_INFO_TYPE_SELFTEST),
    out_max_pasid_log2: BigInt(d.pasidBits), out_capabilities: caps,
  }), copied.events);
}

export const DEVICE_HANDLERS: Readonly<Record<string, Handler>> = {
  IOMMU_GET_HW_INFO: iommufd_get_hw_info,
};
