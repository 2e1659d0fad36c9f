/**
 * Device DMA through the IOMMU (the trace's `dma` op): the device's attachment at the PASID gives the domain; each
 * IOMMU page of the access is translated by the IOTLB first and, on a miss, by the domain's page table (and the
 * translation is then cached). No translation, or one without the needed permission, is an IO page fault: the DMA
 * fails with EFAULT. A write stores the bytes into the physical pages and marks the IOPTEs dirty when the domain
 * tracks dirty pages; a read returns what the physical pages hold.
 *
 * What the model does not know is which pages a device may still reach: a translation cached in an IOTLB survives
 * the unmap until the flush, which is exactly the hazard the kernel's unmap order (unmap, flush, unpin) prevents.
 */
import type { DomainEvent } from '../events/domain.js';
import { minPageSize, type HwDomain } from '../hw/domain.js';
import { markDirtyEvents } from '../hw/dirty.js';
import { IOMMU_READ, IOMMU_WRITE, areaIterFirst } from '../hw/io_pagetable.js';
import { iotlbLookup } from '../hw/iotlb.js';
import { frameBytes, frameWriteEvents } from '../hw/pages_rw.js';
import type { IommufdCtx, KObject, State } from '../projections/state.js';
import { fail, succeed, unmodelled, type Kernel, type Step } from './ioctl.js';
import { containerOf, vfio_find_dma } from '../hw/vfio_dma.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** The device a trace's `dma` names: a VFIO device path, or the id of a mock device's selftest object or DEVICE. */
function deviceOf(st: State, dev: string | bigint): { ctx: IommufdCtx; idev: KObject } | undefined {
  if (typeof dev === 'string') {
    for (const [fd, b] of st.vfioBinds) {
      const f = st.fds.get(fd);
      if (f?.kind === 'vfio_device' && f.path === dev) {
        const ctx = st.ctxs.get(b.ctx)!;
        return { ctx, idev: ctx.objects.get(b.idev)! };
      }
    }
    return undefined;
  }
  for (const ctx of st.ctxs.values()) {
    const o = ctx.objects.get(Number(dev));
    if (o?.stdev !== undefined) return { ctx, idev: ctx.objects.get(o.stdev.idev)! };
    if (o?.idev !== undefined) return { ctx, idev: o };
  }
  return undefined;
}

export interface DmaArgs {
  readonly dev: string | bigint;
  readonly pasid: bigint;
  readonly iova: bigint;
  readonly length: bigint;
  readonly write: boolean;
  readonly data: Uint8Array | undefined;
}

/**
 * The domain a device's DMA translates through and the IOMMU prot of each IOVA: the IOAS areas of the HWPT the
 * device is attached to (iommufd), or the vfio_dmas of the legacy container its group is in (type1).
 */
function translatorOf(k: Kernel, a: DmaArgs): { d: HwDomain; protAt: (iova: bigint) => number | undefined } | { done: Step } {
  const st = k.st;
  const name = typeof a.dev === 'string' ? a.dev : `device ${a.dev}`;
  const d0 = deviceOf(st, a.dev);
  if (d0 === undefined) {
    const group = typeof a.dev === 'string' ? k.header.devices.find((h) => h.path === a.dev)?.group : undefined;
    const c = group === undefined ? undefined : containerOf(st.containers, group);
    if (c === undefined) return { done: unmodelled(`DMA by ${name}, which is not a bound device`) };
    const i = c.iommu;
    if (i?.domain === undefined || !i.domainGroups.includes(group!))
      return { done: fail('EFAULT', `group ${group} is in container ${c.id} but attached to no type1 domain (no SET_IOMMU): its DMA is blocked`, [
        { type: 'IoPageFault', dev: name, domain: 0, iova: a.iova, write: a.write, reason: 'no domain' },
      ]) };
    return { d: st.domains.get(i.domain)!, protAt: (x) => vfio_find_dma(i, x, x)?.prot };
  }
  const hwptId = d0.idev.idev!.attached.get(Number(a.pasid));
  const hw = hwptId === undefined ? undefined : d0.ctx.objects.get(hwptId)?.hwpt;
  if (hw === undefined) {
    if (hwptId !== undefined) return { done: unmodelled(`DMA through a nested HWPT`) };
    return { done: fail('EFAULT', `the device is attached to no domain at pasid ${a.pasid}: it sits in the blocked domain`, [
      { type: 'IoPageFault', dev: name, domain: 0, iova: a.iova, write: a.write, reason: 'blocked domain' },
    ]) };
  }
  const iopt = d0.ctx.objects.get(hw.ioas)!.ioas!.iopt;
  return { d: st.domains.get(hw.domain)!, protAt: (x) => areaIterFirst(iopt, x, x)?.prot };
}

export function sys_dma(k: Kernel, a: DmaArgs): Step {
  const st = k.st;
  const name = typeof a.dev === 'string' ? a.dev : `device ${a.dev}`;
  if (a.length === 0n) return succeed(`${name}: an empty DMA does nothing`);
  if (a.length > 1n << 24n) return unmodelled(`a DMA of ${a.length} bytes`);
  if (a.write && (a.data === undefined || BigInt(a.data.length) !== a.length)) return unmodelled('a DMA write whose data the trace does not give in full');
  const t = translatorOf(k, a);
  if ('done' in t) return t.done;
  const d = t.d;
  const ps = minPageSize(d);
  const events: DomainEvent[] = [];
  const pieces: { iova: bigint; last: bigint; phys: bigint; fromIotlb: boolean }[] = [];
  const need = a.write ? IOMMU_WRITE : IOMMU_READ;
  const end = a.iova + a.length - 1n;
  for (let x = a.iova; x <= end;) {
    const pageStart = x - (x % ps), pageLast = pageStart + ps - 1n;
    const to = pageLast < end ? pageLast : end;
    let hit = iotlbLookup(d, x);
    const fromIotlb = hit !== undefined;
    if (hit === undefined) {
      const n = d.map.iterFirst(x, x);
      const prot = t.protAt(x);
      if (n === undefined || prot === undefined) {
        const why = `no IOPTE translates IOVA ${hex(x)} in domain ${d.id}`;
        return fail('EFAULT', `IO page fault: ${why}`, [...events, { type: 'IoPageFault', dev: name, domain: d.id, iova: x, write: a.write, reason: why }]);
      }
      const physStart = n.value + (pageStart - n.start);
      hit = { phys: n.value + (x - n.start), prot };
      events.push({ type: 'IotlbFilled', domain: d.id, iova: pageStart, last: pageLast, phys: physStart, prot });
    }
    if ((hit.prot & need) === 0) {
      const why = `IOVA ${hex(x)} is mapped without ${a.write ? 'IOMMU_WRITE' : 'IOMMU_READ'}`;
      return fail('EFAULT', `IO page fault: ${why}`, [...events, { type: 'IoPageFault', dev: name, domain: d.id, iova: x, write: a.write, reason: why }]);
    }
    pieces.push({ iova: x, last: to, phys: hit.phys, fromIotlb });
    x = to + 1n;
  }
  events.push({ type: 'DmaCompleted', dev: name, domain: d.id, iova: a.iova, length: a.length, write: a.write, pieces });
  if (a.write) {
    for (const p of pieces) events.push(...frameWriteEvents(st, p.phys, a.data!.subarray(Number(p.iova - a.iova), Number(p.last - a.iova) + 1)));
    events.push(...markDirtyEvents(st, d.id, a.iova, a.length));
    return succeed(`${name} wrote ${a.length} byte(s) at IOVA ${hex(a.iova)} through domain ${d.id}`, undefined, events);
  }
  const data = new Uint8Array(Number(a.length));
  for (const p of pieces) data.set(frameBytes(st, p.phys, Number(p.last - p.iova) + 1), Number(p.iova - a.iova));
  return succeed(`${name} read ${a.length} byte(s) at IOVA ${hex(a.iova)} through domain ${d.id}`, { data }, events);
}
