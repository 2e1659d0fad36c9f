/**
 * I/O page faults delivered to user space (drivers/iommu/iommufd/eventq.c `iommufd_fault_iopf_handler`,
 * `iommufd_fault_fops_read`/`_write`, `iommufd_auto_response_faults`; selftest.c `iommufd_test_trigger_iopf`;
 * drivers/iommu/io-pgfault.c `iommu_report_device_fault` → `find_fault_handler`).
 *
 * Theory of operation. A fault on a device is routed to the domain attached at its PASID (for a PASID the device has
 * no attachment at, a driver with `user_pasid_table` — the mock — routes it to the nested domain at the RID). Only a
 * HWPT allocated with a fault object has a handler: the group joins that object's deliver list. `read` of the fault
 * fd copies whole groups (40-byte `iommu_hwpt_pgfault` records, `count` a multiple of 40 or ESPIPE) and files each
 * under a cookie, the lowest free from 1 (`xa_alloc` on an XA_FLAGS_ALLOC1 xarray); `write` of 8-byte
 * `iommu_hwpt_page_response` records answers cookies, each at most once (an unknown cookie is EINVAL). A device
 * leaving the HWPT has its outstanding groups answered by the kernel.
 */
import type { DomainEvent } from '../events/domain.js';
import type { IommufdCtx, KObject } from '../projections/state.js';
import type { IopfGroup } from '../projections/viommu.js';
import { fail, member, succeed, u32, u64, unmodelled, type Arg, type Call, type Kernel, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';
import { veventqRead } from './veventq.js';

const PGFAULT_SIZE = 40, RESPONSE_SIZE = 8, IOMMU_NO_PASID = 0;
const IOMMU_PGFAULT_FLAGS_PASID_VALID = 1, IOMMU_PGFAULT_FLAGS_LAST_PAGE = 2;

/** The fault object a HWPT delivers to, if it was allocated with one. */
export function hwptFault(ctx: IommufdCtx, hwpt: number): KObject | undefined {
  const h = ctx.objects.get(hwpt);
  for (const id of h?.holds ?? []) if (ctx.objects.get(id)?.kind === 'FAULT') return ctx.objects.get(id);
  return undefined;
}

/** `iommufd_auto_response_faults` for `idev` at `pasid` leaving `hwpt`. */
export function faultAutoResponseEvents(ctx: IommufdCtx, hwpt: number, idev: number, pasid: number): DomainEvent[] {
  const f = hwptFault(ctx, hwpt);
  if (f?.fault === undefined) return [];
  const pending = [...f.fault.deliver, ...f.fault.response.values()].some((g) => g.idev === idev && g.pasid === pasid);
  return pending ? [{ type: 'IopfAutoResponded', ctx: ctx.id, fault: f.id, idev, pasid }] : [];
}

/** `iommufd_test_trigger_iopf` → `iommu_report_device_fault`. The ioctl succeeds whether or not anyone handles it. */
export function trigger_iopf(c: Call, a: Arg): Step {
  const fn = 'selftest.c iommufd_test_trigger_iopf';
  const m = member(a, 'trigger_iopf');
  const devId = m ? u32(m, 'dev_id') : 0;
  const idev = getObject(c.ctx, devId, 'DEVICE');
  if (idev === undefined) return fail('ENOENT', `${fn}: ${lookupWhy(c.ctx, devId, 'DEVICE')}`);
  const pasid = m ? u32(m, 'pasid') : 0;
  const d = idev.idev!;
  let hwpt = d.attached.get(pasid);
  if (hwpt === undefined && pasid !== IOMMU_NO_PASID && d.mock) {
    const rid = d.attached.get(IOMMU_NO_PASID);
    if (rid !== undefined && c.ctx.objects.get(rid)?.kind === 'HWPT_NESTED') hwpt = rid;
  }
  const f = hwpt === undefined ? undefined : hwptFault(c.ctx, hwpt);
  if (f === undefined) return succeed(`${fn}: io-pgfault.c find_fault_handler: no fault handler for device ${devId} at pasid ${pasid}; the fault is answered as failed`);
  const group: IopfGroup = {
    idev: devId, pasid, grpid: m ? u32(m, 'grpid') : 0, perm: m ? u32(m, 'perm') : 0, addr: `0x${(m ? u64(m, 'addr') : 0n).toString(16)}`,
    flags: IOMMU_PGFAULT_FLAGS_LAST_PAGE | (pasid !== IOMMU_NO_PASID ? IOMMU_PGFAULT_FLAGS_PASID_VALID : 0),
  };
  return succeed(`${fn}: fault queued on fault object ${f.id} through HWPT ${hwpt}`, undefined, [{ type: 'IopfQueued', ctx: c.ctx.id, fault: f.id, group }]);
}

/** The event queue object behind an fd, or why `read`/`write` cannot reach one. */
export function eventqOfFd(k: Kernel, fd: number): { ctx: IommufdCtx; f: KObject } | Step {
  const file = k.st.fds.get(fd);
  if (file === undefined) return fail('EBADF', `read/write: fd ${fd} is not open`);
  if (file.kind !== 'eventq') return unmodelled(`read/write of a ${file.kind} file`);
  const ctx = k.st.ctxs.get(file.ctx)!;
  return { ctx, f: ctx.objects.get(file.id)! };
}

/** The 40-byte `iommu_hwpt_pgfault` record of `g` (`iommufd_compose_fault_message`). */
function pgfaultRecord(g: IopfGroup, cookie: number): Uint8Array {
  const b = new Uint8Array(PGFAULT_SIZE);
  const v = new DataView(b.buffer);
  [g.flags, g.idev, g.pasid, g.grpid, g.perm, 0].forEach((x, i) => v.setUint32(i * 4, x, true));
  v.setBigUint64(24, BigInt(g.addr), true);
  v.setUint32(32, 0, true);
  v.setUint32(36, cookie, true);
  return b;
}

/** `iommufd_fault_fops_read`: whole groups while they fit; never blocks (an empty queue reads 0 bytes). */
export function sys_read(k: Kernel, fd: number, count: bigint): Step {
  const r = eventqOfFd(k, fd);
  if (!('f' in r)) return r;
  if (r.f.veventq !== undefined) return veventqRead(r.ctx, r.f, count);
  const fn = 'eventq.c iommufd_fault_fops_read';
  if (count % BigInt(PGFAULT_SIZE) !== 0n) return fail('ESPIPE', `${fn}: count ${count} is not a multiple of sizeof(struct iommu_hwpt_pgfault) = ${PGFAULT_SIZE}`);
  const q = r.f.fault;
  const taken = new Set(q?.response.keys() ?? []);
  const events: DomainEvent[] = [];
  const bytes: Uint8Array[] = [];
  for (const g of q?.deliver ?? []) {
    if (BigInt((bytes.length + 1) * PGFAULT_SIZE) > count) break;
    let cookie = 1;
    while (taken.has(cookie)) cookie++;
    taken.add(cookie);
    events.push({ type: 'IopfDelivered', ctx: r.ctx.id, fault: r.f.id, cookie });
    bytes.push(pgfaultRecord(g, cookie));
  }
  const data = Buffer.concat(bytes);
  return succeed(`${fn}: ${bytes.length} fault group(s) of fault object ${r.f.id}`, { data: new Uint8Array(data) }, events, BigInt(data.length));
}

/** `iommufd_fault_fops_write`: responses in order; the first unknown cookie stops the write. */
export function sys_write(k: Kernel, fd: number, data: Uint8Array): Step {
  const r = eventqOfFd(k, fd);
  if (!('f' in r)) return r;
  if (r.f.veventq !== undefined) return fail('EINVAL', 'fs/read_write.c vfs_write: iommufd_veventq_fops has no write (no FMODE_CAN_WRITE)');
  const fn = 'eventq.c iommufd_fault_fops_write';
  if (data.length % RESPONSE_SIZE !== 0) return fail('ESPIPE', `${fn}: ${data.length} bytes is not a multiple of sizeof(struct iommu_hwpt_page_response) = ${RESPONSE_SIZE}`);
  const open = new Set(r.f.fault?.response.keys() ?? []);
  const events: DomainEvent[] = [];
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let off = 0; off < data.length; off += RESPONSE_SIZE) {
    const cookie = v.getUint32(off, true);
    if (!open.delete(cookie)) {
      const why = `${fn}: cookie ${cookie} is not awaiting a response (xa_erase finds nothing)`;
      return off === 0 ? fail('EINVAL', why) : succeed(`${why}; ${off} byte(s) were taken`, undefined, events, BigInt(off));
    }
    events.push({ type: 'IopfResponded', ctx: r.ctx.id, fault: r.f.id, cookie });
  }
  return succeed(`${fn}: ${events.length} response(s)`, undefined, events, BigInt(data.length));
}
