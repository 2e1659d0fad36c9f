/**
 * IOMMU domains: the hardware page tables devices translate through (include/linux/iommu.h `iommu_domain`, and
 * the selftest's mock driver, drivers/iommu/iommufd/selftest.c). A paging domain maps IOVA → physical address in
 * runs; an IOVA outside every run faults. The physical address of a page is `frame * PAGE_SIZE + offset`, the
 * frame being the one the mm model pinned for it (src/hw/mm.ts), so a stale mapping still points at the frame it
 * pinned, whatever the process maps at that VA now.
 *
 * Mock paging domains (selftest.c `mock_domain_alloc_paging_flags`): 2 KiB pages and the aperture
 * [16 MiB, 2 GiB - 1] by default; the HUGE page-table type has 1 MiB | PAGE_SIZE pages and no aperture override.
 */
import type { DomainEvent } from '../events/domain.js';
import { IntervalTree } from './interval_tree.js';
import { U64_MAX } from './u64.js';
import { cloneIotlb, newIotlb, type IotlbEntry } from './iotlb.js';

export const MOCK_APERTURE_START = 1n << 24n;
export const MOCK_APERTURE_LAST = (1n << 31n) - 1n;
export const MOCK_PAGE_SIZE = 2048n;
export const MOCK_HUGE_PAGE_SIZE = 512n * MOCK_PAGE_SIZE;
export const MOCK_PAGETABLE_DEFAULT = 0, MOCK_PAGETABLE_HUGE = 1;

export interface HwDomain {
  readonly id: number;
  readonly kind: 'paging' | 'nested' | 'blocked';
  readonly driver: 'mock' | 'platform';
  readonly pgsizeBitmap: bigint;
  readonly apertureStart: bigint;
  readonly apertureLast: bigint;
  /** Allocated with IOMMU_HWPT_ALLOC_DIRTY_TRACKING: the domain has dirty ops. */
  readonly dirtyOps: boolean;
  dirtyTracking: boolean;
  /** IOVA runs → physical address of the run's first byte. */
  readonly map: IntervalTree<bigint>;
  /** Cached translations (iotlb.ts). */
  readonly iotlb: IntervalTree<IotlbEntry>;
}

export type HwDomainEvent = Extract<DomainEvent, { type: 'DomainAllocated' | 'DomainFreed' | 'DomainMapped' | 'DomainUnmapped' }>;

export function mockPagingParams(pagetableType: number, pageSize: number): { pgsizeBitmap: bigint; apertureStart: bigint; apertureLast: bigint } {
  if (pagetableType === MOCK_PAGETABLE_HUGE) return { pgsizeBitmap: MOCK_HUGE_PAGE_SIZE | BigInt(pageSize), apertureStart: 0n, apertureLast: U64_MAX };
  return { pgsizeBitmap: MOCK_PAGE_SIZE, apertureStart: MOCK_APERTURE_START, apertureLast: MOCK_APERTURE_LAST };
}

/** The smallest page size a domain maps (the lowest set bit of `pgsize_bitmap`). */
export const minPageSize = (d: HwDomain): bigint => d.pgsizeBitmap & -d.pgsizeBitmap;

export function domainEvolve(domains: Map<number, HwDomain>, ev: HwDomainEvent): void {
  switch (ev.type) {
    case 'DomainAllocated':
      if (domains.has(ev.domain)) throw new Error(`domain ${ev.domain} exists`);
      domains.set(ev.domain, {
        id: ev.domain, kind: ev.kind, driver: ev.driver, pgsizeBitmap: ev.pgsizeBitmap, apertureStart: ev.apertureStart,
        apertureLast: ev.apertureLast, dirtyOps: ev.dirtyOps, dirtyTracking: false, map: new IntervalTree(), iotlb: newIotlb(),
      });
      return;
    case 'DomainFreed': {
      const d = domains.get(ev.domain);
      if (d === undefined) throw new Error(`no domain ${ev.domain}`);
      if (!d.map.isEmpty) throw new Error(`domain ${ev.domain} freed while it still maps IOVA`);
      if (!d.iotlb.isEmpty) throw new Error(`domain ${ev.domain} freed while its IOTLB still caches translations`);
      domains.delete(ev.domain);
      return;
    }
    case 'DomainMapped': {
      const d = get(domains, ev.domain);
      if (d.map.iterFirst(ev.iova, ev.last) !== undefined) throw new Error(`domain ${ev.domain}: [${ev.iova}, ${ev.last}] is already mapped`);
      d.map.insert(ev.iova, ev.last, ev.phys);
      return;
    }
    case 'DomainUnmapped': {
      const d = get(domains, ev.domain);
      const hit = [...d.map.intersecting(ev.iova, ev.last)];
      for (const n of hit) {
        d.map.remove(n);
        if (n.start < ev.iova) d.map.insert(n.start, ev.iova - 1n, n.value);
        if (n.last > ev.last) d.map.insert(ev.last + 1n, n.last, n.value + (ev.last + 1n - n.start));
      }
      return;
    }
  }
}

function get(domains: Map<number, HwDomain>, id: number): HwDomain {
  const d = domains.get(id);
  if (d === undefined) throw new Error(`no domain ${id}`);
  return d;
}

/** `iommu_iova_to_phys`: the physical address `iova` translates to, or undefined (an IO page fault). */
export function iovaToPhys(d: HwDomain, iova: bigint): bigint | undefined {
  const n = d.map.iterFirst(iova, iova);
  return n === undefined ? undefined : n.value + (iova - n.start);
}

export function cloneDomain(d: HwDomain): HwDomain {
  const map = new IntervalTree<bigint>();
  for (const n of d.map.inOrder()) map.insert(n.start, n.last, n.value);
  return { ...d, map, iotlb: cloneIotlb(d.iotlb) };
}
