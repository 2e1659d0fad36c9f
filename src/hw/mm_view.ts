/**
 * A canonical, JSON-ready view of the memory model (for `viewState`: two models are the same exactly when their
 * views are deep-equal), its memory cost in runs, and the cross-table invariants the tests check after every
 * decision has been folded.
 */
import type { MemoryMode } from './mm.js';
import { ANON, fileCache, unpinnedRuns, vmaPages, type MmState } from './mm_state.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

export function viewMm(m: MmState) {
  const sorted = <V>(map: ReadonlyMap<number, V>): [number, V][] => [...map].sort((a, b) => a[0] - b[0]);
  const runs = (r: { runs(): Iterable<{ start: number; last: number; value: number }> }) => [...r.runs()].map((x) => [x.start, x.last, x.value]);
  return {
    pageSize: m.pageSize,
    vmas: m.vmas.map((v) => ({ start: hex(v.start), last: hex(v.last), prot: v.prot, flags: v.flags, memfd: v.memfd ?? null, offset: hex(v.offset), file: v.file ?? null })),
    memfds: sorted(m.memfds).map(([, f]) => ({ id: f.id, name: f.name, size: hex(f.size), cache: runs(f.cache) })),
    shmem: sorted(m.shmem).map(([, s]) => ({ id: s.id, cache: runs(s.cache) })),
    nextShmem: m.nextShmem,
    pageTable: runs(m.pt),
    frames: [...m.frames.runs()].map((r) => [r.start, r.last, r.value.owner, r.value.index ?? null]),
    nextFrame: m.nextFrame,
    pins: [...m.pins.runs()].map((r) => [r.start, r.last, r.count]),
    data: sorted(m.data).map(([f, d]) => [f, Buffer.from(d).toString('hex')]),
    invalidations: m.invalidations,
  };
}
export type MmView = ReturnType<typeof viewMm>;

/** The model's memory cost: stored runs, VMAs and written pages (never proportional to pages merely mapped). */
export function mmRunCount(m: MmState): number {
  let n = m.vmas.length + m.pt.runCount + m.frames.runCount + m.pins.runCount + m.data.size;
  for (const f of m.memfds.values()) n += f.cache.runCount;
  for (const s of m.shmem.values()) n += s.cache.runCount;
  return n;
}

/**
 * Every cross-table invariant, for tests (throws on the first violation): canonical runs; each PTE maps a live
 * frame, and an anonymous frame's index is the page that maps it (and the other way round); each cached page is
 * a live frame of that file at that index; a frame nothing maps or caches is pinned (else it should have been
 * freed); pins and contents only on live frames; VMAs sorted and disjoint; PTEs only inside VMAs (explicit
 * memory) and never past a memfd's EOF; every shmem object mapped by some VMA.
 */
export function checkMmInvariants(m: MmState, mode: MemoryMode = 'explicit'): void {
  const fail = (msg: string): never => {
    throw new Error(`mm invariant: ${msg}`);
  };
  m.pt.checkInvariants();
  m.frames.checkInvariants();
  m.pins.checkInvariants();
  for (let i = 1; i < m.vmas.length; i++) if (m.vmas[i - 1]!.last >= m.vmas[i]!.start) fail(`VMAs ${i - 1} and ${i} overlap or are unsorted`);
  for (const r of m.pt.runs()) {
    for (const c of m.frames.cover(r.value, r.value + (r.last - r.start))) {
      if (c.value === undefined) fail(`PTE at page ${r.start + (c.start - r.value)} maps dead frame ${c.start}`);
      else if (c.value.owner === ANON && c.value.index !== r.start + (c.start - r.value)) fail(`anonymous frame ${c.start} is mapped at page ${r.start + (c.start - r.value)} but indexed ${c.value.index}`);
    }
  }
  for (const f of m.frames.runs()) {
    const { owner, index } = f.value;
    if (f.last >= m.nextFrame) fail(`frame ${f.last} is not allocated yet`);
    if (index === undefined) {
      for (const p of unpinnedRuns(m, f.start, f.last)) fail(`frame ${p.start} is neither mapped, cached nor pinned (leaked)`);
      continue;
    }
    if (owner === ANON) {
      for (const c of m.pt.cover(index, index + (f.last - f.start)))
        if (c.value !== f.start + (c.start - index)) fail(`anonymous frame ${f.start + (c.start - index)} is not mapped at its page ${c.start}`);
    } else {
      const cache = fileCache(m, owner);
      if (cache === undefined) fail(`frame ${f.start} belongs to missing file ${owner}`);
      for (const c of cache!.cover(index, index + (f.last - f.start)))
        if (c.value !== f.start + (c.start - index)) fail(`frame ${f.start + (c.start - index)} is not cached by file ${owner} at page ${c.start}`);
    }
  }
  for (const r of m.pins.runs()) for (const c of m.frames.cover(r.start, r.last)) if (c.value === undefined) fail(`dead frame ${c.start} is pinned`);
  for (const f of m.data.keys()) if (m.frames.get(f) === undefined) fail(`dead frame ${f} has contents`);
  const ps = BigInt(m.pageSize);
  for (const f of m.memfds.values()) {
    const eof = Number((f.size + ps - 1n) / ps);
    const ext = f.cache.extent();
    if (ext !== undefined && ext.last >= eof) fail(`memfd ${f.id} caches page ${ext.last} past its EOF`);
  }
  for (const s of m.shmem.keys()) if (!m.vmas.some((v) => v.file === s)) fail(`shmem object ${s} is mapped by no VMA`);
  if (mode === 'explicit') {
    for (const r of m.pt.runs()) {
      let at = r.start;
      for (const v of m.vmas) {
        const p = vmaPages(m, v);
        if (p.last < at || p.first > r.last) continue;
        if (p.first > at) break;
        at = p.last + 1;
        if (at > r.last) break;
      }
      if (at <= r.last) fail(`PTE at page ${at} lies outside every VMA`);
    }
  }
}
