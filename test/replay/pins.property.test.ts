/**
 * Property tests over random traces driven through the real `Replayer`: maps (fixed, automatic, of a memfd),
 * copies, unmaps, mock domains (attach, replace, destroy), test accesses (pin, unpin, close), in one or two
 * iommufd contexts, with implicit memory or an explicit mmap. After every line the model's state must keep the
 * kernel's invariants (spec iommufd-core-spec.md §4, §5, §6):
 *
 *  (a) the areas of every IOAS are pairwise disjoint and never intersect its reserved ranges;
 *  (b) an automatic IOVA is a multiple of the §4.2 alignment, lies in [PAGE_SIZE, ULONG_MAX - PAGE_SIZE], has the
 *      user address's in-page offset bits set (`round_up(hole, align) | offset`), and equals that offset modulo
 *      PAGE_SIZE whenever the alignment is at least PAGE_SIZE;
 *  (c) pin conservation: an iopt_pages pins a page iff a domain-filled area or an access item covers it, the frame it
 *      pinned is the one the process's memory has there, every frame's FOLL_PIN count is the number of iopt_pages
 *      pinning it, and the accounting totals are the pages charged;
 *  (d) every domain maps exactly the published areas of its IOAS, IOVA → the physical address of their frames;
 *  (e) the log, encoded and decoded and folded from `initialState()`, rebuilds the live state;
 *  (f) once every fd is closed, no context, object, page, pin, domain or charge is left.
 *
 * No model error (`r.internal`) and no trace error may occur.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../../src/events/domain.js';
import { decodeEntry, encodeEntry } from '../../src/events/log.js';
import { frameAt } from '../../src/hw/mm.js';
import { frameOf, type IoptPages } from '../../src/hw/pages.js';
import { viewState } from '../../src/projections/snapshot.js';
import { evolve, initialState, type State } from '../../src/projections/state.js';
import { Replayer } from '../../src/replay/engine.js';

const SEED = Number(process.env.FC_SEED ?? 7331);
const RUNS = Number(process.env.FC_RUNS ?? 300);
const PAGE = 4096n;
const THP = 2n * 1024n * 1024n;
const BUF = 0x7f0000000000n;
const NPAGES = 64;
const APERTURE = 0x1000000n;
const hex = (v: bigint): string => `0x${v.toString(16)}`;

// ---- the trace generator ----------------------------------------------------------------------------------

type Line = Record<string, unknown>;
const ioctl = (fd: number, cmd: string, arg: Record<string, unknown>): Line => ({ op: 'ioctl', fd, cmd, arg });
const test = (fd: number, op: string, arg: Record<string, unknown>): Line => ioctl(fd, 'IOMMU_TEST_CMD', { op, ...arg });

/** Mostly the first context (fd 3), sometimes another fd (a second context, an access fd, a memfd). */
const ctxFd = fc.oneof({ weight: 12, arbitrary: fc.constant(3) }, { weight: 1, arbitrary: fc.integer({ min: 4, max: 8 }) });
/** IOAS 1 and 2 exist from the start; 3 only when the trace allocates it. */
const ioasId = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(1, 2) }, { weight: 1, arbitrary: fc.constant(3) });
const anyId = fc.integer({ min: 1, max: 12 });
/** Mostly fd 5, the access the prefix may create. */
const accessFd = fc.oneof({ weight: 4, arbitrary: fc.constant(5) }, { weight: 1, arbitrary: fc.integer({ min: 6, max: 8 }) });
/** A user address in the 64-page buffer, page aligned most of the time. */
const userVa = fc.tuple(fc.integer({ min: 0, max: NPAGES - 1 }), fc.constantFrom(0n, 0n, 0n, 0n, 0n, 0x800n, 0x123n))
  .map(([p, off]) => BUF + BigInt(p) * PAGE + off);
const npages = fc.integer({ min: 1, max: 8 });
const length = fc.oneof(
  { weight: 8, arbitrary: npages.map((n) => BigInt(n) * PAGE) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 16 }).map((n) => BigInt(n) * 0x800n) },
);
/** IOVAs on a 32-page grid inside the mock aperture, sometimes below it or on a 2 KiB grid. */
const iova = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 0, max: 31 }).map((k) => APERTURE + BigInt(k) * PAGE) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 16 }).map((k) => BigInt(k) * PAGE) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 63 }).map((k) => APERTURE + BigInt(k) * 0x800n) },
);
const RW = ['IOMMU_IOAS_MAP_WRITEABLE', 'IOMMU_IOAS_MAP_READABLE'];
const mapFlags = fc.constantFrom(RW, RW, RW, ['IOMMU_IOAS_MAP_READABLE']);
const fixed = (f: string[]) => ['IOMMU_IOAS_MAP_FIXED_IOVA', ...f];

const mapFixed = (fd: number, id: number, va: bigint, len: bigint, at: bigint, f: string[]): Line =>
  ioctl(fd, 'IOMMU_IOAS_MAP', { flags: fixed(f), ioas_id: id, user_va: hex(va), length: hex(len), iova: hex(at) });
const copyLine = (fd: number, dst: number, src: number, from: bigint, len: bigint, to: bigint | undefined, f: string[]): Line =>
  ioctl(fd, 'IOMMU_IOAS_COPY', {
    flags: to === undefined ? f : fixed(f), dst_ioas_id: dst, src_ioas_id: src, length: hex(len), src_iova: hex(from),
    ...(to === undefined ? {} : { dst_iova: hex(to) }),
  });
const accessPages = (fd: number, afd: number, at: bigint, len: bigint, flags: number): Line =>
  test(fd, 'IOMMU_TEST_OP_ACCESS_PAGES', { id: afd, access_pages: { flags, iova: hex(at), length: hex(len) } });

/** One operation, or a short sequence that makes the later calls likely to find what they need. */
const op: fc.Arbitrary<Line[]> = fc.oneof(
  { weight: 1, arbitrary: ctxFd.map((fd) => [ioctl(fd, 'IOMMU_IOAS_ALLOC', {})]) },
  { weight: 6, arbitrary: fc.tuple(ctxFd, ioasId, userVa, length, iova, mapFlags).map(([fd, id, va, len, at, f]) => [mapFixed(fd, id, va, len, at, f)]) },
  { weight: 4, arbitrary: fc.tuple(ctxFd, ioasId, userVa, length, mapFlags).map(([fd, id, va, len, f]) =>
    [ioctl(fd, 'IOMMU_IOAS_MAP', { flags: f, ioas_id: id, user_va: hex(va), length: hex(len) })]) },
  { weight: 2, arbitrary: fc.tuple(ctxFd, ioasId, fc.integer({ min: 0, max: 40 }), length, fc.option(iova, { nil: undefined })).map(([fd, id, p, len, at]) =>
    [ioctl(fd, 'IOMMU_IOAS_MAP_FILE', {
      flags: at === undefined ? RW : fixed(RW), ioas_id: id, fd: 4, start: hex(BigInt(p) * PAGE), length: hex(len),
      ...(at === undefined ? {} : { iova: hex(at) }),
    })]) },
  // A fixed map, then a copy of part of it into another IOAS, at a fixed or an automatic IOVA.
  { weight: 3, arbitrary: fc.tuple(ctxFd, ioasId, ioasId, userVa, npages, iova, fc.integer({ min: 0, max: 7 }), npages, fc.option(iova, { nil: undefined }), mapFlags)
    .map(([fd, src, dst, va, n, at, skip, m, to, f]) => [
      mapFixed(fd, src, va, BigInt(n) * PAGE, at, RW),
      copyLine(fd, dst, src, at + BigInt(Math.min(skip, n - 1)) * PAGE, BigInt(Math.min(m, n - Math.min(skip, n - 1))) * PAGE, to, f),
    ]) },
  { weight: 2, arbitrary: fc.tuple(ctxFd, ioasId, ioasId, iova, length, fc.option(iova, { nil: undefined }), mapFlags).map(([fd, dst, src, from, len, to, f]) =>
    [copyLine(fd, dst, src, from, len, to, f)]) },
  // A fixed map into IOAS 2, then two pins of parts of it through the access of fd 5 (which the prefix may attach to
  // IOAS 2), overlapping or not.
  { weight: 4, arbitrary: fc.tuple(fc.integer({ min: 0, max: NPAGES - 1 }), npages, iova, fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), npages), { minLength: 1, maxLength: 2 }), fc.constantFrom(0, 0, 1))
    .map(([p, n, at, pins, flags]) => [
      mapFixed(3, 2, BUF + BigInt(p) * PAGE, BigInt(n) * PAGE, at, RW),
      ...pins.map(([skip, m]) => {
        const k = Math.min(skip, n - 1);
        return accessPages(3, 5, at + BigInt(k) * PAGE, BigInt(Math.min(m, n - k)) * PAGE, flags);
      }),
    ]) },
  { weight: 3, arbitrary: fc.tuple(ctxFd, ioasId, iova, fc.integer({ min: 1, max: 32 })).map(([fd, id, at, n]) =>
    [ioctl(fd, 'IOMMU_IOAS_UNMAP', { ioas_id: id, iova: hex(at), length: hex(BigInt(n) * PAGE) })]) },
  { weight: 1, arbitrary: fc.tuple(ctxFd, ioasId).map(([fd, id]) => [ioctl(fd, 'IOMMU_IOAS_UNMAP', { ioas_id: id, iova: 0, length: '0xffffffffffffffff' })]) },
  { weight: 3, arbitrary: fc.tuple(ctxFd, fc.oneof(ioasId, anyId)).map(([fd, id]) => [test(fd, 'IOMMU_TEST_OP_MOCK_DOMAIN', { id, mock_domain: {} })]) },
  // Object 3 is the selftest object of the prefix's mock domain, when there is one.
  { weight: 2, arbitrary: fc.tuple(ctxFd, fc.oneof({ weight: 3, arbitrary: fc.constant(3) }, { weight: 1, arbitrary: anyId }), fc.oneof(ioasId, anyId))
    .map(([fd, id, pt]) => [test(fd, 'IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', { id, mock_domain_replace: { pt_id: pt } })]) },
  { weight: 2, arbitrary: fc.tuple(ctxFd, anyId).map(([fd, id]) => [ioctl(fd, 'IOMMU_DESTROY', { id })]) },
  { weight: 1, arbitrary: fc.tuple(ctxFd, ioasId, fc.constantFrom(1, 1, 1, 0)).map(([fd, id, flags]) =>
    [test(fd, 'IOMMU_TEST_OP_CREATE_ACCESS', { id, create_access: { flags } })]) },
  { weight: 3, arbitrary: fc.tuple(ctxFd, accessFd, iova, npages, fc.constantFrom(0, 0, 1)).map(([fd, afd, at, n, flags]) =>
    [accessPages(fd, afd, at, BigInt(n) * PAGE, flags)]) },
  { weight: 2, arbitrary: fc.tuple(ctxFd, accessFd, fc.integer({ min: 0, max: 3 })).map(([fd, afd, item]) =>
    [test(fd, 'IOMMU_TEST_OP_DESTROY_ACCESS_PAGES', { id: afd, destroy_access_pages: { access_pages_id: item } })]) },
  { weight: 1, arbitrary: fc.oneof({ weight: 6, arbitrary: accessFd }, { weight: 1, arbitrary: fc.integer({ min: 3, max: 4 }) }).map((fd): Line[] => [{ op: 'close', fd }]) },
  { weight: 1, arbitrary: fc.constant<Line[]>([{ op: 'open', path: '/dev/iommu' }]) },
);

interface Trace {
  readonly memory: 'implicit' | 'explicit';
  readonly limits: { readonly memlock: number | 'unlimited'; readonly cap_ipc_lock: boolean };
  readonly lines: Line[];
}
const trace: fc.Arbitrary<Trace> = fc.record({
  memory: fc.constantFrom<'implicit' | 'explicit'>('implicit', 'explicit'),
  // RLIMIT_MEMLOCK of 24 pages makes some pins fail with ENOMEM; CAP_IPC_LOCK makes pages unaccounted (mode NONE);
  // RLIMIT_MODE 1 (set while the context is empty) charges the mm instead of the user.
  memlock: fc.constantFrom<number | 'unlimited'>('unlimited', 'unlimited', 24 * 4096),
  capIpcLock: fc.constantFrom(false, false, true),
  rlimitMm: fc.constantFrom(false, false, true),
  domain: fc.boolean(),
  access: fc.constantFrom(true, true, false),
  body: fc.array(op, { minLength: 10, maxLength: 40 }).map((ls) => ls.flat()),
}).map(({ memory, memlock, capIpcLock, rlimitMm, domain, access, body }) => ({
  memory,
  limits: { memlock, cap_ipc_lock: capIpcLock },
  lines: [
    { op: 'open', path: '/dev/iommu' }, // fd 3
    ...(rlimitMm ? [ioctl(3, 'IOMMU_OPTION', { option_id: 'IOMMU_OPTION_RLIMIT_MODE', op: 'IOMMU_OPTION_OP_SET', val64: 1 })] : []),
    { op: 'memfd_create', name: 'buf' }, // fd 4
    { op: 'ftruncate', fd: 4, length: 0x30000 },
    ...(memory === 'explicit'
      // Only the first 48 pages of the buffer are mapped: pins of the others fail with EFAULT.
      ? [{ op: 'mmap', addr: hex(BUF), length: 48 * 4096, prot: ['PROT_READ', 'PROT_WRITE'], flags: ['MAP_SHARED', 'MAP_ANONYMOUS', 'MAP_FIXED'] }]
      : []),
    ioctl(3, 'IOMMU_IOAS_ALLOC', {}),
    ioctl(3, 'IOMMU_IOAS_ALLOC', {}),
    // Often start with a mock domain on IOAS 1 and a pinning access (fd 5) on IOAS 2.
    ...(domain ? [test(3, 'IOMMU_TEST_OP_MOCK_DOMAIN', { id: 1, mock_domain: {} })] : []),
    ...(access ? [test(3, 'IOMMU_TEST_OP_CREATE_ACCESS', { id: 2, create_access: { flags: 1 } })] : []),
    ...body,
  ],
}));

// ---- the invariants ---------------------------------------------------------------------------------------

function checkAreas(st: State): void {
  for (const c of st.ctxs.values()) for (const o of c.objects.values()) {
    const i = o.ioas?.iopt;
    if (i === undefined) continue;
    let prev: bigint | undefined;
    for (const n of i.areas.inOrder()) {
      if (prev !== undefined) expect(n.start > prev, `ctx ${c.id} IOAS ${o.id}: area [${hex(n.start)}, ${hex(n.last)}] overlaps the one before`).toBe(true);
      prev = n.last;
      expect(i.reserved.iterFirst(n.start, n.last), `ctx ${c.id} IOAS ${o.id}: area [${hex(n.start)}, ${hex(n.last)}] is reserved`).toBeUndefined();
      expect(n.value.published, 'no area is left half-built between calls').toBe(true);
    }
  }
}

/** §4.2: the alignment of an automatic IOVA for user (or file) address `addr` and `len` bytes. */
function autoAlign(addr: bigint, len: bigint): bigint {
  let align = 1n;
  while (align < len) align <<= 1n;
  if (addr !== 0n) {
    const low = addr & -addr;
    if (low < align) align = low;
  }
  return align >= THP ? THP : align;
}
function checkAutoIova(got: bigint, addr: bigint, len: bigint, what: string): void {
  const align = autoAlign(addr, len);
  const off = addr % PAGE;
  expect(got % align, `${what}: IOVA ${hex(got)} is not aligned to ${hex(align)}`).toBe(0n);
  expect(got & off, `${what}: IOVA ${hex(got)} lost the in-page offset ${hex(off)} of ${hex(addr)}`).toBe(off);
  if (align >= PAGE) expect(got % PAGE, `${what}: IOVA ${hex(got)} in-page offset`).toBe(off);
  expect(got >= PAGE && got + len - 1n <= (1n << 64n) - 1n - PAGE, `${what}: IOVA ${hex(got)} outside [PAGE_SIZE, ULONG_MAX - PAGE_SIZE]`).toBe(true);
}

/** The frame behind page `k` of `p` in the process's memory: its page table for user pages, the memfd's page cache for file pages. */
function memoryFrame(st: State, p: IoptPages, k: number): number | undefined {
  if (p.kind === 'user') return frameAt(st.mm, p.uptr + BigInt(k) * PAGE);
  return st.mm.memfds.get(p.memfd!)?.cache.get(Number(p.fileStart / PAGE) + k);
}

function checkPins(st: State): void {
  // What should be pinned: per iopt_pages, the page indices a domain-filled area or an access item covers.
  const want = new Map<number, Set<number>>();
  const mark = (pages: number, s: number, l: number) => {
    let set = want.get(pages);
    if (set === undefined) want.set(pages, (set = new Set()));
    for (let k = s; k <= l; k++) set.add(k);
  };
  for (const c of st.ctxs.values()) for (const o of c.objects.values()) {
    const i = o.ioas?.iopt;
    if (i !== undefined && i.domains.length > 0)
      for (const n of i.areas.inOrder()) if (n.value.published) mark(n.value.pages, n.value.pagesStart, n.value.pagesLast);
    for (const item of o.access?.items.values() ?? []) for (const p of item.pieces) mark(p.pages, p.start, p.last);
  }
  const frames = new Map<number, number>();
  const charged = { 0: 0, 1: 0, 2: 0 };
  for (const p of st.pages.values()) {
    const set = want.get(p.id) ?? new Set<number>();
    const have = new Set<number>();
    for (const r of p.pinned.runs()) {
      if (r.count === 0) continue;
      expect(r.count, `pages ${p.id} [${r.start}, ${r.last}] pinned more than once`).toBe(1);
      for (let k = r.start; k <= r.last; k++) have.add(k);
    }
    expect([...have].sort((a, b) => a - b), `pages ${p.id}: pinned indices`).toEqual([...set].sort((a, b) => a - b));
    for (const k of set) {
      const f = frameOf(p, k);
      // The frame pinned is the one the process's memory has there (the traces never unmap or truncate it).
      expect(f, `pages ${p.id} index ${k}: pinned frame`).toBe(memoryFrame(st, p, k));
      frames.set(f!, (frames.get(f!) ?? 0) + 1);
    }
    charged[p.accountMode] += set.size;
  }
  for (const id of want.keys()) expect(st.pages.has(id), `pinned pages ${id} no longer exist`).toBe(true);
  const pins = new Map<number, number>();
  for (const r of st.mm.pins.runs()) if (r.count !== 0) for (let f = r.start; f <= r.last; f++) pins.set(f, r.count);
  expect(new Map([...pins].sort((a, b) => a[0] - b[0])), 'FOLL_PIN count per frame').toEqual(new Map([...frames].sort((a, b) => a[0] - b[0])));
  expect(st.accounting, 'accounting').toEqual({ userLockedVm: charged[1], mmLockedVm: charged[2], pinnedVm: charged[0] + charged[1] + charged[2] });
}

type Run = [bigint, bigint, bigint];
/** Sorted runs [iova, last, phys], adjacent runs with contiguous phys merged. */
function normalize(runs: Run[]): Run[] {
  runs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Run[] = [];
  for (const r of runs) {
    const p = out[out.length - 1];
    if (p !== undefined && p[1] + 1n === r[0] && p[2] + (p[1] - p[0] + 1n) === r[2]) p[1] = r[1];
    else out.push([...r]);
  }
  return out;
}

function checkDomains(st: State): void {
  const attached = new Set<number>();
  for (const c of st.ctxs.values()) for (const o of c.objects.values()) {
    const i = o.ioas?.iopt;
    if (i === undefined || i.domains.length === 0) continue;
    const expected: Run[] = [];
    for (const n of i.areas.inOrder()) {
      const a = n.value;
      const p = st.pages.get(a.pages)!;
      const first = BigInt(a.pagesStart) * PAGE + BigInt(a.pageOffset);
      const end = first + (a.last - a.start);
      for (let k = a.pagesStart; k <= a.pagesLast; k++) {
        const from = BigInt(k) * PAGE > first ? BigInt(k) * PAGE : first;
        const to = BigInt(k) * PAGE + PAGE - 1n < end ? BigInt(k) * PAGE + PAGE - 1n : end;
        const f = frameOf(p, k);
        expect(f, `IOAS ${o.id} has a domain, so page ${k} of pages ${p.id} is pinned`).toBeDefined();
        expected.push([a.start + (from - first), a.start + (to - first), BigInt(f!) * PAGE + (from % PAGE)]);
      }
    }
    const want = normalize(expected);
    for (const d of i.domains) {
      attached.add(d);
      const dom = st.domains.get(d);
      expect(dom, `IOAS ${o.id} lists missing domain ${d}`).toBeDefined();
      const have = normalize([...dom!.map.inOrder()].map((x): Run => [x.start, x.last, x.value]));
      expect(have.map((r) => r.map(hex)), `domain ${d} of ctx ${c.id} IOAS ${o.id}`).toEqual(want.map((r) => r.map(hex)));
    }
  }
  expect([...st.domains.keys()].filter((d) => !attached.has(d)), 'domains attached to no IOAS').toEqual([]);
}

// ---- running a trace ----------------------------------------------------------------------------------------

function run(t: Trace, check: (r: Replayer, entries: LogEntry[], lineNo: number, line: Line, before: { hint: bigint | undefined }) => void) {
  const entries: LogEntry[] = [];
  const r = new Replayer((e) => entries.push(e));
  r.feedLine(JSON.stringify({ iotrail: 1, iommufd_test: true, memory: t.memory, limits: t.limits }), 1);
  t.lines.forEach((l, k) => {
    const before = { hint: copyHint(r.st, l) };
    r.feedLine(JSON.stringify(l), k + 2);
    check(r, entries, k + 2, l, before);
  });
  return { r, entries };
}

/** For an automatic COPY: the user address of the first source byte (its alignment hint), read before the call. */
function copyHint(st: State, l: Line): bigint | undefined {
  if (l.op !== 'ioctl' || l.cmd !== 'IOMMU_IOAS_COPY' || (l.arg as { dst_iova?: string }).dst_iova !== undefined) return undefined;
  const f = st.fds.get(l.fd as number);
  if (f?.kind !== 'iommufd') return undefined;
  const a = l.arg as { src_ioas_id: number; src_iova: string };
  const i = st.ctxs.get(f.ctx)?.objects.get(a.src_ioas_id)?.ioas?.iopt;
  const src = BigInt(a.src_iova);
  const n = i?.areas.iterFirst(src, src);
  if (n === undefined) return undefined;
  const p = st.pages.get(n.value.pages)!;
  const startByte = src - n.value.start + BigInt(n.value.pageOffset) + BigInt(n.value.pagesStart) * PAGE;
  return (p.kind === 'user' ? p.uptr : p.fileStart) + startByte;
}

/** The IOVA an automatic MAP/MAP_FILE/COPY on `lineNo` chose, when it succeeded: its first AreaReserved. */
function chosenIova(entries: LogEntry[], lineNo: number): bigint | undefined {
  const mine = entries.filter((e) => e.line === lineNo);
  const done = mine.find((e) => e.ev.type === 'CallCompleted');
  if (done?.ev.type !== 'CallCompleted' || done.ev.errno !== undefined || done.ev.why.startsWith('not modelled')) return undefined;
  const res = mine.find((e) => e.ev.type === 'AreaReserved');
  return res?.ev.type === 'AreaReserved' ? res.ev.start : undefined;
}

function rebuild(entries: LogEntry[]): State {
  const st = initialState();
  for (const text of entries.map(encodeEntry)) {
    const d = decodeEntry(text);
    if (!d.ok) throw new Error(`log line does not decode: ${d.problem.path}: ${d.problem.message}: ${text}`);
    evolve(st, d.value.ev);
  }
  return st;
}

/** The close of every fd a trace can have opened, in ascending order. */
const CLOSE_ALL: Line[] = Array.from({ length: 16 }, (_, k) => ({ op: 'close', fd: 3 + k }));

describe('random traces of maps, copies, unmaps, mock domains and accesses', () => {
  it('keep every invariant after every line, rebuild from their log, and leave nothing behind once every fd is closed', () => {
    console.log(`fast-check seed ${SEED}, ${RUNS} runs (set FC_SEED, FC_RUNS to change)`);
    let autos = 0, pinnedLines = 0, domainLines = 0;
    fc.assert(
      fc.property(trace, (t) => {
        const all: Trace = { ...t, lines: [...t.lines, ...CLOSE_ALL] };
        const { r, entries } = run(all, (rep, es, lineNo, line, before) => {
          expect(rep.internal, `model error at line ${lineNo}`).toEqual([]);
          const st = rep.st;
          checkAreas(st);
          checkPins(st);
          checkDomains(st);
          if (st.accounting.pinnedVm > 0) pinnedLines++;
          if (st.domains.size > 0) domainLines++;
          if (line.op === 'ioctl' && (line.cmd === 'IOMMU_IOAS_MAP' || line.cmd === 'IOMMU_IOAS_MAP_FILE' || line.cmd === 'IOMMU_IOAS_COPY')) {
            const a = line.arg as { flags: string[]; user_va?: string; start?: string; length: string };
            if (!a.flags.includes('IOMMU_IOAS_MAP_FIXED_IOVA')) {
              const got = chosenIova(es, lineNo);
              const hint = line.cmd === 'IOMMU_IOAS_MAP' ? BigInt(a.user_va!) : line.cmd === 'IOMMU_IOAS_MAP_FILE' ? BigInt(a.start!) : before.hint;
              if (got !== undefined && hint !== undefined) {
                autos++;
                checkAutoIova(got, hint, BigInt(a.length), `line ${lineNo} ${String(line.cmd)}`);
              }
            }
          }
        });
        expect(r.errors).toEqual([]);
        expect(r.internal).toEqual([]);
        // (e) the log rebuilds the state.
        expect(viewState(rebuild(entries))).toEqual(viewState(r.st));
        // (f) nothing is left.
        const st = r.st;
        expect([...st.fds.keys()]).toEqual([]);
        expect([...st.ctxs.keys()]).toEqual([]);
        expect([...st.pages.keys()]).toEqual([]);
        expect([...st.domains.keys()]).toEqual([]);
        expect([...st.mm.pins.runs()].filter((x) => x.count !== 0)).toEqual([]);
        expect(st.accounting).toEqual({ userLockedVm: 0, mmLockedVm: 0, pinnedVm: 0 });
      }),
      { seed: SEED, numRuns: RUNS },
    );
    console.log(`checked ${autos} automatic IOVAs; ${pinnedLines} lines with pins, ${domainLines} lines with domains`);
    expect(autos).toBeGreaterThan(RUNS / 2);
    expect(pinnedLines).toBeGreaterThan(RUNS);
    expect(domainLines).toBeGreaterThan(RUNS);
  });
});
