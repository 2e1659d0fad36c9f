/**
 * Taking memory away, and the mmu_notifier chain that announces it: munmap (and mmap over an existing mapping),
 * madvise (MADV_DONTNEED, MADV_FREE, MADV_REMOVE, MADV_POPULATE_READ/WRITE) and ftruncate of a memfd. Each sends
 * `MmuNotifierInvalidate` before the page table changes, then zaps PTEs, drops file pages and frees the frames
 * nothing holds. A pinned frame is never freed: it stays alive with its pins and contents, unreachable from the VA.
 */
import { ENUMS } from '../events/flags.js';
import { U64_MAX } from '../events/values.js';
import type { InvalidateReason, MemoryMode, MmDone, MmEvent, MmFault } from './mm.js';
import { hex, open, type MmDraft } from './mm_draft.js';
import { MAX_PAGE_INDEX } from './range_map.js';
import { backingOf, isLockedMapping, isSharedMapping, PROT_READ, PROT_WRITE, segments, vmaPages, vmasIn, type MmState, type Vma } from './mm_state.js';

const A = ENUMS.madvise;
const KNOWN_ADVICE = new Set<number>(Object.values(A));

/** Page indexes of a page-aligned [start, start + length). */
function pagesOf(d: MmDraft, start: bigint, length: bigint, what: string): [number, number] {
  const ps = BigInt(d.ps);
  if (start % ps !== 0n || length % ps !== 0n || length === 0n) throw new Error(`${what}: [${hex(start)}, +${hex(length)}) is not a page-aligned range`);
  return [Number(start / ps), Number((start + length) / ps) - 1];
}

/** Tears down [v0, v1] (a munmap, or the mapping an mmap replaces) into `d`, ending with VmaUnmapped. */
function unmapInto(d: MmDraft, mode: MemoryMode, start: bigint, length: bigint): void {
  const m = d.m;
  const last = start + length - 1n;
  const [v0, v1] = pagesOf(d, start, length, 'munmap');
  const vmas = vmasIn(m, start, last);
  if (vmas.length > 0 || m.pt.any(v0, v1)) {
    // unmap_vmas: one notifier over the detached VMAs (implicit memory may lie anywhere in the range).
    const first = vmas[0], final = vmas[vmas.length - 1];
    const lo = mode === 'implicit' || first === undefined || first.start < start ? start : first.start;
    const hi = mode === 'implicit' || final === undefined || final.last > last ? last : final.last;
    d.invalidate(lo, hi, 'munmap');
    d.zap(v0, v1);
    // remove_vma → fput: a shmem object whose last mapping goes is released with its pages.
    const gone = new Set<number>();
    for (const v of vmas) if (v.file !== undefined && v.file < 0) gone.add(v.file);
    for (const v of m.vmas) if (v.file !== undefined && gone.has(v.file) && (v.start < start || v.last > last)) gone.delete(v.file);
    for (const f of [...gone].sort((a, b) => b - a)) d.drop(f, 0, MAX_PAGE_INDEX);
  }
  d.events.push({ type: 'VmaUnmapped', start, length });
}

/**
 * munmap of the page-aligned range [start, start + length) (process.ts checks the arguments): an invalidation
 * over the VMAs it removes, their PTEs zapped, the anonymous frames nothing pins freed, then the VMAs split away.
 */
export function munmapEvents(mm: MmState | MmDraft, memoryMode: MemoryMode, pageSize: number, start: bigint, length: bigint): MmEvent[] {
  const { d, from } = open(mm, pageSize, 'change');
  unmapInto(d, memoryMode, start, length);
  return d.events.slice(from);
}

/** An mmap placed over [map.start, map.start + map.length): whatever was there is unmapped first (MAP_FIXED semantics). */
export function mmapEvents(mm: MmState | MmDraft, memoryMode: MemoryMode, pageSize: number,
  map: { readonly start: bigint; readonly length: bigint; readonly prot: number; readonly flags: number; readonly memfd: number | undefined; readonly offset: bigint; readonly pfnmap?: string }): MmEvent[] {
  const { d, from } = open(mm, pageSize, 'change');
  const [v0, v1] = pagesOf(d, map.start, map.length, 'mmap');
  if (vmasIn(d.m, map.start, map.start + map.length - 1n).length > 0 || d.m.pt.any(v0, v1)) unmapInto(d, memoryMode, map.start, map.length);
  const { start, length, prot, flags, memfd, offset } = map;
  d.events.push({ type: 'VmaMapped', start, length, prot, flags, memfd, offset, ...(map.pfnmap === undefined ? {} : { pfnmap: map.pfnmap }) });
  return d.events.slice(from);
}

/**
 * unmap_mapping_range + truncate_inode_pages_range over file pages [p0, p1] of `file`: every VMA mapping them gets
 * an invalidation; shared mappings lose their PTEs there, private ones too when `evenCows` (truncation; a hole
 * punch keeps private copies); then the page cache drops the pages.
 */
function punchFile(d: MmDraft, file: number, p0: number, p1: number, reason: InvalidateReason, evenCows: boolean): void {
  for (const v of d.m.vmas) {
    if (v.file !== file) continue;
    const b = backingOf(d.m, v);
    if (b.kind === 'anon') continue;
    const vp = vmaPages(d.m, v);
    const lo = Math.max(p0, b.pgoff), hi = Math.min(p1, b.pgoff + (vp.last - vp.first));
    if (lo > hi) continue;
    const s = vp.first + (lo - b.pgoff), l = vp.first + (hi - b.pgoff);
    d.invalidate(d.va(s), d.lastVa(l), reason);
    if (b.kind === 'shared' || evenCows) d.zap(s, l);
  }
  d.drop(file, p0, p1);
}

/**
 * ftruncate of memfd `memfd` to `size` (process.ts checks the fd): shrinking unmaps and drops every page wholly
 * past the new size (mm/shmem.c shmem_setattr → unmap_mapping_range, shmem_truncate_range); the tail of a partial
 * last page is zeroed when `MemfdResized` folds.
 */
export function ftruncateEvents(mm: MmState | MmDraft, pageSize: number, memfd: number, size: bigint): MmEvent[] {
  const { d, from } = open(mm, pageSize, 'change');
  const f = d.m.memfds.get(memfd);
  if (f === undefined) throw new Error(`ftruncateEvents: no memfd ${memfd}`);
  const ps = BigInt(pageSize);
  const hole = Number((size + ps - 1n) / ps);
  if (size < f.size && f.size > BigInt(hole) * ps) punchFile(d, memfd, hole, MAX_PAGE_INDEX, 'truncate', true);
  d.events.push({ type: 'MemfdResized', memfd, size });
  return d.events.slice(from);
}

type Step = { stop: MmFault['errno']; why: string } | undefined;

/** One VMA (or implicit-memory hole, `v` undefined) of a madvise range, pages [s, l]. */
function adviseOne(d: MmDraft, mode: MemoryMode, advice: number, v: Vma | undefined, s: number, l: number): Step {
  const at = v === undefined ? `implicit memory at ${hex(d.va(s))}` : `the VMA [${hex(v.start)}, ${hex(v.last)}]`;
  const b = backingOf(d.m, v);
  switch (advice) {
    case A.MADV_DONTNEED:
    case A.MADV_FREE:
      if (v !== undefined && isLockedMapping(v.flags))
        return { stop: 'EINVAL', why: `mm/madvise.c madvise_dontneed_free_valid_vma: ${at} is VM_LOCKED` };
      if (advice === A.MADV_FREE) {
        if (b.kind !== 'anon' || (v !== undefined && isSharedMapping(v.flags)))
          return { stop: 'EINVAL', why: `mm/madvise.c madvise_free_single_vma: ${at} is not anonymous memory` };
        // Lazily freed: the model never reclaims, so the pages keep their frames and contents.
        d.invalidate(d.va(s), d.lastVa(l), 'madvise_free');
        return undefined;
      }
      // zap_page_range_single: private pages are gone (the next touch faults a fresh zero page); file pages stay cached.
      d.invalidate(d.va(s), d.lastVa(l), 'madvise_dontneed');
      d.zap(s, l);
      return undefined;
    case A.MADV_REMOVE: {
      if (v !== undefined && isLockedMapping(v.flags)) return { stop: 'EINVAL', why: `mm/madvise.c madvise_remove: ${at} is VM_LOCKED` };
      if (b.kind === 'anon') return { stop: 'EINVAL', why: `mm/madvise.c madvise_remove: ${at} has no file to punch a hole in` };
      // vma_is_shared_maywrite: VM_MAYWRITE comes with the file's write access (memfds and shmem always have it), not PROT_WRITE.
      if (b.kind !== 'shared') return { stop: 'EACCES', why: `mm/madvise.c madvise_remove: ${at} is a private mapping (not VM_SHARED|VM_MAYWRITE)` };
      const p0 = b.pgoff + (s - vmaPages(d.m, v!).first);
      punchFile(d, b.file, p0, p0 + (l - s), 'madvise_remove', false);
      return undefined;
    }
    case A.MADV_POPULATE_READ:
    case A.MADV_POPULATE_WRITE: {
      const write = advice === A.MADV_POPULATE_WRITE;
      if (v !== undefined && (v.prot & (write ? PROT_WRITE : PROT_READ)) === 0)
        return { stop: 'EINVAL', why: `mm/madvise.c madvise_populate: ${at} does not allow ${write ? 'writes' : 'reads'} (mm/gup.c check_vma_flags)` };
      // A read fault maps the zero page or the file's page: nothing the model keeps. A write fault fills the PTEs.
      const r = write ? d.fault(mode, s, l, 'pin-write').stop : undefined;
      if (r === undefined && !write && b.kind !== 'anon' && b.eof !== undefined && vmaPages(d.m, v!).first + (b.eof - 1 - b.pgoff) < l)
        return { stop: 'EFAULT', why: `mm/madvise.c madvise_populate: VM_FAULT_SIGBUS past the end of memfd ${b.file}` };
      return r === undefined ? undefined : { stop: r.errno, why: `mm/madvise.c madvise_populate: ${r.why}` };
    }
    default:
      return undefined;
  }
}

/**
 * madvise(start, len, advice) (mm/madvise.c do_madvise): the argument checks, then the advice VMA by VMA in
 * ascending order. A hole in the range (header `memory: "explicit"`) is ENOMEM after the mapped parts were advised
 * (the populate advices stop there instead); an error on a VMA stops the walk, keeping what was done before it.
 * Advice the model has no state for (MADV_WILLNEED, MADV_HUGEPAGE…) succeeds without events.
 */
export function madviseEvents(mm: MmState | MmDraft, memoryMode: MemoryMode, pageSize: number, start: bigint, lenIn: bigint, advice: number): MmDone | MmFault {
  const { d, from } = open(mm, pageSize, 'change');
  const m = d.m;
  const fail = (errno: MmFault['errno'], why: string): MmFault => ({ errno, why, events: d.events.slice(from) });
  if (!KNOWN_ADVICE.has(advice)) return fail('EINVAL', `mm/madvise.c madvise_behavior_valid: unknown advice ${advice}`);
  const ps = BigInt(pageSize);
  if (start % ps !== 0n) return fail('EINVAL', `mm/madvise.c do_madvise: start ${hex(start)} is not page aligned`);
  const len = (lenIn + ps - 1n) & ~(ps - 1n);
  if (len > U64_MAX || start + len - 1n > U64_MAX) return fail('EINVAL', `mm/madvise.c do_madvise: [${hex(start)}, +${hex(lenIn)}) wraps around`);
  if (len === 0n) return { events: [], why: 'mm/madvise.c do_madvise: empty range' };
  const v0 = Number(start / ps), v1 = Number((start + len) / ps) - 1;
  const populate = advice === A.MADV_POPULATE_READ || advice === A.MADV_POPULATE_WRITE;
  let hole: number | undefined;
  for (const s of segments(m, v0, v1)) {
    if (s.vma === undefined && memoryMode === 'explicit') {
      if (populate) return fail('ENOMEM', `mm/madvise.c madvise_populate: no VMA maps ${hex(d.va(s.start))}`);
      hole ??= s.start;
      continue;
    }
    const r = adviseOne(d, memoryMode, advice, s.vma, s.start, s.last);
    if (r !== undefined) return fail(r.stop, r.why);
  }
  const name = Object.entries(A).find(([, n]) => n === advice)?.[0] ?? String(advice);
  if (hole !== undefined) return fail('ENOMEM', `mm/madvise.c madvise_walk_vmas: no VMA maps ${hex(d.va(hole))} (the mapped parts of the range were advised)`);
  return { events: d.events.slice(from), why: `mm/madvise.c: ${name} over [${hex(start)}, ${hex(start + len - 1n)}]` };
}
