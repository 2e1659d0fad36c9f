import { describe, expect, it } from 'vitest';
import {
  checkMmInvariants, cloneMm, emptyMm, frameAt, ftruncateEvents, isMmFault, madviseEvents, memRead, memWriteEvents,
  mmapEvents, mmDraft, mmEvolve, mmRunCount, MM_BIGINT_FIELDS, MM_EVENT_TYPES, munmapEvents, pinCountAt, pinFileRange,
  pinUserRange, staleFileRanges, staleUserRanges, unpinFrames, viewMm,
  type MemoryMode, type MmDone, type MmEvent, type MmFault, type MmPinned, type MmState,
} from '../../src/hw/mm.js';
import { ENUMS } from '../../src/events/flags.js';

const PS = 4096;
const P = BigInt(PS);
const A = 0x7f00_0000_0000n;
const PROT_NONE = 0, PROT_R = 1, PROT_RW = 3;
const MAP_SHARED = 1, MAP_PRIVATE = 2, MAP_ANON = 0x20, MAP_FIXED = 0x10;
const { MADV_DONTNEED, MADV_FREE, MADV_REMOVE, MADV_POPULATE_WRITE } = ENUMS.madvise;

/** A memory model plus the log of every event folded into it; every event is checked against the log codec. */
class Mem {
  readonly m: MmState = emptyMm(PS);
  readonly log: MmEvent[] = [];
  constructor(readonly mode: MemoryMode = 'explicit') {}

  apply(events: readonly MmEvent[]): readonly MmEvent[] {
    for (const e of events) {
      checkEventFields(e);
      mmEvolve(this.m, e);
      this.log.push(e);
    }
    checkMmInvariants(this.m, this.mode);
    return events;
  }
  /** Folds a decision's events (a failed one's partial effects too) and returns it. */
  run<T extends MmDone | MmFault>(r: T): T {
    this.apply(r.events);
    return r;
  }
  ok<T extends MmDone | MmFault>(r: T): Exclude<T, MmFault> {
    if (isMmFault(r)) throw new Error(`unexpected ${r.errno}: ${r.why}`);
    this.apply(r.events);
    return r as Exclude<T, MmFault>;
  }
  fails<T extends MmDone | MmFault>(r: T, errno: MmFault['errno'], why?: RegExp): MmFault {
    if (!isMmFault(r)) throw new Error(`expected ${errno}, got success: ${r.why}`);
    expect(r.errno).toBe(errno);
    if (why) expect(r.why).toMatch(why);
    this.apply(r.events);
    return r;
  }
  memfd(id: number, pages: number): void {
    this.apply([{ type: 'MemfdCreated', memfd: id, name: `fd${id}` }, { type: 'MemfdResized', memfd: id, size: BigInt(pages) * P }]);
  }
  mmap(start: bigint, pages: number, prot: number, flags: number, memfd?: number, offsetPages = 0): readonly MmEvent[] {
    return this.apply(mmapEvents(this.m, this.mode, PS, { start, length: BigInt(pages) * P, prot, flags: flags | MAP_FIXED, memfd, offset: BigInt(offsetPages) * P }));
  }
  munmap(start: bigint, pages: number): readonly MmEvent[] {
    return this.apply(munmapEvents(this.m, this.mode, PS, start, BigInt(pages) * P));
  }
  write(addr: bigint, bytes: number[] | Uint8Array): MmDone | MmFault {
    return memWriteEvents(this.m, this.mode, PS, addr, Uint8Array.from(bytes));
  }
  read(addr: bigint, length: number): Uint8Array {
    const r = memRead(this.m, this.mode, PS, addr, length);
    if (isMmFault(r)) throw new Error(`unexpected ${r.errno}: ${r.why}`);
    return r;
  }
  madvise(start: bigint, pages: number, advice: number): MmDone | MmFault {
    return madviseEvents(this.m, this.mode, PS, start, BigInt(pages) * P, advice);
  }
  pin(start: bigint, npages: number, write = true): MmPinned | MmFault {
    return pinUserRange(this.m, this.mode, PS, start, npages, write);
  }
  types(events: readonly MmEvent[] = this.log): string[] {
    return events.map((e) => e.type);
  }
}

/** Every event is a known type, and its bigint fields are exactly the ones the log codec revives. */
function checkEventFields(e: MmEvent): void {
  expect(MM_EVENT_TYPES).toContain(e.type);
  const listed = new Set(MM_BIGINT_FIELDS[e.type] ?? []);
  for (const [k, v] of Object.entries(e)) {
    expect((v as unknown) instanceof Uint8Array, `${e.type}.${k} is a Uint8Array`).toBe(false);
    if (v !== undefined) expect(listed.has(k), `${e.type}.${k}: bigint iff listed in MM_BIGINT_FIELDS`).toBe(typeof v === 'bigint');
  }
}

/** The JSONL log codec's treatment of an event: bigints written as "0x…", revived by MM_BIGINT_FIELDS. */
function roundTrip(e: MmEvent): MmEvent {
  const o = JSON.parse(JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))) as Record<string, unknown>;
  for (const f of MM_BIGINT_FIELDS[e.type] ?? []) if (typeof o[f] === 'string') o[f] = BigInt(o[f] as string);
  return o as unknown as MmEvent;
}

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const zeros = (n: number): Uint8Array => new Uint8Array(n);

describe('frames and the page table', () => {
  it('maps a fresh zero frame into private anonymous memory on the first store and reads the bytes back', () => {
    const t = new Mem();
    t.mmap(A, 4, PROT_RW, MAP_PRIVATE | MAP_ANON);
    const w = t.ok(t.write(A + 10n, [1, 2, 3]));
    expect(w.events).toEqual([
      { type: 'PagesFaulted', start: A, last: A + P - 1n, frame: 0, source: 'anon', file: undefined, offset: 0n },
      { type: 'MemWritten', frame: 0, offset: 10, data: '010203' },
    ]);
    expect(t.read(A + 8n, 6)).toEqual(bytes(0, 0, 1, 2, 3, 0));
    expect(t.ok(t.write(A + 11n, [9])).events).toEqual([{ type: 'MemWritten', frame: 0, offset: 11, data: '09' }]);
  });

  it('reads an untouched page as zeros without faulting anything in', () => {
    const t = new Mem();
    t.mmap(A, 4, PROT_RW, MAP_PRIVATE | MAP_ANON);
    expect(t.read(A + P, 2 * PS)).toEqual(zeros(2 * PS));
    expect(t.m.pt.isEmpty).toBe(true);
    expect(t.m.frames.isEmpty).toBe(true);
  });

  it('shares one frame between two shared mappings of the same memfd page, so a store through one is read through the other', () => {
    const t = new Mem();
    t.memfd(1, 4);
    const X = A, Y = A + 0x10_0000n;
    t.mmap(X, 4, PROT_RW, MAP_SHARED, 1);
    t.mmap(Y, 3, PROT_RW, MAP_SHARED, 1, 1);
    expect(t.ok(t.write(X + P + 5n, [0xab, 0xcd])).events).toEqual([
      { type: 'FilePagesAdded', file: 1, start: P, last: 2n * P - 1n, frame: 0 },
      { type: 'PagesFaulted', start: X + P, last: X + 2n * P - 1n, frame: 0, source: 'file', file: 1, offset: P },
      { type: 'MemWritten', frame: 0, offset: 5, data: 'abcd' },
    ]);
    expect(t.read(Y + 5n, 2)).toEqual(bytes(0xab, 0xcd));
    expect(t.ok(t.write(Y + 7n, [0xef])).events).toEqual([
      { type: 'PagesFaulted', start: Y, last: Y + P - 1n, frame: 0, source: 'file', file: 1, offset: P },
      { type: 'MemWritten', frame: 0, offset: 7, data: 'ef' },
    ]);
    expect(frameAt(t.m, Y)).toBe(frameAt(t.m, X + P));
    expect(t.read(X + P + 5n, 3)).toEqual(bytes(0xab, 0xcd, 0xef));
  });

  it('reads a private memfd mapping through to the file until a store copies the page into a frame of its own', () => {
    const t = new Mem();
    t.memfd(1, 1);
    const S = A, C = A + 0x10_0000n;
    t.mmap(S, 1, PROT_RW, MAP_SHARED, 1);
    t.mmap(C, 1, PROT_RW, MAP_PRIVATE, 1);
    t.ok(t.write(S, [0xaa]));
    expect(t.read(C, 2)).toEqual(bytes(0xaa, 0));
    expect(t.ok(t.write(C + 1n, [0xbb])).events).toEqual([
      { type: 'PagesFaulted', start: C, last: C + P - 1n, frame: 1, source: 'cow', file: 1, offset: 0n },
      { type: 'MemWritten', frame: 1, offset: 1, data: 'bb' },
    ]);
    t.ok(t.write(S, [0xcc]));
    expect(t.read(C, 2)).toEqual(bytes(0xaa, 0xbb));
    expect(t.read(S, 2)).toEqual(bytes(0xcc, 0));
  });

  it('copies the file page as an earlier part of the same store left it through a shared alias', () => {
    const t = new Mem();
    t.memfd(1, 1);
    t.mmap(A, 1, PROT_RW, MAP_SHARED, 1);
    t.mmap(A + P, 1, PROT_RW, MAP_PRIVATE, 1);
    t.ok(t.write(A + P - 2n, [1, 2, 3]));
    expect(t.read(A + P, PS)).toEqual(Uint8Array.from({ length: PS }, (_, i) => (i === 0 ? 3 : i === PS - 2 ? 1 : i === PS - 1 ? 2 : 0)));
  });
});

describe('faults', () => {
  it('fails a store or load with EFAULT where no VMA maps the address under explicit memory', () => {
    const t = new Mem();
    t.fails(t.write(A, [1]), 'EFAULT', /lock_mm_and_find_vma/);
    expect(memRead(t.m, 'explicit', PS, A, 1)).toMatchObject({ errno: 'EFAULT' });
    expect(t.log).toEqual([]);
  });

  it('treats an address outside every VMA as private anonymous memory under implicit memory, costing nothing until touched', () => {
    const t = new Mem('implicit');
    expect(t.read(A, 16)).toEqual(zeros(16));
    expect(mmRunCount(t.m)).toBe(0);
    t.ok(t.write(A + 3n * P, [7]));
    expect(t.read(A + 3n * P, 1)).toEqual(bytes(7));
    expect(t.m.vmas).toEqual([]);
    expect(mmRunCount(t.m)).toBe(3); // one PTE run, one frame run, one written page
    expect(t.munmap(A, 4)).toEqual([
      { type: 'MmuNotifierInvalidate', start: A, last: A + 4n * P - 1n, reason: 'munmap' },
      { type: 'PtesZapped', start: A, last: A + 4n * P - 1n },
      { type: 'FramesFreed', frame: 0, count: 1 },
      { type: 'VmaUnmapped', start: A, length: 4n * P },
    ]);
    expect(t.read(A + 3n * P, 1)).toEqual(bytes(0));
  });

  it('fails a store into a VMA without PROT_WRITE and a load from a PROT_NONE VMA', () => {
    const t = new Mem();
    t.mmap(A, 1, PROT_R, MAP_PRIVATE | MAP_ANON);
    t.mmap(A + P, 1, PROT_NONE, MAP_PRIVATE | MAP_ANON);
    t.fails(t.write(A, [1]), 'EFAULT', /not writable/);
    expect(t.read(A, 4)).toEqual(zeros(4));
    expect(memRead(t.m, 'explicit', PS, A + P, 1)).toMatchObject({ errno: 'EFAULT', why: expect.stringMatching(/PROT_NONE/) });
    expect(memRead(t.m, 'explicit', PS, A + P - 1n, 2)).toMatchObject({ errno: 'EFAULT' });
  });

  it('stores the bytes before the faulting page when a store runs into unmapped memory, as copy_to_user does', () => {
    const t = new Mem();
    t.mmap(A, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    const f = t.fails(t.write(A + P - 2n, [1, 2, 3, 4]), 'EFAULT');
    expect(t.types(f.events)).toEqual(['PagesFaulted', 'MemWritten']);
    expect(t.read(A + P - 2n, 2)).toEqual(bytes(1, 2));
  });

  it('faults past the end of a memfd (SIGBUS, EFAULT for the kernel) but not in its last partial page', () => {
    const t = new Mem();
    t.apply([{ type: 'MemfdCreated', memfd: 1, name: 'm' }, { type: 'MemfdResized', memfd: 1, size: P + 1n }]);
    t.mmap(A, 3, PROT_RW, MAP_SHARED, 1);
    t.ok(t.write(A + P + 100n, [5]));
    t.fails(t.write(A + 2n * P, [1]), 'EFAULT', /past the end of memfd 1/);
    expect(memRead(t.m, 'explicit', PS, A + 2n * P - 1n, 2)).toMatchObject({ errno: 'EFAULT', why: expect.stringMatching(/SIGBUS/) });
    expect(pinUserRange(t.m, 'explicit', PS, A, 3, true)).toMatchObject({ errno: 'EFAULT', why: expect.stringMatching(/faultin_page/) });
  });

  it('fills a whole range with MADV_POPULATE_WRITE, which needs a writable VMA and no hole', () => {
    const t = new Mem();
    t.mmap(A, 3, PROT_RW, MAP_PRIVATE | MAP_ANON);
    t.mmap(A + 4n * P, 1, PROT_R, MAP_PRIVATE | MAP_ANON);
    expect(t.types(t.ok(t.madvise(A, 3, MADV_POPULATE_WRITE)).events)).toEqual(['PagesFaulted']);
    expect([...t.m.pt.runs()]).toEqual([{ start: Number(A / P), last: Number(A / P) + 2, value: 0 }]);
    t.fails(t.madvise(A, 4, MADV_POPULATE_WRITE), 'ENOMEM');
    t.fails(t.madvise(A + 4n * P, 1, MADV_POPULATE_WRITE), 'EINVAL', /does not allow writes/);
  });
});

describe('pins', () => {
  it('keeps a pinned frame alive after munmap, with its pins and contents, and frees it with its last unpin', () => {
    const t = new Mem();
    t.mmap(A, 2, PROT_RW, MAP_PRIVATE | MAP_ANON);
    t.ok(t.write(A, [9]));
    const p = t.ok(t.pin(A, 2));
    expect(p.runs).toEqual([{ start: A, frame: 0, npages: 2 }]);
    expect(t.types(p.events)).toEqual(['PagesFaulted', 'FramesPinned']);
    expect(pinCountAt(t.m, PS, A + P)).toBe(1);
    expect(t.munmap(A, 2)).toEqual([
      { type: 'MmuNotifierInvalidate', start: A, last: A + 2n * P - 1n, reason: 'munmap' },
      { type: 'PtesZapped', start: A, last: A + 2n * P - 1n },
      { type: 'VmaUnmapped', start: A, length: 2n * P },
    ]);
    expect([...t.m.frames.runs()]).toEqual([{ start: 0, last: 1, value: { owner: 0, index: undefined } }]);
    expect(t.m.pins.get(0)).toBe(1);
    expect(t.m.data.get(0)?.[0]).toBe(9);
    expect(pinCountAt(t.m, PS, A)).toBe(0);
    expect(staleUserRanges(t.m, PS, p.runs)).toEqual([{ start: A, last: A + 2n * P - 1n }]);
    expect(t.apply(unpinFrames(t.m, p.runs).events)).toEqual([
      { type: 'FramesUnpinned', frame: 0, count: 2 },
      { type: 'FramesFreed', frame: 0, count: 2 },
    ]);
    expect(t.m.frames.isEmpty && t.m.data.size === 0 && t.m.pins.isEmpty).toBe(true);
  });

  it('does not free a frame that is still mapped when its last pin is dropped', () => {
    const t = new Mem();
    t.mmap(A, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    const p = t.ok(t.pin(A, 1));
    expect(t.types(t.apply(unpinFrames(t.m, p.runs).events))).toEqual(['FramesUnpinned']);
    expect(frameAt(t.m, A)).toBe(0);
  });

  it('pins a frame reached through two aliases of one memfd page twice', () => {
    const t = new Mem();
    t.memfd(1, 1);
    t.mmap(A, 1, PROT_RW, MAP_SHARED, 1);
    t.mmap(A + P, 1, PROT_RW, MAP_SHARED, 1);
    const p = t.ok(t.pin(A, 2));
    expect(t.types(p.events)).toEqual(['FilePagesAdded', 'PagesFaulted', 'PagesFaulted', 'FramesPinned', 'FramesPinned']);
    expect(p.runs).toEqual([{ start: A, frame: 0, npages: 1 }, { start: A + P, frame: 0, npages: 1 }]);
    expect(pinCountAt(t.m, PS, A)).toBe(2);
  });

  it('needs PROT_WRITE for a write pin and PROT_READ for a read pin; the pages before a failure stay faulted in, unpinned', () => {
    const t = new Mem();
    t.mmap(A, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    t.mmap(A + P, 1, PROT_R, MAP_PRIVATE | MAP_ANON);
    t.mmap(A + 2n * P, 1, PROT_NONE, MAP_PRIVATE | MAP_ANON);
    const f = t.fails(t.pin(A, 2, true), 'EFAULT', /check_vma_flags: FOLL_WRITE/);
    expect(t.types(f.events)).toEqual(['PagesFaulted']);
    expect(t.m.pins.isEmpty).toBe(true);
    expect(frameAt(t.m, A)).toBe(0);
    t.ok(t.pin(A + P, 1, false));
    t.fails(t.pin(A + 2n * P, 1, false), 'EFAULT', /lacks VM_READ/);
    t.fails(t.pin(A + 3n * P, 1, false), 'EFAULT', /no VMA/);
  });

  it('pins memfd pages by file offset, allocating missing ones; a page past EOF is EINVAL and pins nothing', () => {
    const t = new Mem();
    t.memfd(1, 2);
    const f = t.fails(pinFileRange(t.m, PS, 1, 0n, 3), 'EINVAL', /shmem_get_folio_gfp/);
    expect(f.events).toEqual([{ type: 'FilePagesAdded', file: 1, start: 0n, last: 2n * P - 1n, frame: 0 }]);
    const p = t.ok(pinFileRange(t.m, PS, 1, P, 1));
    expect(p.runs).toEqual([{ start: P, frame: 1, npages: 1 }]);
    expect(t.types(p.events)).toEqual(['FramesPinned']);
    t.fails(pinFileRange(t.m, PS, 7, 0n, 1), 'EINVAL', /not a shmem file/);
  });

  it('throws on unpinning a frame more often than it was pinned (a model bug)', () => {
    const t = new Mem();
    t.mmap(A, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    const p = t.ok(t.pin(A, 1));
    expect(() => unpinFrames(t.m, [...p.runs, ...p.runs])).toThrow(/fewer pins/);
    t.apply(unpinFrames(t.m, p.runs).events);
    expect(() => t.apply([{ type: 'FramesUnpinned', frame: 0, count: 1 }])).toThrow(/underflow/);
  });
});

describe('the mmu_notifier chain', () => {
  it('MADV_DONTNEED on private anonymous memory frees the frame, and the next touch faults a fresh zero frame', () => {
    const t = new Mem();
    t.mmap(A, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    t.ok(t.write(A, [5]));
    expect(t.ok(t.madvise(A, 1, MADV_DONTNEED)).events).toEqual([
      { type: 'MmuNotifierInvalidate', start: A, last: A + P - 1n, reason: 'madvise_dontneed' },
      { type: 'PtesZapped', start: A, last: A + P - 1n },
      { type: 'FramesFreed', frame: 0, count: 1 },
    ]);
    expect(t.read(A, 1)).toEqual(bytes(0));
    t.ok(t.write(A + 1n, [6]));
    expect(frameAt(t.m, A)).toBe(1);
    expect(t.m.invalidations).toBe(1);
  });

  it('MADV_DONTNEED on a memfd mapping drops only the PTE: the next touch maps the same frame with its contents', () => {
    const t = new Mem();
    t.memfd(1, 1);
    t.mmap(A, 1, PROT_RW, MAP_SHARED, 1);
    t.ok(t.write(A, [5]));
    const p = t.ok(t.pin(A, 1));
    expect(t.types(t.ok(t.madvise(A, 1, MADV_DONTNEED)).events)).toEqual(['MmuNotifierInvalidate', 'PtesZapped']);
    expect(t.read(A, 1)).toEqual(bytes(5));
    expect(pinCountAt(t.m, PS, A)).toBe(1);
    expect(staleUserRanges(t.m, PS, p.runs)).toEqual([]);
    t.ok(t.write(A + 1n, [6]));
    expect(frameAt(t.m, A)).toBe(0);
  });

  it('reports a pin of private memory whose page was dropped as stale, and a remapped VA too', () => {
    const t = new Mem();
    t.mmap(A, 2, PROT_RW, MAP_PRIVATE | MAP_ANON);
    const p = t.ok(t.pin(A, 2));
    t.ok(t.madvise(A + P, 1, MADV_DONTNEED));
    expect(staleUserRanges(t.m, PS, p.runs)).toEqual([{ start: A + P, last: A + 2n * P - 1n }]);
    expect(pinCountAt(t.m, PS, A + P)).toBe(0);
    t.ok(t.write(A + P, [1]));
    expect(staleUserRanges(t.m, PS, p.runs)).toEqual([{ start: A + P, last: A + 2n * P - 1n }]);
    expect(t.types(t.apply(unpinFrames(t.m, p.runs).events))).toEqual(['FramesUnpinned', 'FramesFreed']);
  });

  it('MADV_REMOVE punches a hole in the memfd: every mapping of it is invalidated and the next touch reads zeros', () => {
    const t = new Mem();
    t.memfd(1, 2);
    const X = A, Y = A + 0x10_0000n, C = A + 0x20_0000n;
    t.mmap(X, 2, PROT_RW, MAP_SHARED, 1);
    t.mmap(Y, 2, PROT_RW, MAP_SHARED, 1);
    t.mmap(C, 2, PROT_RW, MAP_PRIVATE, 1);
    t.ok(t.write(X, [7]));
    t.ok(t.write(Y + 1n, [8]));
    t.ok(t.write(C + 2n, [9]));
    expect(t.ok(t.madvise(X, 1, MADV_REMOVE)).events).toEqual([
      { type: 'MmuNotifierInvalidate', start: X, last: X + P - 1n, reason: 'madvise_remove' },
      { type: 'PtesZapped', start: X, last: X + P - 1n },
      { type: 'MmuNotifierInvalidate', start: Y, last: Y + P - 1n, reason: 'madvise_remove' },
      { type: 'PtesZapped', start: Y, last: Y + P - 1n },
      { type: 'MmuNotifierInvalidate', start: C, last: C + P - 1n, reason: 'madvise_remove' },
      { type: 'FilePagesDropped', file: 1, start: 0n, last: P - 1n },
      { type: 'FramesFreed', frame: 0, count: 1 },
    ]);
    expect(t.read(Y, 2)).toEqual(zeros(2));
    expect(t.read(C, 3)).toEqual(bytes(7, 8, 9)); // the private copy survives a hole punch
    t.fails(t.madvise(C, 1, MADV_REMOVE), 'EACCES', /private mapping/);
    t.mmap(A + 0x40_0000n, 1, PROT_R, MAP_SHARED, 1, 1); // VM_MAYWRITE comes from the file, not PROT_WRITE
    t.ok(t.write(X + P, [1]));
    expect(t.types(t.ok(t.madvise(A + 0x40_0000n, 1, MADV_REMOVE)).events)).toContain('FilePagesDropped');
    expect(t.read(X + P, 1)).toEqual(bytes(0));
    t.mmap(A + 0x30_0000n, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    t.fails(t.madvise(A + 0x30_0000n, 1, MADV_REMOVE), 'EINVAL');
  });

  it('MADV_FREE notifies but keeps anonymous pages (the model never reclaims), and is EINVAL on a memfd mapping', () => {
    const t = new Mem();
    t.mmap(A, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    t.ok(t.write(A, [4]));
    expect(t.types(t.ok(t.madvise(A, 1, MADV_FREE)).events)).toEqual(['MmuNotifierInvalidate']);
    expect(t.read(A, 1)).toEqual(bytes(4));
    t.memfd(1, 1);
    t.mmap(A + P, 1, PROT_RW, MAP_SHARED, 1);
    t.fails(t.madvise(A, 2, MADV_FREE), 'EINVAL', /not anonymous/);
  });

  it('advises the mapped parts of a range with a hole, then fails with ENOMEM', () => {
    const t = new Mem();
    t.mmap(A, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    t.mmap(A + 2n * P, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    t.ok(t.write(A, [1]));
    t.ok(t.write(A + 2n * P, [1]));
    const f = t.fails(t.madvise(A, 3, MADV_DONTNEED), 'ENOMEM', /madvise_walk_vmas/);
    expect(t.types(f.events).filter((x) => x === 'PtesZapped')).toHaveLength(2);
    expect(t.m.pt.isEmpty).toBe(true);
  });

  it('checks madvise arguments in do_madvise order', () => {
    const t = new Mem();
    t.fails(t.madvise(A, 1, 999), 'EINVAL', /madvise_behavior_valid/);
    t.fails(madviseEvents(t.m, 'explicit', PS, A + 1n, P, MADV_DONTNEED), 'EINVAL', /not page aligned/);
    t.fails(madviseEvents(t.m, 'explicit', PS, 0xffff_ffff_ffff_f000n, 2n * P, MADV_DONTNEED), 'EINVAL', /wraps/);
    expect(t.ok(madviseEvents(t.m, 'explicit', PS, A, 0n, MADV_DONTNEED)).events).toEqual([]);
  });

  it('mmap over a populated range unmaps it first', () => {
    const t = new Mem();
    t.mmap(A, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    t.ok(t.write(A, [1]));
    expect(t.types(t.mmap(A, 1, PROT_RW, MAP_PRIVATE | MAP_ANON))).toEqual(['MmuNotifierInvalidate', 'PtesZapped', 'FramesFreed', 'VmaUnmapped', 'VmaMapped']);
    expect(t.read(A, 1)).toEqual(bytes(0));
  });
});

describe('memfd truncation and shared anonymous memory', () => {
  it('ftruncate that shrinks a memfd invalidates its mappings, drops the pages past EOF and zeroes the tail of the last one', () => {
    const t = new Mem();
    t.memfd(1, 3);
    const X = A, Y = A + 0x10_0000n;
    t.mmap(X, 3, PROT_RW, MAP_SHARED, 1);
    t.mmap(Y, 3, PROT_RW, MAP_PRIVATE, 1);
    t.ok(t.write(X + P + 100n, new Uint8Array(200).fill(0x11)));
    t.ok(t.write(X + 2n * P, [0x33]));
    t.ok(t.write(Y + 2n * P + 1n, [0x22]));
    expect(t.read(Y + 2n * P, 2)).toEqual(bytes(0x33, 0x22));
    const ev = t.apply(ftruncateEvents(t.m, PS, 1, P + 150n));
    expect(t.types(ev)).toEqual([
      'MmuNotifierInvalidate', 'PtesZapped', 'MmuNotifierInvalidate', 'PtesZapped', 'FramesFreed', 'FilePagesDropped', 'FramesFreed', 'MemfdResized',
    ]);
    expect(ev[0]).toEqual({ type: 'MmuNotifierInvalidate', start: X + 2n * P, last: X + 3n * P - 1n, reason: 'truncate' });
    expect(t.read(X + P + 100n, 100)).toEqual(Uint8Array.from({ length: 100 }, (_, i) => (i < 50 ? 0x11 : 0)));
    expect(memRead(t.m, 'explicit', PS, X + 2n * P, 1)).toMatchObject({ errno: 'EFAULT' });
    expect(memRead(t.m, 'explicit', PS, Y + 2n * P, 1)).toMatchObject({ errno: 'EFAULT' });
    expect(t.types(t.apply(ftruncateEvents(t.m, PS, 1, 3n * P)))).toEqual(['MemfdResized']);
    expect(t.read(X + 2n * P, 1)).toEqual(bytes(0));
  });

  it('keeps a pinned memfd page alive through truncation, stale from then on', () => {
    const t = new Mem();
    t.memfd(1, 2);
    const p = t.ok(pinFileRange(t.m, PS, 1, P, 1));
    t.mmap(A, 2, PROT_RW, MAP_SHARED, 1);
    t.ok(t.write(A + P, [3]));
    expect(staleFileRanges(t.m, PS, 1, p.runs)).toEqual([]);
    expect(t.types(t.apply(ftruncateEvents(t.m, PS, 1, P)))).toEqual(['MmuNotifierInvalidate', 'PtesZapped', 'FilePagesDropped', 'MemfdResized']);
    expect(t.m.data.get(0)?.[0]).toBe(3);
    expect(staleFileRanges(t.m, PS, 1, p.runs)).toEqual([{ start: P, last: 2n * P - 1n }]);
    expect(t.types(t.apply(unpinFrames(t.m, p.runs).events))).toEqual(['FramesUnpinned', 'FramesFreed']);
  });

  it('backs shared anonymous memory with a shmem object: DONTNEED keeps its pages, and the last munmap releases them', () => {
    const t = new Mem();
    t.mmap(A, 2, PROT_RW, MAP_SHARED | MAP_ANON);
    expect(t.m.vmas[0]).toMatchObject({ file: -1, memfd: undefined, offset: 0n });
    t.ok(t.write(A, [1]));
    t.ok(t.write(A + P, [2]));
    t.ok(t.madvise(A, 2, MADV_DONTNEED));
    expect(t.read(A, 1)).toEqual(bytes(1));
    expect(t.types(t.munmap(A, 1))).toEqual(['MmuNotifierInvalidate', 'VmaUnmapped']);
    expect(t.m.shmem.size).toBe(1);
    const p = t.ok(t.pin(A + P, 1));
    expect(t.munmap(A + P, 1)).toEqual([
      { type: 'MmuNotifierInvalidate', start: A + P, last: A + 2n * P - 1n, reason: 'munmap' },
      { type: 'PtesZapped', start: A + P, last: A + 2n * P - 1n },
      { type: 'FilePagesDropped', file: -1, start: 0n, last: 2n * P - 1n },
      { type: 'FramesFreed', frame: 0, count: 1 },
      { type: 'VmaUnmapped', start: A + P, length: P },
    ]);
    expect(t.m.shmem.size).toBe(0);
    expect(t.m.data.get(1)?.[0]).toBe(2); // pinned: alive after the shmem object is gone
    t.apply(unpinFrames(t.m, p.runs).events);
    expect(t.m.frames.isEmpty).toBe(true);
  });
});

describe('chaining decisions in one step', () => {
  it('lets a later pin on a draft see the pages an earlier one faulted in and the pins it took', () => {
    const t = new Mem();
    t.mmap(A, 4, PROT_RW, MAP_PRIVATE | MAP_ANON);
    const d = mmDraft(t.m, PS);
    const a = pinUserRange(d, 'explicit', PS, A, 3, true) as MmPinned;
    const b = pinUserRange(d, 'explicit', PS, A + P, 3, true) as MmPinned;
    expect(t.types(a.events)).toEqual(['PagesFaulted', 'FramesPinned']);
    expect(b.events).toEqual([
      { type: 'PagesFaulted', start: A + 3n * P, last: A + 4n * P - 1n, frame: 3, source: 'anon', file: undefined, offset: 0n },
      { type: 'FramesPinned', frame: 1, count: 3 },
    ]);
    expect(b.runs).toEqual([{ start: A + P, frame: 1, npages: 3 }]);
    expect(t.types(unpinFrames(d, a.runs).events)).toEqual(['FramesUnpinned']);
    expect(d.events).toEqual([...a.events, ...b.events, { type: 'FramesUnpinned', frame: 0, count: 3 }]);
    t.apply(d.events);
    expect([0n, 1n, 2n, 3n].map((i) => pinCountAt(t.m, PS, A + i * P))).toEqual([0, 1, 1, 1]);
  });

  it('frees a frame once when two unpins of the same step drop its last pins', () => {
    const t = new Mem();
    t.mmap(A, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    const p1 = t.ok(t.pin(A, 1)), p2 = t.ok(t.pin(A, 1));
    t.munmap(A, 1);
    const d = mmDraft(t.m, PS);
    expect(t.types(unpinFrames(d, p1.runs).events)).toEqual(['FramesUnpinned']);
    expect(t.types(unpinFrames(d, p2.runs).events)).toEqual(['FramesUnpinned', 'FramesFreed']);
    expect(() => unpinFrames(d, p2.runs)).toThrow(/fewer pins/);
    t.apply(d.events);
    expect(t.m.frames.isEmpty).toBe(true);
  });

  it('refuses to decide after a munmap on the same draft, or to zap after pins on it', () => {
    const t = new Mem();
    t.mmap(A, 2, PROT_RW, MAP_PRIVATE | MAP_ANON);
    const d = mmDraft(t.m, PS);
    t.ok(pinUserRange(d, 'explicit', PS, A, 1, true));
    expect(() => munmapEvents(d, 'explicit', PS, A, P)).toThrow(/after stores or pins/);
    const e = mmDraft(t.m, PS);
    munmapEvents(e, 'explicit', PS, A + P, P);
    expect(() => pinUserRange(e, 'explicit', PS, A, 1, true)).toThrow(/fold its events first/);
    expect(() => mmDraft(t.m, 16384)).toThrow(/page size/);
  });
});

describe('cost, history and model bugs', () => {
  it('faults in and pins 2^28 pages (1 TiB) of one VMA in a constant number of runs', () => {
    const t = new Mem();
    const n = 2 ** 28;
    t.mmap(A, n, PROT_RW, MAP_PRIVATE | MAP_ANON);
    const p = t.ok(t.pin(A, n));
    expect(t.types(p.events)).toEqual(['PagesFaulted', 'FramesPinned']);
    expect(mmRunCount(t.m)).toBe(4);
    t.ok(t.write(A + 12345n * P, [1]));
    t.ok(t.madvise(A, n, MADV_DONTNEED));
    expect(mmRunCount(t.m)).toBe(4); // VMA, frames (now unanchored), pins, one written page
    expect(staleUserRanges(t.m, PS, p.runs)).toEqual([{ start: A, last: A + BigInt(n) * P - 1n }]);
    t.apply(unpinFrames(t.m, p.runs).events);
    expect(mmRunCount(t.m)).toBe(1);

    t.memfd(1, n);
    t.mmap(A, n, PROT_RW, MAP_SHARED, 1);
    expect(t.types(t.ok(t.pin(A, n)).events)).toEqual(['FilePagesAdded', 'PagesFaulted', 'FramesPinned']);
    expect(mmRunCount(t.m)).toBe(5);
  });

  it('rebuilds the same state from its event log, through the log codec', () => {
    const t = new Mem();
    t.memfd(1, 2);
    t.mmap(A, 2, PROT_RW, MAP_SHARED, 1);
    t.mmap(A + P * 4n, 2, PROT_RW, MAP_SHARED | MAP_ANON);
    t.ok(t.write(A + 5n, [1, 2]));
    t.ok(t.pin(A + 4n * P, 2));
    t.ok(t.madvise(A, 1, MADV_DONTNEED));
    t.munmap(A + P * 4n, 1);
    t.apply(ftruncateEvents(t.m, PS, 1, 10n));
    const rebuilt = emptyMm(PS);
    for (const e of t.log) mmEvolve(rebuilt, roundTrip(e));
    expect(viewMm(rebuilt)).toEqual(viewMm(t.m));
  });

  it('cloneMm makes a deep copy that later events to the original do not reach', () => {
    const t = new Mem();
    t.mmap(A, 1, PROT_RW, MAP_PRIVATE | MAP_ANON);
    t.ok(t.write(A, [1]));
    const c = cloneMm(t.m);
    const before = viewMm(c);
    t.ok(t.write(A, [2]));
    t.ok(t.pin(A, 1));
    t.munmap(A, 1);
    expect(viewMm(c)).toEqual(before);
    expect(memRead(c, 'explicit', PS, A, 1)).toEqual(bytes(1));
  });

  it('takes the page size from the trace header, and refuses to change it once pages exist', () => {
    const m = emptyMm();
    mmEvolve(m, { type: 'TraceStarted', pageSize: 16384 });
    expect(m.pageSize).toBe(16384);
    mmEvolve(m, { type: 'PagesFaulted', start: 0n, last: 16383n, frame: 0, source: 'anon', file: undefined, offset: 0n });
    expect(() => mmEvolve(m, { type: 'TraceStarted', pageSize: 4096 })).toThrow(/page size/);
    expect(() => memRead(m, 'implicit', 4096, 0n, 1)).toThrow(/page size/);
  });

  it('throws on events the state cannot take', () => {
    const t = new Mem();
    t.mmap(A, 2, PROT_RW, MAP_PRIVATE | MAP_ANON);
    const p = t.ok(t.pin(A, 1));
    const m = t.m;
    expect(() => mmEvolve(m, { type: 'PagesFaulted', start: A, last: A + P - 1n, frame: 1, source: 'anon', file: undefined, offset: 0n })).toThrow(/present PTEs/);
    expect(() => mmEvolve(m, { type: 'PagesFaulted', start: A + P, last: A + 2n * P - 1n, frame: 5, source: 'anon', file: undefined, offset: 0n })).toThrow(/out of order/);
    expect(() => mmEvolve(m, { type: 'VmaUnmapped', start: A, length: P })).toThrow(/present PTEs/);
    expect(() => mmEvolve(m, { type: 'FramesFreed', frame: 0, count: 1 })).toThrow(/still mapped/);
    mmEvolve(m, { type: 'PtesZapped', start: A, last: A + P - 1n });
    expect(() => mmEvolve(m, { type: 'FramesFreed', frame: 0, count: 1 })).toThrow(/pinned/);
    expect(() => mmEvolve(m, { type: 'MemWritten', frame: 3, offset: 0, data: '00' })).toThrow(/not live/);
    expect(() => mmEvolve(m, { type: 'MemWritten', frame: 0, offset: 0, data: 'XY' })).toThrow(/hex/);
    t.memfd(1, 2);
    t.ok(pinFileRange(m, PS, 1, P, 1));
    expect(() => mmEvolve(m, { type: 'MemfdResized', memfd: 1, size: P })).toThrow(/past/);
    expect(p.runs).toHaveLength(1);
  });
});
