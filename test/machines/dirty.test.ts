/**
 * Dirty tracking: IOMMU_HWPT_SET_DIRTY_TRACKING, IOMMU_HWPT_GET_DIRTY_BITMAP and IOMMU_TEST_OP_DIRTY, one check at a
 * time in the kernel's order, then a property against a naive per-page model.
 *
 * The given events go through `evolveWired`: the real `evolve`, plus `dirtyEvolve` for the dirty events (and for
 * DomainUnmapped), as state.ts will once it has the cases proposed with src/hw/dirty.ts. The handlers are called
 * directly (they are not in the dispatch tables yet) with a user memory the test controls.
 */
import fc from 'fast-check';
import { memRead } from '../../src/hw/mm.js';
import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import { resolveStruct, Unbound } from '../../src/events/resolve.js';
import { decodeIoctlArg } from '../../src/events/trace.js';
import { COMMAND_BY_NAME } from '../../src/events/uapi.js';
import { DIRTY_EVENT_TYPES, dirtyEvolve, dirtyOf, type DirtyEvent, type IovaRange } from '../../src/hw/dirty.js';
import {
  getDirtyBitmap, iommufd_hwpt_get_dirty_bitmap, iommufd_hwpt_set_dirty_tracking, test_dirty, testDirty, type UserMemory, type UserRead,
} from '../../src/machines/dirty.js';
import { runToCompletion, type Arg, type Call, type Done, type Step } from '../../src/machines/ioctl.js';
import { evolve, initialState, type State } from '../../src/projections/state.js';
import { DEFAULT_HEADER } from '../../src/replay/engine.js';
import { ioasAllocated, opened } from '../support/given.js';

const SEED = Number(process.env['FC_SEED'] ?? 0xd17e);
console.info(`dirty.test.ts (machines): fast-check seed ${SEED}`);

const U64_MAX = (1n << 64n) - 1n;
const K2 = 2048n, K4 = 4096n, M1 = 1n << 20n;
const BASE = 0x100_0000n;
const BMP = 0x7f20_0000_0000n, RO = 0x7f30_0000_0000n;
const r = (start: bigint, last: bigint): IovaRange => ({ start, last });
const pte = (iova: bigint, size = K2): IovaRange => r(iova, iova + size - 1n);

// ---- The wired projection and direct calls ------------------------------------------------------------------------

type Ev = DomainEvent | DirtyEvent;
const isDirty = (e: { type: string }): e is DirtyEvent => (DIRTY_EVENT_TYPES as readonly string[]).includes(e.type);
function evolveWired(st: State, e: Ev): void {
  if (isDirty(e)) return dirtyEvolve(st.domains, e);
  evolve(st, e);
  if (e.type === 'DomainUnmapped') dirtyEvolve(st.domains, e);
}
function build(...batches: Ev[][]): State {
  const st = initialState();
  for (const b of batches) for (const e of b) evolveWired(st, e);
  return st;
}
/** Trace values are JSON: bigints in a test's args become hex strings. */
const json = (v: unknown): unknown => typeof v === 'bigint' ? `0x${v.toString(16)}`
  : Array.isArray(v) ? v.map(json) : typeof v === 'object' && v !== null ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, json(x)])) : v;
function decode(cmd: string, arg: unknown): Arg {
  const d = decodeIoctlArg(COMMAND_BY_NAME.get(cmd), json(arg));
  if (!d.ok || d.value.k !== 'struct') throw new Error(`bad test arg for ${cmd}`);
  const a = resolveStruct(d.value.s, new Map(), 'arg');
  if (a instanceof Unbound) throw new Error('variables are not allowed here');
  return a;
}
interface Ran {
  readonly done: Done;
  readonly events: Ev[];
  readonly st: State;
}
function call(st: State, handler: (c: Call, a: Arg) => Step, cmd: string, arg: unknown): Ran {
  const c: Call = { k: { st, header: { ...DEFAULT_HEADER, iommufd_test: true }, line: 0 }, ctx: st.ctxs.get(1)! };
  const events: Ev[] = [];
  const apply = (es: readonly DomainEvent[]): void => {
    for (const e of es) {
      events.push(e);
      evolveWired(st, e);
    }
  };
  const done = runToCompletion(handler(c, decode(cmd, arg)), apply);
  apply(done.events);
  return { done, events, st };
}
function expectErr(r: Ran, errno: string, why?: RegExp): void {
  const o = r.done.outcome;
  expect(o.kind === 'err' ? o.errno : o.kind === 'ok' ? 'success' : `unmodelled: ${o.what}`).toBe(errno);
  expect(r.events).toEqual([]);
  if (why !== undefined && o.kind === 'err') expect(o.why).toMatch(why);
}
function expectOk(r: Ran, events?: Ev[]): void {
  const o = r.done.outcome;
  expect(o.kind, o.kind === 'err' ? `${o.errno}: ${o.why}` : o.kind === 'unmodelled' ? o.what : '').toBe('ok');
  if (events !== undefined) expect(r.events).toEqual(events);
}

/** User memory as a byte map: reads see what was written (zeros elsewhere), `faults` answer EFAULT. */
class FakeMem implements UserMemory {
  readonly bytes = new Map<bigint, number>();
  readonly writes: { ptr: bigint; data: Uint8Array }[] = [];
  readonly faults: IovaRange[] = [];
  read(_c: Call, ptr: bigint, length: number): UserRead {
    for (const f of this.faults) if (ptr <= f.last && ptr + BigInt(length) - 1n >= f.start) return { errno: 'EFAULT', why: 'no VMA' };
    return Uint8Array.from({ length }, (_, i) => this.bytes.get(ptr + BigInt(i)) ?? 0);
  }
  write(_c: Call, ptr: bigint, data: Uint8Array): readonly DomainEvent[] {
    this.writes.push({ ptr, data: data.slice() });
    data.forEach((b, i) => this.bytes.set(ptr + BigInt(i), b));
    return [];
  }
  poke(ptr: bigint, data: number[]): this {
    data.forEach((b, i) => this.bytes.set(ptr + BigInt(i), b));
    return this;
  }
  peek(ptr: bigint, length: number): number[] {
    return Array.from({ length }, (_, i) => this.bytes.get(ptr + BigInt(i)) ?? 0);
  }
}

const setTracking = (st: State, arg: unknown): Ran => call(st, iommufd_hwpt_set_dirty_tracking, 'IOMMU_HWPT_SET_DIRTY_TRACKING', arg);
const getBitmap = (st: State, arg: unknown, mem: UserMemory = new FakeMem()): Ran =>
  call(st, (c, a) => getDirtyBitmap(c, a, mem), 'IOMMU_HWPT_GET_DIRTY_BITMAP', arg);
const dirtyOp = (st: State, id: number, dirty: Record<string, unknown>, mem: UserMemory = new FakeMem()): Ran =>
  call(st, (c, a) => testDirty(c, a, mem), 'IOMMU_TEST_CMD', { op: 'IOMMU_TEST_OP_DIRTY', id, dirty });

// ---- The world ----------------------------------------------------------------------------------------------------

/** HWPT_PAGING `id` holding mock domain `domain` in IOAS `ioas`. */
function hwpt(id: number, domain: number, o: { dirtyOps: boolean; huge?: boolean; ioas?: number; auto?: boolean }): DomainEvent[] {
  const ioas = o.ioas ?? 1;
  return [
    { type: 'ObjectAllocated', ctx: 1, id, kind: 'HWPT_PAGING' },
    { type: 'ObjectRefTaken', ctx: 1, id: ioas, by: id },
    {
      type: 'DomainAllocated', domain, kind: 'paging', driver: 'mock', pgsizeBitmap: o.huge === true ? M1 | K4 : K2,
      apertureStart: o.huge === true ? 0n : BASE, apertureLast: o.huge === true ? U64_MAX : (1n << 31n) - 1n, dirtyOps: o.dirtyOps, ctx: 1, hwpt: id,
    },
    { type: 'HwptInitialized', ctx: 1, id, ioas, domain, auto: o.auto ?? false, nestParent: false, pasidCompat: false },
    { type: 'IoptDomainAdded', ctx: 1, ioas, domain, iovaAlignment: o.huge === true ? K4 : K2 },
    { type: 'ObjectFinalized', ctx: 1, id },
  ];
}
/** Area `area` of IOAS `ioas` at [start, start + length), on new pages `pages`, mapped into `domains` from `phys`. */
function area(area: number, start: bigint, length: bigint, domains: number[], o: { phys?: bigint; published?: boolean; ioas?: number } = {}): DomainEvent[] {
  const npages = Number((length + 4095n) / 4096n);
  const ioas = o.ioas ?? 1;
  const ev: DomainEvent[] = [
    { type: 'PagesCreated', pages: area, kind: 'user', uptr: 0x7f00_0000_0000n + BigInt(area) * 0x1000_0000n, memfd: undefined, fileStart: 0n, npages, writable: true, accountMode: 1 },
    { type: 'AreaReserved', ctx: 1, ioas, area, start, last: start + length - 1n, pages: area, pagesStart: 0, pagesLast: npages - 1, pageOffset: 0, prot: 3, mappedAt: 0 },
  ];
  if (o.published !== false) ev.push({ type: 'AreaPublished', ctx: 1, ioas, area });
  for (const domain of domains) ev.push({ type: 'DomainMapped', domain, iova: start, last: start + length - 1n, phys: o.phys ?? 0x4000_0000n + start });
  return ev;
}
const vma = (start: bigint, length: bigint, prot: number): DomainEvent[] =>
  [{ type: 'VmaMapped', start, length, prot, flags: 0x22, memfd: undefined, offset: 0n }];
const tracking = (domain: number, enabled = true): DirtyEvent[] => [{ type: 'DomainDirtyTrackingSet', domain, enabled }];
const dirtied = (domain: number, ...ranges: IovaRange[]): DirtyEvent[] => [{ type: 'DomainDirtied', domain, ranges }];

/**
 * IOAS 1 with HWPT 2 (domain 1, dirty ops) and HWPT 3 (domain 2, none), both 2 KiB mock domains. Areas:
 * 1 [BASE, +16K) and 2 [BASE+16K, +8K) back to back, a gap, 3 [BASE+32K, +8K), 4 [BASE+64K, +8K) not published.
 * A 3-page writable bitmap buffer at BMP, a read-only page at RO.
 */
const world = (): Ev[][] => [
  opened(), ioasAllocated(1), hwpt(2, 1, { dirtyOps: true }), hwpt(3, 2, { dirtyOps: false }),
  area(1, BASE, 0x4000n, [1, 2]), area(2, BASE + 0x4000n, 0x2000n, [1, 2]), area(3, BASE + 0x8000n, 0x2000n, [1, 2]),
  area(4, BASE + 0x1_0000n, 0x2000n, [1, 2], { published: false }),
  vma(BMP, 0x3000n, 3), vma(RO, 0x1000n, 1),
];
const dirtyRanges = (st: State, domain = 1): IovaRange[] => [...dirtyOf(st.domains.get(domain)!).ranges()];

// ---- IOMMU_HWPT_SET_DIRTY_TRACKING ---------------------------------------------------------------------------------------

describe('IOMMU_HWPT_SET_DIRTY_TRACKING', () => {
  it('checks flags first (EOPNOTSUPP), and never __reserved', () => {
    expectErr(setTracking(build(...world()), { flags: 2, hwpt_id: 99 }), 'EOPNOTSUPP', /flags 0x2/);
    expectErr(setTracking(build(...world()), { flags: 1, hwpt_id: 99, __reserved: 7 }), 'ENOENT');
  });

  it('looks the id up as a HWPT_PAGING: ENOENT for a missing id and for an IOAS', () => {
    expectErr(setTracking(build(...world()), { flags: 1, hwpt_id: 99 }), 'ENOENT', /no object has id 99/);
    expectErr(setTracking(build(...world()), { flags: 1, hwpt_id: 1 }), 'ENOENT', /is a IOAS/);
  });

  it('answers EOPNOTSUPP for a domain without dirty ops, enable or disable', () => {
    expectErr(setTracking(build(...world()), { flags: 1, hwpt_id: 3 }), 'EOPNOTSUPP', /no dirty_ops/);
    expectErr(setTracking(build(...world()), { flags: 0, hwpt_id: 3 }), 'EOPNOTSUPP');
    const auto = build(opened(), ioasAllocated(1), hwpt(2, 1, { dirtyOps: false, auto: true }));
    expectErr(setTracking(auto, { flags: 1, hwpt_id: 2 }), 'EOPNOTSUPP', /auto domain/);
  });

  it('clears the dirty IOPTEs of every published area before enabling; an unpublished area keeps its bits', () => {
    const st = build(...world(), dirtied(1, pte(BASE + 0x800n), pte(BASE + 0x8000n), pte(BASE + 0x1_0000n)));
    expectOk(setTracking(st, { flags: 'IOMMU_HWPT_DIRTY_TRACKING_ENABLE', hwpt_id: 2 }), [
      { type: 'DomainDirtyCleared', domain: 1, ranges: [pte(BASE + 0x800n), pte(BASE + 0x8000n)] },
      { type: 'DomainDirtyTrackingSet', domain: 1, enabled: true },
    ]);
    expect(st.domains.get(1)!.dirtyTracking).toBe(true);
    expect(dirtyRanges(st)).toEqual([pte(BASE + 0x1_0000n)]);
  });

  it('clears again when tracking is already on, with no change of the flag', () => {
    const st = build(...world(), tracking(1), dirtied(1, pte(BASE)));
    expectOk(setTracking(st, { flags: 1, hwpt_id: 2 }), [{ type: 'DomainDirtyCleared', domain: 1, ranges: [pte(BASE)] }]);
  });

  it('disables without touching the dirty bits; disabling what is off changes nothing', () => {
    const st = build(...world(), tracking(1), dirtied(1, pte(BASE)));
    expectOk(setTracking(st, { flags: 0, hwpt_id: 2 }), [{ type: 'DomainDirtyTrackingSet', domain: 1, enabled: false }]);
    expect(dirtyRanges(st)).toEqual([pte(BASE)]);
    expectOk(setTracking(st, { flags: 0, hwpt_id: 2 }), []);
  });
});

// ---- IOMMU_HWPT_GET_DIRTY_BITMAP -----------------------------------------------------------------------------------------

describe('IOMMU_HWPT_GET_DIRTY_BITMAP', () => {
  const get = (over: Record<string, unknown>): Record<string, unknown> =>
    ({ hwpt_id: 2, iova: BASE, length: 0xa000n, page_size: K2, data: BMP, ...over });

  it('checks flags and __reserved first (EOPNOTSUPP)', () => {
    expectErr(getBitmap(build(...world()), get({ hwpt_id: 99, flags: 2 })), 'EOPNOTSUPP');
    expectErr(getBitmap(build(...world()), get({ hwpt_id: 99, __reserved: 1 })), 'EOPNOTSUPP');
  });

  it('then looks up the HWPT_PAGING (ENOENT)', () => {
    expectErr(getBitmap(build(...world()), get({ hwpt_id: 99 })), 'ENOENT');
    expectErr(getBitmap(build(...world()), get({ hwpt_id: 1 })), 'ENOENT');
  });

  it('then checks the range in u64: iova + length - 1 overflowing is EOVERFLOW, and length 0 wraps', () => {
    expectErr(getBitmap(build(...world()), get({ iova: 0x1000n, length: U64_MAX })), 'EOVERFLOW');
    expectErr(getBitmap(build(...world()), get({ length: 0 })), 'EOVERFLOW', /length 0 wraps/);
    // iova 0, length 0: last = U64_MAX, its end wraps to 0 (aligned to anything); the walk finds no area at IOVA 0
    const r0 = getBitmap(build(...world()), get({ iova: 0, length: 0 }));
    expectOk(r0, []);
    expect(r0.done.outcome.kind === 'ok' && r0.done.outcome.why).toMatch(/stopped at 0x0/);
  });

  it('then the IOAS iova_alignment of both ends (EINVAL)', () => {
    expectErr(getBitmap(build(...world()), get({ iova: BASE + 0x400n, page_size: 1 })), 'EINVAL', /iova_alignment 0x800/);
    expectErr(getBitmap(build(...world()), get({ length: 0x1400n, page_size: 1 })), 'EINVAL', /iova_alignment/);
  });

  it('then page_size 0, then the page_size - 1 mask of both ends (EINVAL)', () => {
    expectErr(getBitmap(build(...world()), get({ page_size: 0 })), 'EINVAL', /page_size 0/);
    expectErr(getBitmap(build(...world()), get({ page_size: K4, iova: BASE + K2 })), 'EINVAL', /page_size - 1/);
    expectErr(getBitmap(build(...world()), get({ page_size: K4, length: 0x1800n })), 'EINVAL', /page_size - 1/);
    // A mask, not a modulo: 0x1800 - 1 = 0x17ff has no bit of 0x2000, so [BASE, +0x2000) passes; bits are 2 KiB (__ffs)
    const st = build(...world(), dirtied(1, pte(BASE + 0x1800n)));
    const mem = new FakeMem();
    expectOk(getBitmap(st, get({ page_size: 0x1800n, length: 0x2000n }), mem));
    expect(mem.peek(BMP, 1)).toEqual([0x08]);
  });

  it('checks the range before the dirty ops: EINVAL, then EOPNOTSUPP for a domain without them', () => {
    expectErr(getBitmap(build(...world()), get({ hwpt_id: 3, page_size: 0 })), 'EINVAL');
    expectErr(getBitmap(build(...world()), get({ hwpt_id: 3 })), 'EOPNOTSUPP', /no dirty_ops/);
  });

  it('ORs the dirty IOPTEs of the contiguous areas into the bitmap and cleans them; the walk ends at the first gap', () => {
    const st = build(...world(), tracking(1), dirtied(1, pte(BASE + 0x800n), pte(BASE + 0x1800n), pte(BASE + 0x4000n), pte(BASE + 0x8000n)));
    const mem = new FakeMem().poke(BMP, [0x80, 0x00, 0x00, 0x5a]);
    const ran = getBitmap(st, get({}), mem);
    expectOk(ran, [{ type: 'DomainDirtyCleared', domain: 1, ranges: [r(BASE + 0x800n, BASE + 0xfffn), r(BASE + 0x1800n, BASE + 0x1fffn), pte(BASE + 0x4000n)] }]);
    expect(mem.peek(BMP, 4)).toEqual([0x8a, 0x01, 0x00, 0x5a]); // bits 1, 3, 8 ORed in; bit 16 (after the gap) not reached
    expect(mem.writes.map((w) => w.ptr)).toEqual([BMP]);
    expect(dirtyRanges(st)).toEqual([pte(BASE + 0x8000n)]);
    expect(ran.done.outcome.kind === 'ok' && ran.done.outcome.why).toMatch(/stopped at 0x1006000/);
  });

  it('with NO_CLEAR reports the same bits and leaves them dirty', () => {
    const st = build(...world(), tracking(1), dirtied(1, pte(BASE + 0x800n)));
    const mem = new FakeMem();
    expectOk(getBitmap(st, get({ flags: 'IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR' }), mem), []);
    expect(mem.peek(BMP, 1)).toEqual([0x02]);
    expect(dirtyRanges(st)).toEqual([pte(BASE + 0x800n)]);
  });

  it('reports dirty bits whether or not tracking is on (the generic page table does not look)', () => {
    const st = build(...world(), dirtied(1, pte(BASE)));
    const mem = new FakeMem();
    expectOk(getBitmap(st, get({}), mem));
    expect(mem.peek(BMP, 1)).toEqual([0x01]);
  });

  it('reports nothing from a range starting in a gap or in an unpublished area', () => {
    const st = build(...world(), dirtied(1, pte(BASE + 0x8000n), pte(BASE + 0x1_0000n)));
    expectOk(getBitmap(st, get({ iova: BASE + 0x6000n, length: 0x4000n })), []);
    expectOk(getBitmap(st, get({ iova: BASE + 0x1_0000n, length: 0x2000n })), []);
  });

  it('sets bits at any byte offset of the buffer (u64-unaligned bitmaps)', () => {
    const st = build(...world(), dirtied(1, pte(BASE), pte(BASE + 0x3800n), pte(BASE + 0x4800n)));
    for (const off of [0xff1n, 0xfffn]) { // 0xfff: the second byte is on the next page
      const mem = new FakeMem();
      expectOk(getBitmap(st, get({ data: BMP + off, flags: 1 }), mem));
      expect(mem.peek(BMP + off, 2)).toEqual([0x81, 0x02]);
    }
  });

  it('drops the bits silently but still cleans when the bitmap cannot be pinned for writing (NULL, read-only)', () => {
    for (const data of [0n, RO]) {
      const st = build(...world(), dirtied(1, pte(BASE)));
      const mem = new FakeMem();
      const ran = getBitmap(st, get({ data }), mem);
      expectOk(ran, [{ type: 'DomainDirtyCleared', domain: 1, ranges: [pte(BASE)] }]);
      expect(mem.writes).toEqual([]);
      expect(ran.done.outcome.kind === 'ok' && ran.done.outcome.why).toMatch(/could not pin/);
    }
  });

  it('gives the result in out.data for a bitmap given inline', () => {
    const st = build(...world(), dirtied(1, pte(BASE + 0x800n), pte(BASE + 0x1800n), pte(BASE + 0x4000n)));
    const ran = getBitmap(st, get({ data: '00f0' }));
    expectOk(ran);
    expect(ran.done.outcome.kind === 'ok' && ran.done.outcome.out).toEqual({ data: Uint8Array.from([0x0a, 0xf1]) });
  });

  it('reports a dirty 1 MiB IOPTE from the walk start for its full size, past its end (record_dirty uses range->va)', () => {
    const st = build(opened(), ioasAllocated(1), hwpt(2, 1, { dirtyOps: true, huge: true }),
      area(1, 0x20_0000n, 0x20_0000n, [1], { phys: 0x40_0000n }), vma(BMP, 0x3000n, 3), dirtied(1, pte(0x20_0000n, M1)));
    const mem = new FakeMem();
    expectOk(getBitmap(st, { hwpt_id: 2, iova: 0x28_0000n, length: M1, page_size: 0x8_0000n, data: BMP }, mem),
      [{ type: 'DomainDirtyCleared', domain: 1, ranges: [pte(0x20_0000n, M1)] }]);
    expect(mem.peek(BMP, 1)).toEqual([0x03]); // bit 1 is the clean IOPTE at 0x300000
  });

  it('ORs its bits into the bitmap in the modelled user memory', () => {
    const st = build(...world(), dirtied(1, pte(BASE)));
    const ran = call(st, iommufd_hwpt_get_dirty_bitmap, 'IOMMU_HWPT_GET_DIRTY_BITMAP', get({}));
    expect(ran.done.outcome.kind).toBe('ok');
    const bytes = memRead(st.mm, st.memory, 4096, BMP, 1);
    expect(bytes instanceof Uint8Array && bytes[0]! & 1).toBe(1);
    expectOk(call(build(...world()), iommufd_hwpt_get_dirty_bitmap, 'IOMMU_HWPT_GET_DIRTY_BITMAP', get({})), []);
  });
});

// ---- IOMMU_TEST_OP_DIRTY ---------------------------------------------------------------------------------------------------

describe('IOMMU_TEST_OP_DIRTY', () => {
  const args = (over: Record<string, unknown> = {}): Record<string, unknown> =>
    ({ iova: BASE, length: 0x4000n, page_size: K2, uptr: BMP, ...over });

  it('checks page_size, length, their alignment and uptr before the object (EINVAL)', () => {
    for (const over of [{ page_size: 0 }, { length: 0 }, { iova: BASE + 0x400n }, { length: 0x4400n }, { uptr: 0 }])
      expectErr(dirtyOp(build(...world()), 99, args(over)), 'EINVAL');
  });

  it('then looks up a HWPT_PAGING (ENOENT)', () => {
    expectErr(dirtyOp(build(...world()), 99, args()), 'ENOENT');
    expectErr(dirtyOp(build(...world()), 1, args()), 'ENOENT');
  });

  it('then needs tracking enabled on the mock domain (EINVAL)', () => {
    expectErr(dirtyOp(build(...world()), 2, args()), 'EINVAL', /MOCK_DIRTY_TRACK/);
    expectErr(dirtyOp(build(...world()), 3, args()), 'EINVAL', /MOCK_DIRTY_TRACK/);
  });

  it('then allocates the bitmap: ENOMEM above INT_MAX bytes', () => {
    expectErr(dirtyOp(build(...world(), tracking(1)), 2, args({ iova: 0, page_size: 1, length: 1n << 40n })), 'ENOMEM');
  });

  it('then copies the bitmap from uptr (EFAULT)', () => {
    const mem = new FakeMem();
    mem.faults.push(r(BMP, BMP + 0xfffn));
    expectErr(dirtyOp(build(...world(), tracking(1)), 2, args(), mem), 'EFAULT');
  });

  it('dirties the IOPTE at each set bit and counts the set bits, mapped or not', () => {
    const st = build(...world(), tracking(1));
    const mem = new FakeMem().poke(BMP, [0b1010_0101, 0b0000_0011]);
    const ran = dirtyOp(st, 2, args({ length: 0x8000n }), mem); // bits 8, 9 fall in areas 2 (0x4000) and 2 (0x4800); 16 bits
    expectOk(ran, [{ type: 'DomainDirtied', domain: 1, ranges: [pte(BASE), pte(BASE + 0x1000n), pte(BASE + 0x2800n), r(BASE + 0x3800n, BASE + 0x4fffn)] }]);
    expect(ran.done.outcome.kind === 'ok' && ran.done.outcome.out).toMatchObject({ dirty: { out_nr_dirty: 6n, iova: BASE } });
    // a bit over the gap counts but dirties nothing
    const gap = dirtyOp(st, 2, args({ iova: BASE + 0x6000n, length: 0x800n }), new FakeMem().poke(BMP, [1]));
    expectOk(gap, []);
    expect(gap.done.outcome.kind === 'ok' && gap.done.outcome.out).toMatchObject({ dirty: { out_nr_dirty: 1n } });
  });

  it('with page_size larger than an IOPTE dirties only the IOPTEs holding the points', () => {
    const st = build(...world(), tracking(1));
    expectOk(dirtyOp(st, 2, args({ page_size: K4 }), new FakeMem().poke(BMP, [0x0f])),
      [{ type: 'DomainDirtied', domain: 1, ranges: [pte(BASE), pte(BASE + 0x1000n), pte(BASE + 0x2000n), pte(BASE + 0x3000n)] }]);
  });

  it('decides no event for IOPTEs already dirty', () => {
    const st = build(...world(), tracking(1), dirtied(1, pte(BASE)));
    expectOk(dirtyOp(st, 2, args(), new FakeMem().poke(BMP, [1])), []);
  });

  it('dirties a whole 1 MiB IOPTE of a HUGE domain from one 2 KiB bit', () => {
    const st = build(opened(), ioasAllocated(1), hwpt(2, 1, { dirtyOps: true, huge: true }),
      area(1, 0x20_0000n, 0x20_0000n, [1], { phys: 0x40_0000n }), tracking(1));
    expectOk(dirtyOp(st, 2, { iova: 0x20_0000n, length: 0x20_0000n, page_size: K2, uptr: BMP }, new FakeMem().poke(BMP, [0, 0, 0, 0, 0, 0, 0, 0, 1])),
      [{ type: 'DomainDirtied', domain: 1, ranges: [pte(0x20_0000n, M1)] }]);
  });

  it('reads uptr from the modelled user memory: an untouched bitmap has no bit set', () => {
    const ran = call(build(...world(), tracking(1)), test_dirty, 'IOMMU_TEST_CMD', { op: 'IOMMU_TEST_OP_DIRTY', id: 2, dirty: args() });
    expect(ran.done.outcome.kind === 'ok' && ran.done.outcome.out).toMatchObject({ dirty: { out_nr_dirty: 0n } });
  });
});

// ---- The selftest's shape (iommufd_dirty_tracking.*.domain_dirty128M_huge) ---------------------------------------------

describe('the selftest sequence on a 128 MiB MOCK_IOMMUPT_HUGE domain', () => {
  it('marks every other 1 MiB IOPTE from one bit each and reads back 512 bits per dirty IOPTE, twice with NO_CLEAR', () => {
    const len = 128n * M1;
    const st = build(opened(), ioasAllocated(1), hwpt(2, 1, { dirtyOps: true, huge: true }),
      area(1, BASE, len, [1], { phys: 0x1_0000_0000n }), vma(BMP, 0x3000n, 3), tracking(1));
    const nbits = Number(len / K2), pteBits = Number(M1 / K2);
    const marks = new Uint8Array(nbits / 8);
    for (let i = 0; i < nbits; i += 2 * pteBits) marks[i >> 3] = 1; // test_mock_dirty_bitmaps: every even IOPTE
    const mem = new FakeMem().poke(BMP, [...marks]);
    const set = dirtyOp(st, 2, { iova: BASE, length: len, page_size: K2, uptr: BMP }, mem);
    expectOk(set);
    expect(set.done.outcome.kind === 'ok' && set.done.outcome.out).toMatchObject({ dirty: { out_nr_dirty: 64n } });
    const want = Array.from({ length: nbits / 8 }, (_, i) => (Math.floor(i / (pteBits / 8)) % 2 === 0 ? 0xff : 0));
    for (let round = 0; round < 2; round++) {
      const out = new FakeMem();
      expectOk(getBitmap(st, { hwpt_id: 2, flags: 1, iova: BASE, length: len, page_size: K2, data: BMP }, out), []);
      expect(out.peek(BMP, nbits / 8)).toEqual(want);
    }
  });
});

// ---- The property: the bitmap is what a naive per-page model says ------------------------------------------------------

describe('GET_DIRTY_BITMAP against a naive per-page model of DIRTY marks and read-and-clears', () => {
  // Pages are 2 KiB IOPTEs from BASE: areas 1 [0, 8), 2 [8, 12) back to back, a gap [12, 16), 3 [16, 20).
  const mapped = (p: number): boolean => (p >= 0 && p < 12) || (p >= 16 && p < 20);
  const areaEnd = (p: number): number => (p < 12 ? 12 : 20); // contiguous published IOVA from p
  const op = fc.oneof(
    fc.record({ k: fc.constant('dirty' as const), start: fc.integer({ min: 0, max: 10 }), big: fc.boolean(), bits: fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }) }),
    fc.record({ k: fc.constant('get' as const), start: fc.integer({ min: 0, max: 11 }), big: fc.boolean(), n: fc.integer({ min: 1, max: 10 }), noClear: fc.boolean(), off: fc.constantFrom(0n, 0x801n, 0xff1n) }),
    fc.record({ k: fc.constant('enable' as const) }),
  );

  it('holds for any sequence', () => {
    fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 14 }), (ops) => {
      const st = build(opened(), ioasAllocated(1), hwpt(2, 1, { dirtyOps: true }),
        area(1, BASE, 0x4000n, [1]), area(2, BASE + 0x4000n, 0x2000n, [1]), area(3, BASE + 0x8000n, 0x2000n, [1]),
        vma(BMP, 0x3000n, 3), tracking(1));
      const naive = new Set<number>();
      let slot = 0;
      for (const o of ops) {
        if (o.k === 'enable') {
          expectOk(setTracking(st, { flags: 1, hwpt_id: 2 }));
          naive.clear();
        } else if (o.k === 'dirty') {
          const step = o.big ? 2 : 1; // page_size in 2 KiB pages
          const start = o.start - (o.start % step);
          const mem = new FakeMem();
          const bytes = new Array<number>(Math.ceil(o.bits.length / 8)).fill(0);
          o.bits.forEach((b, i) => { if (b) bytes[i >> 3]! |= 1 << (i & 7); });
          mem.poke(BMP, bytes);
          const ran = dirtyOp(st, 2, { iova: BASE + BigInt(start) * K2, length: BigInt(o.bits.length * step) * K2, page_size: BigInt(step) * K2, uptr: BMP }, mem);
          expectOk(ran);
          o.bits.forEach((b, i) => { const p = start + i * step; if (b && mapped(p)) naive.add(p); });
          expect(ran.done.outcome.kind === 'ok' && ran.done.outcome.out).toMatchObject({ dirty: { out_nr_dirty: BigInt(o.bits.filter(Boolean).length) } });
        } else {
          const step = o.big ? 2 : 1;
          const start = o.start - (o.start % step);
          const data = BMP + BigInt(slot++ % 2) * 0x1000n + (o.off % 0x800n);
          const mem = new FakeMem();
          const ran = getBitmap(st, { hwpt_id: 2, flags: o.noClear ? 1 : 0, iova: BASE + BigInt(start) * K2, length: BigInt(o.n * step) * K2, page_size: BigInt(step) * K2, data }, mem);
          expectOk(ran);
          const want = new Array<number>(Math.ceil(o.n / 8)).fill(0);
          const walkEnd = mapped(start) ? Math.min(start + o.n * step, areaEnd(start)) : start;
          for (let p = start; p < walkEnd; p++) {
            if (!naive.has(p)) continue;
            const bit = Math.floor((p - start) / step);
            want[bit >> 3]! |= 1 << (bit & 7);
            if (!o.noClear) naive.delete(p);
          }
          expect(mem.peek(data, want.length)).toEqual(want);
          expect(mem.peek(data + BigInt(want.length), 8)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
        }
        const have = new Set<number>();
        for (const x of dirtyRanges(st)) for (let a = x.start; a <= x.last; a += K2) have.add(Number((a - BASE) / K2));
        expect([...have].sort((a, b) => a - b)).toEqual([...naive].sort((a, b) => a - b));
      }
    }), { seed: SEED, numRuns: 200 });
  });
});
