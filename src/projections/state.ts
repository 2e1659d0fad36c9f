/**
 * The projected kernel and process state, and `evolve`: the one function that turns domain events into state.
 *
 * `evolve(state, event)` is deterministic and depends on nothing but its arguments; it updates the state it is
 * given in place (a projection owns its state, as a fold's accumulator) because copying the object tables per
 * event would cost more than the trace parse. Points in history are kept by `cloneState` (time travel) or by
 * replaying the log from `initialState()`: the log, not the state, is the record.
 */
import type { DomainEvent, FileRef, ObjectKind } from '../events/domain.js';
import { E_ABORT, E_DESTROY, E_FINALIZE, E_TOMBSTONE, nextLife, S_ALLOCATED, S_FINALIZED } from '../machines/lifecycle.js';
import { IdAllocator } from './ids.js';
import { CowMap, isShared, rawEntries, rawGet } from '../hw/cow_map.js';
import { cloneDmabuf, dmabufEvolve, type DmabufData } from '../hw/dmabuf.js';
import { emptyMm, mmEvolve, cloneMm, type MmState } from '../hw/mm.js';
import { cloneIopt, ioptEvolve, newIopt, type Iopt } from '../hw/io_pagetable.js';
import { clonePages, emptyAccounting, pagesEvolve, type Accounting, type IoptPages } from '../hw/pages.js';
import { cloneDomain, domainEvolve, type HwDomain } from '../hw/domain.js';
import { dirtyEvolve } from '../hw/dirty.js';
import { iotlbEvolve } from '../hw/iotlb.js';
import { devicesEvolve, forgetHwpt, type HwptData, type IdevData, type StdevData } from './devices.js';
import { accessEvolve, cloneAccess, type AccessData } from './access.js';
import { cloneFault, cloneVCtx, cloneVeventq, newVCtx, type FaultData, type VeventqData, vobjectEvolve, type HwQueueData, type NestedData, type VCtx, type VdevData, type ViommuData } from './viommu.js';
import { cloneContainers, type1Evolve, type VfioContainer } from '../hw/vfio_dma.js';

export interface IoasData {
  readonly iopt: Iopt;
  /** `ioas->hwpt_list`, in the order HWPTs were created (the auto-domain search walks it). */
  readonly hwpts: number[];
}
const newIoas = (): IoasData => ({ iopt: newIopt(), hwpts: [] });
export interface KObject {
  readonly id: number;
  readonly kind: ObjectKind;
  /** Index into LIFE_STATES (machines/lifecycle.ts). */
  life: number;
  /** `obj->users`: 1 for the xarray's own reference, plus every long-term reference held on it. */
  users: number;
  /** The objects this one holds a `users` reference on (dropped when it is destroyed). */
  holds: number[];
  ioas: IoasData | undefined;
  hwpt?: HwptData;
  idev?: IdevData;
  stdev?: StdevData;
  access?: AccessData;
  viommu?: ViommuData;
  nested?: NestedData;
  vdev?: VdevData;
  hwq?: HwQueueData;
  fault?: FaultData;
  veventq?: VeventqData;
}
export interface IommufdCtx {
  readonly id: number;
  /** `ictx->account_mode`: 0 user (IOPT_PAGES_ACCOUNT_USER), 1 mm (IOPT_PAGES_ACCOUNT_MM). */
  accountMode: 0 | 1;
  readonly compat: boolean;
  readonly objects: Map<number, KObject>;
  readonly ids: IdAllocator;
  /** `ictx->vfio_ioas`: the IOAS the VFIO compat ioctls act on (no reference held), 0 for none. */
  vfioIoas: number;
  /** References on the context's file: its fd, plus every access (and, later, bound device) holding one. */
  fileRefs: number;
  /** mmap cookies and the VMAs mapping them (projections/viommu.ts). */
  readonly v: VCtx;
}
export interface State {
  pageSize: number;
  memory: 'explicit' | 'implicit';
  readonly fds: Map<number, FileRef>;
  readonly ctxs: Map<number, IommufdCtx>;
  nextCtx: number;
  nextMemfd: number;
  readonly mm: MmState;
  /** Every live `iopt_pages`, by id (shared by the areas of any IOAS of any context). */
  readonly pages: Map<number, IoptPages>;
  nextPages: number;
  nextArea: number;
  /** The selftest's `iommufd_test_memory_limit` (pages per pinning batch), a module global. */
  testMemoryLimit: number;
  /** Hardware IOMMU domains, by id. */
  readonly domains: Map<number, HwDomain>;
  nextDomain: number;
  nextMockDev: number;
  readonly accounting: Accounting;
  /** VFIO device cdev fds bound to an iommufd: fd → the context and DEVICE object (drivers/vfio/device_cdev.c). */
  readonly vfioBinds: Map<number, { readonly ctx: number; readonly idev: number }>;
  /** VFIO groups set to an iommufd container: group number → context. */
  readonly vfioGroups: Map<number, number>;
  /** Exported dma-bufs, by id (hw/dmabuf.ts). */
  readonly dmabufs: Map<number, DmabufData>;
  /** Legacy VFIO containers (container.c + vfio_iommu_type1.c), by id (hw/vfio_dma.ts). */
  readonly containers: Map<number, VfioContainer>;
  nextContainer: number;
  /** VFIO PCI devices whose memory decode (virtual PCI_COMMAND.MEMORY) is off, by path; BAR faults SIGBUS. */
  readonly vfioMemoryOff: Set<string>;
  /** The process's mm (1, then one more per exec): `accounting.mmLockedVm` and `pinnedVm` are this mm's. */
  mmId: number;
  /** Each mdev driver's record of the pages it pinned (MdevDriverPins): device path → its container, exact IOVA → pins. */
  readonly mdevPins: Map<string, { readonly container: number; readonly pins: Map<bigint, number> }>;
}

export const initialState = (): State => ({
  pageSize: 4096, memory: 'explicit', fds: new Map(), ctxs: new Map(), nextCtx: 1, nextMemfd: 1, mm: emptyMm(),
  pages: new Map(), nextPages: 1, nextArea: 1, testMemoryLimit: 65536, domains: new Map(), nextDomain: 1, nextMockDev: 1,
  accounting: emptyAccounting(), vfioBinds: new Map(), vfioGroups: new Map(), dmabufs: new Map(), containers: new Map(), nextContainer: 1, vfioMemoryOff: new Set(),
  mmId: 1, mdevPins: new Map(),
});

function ioptOf(s: State, ctx: number, id: number): Iopt {
  const o = objOf(ctxOf(s, ctx), id);
  if (o.ioas === undefined) throw new ProjectionError(`object ${id} is not an IOAS`);
  return o.ioas.iopt;
}

/** A model bug: an event that the state cannot take (decide and evolve disagree). Never a trace problem. */
export class ProjectionError extends Error {}

function ctxOf(s: State, ctx: number): IommufdCtx {
  const c = s.ctxs.get(ctx);
  if (c === undefined) throw new ProjectionError(`no iommufd context ${ctx}`);
  return c;
}
function objOf(c: IommufdCtx, id: number): KObject {
  const o = c.objects.get(id);
  if (o === undefined) throw new ProjectionError(`no object ${id} in context ${c.id}`);
  return o;
}
function lifeAfter(o: KObject, event: number, name: string): number {
  const n = nextLife(o.kind, o.life, event);
  if (n < 0) throw new ProjectionError(`object ${o.id} (${o.kind}) cannot ${name} in lifecycle state ${o.life}`);
  return n;
}
function move(o: KObject, event: number, name: string): void {
  o.life = lifeAfter(o, event, name);
}

export function evolve(s: State, ev: DomainEvent): State {
  switch (ev.type) {
    case 'TraceStarted':
      s.pageSize = ev.pageSize;
      s.memory = ev.memory;
      mmEvolve(s.mm, ev);
      return s;
    case 'FdInstalled':
      if (s.fds.has(ev.fd)) throw new ProjectionError(`fd ${ev.fd} is already open`);
      s.fds.set(ev.fd, ev.file);
      if (ev.file.kind === 'memfd' && ev.file.memfd >= s.nextMemfd) s.nextMemfd = ev.file.memfd + 1;
      return s;
    case 'FdClosed':
      if (!s.fds.delete(ev.fd)) throw new ProjectionError(`fd ${ev.fd} is not open`);
      return s;
    case 'IommufdOpened':
      s.ctxs.set(ev.ctx, { id: ev.ctx, accountMode: ev.accountMode, compat: ev.compat, objects: new Map(), ids: new IdAllocator(), vfioIoas: 0, fileRefs: 1, v: newVCtx() });
      if (ev.ctx >= s.nextCtx) s.nextCtx = ev.ctx + 1;
      return s;
    case 'IommufdReleased': {
      const c = ctxOf(s, ev.ctx);
      for (const o of c.objects.values()) if (o.life === S_FINALIZED || o.life === S_ALLOCATED)
        throw new ProjectionError(`context ${ev.ctx} released with live object ${o.id}`);
      if (c.fileRefs !== 0) throw new ProjectionError(`context ${ev.ctx} released with ${c.fileRefs} file reference(s)`);
      s.ctxs.delete(ev.ctx);
      return s;
    }
    case 'ObjectAllocated': {
      const c = ctxOf(s, ev.ctx);
      if (c.objects.has(ev.id)) throw new ProjectionError(`id ${ev.id} of context ${ev.ctx} is taken`);
      c.ids.take(ev.id);
      c.objects.set(ev.id, { id: ev.id, kind: ev.kind, life: S_ALLOCATED, users: 1, holds: [], ioas: ev.kind === 'IOAS' ? newIoas() : undefined });
      return s;
    }
    case 'ObjectFinalized':
      move(objOf(ctxOf(s, ev.ctx), ev.id), E_FINALIZE, 'finalize');
      return s;
    case 'ObjectAborted':
    case 'ObjectDestroyed': {
      const c = ctxOf(s, ev.ctx);
      // The object leaves the table: a fork (forkState) need not copy it out of its snapshot first, only not write
      // to the snapshot's.
      const shared = isShared(c.objects, ev.id);
      const o = shared ? rawGet(c.objects, ev.id)! : objOf(c, ev.id);
      const life = lifeAfter(o, ev.type === 'ObjectAborted' ? E_ABORT : E_DESTROY, ev.type === 'ObjectAborted' ? 'abort' : 'be destroyed');
      if (!shared) o.life = life;
      c.objects.delete(ev.id);
      c.ids.release(ev.id);
      if (c.vfioIoas === ev.id) c.vfioIoas = 0;
      forgetHwpt(c, o);
      if (ev.type === 'ObjectDestroyed' && o.holds.length > 0) throw new ProjectionError(`object ${ev.id} destroyed while holding ${o.holds.join(', ')}`);
      return s;
    }
    case 'ObjectRefTaken':
    case 'ObjectRefDropped': {
      const o = objOf(ctxOf(s, ev.ctx), ev.id);
      if (ev.type === 'ObjectRefDropped' && o.users <= 1) throw new ProjectionError(`object ${ev.id} has no reference to drop`);
      o.users += ev.type === 'ObjectRefTaken' ? 1 : -1;
      // `by` 0 is a reference held from outside the table (a driver, an fd, a VMA).
      const holder = ev.by === 0 ? undefined : ctxOf(s, ev.ctx).objects.get(ev.by);
      if (holder !== undefined) {
        if (ev.type === 'ObjectRefTaken') holder.holds.push(ev.id);
        else holder.holds.splice(holder.holds.indexOf(ev.id), 1);
      }
      return s;
    }
    case 'CtxRefTaken':
    case 'CtxRefDropped': {
      const c = ctxOf(s, ev.ctx);
      c.fileRefs += ev.type === 'CtxRefTaken' ? 1 : -1;
      if (c.fileRefs < 0) throw new ProjectionError(`context ${ev.ctx} has no file reference to drop`);
      return s;
    }
    case 'AccessInitialized':
    case 'AccessAttached':
    case 'AccessDetached':
    case 'AccessPinned':
    case 'AccessUnpinned':
      accessEvolve(s, ctxOf(s, ev.ctx), ev);
      return s;
    case 'AreaAccessPrevented':
      accessEvolve(s, ctxOf(s, ev.ctx), ev);
      return s;
    case 'VfioDeviceBound':
      if (s.vfioBinds.has(ev.fd)) throw new ProjectionError(`device fd ${ev.fd} is already bound`);
      s.vfioBinds.set(ev.fd, { ctx: ev.ctx, idev: ev.idev });
      return s;
    case 'VfioDeviceUnbound':
      if (!s.vfioBinds.delete(ev.fd)) throw new ProjectionError(`device fd ${ev.fd} is not bound`);
      return s;
    case 'VfioGroupContainerSet':
      if (s.vfioGroups.has(ev.group)) throw new ProjectionError(`group ${ev.group} already has a container`);
      s.vfioGroups.set(ev.group, ev.ctx);
      return s;
    case 'VfioGroupContainerUnset':
      if (!s.vfioGroups.delete(ev.group)) throw new ProjectionError(`group ${ev.group} has no container`);
      return s;
    case 'AccountModeSet':
      ctxOf(s, ev.ctx).accountMode = ev.mode;
      return s;
    case 'IoasLargePagesSet':
      ioptEvolve(ioptOf(s, ev.ctx, ev.id), ev, s.pageSize);
      return s;
    case 'AreaReserved': {
      const p = s.pages.get(ev.pages);
      if (p === undefined) throw new ProjectionError(`area ${ev.area} uses unknown pages ${ev.pages}`);
      ioptEvolve(ioptOf(s, ev.ctx, ev.ioas), ev, s.pageSize);
      p.refs++;
      if (ev.area >= s.nextArea) s.nextArea = ev.area + 1;
      return s;
    }
    case 'AreaRemoved': {
      const i = ioptOf(s, ev.ctx, ev.ioas);
      const a = i.areaById.get(ev.area);
      if (a === undefined) throw new ProjectionError(`no area ${ev.area}`);
      ioptEvolve(i, ev, s.pageSize);
      s.pages.get(a.value.pages)!.refs--;
      return s;
    }
    case 'AreaSplit': {
      const i = ioptOf(s, ev.ctx, ev.ioas);
      const a = i.areaById.get(ev.area);
      if (a === undefined) throw new ProjectionError(`no area ${ev.area} to split`);
      if (ev.last < a.value.start || ev.last >= a.value.last) throw new ProjectionError(`area ${ev.area} cannot be split after ${ev.last}`);
      const p = s.pages.get(a.value.pages);
      if (p === undefined) throw new ProjectionError(`area ${ev.area} uses unknown pages ${a.value.pages}`);
      ioptEvolve(i, ev, s.pageSize);
      p.refs++; // kref_get for the right half; the left half inherits the area's reference
      s.nextArea = Math.max(s.nextArea, ev.lhs + 1, ev.rhs + 1);
      return s;
    }
    case 'AreaPublished':
    case 'AreaUnpublished':
    case 'AllowedIovasSet':
    case 'ReservedAdded':
    case 'ReservedRemoved':
      ioptEvolve(ioptOf(s, ev.ctx, ev.ioas), ev, s.pageSize);
      return s;
    case 'PagesCreated':
    case 'PagesReleased':
    case 'PagesRefTaken':
    case 'PagesRefDropped':
    case 'AreaFilled':
    case 'AreaUnfilled':
    case 'PagesPinned':
    case 'PagesUnpinned':
    case 'AccountingCharged':
    case 'AccountingUncharged':
      pagesEvolve(s, ev);
      return s;
    case 'TestMemoryLimitSet':
      s.testMemoryLimit = ev.limit;
      return s;
    case 'DomainAllocated':
      domainEvolve(s.domains, ev);
      if (ev.domain >= s.nextDomain) s.nextDomain = ev.domain + 1;
      return s;
    case 'DomainFreed':
    case 'DomainMapped':
      domainEvolve(s.domains, ev);
      return s;
    case 'DomainUnmapped':
      domainEvolve(s.domains, ev);
      dirtyEvolve(s.domains, ev);
      return s;
    case 'IotlbFilled':
    case 'IotlbFlushed': {
      const d = s.domains.get(ev.domain);
      if (d === undefined) throw new ProjectionError(`no domain ${ev.domain}`);
      iotlbEvolve(d, ev);
      return s;
    }
    case 'DomainDirtyTrackingSet':
    case 'DomainDirtied':
    case 'DomainDirtyCleared':
      dirtyEvolve(s.domains, ev);
      return s;
    case 'IoptDomainAdded':
    case 'IoptDomainRemoved': {
      const i = ioptOf(s, ev.ctx, ev.ioas);
      if (ev.type === 'IoptDomainAdded') i.domains.push(ev.domain);
      else {
        // iopt_table_remove_domain compacts the xarray: the last domain moves into the hole.
        const at = i.domains.indexOf(ev.domain);
        if (at < 0) throw new ProjectionError(`domain ${ev.domain} is not in IOAS ${ev.ioas}`);
        const lastDom = i.domains.pop()!;
        if (at < i.domains.length) i.domains[at] = lastDom;
      }
      i.iovaAlignment = ev.iovaAlignment;
      return s;
    }
    case 'HwptInitialized':
    case 'DeviceBound':
    case 'SelftestInitialized':
    case 'DeviceAttached':
    case 'DeviceDetached':
      devicesEvolve(ctxOf(s, ev.ctx), ev);
      if (ev.type === 'SelftestInitialized' && ev.mockDev >= s.nextMockDev) s.nextMockDev = ev.mockDev + 1;
      return s;
    case 'ViommuInitialized':
    case 'HwptNestedInitialized':
    case 'NestedIotlbSet':
    case 'DeviceCacheSet':
    case 'VdeviceInitialized':
    case 'ObjectTombstoned':
    case 'HwQueueInitialized':
    case 'MmapCookieAdded':
    case 'MmapCookieRemoved':
    case 'CookieVmaMapped':
    case 'CookieVmaUnmapped':
    case 'IopfQueued':
    case 'IopfDelivered':
    case 'IopfResponded':
    case 'IopfAutoResponded':
    case 'MockPasidFakeErrorSet':
    case 'VeventqInitialized':
    case 'VeventReported':
    case 'VeventsRead': {
      const c = ctxOf(s, ev.ctx);
      vobjectEvolve(c, ev, (id) => {
        const o = objOf(c, id);
        move(o, E_TOMBSTONE, 'be tombstoned');
        forgetHwpt(c, o);
        if (o.holds.length > 0) throw new ProjectionError(`object ${id} tombstoned while holding ${o.holds.join(', ')}`);
      });
      return s;
    }
    case 'DmabufExported':
    case 'Revoke':
      dmabufEvolve(s, ev);
      return s;
    case 'VfioIoasSet':
      ctxOf(s, ev.ctx).vfioIoas = ev.id;
      return s;
    case 'MemfdCreated':
      // Kernel-internal memory (mmap cookies, mock dma-bufs) is a memfd with no fd: its id is taken here too.
      if (ev.memfd >= s.nextMemfd) s.nextMemfd = ev.memfd + 1;
      mmEvolve(s.mm, ev);
      return s;
    case 'VmaMapped':
    case 'VmaUnmapped':
    case 'MemfdResized':
    case 'FilePagesAdded':
    case 'FilePagesDropped':
    case 'PagesFaulted':
    case 'PtesZapped':
    case 'FramesFreed':
    case 'FramesPinned':
    case 'FramesUnpinned':
    case 'MemWritten':
    case 'MmuNotifierInvalidate':
      mmEvolve(s.mm, ev);
      return s;
    case 'VfioContainerOpened':
      if (ev.container >= s.nextContainer) s.nextContainer = ev.container + 1;
      type1Evolve(s.containers, ev, s.pageSize);
      return s;
    case 'VfioContainerGroupAdded':
    case 'VfioContainerGroupRemoved':
    case 'Type1IommuOpened':
    case 'Type1IommuReleased':
    case 'Type1DomainAttached':
    case 'Type1DomainDetached':
    case 'VfioDmaLinked':
    case 'VfioDmaRemoved':
    case 'VfioDmaVaddrInvalidated':
    case 'VfioDmaVaddrUpdated':
    case 'Type1DirtyTrackingSet':
    case 'VfioDmaBitmapReported':
    case 'Type1EmulatedGroupAdded':
    case 'Type1EmulatedGroupRemoved':
    case 'VfioPfnPinned':
    case 'VfioPfnRefChanged':
    case 'VfioPfnUnpinned':
    case 'VfioDmaOwnerChanged':
    case 'VfioDmaPinsSet':
    case 'VfioDmaDirtied':
      type1Evolve(s.containers, ev, s.pageSize);
      return s;
    case 'MdevDriverPins': {
      const m = s.mdevPins.get(ev.dev)?.pins ?? new Map<bigint, number>();
      for (let i = 0; i < ev.npage; i++) {
        const at = ev.iova + BigInt(i * s.pageSize), n = (m.get(at) ?? 0) + ev.delta;
        if (n < 0) throw new ProjectionError(`mdev driver ${ev.dev} unpins ${at}, which it did not pin`);
        if (n === 0) m.delete(at);
        else m.set(at, n);
      }
      if (m.size === 0) s.mdevPins.delete(ev.dev);
      else s.mdevPins.set(ev.dev, { container: ev.container, pins: m });
      return s;
    }
    case 'ProcessExeced':
      if (ev.mm <= s.mmId) throw new ProjectionError(`exec to mm ${ev.mm}, not after mm ${s.mmId}`);
      if (s.accounting.pinnedVm !== 0) throw new ProjectionError('exec with iommufd pages charged to the old mm (pinned_vm)');
      s.mmId = ev.mm;
      // The new mm starts with nothing locked; the old one, dead, keeps what it had (mmget_not_zero fails on it).
      s.accounting.mmLockedVm = 0;
      return s;
    case 'VfioPciMemoryDecodeSet':
      if (ev.enabled) s.vfioMemoryOff.delete(ev.dev);
      else s.vfioMemoryOff.add(ev.dev);
      return s;
    case 'LockedVmAccounted':
      s.accounting.mmLockedVm += ev.npages;
      if (s.accounting.mmLockedVm < 0) throw new ProjectionError('mm->locked_vm went negative');
      return s;
    case 'StaleDeviceMapping':
    case 'P2pUnmap':
    case 'CallCompleted':
    case 'Diverged':
    case 'InvariantViolated':
    case 'DmaCompleted':
    case 'IoPageFault':
      return s;
  }
}

/**
 * A deep copy of one object table entry (the parts `evolve` mutates; the rest never changes once set). `frozen`: for
 * a snapshot nothing will change, whose empty parts may then be shared (io_pagetable.ts `cloneIopt`).
 */
function cloneObject(o: KObject, frozen = false): KObject {
  const copy: KObject = {
    ...o, holds: frozen && o.holds.length === 0 ? (NO_IDS as number[]) : o.holds.slice(),
    ioas: o.ioas && { iopt: cloneIopt(o.ioas.iopt, frozen), hwpts: frozen && o.ioas.hwpts.length === 0 ? (NO_IDS as number[]) : o.ioas.hwpts.slice() },
  };
  if (o.idev) copy.idev = { ...o.idev, attached: new Map(o.idev.attached), cache: o.idev.cache.slice() };
  if (o.access) copy.access = cloneAccess(o.access);
  if (o.fault) copy.fault = cloneFault(o.fault);
  if (o.veventq) copy.veventq = cloneVeventq(o.veventq);
  if (o.nested) copy.nested = { ...o.nested, iotlb: o.nested.iotlb.slice() };
  return copy;
}
const NO_IDS: readonly number[] = Object.freeze([]);
const thaw = (o: KObject): KObject => cloneObject(o);

/** A deep copy, for scratch states: later events applied to either never show in the other. */
export function cloneState(s: State): State {
  return deepCopy(s, false);
}

/**
 * A deep copy that nothing will ever change (a time-travel snapshot; fold into a `forkState` of it): its empty
 * parts are shared frozen instances, which a write would throw on.
 */
export function snapshotState(s: State): State {
  return deepCopy(s, true);
}

function deepCopy(s: State, frozen: boolean): State {
  const ctxs = new Map<number, IommufdCtx>();
  for (const [k, c] of s.ctxs) {
    const objects = new Map<number, KObject>();
    for (const [id, o] of rawEntries(c.objects)) objects.set(id, cloneObject(o, frozen));
    ctxs.set(k, { ...c, objects, ids: c.ids.clone(), v: cloneVCtx(c.v) });
  }
  // Stored values, not through a fork's copy-on-read: they are copied here anyway.
  const pages = new Map(rawEntries(s.pages).map(([k, p]) => [k, clonePages(p)]));
  const domains = new Map(rawEntries(s.domains).map(([k, d]) => [k, cloneDomain(d)]));
  return withTables(s, ctxs, pages, domains);
}

/**
 * A copy of a state that nothing changes any more (a time-travel snapshot), to fold into: the object tables, the
 * iopt_pages and the domains are copied one entry at a time, when the fold first takes one out (cow_map.ts), so
 * rebuilding a point near a snapshot costs what the events in between touch, not the size of the state. The source
 * must stay unchanged for as long as the fork lives: the fork shares what it has not taken out yet.
 */
export function forkState(s: State): State {
  const ctxs = new Map<number, IommufdCtx>();
  for (const [k, c] of s.ctxs) ctxs.set(k, { ...c, objects: new CowMap(c.objects, thaw), ids: c.ids.clone(), v: cloneVCtx(c.v) });
  return withTables(s, ctxs, new CowMap(s.pages, clonePages), new CowMap(s.domains, cloneDomain));
}

function withTables(s: State, ctxs: Map<number, IommufdCtx>, pages: Map<number, IoptPages>, domains: Map<number, HwDomain>): State {
  return { ...s, fds: new Map(s.fds), ctxs, mm: cloneMm(s.mm), pages, domains, accounting: { ...s.accounting }, vfioBinds: new Map(s.vfioBinds), vfioGroups: new Map(s.vfioGroups), dmabufs: new Map([...s.dmabufs].map(([k, d]) => [k, cloneDmabuf(d)])), containers: cloneContainers(s.containers), vfioMemoryOff: new Set(s.vfioMemoryOff), mdevPins: new Map([...s.mdevPins].map(([k, m]) => [k, { container: m.container, pins: new Map(m.pins) }])) };
}
