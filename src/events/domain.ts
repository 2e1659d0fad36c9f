/**
 * Domain events: every decision the model makes, as immutable facts appended to the event log. State is only
 * ever derived from them (projections/state.ts `evolve`); the ioctl handlers (machines/) decide which events
 * happen and never write state themselves.
 *
 * Names follow the kernel where it has one (`ObjectAllocated` = `_iommufd_object_alloc`, `ObjectFinalized` =
 * `iommufd_object_finalize`, `ObjectAborted` = `iommufd_object_abort`, `ObjectDestroyed` = the destroy op run by
 * `iommufd_object_remove` or `iommufd_fops_release`).
 */
import type { Errno } from './errno.js';
import { MM_BIGINT_FIELDS, type MmEvent } from '../hw/mm.js';
import type { VObjectEvent } from '../projections/viommu.js';
import type { DmabufEvent } from '../hw/dmabuf.js';

export type ObjectKind =
  | 'IOAS' | 'HWPT_PAGING' | 'HWPT_NESTED' | 'DEVICE' | 'ACCESS' | 'FAULT' | 'VIOMMU' | 'VDEVICE' | 'VEVENTQ'
  | 'HW_QUEUE' | 'SELFTEST';
export const OBJECT_KINDS: readonly ObjectKind[] = [
  'IOAS', 'HWPT_PAGING', 'HWPT_NESTED', 'DEVICE', 'ACCESS', 'FAULT', 'VIOMMU', 'VDEVICE', 'VEVENTQ', 'HW_QUEUE', 'SELFTEST',
];

/** What an fd refers to. `ctx` is the iommufd_ctx of an open of /dev/iommu (or /dev/vfio/vfio under iommufd). */
export type FileRef =
  | { readonly kind: 'iommufd'; readonly ctx: number }
  | { readonly kind: 'memfd'; readonly memfd: number }
  | { readonly kind: 'other'; readonly path: string }
  /** A VFIO device cdev (`/dev/vfio/devices/vfioN`); its binding to an iommufd is in `State.vfioBinds`. */
  | { readonly kind: 'vfio_device'; readonly path: string }
  /** A VFIO group (`/dev/vfio/N`); its container is in `State.vfioGroups`. */
  | { readonly kind: 'vfio_group'; readonly group: number }
  /** A legacy VFIO container (`/dev/vfio/vfio` served by container.c and vfio_iommu_type1); hw/vfio_dma.ts. */
  | { readonly kind: 'vfio_container'; readonly container: number }
  /** The anonymous file of a selftest access (`[iommufd_test_staccess]`); closing it destroys the access. */
  | { readonly kind: 'access'; readonly ctx: number; readonly access: number }
  /** The anonymous file of a fault queue or vEVENTQ (`[iommufd-pgfault]`, `[iommufd-viommu-event]`), eventq.c. */
  | { readonly kind: 'eventq'; readonly ctx: number; readonly id: number }
  /** A dma-buf (hw/dmabuf.ts) of `size` bytes, exported by the selftest or by a VFIO device's BAR. */
  | { readonly kind: 'dmabuf'; readonly dmabuf: number; readonly size: bigint };

export type DomainEvent =
  | { readonly type: 'TraceStarted'; readonly pageSize: number; readonly memory: 'explicit' | 'implicit' }
  | { readonly type: 'FdInstalled'; readonly fd: number; readonly file: FileRef }
  | { readonly type: 'FdClosed'; readonly fd: number }
  /** iommufd_fops_open: a new context; `accountMode` 1 (MM) when opened as /dev/vfio/vfio. */
  | { readonly type: 'IommufdOpened'; readonly ctx: number; readonly accountMode: 0 | 1; readonly compat: boolean }
  /** A reference on the context's file held by something other than its fd (an access, a bound device). */
  | { readonly type: 'CtxRefTaken'; readonly ctx: number }
  | { readonly type: 'CtxRefDropped'; readonly ctx: number }
  /** iommufd_fops_release finished: every object destroyed, the context freed. */
  | { readonly type: 'IommufdReleased'; readonly ctx: number }
  | { readonly type: 'ObjectAllocated'; readonly ctx: number; readonly id: number; readonly kind: ObjectKind }
  | { readonly type: 'ObjectFinalized'; readonly ctx: number; readonly id: number }
  | { readonly type: 'ObjectAborted'; readonly ctx: number; readonly id: number }
  | { readonly type: 'ObjectDestroyed'; readonly ctx: number; readonly id: number }
  /** A long-term `users` reference on `id`, held by object `by` (an HWPT on its IOAS, a device on its HWPT…). */
  | { readonly type: 'ObjectRefTaken'; readonly ctx: number; readonly id: number; readonly by: number }
  | { readonly type: 'ObjectRefDropped'; readonly ctx: number; readonly id: number; readonly by: number }
  | { readonly type: 'AccountModeSet'; readonly ctx: number; readonly mode: 0 | 1 }
  /** `iopt_alloc_user_pages` / `iopt_alloc_file_pages`: the pages a MAP will slice into areas (nothing pinned yet). */
  | {
    readonly type: 'PagesCreated'; readonly pages: number; readonly kind: 'user' | 'file' | 'dmabuf'; readonly uptr: bigint;
    readonly memfd: number | undefined; readonly fileStart: bigint; readonly npages: number; readonly writable: boolean;
    /** The dma-buf of IOPT_ADDRESS_DMABUF pages (hw/dmabuf.ts). */
    readonly dmabuf?: number;
    /** IOPT_PAGES_ACCOUNT_NONE 0, USER 1, MM 2. */
    readonly accountMode: 0 | 1 | 2;
  }
  /** A kref on the pages held by an in-flight COPY (`iopt_get_pages`), so a racing unmap cannot free them. */
  | { readonly type: 'PagesRefTaken'; readonly pages: number }
  | { readonly type: 'PagesRefDropped'; readonly pages: number }
  /** An area's page range enters (+) or leaves (-) the pages' `domains_itree`: it is stored in a domain. */
  | { readonly type: 'AreaFilled'; readonly pages: number; readonly start: number; readonly last: number }
  | { readonly type: 'AreaUnfilled'; readonly pages: number; readonly start: number; readonly last: number }
  /** Pages [start, last] of an iopt_pages are pinned (FOLL_PIN | FOLL_LONGTERM) / unpinned, once per iopt_pages. */
  | { readonly type: 'PagesPinned'; readonly pages: number; readonly start: number; readonly last: number; readonly frame: number }
  | { readonly type: 'PagesUnpinned'; readonly pages: number; readonly start: number; readonly last: number }
  /** `iopt_pages_update_pinned`: RLIMIT_MEMLOCK accounting to the user (mode 1) or the mm (mode 2); pinned_vm always. */
  | { readonly type: 'AccountingCharged'; readonly mode: 0 | 1 | 2; readonly npages: number }
  | { readonly type: 'AccountingUncharged'; readonly mode: 0 | 1 | 2; readonly npages: number }
  /** The last reference to the pages went away (`iopt_release_pages`). */
  | { readonly type: 'PagesReleased'; readonly pages: number }
  /** `iopt_insert_area`: the area owns its IOVA but `pages` is still NULL (not published). */
  | {
    readonly type: 'AreaReserved'; readonly ctx: number; readonly ioas: number; readonly area: number; readonly start: bigint;
    readonly last: bigint; readonly pages: number; readonly pagesStart: number; readonly pagesLast: number;
    readonly pageOffset: number; readonly prot: number; readonly mappedAt: number;
  }
  | { readonly type: 'AreaPublished'; readonly ctx: number; readonly ioas: number; readonly area: number }
  /** `iopt_area_split` (VFIO type1 unmap): `area` became `lhs` = [start, last] and `rhs` = [last + 1, its last], same pages. */
  | { readonly type: 'AreaSplit'; readonly ctx: number; readonly ioas: number; readonly area: number; readonly last: bigint; readonly lhs: number; readonly rhs: number }
  | { readonly type: 'AreaUnpublished'; readonly ctx: number; readonly ioas: number; readonly area: number }
  | { readonly type: 'AreaRemoved'; readonly ctx: number; readonly ioas: number; readonly area: number }
  | { readonly type: 'AllowedIovasSet'; readonly ctx: number; readonly ioas: number; readonly ranges: readonly { readonly start: bigint; readonly last: bigint }[] }
  | { readonly type: 'ReservedAdded'; readonly ctx: number; readonly ioas: number; readonly start: bigint; readonly last: bigint; readonly owner: string }
  | { readonly type: 'ReservedRemoved'; readonly ctx: number; readonly ioas: number; readonly start: bigint; readonly last: bigint; readonly owner: string }
  /** A hardware IOMMU domain (an `iommu_domain`) comes into being; `owner` is the HWPT object holding it. */
  | {
    readonly type: 'DomainAllocated'; readonly domain: number; readonly kind: 'paging' | 'nested' | 'blocked';
    readonly driver: 'mock' | 'platform'; readonly pgsizeBitmap: bigint; readonly apertureStart: bigint;
    readonly apertureLast: bigint; readonly dirtyOps: boolean; readonly ctx: number; readonly hwpt: number;
  }
  | { readonly type: 'DomainFreed'; readonly domain: number }
  /** `iommu_map`: [iova, last] now translates to [phys, phys + last - iova]. */
  | { readonly type: 'DomainMapped'; readonly domain: number; readonly iova: bigint; readonly last: bigint; readonly phys: bigint }
  | { readonly type: 'DomainUnmapped'; readonly domain: number; readonly iova: bigint; readonly last: bigint }
  /** A device's DMA walked the page table and cached the translation of [iova, last] (IOMMU page granular). */
  | { readonly type: 'IotlbFilled'; readonly domain: number; readonly iova: bigint; readonly last: bigint; readonly phys: bigint; readonly prot: number }
  /** A device's DMA through the IOMMU: `phys` is where each translated piece landed. */
  | {
    readonly type: 'DmaCompleted'; readonly dev: string; readonly domain: number; readonly iova: bigint; readonly length: bigint;
    readonly write: boolean; readonly pieces: readonly { readonly iova: bigint; readonly last: bigint; readonly phys: bigint; readonly fromIotlb: boolean }[];
  }
  /** The IOMMU refused a DMA: no translation, or one without the needed permission (an IO page fault). */
  | { readonly type: 'IoPageFault'; readonly dev: string; readonly domain: number; readonly iova: bigint; readonly write: boolean; readonly reason: string }
  /** `iommu_iotlb_sync` / flush: cached translations of [iova, last] are gone. Only this empties an IOTLB. */
  | { readonly type: 'IotlbFlushed'; readonly domain: number; readonly iova: bigint; readonly last: bigint }
  /** mock_domain_set_dirty_tracking: MOCK_DIRTY_TRACK of `domain` changes (no event when unchanged). */
  | { readonly type: 'DomainDirtyTrackingSet'; readonly domain: number; readonly enabled: boolean }
  /** Leaf IOPTEs of `domain` become write-dirty; ranges sorted, disjoint, whole IOPTEs. */
  | { readonly type: 'DomainDirtied'; readonly domain: number; readonly ranges: readonly { readonly start: bigint; readonly last: bigint }[] }
  /** Write-dirty IOPTEs become clean (read_and_clear_dirty, or the clean snapshot before tracking starts). */
  | { readonly type: 'DomainDirtyCleared'; readonly domain: number; readonly ranges: readonly { readonly start: bigint; readonly last: bigint }[] }
  /** `iopt_table_add_domain` / `iopt_table_remove_domain`, with the IOAS alignment that results. */
  | { readonly type: 'IoptDomainAdded'; readonly ctx: number; readonly ioas: number; readonly domain: number; readonly iovaAlignment: bigint }
  | { readonly type: 'IoptDomainRemoved'; readonly ctx: number; readonly ioas: number; readonly domain: number; readonly iovaAlignment: bigint }
  /** A HWPT_PAGING object gets its domain and IOAS (`iommufd_hwpt_paging_alloc`); `auto` for an auto domain. */
  | {
    readonly type: 'HwptInitialized'; readonly ctx: number; readonly id: number; readonly ioas: number; readonly domain: number;
    readonly auto: boolean; readonly nestParent: boolean; readonly pasidCompat: boolean;
  }
  /** `iommufd_device_bind`: a DEVICE object for a VFIO device (`dev` is its path) or a mock device (`mock:N`). */
  | {
    readonly type: 'DeviceBound'; readonly ctx: number; readonly id: number; readonly dev: string; readonly group: string;
    readonly mock: boolean; readonly dirtyCapable: boolean; readonly pasidBits: number;
    /** A platform device's IOMMU (from the trace header): page sizes, aperture, reserved regions. */
    readonly pgsizeBitmap: bigint; readonly apertureStart: bigint; readonly apertureLast: bigint;
    readonly resv: readonly { readonly start: bigint; readonly last: bigint }[];
  }
  /** The selftest object of IOMMU_TEST_OP_MOCK_DOMAIN: mock device `mockDev`, bound as `idev`. */
  | { readonly type: 'SelftestInitialized'; readonly ctx: number; readonly id: number; readonly idev: number; readonly mockDev: number }
  /** `iommufd_hw_pagetable_attach` at `pasid` (0 = IOMMU_NO_PASID), and its undoing. */
  | { readonly type: 'DeviceAttached'; readonly ctx: number; readonly idev: number; readonly pasid: number; readonly hwpt: number }
  | { readonly type: 'DeviceDetached'; readonly ctx: number; readonly idev: number; readonly pasid: number }
  | VObjectEvent
  | DmabufEvent
  /** VFIO_DEVICE_BIND_IOMMUFD succeeded on device fd `fd`: it is device object `idev` of context `ctx`. */
  | { readonly type: 'VfioDeviceBound'; readonly fd: number; readonly ctx: number; readonly idev: number }
  | { readonly type: 'VfioDeviceUnbound'; readonly fd: number }
  /** VFIO_GROUP_SET_CONTAINER with an iommufd (the compat personality) / VFIO_GROUP_UNSET_CONTAINER. */
  | { readonly type: 'VfioGroupContainerSet'; readonly group: number; readonly ctx: number }
  | { readonly type: 'VfioGroupContainerUnset'; readonly group: number }
  /** `iommufd_access_create` (an emulated device's access to an IOAS). */
  | { readonly type: 'AccessInitialized'; readonly ctx: number; readonly id: number; readonly needsPinPages: boolean }
  /** `iopt_add_access` / `iopt_remove_access`, with the IOAS alignment that results. */
  | { readonly type: 'AccessAttached'; readonly ctx: number; readonly id: number; readonly ioas: number; readonly alignment: bigint; readonly iovaAlignment: bigint }
  | { readonly type: 'AccessDetached'; readonly ctx: number; readonly id: number; readonly ioas: number; readonly iovaAlignment: bigint }
  /** `iommufd_access_pin_pages`: item `item` holds page ranges of the areas it covers. */
  | {
    readonly type: 'AccessPinned'; readonly ctx: number; readonly id: number; readonly item: number; readonly iova: bigint;
    readonly length: bigint; readonly pieces: readonly { readonly area: number; readonly pages: number; readonly start: number; readonly last: number }[];
  }
  | { readonly type: 'AccessUnpinned'; readonly ctx: number; readonly id: number; readonly item: number }
  /** `area->prevent_access = true`: set by an unmap that must notify accesses; never cleared. */
  | { readonly type: 'AreaAccessPrevented'; readonly ctx: number; readonly ioas: number; readonly area: number }
  /** IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT: the selftest's global cap on pinning batch memory. */
  | { readonly type: 'TestMemoryLimitSet'; readonly limit: number }
  | { readonly type: 'IoasLargePagesSet'; readonly ctx: number; readonly id: number; readonly disableLargePages: boolean; readonly iovaAlignment: bigint }
  | { readonly type: 'VfioIoasSet'; readonly ctx: number; readonly id: number }
  /** `vfio_fops_open`: a new legacy container, no group, no driver. */
  | { readonly type: 'VfioContainerOpened'; readonly container: number }
  /** `vfio_container_attach_group` / `vfio_group_detach_container`: the group joins (at the head) or leaves. */
  | { readonly type: 'VfioContainerGroupAdded'; readonly container: number; readonly group: number }
  | { readonly type: 'VfioContainerGroupRemoved'; readonly container: number; readonly group: number }
  /** `vfio_iommu_type1_open` (SET_IOMMU): `dmaAvail` = `dma_entry_limit`. */
  | { readonly type: 'Type1IommuOpened'; readonly container: number; readonly v2: boolean; readonly dmaAvail: number }
  /** `vfio_iommu_type1_release`: every dma and domain is already gone. */
  | { readonly type: 'Type1IommuReleased'; readonly container: number }
  /** A hardware group attached to (detached from) the container's domain, with the iova_list and pgsize_bitmap after. */
  | {
    readonly type: 'Type1DomainAttached'; readonly container: number; readonly group: number; readonly domain: number;
    readonly iovaList: readonly { readonly start: bigint; readonly last: bigint }[]; readonly pgsizeBitmap: bigint;
  }
  | {
    readonly type: 'Type1DomainDetached'; readonly container: number; readonly group: number;
    readonly iovaList: readonly { readonly start: bigint; readonly last: bigint }[]; readonly pgsizeBitmap: bigint;
  }
  /** `vfio_dma_do_map` succeeded: the dma is linked, pinned (`pinned` frame runs), mapped and charged (`lockedVm`). */
  | {
    readonly type: 'VfioDmaLinked'; readonly container: number; readonly iova: bigint; readonly size: bigint; readonly vaddr: bigint;
    readonly prot: number; readonly lockCap: boolean; readonly pinned: readonly { readonly frame: number; readonly npages: number }[];
    readonly lockedVm: number; readonly hasRsvd: boolean;
    /** `dma->mm`: the mm the charges go to (State.mmId when linked); `mapped`: `dma->iommu_mapped` (false without a hardware domain). */
    readonly mm: number; readonly mapped: boolean;
  }
  /** UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_VADDR: the dma's user VA is invalid (mapping and pins stay, `vaddr_invalid_count++`). */
  | { readonly type: 'VfioDmaVaddrInvalidated'; readonly container: number; readonly iova: bigint }
  /** MAP_DMA with VFIO_DMA_MAP_FLAG_VADDR: the dma gets its new user VA (`vaddr_invalid_count--`). */
  | { readonly type: 'VfioDmaVaddrUpdated'; readonly container: number; readonly iova: bigint; readonly vaddr: bigint }
  // ---- type1 dirty page tracking (vfio_iommu_type1.c; machines/vfio_type1_dirty.ts) ----
  /**
   * VFIO_IOMMU_DIRTY_PAGES START (`vfio_dma_bitmap_alloc_all`: every dma gets a zeroed bitmap) or STOP
   * (`vfio_dma_bitmap_free_all`); `dirty_page_tracking` of the container's type1 instance.
   */
  | { readonly type: 'Type1DirtyTrackingSet'; readonly container: number; readonly enabled: boolean }
  /**
   * `vfio_iova_dirty_bitmap` / `vfio_dma_do_unmap` reported the dma's bitmap (`update_user_bitmap`), then cleared its
   * first `size >> pgshift` bits: `tail` is what the kernel's bitmap still holds past them (the bits a shifted,
   * OR-merged report left there), as a number whose bit 0 is the dma's bit nbits.
   */
  | { readonly type: 'VfioDmaBitmapReported'; readonly container: number; readonly iova: bigint; readonly tail: bigint }
  /** A PCI_COMMAND write through the config region turned the device's memory decode off or on (`vconfig` MEMORY bit). */
  | { readonly type: 'VfioPciMemoryDecodeSet'; readonly dev: string; readonly enabled: boolean }
  // ---- the external pin API of mediated devices, and exec (vfio_iommu_type1.c; machines/vfio_type1_mdev.ts, exec.ts) ----
  /** `vfio_iommu_type1_attach_group` / `_detach_group` of an emulated (mdev) group: `iommu->emulated_iommu_groups`. */
  | { readonly type: 'Type1EmulatedGroupAdded'; readonly container: number; readonly group: number }
  | { readonly type: 'Type1EmulatedGroupRemoved'; readonly container: number; readonly group: number }
  /**
   * `vfio_add_to_pfn_list`: a vpfn keyed by exact `iova` in the dma starting at `dma`, ref_count 1, holding the FOLL_PIN
   * of `pfn` (`ram`: the pfn has a struct page); `charged`: `vfio_lock_acct(dma, 1)` charged it (no hardware domain).
   */
  | { readonly type: 'VfioPfnPinned'; readonly container: number; readonly dma: bigint; readonly iova: bigint; readonly pfn: bigint; readonly ram: boolean; readonly charged: boolean }
  /** `vfio_iova_get_vfio_pfn` (+1) / `vfio_iova_put_vfio_pfn` (-1, the count stays above 0). */
  | { readonly type: 'VfioPfnRefChanged'; readonly container: number; readonly dma: bigint; readonly iova: bigint; readonly delta: number }
  /** `vfio_iova_put_vfio_pfn` dropped the last reference: `put_pfn` and `vfio_remove_from_pfn_list`; `uncharged`: -1 to the dma. */
  | { readonly type: 'VfioPfnUnpinned'; readonly container: number; readonly dma: bigint; readonly iova: bigint; readonly uncharged: boolean }
  /** `vfio_change_dma_owner` (MAP_DMA VADDR from another mm): the dma's `mm` and `lock_cap` (the charges are LockedVmAccounted). */
  | { readonly type: 'VfioDmaOwnerChanged'; readonly container: number; readonly iova: bigint; readonly mm: number; readonly lockCap: boolean }
  /** `vfio_iommu_unmap_unpin_reaccount`: the dma's IOMMU pins, `dma->locked_vm` and `iommu_mapped`, set anew. */
  | { readonly type: 'VfioDmaPinsSet'; readonly container: number; readonly iova: bigint; readonly pinned: readonly { readonly frame: number; readonly npages: number }[]; readonly lockedVm: number; readonly mapped: boolean }
  /** `vfio_iommu_type1_dma_rw_chunk` wrote pages [first, last] (indices of the smallest IOMMU page in the dma) while tracking. */
  | { readonly type: 'VfioDmaDirtied'; readonly container: number; readonly iova: bigint; readonly first: bigint; readonly last: bigint }
  /**
   * The mdev driver's own record of what it pinned (not kernel type1 state: the model of the driver that calls the
   * API): `npage` pages from `iova` pinned (+1) or unpinned (-1) by `dev`, whose group is in `container`.
   */
  | { readonly type: 'MdevDriverPins'; readonly dev: string; readonly container: number; readonly iova: bigint; readonly npage: number; readonly delta: 1 | -1 }
  /** fs/exec.c exec_mmap: the process runs on a new mm `mm` (locked_vm and pinned_vm 0); the old one is torn down. */
  | { readonly type: 'ProcessExeced'; readonly mm: number }
  /** `vfio_remove_dma`: unlinked (its unmap, unpin and un-charge are their own events). */
  | { readonly type: 'VfioDmaRemoved'; readonly container: number; readonly iova: bigint }
  /** `vfio_lock_acct` → `__account_locked_vm`: `npages` (signed) added to the mapper's `mm->locked_vm`. */
  | { readonly type: 'LockedVmAccounted'; readonly npages: number }
  /**
   * A device can still DMA to memory its owner disabled (CVE-2020-12888's hazard): a type1 mapping of `exporter`'s
   * BAR survives its reset or disable in [iova, last] of `container` (vfio-type1-spec.md §4.2). Changes no state;
   * replay reports it as a warning.
   */
  | { readonly type: 'StaleDeviceMapping'; readonly exporter: string; readonly container: number; readonly iova: bigint; readonly last: bigint; readonly why: string }
  /**
   * Peer-to-peer revocation: the IOMMU mapping [iova, last] of another device's memory (dma-buf `dmabuf`, exported by
   * `exporter`) in `domain`, area `area` of IOAS `ioas`, is removed because the exporter revoked it (pages.c
   * `iopt_revoke_notify` → `iopt_area_unmap_domain_range`). Changes no state: the DomainUnmapped and IotlbFlushed
   * that follow it do.
   */
  | {
    readonly type: 'P2pUnmap'; readonly dmabuf: number; readonly exporter: string; readonly ctx: number; readonly ioas: number;
    readonly area: number; readonly domain: number; readonly iova: bigint; readonly last: bigint;
  }
  /** The user memory model's events (hw/mm.ts): VMAs, memfds, faults, contents, pins, mmu_notifier. */
  | MmEvent
  /** The outcome of one traced call, as the model decided it. */
  | { readonly type: 'CallCompleted'; readonly op: string; readonly ret: bigint | undefined; readonly errno: Errno | undefined; readonly why: string }
  /**
   * A check of the invariant library (projections/invariants.ts) failed after log entry `at` (the event, or the last
   * event of the atomic step, that broke it); changes no state.
   */
  | { readonly type: 'InvariantViolated'; readonly name: string; readonly message: string; readonly rule: string; readonly at: number }
  /** Observed and predicted differ (trace-format "Replay verdict"); changes no state. */
  | { readonly type: 'Diverged'; readonly field: string; readonly observed: string; readonly predicted: string; readonly why: string };

export type EventType = DomainEvent['type'];
export type EventOfType<T extends EventType> = Extract<DomainEvent, { type: T }>;

/** One log entry: the event, its position, and the trace line and thread that caused it. */
export interface LogEntry {
  readonly n: number;
  readonly line: number;
  readonly tid: number;
  readonly ev: DomainEvent;
}

/** The fields of each event type that hold u64 values (bigint), so the log codec can write and revive them. */
export const BIGINT_FIELDS: Readonly<Partial<Record<EventType, readonly string[]>>> = {
  ...MM_BIGINT_FIELDS,
  CallCompleted: ['ret'],
  VdeviceInitialized: ['virtId'],
  DmabufExported: ['size', 'phys'],
  P2pUnmap: ['iova', 'last'],
  HwQueueInitialized: ['base', 'length'],
  MmapCookieAdded: ['start', 'length'],
  MmapCookieRemoved: ['start'],
  CookieVmaMapped: ['start', 'last', 'cookie'],
  CookieVmaUnmapped: ['start'],
  PagesCreated: ['uptr', 'fileStart'],
  AreaReserved: ['start', 'last'],
  AreaSplit: ['last'],
  ReservedAdded: ['start', 'last'],
  ReservedRemoved: ['start', 'last'],
  DomainAllocated: ['pgsizeBitmap', 'apertureStart', 'apertureLast'],
  DeviceBound: ['pgsizeBitmap', 'apertureStart', 'apertureLast'],
  DomainMapped: ['iova', 'last', 'phys'],
  DomainUnmapped: ['iova', 'last'],
  IotlbFilled: ['iova', 'last', 'phys'],
  IotlbFlushed: ['iova', 'last'],
  DmaCompleted: ['iova', 'length'],
  IoPageFault: ['iova'],
  IoptDomainAdded: ['iovaAlignment'],
  IoptDomainRemoved: ['iovaAlignment'],
  IoasLargePagesSet: ['iovaAlignment'],
  AccessAttached: ['alignment', 'iovaAlignment'],
  AccessDetached: ['iovaAlignment'],
  AccessPinned: ['iova', 'length'],
  Type1DomainAttached: ['pgsizeBitmap'],
  Type1DomainDetached: ['pgsizeBitmap'],
  VfioDmaLinked: ['iova', 'size', 'vaddr'],
  VfioDmaRemoved: ['iova'],
  VfioDmaVaddrInvalidated: ['iova'],
  VfioDmaVaddrUpdated: ['iova', 'vaddr'],
  VfioDmaBitmapReported: ['iova', 'tail'],
  VfioPfnPinned: ['dma', 'iova', 'pfn'],
  VfioPfnRefChanged: ['dma', 'iova'],
  VfioPfnUnpinned: ['dma', 'iova'],
  VfioDmaOwnerChanged: ['iova'],
  VfioDmaPinsSet: ['iova'],
  VfioDmaDirtied: ['iova', 'first', 'last'],
  MdevDriverPins: ['iova'],
  StaleDeviceMapping: ['iova', 'last'],
};
/** Event fields holding arrays of {start, last} u64 ranges. */
export const RANGE_LIST_FIELDS: Readonly<Partial<Record<EventType, readonly string[]>>> = {
  AllowedIovasSet: ['ranges'],
  DeviceBound: ['resv'],
  DomainDirtied: ['ranges'],
  DomainDirtyCleared: ['ranges'],
  Type1DomainAttached: ['iovaList'],
  Type1DomainDetached: ['iovaList'],
};
