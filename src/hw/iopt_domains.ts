/**
 * Domains in an io_pagetable (io_pagetable.c `iopt_table_add_domain`, `iopt_table_remove_domain`,
 * `iopt_calculate_iova_alignment`; pages.c `iopt_area_fill_domains`, `iopt_area_unfill_domains`,
 * `iopt_pages_update_pinned`). Every published area of an IOAS is mapped into every domain of it. The first domain
 * makes the area's pages pinned and charged; later domains map the PFNs the first one holds; the last domain to
 * leave unpins what no access still holds. The unmap order is the kernel's: unmap from the domains, then unpin.
 * Pages of a dma-buf take their PFNs from the exporter (`pfn_reader_fill_dmabuf`, hw/dmabuf.ts): a BAR's pins no RAM.
 */
import type { DomainEvent } from '../events/domain.js';
import type { TraceHeader } from '../events/header.js';
import { dmabufFrames, isDeadPages, isDeviceMemory } from './dmabuf.js';
import type { State } from '../projections/state.js';
import { minPageSize, type HwDomain } from './domain.js';
import { areaLength, describeArea, type Area, type Iopt } from './io_pagetable.js';
import type { Failure, IoasRef } from './iopt_ops.js';
import { iopt_reserve_iova } from './iopt_ops.js';
import { isMmFault, mmDraft, pinFileRange, pinUserRange, unpinFrames, type MmDraft } from './mm.js';
import { LINEAR, RunMap } from './mm_runmap.js';
import { frameOf, IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_NONE, IOPT_PAGES_ACCOUNT_USER, type IoptPages } from './pages.js';
import { U64_MAX } from './u64.js';
import { gapsOf, RangeMap } from './range_map.js';
import { flushEvents } from './iotlb.js';
import { isMutant } from '../check/mutants.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/**
 * `iopt_calculate_iova_alignment`: the largest of PAGE_SIZE (large pages off), each domain's smallest page and each
 * access's alignment. `o` overrides what is about to change.
 */
export function ioptAlignment(
  st: State, i: Iopt, o: { disableLargePages?: boolean; domains?: readonly number[]; accesses?: ReadonlyMap<number, bigint> } = {},
): bigint {
  let align = (o.disableLargePages ?? i.disableLargePages) ? BigInt(st.pageSize) : 1n;
  for (const id of o.domains ?? i.domains) {
    const d = st.domains.get(id);
    if (d !== undefined && minPageSize(d) > align) align = minPageSize(d);
  }
  for (const a of (o.accesses ?? i.accesses).values()) if (a > align) align = a;
  return align;
}

/**
 * What the events decided earlier in the same atomic step did to pins, fills and charges: a step that fills or
 * unfills several areas sharing pages (COPY) must see its own earlier decisions, which `evolve` has not applied yet.
 */
export class StepScratch {
  /** Per pages id: what this step added (+) and removed (-); RangeMap counts are never negative, so two maps. */
  private readonly pinnedPlus = new Map<number, RangeMap>();
  private readonly pinnedMinus = new Map<number, RangeMap>();
  private readonly fillPlus = new Map<number, RangeMap>();
  private readonly fillMinus = new Map<number, RangeMap>();
  charged = 0;
  /** Frames pinned earlier in this step, per pages id (not in `IoptPages.frames` until folded). */
  private readonly framePlus = new Map<number, RunMap<number>>();
  private draft: MmDraft | undefined;
  /** The mm model's draft for this step: every pin and unpin of the step is decided on it, in order. */
  mm(st: State): MmDraft {
    this.draft ??= mmDraft(st.mm, st.pageSize);
    return this.draft;
  }
  addFrames(p: number, start: number, last: number, frame: number): void {
    let m = this.framePlus.get(p);
    if (m === undefined) this.framePlus.set(p, (m = new RunMap(LINEAR)));
    m.insert(start, last, frame);
  }
  /** The frame of page `index` of `p` as the step sees it. */
  frameOf(p: IoptPages, index: number): number | undefined {
    return this.framePlus.get(p.id)?.get(index) ?? frameOf(p, index);
  }
  private static of(m: Map<number, RangeMap>, id: number): RangeMap {
    let r = m.get(id);
    if (r === undefined) m.set(id, (r = new RangeMap()));
    return r;
  }
  pin(p: number, s: number, l: number, d: 1 | -1): void { StepScratch.of(d > 0 ? this.pinnedPlus : this.pinnedMinus, p).add(s, l, 1); }
  fillAdd(p: number, s: number, l: number, d: 1 | -1): void { StepScratch.of(d > 0 ? this.fillPlus : this.fillMinus, p).add(s, l, 1); }
  private merged(base: RangeMap, plus: RangeMap | undefined, minus: RangeMap | undefined, start: number, last: number) {
    const m = new RangeMap();
    for (const r of base.runs(start, last)) m.add(r.start, r.last, r.count);
    for (const r of plus?.runs(start, last) ?? []) m.add(r.start, r.last, r.count);
    for (const r of minus?.runs(start, last) ?? []) m.add(r.start, r.last, -r.count);
    return [...m.runs(start, last)];
  }
  /** The pinned runs of `p` in [start, last] as the step sees them. */
  pinnedRuns(p: IoptPages, start: number, last: number): { start: number; last: number }[] {
    return this.merged(p.pinned, this.pinnedPlus.get(p.id), this.pinnedMinus.get(p.id), start, last);
  }
  /** Fill users of `p` per run in [start, last], as the step sees them. */
  fillRuns(p: IoptPages, start: number, last: number): { start: number; last: number; count: number }[] {
    return this.merged(p.fillUsers, this.fillPlus.get(p.id), this.fillMinus.get(p.id), start, last);
  }
}

/** Which page indices of `p` in [start, last] are not pinned yet, as runs. */
function unpinnedRuns(p: IoptPages, start: number, last: number, scratch: StepScratch): { start: number; last: number }[] {
  return gapsOf(scratch.pinnedRuns(p, start, last), start, last);
}

/** `iopt_pages_update_pinned` → `incr_user_locked_vm` / `__account_locked_vm`: ENOMEM over RLIMIT_MEMLOCK. */
function charge(st: State, h: TraceHeader, p: IoptPages, n: number, scratch: StepScratch): DomainEvent[] | Failure {
  if (n === 0) return [];
  if (p.accountMode !== IOPT_PAGES_ACCOUNT_NONE && h.limits.memlock !== 'unlimited') {
    const limit = Number(h.limits.memlock / BigInt(st.pageSize));
    const cur = (p.accountMode === IOPT_PAGES_ACCOUNT_USER ? st.accounting.userLockedVm : st.accounting.mmLockedVm) + scratch.charged;
    const exempt = p.accountMode === IOPT_PAGES_ACCOUNT_MM && h.limits.cap_ipc_lock;
    if (!exempt && cur + n > limit)
      return { errno: 'ENOMEM', why: `pages.c ${p.accountMode === IOPT_PAGES_ACCOUNT_USER ? 'incr_user_locked_vm' : '__account_locked_vm'}: ${cur} + ${n} pinned pages exceed RLIMIT_MEMLOCK (${limit} pages) of the ${p.accountMode === IOPT_PAGES_ACCOUNT_USER ? 'user' : 'mm'}` };
  }
  scratch.charged += n;
  return [{ type: 'AccountingCharged', mode: p.accountMode, npages: n }];
}

/**
 * Pins the pages of `p` in [start, last] that are not pinned yet (`pfn_reader_user_pin` → GUP FOLL_LONGTERM, or
 * `memfd_pin_folios`) and charges them (`iopt_pages_update_pinned`). On failure what this call pinned is unpinned
 * again, as the kernel does; pages GUP faulted in stay faulted in (the failure's `undo` events carry that).
 */
export function pinPagesRange(st: State, h: TraceHeader, p: IoptPages, start: number, last: number, scratch: StepScratch): DomainEvent[] | Failure {
  const page = BigInt(st.pageSize);
  const mm = scratch.mm(st);
  const events: DomainEvent[] = [];
  const pinned: { frame: number; npages: number }[] = [];
  const giveBack = (): DomainEvent[] => (pinned.length > 0 ? [...unpinFrames(mm, pinned).events] : []);
  let n = 0;
  const device = isDeviceMemory(st, p);
  for (const r of unpinnedRuns(p, start, last, scratch)) {
    const count = r.last - r.start + 1;
    const res = device ? dmabufFrames(st, p, r.start, count)
      : p.kind !== 'user' ? pinFileRange(mm, st.pageSize, p.memfd!, p.fileStart + BigInt(r.start) * page, count)
      : pinUserRange(mm, st.memory, st.pageSize, p.uptr + BigInt(r.start) * page, count, p.writable);
    if (isMmFault(res)) {
      const undo = [...events.filter((e) => e.type !== 'PagesPinned'), ...res.events, ...giveBack()];
      return { errno: res.errno, why: `pages.c pfn_reader_user_pin: ${res.why}`, undo };
    }
    events.push(...res.events);
    const base = p.kind === 'user' ? p.uptr : p.fileStart;
    for (const run of res.runs) {
      const idx = Number((run.start - base) / page);
      events.push({ type: 'PagesPinned', pages: p.id, start: idx, last: idx + run.npages - 1, frame: run.frame });
      scratch.addFrames(p.id, idx, idx + run.npages - 1, run.frame);
      if (!device) pinned.push({ frame: run.frame, npages: run.npages });
    }
    scratch.pin(p.id, r.start, r.last, 1);
    n += count;
  }
  const ch = charge(st, h, p, n, scratch);
  if (!Array.isArray(ch)) return { ...ch, undo: [...events.filter((e) => e.type !== 'PagesPinned'), ...giveBack()] };
  return [...events, ...ch];
}

/** The physical runs behind an area: [iova, last] → phys, split where its pages' frames stop being contiguous. */
function areaPhysRuns(st: State, a: Area, p: IoptPages, scratch: StepScratch): { iova: bigint; last: bigint; phys: bigint }[] {
  const page = BigInt(st.pageSize);
  const runs: { iova: bigint; last: bigint; phys: bigint }[] = [];
  let iova = a.start;
  let idx = a.pagesStart;
  let off = BigInt(a.pageOffset);
  while (iova <= a.last) {
    const f0 = scratch.frameOf(p, idx);
    if (f0 === undefined) throw new Error(`pages ${p.id} page ${idx} is mapped into a domain but not pinned`);
    let k = idx;
    while (k < a.pagesLast && scratch.frameOf(p, k + 1) === f0 + (k + 1 - idx)) k++;
    const bytes = BigInt(k - idx + 1) * page - off;
    const last = iova + bytes - 1n > a.last ? a.last : iova + bytes - 1n;
    runs.push({ iova, last, phys: BigInt(f0) * page + off });
    iova = last + 1n;
    idx = k + 1;
    off = 0n;
  }
  return runs;
}

/**
 * `iopt_area_fill_domains` for one area: pin what is not pinned yet (first domain only), charge it, map the area into
 * `domains`. All or nothing: a pin or charge failure leaves no event.
 */
export function fillArea(
  st: State, h: TraceHeader, a: Area, domains: readonly number[], firstFill: boolean, scratch = new StepScratch(),
): DomainEvent[] | Failure {
  if (domains.length === 0) return [];
  const p = st.pages.get(a.pages)!;
  const events: DomainEvent[] = [];
  if (firstFill) {
    const pinned = pinPagesRange(st, h, p, a.pagesStart, a.pagesLast, scratch);
    if (!Array.isArray(pinned)) return pinned;
    events.push(...pinned);
    events.push({ type: 'AreaFilled', pages: p.id, start: a.pagesStart, last: a.pagesLast });
    scratch.fillAdd(p.id, a.pagesStart, a.pagesLast, 1);
  }
  // A revoked dma-buf's pages stay pinned in the model but no domain may translate to them again.
  if (isDeadPages(st, p)) return events;
  const phys = areaPhysRuns(st, a, p, scratch);
  for (const d of domains) for (const r of phys) events.push({ type: 'DomainMapped', domain: d, iova: r.iova, last: r.last, phys: r.phys });
  return events;
}

/**
 * `iopt_area_unfill_domains` for one area: unmap it from `domains`, and when it leaves the last one, take it out of
 * `domains_itree` and unpin (and uncharge) the pages no other filled area covers.
 */
export function unfillArea(st: State, a: Area, domains: readonly number[], lastDomain: boolean, scratch = new StepScratch()): DomainEvent[] {
  const events: DomainEvent[] = [];
  // iommu_unmap clears the entries and then syncs the IOTLB; only after that may the pages be unpinned.
  // MUTANT unpin-before-flush: the IOTLB flush is deferred past the unpin.
  const late = isMutant('unpin-before-flush') && lastDomain;
  for (const d of domains) events.push({ type: 'DomainUnmapped', domain: d, iova: a.start, last: a.last }, ...(late ? [] : flushEvents(st.domains.get(d), a.start, a.last)));
  if (!lastDomain) return events;
  const p = st.pages.get(a.pages)!;
  events.push({ type: 'AreaUnfilled', pages: p.id, start: a.pagesStart, last: a.pagesLast });
  let n = 0;
  for (const r of scratch.fillRuns(p, a.pagesStart, a.pagesLast)) {
    if (r.count !== 1) continue;
    for (const free of withoutAccessPins(p, r.start, r.last)) {
      // MUTANT unfill-past-end (B2, linux@727c28c1cef2): batch_last_index counted from `start`, not `start_index`.
      const last = isMutant('unfill-past-end') && free.start > r.start ? free.last + (free.start - r.start) : free.last;
      events.push(...unpinPagesEvents(st, p, free.start, last, scratch));
      n += last - free.start + 1;
    }
  }
  if (late) for (const d of domains) events.push(...flushEvents(st.domains.get(d), a.start, a.last));
  scratch.fillAdd(p.id, a.pagesStart, a.pagesLast, -1);
  if (n > 0) events.push({ type: 'AccountingUncharged', mode: p.accountMode, npages: n });
  return events;
}

/** Unpinning pages [start, last] of `p`: the iopt_pages forgets them, then their frames lose a pin. */
export function unpinPagesEvents(st: State, p: IoptPages, start: number, last: number, scratch: StepScratch): DomainEvent[] {
  const frames = [...p.frames.runs(start, last)].map((r) => ({ frame: r.value, npages: r.last - r.start + 1 }));
  scratch.pin(p.id, start, last, -1);
  // A BAR's PFNs were never pinned in the mm (hw/dmabuf.ts): the iopt_pages just lets go of them.
  if (isDeviceMemory(st, p)) return [{ type: 'PagesUnpinned', pages: p.id, start, last }];
  return [{ type: 'PagesUnpinned', pages: p.id, start, last }, ...unpinFrames(scratch.mm(st), frames).events];
}

/** The runs of [start, last] no access pin item covers. */
export function withoutAccessPins(p: IoptPages, start: number, last: number): { start: number; last: number }[] {
  return gapsOf(p.accessUsers.runs(start, last), start, last);
}

/** `iopt_table_add_domain`: alignment, aperture reservations, then every published area is filled into it. */
export function iopt_table_add_domain(st: State, h: TraceHeader, where: IoasRef, i: Iopt, d: HwDomain, scratch = new StepScratch()): DomainEvent[] | Failure {
  const fn = 'io_pagetable.c iopt_table_add_domain';
  const page = BigInt(st.pageSize);
  const newAlign = minPageSize(d) > i.iovaAlignment ? minPageSize(d) : i.iovaAlignment;
  if (newAlign > page) return { errno: 'EINVAL', why: `${fn}: the domain's smallest page ${hex(minPageSize(d))} is larger than PAGE_SIZE` };
  if (newAlign !== i.iovaAlignment) {
    for (const n of i.areas.inOrder()) {
      const a = n.value;
      if (a.start % newAlign !== 0n || areaLength(a) % newAlign !== 0n || BigInt(a.pageOffset) % newAlign !== 0n)
        return { errno: 'EADDRINUSE', why: `${fn}: area ${describeArea(a)} is not aligned to the domain's ${hex(newAlign)} pages` };
    }
  }
  const events: DomainEvent[] = [];
  const owner = `domain:${d.id}`;
  const resv: [bigint, bigint][] = [];
  if (d.apertureStart !== 0n) resv.push([0n, d.apertureStart - 1n]);
  if (d.apertureLast !== U64_MAX) resv.push([d.apertureLast + 1n, U64_MAX]);
  for (const [s, l] of resv) {
    const bad = iopt_reserve_iova(i, s, l);
    if (bad) return { errno: bad.errno, why: `${bad.why} (outside the domain's aperture [${hex(d.apertureStart)}, ${hex(d.apertureLast)}])` };
    events.push({ type: 'ReservedAdded', ctx: where.ctx, ioas: where.ioas, start: s, last: l, owner });
  }
  const first = i.domains.length === 0;
  for (const n of i.areas.inOrder()) {
    if (!n.value.published) continue;
    const f = fillArea(st, h, n.value, [d.id], first, scratch);
    if (!Array.isArray(f)) return f;
    events.push(...f);
  }
  events.push({ type: 'IoptDomainAdded', ctx: where.ctx, ioas: where.ioas, domain: d.id, iovaAlignment: newAlign });
  return events;
}

/** `iopt_table_remove_domain`: unfill every area, drop the domain's reservations, recompute the alignment. */
export function iopt_table_remove_domain(st: State, where: IoasRef, i: Iopt, domain: number, scratch = new StepScratch()): DomainEvent[] {
  const events: DomainEvent[] = [];
  const last = i.domains.length === 1;
  for (const n of i.areas.inOrder()) if (n.value.published) events.push(...unfillArea(st, n.value, [domain], last, scratch));
  const owner = `domain:${domain}`;
  for (const n of i.reserved.inOrder())
    if (n.value === owner) events.push({ type: 'ReservedRemoved', ctx: where.ctx, ioas: where.ioas, start: n.start, last: n.last, owner });
  const rest = i.domains.filter((x) => x !== domain);
  events.push({ type: 'IoptDomainRemoved', ctx: where.ctx, ioas: where.ioas, domain, iovaAlignment: ioptAlignment(st, i, { domains: rest }) });
  return events;
}
