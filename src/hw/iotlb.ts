/**
 * The IOTLB of an IOMMU domain: translations a device's DMA walked are cached, and stay cached — even after the page
 * table entry is gone — until the IOMMU is told to flush them (`iommu_iotlb_sync`, which `iommu_unmap` does after
 * clearing the entries). That ordering is the kernel's contract: unmap from the domain, flush the IOTLB, only then
 * unpin the pages. A cached entry that outlives its page table entry lets a device reach memory nobody pins any more.
 */
import type { DomainEvent } from '../events/domain.js';
import type { HwDomain } from './domain.js';
import { IntervalTree } from './interval_tree.js';

export interface IotlbEntry { readonly phys: bigint; readonly prot: number }
export type IotlbEvent = Extract<DomainEvent, { type: 'IotlbFilled' | 'IotlbFlushed' }>;

export const newIotlb = (): IntervalTree<IotlbEntry> => new IntervalTree();

export function iotlbEvolve(d: HwDomain, ev: IotlbEvent): void {
  if (ev.type === 'IotlbFilled') {
    if (d.iotlb.iterFirst(ev.iova, ev.last) !== undefined) throw new Error(`IOTLB of domain ${d.id} already caches [${ev.iova}, ${ev.last}]`);
    d.iotlb.insert(ev.iova, ev.last, { phys: ev.phys, prot: ev.prot });
    return;
  }
  for (const n of [...d.iotlb.intersecting(ev.iova, ev.last)]) d.iotlb.remove(n);
}

/** The cached translation of `iova`, if any. */
export function iotlbLookup(d: HwDomain, iova: bigint): { phys: bigint; prot: number } | undefined {
  const n = d.iotlb.iterFirst(iova, iova);
  return n === undefined ? undefined : { phys: n.value.phys + (iova - n.start), prot: n.value.prot };
}

/** The flush that follows an unmap of [iova, last] from `domain`: only emitted when something is cached there. */
export function flushEvents(d: HwDomain | undefined, iova: bigint, last: bigint): DomainEvent[] {
  return d !== undefined && d.iotlb.iterFirst(iova, last) !== undefined ? [{ type: 'IotlbFlushed', domain: d.id, iova, last }] : [];
}

export function cloneIotlb(t: IntervalTree<IotlbEntry>): IntervalTree<IotlbEntry> {
  const c = newIotlb();
  for (const n of t.inOrder()) c.insert(n.start, n.last, n.value);
  return c;
}
