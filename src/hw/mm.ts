/**
 * The process's user memory as the IOMMU API sees it: VMAs (mm/mmap.c), memfds and shared anonymous memory
 * (mm/shmem.c, mm/memfd.c), the page table and its faults (mm/memory.c), page contents, FOLL_PIN pins
 * (mm/gup.c) and the mmu_notifier invalidations that munmap, madvise and truncation send (mm/mmu_notifier.c).
 *
 * - **Frames.** A frame is a physical page; its id plays the PFN. Frames are handed out in increasing order and
 *   never reused. The page table maps virtual pages to frames and is filled on first touch: private anonymous
 *   memory (and, with header `memory: "implicit"`, any address outside a known VMA) gets fresh frames; a shared
 *   mapping of a memfd maps the memfd's own page-cache frames (two mappings of one file page share its frame); a
 *   MAP_SHARED|MAP_ANONYMOUS mapping is backed by a shmem object like a memfd (shmem_zero_setup), which lives while
 *   a VMA maps it; a private mapping of a memfd reads through to the file until a write (or a FOLL_LONGTERM pin,
 *   which unshares: mm/gup.c gup_must_unshare) copies the page into a fresh anonymous frame (do_cow_fault).
 *   Memfd pages live until ftruncate shrinks the file past them; closing the memfd is not modelled.
 * - **Runs, not pages.** Every table is kept as runs (mm_runmap.ts, range_map.ts): faulting 1 TiB of one VMA is
 *   one page-table run, one frame-table run and (pinned) one pin run. Only written page contents cost per page.
 * - **Contents** are sparse: a frame has bytes once written; anything else reads as zeros. Reading never faults
 *   anything in (a read fault of anonymous memory maps the shared zero page, which is not a frame of its own here).
 * - **Pins** are per frame (RangeMap), so a pinned frame outlives munmap/MADV_DONTNEED/truncation with its pins
 *   and contents, while the virtual address no longer reaches it (`staleUserRanges`).
 *
 * Decision helpers (mm_access.ts, mm_unmap.ts) read the state and return events; `mmEvolve` (mm_evolve.ts) is
 * the only code that changes it. Frame ids come from `nextFrame`, so a decision made on the state assumes the
 * previous one was folded; to chain several decisions in one atomic step, pass them one `mmDraft(state)`
 * (mm_draft.ts), which sees its own earlier decisions.
 */
export type InvalidateReason = 'munmap' | 'madvise_dontneed' | 'madvise_free' | 'madvise_remove' | 'truncate'
  /** vfio_pci_zap_bars: unmap_mapping_range over a VFIO device's BAR mappings (memory disable, reset, close). */
  | 'vfio_zap';

/**
 * Events of the memory model. Addresses and file offsets are bigint bytes (`last` inclusive, page aligned ranges);
 * frames are numbers; `count` is a number of frames.
 */
export type MmEvent =
  | {
    readonly type: 'VmaMapped'; readonly start: bigint; readonly length: bigint; readonly prot: number; readonly flags: number; readonly memfd: number | undefined; readonly offset: bigint;
    /** A VM_IO|VM_PFNMAP mapping of this VFIO device's regions (`vfio_pci_core_mmap`); `offset` is the region offset. */
    readonly pfnmap?: string;
  }
  | { readonly type: 'VmaUnmapped'; readonly start: bigint; readonly length: bigint }
  | { readonly type: 'MemfdCreated'; readonly memfd: number; readonly name: string }
  /** The new i_size. Pages wholly past it must have been dropped first; the tail of a partial last page is zeroed. */
  | { readonly type: 'MemfdResized'; readonly memfd: number; readonly size: bigint }
  /** mm/shmem.c shmem_get_folio_gfp: fresh zero frames `frame…` enter file `file`'s page cache at [start, last]. */
  | { readonly type: 'FilePagesAdded'; readonly file: number; readonly start: bigint; readonly last: bigint; readonly frame: number }
  /** Truncation, hole punch or the release of a shmem object: the page cache forgets [start, last]. */
  | { readonly type: 'FilePagesDropped'; readonly file: number; readonly start: bigint; readonly last: bigint }
  /**
   * A fault fills the PTEs of [start, last] (mm/memory.c handle_mm_fault): `anon` with fresh zero frames from
   * `frame` (do_anonymous_page); `cow` with fresh frames holding a copy of file `file`'s pages from `offset`
   * (do_cow_fault); `file` with the frames file `file` caches from `offset`, which must be `frame…` (do_shared_fault).
   */
  | {
    readonly type: 'PagesFaulted'; readonly start: bigint; readonly last: bigint; readonly frame: number;
    readonly source: 'anon' | 'cow' | 'file'; readonly file: number | undefined; readonly offset: bigint;
  }
  /** mm/memory.c zap_page_range_single / unmap_vmas: the PTEs of [start, last] are gone. */
  | { readonly type: 'PtesZapped'; readonly start: bigint; readonly last: bigint }
  /** Frames that nothing maps, caches or pins any more are freed (their contents with them). */
  | { readonly type: 'FramesFreed'; readonly frame: number; readonly count: number }
  /** One FOLL_PIN reference on each of `count` frames from `frame` (mm/gup.c try_grab_folio), and its release. */
  | { readonly type: 'FramesPinned'; readonly frame: number; readonly count: number }
  | { readonly type: 'FramesUnpinned'; readonly frame: number; readonly count: number }
  /** Bytes stored from `offset` in `frame` on (running on into the following frames); `data` is lowercase hex. */
  | { readonly type: 'MemWritten'; readonly frame: number; readonly offset: number; readonly data: string }
  /** mmu_notifier_invalidate_range_start for [start, last], sent before the page table changes. */
  | { readonly type: 'MmuNotifierInvalidate'; readonly start: bigint; readonly last: bigint; readonly reason: InvalidateReason };

export type MmEventType = MmEvent['type'];

/** What `mmEvolve` folds: the memory events, and the trace header's page size. */
export type MmInput = MmEvent | { readonly type: 'TraceStarted'; readonly pageSize: number };

export const MM_EVENT_TYPES: readonly MmEventType[] = [
  'VmaMapped', 'VmaUnmapped', 'MemfdCreated', 'MemfdResized', 'FilePagesAdded', 'FilePagesDropped', 'PagesFaulted',
  'PtesZapped', 'FramesFreed', 'FramesPinned', 'FramesUnpinned', 'MemWritten', 'MmuNotifierInvalidate',
];

/** The bigint (u64) fields of each memory event, for the log codec. */
export const MM_BIGINT_FIELDS: Readonly<Partial<Record<MmEventType, readonly string[]>>> = {
  VmaMapped: ['start', 'length', 'offset'],
  VmaUnmapped: ['start', 'length'],
  MemfdResized: ['size'],
  FilePagesAdded: ['start', 'last'],
  FilePagesDropped: ['start', 'last'],
  PagesFaulted: ['start', 'last', 'offset'],
  PtesZapped: ['start', 'last'],
  MmuNotifierInvalidate: ['start', 'last'],
};

export type MemoryMode = 'explicit' | 'implicit';
export type MmErrno = 'EFAULT' | 'EINVAL' | 'ENOMEM' | 'EACCES';

/** A decision that succeeded: the events to emit, and why. */
export interface MmDone {
  readonly events: readonly MmEvent[];
  readonly why: string;
}
/**
 * A decision that failed. `events` are the effects that happened before the failure and must still be emitted:
 * copy_to_user's partial copy up to the faulting page, the pages GUP faulted in before the one it could not,
 * madvise on the VMAs before the failing one.
 */
export interface MmFault {
  readonly errno: MmErrno;
  readonly why: string;
  readonly events: readonly MmEvent[];
}
export const isMmFault = (r: object): r is MmFault => 'errno' in r;

/**
 * `npages` consecutive pages from `start` (a user VA, or a byte offset in the memfd for file pins) and the
 * consecutive frames from `frame` that were pinned for them.
 */
export interface PinnedRun {
  readonly start: bigint;
  readonly frame: number;
  readonly npages: number;
}
export interface MmPinned extends MmDone {
  readonly runs: readonly PinnedRun[];
}

export {
  emptyMm, cloneMm, findVma, isFullyMapped, chooseMmapAddress, frameAt, vmasIn, backingOf,
  type Vma, type Memfd, type Shmem, type FrameInfo, type MmState, type Backing,
} from './mm_state.js';
export { mmEvolve } from './mm_evolve.js';
export { mmDraft, MmDraft } from './mm_draft.js';
export {
  memRead, memWriteEvents, pinUserRange, pinFileRange, unpinFrames, unpinFrames as unpinUserRange,
  unpinFrames as unpinFileRange, staleUserRanges, staleUserRanges as staleRanges, staleFileRanges, pinCountAt,
} from './mm_access.js';
export { munmapEvents, mmapEvents, madviseEvents, ftruncateEvents } from './mm_unmap.js';
export { viewMm, mmRunCount, checkMmInvariants, type MmView } from './mm_view.js';
