/**
 * Mutants: named, switchable faults that put real kernel bugs (../shared/spec/seeded-bugs.md) back into the model,
 * so that `iotrail check --mutant NAME` can show the property checks find them. Each is a guarded edit of 1-6 lines
 * in a model file, `if (isMutant('name'))`, listed here with its file and anchor; the switch is module-level and off
 * unless `setMutants` turns it on, so the guards cost one Set lookup on an empty set.
 *
 * This module imports nothing: the model files import `isMutant` from it.
 */

export interface MutantDef {
  readonly name: string;
  /** The seeded bug it reproduces (seeded-bugs.md). */
  readonly bug: string;
  readonly description: string;
  /** The invariant(s) expected to catch it. */
  readonly caughtBy: readonly string[];
  /** Where the guarded edit goes. */
  readonly file: string;
  readonly anchor: string;
  /** Set when the mutant cannot be applied yet: what the model lacks. */
  readonly pending?: string;
}

export const MUTANTS: readonly MutantDef[] = [
  {
    name: 'unfill-past-end',
    bug: 'B2 (linux@727c28c1cef2, CVE-2023-53630)',
    description: 'iopt_area_unpin_domain computes batch_last_index from `start` instead of `start_index`: when an access pins a sub-range of a filled area, unfilling it unpins past the end of the hole after the access\'s pages (past the area\'s end)',
    caughtBy: ['evolve-accepts', 'pin-conservation'],
    file: 'src/hw/iopt_domains.ts',
    anchor: 'unfillArea: the unpin loop `for (const free of withoutAccessPins(p, r.start, r.last)) {`',
  },
  {
    name: 'iova-align-wrap',
    bug: 'B5 (CVE-2025-38688)',
    description: '__alloc_iova_check_range uses ALIGN() without an overflow check: near the top of the IOVA space the aligned start wraps to 0 and MAP without FIXED_IOVA lands on a reserved range or another area',
    caughtBy: ['areas-outside-reserved', 'areas-disjoint', 'evolve-accepts'],
    file: 'src/hw/iova_alloc.ts',
    anchor: 'checkRange: `const up = alignUp(start, align);`',
  },
  {
    name: 'unpin-before-flush',
    bug: 'IOTLB: unpin before flush (seeded-bugs.md "IOTLB")',
    description: 'UNMAP unpins the pages before the IOTLB flush that covers them: a device can still DMA into a page the process reuses',
    caughtBy: ['unpin-after-unmap'],
    file: 'src/hw/iopt_domains.ts',
    anchor: 'unfillArea: the flushes of `for (const d of domains) events.push({ type: \'DomainUnmapped\' …` move after the unpin loop',
  },
  {
    name: 'auto-domain-leak',
    bug: 'auto domain not destroyed with its last device (iommufd_hw_pagetable_put / iommufd_object_put_and_try_destroy)',
    description: 'detaching the last device from an auto domain drops its reference but does not destroy it',
    caughtBy: ['auto-domain-in-use'],
    file: 'src/machines/device.ts',
    anchor: 'detachEvents: `if (hwpt.hwpt?.auto && hwpt.users === 2)`',
  },
  {
    name: 'destroy-unlocked-ref',
    bug: 'B1 (linux@99f98a7c0d69, CVE-2023-53795)',
    description: 'IOMMU_DESTROY takes a temporary users reference outside destroy_rwsem, drops its locks, then decides: a kernel-side destroy racing it (closing an access) sees users != 1 and frees an object still referenced',
    // auto-domain-in-use: the racing kernel-side destroy is the auto domain's, whose last device left it; it sees the
    // stray reference and leaves the domain alive.
    caughtBy: ['freed-at-one', 'evolve-accepts', 'auto-domain-in-use'],
    file: 'src/machines/main.ts',
    anchor: 'iommufd_destroy: after the ENOENT lookup, before `if (o.users !== 1)` (the operation is mutant_ops.ts destroyUnlockedRef)',
  },
  {
    name: 'access-replace-stale',
    bug: 'B7 (linux@f1fb745ee0a6)',
    description: 'iopt_add_access(new) overwrites iopt_access_list_id before iopt_remove_access(old): the access stays in the old IOAS\'s access list',
    caughtBy: ['access-one-ioas'],
    file: 'src/machines/selftest_access.ts',
    anchor: 'access_replace_ioas: the final `return succeed(… moved from IOAS …, [...unpin, ...accessDetachEvents(…), ...att])`',
  },
  {
    name: 'hwpt-list-dup',
    bug: 'B9 (CVE-2023-54043)',
    description: 'attaching a device to an existing HWPT re-adds it to ioas->hwpt_list',
    caughtBy: ['hwpt-list-set'],
    file: 'src/machines/device.ts',
    anchor: 'attachPt: after `const ev = attachEvents(st, ctx, idev, pasid, { id: pt.id, hwpt: pt.hwpt! }, …)`',
  },
  {
    name: 'type1-zero-page-pin',
    bug: 'S9 (linux@873aefb376bb "vfio/type1: Unpin zero pages", v6.0; vfio-type1-spec.md §7)',
    description: 'a read-only MAP_DMA of untouched private anonymous memory pins the shared zero page, which is_invalid_reserved_pfn calls reserved: type1 maps it but never charges it nor unpins it at unmap (the pin leaks)',
    caughtBy: ['pin-conservation'],
    file: 'src/hw/type1_pins.ts',
    anchor: 'vfio_pin_map_dma: `if (isMutant(\'type1-zero-page-pin\') && !write)` after the DomainMapped loop (the runs: mutant_ops.ts zeroPagePinRuns)',
  },
  {
    name: 'type1-no-dma-limit',
    bug: 'S1 (CVE-2019-3882, linux@492855939bdb, v5.1; vfio-type1-spec.md §7)',
    description: 'MAP_DMA has no dma_entry_limit: a process creates vfio_dmas without bound (kernel memory exhaustion); with the checker\'s dma_entry_limit of 4 the fifth MAP succeeds',
    caughtBy: ['type1-dma-limit'],
    file: 'src/machines/vfio_type1.ts',
    anchor: 'mapDma: `if (i.dmaAvail === 0 && !isMutant(\'type1-no-dma-limit\'))`',
  },
  {
    name: 'type1-top-wrap',
    bug: 'S15 (the 2025 type1 overflow series, Fixes 73fa0d10d077; vfio-type1-spec.md §7, §8)',
    description: 'vfio_find_dma uses the exclusive end iova + size, which wraps to 0 for a range ending at 2^64 - 1: MAP_DMA there finds no overlap, and a second mapping over a live one is linked into the rb-tree',
    caughtBy: ['evolve-accepts'],
    file: 'src/machines/vfio_type1.ts',
    anchor: 'mapDma: `const hit = isMutant(\'type1-top-wrap\') && last === U64_MAX ? undefined : vfio_find_dma(…)`',
  },
  {
    name: 'access-rw-during-change',
    bug: 'B8 (linux@cf7c2789822d, CVE-2024-26785)',
    description: 'the access changes IOAS in two steps with ioas_lock dropped in between, and the selftest IOVA converter reads access->ioas without the lock: an ACCESS_PAGES or ACCESS_RW racing the change dereferences an access attached to no IOAS (handler-total), and a close racing it frees the access under the change (evolve-accepts)',
    // iova-alignment: between the two halves of the change the IOAS's alignment is recomputed without the access.
    caughtBy: ['handler-total', 'evolve-accepts', 'iova-alignment'],
    file: 'src/machines/selftest_access.ts',
    anchor: 'syzConvAccess (the ioas == 0 check) and access_replace_ioas (one step)',
  },
  {
    name: 'split-no-reinsert',
    bug: 'B6 (linux@e7250ab7ca49)',
    description: 'iopt_area_split removes the area from pages->domains_itree and never inserts the two halves: the fill index forgets a filled range, and the unfill of the halves later underflows it (a use after free in the kernel)',
    caughtBy: ['fill-index'],
    file: 'src/hw/iopt_split.ts',
    anchor: 'iopt_cut_iova: after `events.push(asDomainEvent({ type: \'AreaSplit\', …`',
  },
  {
    name: 'revoke-no-unmap',
    bug: 'B14 (P2P / dma-buf revocation ordering, CVE-2026-53322)',
    description: 'dma_buf_move_notify(revoked) marks the iopt_pages dead but does not unmap the domains that map them: a device still reaches memory its exporter took back',
    caughtBy: ['revoked-unreachable'],
    file: 'src/hw/dmabuf.ts',
    anchor: 'moveNotifyEvents: before the P2pUnmap/DomainUnmapped of each tracked area',
  },
  {
    name: 'cookie-outlives-owner',
    bug: 'mmap cookies: the cookie goes with its owner (iommufd-device-spec.md §4.3; driver.c _iommufd_destroy_mmap)',
    description: 'destroying the owner of an mmap cookie (a vIOMMU) leaves the cookie in the context\'s mmap tree: a later mmap of that offset maps memory the owner no longer holds',
    caughtBy: ['cookie-owner-live'],
    file: 'src/hw/mmap_cookie.ts',
    anchor: 'cookieDestroyEvents: the loop removing the owner\'s cookies',
  },
  {
    name: 'type1-exec-locked-vm',
    bug: 'S6 (linux@046eca5018f8, 18e292705ba2, 90fdd158a695; Fixes c3cbab24db38; v6.2; vfio-type1-spec.md §7)',
    description: 'MAP, UNMAP(VADDR), exec, MAP(VADDR), UNMAP: the un-charge goes to the new mm (get_task_mm of the group leader), which never was charged: its locked_vm underflows',
    caughtBy: ['accounting-balance'],
    file: 'src/hw/type1_pins.ts',
    anchor: 'changeDmaOwner: `if (isMutant(\'type1-exec-locked-vm\'))` (the dma follows the new mm without its charge moving)',
  },
  {
    name: 'type1-mdev-pin-count',
    bug: 'S10 ("vfio/type1: fix vaddr_get_pfns() return in vfio_pin_page_external()", after 4d83de6da265; vfio-type1-spec.md §7)',
    description: 'vaddr_get_pfns returns the number of pages it got, 1; vfio_pin_page_external passed that on when it charged nothing (a hardware domain in the container), vfio_iommu_type1_pin_pages took it for an error and returned 1 after pin_unwind: the page stays pinned with no vpfn, and an mdev that pinned one page believes it holds it',
    caughtBy: ['type1-vpfn-balance', 'pin-conservation'],
    file: 'src/hw/type1_external.ts',
    anchor: 'ExtDraft.pinPage: `if (isMutant(\'type1-mdev-pin-count\') && (!doAccounting || !ram))`',
  },
  {
    name: 'type1-mdev-pfnmap-pin',
    bug: 'S11 (the pfn_valid check in vfio_iommu_type1_pin_pages; vfio-type1-spec.md §7)',
    description: 'an mdev pins an IOVA whose vfio_dma maps a VM_PFNMAP VMA (a BAR mmap): without the pfn_valid check the BAR pfn is linked as a vpfn and handed out as a struct page',
    caughtBy: ['type1-vpfn-page'],
    file: 'src/hw/type1_external.ts',
    anchor: 'ExtDraft.pinPage: `if (!ram && !isMutant(\'type1-mdev-pfnmap-pin\'))`',
  },
  {
    name: 'type1-vpfn-range-lookup',
    bug: 'S13 (Li Zhe\'s fix-up of 492d1e9f0df7 "vfio/type1: optimize vfio_pin_pages_remote()", v6.17; vfio-type1-spec.md §7)',
    description: 'vfio_find_vpfn(dma, iova) looks up any vpfn in [iova, iova + PAGE_SIZE): an mdev pins two IOVAs in one page, unpinning the lower drops the higher one\'s vpfn, the other unpin finds nothing, and a stale vpfn stays (DMA_UNMAP then loops on the notifier and BUG()s)',
    caughtBy: ['type1-vpfn-balance'],
    file: 'src/hw/type1_vpfn.ts',
    anchor: 'findVpfn: `if (isMutant(\'type1-vpfn-range-lookup\'))`',
  },
];

const enabled = new Set<string>();

/** Whether mutant `name` is switched on. The guards in the model files call this. */
export function isMutant(name: string): boolean {
  return enabled.size !== 0 && enabled.has(name);
}

/** Switches exactly these mutants on (none: the model as it is). Unknown names throw. */
export function setMutants(names: readonly string[]): void {
  for (const n of names) if (!MUTANTS.some((m) => m.name === n)) throw new Error(`unknown mutant ${JSON.stringify(n)} (iotrail check --list-mutants)`);
  enabled.clear();
  for (const n of names) enabled.add(n);
}

export const enabledMutants = (): string[] => [...enabled].sort();
export const mutantDef = (name: string): MutantDef | undefined => MUTANTS.find((m) => m.name === name);
