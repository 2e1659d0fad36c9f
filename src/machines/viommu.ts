/**
 * vIOMMU family (drivers/iommu/iommufd/viommu.c, with the selftest driver's ops in selftest.c): IOMMU_VIOMMU_ALLOC
 * (`iommufd_viommu_alloc_ioctl`, `mock_viommu_init`), IOMMU_VDEVICE_ALLOC (`iommufd_vdevice_alloc_ioctl`),
 * IOMMU_HW_QUEUE_ALLOC (`iommufd_hw_queue_alloc_ioctl`, `mock_hw_queue_init_phys`) and the destroy ops of these
 * objects (vEVENTQs are in veventq.ts, fault queues in eventq.ts).
 *
 * Theory of operation. A vIOMMU stands for one physical IOMMU instance seen by one VM: it holds its nesting parent
 * HWPT (which must be NEST_PARENT), so the parent cannot be destroyed while it lives. vDEVICEs (a device's virtual
 * ID behind the vIOMMU) hold the vIOMMU; when their device is unbound they are tombstoned (`iommufd_vdevice_abort`
 * via `iommufd_device_pre_destroy`): gone, but their ID stays taken until the context is released. A HW queue pins
 * its guest memory through an internal access on the parent's IOAS (`iommufd_hw_queue_alloc_phys`: the pages must be
 * physically contiguous, the HW reads them by address), which makes IOAS_UNMAP of that memory EBUSY; the mock driver requires queues to be made in index order and each holds the one
 * before it (`iommufd_hw_queue_depend`). With driver data the mock vIOMMU exposes two zeroed pages through an
 * mmap cookie (hw/mmap_cookie.ts), their first u32 set to `in_data`.
 */
import type { DomainEvent } from '../events/domain.js';
import { isFailure } from '../hw/iopt_ops.js';
import { cookieAllocEvents, cookieDestroyEvents } from '../hw/mmap_cookie.js';
import { U64_MAX } from '../events/values.js';
import { cloneState, evolve, type IommufdCtx, type KObject, type State } from '../projections/state.js';
import { fail, respond, succeed, u32, u64, unmodelled, type Arg, type Call, type Handler, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';
import { accessAttachEvents, accessDetachEvents, accessPinEvents, accessUnpinEvents } from './access.js';
import { iommufd_fault_alloc } from './eventq.js';
import { iommufd_veventq_alloc } from './veventq.js';
import { userData } from './user_data.js';

export const IOMMU_VIOMMU_TYPE_SELFTEST = 0xdeadbeef, IOMMU_HW_QUEUE_TYPE_SELFTEST = 0xdeadbeef;
const IOMMU_TEST_HW_QUEUE_MAX = 2;
/** `struct iommu_viommu_selftest` {in_data u32, out_data u32, out_mmap_offset u64, out_mmap_length u64}. */
const VIOMMU_SELFTEST_MIN = 8, VIOMMU_SELFTEST_SIZE = 24;

function iommufd_viommu_alloc_ioctl(c: Call, a: Arg): Step {
  const fn = 'viommu.c iommufd_viommu_alloc_ioctl';
  const type = u32(a, 'type');
  if (u32(a, 'flags') !== 0 || type === 0) return fail('EOPNOTSUPP', `${fn}: flags != 0 or type DEFAULT`);
  const devId = u32(a, 'dev_id');
  const idev = getObject(c.ctx, devId, 'DEVICE');
  if (idev === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, devId, 'DEVICE')}`);
  if (!idev.idev!.mock) return unmodelled('IOMMU_VIOMMU_ALLOC on a platform IOMMU');
  if (type !== IOMMU_VIOMMU_TYPE_SELFTEST) return fail('EOPNOTSUPP', `${fn}: selftest.c mock_get_viommu_size answers 0 for type 0x${type.toString(16)}`);
  const hwptId = u32(a, 'hwpt_id');
  const hwpt = getObject(c.ctx, hwptId, 'HWPT_PAGING');
  if (hwpt === undefined) return fail('ENOENT', `${fn}: iommufd_get_hwpt_paging: ${lookupWhy(c.ctx, hwptId, 'HWPT_PAGING')}`);
  if (!hwpt.hwpt!.nestParent) return fail('EINVAL', `${fn}: HWPT ${hwptId} was not allocated with IOMMU_HWPT_ALLOC_NEST_PARENT`);
  const id = c.ctx.ids.lowestFree();
  if (id === undefined) return fail('EBUSY', 'main.c _iommufd_object_alloc: no free id');
  const ctx = c.ctx.id;
  const events: DomainEvent[] = [
    { type: 'ObjectAllocated', ctx, id, kind: 'VIOMMU' },
    { type: 'ObjectRefTaken', ctx, id: hwptId, by: id },
    { type: 'ViommuInitialized', ctx, id, hwpt: hwptId, idev: devId, viommuType: type },
  ];
  const len = u32(a, 'data_len');
  let out: Record<string, bigint> | undefined;
  if (len !== 0) {
    const ifn = 'selftest.c mock_viommu_init: iommu_copy_struct_from_user';
    const d = userData(a, 'data_uptr', len, VIOMMU_SELFTEST_MIN, VIOMMU_SELFTEST_SIZE, ifn);
    if ('errno' in d) return fail(d.errno, d.why);
    if ('unmodelled' in d) return unmodelled(d.unmodelled);
    const inData = d.u32(0, 'in_data');
    const page = new Uint8Array(4);
    new DataView(page.buffer).setUint32(0, inData, true);
    const ck = cookieAllocEvents(c.k.st, c.ctx, id, BigInt(2 * c.k.st.pageSize), page);
    if (isFailure(ck)) return fail(ck.errno, ck.why);
    events.push(...ck.events);
    out = { out_data: BigInt(inData) };
    if (len >= VIOMMU_SELFTEST_SIZE) Object.assign(out, { out_mmap_offset: ck.offset, out_mmap_length: BigInt(2 * c.k.st.pageSize) });
  }
  events.push({ type: 'ObjectFinalized', ctx, id });
  return succeed(`${fn}: vIOMMU ${id} on nesting parent HWPT ${hwptId}`, respond(a, { out_viommu_id: BigInt(id), ...(out ? { data_uptr: out } : {}) }), events);
}

/** `iommufd_viommu_destroy` (and `mock_viommu_destroy`): its mmap cookie goes; the parent's reference is a hold. */
export function viommuDestroyEvents(st: State, ctx: IommufdCtx, o: KObject): DomainEvent[] {
  return cookieDestroyEvents(st, ctx, o.id);
}

function iommufd_vdevice_alloc_ioctl(c: Call, a: Arg): Step {
  const fn = 'viommu.c iommufd_vdevice_alloc_ioctl';
  const virtId = u64(a, 'virt_id');
  const v = u32(a, 'viommu_id');
  const viommu = getObject(c.ctx, v, 'VIOMMU');
  if (viommu === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, v, 'VIOMMU')}`);
  const dev = u32(a, 'dev_id');
  const idev = getObject(c.ctx, dev, 'DEVICE');
  if (idev === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, dev, 'DEVICE')}`);
  if (!idev.idev!.mock) return fail('EINVAL', `${fn}: device ${dev} sits behind another IOMMU instance than vIOMMU ${v}`);
  const vdevs = [...c.ctx.objects.values()].filter((o) => o.vdev !== undefined && o.life === 1);
  if (vdevs.some((o) => o.vdev!.idev === dev)) return fail('EEXIST', `${fn}: device ${dev} already has a vDEVICE (idev->vdev)`);
  const id = c.ctx.ids.lowestFree();
  if (id === undefined) return fail('EBUSY', 'main.c _iommufd_object_alloc: no free id');
  if (vdevs.some((o) => o.vdev!.viommu === v && o.vdev!.virtId === virtId))
    return fail('EEXIST', `${fn}: xa_cmpxchg: virt_id 0x${virtId.toString(16)} is taken in vIOMMU ${v}`);
  const ctx = c.ctx.id;
  return succeed(`${fn}: vDEVICE ${id} (virt_id 0x${virtId.toString(16)}) of device ${dev} on vIOMMU ${v}`, respond(a, { out_vdevice_id: BigInt(id) }), [
    { type: 'ObjectAllocated', ctx, id, kind: 'VDEVICE' },
    { type: 'ObjectRefTaken', ctx, id: v, by: id },
    { type: 'ObjectRefTaken', ctx, id: dev, by: id },
    { type: 'VdeviceInitialized', ctx, id, viommu: v, idev: dev, virtId },
    { type: 'ObjectFinalized', ctx, id },
  ]);
}

/** `iommufd_device_remove_vdev` (from `iommufd_device_pre_destroy`): the device's vDEVICE is tombstoned. */
export function vdeviceTombstoneEvents(ctx: IommufdCtx, idev: number): DomainEvent[] {
  const out: DomainEvent[] = [];
  for (const o of ctx.objects.values()) {
    if (o.vdev?.idev !== idev || o.life !== 1) continue;
    out.push(...o.holds.map((h): DomainEvent => ({ type: 'ObjectRefDropped', ctx: ctx.id, id: h, by: o.id })), { type: 'ObjectTombstoned', ctx: ctx.id, id: o.id });
  }
  return out;
}

function iommufd_hw_queue_alloc_ioctl(c: Call, a: Arg): Step {
  const fn = 'viommu.c iommufd_hw_queue_alloc_ioctl';
  const type = u32(a, 'type');
  if (u32(a, 'flags') !== 0 || type === 0) return fail('EOPNOTSUPP', `${fn}: flags != 0 or type DEFAULT`);
  const len = u64(a, 'length');
  if (len === 0n) return fail('EINVAL', `${fn}: length 0`);
  const base = u64(a, 'nesting_parent_iova');
  if (base + len - 1n > U64_MAX) return fail('EOVERFLOW', `${fn}: nesting_parent_iova + length - 1 overflows`);
  const v = u32(a, 'viommu_id');
  const viommu = getObject(c.ctx, v, 'VIOMMU');
  if (viommu === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, v, 'VIOMMU')}`);
  if (type !== IOMMU_HW_QUEUE_TYPE_SELFTEST) return fail('EOPNOTSUPP', `${fn}: selftest.c mock_get_hw_queue_size answers 0 for type 0x${type.toString(16)}`);
  const id = c.ctx.ids.lowestFree();
  if (id === undefined) return fail('EBUSY', 'main.c _iommufd_object_alloc: no free id');
  // iommufd_hw_queue_alloc_phys: an internal access on the parent's IOAS pins the whole pages of the queue.
  const page = BigInt(c.k.st.pageSize);
  const aligned = base - (base % page);
  if (base - aligned + len + page - 1n > U64_MAX) return fail('ERANGE', `viommu.c iommufd_hw_queue_alloc_phys: offset 0x${(base - aligned).toString(16)} + length, rounded up to a page, overflows`);
  const pinLen = ((base - aligned + len + page - 1n) / page) * page;
  const ioas = c.ctx.objects.get(c.ctx.objects.get(viommu.viommu!.hwpt)!.hwpt!.ioas)!;
  const ctx = c.ctx.id;
  const obj: KObject = { id, kind: 'HW_QUEUE', life: 0, users: 1, holds: [], ioas: undefined, access: { ioas: 0, needsPinPages: true, items: new Map(), nextItem: 0 } };
  const att = accessAttachEvents(c.k.st, c.ctx, obj, ioas);
  if (isFailure(att)) return fail(att.errno, att.why);
  const made: DomainEvent[] = [{ type: 'ObjectAllocated', ctx, id, kind: 'HW_QUEUE' }, { type: 'AccessInitialized', ctx, id, needsPinPages: true }, ...att];
  // The pin reads the access as attached: decide it against a state that has the events above.
  const scratch = cloneState(c.k.st);
  for (const e of made) evolve(scratch, e);
  const sctx = scratch.ctxs.get(ctx)!;
  const pin = accessPinEvents(scratch, c.k.header, sctx, sctx.objects.get(id)!, aligned, pinLen, 0);
  if (isFailure(pin)) return fail(pin.errno, `${fn}: iommufd_access_pin_pages: ${pin.why}`);
  // The HW reads the queue by physical address: its pinned pages must be physically contiguous.
  for (const e of pin) evolve(scratch, e);
  const gap = firstFrameGap(scratch, pin);
  if (gap !== undefined) return fail('EFAULT', `viommu.c iommufd_hw_queue_alloc_phys: the queue's pinned pages are not physically contiguous (${gap})`);
  const index = u32(a, 'index');
  const mfn = 'selftest.c mock_hw_queue_init_phys';
  if (index >= IOMMU_TEST_HW_QUEUE_MAX) return fail('EINVAL', `${mfn}: index ${index} >= IOMMU_TEST_HW_QUEUE_MAX`);
  const queues = [...c.ctx.objects.values()].filter((o) => o.hwq?.viommu === v);
  if (queues.some((o) => o.hwq!.index === index)) return fail('EEXIST', `${mfn}: vIOMMU ${v} already has queue ${index}`);
  const prev = index > 0 ? queues.find((o) => o.hwq!.index === index - 1) : undefined;
  if (index > 0 && prev === undefined) return fail('EIO', `${mfn}: queue ${index - 1} must exist before queue ${index}`);
  return succeed(`${fn}: HW queue ${id} (index ${index}) pins [0x${aligned.toString(16)}, +0x${pinLen.toString(16)}) of IOAS ${ioas.id}`, respond(a, { out_hw_queue_id: BigInt(id) }), [
    ...made, ...pin,
    { type: 'ObjectRefTaken', ctx, id: v, by: id },
    ...(prev ? [{ type: 'ObjectRefTaken', ctx, id: prev.id, by: id } as const] : []),
    { type: 'HwQueueInitialized', ctx, id, viommu: v, index, base, length: len },
    { type: 'ObjectFinalized', ctx, id },
  ]);
}

/** Where the frames an access pin holds (its AccessPinned pieces, in IOVA order) stop being consecutive, if they do. */
function firstFrameGap(st: State, pin: readonly DomainEvent[]): string | undefined {
  let next: number | undefined;
  for (const e of pin) {
    if (e.type !== 'AccessPinned') continue;
    for (const piece of e.pieces) {
      for (const r of st.pages.get(piece.pages)!.frames.runs(piece.start, piece.last)) {
        if (next !== undefined && r.value !== next) return `page ${r.start} of iopt_pages ${piece.pages} is frame 0x${r.value.toString(16)}, not 0x${next.toString(16)}`;
        next = r.value + (r.last - r.start + 1);
      }
    }
  }
  return undefined;
}

/** `iommufd_hw_queue_destroy` → `iommufd_hw_queue_destroy_access`: unpin, then leave the IOAS. */
export function hwQueueDestroyEvents(st: State, ctx: IommufdCtx, o: KObject): DomainEvent[] {
  return [...[...o.access!.items.keys()].flatMap((item) => accessUnpinEvents(st, ctx, o, item)), ...accessDetachEvents(st, ctx, o)];
}

export const VIOMMU_HANDLERS: Readonly<Record<string, Handler>> = {
  IOMMU_FAULT_QUEUE_ALLOC: iommufd_fault_alloc,
  IOMMU_VIOMMU_ALLOC: iommufd_viommu_alloc_ioctl,
  IOMMU_VDEVICE_ALLOC: iommufd_vdevice_alloc_ioctl,
  IOMMU_VEVENTQ_ALLOC: iommufd_veventq_alloc,
  IOMMU_HW_QUEUE_ALLOC: iommufd_hw_queue_alloc_ioctl,
};
