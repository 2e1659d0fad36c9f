/**
 * A decision in progress over the memory model (`MmDraft`): the events decided so far, and what they will have
 * done once folded — frames allocated, PTEs filled or zapped, file pages added or dropped, pins taken or dropped,
 * frames freed — so that one decision can touch the same thing twice (two VMAs aliasing one memfd page, a hole
 * punch seen through two mappings) and several decisions can be chained in one atomic step (a domain fill pinning
 * the pages of several areas) and still emit events that fold. The state itself is never written.
 *
 * Chaining rule: a draft takes any number of *touching* decisions (stores, pins, unpins), then at most one
 * *changing* decision (munmap, mmap, madvise, ftruncate), which seals it. The overlay does not track VMA or file
 * size changes, so deciding after those would read stale VMAs; the draft throws instead.
 *
 * `fault` is the fault-in planner shared by stores, kernel copies, GUP and MADV_POPULATE_WRITE: it walks the
 * range VMA by VMA in ascending order, fills what is not present, and stops at the first page that cannot be
 * faulted, as handle_mm_fault and __get_user_pages do.
 */
import type { InvalidateReason, MemoryMode, MmErrno, MmEvent } from './mm.js';
import { RangeMap } from './range_map.js';
import { LINEAR, RunMap } from './mm_runmap.js';
import {
  ANON, backingOf, FRAME_OPS, fileCache, mergeFrameRuns, PROT_READ, PROT_WRITE, segments, vmaPages,
  type FrameInfo, type MmState, type Vma,
} from './mm_state.js';

/** A run of virtual pages and the consecutive frames they map. */
export interface VRun {
  readonly start: number;
  readonly last: number;
  readonly frame: number;
}
export interface Stop {
  readonly errno: MmErrno;
  readonly why: string;
}
/** CPU store or copy_to_user; GUP with FOLL_WRITE; GUP without it (FOLL_LONGTERM still unshares, so it allocates). */
export type Access = 'write' | 'pin-write' | 'pin-read';
type Cover = { start: number; last: number; value: number | undefined };

/** [start, last] split into the parts `rm` covers (`hit`) and the parts it does not, ascending. */
export function* split(rm: RangeMap, start: number, last: number): Generator<{ start: number; last: number; hit: boolean }, void, undefined> {
  let at = start;
  for (const r of rm.runs(start, last)) {
    if (r.start > at) yield { start: at, last: r.start - 1, hit: false };
    yield { start: r.start, last: r.last, hit: true };
    at = r.last + 1;
  }
  if (at <= last) yield { start: at, last, hit: false };
}

export const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

const of = <V>(m: Map<number, V>, k: number, make: () => V): V => {
  let v = m.get(k);
  if (v === undefined) m.set(k, (v = make()));
  return v;
};

export class MmDraft {
  /** Every event decided on this draft, in order: emit all of them, or none. */
  readonly events: MmEvent[] = [];
  nextFrame: number;
  readonly ps: number;
  private readonly psB: bigint;
  private readonly zapped = new RangeMap();
  private readonly faulted = new RunMap<number>(LINEAR);
  private readonly born = new RunMap<FrameInfo>(FRAME_OPS);
  private readonly freed = new RangeMap();
  private readonly pinPlus = new RangeMap();
  private readonly pinMinus = new RangeMap();
  private readonly dropped = new Map<number, RangeMap>();
  private readonly added = new Map<number, RunMap<number>>();
  private touched = false;
  private sealed = false;

  constructor(readonly m: MmState, pageSize: number) {
    if (pageSize !== m.pageSize) throw new Error(`page size ${pageSize} asked of a memory model of ${m.pageSize}-byte pages`);
    this.ps = pageSize;
    this.psB = BigInt(pageSize);
    this.nextFrame = m.nextFrame;
  }

  /** Starts a decision on this draft; returns where its events begin. */
  begin(kind: 'touch' | 'change'): number {
    if (this.sealed) throw new Error('mm draft: a munmap, mmap, madvise or ftruncate ended it; fold its events first');
    if (kind === 'change') this.sealed = true;
    else this.touched = true;
    return this.events.length;
  }
  private noTouch(what: string): void {
    if (this.touched) throw new Error(`mm draft: ${what} after stores or pins in the same draft; fold them first`);
  }

  /** First byte of page `v`, last byte of page `v`. */
  va(v: number): bigint {
    return BigInt(v) * this.psB;
  }
  lastVa(v: number): bigint {
    return BigInt(v + 1) * this.psB - 1n;
  }

  /** The page table over [v0, v1] as this draft leaves it. */
  *ptCover(v0: number, v1: number): Generator<Cover, void, undefined> {
    for (const c of this.m.pt.cover(v0, v1)) {
      if (c.value === undefined) yield* this.faulted.cover(c.start, c.last);
      else for (const p of split(this.zapped, c.start, c.last))
        yield { start: p.start, last: p.last, value: p.hit ? undefined : c.value + (p.start - c.start) };
    }
  }

  /** File `file`'s page cache over [p0, p1] as this draft leaves it. */
  *cacheCover(file: number, p0: number, p1: number): Generator<Cover, void, undefined> {
    const cache = fileCache(this.m, file);
    const base = cache === undefined ? [{ start: p0, last: p1, value: undefined }] : cache.cover(p0, p1);
    const dropped = this.dropped.get(file), added = this.added.get(file);
    for (const c of base) {
      const parts = c.value === undefined || dropped === undefined
        ? [{ start: c.start, last: c.last, hit: c.value === undefined }]
        : split(dropped, c.start, c.last);
      for (const p of parts) {
        if (!p.hit) yield { start: p.start, last: p.last, value: c.value! + (p.start - c.start) };
        else if (added === undefined) yield { start: p.start, last: p.last, value: undefined };
        else yield* added.cover(p.start, p.last);
      }
    }
  }

  /** Pin counts of frames [f0, f1] as this draft leaves them: runs with a count, ascending (gaps are 0). */
  pinRuns(f0: number, f1: number): { start: number; last: number; count: number }[] {
    const t = new RangeMap();
    for (const r of this.m.pins.runs(f0, f1)) t.add(r.start, r.last, r.count);
    for (const r of this.pinPlus.runs(f0, f1)) t.add(r.start, r.last, r.count);
    for (const r of this.pinMinus.runs(f0, f1)) t.add(r.start, r.last, -r.count); // throws below zero: a model bug
    return [...t.runs(f0, f1)];
  }

  /** Owner and anchor of frames [f0, f1] as this draft leaves them (frames it allocated included). */
  frameInfoRuns(f0: number, f1: number): { start: number; last: number; value: FrameInfo }[] {
    return [...this.m.frames.runs(f0, f1), ...this.born.runs(f0, f1)];
  }

  invalidate(start: bigint, last: bigint, reason: InvalidateReason): void {
    this.events.push({ type: 'MmuNotifierInvalidate', start, last, reason });
  }

  /** Zaps the PTEs of pages [v0, v1] and frees the anonymous frames they mapped that nothing pins. */
  zap(v0: number, v1: number): void {
    this.noTouch('zapping PTEs');
    const removed: VRun[] = [];
    for (const c of this.ptCover(v0, v1)) if (c.value !== undefined) removed.push({ start: c.start, last: c.last, frame: c.value });
    if (removed.length === 0) return;
    this.events.push({ type: 'PtesZapped', start: this.va(v0), last: this.lastVa(v1) });
    const anon: { start: number; last: number }[] = [];
    for (const r of removed) {
      this.zapped.add(r.start, r.last, 1);
      for (const f of this.m.frames.runs(r.frame, r.frame + (r.last - r.start)))
        if (f.value.owner === ANON) anon.push({ start: f.start, last: f.last });
    }
    this.free(anon);
  }

  /** Drops file pages [p0, p1] from the page cache and frees the frames that nothing pins. */
  drop(file: number, p0: number, p1: number): void {
    this.noTouch('dropping file pages');
    const removed: { start: number; last: number }[] = [];
    let lo: number | undefined, hi = 0;
    for (const c of this.cacheCover(file, p0, p1)) {
      if (c.value === undefined) continue;
      removed.push({ start: c.value, last: c.value + (c.last - c.start) });
      lo ??= c.start;
      hi = c.last;
    }
    if (lo === undefined) return;
    this.events.push({ type: 'FilePagesDropped', file, start: this.va(lo), last: this.lastVa(hi) });
    const d = of(this.dropped, file, () => new RangeMap());
    for (const p of split(d, lo, hi)) if (!p.hit) d.add(p.start, p.last, 1);
    this.free(removed);
  }

  /** FramesFreed for the frames of `runs` that no pin holds and that this draft has not freed already. */
  free(runs: readonly { start: number; last: number }[]): void {
    const out: { start: number; last: number }[] = [];
    for (const r of mergeFrameRuns(runs)) {
      let at = r.start;
      for (const p of this.pinRuns(r.start, r.last)) {
        if (p.start > at) this.keepUnfreed(at, p.start - 1, out);
        at = p.last + 1;
      }
      if (at <= r.last) this.keepUnfreed(at, r.last, out);
    }
    for (const r of mergeFrameRuns(out)) this.events.push({ type: 'FramesFreed', frame: r.start, count: r.last - r.start + 1 });
  }
  private keepUnfreed(start: number, last: number, out: { start: number; last: number }[]): void {
    for (const p of split(this.freed, start, last)) if (!p.hit) {
      this.freed.add(p.start, p.last, 1);
      out.push({ start: p.start, last: p.last });
    }
  }

  /** One pin (+1) or unpin (-1) on each of frames [f0, f1]. */
  pin(f0: number, f1: number, d: 1 | -1): void {
    this.events.push({ type: d > 0 ? 'FramesPinned' : 'FramesUnpinned', frame: f0, count: f1 - f0 + 1 });
    (d > 0 ? this.pinPlus : this.pinMinus).add(f0, f1, 1);
  }

  private allocate(n: number, info: FrameInfo): number {
    const frame = this.nextFrame;
    this.born.insert(frame, frame + n - 1, info);
    this.nextFrame += n;
    return frame;
  }

  /** The frames of file pages [p0, p1], allocating the missing ones (memfd_pin_folios, shmem faults). */
  fileFrames(file: number, p0: number, p1: number): VRun[] {
    const out: VRun[] = [];
    for (const c of [...this.cacheCover(file, p0, p1)]) { // (materialized: allocating changes `added`)
      if (c.value !== undefined) {
        out.push({ start: c.start, last: c.last, frame: c.value });
        continue;
      }
      const frame = this.allocate(c.last - c.start + 1, { owner: file, index: c.start });
      this.events.push({ type: 'FilePagesAdded', file, start: this.va(c.start), last: this.lastVa(c.last), frame });
      of(this.added, file, () => new RunMap(LINEAR)).insert(c.start, c.last, frame);
      out.push({ start: c.start, last: c.last, frame });
    }
    return out;
  }

  /**
   * Faults in virtual pages [first, last] for `access`. Returns the frames of the pages it reached, ascending, and
   * where it stopped (the pages before the stop stay faulted in, as after a real fault that failed part way).
   */
  fault(mode: MemoryMode, first: number, last: number, access: Access): { runs: VRun[]; stop: Stop | undefined } {
    const runs: VRun[] = [];
    const push = (start: number, l: number, frame: number): void => {
      const p = runs[runs.length - 1];
      if (p !== undefined && p.last + 1 === start && p.frame + (start - p.start) === frame) runs[runs.length - 1] = { start: p.start, last: l, frame: p.frame };
      else runs.push({ start, last: l, frame });
    };
    const map = (start: number, l: number, frame: number): void => {
      this.faulted.insert(start, l, frame);
      push(start, l, frame);
    };
    for (const s of segments(this.m, first, last)) {
      if (s.vma === undefined && mode === 'explicit') return { runs, stop: this.noVma(s.start, access) };
      const denied = s.vma === undefined ? undefined : this.protDenied(s.vma, access);
      if (denied !== undefined) return { runs, stop: { errno: 'EFAULT', why: denied } };
      const b = backingOf(this.m, s.vma);
      const vFirst = s.vma === undefined ? 0 : vmaPages(this.m, s.vma).first;
      let end = s.last;
      let eofAt: number | undefined;
      if (b.kind !== 'anon' && b.eof !== undefined) {
        const lastOk = vFirst + (b.eof - 1 - b.pgoff);
        if (lastOk < s.last) {
          end = lastOk;
          eofAt = Math.max(lastOk + 1, s.start);
        }
      }
      if (end >= s.start) for (const c of [...this.ptCover(s.start, end)]) {
        if (c.value !== undefined) {
          push(c.start, c.last, c.value);
          continue;
        }
        const n = c.last - c.start + 1;
        if (b.kind === 'anon' || b.kind === 'private') {
          const frame = this.allocate(n, { owner: ANON, index: c.start });
          this.events.push(b.kind === 'anon'
            ? { type: 'PagesFaulted', start: this.va(c.start), last: this.lastVa(c.last), frame, source: 'anon', file: undefined, offset: 0n }
            : { type: 'PagesFaulted', start: this.va(c.start), last: this.lastVa(c.last), frame, source: 'cow', file: b.file, offset: this.va(b.pgoff + (c.start - vFirst)) });
          map(c.start, c.last, frame);
          continue;
        }
        const p0 = b.pgoff + (c.start - vFirst);
        for (const r of this.fileFrames(b.file, p0, p0 + n - 1)) {
          const vs = c.start + (r.start - p0), vl = c.start + (r.last - p0);
          this.events.push({ type: 'PagesFaulted', start: this.va(vs), last: this.lastVa(vl), frame: r.frame, source: 'file', file: b.file, offset: this.va(r.start) });
          map(vs, vl, r.frame);
        }
      }
      if (eofAt !== undefined) {
        const f = b.kind === 'anon' ? 0 : b.file;
        const why = `mm/shmem.c shmem_get_folio_gfp: page ${hex(this.va(eofAt))} is past the end of memfd ${f} ` +
          `(${hex(this.m.memfds.get(f)?.size ?? 0n)} bytes): VM_FAULT_SIGBUS` +
          (access === 'write' ? ' (a store gets SIGBUS; copy_to_user returns EFAULT)' : ', which mm/gup.c faultin_page turns into EFAULT');
        return { runs, stop: { errno: 'EFAULT', why } };
      }
    }
    return { runs, stop: undefined };
  }

  private noVma(v: number, access: Access): Stop {
    const at = hex(this.va(v));
    return access === 'write'
      ? { errno: 'EFAULT', why: `mm/memory.c lock_mm_and_find_vma: no VMA maps ${at} (a store gets SIGSEGV; copy_to_user returns EFAULT)` }
      : { errno: 'EFAULT', why: `mm/gup.c __get_user_pages: no VMA maps ${at} (gup_vma_lookup)` };
  }

  private protDenied(v: Vma, access: Access): string | undefined {
    const at = `[${hex(v.start)}, ${hex(v.last)}]`;
    if (v.pfnmap !== undefined)
      return access === 'write'
        ? `a CPU store to the VFIO BAR mapping ${at} of ${v.pfnmap} (vfio_pci_mmap_page_fault) is not modelled`
        : `mm/gup.c check_vma_flags: the VMA ${at} is VM_IO|VM_PFNMAP (a VFIO BAR mapping of ${v.pfnmap}): GUP refuses it`;
    if (access === 'write' && (v.prot & PROT_WRITE) === 0)
      return `mm/memory.c handle_mm_fault: the VMA ${at} is not writable (arch access_error: a store gets SIGSEGV; copy_to_user returns EFAULT)`;
    if (access === 'pin-write' && (v.prot & PROT_WRITE) === 0)
      return `mm/gup.c check_vma_flags: FOLL_WRITE on the VMA ${at}, which lacks VM_WRITE`;
    if (access === 'pin-read' && (v.prot & PROT_READ) === 0)
      return `mm/gup.c check_vma_flags: the VMA ${at} lacks VM_READ`;
    return undefined;
  }
}

/**
 * A draft to chain several decisions of one atomic step on (see the chaining rule above): pass it instead of the
 * state to the decision helpers; each returns its own events, and `draft.events` holds all of them in order.
 */
export const mmDraft = (m: MmState, pageSize: number): MmDraft => new MmDraft(m, pageSize);

/** The draft a decision runs on: the caller's, or a fresh one over the state. */
export function open(mm: MmState | MmDraft, pageSize: number, kind: 'touch' | 'change'): { d: MmDraft; from: number } {
  const d = mm instanceof MmDraft ? mm : new MmDraft(mm, pageSize);
  if (d.ps !== pageSize) throw new Error(`page size ${pageSize} asked of a draft of ${d.ps}-byte pages`);
  return { d, from: d.begin(kind) };
}
