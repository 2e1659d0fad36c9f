/**
 * The invariant library: named, documented properties of the projected state (`State`), each restating a kernel
 * rule (file and function), checked by `iotrail check` after every atomic step of every explored interleaving and,
 * optionally, by replay after every step of a trace.
 *
 * Three kinds:
 * - state invariants hold at every step boundary (where the kernel has dropped its locks);
 * - event invariants hold around one event: `before` (an object is destroyed only at users == 1) or `after` (pages
 *   are unpinned only once nothing maps them);
 * - transition invariants compare two states (`checkInvariants(st, prevSt)`).
 *
 * `checkInvariants(st, prevSt?)` checks every state (and, given `prevSt`, transition) invariant over the whole state:
 * O(state), for tests and small exploration states. `InvariantMonitor` checks incrementally: it is told every event
 * (before and after it is folded) and, at the end of each atomic step, checks only what the step's events touched,
 * keeping the two global indexes it needs (areas by iopt_pages, pins per frame and per account mode) up to date, so
 * a check after every step costs O(changed).
 *
 * Not covered: the access state machine while an access changes IOAS (B8); CPU mmaps of a disabled VFIO BAR on the legacy type1 backend, whose IOMMU mappings the kernel keeps
 * (B15: replay reports them as StaleDeviceMapping warnings, the kernel's behaviour, not an invariant the model keeps).
 */
import type { DomainEvent } from '../events/domain.js';
import { RangeMap } from '../hw/range_map.js';
import { isDeviceMemory } from '../hw/dmabuf.js';
import {
  allScope, emptyScope, ioasByKey, ioasKey, objKey, scanIndexes, scopeAddArea, scopeAddDomain, scopeAddPages, type AreaRef,
  type Indexes, type InvariantViolation, type IoasRef, type Scope,
} from './invariants_core.js';
import { checkCookies, checkRevoked, R_COOKIE, R_REVOKED } from './invariants_devmem.js';
import { checkDma, checkFrameRelease, checkUnpinOrder, R_IOTLB, R_PTE_COMPLETE, R_PTE_SOUND, R_UNPIN_ORDER } from './invariants_dma.js';
import { checkIopt, R_ACCESS_LIST, R_ALIGN, R_DISJOINT, R_DOMAIN_OWNER, R_HWPT_LIST, R_RESERVED } from './invariants_iopt.js';
import { checkObjectEvent, checkObjects, R_AUTO_DOMAIN, R_FREED_AT_ONE, R_REFS_LIVE, R_USERS } from './invariants_objects.js';
import {
  checkPins, frameRuns, R_ACCESS_INDEX, R_ACCOUNTING, R_FILL_INDEX, R_PAGES_LIVE, R_PIN, scanPinTotals, type PinTotals,
} from './invariants_pins.js';
import { checkType1, R_T1_LIMIT, R_T1_MAPPED, R_T1_VPFN, R_T1_VPFN_PAGE, type1Before } from './invariants_type1.js';
import type { State } from './state.js';

export type { InvariantViolation } from './invariants_core.js';
export { domainIotlb, type IotlbView } from './invariants_dma.js';

export interface InvariantDef {
  readonly name: string;
  readonly kind: 'state' | 'event' | 'transition';
  /** The kernel rule: file, function, and what it guarantees. */
  readonly rule: string;
  readonly doc: string;
}

export const R_PREVENT = 'io_pagetable.c iopt_unmap_iova_range: area->prevent_access is set before the accesses are told to unmap and is never cleared';
export const R_EVOLVE = 'projections/state.ts evolve: every event a handler decides applies to the state it was decided on (decide and evolve agree; the kernel\'s WARN_ONs)';
export const R_HANDLER = 'machines/*.ts: a handler answers every call it is given (an outcome, never an exception)';

const hexJson = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v);

/** The violation of `evolve-accepts`: the state refused `ev`, decided for trace line `line` (a model bug or a mutant). */
export const evolveRefused = (line: number, ev: DomainEvent, e: unknown): InvariantViolation => ({
  name: 'evolve-accepts', rule: R_EVOLVE,
  message: `line ${line}: ${ev.type} ${JSON.stringify(ev, hexJson).slice(0, 200)} was refused: ${(e as Error).message}`,
});
/** The violation of `handler-total`: the handler of trace line `line` threw instead of answering. */
export const handlerThrew = (line: number, e: unknown): InvariantViolation => ({
  name: 'handler-total', rule: R_HANDLER, message: `line ${line}: the handler threw: ${(e as Error).message}`,
});

export const INVARIANTS: readonly InvariantDef[] = [
  { name: 'areas-disjoint', kind: 'state', rule: R_DISJOINT, doc: 'The areas of an IOAS are pairwise disjoint, and the by-id index names exactly the areas of the tree.' },
  { name: 'areas-outside-reserved', kind: 'state', rule: R_RESERVED, doc: 'No area intersects a reserved range (apertures, device regions, ADD_RESERVED).' },
  { name: 'iova-alignment', kind: 'state', rule: R_ALIGN, doc: 'An IOAS\'s iova_alignment equals its recomputation from its domains, accesses and large-page setting.' },
  { name: 'domain-owner', kind: 'state', rule: R_DOMAIN_OWNER, doc: 'Each paging domain is in exactly one IOAS\'s domain list, owned by a HWPT_PAGING of that IOAS; a domain list names live domains once.' },
  { name: 'hwpt-list-set', kind: 'state', rule: R_HWPT_LIST, doc: 'ioas->hwpt_list is a set: each live HWPT of the IOAS once, nothing else (B9).' },
  { name: 'access-one-ioas', kind: 'state', rule: R_ACCESS_LIST, doc: 'An access is in exactly one IOAS\'s access list, the one of its current IOAS (B7).' },
  { name: 'area-pages-live', kind: 'state', rule: R_PAGES_LIVE, doc: 'Each area\'s iopt_pages is alive, covers the area\'s page range, and its kref counts at least the areas using it.' },
  { name: 'fill-index', kind: 'state', rule: R_FILL_INDEX, doc: 'Per page, the fill count (domains_itree) equals the number of filled areas covering it (B6).' },
  { name: 'access-index', kind: 'state', rule: R_ACCESS_INDEX, doc: 'Per page, the access count (access_itree) equals the access pin items covering it; area->num_accesses equals the pieces on the area.' },
  { name: 'pin-conservation', kind: 'state', rule: R_PIN, doc: 'A page of an iopt_pages is pinned (once) iff a filled area or an access item covers it; each frame\'s FOLL_PIN count equals the number of iopt_pages pinning it (B2).' },
  { name: 'accounting-balance', kind: 'state', rule: R_ACCOUNTING, doc: 'user->locked_vm, mm->locked_vm and pinned_vm equal the pages pinned by USER-, MM- and all iopt_pages.' },
  { name: 'dma-pte-sound', kind: 'state', rule: R_PTE_SOUND, doc: 'Every domain PTE maps an IOVA of an area of the domain\'s IOAS onto the frame of that area\'s page, and the area\'s iopt_pages pin it (no DMA use after free).' },
  { name: 'dma-pte-complete', kind: 'state', rule: R_PTE_COMPLETE, doc: 'Every published area is mapped in every domain of its IOAS.' },
  { name: 'iotlb-coherent', kind: 'state', rule: R_IOTLB, doc: 'Every IOTLB entry agrees with its domain\'s page table (needs HwDomain.iotlb; checks nothing until IOTLBs are modelled).' },
  { name: 'revoked-unreachable', kind: 'state', rule: R_REVOKED, doc: 'No domain PTE or IOTLB entry reaches an area whose dma-buf was revoked (B14).' },
  { name: 'cookie-owner-live', kind: 'state', rule: R_COOKIE, doc: 'Every mmap cookie names a live owner, and every VMA of a cookie names an existing cookie of the same owner (no owner destroyed while mapped).' },
  { name: 'refs-live', kind: 'state', rule: R_REFS_LIVE, doc: 'Every reference an object holds (`holds`) points at a live object of its context.' },
  { name: 'users-balance', kind: 'state', rule: R_USERS, doc: '`users` of a live object is 1 + its holders + its driver references: no temporary reference survives a step (B1).' },
  { name: 'auto-domain-in-use', kind: 'state', rule: R_AUTO_DOMAIN, doc: 'An auto domain has a device attached; it is destroyed with its last device.' },
  { name: 'type1-dma-limit', kind: 'state', rule: R_T1_LIMIT, doc: 'A type1 container holds at most dma_entry_limit vfio_dmas, and dma_avail is the limit minus their number (S1, CVE-2019-3882).' },
  { name: 'type1-vpfn-balance', kind: 'state', rule: R_T1_VPFN, doc: 'Each external (mdev) pin of a type1 vfio_dma is keyed by its exact IOVA and holds one reference per vfio_pin_pages of that IOVA its drivers have not unpinned: balanced pins leave pfn_list empty, so DMA_UNMAP\'s notifier loop ends (S10, S13).' },
  { name: 'type1-vpfn-page', kind: 'state', rule: R_T1_VPFN_PAGE, doc: 'An external pin is always of a page with a struct page: a PFNMAP (BAR) pfn is refused with EINVAL (S11).' },
  { name: 'type1-dma-mapped', kind: 'state', rule: R_T1_MAPPED, doc: 'A type1 container\'s domain maps each vfio_dma onto exactly the frames it pinned, and nothing outside the vfio_dmas (every pin released at unmap; no DMA reaches a page nobody pins).' },
  { name: 'freed-at-one', kind: 'event', rule: R_FREED_AT_ONE, doc: 'An object is destroyed or aborted only at users == 1 (B1).' },
  { name: 'unpin-after-unmap', kind: 'event', rule: R_UNPIN_ORDER, doc: 'Pages are unpinned only after every domain PTE (and IOTLB entry) reaching them is gone.' },
  { name: 'prevent-access-sticky', kind: 'transition', rule: R_PREVENT, doc: 'prevent_access, once set on an area, stays set.' },
  { name: 'evolve-accepts', kind: 'event', rule: R_EVOLVE, doc: 'The state takes every event the handlers decide (evolve never throws).' },
  { name: 'handler-total', kind: 'event', rule: R_HANDLER, doc: 'A handler never throws.' },
];
export const INVARIANT_NAMES: ReadonlySet<string> = new Set(INVARIANTS.map((i) => i.name));

function checkScope(st: State, scope: Scope, idx: Indexes, totals: PinTotals): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  checkIopt(st, scope, idx, out);
  checkPins(st, scope, idx, totals, out);
  checkDma(st, scope, idx, out);
  checkRevoked(st, scope.all ? 'all' : scope.revoked, out);
  checkCookies(st, scope.all ? 'all' : scope.cookieCtxs, out);
  checkObjects(st, scope, idx, out);
  checkType1(st, scope, out);
  return out;
}

export interface CheckOptions {
  /**
   * Whether no operation is in flight (default true): then reference counts must equal what the state accounts for;
   * between the steps of an in-flight operation they may exceed it by the operation's temporary references.
   */
  readonly quiescent?: boolean;
}

/** Every state invariant over the whole state, and (given the state before) the transition invariants. O(state). */
export function checkInvariants(st: State, prevSt?: State, opts: CheckOptions = {}): InvariantViolation[] {
  const out = checkScope(st, allScope(opts.quiescent ?? true), scanIndexes(st), scanPinTotals(st));
  if (prevSt !== undefined) out.push(...checkTransition(prevSt, st));
  return out;
}

export function checkTransition(prev: State, st: State): InvariantViolation[] {
  const out: InvariantViolation[] = [];
  for (const [c, ctx] of prev.ctxs)
    for (const o of ctx.objects.values()) {
      if (o.ioas === undefined) continue;
      const now = st.ctxs.get(c)?.objects.get(o.id)?.ioas?.iopt;
      if (now === undefined) continue;
      for (const n of o.ioas.iopt.areas.inOrder())
        if (n.value.preventAccess && now.areaById.get(n.value.id)?.value.preventAccess === false)
          out.push({ name: 'prevent-access-sticky', rule: R_PREVENT, message: `IOAS ${o.id} (ctx ${c}): area ${n.value.id} had prevent_access set and lost it` });
    }
  return out;
}

/** The reverse indexes of `Indexes`, kept up to date from the events (`InvariantMonitor` feeds it). */
class LiveIndexes implements Indexes {
  /** iopt_pages → `ctx:ioas:area`. */
  private readonly areas = new Map<number, Set<string>>();
  /** domain → `ctx:ioas`. */
  readonly domainIoas = new Map<number, string>();
  /** `ctx:id` → holders. */
  private readonly holders = new Map<string, number>();
  /** iopt_pages → `ctx:access` → pieces. */
  private readonly accesses = new Map<number, Map<string, number>>();

  constructor(private readonly st: State) {
    for (const [c, ctx] of st.ctxs)
      for (const o of ctx.objects.values()) {
        for (const n of o.ioas?.iopt.areas.inOrder() ?? []) this.addArea(n.value.pages, ioasKey(c, o.id), n.value.id);
        for (const d of o.ioas?.iopt.domains ?? []) this.domainIoas.set(d, ioasKey(c, o.id));
        for (const h of o.holds) this.hold(c, h, 1);
        for (const it of o.access?.items.values() ?? []) this.pieces(c, o.id, it.pieces, 1);
      }
  }
  addArea(pages: number, key: string, area: number): void {
    let s = this.areas.get(pages);
    if (s === undefined) this.areas.set(pages, (s = new Set()));
    s.add(`${key}:${area}`);
  }
  removeArea(pages: number, key: string, area: number): void {
    const s = this.areas.get(pages);
    s?.delete(`${key}:${area}`);
    if (s?.size === 0) this.areas.delete(pages);
  }
  hold(ctx: number, id: number, d: 1 | -1): void {
    const k = objKey(ctx, id);
    const n = (this.holders.get(k) ?? 0) + d;
    if (n === 0) this.holders.delete(k);
    else this.holders.set(k, n);
  }
  forgetCtx(ctx: number): void {
    for (const k of [...this.holders.keys()]) if (k.startsWith(`${ctx}:`)) this.holders.delete(k);
  }
  pieces(ctx: number, access: number, ps: readonly { readonly pages: number }[], d: 1 | -1): void {
    const k = objKey(ctx, access);
    for (const p of ps) {
      let m = this.accesses.get(p.pages);
      if (m === undefined) this.accesses.set(p.pages, (m = new Map()));
      const n = (m.get(k) ?? 0) + d;
      if (n <= 0) m.delete(k);
      else m.set(k, n);
      if (m.size === 0) this.accesses.delete(p.pages);
    }
  }
  areasOf(pages: number): readonly AreaRef[] {
    const out: AreaRef[] = [];
    for (const k of this.areas.get(pages) ?? []) {
      const [c, i, a] = k.split(':').map(Number) as [number, number, number];
      const r = ioasByKey(this.st, ioasKey(c, i));
      const n = r?.iopt.areaById.get(a);
      if (r !== undefined && n !== undefined) out.push({ ioas: r, area: n.value });
    }
    return out;
  }
  ioasOfDomain(domain: number): readonly IoasRef[] {
    const k = this.domainIoas.get(domain);
    const r = k === undefined ? undefined : ioasByKey(this.st, k);
    return r === undefined ? [] : [r];
  }
  incoming(ctx: number, id: number): number {
    return this.holders.get(objKey(ctx, id)) ?? 0;
  }
  accessesOf(pages: number): readonly string[] {
    return [...(this.accesses.get(pages)?.keys() ?? [])];
  }
}

export interface MonitorOptions {
  /** Check the whole state at every step end (O(state)), instead of what the step touched. */
  readonly full?: boolean;
}

/**
 * Incremental invariant checking over a stream of events. Call `before(st, ev)` and `after(st, ev)` around each
 * `evolve(st, ev)` and `endStep(st)` once the events of an atomic step are all folded. Start it on any state (it
 * indexes what is there); it must then see every event folded into that state.
 */
export class InvariantMonitor {
  private scope: Scope = emptyScope();
  private readonly index: LiveIndexes;
  private readonly totals: { pinned: [number, number, number]; frames: RangeMap; type1LockedVm: number };
  constructor(st: State, private readonly opts: MonitorOptions = {}) {
    this.index = new LiveIndexes(st);
    const t = scanPinTotals(st);
    this.totals = { pinned: [...t.pinned], frames: t.frames, type1LockedVm: t.type1LockedVm };
  }

  /** Checks to make before `ev` is folded; records what it will touch. */
  before(st: State, ev: DomainEvent): InvariantViolation[] {
    const out: InvariantViolation[] = [];
    checkObjectEvent(st, ev, out);
    const s = this.scope;
    switch (ev.type) {
      case 'ObjectAllocated': case 'ObjectFinalized': case 'ObjectAborted': case 'ObjectDestroyed': case 'AccessInitialized':
      case 'DeviceBound': case 'SelftestInitialized': {
        s.objects.add(objKey(ev.ctx, ev.id));
        if (ev.type === 'ObjectDestroyed' || ev.type === 'ObjectAborted') s.cookieCtxs.add(ev.ctx);
        const o = st.ctxs.get(ev.ctx)?.objects.get(ev.id);
        // An object leaving the table takes its `holds` with it.
        if (o !== undefined && (ev.type === 'ObjectAborted' || ev.type === 'ObjectDestroyed')) for (const h of o.holds) this.index.hold(ev.ctx, h, -1);
        if (o?.hwpt !== undefined) s.ioas.add(ioasKey(ev.ctx, o.hwpt.ioas));
        if (o?.access !== undefined && o.access.ioas !== 0) s.ioas.add(ioasKey(ev.ctx, o.access.ioas));
        return out;
      }
      case 'ObjectRefTaken': case 'ObjectRefDropped':
        s.objects.add(objKey(ev.ctx, ev.id));
        if (ev.by !== 0) {
          s.objects.add(objKey(ev.ctx, ev.by));
          // evolve records the hold only when the holder is in the table.
          const holder = st.ctxs.get(ev.ctx)?.objects.get(ev.by);
          if (holder !== undefined && (ev.type === 'ObjectRefTaken' || holder.holds.includes(ev.id))) this.index.hold(ev.ctx, ev.id, ev.type === 'ObjectRefTaken' ? 1 : -1);
        }
        return out;
      case 'IommufdReleased':
        this.index.forgetCtx(ev.ctx);
        return out;
      case 'AccessAttached': case 'AccessDetached':
        s.objects.add(objKey(ev.ctx, ev.id));
        s.ioas.add(ioasKey(ev.ctx, ev.ioas));
        return out;
      case 'AccessPinned': case 'AccessUnpinned': {
        s.objects.add(objKey(ev.ctx, ev.id));
        const a = st.ctxs.get(ev.ctx)?.objects.get(ev.id)?.access;
        const pieces = ev.type === 'AccessPinned' ? ev.pieces : a?.items.get(ev.item)?.pieces ?? [];
        this.index.pieces(ev.ctx, ev.id, pieces, ev.type === 'AccessPinned' ? 1 : -1);
        for (const p of pieces) {
          scopeAddPages(s, p.pages, p.start, p.last);
          if (a !== undefined) scopeAddArea(s, ioasKey(ev.ctx, a.ioas), p.area);
        }
        return out;
      }
      case 'AreaAccessPrevented': case 'AreaPublished': case 'AreaUnpublished': {
        scopeAddArea(s, ioasKey(ev.ctx, ev.ioas), ev.area);
        const a = ioasByKey(st, ioasKey(ev.ctx, ev.ioas))?.iopt.areaById.get(ev.area)?.value;
        if (a !== undefined) scopeAddPages(s, a.pages, a.pagesStart, a.pagesLast);
        return out;
      }
      case 'AreaReserved':
        scopeAddArea(s, ioasKey(ev.ctx, ev.ioas), ev.area);
        scopeAddPages(s, ev.pages, ev.pagesStart, ev.pagesLast);
        this.index.addArea(ev.pages, ioasKey(ev.ctx, ev.ioas), ev.area);
        return out;
      case 'AreaRemoved': case 'AreaSplit': {
        const key = ioasKey(ev.ctx, ev.ioas);
        const r = ioasByKey(st, key);
        const a = r?.iopt.areaById.get(ev.area)?.value;
        if (a === undefined) return out;
        scopeAddPages(s, a.pages, a.pagesStart, a.pagesLast);
        for (const d of r!.iopt.domains) scopeAddDomain(s, d, a.start, a.last);
        this.index.removeArea(a.pages, key, ev.area);
        if (ev.type === 'AreaSplit') {
          this.index.addArea(a.pages, key, ev.lhs);
          this.index.addArea(a.pages, key, ev.rhs);
          scopeAddArea(s, key, ev.lhs);
          scopeAddArea(s, key, ev.rhs);
        }
        return out;
      }
      case 'ReservedAdded':
        s.reserved.push({ key: ioasKey(ev.ctx, ev.ioas), start: ev.start, last: ev.last });
        return out;
      case 'IoasLargePagesSet':
        s.ioas.add(ioasKey(ev.ctx, ev.id));
        return out;
      case 'PagesCreated': case 'PagesRefTaken': case 'PagesRefDropped':
        if (!s.pages.has(ev.pages)) s.pages.set(ev.pages, []);
        return out;
      case 'AreaFilled': case 'AreaUnfilled':
        scopeAddPages(s, ev.pages, ev.start, ev.last);
        return out;
      case 'PagesPinned': case 'PagesUnpinned': {
        scopeAddPages(s, ev.pages, ev.start, ev.last);
        s.accounting = true;
        const p = st.pages.get(ev.pages);
        if (p === undefined) return out;
        const d = ev.type === 'PagesPinned' ? 1 : -1;
        this.totals.pinned[p.accountMode] += d * (ev.last - ev.start + 1);
        // A BAR's PFNs (a vfio dma-buf) are no RAM frame: the mm pins nothing for them (hw/dmabuf.ts).
        const runs = isDeviceMemory(st, p) ? [] : ev.type === 'PagesPinned' ? [{ frame: ev.frame, count: ev.last - ev.start + 1 }] : frameRuns(p, ev.start, ev.last);
        for (const f of runs) {
          s.frames.push({ start: f.frame, last: f.frame + f.count - 1 });
          // A count the state refuses (below zero) is the projection's to report; keep the index total.
          try { this.totals.frames.add(f.frame, f.frame + f.count - 1, d); } catch { /* evolve rejects it too */ }
        }
        return out;
      }
      case 'FramesPinned': case 'FramesUnpinned':
        s.frames.push({ start: ev.frame, last: ev.frame + ev.count - 1 });
        return out;
      case 'VfioContainerGroupAdded': case 'VfioContainerGroupRemoved': case 'Type1IommuOpened': case 'Type1IommuReleased':
      case 'VfioDmaVaddrInvalidated': case 'VfioDmaVaddrUpdated': case 'Type1DirtyTrackingSet': case 'VfioDmaBitmapReported':
        s.containers.add(ev.container);
        return out;
      case 'Type1DomainAttached': case 'Type1DomainDetached': {
        s.containers.add(ev.container);
        const dom = ev.type === 'Type1DomainAttached' ? ev.domain : st.containers.get(ev.container)?.iommu?.domain;
        if (dom !== undefined) s.domains.set(dom, 'all');
        return out;
      }
      case 'VfioDmaLinked': case 'VfioDmaRemoved': case 'VfioPfnPinned': case 'VfioPfnUnpinned': case 'VfioPfnRefChanged':
      case 'VfioDmaOwnerChanged': case 'VfioDmaPinsSet': case 'ProcessExeced': case 'Type1EmulatedGroupAdded':
      case 'Type1EmulatedGroupRemoved': case 'VfioDmaDirtied': case 'MdevDriverPins':
        type1Before(st, ev, s, this.totals);
        return out;
      case 'AccountingCharged': case 'AccountingUncharged': case 'LockedVmAccounted':
        s.accounting = true;
        return out;
      case 'DomainAllocated':
        s.domains.set(ev.domain, 'all');
        return out;
      case 'DomainFreed': {
        const k = this.index.domainIoas.get(ev.domain);
        if (k !== undefined) s.ioas.add(k);
        return out;
      }
      case 'DomainMapped': case 'DomainUnmapped':
        scopeAddDomain(s, ev.domain, ev.iova, ev.last);
        return out;
      case 'IoptDomainAdded': case 'IoptDomainRemoved':
        s.ioas.add(ioasKey(ev.ctx, ev.ioas));
        s.domains.set(ev.domain, 'all');
        if (ev.type === 'IoptDomainAdded') this.index.domainIoas.set(ev.domain, ioasKey(ev.ctx, ev.ioas));
        else this.index.domainIoas.delete(ev.domain);
        return out;
      case 'HwptInitialized':
        s.objects.add(objKey(ev.ctx, ev.id));
        s.ioas.add(ioasKey(ev.ctx, ev.ioas));
        return out;
      case 'DeviceAttached':
        s.objects.add(objKey(ev.ctx, ev.idev));
        s.objects.add(objKey(ev.ctx, ev.hwpt));
        return out;
      case 'DeviceDetached': {
        s.objects.add(objKey(ev.ctx, ev.idev));
        const h = st.ctxs.get(ev.ctx)?.objects.get(ev.idev)?.idev?.attached.get(ev.pasid);
        if (h !== undefined) s.objects.add(objKey(ev.ctx, h));
        return out;
      }
      case 'VfioDeviceBound':
        s.objects.add(objKey(ev.ctx, ev.idev));
        return out;
      case 'Revoke':
        if (ev.revoked) s.revoked.add(ev.dmabuf);
        return out;
      case 'MmapCookieAdded': case 'MmapCookieRemoved': case 'CookieVmaMapped': case 'CookieVmaUnmapped':
        s.cookieCtxs.add(ev.ctx);
        return out;
      default:
        return out;
    }
  }

  /** Checks to make right after `ev` is folded. */
  after(st: State, ev: DomainEvent): InvariantViolation[] {
    const out: InvariantViolation[] = [];
    if (ev.type === 'PagesUnpinned') checkUnpinOrder(st, this.index, ev.pages, ev.start, ev.last, out);
    if (ev.type === 'FramesUnpinned') checkFrameRelease(st, ev.frame, ev.count, out);
    return out;
  }

  /** The state invariants over what the step touched (or everything, with `full`). */
  endStep(st: State, opts: CheckOptions = {}): InvariantViolation[] {
    const scope = this.scope;
    this.scope = emptyScope();
    if (this.opts.full) return checkInvariants(st, undefined, opts);
    scope.quiescent = opts.quiescent ?? true;
    return checkScope(st, scope, this.index, this.totals);
  }

  /** Forgets what the current step touched (after a step that failed half-way). */
  reset(): void {
    this.scope = emptyScope();
  }
}
