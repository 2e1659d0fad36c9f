/**
 * Touching user memory: CPU stores and loads (`mem_write`, `mem_read`) and the kernel's copy_to_user /
 * copy_from_user, which take the same path; FOLL_PIN of user pages (pin_user_pages_fast with FOLL_LONGTERM, as
 * iommufd's pages.c pins them) and of memfd pages (memfd_pin_folios); and the queries built on frames: pin counts
 * at an address and the sub-ranges of a pin that the address no longer reaches.
 *
 * The deciding helpers take the state, or an `MmDraft` to chain several decisions in one step (mm_draft.ts); the
 * queries (`memRead`, `stale*`, `pinCountAt`) read the folded state only.
 */
import { U64_MAX } from '../events/values.js';
import type { MemoryMode, MmDone, MmEvent, MmFault, MmPinned, PinnedRun } from './mm.js';
import { hex, MmDraft, open, type VRun } from './mm_draft.js';
import { RangeMap } from './range_map.js';
import { backingOf, frameAt, frameRuns, fileCache, mergeFrameRuns, segments, vmaPages, type MmState } from './mm_state.js';

const checkPageSize = (m: MmState, pageSize: number): void => {
  if (pageSize !== m.pageSize) throw new Error(`page size ${pageSize} asked of a memory model of ${m.pageSize}-byte pages`);
};
const failed = (errno: MmFault['errno'], why: string, events: readonly MmEvent[] = []): MmFault => ({ errno, why, events });

/**
 * The bytes [addr, addr + length) as a load sees them now (pure: an untouched page reads as zeros without being
 * faulted in). EFAULT where no VMA maps an address (header `memory: "explicit"`), on a PROT_NONE VMA, and past the
 * end of a memfd (SIGBUS).
 */
export function memRead(m: MmState, memoryMode: MemoryMode, pageSize: number, addr: bigint, length: number): Uint8Array | MmFault {
  checkPageSize(m, pageSize);
  const out = new Uint8Array(length);
  if (length === 0) return out;
  const ps = BigInt(pageSize);
  const lastByte = addr + BigInt(length) - 1n;
  if (lastByte > U64_MAX) return failed('EFAULT', `access_ok: [${hex(addr)}, +${length}) passes the end of the address space`);
  for (const s of segments(m, Number(addr / ps), Number(lastByte / ps))) {
    if (s.vma === undefined && memoryMode === 'explicit')
      return failed('EFAULT', `mm/memory.c lock_mm_and_find_vma: no VMA maps ${hex(BigInt(s.start) * ps)} (a load gets SIGSEGV; copy_from_user returns EFAULT)`);
    if (s.vma !== undefined && (s.vma.prot & 7) === 0)
      return failed('EFAULT', `mm/memory.c handle_mm_fault: the VMA [${hex(s.vma.start)}, ${hex(s.vma.last)}] is PROT_NONE (arch access_error: SIGSEGV; copy_from_user returns EFAULT)`);
    const b = backingOf(m, s.vma);
    let end = s.last;
    if (b.kind !== 'anon' && b.eof !== undefined) end = Math.min(end, vmaPages(m, s.vma!).first + (b.eof - 1 - b.pgoff));
    if (end >= s.start) for (const r of frameRuns(m, s.start, end, 'file')) {
      if (r.frame === undefined) continue;
      for (let v = r.start; v <= r.last; v++) {
        const page = m.data.get(r.frame + (v - r.start));
        if (page === undefined) continue;
        const pageVa = BigInt(v) * ps;
        const from = addr > pageVa ? Number(addr - pageVa) : 0;
        const to = lastByte < pageVa + ps - 1n ? Number(lastByte - pageVa) : pageSize - 1;
        out.set(page.subarray(from, to + 1), Number(pageVa + BigInt(from) - addr));
      }
    }
    if (end < s.last)
      return failed('EFAULT', `mm/shmem.c shmem_fault: ${hex(BigInt(end + 1) * ps)} is past the end of memfd ${b.kind === 'anon' ? 0 : b.file}: VM_FAULT_SIGBUS (copy_from_user returns EFAULT)`);
  }
  return out;
}

/** `MemWritten` events storing `bytes` through the frames of `runs` (virtual page runs), clipped to the store. */
function writes(d: MmDraft, runs: readonly VRun[], addr: bigint, bytes: Uint8Array): MmEvent[] {
  const out: MmEvent[] = [];
  const ps = BigInt(d.ps), lastByte = addr + BigInt(bytes.length) - 1n;
  for (const r of runs) {
    const s = addr > d.va(r.start) ? addr : d.va(r.start);
    const l = lastByte < d.lastVa(r.last) ? lastByte : d.lastVa(r.last);
    if (s > l) continue;
    const frame = r.frame + Number((s - d.va(r.start)) / ps);
    const data = Buffer.from(bytes.subarray(Number(s - addr), Number(l - addr) + 1)).toString('hex');
    out.push({ type: 'MemWritten', frame, offset: Number(s % ps), data });
  }
  return out;
}

/**
 * A CPU store (or copy_to_user) of `bytes` at `addr`: faults in what is not present, then writes. On a fault the
 * bytes before the faulting page are still written (raw_copy_to_user stops at the page), and returned as `events`.
 */
export function memWriteEvents(mm: MmState | MmDraft, memoryMode: MemoryMode, pageSize: number, addr: bigint, bytes: Uint8Array): MmDone | MmFault {
  const { d, from } = open(mm, pageSize, 'touch');
  const mine = (): MmEvent[] => d.events.slice(from);
  if (bytes.length === 0) return { events: [], why: 'nothing to write' };
  const lastByte = addr + BigInt(bytes.length) - 1n;
  if (lastByte > U64_MAX) return failed('EFAULT', `access_ok: [${hex(addr)}, +${bytes.length}) passes the end of the address space`);
  // VMA by VMA, each faulted in and then written, as the CPU stores in address order: a private mapping's COW
  // fault copies the file page as an earlier store through a shared alias of it left it.
  let faulted = false;
  for (const s of segments(d.m, Number(addr / BigInt(pageSize)), Number(lastByte / BigInt(pageSize)))) {
    const before = d.events.length;
    const { runs, stop } = d.fault(memoryMode, s.start, s.last, 'write');
    faulted ||= d.events.length > before;
    d.events.push(...writes(d, runs, addr, bytes));
    if (stop !== undefined) return failed(stop.errno, stop.why, mine());
  }
  return { events: mine(), why: `stored ${bytes.length} byte(s) at ${hex(addr)}${faulted ? ' (handle_mm_fault filled the missing pages)' : ''}` };
}

/**
 * pin_user_pages_fast(FOLL_PIN | FOLL_LONGTERM [| FOLL_WRITE]) of `npages` pages from the page-aligned user VA
 * `start`: faults in what is not present and takes one pin on each page's frame (a frame reached twice, through
 * two aliases of one memfd page, is pinned twice). On failure the pages before the bad one stay faulted in but
 * hold no pin (GUP pinned them, and the caller unwinds when the rest cannot be pinned).
 */
export function pinUserRange(mm: MmState | MmDraft, memoryMode: MemoryMode, pageSize: number, start: bigint, npages: number, write: boolean): MmPinned | MmFault {
  const { d, from } = open(mm, pageSize, 'touch');
  if (start % BigInt(pageSize) !== 0n) throw new Error(`pinUserRange: ${hex(start)} is not page aligned`);
  if (npages === 0) return { events: [], runs: [], why: 'no pages to pin' };
  const first = Number(start / BigInt(pageSize)), last = first + npages - 1;
  if (d.lastVa(last) > U64_MAX) return failed('EFAULT', `mm/gup.c: [${hex(start)}, +${npages} pages) passes the end of the address space`);
  const { runs, stop } = d.fault(memoryMode, first, last, write ? 'pin-write' : 'pin-read');
  if (stop !== undefined) return failed(stop.errno, stop.why, d.events.slice(from));
  const faulted = d.events.length > from;
  for (const r of runs) d.pin(r.frame, r.frame + (r.last - r.start), 1);
  return {
    events: d.events.slice(from),
    runs: runs.map((r) => ({ start: d.va(r.start), frame: r.frame, npages: r.last - r.start + 1 })),
    why: `mm/gup.c pin_user_pages_fast(FOLL_PIN|FOLL_LONGTERM${write ? '|FOLL_WRITE' : ''}): ${npages} page(s) at ${hex(start)} pinned${faulted ? ', faulting in the missing ones' : ''}`,
  };
}

/**
 * memfd_pin_folios (mm/gup.c) of `npages` pages of memfd `memfd` from the page-aligned file offset `offset`:
 * missing pages are allocated into the page cache (memfd_alloc_folio), then each is pinned. A page past EOF is
 * EINVAL (mm/shmem.c shmem_get_folio_gfp); the pages allocated before it stay in the cache, unpinned.
 */
export function pinFileRange(mm: MmState | MmDraft, pageSize: number, memfd: number, offset: bigint, npages: number): MmPinned | MmFault {
  const { d, from } = open(mm, pageSize, 'touch');
  if (offset % BigInt(pageSize) !== 0n) throw new Error(`pinFileRange: offset ${hex(offset)} is not page aligned`);
  const f = d.m.memfds.get(memfd);
  if (f === undefined) return failed('EINVAL', `mm/gup.c memfd_pin_folios: memfd ${memfd} is not a shmem file`);
  if (npages === 0) return failed('EINVAL', 'mm/gup.c memfd_pin_folios: no pages');
  const p0 = Number(offset / BigInt(pageSize)), p1 = p0 + npages - 1;
  const eof = Number((f.size + BigInt(pageSize) - 1n) / BigInt(pageSize));
  const runs = p0 < eof ? d.fileFrames(memfd, p0, Math.min(p1, eof - 1)) : [];
  if (p1 >= eof)
    return failed('EINVAL', `mm/shmem.c shmem_get_folio_gfp: file page ${hex(d.va(Math.max(p0, eof)))} is past the end of memfd ${memfd} (${hex(f.size)} bytes)`, d.events.slice(from));
  for (const r of runs) d.pin(r.frame, r.frame + (r.last - r.start), 1);
  return {
    events: d.events.slice(from),
    runs: runs.map((r) => ({ start: d.va(r.start), frame: r.frame, npages: r.last - r.start + 1 })),
    why: `mm/gup.c memfd_pin_folios: ${npages} page(s) of memfd ${memfd} from ${hex(offset)} pinned`,
  };
}

/**
 * unpin_user_pages: drops one pin per page of `runs` (frames, as `pinUserRange`/`pinFileRange` returned them),
 * and frees the frames whose last pin this was and that no page table or page cache holds any more. Unpinning a
 * frame more often than it was pinned is a model bug (throws).
 */
export function unpinFrames(mm: MmState | MmDraft, runs: readonly { readonly frame: number; readonly npages: number }[]): MmDone {
  const { d, from } = open(mm, mm instanceof MmDraft ? mm.ps : mm.pageSize, 'touch');
  const touched: { start: number; last: number }[] = [];
  const dec = new RangeMap();
  for (const r of runs) if (r.npages > 0) dec.add(r.frame, r.frame + r.npages - 1, 1);
  for (const r of dec.runs()) {
    const have = d.pinRuns(r.start, r.last);
    let at = r.start;
    for (const p of have) {
      if (p.start > at || p.count < r.count) break;
      at = p.last + 1;
    }
    if (at <= r.last) throw new Error(`unpinFrames: frame ${at} has fewer pins than are dropped`);
  }
  for (const r of runs) if (r.npages > 0) {
    d.pin(r.frame, r.frame + r.npages - 1, -1);
    touched.push({ start: r.frame, last: r.frame + r.npages - 1 });
  }
  // Frames no page table or page cache holds die with their last pin (d.free skips the ones still pinned).
  const orphans: { start: number; last: number }[] = [];
  for (const t of mergeFrameRuns(touched)) for (const f of d.frameInfoRuns(t.start, t.last)) if (f.value.index === undefined) orphans.push(f);
  const n = runs.reduce((a, r) => a + r.npages, 0);
  const before = d.events.length;
  d.free(orphans);
  return { events: d.events.slice(from), why: `mm/gup.c unpin_user_pages: ${n} page(s) unpinned${d.events.length > before ? '; the unmapped ones among them are freed' : ''}` };
}

/** Merges touching byte ranges. */
function pushRange(out: { start: bigint; last: bigint }[], start: bigint, last: bigint): void {
  const p = out[out.length - 1];
  if (p !== undefined && p.last + 1n === start) out[out.length - 1] = { start: p.start, last };
  else out.push({ start, last });
}

/**
 * The parts of pinned user ranges that their virtual addresses no longer reach: the VA was unmapped or remapped,
 * or MADV_DONTNEED dropped private memory (the next touch faults a fresh frame). A memfd mapping whose PTE was
 * dropped still reaches its pinned page through the page cache, so it is not stale.
 */
export function staleUserRanges(m: MmState, pageSize: number, runs: readonly PinnedRun[]): { start: bigint; last: bigint }[] {
  checkPageSize(m, pageSize);
  const ps = BigInt(pageSize);
  const out: { start: bigint; last: bigint }[] = [];
  for (const r of runs) {
    if (r.npages === 0) continue;
    const v0 = Number(r.start / ps);
    for (const c of frameRuns(m, v0, v0 + r.npages - 1, 'shared'))
      if (c.frame !== r.frame + (c.start - v0)) pushRange(out, BigInt(c.start) * ps, BigInt(c.last + 1) * ps - 1n);
  }
  return out;
}

/** The parts of pinned memfd ranges (byte offsets) whose file pages are no longer the pinned frames (truncated). */
export function staleFileRanges(m: MmState, pageSize: number, memfd: number, runs: readonly PinnedRun[]): { start: bigint; last: bigint }[] {
  checkPageSize(m, pageSize);
  const ps = BigInt(pageSize);
  const cache = fileCache(m, memfd);
  const out: { start: bigint; last: bigint }[] = [];
  for (const r of runs) {
    if (r.npages === 0) continue;
    const p0 = Number(r.start / ps), p1 = p0 + r.npages - 1;
    for (const c of cache?.cover(p0, p1) ?? [{ start: p0, last: p1, value: undefined }])
      if (c.value !== r.frame + (c.start - p0)) pushRange(out, BigInt(c.start) * ps, BigInt(c.last + 1) * ps - 1n);
  }
  return out;
}

/** FOLL_PIN references on the frame `va` reaches (0 when it reaches none): what IOMMU_TEST_OP_MD_CHECK_REFS counts. */
export function pinCountAt(m: MmState, pageSize: number, va: bigint): number {
  checkPageSize(m, pageSize);
  const f = frameAt(m, va);
  return f === undefined ? 0 : m.pins.get(f);
}
