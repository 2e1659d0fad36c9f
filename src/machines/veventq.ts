/**
 * vEVENT queues (drivers/iommu/iommufd/eventq.c `iommufd_veventq_alloc`, `iommufd_veventq_fops_read`,
 * driver.c `iommufd_viommu_report_event`, `iommufd_vevent_handler`; selftest.c `iommufd_test_trigger_vevent`).
 *
 * Theory of operation. A vIOMMU has at most one queue per type; its fd (like a fault queue's) holds the queue and
 * the context. Each report gets the queue's next sequence number (wrapping at INT_MAX). A full queue (`depth` real
 * events) does not grow: the report is recorded by the lost-events header instead, which carries the sequence
 * number the lost event would have had and sits at the tail; a later report that finds it at the tail takes it out
 * first, so user space sees a gap in the sequence, or the header, never two headers. `read` copies whole entries
 * (an 8-byte `iommufd_vevent_header`, then the event data) while they fit, and never blocks.
 */
import type { DomainEvent } from '../events/domain.js';
import type { IommufdCtx, KObject } from '../projections/state.js';
import { fail, member, respond, succeed, u32, type Arg, type Call, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';
import { pickFd } from './process.js';

export const IOMMU_VEVENTQ_TYPE_SELFTEST = 0xbeefbeef;
const IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1, HEADER_SIZE = 8;

/** `iommufd_veventq_alloc`. */
export function iommufd_veventq_alloc(c: Call, a: Arg): Step {
  const fn = 'eventq.c iommufd_veventq_alloc';
  const type = u32(a, 'type');
  if (u32(a, 'flags') !== 0 || u32(a, '__reserved') !== 0 || type === 0)
    return fail('EOPNOTSUPP', `${fn}: flags or __reserved != 0, or type DEFAULT`);
  const depth = u32(a, 'veventq_depth');
  if (depth === 0) return fail('EINVAL', `${fn}: veventq_depth 0`);
  const v = u32(a, 'viommu_id');
  if (getObject(c.ctx, v, 'VIOMMU') === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, v, 'VIOMMU')}`);
  if (findVeventq(c.ctx, v, type) !== undefined) return fail('EEXIST', `${fn}: vIOMMU ${v} already has a vEVENTQ of type 0x${type.toString(16)}`);
  const id = c.ctx.ids.lowestFree();
  if (id === undefined) return fail('EBUSY', 'main.c _iommufd_object_alloc: no free id');
  const fd = pickFd(c.k.st, undefined);
  const ctx = c.ctx.id;
  return succeed(`${fn}: vEVENTQ ${id} of depth ${depth} on vIOMMU ${v}, fd ${fd}`, respond(a, { out_veventq_id: BigInt(id), out_veventq_fd: BigInt(fd) }), [
    { type: 'ObjectAllocated', ctx, id, kind: 'VEVENTQ' },
    { type: 'ObjectRefTaken', ctx, id: v, by: id },
    { type: 'VeventqInitialized', ctx, id, viommu: v, veventqType: type, depth },
    { type: 'ObjectRefTaken', ctx, id, by: 0 },
    { type: 'CtxRefTaken', ctx },
    { type: 'ObjectFinalized', ctx, id },
    { type: 'FdInstalled', fd, file: { kind: 'eventq', ctx, id } },
  ]);
}

function findVeventq(ctx: IommufdCtx, viommu: number, type: number): KObject | undefined {
  for (const o of ctx.objects.values()) if (o.veventq?.viommu === viommu && o.veventq.veventqType === type && o.life === 1) return o;
  return undefined;
}

/** The event of `iommufd_viommu_report_event` on queue `q`: a real vEVENT, or the lost-events header if full. */
export function reportEvents(ctx: IommufdCtx, q: KObject, data: Uint8Array): DomainEvent[] {
  const d = q.veventq!;
  const lost = d.numEvents === d.depth;
  return [{ type: 'VeventReported', ctx: ctx.id, id: q.id, lost, data: lost ? '' : Buffer.from(data).toString('hex') }];
}

/** `iommufd_test_trigger_vevent`: a vEVENT carrying the mock device's virtual ID. */
export function trigger_vevent(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_trigger_vevent';
  const m = member(a, 'trigger_vevent');
  const devId = m ? u32(m, 'dev_id') : 0;
  if (getObject(c.ctx, devId, 'DEVICE') === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, devId, 'DEVICE')}`);
  const vdev = [...c.ctx.objects.values()].find((o) => o.vdev?.idev === devId && o.life === 1);
  if (vdev === undefined || vdev.vdev!.virtId === 0n) return fail('ENOENT', `${fn}: device ${devId} has no vDEVICE with a non-zero virt_id (mdev->vdev_id)`);
  const q = findVeventq(c.ctx, vdev.vdev!.viommu, IOMMU_VEVENTQ_TYPE_SELFTEST);
  if (q === undefined) return fail('EOPNOTSUPP', `driver.c iommufd_viommu_report_event: vIOMMU ${vdev.vdev!.viommu} has no vEVENTQ of type SELFTEST`);
  const data = new Uint8Array(4);
  new DataView(data.buffer).setUint32(0, Number(vdev.vdev!.virtId & 0xffff_ffffn), true);
  const ev = reportEvents(c.ctx, q, data);
  return succeed(`${fn}: ${ev.some((e) => e.type === 'VeventReported' && e.lost) ? 'queue full, the lost-events header records it' : 'vEVENT queued'} on vEVENTQ ${q.id}`, undefined, ev);
}

/** `iommufd_veventq_fops_read`: whole entries while they fit in `count`. */
export function veventqRead(ctx: IommufdCtx, q: KObject, count: bigint): Step {
  const fn = 'eventq.c iommufd_veventq_fops_read';
  const out: Uint8Array[] = [];
  let done = 0n, n = 0;
  for (const e of q.veventq!.deliver) {
    const data = Buffer.from(e.data, 'hex');
    if (done >= count || BigInt(HEADER_SIZE) > count - done) break;
    if (!e.lost && BigInt(HEADER_SIZE + data.length) > count - done) break;
    const h = new Uint8Array(HEADER_SIZE);
    const v = new DataView(h.buffer);
    v.setUint32(0, e.lost ? IOMMU_VEVENTQ_FLAG_LOST_EVENTS : 0, true);
    v.setUint32(4, e.sequence, true);
    out.push(h, data);
    done += BigInt(HEADER_SIZE + data.length);
    n++;
  }
  const events: DomainEvent[] = n > 0 ? [{ type: 'VeventsRead', ctx: ctx.id, id: q.id, count: n }] : [];
  return succeed(`${fn}: ${n} entr${n === 1 ? 'y' : 'ies'} of vEVENTQ ${q.id}`, { data: new Uint8Array(Buffer.concat(out)) }, events, done);
}
