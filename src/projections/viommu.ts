/**
 * The projected state of the vIOMMU family (drivers/iommu/iommufd/viommu.c, hw_pagetable.c nested HWPTs, main.c
 * mmap cookies `iommufd_viommu_alloc_mmap` / `iommufd_fops_mmap`) and the folding of its events.
 *
 * A vIOMMU holds its nesting parent; a nested HWPT holds its parent HWPT or vIOMMU; a vDEVICE holds its vIOMMU; a
 * HW queue holds its vIOMMU (and queue index-1 when index > 0, `iommufd_hw_queue_depend`). Those `users`
 * references are plain ObjectRefTaken events; what is kept here is what the handlers must look up, and the mock's
 * cache words a vIOMMU invalidation clears (nested IOTLB words, device cache words).
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
  /** `mock_viommu_cache_invalidate`: cache word `index` of the mock device bound as `idev` becomes `value`. */
  | { readonly type: 'DeviceCacheSet'; readonly ctx: number; readonly idev: number; readonly index: number; readonly value: number }
  /** `iommufd_object_tombstone_user`: the object is gone but its ID stays reserved until the context is released. */
  | { readonly type: 'ObjectTombstoned'; readonly ctx: number; readonly id: number }
  | { readonly type: 'HwQueueInitialized'; readonly ctx: number; readonly id: number; readonly viommu: number; readonly index: number; readonly base: bigint; readonly length: bigint }
  | { readonly type: 'MmapCookieAdded'; readonly ctx: number; readonly start: bigint; readonly length: bigint; readonly owner: number; readonly memfd: number }
  | { readonly type: 'MmapCookieRemoved'; readonly ctx: number; readonly start: bigint }
  | { readonly type: 'CookieVmaMapped'; readonly ctx: number; readonly start: bigint; readonly last: bigint; readonly cookie: bigint; readonly owner: number }
  | { readonly type: 'CookieVmaUnmapped'; readonly ctx: number; readonly start: bigint }
  /** `iommufd_fault_iopf_handler`: a fault group joins the fault object's deliver list. */
  | { readonly type: 'IopfQueued'; readonly ctx: number; readonly fault: number; readonly group: IopfGroup }
  /** `iommufd_fault_fops_read`: the head group is copied out and waits in `fault->response` under `cookie`. */
  | { readonly type: 'IopfDelivered'; readonly ctx: number; readonly fault: number; readonly cookie: number }
  /** `iommufd_fault_fops_write`: the group of `cookie` is answered and freed. */
  | { readonly type: 'IopfResponded'; readonly ctx: number; readonly fault: number; readonly cookie: number }
  /** `iommufd_auto_response_faults`: every group of a device's attachment is answered as it leaves the HWPT. */
  | { readonly type: 'VeventqInitialized'; readonly ctx: number; readonly id: number; readonly viommu: number; readonly veventqType: number; readonly depth: number }
  /**
   * `iommufd_viommu_report_event` → `iommufd_vevent_handler`: a vEVENT (hex `data`), or with `lost` the queue's
   * lost-events header, joins the tail under the next sequence number; a lost header already at the tail is moved.
   */
  | { readonly type: 'VeventReported'; readonly ctx: number; readonly id: number; readonly lost: boolean; readonly data: string }
  /** `iommufd_veventq_fops_read`: the first `count` entries of the queue were copied out. */
  | { readonly type: 'VeventsRead'; readonly ctx: number; readonly id: number; readonly count: number }
  /** selftest.c `mock_domain_set_dev_pasid_nop`: the mock device's `pasid_1024_fake_error` flag. */
  | { readonly type: 'MockPasidFakeErrorSet'; readonly ctx: number; readonly idev: number; readonly armed: boolean }
  | { readonly type: 'IopfAutoResponded'; readonly ctx: number; readonly fault: number; readonly idev: number; readonly pasid: number };

export interface IopfGroup {
  readonly idev: number; readonly pasid: number; readonly grpid: number; readonly perm: number; readonly addr: string; readonly flags: number;
}
export interface FaultData {
  /** `fault->deliver`, oldest first. */
  readonly deliver: IopfGroup[];
  /** `fault->response`: delivered groups awaiting an answer, by cookie. */
  readonly response: Map<number, IopfGroup>;
}
export const cloneFault = (f: FaultData): FaultData => ({ deliver: f.deliver.slice(), response: new Map(f.response) });

export const V_OBJECT_EVENT_TYPES: readonly VObjectEvent['type'][] = [
  'ViommuInitialized', 'HwptNestedInitialized', 'NestedIotlbSet', 'DeviceCacheSet', 'VdeviceInitialized', 'ObjectTombstoned',
  'HwQueueInitialized', 'MmapCookieAdded', 'MmapCookieRemoved', 'CookieVmaMapped', 'CookieVmaUnmapped',
  'IopfQueued', 'IopfDelivered', 'IopfResponded', 'IopfAutoResponded', 'MockPasidFakeErrorSet',
  'VeventqInitialized', 'VeventReported', 'VeventsRead',
];

export interface Vevent { readonly sequence: number; readonly lost: boolean; readonly data: string }
export interface VeventqData {
  readonly viommu: number; readonly veventqType: number; readonly depth: number;
  /** `veventq->sequence`: the next sequence number, wrapping at INT_MAX. */
  sequence: number;
  /** `veventq->num_events`: real vEVENTs queued (the lost-events header does not count). */
  numEvents: number;
  /** `eventq->deliver`, oldest first. */
  readonly deliver: Vevent[];
}
export const cloneVeventq = (q: VeventqData): VeventqData => ({ ...q, deliver: q.deliver.slice() });
const INT_MAX = 0x7fff_ffff;

/** The vIOMMU-family part of a context. */
export interface VCtx {
  /** `ictx->mt_mmap`, by start offset. */
  readonly cookies: Map<bigint, MmapCookie>;
  /** The VMAs of this context's file that map a cookie, by start address. */
  readonly vmas: Map<bigint, CookieVma>;
  /** Mock devices whose next non-blocking attach at PASID 1024 fails (`mdev->pasid_1024_fake_error`). */
  readonly pasidFakeError: Set<number>;
}
export const newVCtx = (): VCtx => ({ cookies: new Map(), vmas: new Map(), pasidFakeError: new Set() });
export const cloneVCtx = (v: VCtx): VCtx => ({ cookies: new Map(v.cookies), vmas: new Map(v.vmas), pasidFakeError: new Set(v.pasidFakeError) });

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
    case 'DeviceCacheSet': {
      const d = objOf(c, ev.idev).idev;
      if (d === undefined || ev.index >= d.cache.length) throw new Error(`object ${ev.idev} has no cache[${ev.index}]`);
      d.cache[ev.index] = ev.value;
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
    case 'MockPasidFakeErrorSet':
      if (ev.armed) c.v.pasidFakeError.add(ev.idev);
      else c.v.pasidFakeError.delete(ev.idev);
      return;
    case 'IopfQueued':
    case 'IopfDelivered':
    case 'IopfResponded':
    case 'IopfAutoResponded':
      faultEvolve(objOf(c, ev.fault), ev);
      return;
    case 'VeventqInitialized':
      objOf(c, ev.id).veventq = { viommu: ev.viommu, veventqType: ev.veventqType, depth: ev.depth, sequence: 0, numEvents: 0, deliver: [] };
      return;
    case 'VeventReported': {
      const q = objOf(c, ev.id).veventq!;
      if (q.deliver.at(-1)?.lost) q.deliver.pop();
      q.deliver.push({ sequence: q.sequence, lost: ev.lost, data: ev.data });
      q.sequence = (q.sequence + 1) & INT_MAX;
      if (!ev.lost) q.numEvents++;
      return;
    }
    case 'VeventsRead': {
      const q = objOf(c, ev.id).veventq!;
      for (const e of q.deliver.splice(0, ev.count)) if (!e.lost) q.numEvents--;
      return;
    }
  }
}

function faultEvolve(o: ReturnType<typeof objOf>, ev: Extract<VObjectEvent, { type: 'IopfQueued' | 'IopfDelivered' | 'IopfResponded' | 'IopfAutoResponded' }>): void {
  const f = (o.fault ??= { deliver: [], response: new Map() });
  switch (ev.type) {
    case 'IopfQueued':
      f.deliver.push(ev.group);
      return;
    case 'IopfDelivered': {
      const g = f.deliver.shift();
      if (g === undefined || f.response.has(ev.cookie)) throw new Error(`fault ${o.id} cannot deliver under cookie ${ev.cookie}`);
      f.response.set(ev.cookie, g);
      return;
    }
    case 'IopfResponded':
      if (!f.response.delete(ev.cookie)) throw new Error(`fault ${o.id} has no cookie ${ev.cookie}`);
      return;
    case 'IopfAutoResponded': {
      const mine = (g: IopfGroup): boolean => g.idev === ev.idev && g.pasid === ev.pasid;
      f.deliver.splice(0, f.deliver.length, ...f.deliver.filter((g) => !mine(g)));
      for (const [k, g] of f.response) if (mine(g)) f.response.delete(k);
      return;
    }
  }
}
