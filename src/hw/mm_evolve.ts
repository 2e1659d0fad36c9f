/**
 * `mmEvolve`: the only code that changes the memory model. Deterministic and total over well-formed histories:
 * an event the state cannot take (a fault over a present PTE, freeing a pinned or still mapped frame, a frame
 * id out of order, unpinning below zero) is a model bug and throws a plain Error, like the kernel's WARN_ONs.
 */
import { U64_MAX } from '../events/values.js';
import type { MmEvent, MmInput } from './mm.js';
import { LINEAR, RunMap } from './mm_runmap.js';
import { MAX_PAGE_INDEX } from './range_map.js';
import { ANON, fileCache, isSharedMapping, lowerBound, punch, type FrameInfo, type MmState } from './mm_state.js';

/** Page indexes [first, last] of a page-aligned byte range. */
function pages(m: MmState, start: bigint, last: bigint, what: string): [number, number] {
  const ps = BigInt(m.pageSize);
  if (start % ps !== 0n || (last + 1n) % ps !== 0n || last < start) throw new Error(`${what}: [${start}, ${last}] is not a page-aligned range`);
  return [Number(start / ps), Number((last + 1n) / ps) - 1];
}

function requireNoPtes(m: MmState, start: bigint, last: bigint, what: string): void {
  const ps = BigInt(m.pageSize);
  if (m.pt.any(Number(start / ps), Number(last / ps))) throw new Error(`${what} over present PTEs in [0x${start.toString(16)}, 0x${last.toString(16)}] (zap them first)`);
}

function requireFrames(m: MmState, first: number, last: number, what: string): void {
  for (const c of m.frames.cover(first, last))
    if (c.value === undefined) throw new Error(`${what}: frame ${c.start} is not live`);
}

function cacheOf(m: MmState, file: number | undefined, what: string): RunMap<number> {
  const c = file === undefined ? undefined : fileCache(m, file);
  if (c === undefined) throw new Error(`${what}: no file ${file}`);
  return c;
}

/** The frames of [first, last] lose their page table / page cache anchor (`expect` checks the rmap). */
function unanchor(m: MmState, first: number, last: number, expect: (f: number, info: FrameInfo) => boolean, what: string): void {
  requireFrames(m, first, last, what);
  for (const r of m.frames.remove(first, last)) {
    if (!expect(r.start, r.value)) throw new Error(`${what}: frame ${r.start} is owned by ${r.value.owner} at ${r.value.index}`);
    m.frames.insert(r.start, r.last, { owner: r.value.owner, index: undefined });
  }
}

/** The written pages among frames [first, last] (iterating whichever of the two is smaller). */
function writtenIn(m: MmState, first: number, last: number): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  if (last - first + 1 <= m.data.size) {
    for (let f = first; f <= last; f++) {
      const d = m.data.get(f);
      if (d !== undefined) out.push([f, d]);
    }
  } else {
    for (const [f, d] of m.data) if (f >= first && f <= last) out.push([f, d]);
  }
  return out;
}

/** Shmem objects that no VMA maps any more are released (fput of the last mapping); their pages must be gone. */
function releaseUnmappedShmem(m: MmState): void {
  if (m.shmem.size === 0) return;
  const used = new Set<number>();
  for (const v of m.vmas) if (v.file !== undefined && v.file < 0) used.add(v.file);
  for (const [id, s] of m.shmem) {
    if (used.has(id)) continue;
    if (!s.cache.isEmpty) throw new Error(`shmem object ${id} released with pages in its cache (drop them first)`);
    m.shmem.delete(id);
  }
}

function allocate(m: MmState, frame: number, n: number, info: FrameInfo, what: string): void {
  if (frame !== m.nextFrame) throw new Error(`${what}: frame ${frame} allocated out of order (next is ${m.nextFrame})`);
  m.frames.insert(frame, frame + n - 1, info);
  m.nextFrame += n;
}

export function mmEvolve(m: MmState, ev: MmInput): void {
  switch (ev.type) {
    case 'TraceStarted':
      if (ev.pageSize !== m.pageSize && !(m.frames.isEmpty && m.pt.isEmpty)) throw new Error('page size changed while pages exist');
      m.pageSize = ev.pageSize;
      return;
    case 'VmaMapped': {
      const last = ev.start + ev.length - 1n;
      if (last > U64_MAX) throw new Error('VMA past the end of the address space');
      requireNoPtes(m, ev.start, last, 'VmaMapped');
      if (ev.memfd !== undefined && !m.memfds.has(ev.memfd)) throw new Error(`VmaMapped: no memfd ${ev.memfd}`);
      punch(m, ev.start, last);
      let file = ev.memfd, offset = ev.offset;
      if (file === undefined && isSharedMapping(ev.flags) && ev.pfnmap === undefined) {
        // do_mmap: a shared anonymous mapping ignores pgoff; shmem_zero_setup gives it a file of its own.
        file = -m.nextShmem++;
        m.shmem.set(file, { id: file, cache: new RunMap(LINEAR) });
        offset = 0n;
      }
      m.vmas.splice(lowerBound(m.vmas, ev.start), 0, { start: ev.start, last, prot: ev.prot, flags: ev.flags, memfd: ev.memfd, offset, file, ...(ev.pfnmap === undefined ? {} : { pfnmap: ev.pfnmap }) });
      releaseUnmappedShmem(m);
      return;
    }
    case 'VmaUnmapped': {
      const last = ev.start + ev.length - 1n;
      requireNoPtes(m, ev.start, last, 'VmaUnmapped');
      punch(m, ev.start, last);
      releaseUnmappedShmem(m);
      return;
    }
    case 'MemfdCreated':
      if (ev.memfd <= 0 || m.memfds.has(ev.memfd)) throw new Error(`MemfdCreated: id ${ev.memfd} is taken or not positive`);
      m.memfds.set(ev.memfd, { id: ev.memfd, name: ev.name, size: 0n, cache: new RunMap(LINEAR) });
      return;
    case 'MemfdResized': {
      const f = m.memfds.get(ev.memfd);
      if (f === undefined) throw new Error(`no memfd ${ev.memfd}`);
      const ps = BigInt(m.pageSize);
      const eof = Number((ev.size + ps - 1n) / ps);
      if (eof <= MAX_PAGE_INDEX && f.cache.any(eof, MAX_PAGE_INDEX)) throw new Error(`MemfdResized: memfd ${ev.memfd} still caches pages past ${ev.size}`);
      const tail = Number(ev.size % ps);
      if (tail !== 0 && ev.size < f.size) {
        // truncate_inode_partial_folio: the part of the last page past EOF reads as zeros.
        const fr = f.cache.get(Number(ev.size / ps));
        if (fr !== undefined) m.data.get(fr)?.fill(0, tail);
      }
      f.size = ev.size;
      return;
    }
    case 'FilePagesAdded': {
      const cache = cacheOf(m, ev.file, ev.type);
      const [p0, p1] = pages(m, ev.start, ev.last, ev.type);
      const f = m.memfds.get(ev.file);
      if (f !== undefined && ev.last >= ((f.size + BigInt(m.pageSize) - 1n) / BigInt(m.pageSize)) * BigInt(m.pageSize))
        throw new Error(`FilePagesAdded: page past the end of memfd ${ev.file}`);
      if (cache.any(p0, p1)) throw new Error(`FilePagesAdded: file ${ev.file} already caches part of [${p0}, ${p1}]`);
      allocate(m, ev.frame, p1 - p0 + 1, { owner: ev.file, index: p0 }, ev.type);
      cache.insert(p0, p1, ev.frame);
      return;
    }
    case 'FilePagesDropped': {
      const cache = cacheOf(m, ev.file, ev.type);
      const [p0, p1] = pages(m, ev.start, ev.last, ev.type);
      for (const r of cache.remove(p0, p1))
        unanchor(m, r.value, r.value + (r.last - r.start), (f, i) => i.owner === ev.file && i.index === r.start + (f - r.value), ev.type);
      return;
    }
    case 'PagesFaulted':
      return fault(m, ev);
    case 'PtesZapped': {
      const [v0, v1] = pages(m, ev.start, ev.last, ev.type);
      for (const r of m.pt.remove(v0, v1)) {
        const f1 = r.value + (r.last - r.start);
        requireFrames(m, r.value, f1, ev.type);
        for (const f of [...m.frames.runs(r.value, f1)]) {
          if (f.value.owner !== ANON) continue;
          unanchor(m, f.start, f.last, (fr, i) => i.index === r.start + (fr - r.value), ev.type);
        }
      }
      return;
    }
    case 'FramesFreed': {
      const last = ev.frame + ev.count - 1;
      requireFrames(m, ev.frame, last, ev.type);
      for (const f of m.frames.runs(ev.frame, last))
        if (f.value.index !== undefined) throw new Error(`FramesFreed: frame ${f.start} is still mapped or cached`);
      if (m.pins.anyNonZero(ev.frame, last)) throw new Error(`FramesFreed: a frame of [${ev.frame}, ${last}] is pinned`);
      m.frames.remove(ev.frame, last);
      for (const [f] of writtenIn(m, ev.frame, last)) m.data.delete(f);
      return;
    }
    case 'FramesPinned':
    case 'FramesUnpinned': {
      const last = ev.frame + ev.count - 1;
      requireFrames(m, ev.frame, last, ev.type);
      try {
        m.pins.add(ev.frame, last, ev.type === 'FramesPinned' ? 1 : -1);
      } catch (e) {
        throw new Error(`${ev.type}: ${(e as Error).message}`);
      }
      return;
    }
    case 'MemWritten':
      return write(m, ev);
    case 'MmuNotifierInvalidate':
      m.invalidations++;
      return;
  }
}

function fault(m: MmState, ev: Extract<MmEvent, { type: 'PagesFaulted' }>): void {
  const [v0, v1] = pages(m, ev.start, ev.last, ev.type);
  const n = v1 - v0 + 1;
  if (m.pt.any(v0, v1)) throw new Error(`PagesFaulted over present PTEs in [${v0}, ${v1}]`);
  if (ev.source === 'file') {
    const cache = cacheOf(m, ev.file, ev.type);
    const p0 = Number(ev.offset / BigInt(m.pageSize));
    const runs = [...cache.runs(p0, p0 + n - 1)];
    const r = runs[0];
    if (runs.length !== 1 || r === undefined || r.start !== p0 || r.last !== p0 + n - 1 || r.value !== ev.frame)
      throw new Error(`PagesFaulted: file ${ev.file} does not cache frames ${ev.frame}… at page ${p0}`);
  } else {
    allocate(m, ev.frame, n, { owner: ANON, index: v0 }, ev.type);
    if (ev.source === 'cow') {
      // do_cow_fault: copy_mc_user_highpage from the file's page (pages it does not cache are zeros).
      const cache = cacheOf(m, ev.file, ev.type);
      const p0 = Number(ev.offset / BigInt(m.pageSize));
      for (const r of cache.runs(p0, p0 + n - 1))
        for (const [src, bytes] of writtenIn(m, r.value, r.value + (r.last - r.start)))
          m.data.set(ev.frame + (r.start - p0) + (src - r.value), bytes.slice());
    }
  }
  m.pt.insert(v0, v1, ev.frame);
}

function write(m: MmState, ev: Extract<MmEvent, { type: 'MemWritten' }>): void {
  if (!/^(?:[0-9a-f]{2})*$/.test(ev.data)) throw new Error('MemWritten: data is not lowercase hex bytes');
  const ps = m.pageSize;
  const bytes = Buffer.from(ev.data, 'hex');
  if (!Number.isSafeInteger(ev.offset) || ev.offset < 0 || ev.offset >= ps) throw new Error(`MemWritten: offset ${ev.offset} is not inside a page`);
  if (bytes.length === 0) return;
  const lastFrame = ev.frame + Math.floor((ev.offset + bytes.length - 1) / ps);
  requireFrames(m, ev.frame, lastFrame, ev.type);
  let pos = 0;
  for (let f = ev.frame; f <= lastFrame; f++) {
    const off = f === ev.frame ? ev.offset : 0;
    const n = Math.min(ps - off, bytes.length - pos);
    let page = m.data.get(f);
    if (page === undefined) m.data.set(f, (page = new Uint8Array(ps)));
    page.set(bytes.subarray(pos, pos + n), off);
    pos += n;
  }
}
