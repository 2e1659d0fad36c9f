/**
 * Invariants of `iopt_pages` (pages.c): their lifetime against the areas using them, the two secondary indexes
 * (`domains_itree`: filled areas per page, here `fillUsers`; `access_itree`: access pin items per page, here
 * `accessUsers`) against a recomputation from the areas and the access items, pin conservation (a page is pinned,
 * once per iopt_pages, exactly while a filled area or an access item covers it; a frame's FOLL_PIN count is the
 * number of iopt_pages pinning it; a BAR's PFNs, held by a vfio dma-buf's pages, are no RAM frame) and the
 * RLIMIT_MEMLOCK / pinned_vm accounting balance.
 */
import { isDeviceMemory } from '../hw/dmabuf.js';
import type { Area } from '../hw/io_pagetable.js';
import { IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_USER, type IoptPages } from '../hw/pages.js';
import { denseRuns, gapsOf, MAX_PAGE_INDEX, RangeMap } from '../hw/range_map.js';
import {
  allIoas, hex, ioasByKey, ioasKey, isFilled, mergeRanges, type IndexRange, type Indexes, type InvariantViolation, type Scope,
} from './invariants_core.js';
import type { State } from './state.js';

export const R_PAGES_LIVE = 'pages.c iopt_area_pages / iopt_put_pages (kref) and io_pagetable.c iopt_insert_area: an area\'s iopt_pages is alive, referenced by it, and covers its page range';
export const R_FILL_INDEX = 'pages.c iopt_area_fill_domains / iopt_area_unfill_domains (pages->domains_itree): a page\'s fill users are the filled areas covering it';
export const R_ACCESS_INDEX = 'pages.c iopt_area_add_access / iopt_area_remove_access (pages->access_itree, area->num_accesses): access users are the pin items covering a page';
export const R_PIN = 'pages.c iopt_pages_fill_xarray / iopt_pages_unfill_xarray / __iopt_area_unfill_domain: a page is pinned once per iopt_pages, exactly while a filled area or an access covers it; mm/gup.c: a frame\'s pin count is the number of iopt_pages (and type1 vfio_dmas) pinning it';
export const R_ACCOUNTING = 'pages.c iopt_pages_update_pinned (incr_user_locked_vm, update_mm_locked_vm, pinned_vm), vfio_iommu_type1.c vfio_lock_acct / vfio_change_dma_owner: what is charged equals what is pinned, per mm (the process\'s mm->locked_vm is what its iopt_pages and the vfio_dmas whose dma->mm it is charged)';

/** Which areas use an iopt_pages. */
export type AreaIndex = Pick<Indexes, 'areasOf'>;

/** Global totals the accounting and frame checks compare against: a full scan, or kept up to date by a monitor. */
export interface PinTotals {
  /** Pinned pages per account mode (0 NONE, 1 USER, 2 MM). */
  readonly pinned: [number, number, number];
  /** Per frame, the number of iopt_pages (and type1 vfio_dmas) pinning it. */
  readonly frames: RangeMap;
  /** Pages the type1 vfio_dmas of the live mm charged to its mm->locked_vm (`dma->locked_vm`, `dma->mm`). */
  readonly type1LockedVm: number;
}

/** The frames pinned for page indices [start, last] of `p`, as runs of consecutive frames (pinned pages only). */
export function frameRuns(p: IoptPages, start: number, last: number): { index: number; frame: number; count: number }[] {
  return [...p.frames.runs(start, last)].map((r) => ({ index: r.start, frame: r.value, count: r.last - r.start + 1 }));
}

export function scanPinTotals(st: State): PinTotals {
  const pinned: [number, number, number] = [0, 0, 0];
  const frames = new RangeMap();
  // vfio_iommu_type1 pins frames too (vfio_pin_pages_remote): each vfio_dma its runs.
  let type1LockedVm = 0;
  for (const c of st.containers.values())
    for (const n of c.iommu?.dmas.inOrder() ?? []) {
      for (const r of n.value.pinned) frames.add(r.frame, r.frame + r.npages - 1, 1);
      // External (mdev) pins: one FOLL_PIN per vpfn of a page with a struct page.
      for (const v of n.value.vpfns.values()) if (v.ram) frames.add(Number(v.pfn), Number(v.pfn), 1);
      // Only the live mm's charges: after an exec the old mm's stay with it.
      if (n.value.mm === st.mmId) type1LockedVm += n.value.lockedVm;
    }
  for (const p of st.pages.values())
  {
    for (const r of p.pinned.runs()) pinned[p.accountMode] += r.last - r.start + 1;
    if (!isDeviceMemory(st, p)) for (const f of frameRuns(p, 0, MAX_PAGE_INDEX)) frames.add(f.frame, f.frame + f.count - 1, 1);
  }
  return { pinned, frames, type1LockedVm };
}

function v(out: InvariantViolation[], name: string, rule: string, message: string): void {
  out.push({ name, rule, message });
}

/** Runs of a RangeMap over [s, l] as a dense list of (start, last, count), holes included as count 0. */
function dense(m: RangeMap, s: number, l: number): { start: number; last: number; count: number }[] {
  return [...denseRuns(m, s, l)];
}

/** The first index in [s, l] where two maps differ, with both counts, or undefined. */
function firstDiff(a: RangeMap, b: RangeMap, s: number, l: number): { at: number; a: number; b: number } | undefined {
  const da = dense(a, s, l), db = dense(b, s, l);
  let i = 0, j = 0;
  while (i < da.length && j < db.length) {
    const x = da[i]!, y = db[j]!;
    const from = Math.max(x.start, y.start);
    if (x.count !== y.count) return { at: from, a: x.count, b: y.count };
    if (x.last < y.last) i++;
    else if (y.last < x.last) j++;
    else { i++; j++; }
  }
  return undefined;
}

/**
 * Access pin pieces per iopt_pages (of `pagesIds`, or all) and per area (`ctx:ioas:area`): from every access, or (a
 * scoped check) from the accesses the index says pin those pages.
 */
function accessPieces(st: State, pagesIds: ReadonlySet<number> | undefined, idx: Indexes): {
  perPages: Map<number, IndexRange[]>;
  perArea: Map<string, number>;
} {
  const perPages = new Map<number, IndexRange[]>();
  const perArea = new Map<string, number>();
  const owners: { ctx: number; access: NonNullable<ReturnType<typeof accessOf>> }[] = [];
  if (pagesIds === undefined) {
    for (const ctx of st.ctxs.values()) for (const o of ctx.objects.values()) if (o.access !== undefined) owners.push({ ctx: ctx.id, access: o.access });
  } else {
    const keys = new Set<string>();
    for (const p of pagesIds) for (const k of idx.accessesOf(p)) keys.add(k);
    for (const k of keys) {
      const a = accessOf(st, k);
      if (a !== undefined) owners.push({ ctx: Number(k.split(':')[0]), access: a });
    }
  }
  for (const { ctx, access: a } of owners)
    for (const item of a.items.values())
      for (const piece of item.pieces) {
        const k = `${ioasKey(ctx, a.ioas)}:${piece.area}`;
        perArea.set(k, (perArea.get(k) ?? 0) + 1);
        if (pagesIds !== undefined && !pagesIds.has(piece.pages)) continue;
        const l = perPages.get(piece.pages);
        if (l === undefined) perPages.set(piece.pages, [{ start: piece.start, last: piece.last }]);
        else l.push({ start: piece.start, last: piece.last });
      }
  return { perPages, perArea };
}
const accessOf = (st: State, key: string) => {
  const [c, id] = key.split(':').map(Number) as [number, number];
  return st.ctxs.get(c)?.objects.get(id)?.access;
};

/** `area-pages-live` for one area. */
function checkAreaPages(st: State, where: string, a: Area, out: InvariantViolation[]): void {
  const p = st.pages.get(a.pages);
  if (p === undefined) {
    v(out, 'area-pages-live', R_PAGES_LIVE, `${where}: area ${a.id} [${hex(a.start)}, ${hex(a.last)}] uses iopt_pages ${a.pages}, which was released (use after free)`);
    return;
  }
  if (a.pagesStart < 0 || a.pagesStart > a.pagesLast || a.pagesLast >= p.npages)
    v(out, 'area-pages-live', R_PAGES_LIVE, `${where}: area ${a.id} covers pages [${a.pagesStart}, ${a.pagesLast}] of iopt_pages ${p.id}, which has ${p.npages}`);
}

export function checkPins(st: State, scope: Scope, index: Indexes, totals: PinTotals, out: InvariantViolation[]): void {
  // Which pages, over which index ranges.
  const targets = new Map<number, IndexRange[]>();
  if (scope.all) for (const p of st.pages.values()) targets.set(p.id, [{ start: 0, last: MAX_PAGE_INDEX }]);
  else for (const [id, rs] of scope.pages) targets.set(id, mergeRanges(rs));

  // Areas: their pages exist and cover them.
  if (scope.all) {
    for (const r of allIoas(st)) for (const n of r.iopt.areas.inOrder()) checkAreaPages(st, `IOAS ${r.obj.id} (ctx ${r.ctx.id})`, n.value, out);
  } else {
    for (const [key, ids] of scope.areas) {
      const r = ioasByKey(st, key);
      if (r === undefined) continue;
      for (const id of ids) {
        const n = r.iopt.areaById.get(id);
        if (n !== undefined) checkAreaPages(st, `IOAS ${r.obj.id} (ctx ${r.ctx.id})`, n.value, out);
      }
    }
  }

  // Scoped: the pages touched, and those of the areas touched (their num_accesses are checked below).
  const pagesIds = new Set(targets.keys());
  if (!scope.all)
    for (const [key, ids] of scope.areas) for (const id of ids) {
      const a = ioasByKey(st, key)?.iopt.areaById.get(id)?.value;
      if (a !== undefined) pagesIds.add(a.pages);
    }
  const acc = accessPieces(st, scope.all ? undefined : pagesIds, index);
  for (const [id, ranges] of targets) {
    const p = st.pages.get(id);
    if (p === undefined) continue; // released: evolve refused to release it while referenced or pinned
    const users = index.areasOf(id);
    if (p.refs < users.length || p.refs < 1 || (scope.quiescent && p.refs !== users.length))
      v(out, 'area-pages-live', R_PAGES_LIVE, `iopt_pages ${id}: kref is ${p.refs} but ${users.length} area(s) use it${p.refs > users.length ? ' (a reference outlived the call that took it)' : ''}`);
    // Expected fill users and access users, recomputed.
    const fills = new RangeMap();
    // Pages under an area whose fill state the state cannot tell (isFilled) are not compared.
    const unknown = new RangeMap();
    for (const u of users) {
      const f = isFilled(st, u.ioas.iopt, u.area);
      if (f === undefined) unknown.add(u.area.pagesStart, u.area.pagesLast, 1);
      else if (f) fills.add(u.area.pagesStart, u.area.pagesLast, 1);
    }
    const accs = new RangeMap();
    for (const r of acc.perPages.get(id) ?? []) accs.add(r.start, r.last, 1);
    for (const r of ranges) {
      const last = scope.all ? MAX_PAGE_INDEX : r.last;
      for (const g of gapsOf(unknown.runs(r.start, last), r.start, last)) {
        const df = firstDiff(p.fillUsers, fills, g.start, g.last);
        if (df === undefined) continue;
        v(out, 'fill-index', R_FILL_INDEX, `iopt_pages ${id} page ${df.at}: domains_itree counts ${df.a} filled area(s), the areas say ${df.b}`);
        break;
      }
      const da = firstDiff(p.accessUsers, accs, r.start, last);
      if (da !== undefined)
        v(out, 'access-index', R_ACCESS_INDEX, `iopt_pages ${id} page ${da.at}: access_itree counts ${da.a} pin item(s), the accesses' items say ${da.b}`);
      // Pinned exactly where used, once.
      const used = new RangeMap();
      for (const x of p.fillUsers.runs(r.start, last)) used.add(x.start, x.last, 1);
      for (const x of p.accessUsers.runs(r.start, last)) used.add(x.start, x.last, 1);
      for (const x of dense(p.pinned, r.start, Math.min(last, Math.max(p.npages - 1, 0)))) {
        if (x.count > 1) v(out, 'pin-conservation', R_PIN, `iopt_pages ${id} pages [${x.start}, ${x.last}] are pinned ${x.count} times by one iopt_pages`);
        for (const y of dense(used, x.start, x.last)) {
          if (x.count > 0 && y.count === 0) {
            v(out, 'pin-conservation', R_PIN, `iopt_pages ${id} pages [${y.start}, ${y.last}] stay pinned but no filled area and no access uses them (pin leak)`);
            break;
          }
          if (x.count === 0 && y.count > 0) {
            v(out, 'pin-conservation', R_PIN, `iopt_pages ${id} pages [${y.start}, ${y.last}] are used by a filled area or an access but not pinned (use after unpin)`);
            break;
          }
        }
      }
      // The PFN list (pages->pinned_pfns) holds a frame for exactly the pinned pages.
      const fr = new RangeMap();
      for (const f of frameRuns(p, r.start, last)) fr.add(f.index, f.index + f.count - 1, 1);
      const dp = firstDiff(p.pinned, fr, r.start, last);
      if (dp !== undefined)
        v(out, 'pin-conservation', R_PIN, `iopt_pages ${id} page ${dp.at}: ${dp.a ? 'pinned with no frame recorded' : 'a frame recorded but not pinned'}`);
      const beyond = p.pinned.anyNonZero(p.npages, MAX_PAGE_INDEX) ? p.npages : undefined;
      if (beyond !== undefined && r.last >= beyond) v(out, 'pin-conservation', R_PIN, `iopt_pages ${id} has pins past its ${p.npages} pages`);
    }
  }

  // area->num_accesses against the access items' pieces.
  const areaTargets: { key: string; area: Area; where: string }[] = [];
  if (scope.all) {
    for (const r of allIoas(st)) for (const n of r.iopt.areas.inOrder()) areaTargets.push({ key: r.key, area: n.value, where: `IOAS ${r.obj.id} (ctx ${r.ctx.id})` });
  } else {
    const keys = new Set<string>();
    for (const [key, ids] of scope.areas) for (const id of ids) keys.add(`${key}:${id}`);
    for (const id of targets.keys()) for (const u of index.areasOf(id)) keys.add(`${u.ioas.key}:${u.area.id}`);
    for (const k of keys) {
      const [c, i, a] = k.split(':').map(Number) as [number, number, number];
      const r = ioasByKey(st, ioasKey(c, i));
      const n = r?.iopt.areaById.get(a);
      if (r !== undefined && n !== undefined) areaTargets.push({ key: r.key, area: n.value, where: `IOAS ${r.obj.id} (ctx ${r.ctx.id})` });
    }
  }
  for (const t of areaTargets) {
    const want = acc.perArea.get(`${t.key}:${t.area.id}`) ?? 0;
    if (t.area.numAccesses !== want)
      v(out, 'access-index', R_ACCESS_INDEX, `${t.where}: area ${t.area.id} has num_accesses ${t.area.numAccesses}, its access items say ${want}`);
  }

  // Frames and accounting: global totals.
  for (const r of scope.all ? [{ start: 0, last: MAX_PAGE_INDEX }] : mergeRanges(scope.frames)) {
    const fd = firstDiff(st.mm.pins, totals.frames, r.start, r.last);
    if (fd !== undefined)
      v(out, 'pin-conservation', R_PIN, `frame ${hex(fd.at)} has ${fd.a} FOLL_PIN reference(s) but ${fd.b} iopt_pages pin it`);
  }
  if (scope.all || scope.accounting) {
    const [none, user, mm] = totals.pinned;
    const a = st.accounting;
    if (a.userLockedVm !== user) v(out, 'accounting-balance', R_ACCOUNTING, `user->locked_vm is ${a.userLockedVm} pages, the USER-accounted iopt_pages pin ${user}`);
    if (a.mmLockedVm !== mm + totals.type1LockedVm)
      v(out, 'accounting-balance', R_ACCOUNTING, `mm->locked_vm is ${a.mmLockedVm} pages, the MM-accounted iopt_pages pin ${mm} and the type1 vfio_dmas charged ${totals.type1LockedVm}`);
    if (a.pinnedVm !== none + user + mm) v(out, 'accounting-balance', R_ACCOUNTING, `mm->pinned_vm is ${a.pinnedVm} pages, the iopt_pages pin ${none + user + mm}`);
  }
}

export { IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_USER };
