/**
 * Model-based tests of the memory model against a naive one that keeps everything per page (Maps keyed by page
 * and frame). Both allocate frames in ascending address order, so they are compared table for table after every
 * operation: page table, live frames with owner, anchor and pins, contents, page caches, errnos and partial effects.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ENUMS } from '../../src/events/flags.js';
import {
  checkMmInvariants, cloneMm, emptyMm, ftruncateEvents, isMmFault, madviseEvents, memRead, memWriteEvents, mmapEvents, mmRunCount,
  mmEvolve, MM_BIGINT_FIELDS, munmapEvents, pinCountAt, pinFileRange, pinUserRange, staleFileRanges, staleUserRanges,
  unpinFrames, viewMm, mmDraft, type MemoryMode, type MmDraft, type MmEvent, type MmState, type PinnedRun,
} from '../../src/hw/mm.js';

// Deterministic property runs; override with FC_SEED=<n> to explore.
const SEED = Number(process.env['FC_SEED'] ?? 0x6d6d);
console.info(`mm_model.test.ts: fast-check seed ${SEED}`);

const PS = 4096, P = 4096n;
const BASE = 0x7f000; // first virtual page in play
const SPACE = 12; // pages in play (plus one on either side)
const A = ENUMS.madvise;
const MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_ANON = 0x20, MAP_FIXED = 0x10;

interface NPage { readonly prot: number; readonly shared: boolean; readonly file: number | undefined; readonly pgoff: number }
interface NFrame { readonly owner: number; anchored: boolean; pins: number; bytes: Uint8Array | undefined }
type Access = 'write' | 'pin-write' | 'pin-read';
const IMPLICIT: NPage = { prot: 3, shared: false, file: undefined, pgoff: 0 };

/** The naive model: the same rules, one Map entry per page and per frame. */
class Naive {
  readonly vmas = new Map<number, NPage>();
  readonly files = new Map<number, { size: number; pages: Map<number, number> }>();
  readonly pt = new Map<number, number>();
  readonly frames = new Map<number, NFrame>();
  nextFrame = 0;
  nextShmem = 1;
  constructor(readonly mode: MemoryMode) {}

  page(v: number): NPage | undefined {
    return this.vmas.get(v) ?? (this.mode === 'implicit' ? IMPLICIT : undefined);
  }
  inFile(pg: NPage): boolean {
    return pg.file === undefined || pg.file < 0 || pg.pgoff * PS < this.files.get(pg.file)!.size;
  }
  alloc(owner: number): number {
    this.frames.set(this.nextFrame, { owner, anchored: true, pins: 0, bytes: undefined });
    return this.nextFrame++;
  }
  release(f: number): void {
    const fr = this.frames.get(f)!;
    fr.anchored = false;
    if (fr.pins === 0) this.frames.delete(f);
  }
  zap(v: number): void {
    const f = this.pt.get(v);
    if (f === undefined) return;
    this.pt.delete(v);
    if (this.frames.get(f)!.owner === 0) this.release(f);
  }
  dropPage(file: number, p: number): void {
    const c = this.files.get(file)!.pages, f = c.get(p);
    if (f === undefined) return;
    c.delete(p);
    this.release(f);
  }
  fileFrame(file: number, p: number): number {
    const c = this.files.get(file)!.pages;
    let f = c.get(p);
    if (f === undefined) c.set(p, (f = this.alloc(file)));
    return f;
  }
  fault(v: number, access: Access): number | 'EFAULT' {
    const pg = this.page(v);
    if (pg === undefined || (pg.prot & (access === 'pin-read' ? 1 : 2)) === 0 || !this.inFile(pg)) return 'EFAULT';
    const have = this.pt.get(v);
    if (have !== undefined) return have;
    let f: number;
    if (pg.file === undefined) f = this.alloc(0);
    else if (pg.shared) f = this.fileFrame(pg.file, pg.pgoff);
    else {
      f = this.alloc(0);
      const src = this.files.get(pg.file)!.pages.get(pg.pgoff);
      const b = src === undefined ? undefined : this.frames.get(src)!.bytes;
      if (b !== undefined) this.frames.get(f)!.bytes = b.slice();
    }
    this.pt.set(v, f);
    return f;
  }
  write(addr: number, data: Uint8Array): string | undefined {
    for (let i = 0; i < data.length;) {
      const v = Math.floor((addr + i) / PS), off = (addr + i) % PS, n = Math.min(PS - off, data.length - i);
      const f = this.fault(v, 'write');
      if (typeof f === 'string') return f;
      const fr = this.frames.get(f)!;
      (fr.bytes ??= new Uint8Array(PS)).set(data.subarray(i, i + n), off);
      i += n;
    }
    return undefined;
  }
  read(addr: number, len: number): Uint8Array | string {
    const out = new Uint8Array(len);
    for (let i = 0; i < len;) {
      const v = Math.floor((addr + i) / PS), off = (addr + i) % PS, n = Math.min(PS - off, len - i);
      const pg = this.page(v);
      if (pg === undefined || (pg.prot & 7) === 0 || !this.inFile(pg)) return 'EFAULT';
      const f = this.pt.get(v) ?? (pg.file === undefined ? undefined : this.files.get(pg.file)!.pages.get(pg.pgoff));
      const b = f === undefined ? undefined : this.frames.get(f)!.bytes;
      if (b !== undefined) out.set(b.subarray(off, off + n), i);
      i += n;
    }
    return out;
  }
  /** The frame `v` reaches without faulting (shared mappings through the page cache). */
  reach(v: number): number | undefined {
    const pg = this.page(v);
    return this.pt.get(v) ?? (pg?.file !== undefined && pg.shared ? this.files.get(pg.file)!.pages.get(pg.pgoff) : undefined);
  }
  pin(v0: number, n: number, write: boolean): number[] | string {
    const out: number[] = [];
    for (let v = v0; v < v0 + n; v++) {
      const f = this.fault(v, write ? 'pin-write' : 'pin-read');
      if (typeof f === 'string') return f;
      out.push(f);
    }
    for (const f of out) this.frames.get(f)!.pins++;
    return out;
  }
  pinFile(fd: number, p0: number, n: number): number[] | string {
    const file = this.files.get(fd)!, out: number[] = [];
    for (let p = p0; p < p0 + n; p++) {
      if (p * PS >= file.size) return 'EINVAL';
      out.push(this.fileFrame(fd, p));
    }
    for (const f of out) this.frames.get(f)!.pins++;
    return out;
  }
  unpin(frames: readonly number[]): void {
    for (const f of frames) {
      const fr = this.frames.get(f)!;
      expect(fr.pins).toBeGreaterThan(0);
      if (--fr.pins === 0 && !fr.anchored) this.frames.delete(f);
    }
  }
  munmap(v0: number, v1: number): void {
    for (let v = v0; v <= v1; v++) {
      this.zap(v);
      this.vmas.delete(v);
    }
    const used = new Set([...this.vmas.values()].map((p) => p.file));
    for (const [id, f] of [...this.files]) {
      if (id > 0 || used.has(id)) continue;
      for (const p of [...f.pages.keys()]) this.dropPage(id, p);
      this.files.delete(id);
    }
  }
  mmap(v0: number, n: number, prot: number, kind: Kind, fd: number, pgoff: number): void {
    this.munmap(v0, v0 + n - 1);
    let file: number | undefined = kind === 'sharedFd' || kind === 'privFd' ? fd : undefined;
    if (kind === 'sharedAnon') {
      file = -this.nextShmem++;
      this.files.set(file, { size: Infinity, pages: new Map() });
      pgoff = 0;
    }
    const shared = kind === 'sharedAnon' || kind === 'sharedFd';
    for (let i = 0; i < n; i++) this.vmas.set(v0 + i, { prot, shared, file, pgoff: pgoff + i });
  }
  madvise(v0: number, n: number, advice: number): string | undefined {
    let hole = false;
    for (let v = v0; v < v0 + n; v++) {
      const pg = this.page(v);
      const populate = advice === A.MADV_POPULATE_WRITE;
      if (pg === undefined) {
        if (populate) return 'ENOMEM';
        hole = true;
        continue;
      }
      if (advice === A.MADV_DONTNEED) this.zap(v);
      else if (advice === A.MADV_FREE && pg.file !== undefined) return 'EINVAL';
      else if (advice === A.MADV_REMOVE) {
        if (pg.file === undefined) return 'EINVAL';
        if (!pg.shared) return 'EACCES';
        for (const [w, q] of this.vmas) if (q.file === pg.file && q.pgoff === pg.pgoff && q.shared) this.zap(w);
        this.dropPage(pg.file, pg.pgoff);
      } else if (populate) {
        if ((pg.prot & 2) === 0) return 'EINVAL';
        if (this.fault(v, 'pin-write') === 'EFAULT') return 'EFAULT';
      }
    }
    return hole ? 'ENOMEM' : undefined;
  }
  ftruncate(fd: number, size: number): void {
    const f = this.files.get(fd)!, hole = Math.ceil(size / PS);
    if (size < f.size) {
      for (const [v, pg] of this.vmas) if (pg.file === fd && pg.pgoff >= hole) this.zap(v);
      for (const p of [...f.pages.keys()]) if (p >= hole) this.dropPage(fd, p);
      const last = f.pages.get(Math.floor(size / PS));
      if (size % PS !== 0 && last !== undefined) this.frames.get(last)!.bytes?.fill(0, size % PS);
    }
    f.size = size;
  }
}

type Kind = 'privAnon' | 'sharedAnon' | 'sharedFd' | 'privFd';
type Op =
  | { op: 'mmap'; page: number; n: number; prot: number; kind: Kind; fd: number; pgoff: number }
  | { op: 'munmap'; page: number; n: number }
  | { op: 'madvise'; page: number; n: number; advice: number }
  | { op: 'ftruncate'; fd: number; size: number }
  | { op: 'write'; page: number; off: number; len: number; seed: number }
  | { op: 'read'; page: number; off: number; len: number }
  | { op: 'pin'; page: number; n: number; write: boolean }
  | { op: 'pinFile'; fd: number; pgoff: number; n: number }
  | { op: 'unpin'; k: number }
  | { op: 'clone' }
  /** Stores, pins and unpins decided on one draft and folded together (a step that pins for several areas). */
  | { op: 'batch'; ops: Op[] };

const page = fc.integer({ min: -1, max: SPACE });
const n = fc.integer({ min: 1, max: 4 });
const fd = fc.constantFrom(1, 2);
const off = fc.constantFrom(0, 1, 100, PS - 6, PS - 1);
const len = fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: PS - 8, max: PS + 10 }));
const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });
const touchArb: fc.Arbitrary<Op> = fc.oneof(
  w(2, fc.record({ op: fc.constant('write' as const), page, off, len, seed: fc.integer({ min: 0, max: 255 }) })),
  w(2, fc.record({ op: fc.constant('pin' as const), page, n, write: fc.boolean() })),
  w(1, fc.record({ op: fc.constant('pinFile' as const), fd, pgoff: fc.integer({ min: 0, max: 5 }), n: fc.integer({ min: 1, max: 3 }) })),
  w(2, fc.record({ op: fc.constant('unpin' as const), k: fc.nat() })),
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  w(2, fc.record({ op: fc.constant('batch' as const), ops: fc.array(touchArb, { minLength: 2, maxLength: 5 }) })),
  w(3, fc.record({ op: fc.constant('mmap' as const), page, n, prot: fc.constantFrom(0, 1, 3, 3, 3), kind: fc.constantFrom<Kind>('privAnon', 'sharedAnon', 'sharedFd', 'sharedFd', 'privFd'), fd, pgoff: fc.integer({ min: 0, max: 4 }) })),
  w(1, fc.record({ op: fc.constant('munmap' as const), page, n })),
  w(2, fc.record({ op: fc.constant('madvise' as const), page, n, advice: fc.constantFrom(A.MADV_DONTNEED, A.MADV_DONTNEED, A.MADV_FREE, A.MADV_REMOVE, A.MADV_POPULATE_WRITE) })),
  w(1, fc.record({ op: fc.constant('ftruncate' as const), fd, size: fc.tuple(fc.integer({ min: 0, max: 6 }), fc.constantFrom(0, 0, 1, 2000)).map(([p, b]) => p * PS + b) })),
  w(4, fc.record({ op: fc.constant('write' as const), page, off, len, seed: fc.integer({ min: 0, max: 255 }) })),
  w(2, fc.record({ op: fc.constant('read' as const), page, off, len })),
  w(2, fc.record({ op: fc.constant('pin' as const), page, n, write: fc.boolean() })),
  w(1, fc.record({ op: fc.constant('pinFile' as const), fd, pgoff: fc.integer({ min: 0, max: 5 }), n: fc.integer({ min: 1, max: 3 }) })),
  w(2, fc.record({ op: fc.constant('unpin' as const), k: fc.nat() })),
  w(1, fc.constant({ op: 'clone' as const })),
);
/** Every run starts from memory of each kind, two shared mappings aliasing memfd 1's pages 2 and 3. */
const LAYOUT: readonly Op[] = [
  { op: 'mmap', page: 0, n: 3, prot: 3, kind: 'privAnon', fd: 1, pgoff: 0 },
  { op: 'mmap', page: 3, n: 4, prot: 3, kind: 'sharedFd', fd: 1, pgoff: 0 },
  { op: 'mmap', page: 7, n: 2, prot: 3, kind: 'privFd', fd: 1, pgoff: 1 },
  { op: 'mmap', page: 9, n: 2, prot: 3, kind: 'sharedFd', fd: 1, pgoff: 2 },
  { op: 'mmap', page: 11, n: 1, prot: 3, kind: 'sharedAnon', fd: 1, pgoff: 0 },
];

const FLAGS: Record<Kind, number> = { privAnon: MAP_PRIVATE | MAP_ANON, sharedAnon: MAP_SHARED | MAP_ANON, sharedFd: MAP_SHARED, privFd: MAP_PRIVATE };
const bytesOf = (len: number, seed: number): Uint8Array => Uint8Array.from({ length: len }, (_, i) => (seed + i * 7 + 1) & 0xff);
const va = (v: number): bigint => BigInt(v) * P;
const errnoOf = (r: object): string | undefined => (isMmFault(r) ? r.errno : undefined);

/** Per-page expansion of pinned runs, and of stale byte ranges. */
const framesOf = (runs: readonly PinnedRun[]): number[] => runs.flatMap((r) => Array.from({ length: r.npages }, (_, i) => r.frame + i));
const pagesOf = (ranges: readonly { start: bigint; last: bigint }[]): number[] =>
  ranges.flatMap((r) => Array.from({ length: Number((r.last + 1n - r.start) / P) }, (_, i) => Number(r.start / P) + i));

interface Held { readonly kind: 'user' | 'file'; readonly fd: number; readonly start: number; readonly frames: number[]; readonly runs: readonly PinnedRun[] }

function compare(m: MmState, nv: Naive, held: readonly Held[]): void {
  const pt = new Map<number, number>();
  for (const r of m.pt.runs()) for (let v = r.start; v <= r.last; v++) pt.set(v, r.value + (v - r.start));
  expect(pt).toEqual(nv.pt);
  const frames = new Map<number, { owner: number; anchored: boolean; pins: number }>();
  for (const r of m.frames.runs()) for (let f = r.start; f <= r.last; f++) frames.set(f, { owner: r.value.owner, anchored: r.value.index !== undefined, pins: m.pins.get(f) });
  expect(frames).toEqual(new Map([...nv.frames].map(([f, x]) => [f, { owner: x.owner, anchored: x.anchored, pins: x.pins }])));
  expect(m.nextFrame).toBe(nv.nextFrame);
  const zero = new Uint8Array(PS);
  for (const [f, x] of nv.frames) expect(Buffer.compare(x.bytes ?? zero, m.data.get(f) ?? zero), `contents of frame ${f}`).toBe(0);
  for (const [id, f] of nv.files) {
    const cache = id > 0 ? m.memfds.get(id)?.cache : m.shmem.get(id)?.cache;
    const got = new Map<number, number>();
    for (const r of cache!.runs()) for (let p = r.start; p <= r.last; p++) got.set(p, r.value + (p - r.start));
    expect(got).toEqual(f.pages);
    if (id > 0) expect(m.memfds.get(id)!.size).toBe(BigInt(f.size));
  }
  expect(m.shmem.size).toBe([...nv.files.keys()].filter((k) => k < 0).length);
  for (let v = BASE - 1; v <= BASE + SPACE; v++) {
    const f = nv.reach(v);
    expect(pinCountAt(m, PS, va(v))).toBe(f === undefined ? 0 : nv.frames.get(f)!.pins);
  }
  for (const h of held) {
    for (const f of h.frames) expect(m.frames.get(f), `pinned frame ${f} is alive`).toBeDefined();
    const stale = h.kind === 'user' ? pagesOf(staleUserRanges(m, PS, h.runs)) : pagesOf(staleFileRanges(m, PS, h.fd, h.runs));
    const want = h.frames.map((f, i) => [h.start + i, f] as const)
      .filter(([x, f]) => (h.kind === 'user' ? nv.reach(x) : nv.files.get(h.fd)!.pages.get(x)) !== f).map(([x]) => x);
    expect(stale).toEqual(want);
  }
}

function runOps(mode: MemoryMode, ops: readonly Op[]): void {
  let m = emptyMm(PS);
  const log: MmEvent[] = [];
  const nv = new Naive(mode);
  const held: Held[] = [];
  const apply = (events: readonly MmEvent[]): void => {
    for (const e of events) {
      mmEvolve(m, e);
      log.push(e);
    }
    checkMmInvariants(m, mode);
  };
  for (const id of [1, 2]) {
    apply([{ type: 'MemfdCreated', memfd: id, name: `m${id}` }, { type: 'MemfdResized', memfd: id, size: 4n * P }]);
    nv.files.set(id, { size: 4 * PS, pages: new Map() });
  }
  /** Decides `o` on `on` (the state, or a draft), folding through `fold`, and runs it on the naive model. */
  const decide = (o: Op, on: MmState | MmDraft, fold: (events: readonly MmEvent[]) => void): void => {
    switch (o.op) {
      case 'mmap': {
        const v = BASE + o.page;
        const memfd = o.kind === 'sharedFd' || o.kind === 'privFd' ? o.fd : undefined;
        fold(mmapEvents(on, mode, PS, { start: va(v), length: BigInt(o.n) * P, prot: o.prot, flags: FLAGS[o.kind] | MAP_FIXED, memfd, offset: BigInt(o.pgoff) * P }));
        nv.mmap(v, o.n, o.prot, o.kind, o.fd, o.pgoff);
        break;
      }
      case 'munmap':
        fold(munmapEvents(on, mode, PS, va(BASE + o.page), BigInt(o.n) * P));
        nv.munmap(BASE + o.page, BASE + o.page + o.n - 1);
        break;
      case 'madvise': {
        const r = madviseEvents(on, mode, PS, va(BASE + o.page), BigInt(o.n) * P, o.advice);
        fold(r.events);
        expect(errnoOf(r)).toBe(nv.madvise(BASE + o.page, o.n, o.advice));
        break;
      }
      case 'ftruncate':
        fold(ftruncateEvents(on, PS, o.fd, BigInt(o.size)));
        nv.ftruncate(o.fd, o.size);
        break;
      case 'write': {
        const addr = (BASE + o.page) * PS + o.off, data = bytesOf(o.len, o.seed);
        const r = memWriteEvents(on, mode, PS, BigInt(addr), data);
        fold(r.events);
        expect(errnoOf(r)).toBe(nv.write(addr, data));
        break;
      }
      case 'read': {
        const addr = (BASE + o.page) * PS + o.off;
        const r = memRead(m, mode, PS, BigInt(addr), o.len);
        const w = nv.read(addr, o.len);
        if (typeof w === 'string') expect(errnoOf(r)).toBe(w);
        else expect(Buffer.compare(r as Uint8Array, w)).toBe(0);
        break;
      }
      case 'pin': {
        const r = pinUserRange(on, mode, PS, va(BASE + o.page), o.n, o.write);
        fold(r.events);
        const w = nv.pin(BASE + o.page, o.n, o.write);
        if (typeof w === 'string') expect(errnoOf(r)).toBe(w);
        else {
          expect(isMmFault(r)).toBe(false);
          const runs = (r as { runs: readonly PinnedRun[] }).runs;
          expect(framesOf(runs)).toEqual(w);
          held.push({ kind: 'user', fd: 0, start: BASE + o.page, frames: w, runs });
        }
        break;
      }
      case 'pinFile': {
        const r = pinFileRange(on, PS, o.fd, BigInt(o.pgoff) * P, o.n);
        fold(r.events);
        const w = nv.pinFile(o.fd, o.pgoff, o.n);
        if (typeof w === 'string') expect(errnoOf(r)).toBe(w);
        else {
          const runs = (r as { runs: readonly PinnedRun[] }).runs;
          expect(framesOf(runs)).toEqual(w);
          held.push({ kind: 'file', fd: o.fd, start: o.pgoff, frames: w, runs });
        }
        break;
      }
      case 'unpin': {
        if (held.length === 0) break;
        const [h] = held.splice(o.k % held.length, 1);
        fold(unpinFrames(on, h!.runs).events);
        nv.unpin(h!.frames);
        break;
      }
      case 'clone':
        m = cloneMm(m);
        break;
      case 'batch': {
        const d = mmDraft(m, PS);
        const mine: MmEvent[] = [];
        for (const x of o.ops) decide(x, d, (events) => mine.push(...events));
        expect(mine).toEqual(d.events); // each decision returns exactly its own events
        apply(d.events);
        break;
      }
    }
  };
  for (const o of [...LAYOUT, ...ops]) {
    decide(o, m, apply);
    for (const f of nv.frames.values()) expect(f.pins).toBeGreaterThanOrEqual(0);
    compare(m, nv, held);
  }
  // Tear everything down: nothing may leak.
  for (const h of held.splice(0)) apply(unpinFrames(m, h.runs).events);
  apply(munmapEvents(m, mode, PS, va(BASE - 1), BigInt(SPACE + 6) * P)); // mappings reach page SPACE + 3
  for (const id of [1, 2]) apply(ftruncateEvents(m, PS, id, 0n));
  expect(m.frames.isEmpty && m.pt.isEmpty && m.pins.isEmpty && m.data.size === 0 && m.shmem.size === 0).toBe(true);
  // The log rebuilds the state, through the log codec's bigint encoding.
  const rebuilt = emptyMm(PS);
  for (const e of log) {
    const o = JSON.parse(JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))) as Record<string, unknown>;
    for (const f of MM_BIGINT_FIELDS[e.type] ?? []) if (typeof o[f] === 'string') o[f] = BigInt(o[f] as string);
    mmEvolve(rebuilt, o as unknown as MmEvent);
  }
  expect(viewMm(rebuilt)).toEqual(viewMm(m));
}

describe('the memory model against a naive per-page model', () => {
  it('agrees on every table, errno and partial effect over random mmap, munmap, madvise, ftruncate, stores, loads, pins and unpins', () => {
    fc.assert(
      fc.property(fc.constantFrom<MemoryMode>('explicit', 'implicit'), fc.array(opArb, { minLength: 1, maxLength: 60, size: 'medium' }), (mode, ops) => runOps(mode, ops)),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('costs memory in proportion to the runs an operation sequence makes, not to the 2^28 pages it covers', () => {
    const big = 2 ** 28;
    const piece = fc.record({ at: fc.integer({ min: 0, max: big - 1 }), len: fc.integer({ min: 1, max: big }), kind: fc.constantFrom('pin', 'dontneed', 'unpin') });
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 25 }), (pieces) => {
        const m = emptyMm(PS);
        const fold = (ev: readonly MmEvent[]): void => ev.forEach((e) => mmEvolve(m, e));
        const base = 0x100_0000_0000n;
        fold(mmapEvents(m, 'explicit', PS, { start: base, length: BigInt(big) * P, prot: 3, flags: MAP_PRIVATE | MAP_ANON | MAP_FIXED, memfd: undefined, offset: 0n }));
        const held: (readonly PinnedRun[])[] = [];
        for (const [i, x] of pieces.entries()) {
          const n = Math.min(x.len, big - x.at);
          if (x.kind === 'pin') {
            const r = pinUserRange(m, 'explicit', PS, base + BigInt(x.at) * P, n, true);
            fold(r.events);
            held.push((r as { runs: readonly PinnedRun[] }).runs);
          } else if (x.kind === 'dontneed') fold(madviseEvents(m, 'explicit', PS, base + BigInt(x.at) * P, BigInt(n) * P, A.MADV_DONTNEED).events);
          else if (held.length > 0) fold(unpinFrames(m, held.splice(x.at % held.length, 1)[0]!).events);
          // Each operation splits at most a constant number of runs in each table.
          expect(mmRunCount(m)).toBeLessThanOrEqual(1 + 12 * (i + 1));
        }
        checkMmInvariants(m);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('reads back through every alias of a memfd page what was last written through any of them', () => {
    const mapping = fc.record({ pgoff: fc.integer({ min: 0, max: 5 }), n: fc.integer({ min: 1, max: 4 }) });
    const step = fc.oneof(
      fc.record({ kind: fc.constant('write' as const), map: fc.nat(), at: fc.nat({ max: 4 * PS }), len: fc.integer({ min: 1, max: 40 }), seed: fc.nat({ max: 255 }) }),
      fc.record({ kind: fc.constant('dontneed' as const), map: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(mapping, { minLength: 1, maxLength: 4 }), fc.array(step, { maxLength: 30 }), (maps, steps) => {
        const m = emptyMm(PS);
        const fold = (ev: readonly MmEvent[]): void => ev.forEach((e) => mmEvolve(m, e));
        const size = 9 * PS;
        fold([{ type: 'MemfdCreated', memfd: 1, name: 'ram' }, { type: 'MemfdResized', memfd: 1, size: BigInt(size) }]);
        const file = new Uint8Array(size);
        const bases = maps.map((mp, i) => {
          const start = 0x10_0000_0000n + BigInt(i) * 0x100_0000n;
          fold(mmapEvents(m, 'explicit', PS, { start, length: BigInt(mp.n) * P, prot: 3, flags: MAP_SHARED | MAP_FIXED, memfd: 1, offset: BigInt(mp.pgoff) * P }));
          return start;
        });
        for (const s of steps) {
          const i = s.map % maps.length, mp = maps[i]!, base = bases[i]!;
          if (s.kind === 'dontneed') {
            const r = madviseEvents(m, 'explicit', PS, base, BigInt(mp.n) * P, A.MADV_DONTNEED);
            expect(isMmFault(r)).toBe(false);
            fold(r.events);
            continue;
          }
          const at = Math.min(s.at, mp.n * PS - s.len);
          if (at < 0) continue;
          const data = bytesOf(s.len, s.seed);
          const r = memWriteEvents(m, 'explicit', PS, base + BigInt(at), data);
          expect(isMmFault(r)).toBe(false);
          fold(r.events);
          file.set(data, mp.pgoff * PS + at);
        }
        maps.forEach((mp, i) => {
          const got = memRead(m, 'explicit', PS, bases[i]!, mp.n * PS);
          expect(Buffer.compare(got as Uint8Array, file.subarray(mp.pgoff * PS, (mp.pgoff + mp.n) * PS))).toBe(0);
        });
        checkMmInvariants(m);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });
});
