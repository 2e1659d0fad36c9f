/**
 * The projected state of the vIOMMU family (drivers/iommu/iommufd/viommu.c, hw_pagetable.c nested HWPTs, main.c
 * mmap cookies `iommufd_viommu_alloc_mmap` / `iommufd_fops_mmap`) and the folding of its events.
 *
 * A vIOMMU holds its nesting parent; a nested HWPT holds its parent HWPT or vIOMMU; a vDEVICE holds its vIOMMU; a
 * HW queue holds its vIOMMU (and queue index-1 when index > 0, `iommufd_hw_queue_depend`). Those `users`
 * references are plain ObjectRefTaken events; what is kept here is what the handlers must look up.
 *
 * mmap cookies live in `ictx->mt_mmap`, a maple tree handing out page-aligned offsets from PAGE_SIZE: each names
 * an owner object and the physical range it exposes (modelled as a hidden memfd's pages). Each VMA mapping a
 * cookie holds a `users` reference on the owner (`iommufd_fops_vma_open`/`_close`).
 */
import type { IommufdCtx } from './state.js';

export interface ViommuData { readonly hwpt: number; readonly idev: number; readonly viommuType: number }
export interface NestedData {
  /** The HWPT_PAGING it nests on (through the vIOMMU when `viommu` is not 0). */
  readonly parent: number;
  readonly viommu: number;
  /** The mock nested domain's `iotlb[MOCK_NESTED_DOMAIN_IOTLB_NUM]`. */
  readonly iotlb: number[];
}
export interface VdevData { readonly viommu: number; readonly idev: number; readonly virtId: bigint }
export interface HwQueueData { readonly viommu: number; readonly index: number; readonly base: bigint; readonly length: bigint }
export interface MmapCookie { readonly start: bigint; readonly length: bigint; readonly owner: number; readonly memfd: number }
export interface CookieVma { readonly start: bigint; readonly last: bigint; readonly cookie: bigint; readonly owner: number }

export type VObjectEvent =
  | { readonly type: 'ViommuInitialized'; readonly ctx: number; readonly id: number; readonly hwpt: number; readonly idev: number; readonly viommuType: number }
  | { readonly type: 'HwptNestedInitialized'; readonly ctx: number; readonly id: number; readonly parent: number; readonly viommu: number; readonly domain: number; readonly ioas: number; readonly iotlb: number; readonly pasidCompat: boolean }
  | { readonly type: 'NestedIotlbSet'; readonly ctx: number; readonly id: number; readonly index: number; readonly value: number }
  | { readonly type: 'VdeviceInitialized'; readonly ctx: number; readonly id: number; readonly viommu: number; readonly idev: number; readonly virtId: bigint }
  /** `iommufd_object_tombstone_user`: the object is gone but its ID stays reserved until the context is released. */
  | { readonly type: 'ObjectTombstoned'; readonly ctx: number; readonly id: number }
  | { readonly type: 'HwQueueInitialized'; readonly ctx: number; readonly id: number; readonly viommu: number; readonly index: number; readonly base: bigint; readonly length: bigint }
  | { readonly type: 'MmapCookieAdded'; readonly ctx: number; readonly start: bigint; readonly length: bigint; readonly owner: number; readonly memfd: number }
  | { readonly type: 'MmapCookieRemoved'; readonly ctx: number; readonly start: bigint }
  | { readonly type: 'CookieVmaMapped'; readonly ctx: number; readonly start: bigint; readonly last: bigint; readonly cookie: bigint; readonly owner: number }
  | { readonly type: 'CookieVmaUnmapped'; readonly ctx: number; readonly start: bigint };

export const V_OBJECT_EVENT_TYPES: readonly VObjectEvent['type'][] = [
  'ViommuInitialized', 'HwptNestedInitialized', 'NestedIotlbSet', 'VdeviceInitialized', 'ObjectTombstoned',
  'HwQueueInitialized', 'MmapCookieAdded', 'MmapCookieRemoved', 'CookieVmaMapped', 'CookieVmaUnmapped',
];

/** The vIOMMU-family part of a context. */
export interface VCtx {
  /** `ictx->mt_mmap`, by start offset. */
  readonly cookies: Map<bigint, MmapCookie>;
  /** The VMAs of this context's file that map a cookie, by start address. */
  readonly vmas: Map<bigint, CookieVma>;
}
export const newVCtx = (): VCtx => ({ cookies: new Map(), vmas: new Map() });
export const cloneVCtx = (v: VCtx): VCtx => ({ cookies: new Map(v.cookies), vmas: new Map(v.vmas) });

function objOf(c: IommufdCtx, id: number) {
  const o = c.objects.get(id);
  if (o === undefined) throw new Error(`no object ${id} in context ${c.id}`);
  return o;
}

/** Folds one event; `tombstone` moves the object's lifecycle (the caller owns the lifecycle table). */
export function vobjectEvolve(c: IommufdCtx, ev: VObjectEvent, tombstone: (id: number) => void): void {
  switch (ev.type) {
    case 'ViommuInitialized':
      objOf(c, ev.id).viommu = { hwpt: ev.hwpt, idev: ev.idev, viommuType: ev.viommuType };
      return;
    case 'HwptNestedInitialized': {
      const o = objOf(c, ev.id);
      o.nested = { parent: ev.parent, viommu: ev.viommu, iotlb: [ev.iotlb, ev.iotlb, ev.iotlb, ev.iotlb] };
      // Not on the IOAS's hwpt_list: a nested HWPT is never an auto domain candidate.
      o.hwpt = { ioas: ev.ioas, domain: ev.domain, auto: false, nestParent: false, pasidCompat: ev.pasidCompat };
      return;
    }
    case 'NestedIotlbSet': {
      const n = objOf(c, ev.id).nested;
      if (n === undefined || ev.index >= n.iotlb.length) throw new Error(`object ${ev.id} has no iotlb[${ev.index}]`);
      n.iotlb[ev.index] = ev.value;
      return;
    }
    case 'VdeviceInitialized':
      objOf(c, ev.id).vdev = { viommu: ev.viommu, idev: ev.idev, virtId: ev.virtId };
      return;
    case 'ObjectTombstoned':
      tombstone(ev.id);
      return;
    case 'HwQueueInitialized':
      objOf(c, ev.id).hwq = { viommu: ev.viommu, index: ev.index, base: ev.base, length: ev.length };
      return;
    case 'MmapCookieAdded':
      if (c.v.cookies.has(ev.start)) throw new Error(`mmap cookie 0x${ev.start.toString(16)} is taken`);
      c.v.cookies.set(ev.start, { start: ev.start, length: ev.length, owner: ev.owner, memfd: ev.memfd });
      return;
    case 'MmapCookieRemoved':
      if (!c.v.cookies.delete(ev.start)) throw new Error(`no mmap cookie 0x${ev.start.toString(16)}`);
      return;
    case 'CookieVmaMapped':
      c.v.vmas.set(ev.start, { start: ev.start, last: ev.last, cookie: ev.cookie, owner: ev.owner });
      return;
    case 'CookieVmaUnmapped':
      if (!c.v.vmas.delete(ev.start)) throw new Error(`no cookie VMA at 0x${ev.start.toString(16)}`);
      return;
  }
}
