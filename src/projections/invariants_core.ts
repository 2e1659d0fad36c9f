/**
 * What every invariant module shares: the violation record, the scope a check looks at (everything, or what the
 * events of one atomic step touched), and walks over the projected state.
 *
 * A check reads the state and never writes it. A scope lists what changed; `allScope()` asks for the whole state. Checks
 * given a scope look at the listed entities (and what they need around them) only, so a check run after every step
 * of a long replay costs O(what the step touched), not O(state).
 */
import { isDeadPages } from '../hw/dmabuf.js';
import type { Area, Iopt } from '../hw/io_pagetable.js';
import type { IommufdCtx, KObject, State } from './state.js';

/** One broken invariant: which, what exactly, and the kernel rule it restates (file and function). */
export interface InvariantViolation {
  readonly name: string;
  readonly message: string;
  readonly rule: string;
}

export const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

/** `ctx:ioas`, the key of an IOAS across contexts. */
export const ioasKey = (ctx: number, ioas: number): string => `${ctx}:${ioas}`;
export const objKey = ioasKey;

export interface IoasRef {
  readonly ctx: IommufdCtx;
  readonly obj: KObject;
  readonly iopt: Iopt;
  readonly key: string;
}

/** Every IOAS of every context, in (ctx, id) order. */
export function* allIoas(st: State): Generator<IoasRef> {
  for (const ctx of [...st.ctxs.values()].sort((a, b) => a.id - b.id))
    for (const obj of [...ctx.objects.values()].sort((a, b) => a.id - b.id))
      if (obj.ioas !== undefined) yield { ctx, obj, iopt: obj.ioas.iopt, key: ioasKey(ctx.id, obj.id) };
}

export function ioasByKey(st: State, key: string): IoasRef | undefined {
  const [c, i] = key.split(':').map(Number) as [number, number];
  const ctx = st.ctxs.get(c);
  const obj = ctx?.objects.get(i);
  return ctx !== undefined && obj?.ioas !== undefined ? { ctx, obj, iopt: obj.ioas.iopt, key } : undefined;
}

/** An area and where it lives. */
export interface AreaRef {
  readonly ioas: IoasRef;
  readonly area: Area;
}

/** Page index range [start, last] of some iopt_pages. */
export interface IndexRange {
  readonly start: number;
  readonly last: number;
}

/**
 * What a check looks at. `all` is everything; otherwise the sets name what the step changed:
 * - `areas`: per IOAS key, the ids of areas that appeared or changed (local disjointness, reserved, pages links);
 * - `ioas`: IOAS keys whose domain list, accesses, alignment, hwpt list or reserved ranges changed;
 * - `reserved`: reserved ranges added (every area under them is checked);
 * - `pages`: per iopt_pages id, the page index ranges whose pins, fills or access users changed;
 * - `domains`: per domain id, the IOVA ranges whose PTEs changed, or 'all';
 * - `objects`: `ctx:id` of objects whose references, life or attachments changed.
 */
export interface Scope {
  readonly all: boolean;
  readonly areas: Map<string, Set<number>>;
  readonly ioas: Set<string>;
  readonly reserved: { key: string; start: bigint; last: bigint }[];
  readonly pages: Map<number, IndexRange[]>;
  readonly domains: Map<number, { iova: bigint; last: bigint }[] | 'all'>;
  readonly objects: Set<string>;
  /** Frames whose FOLL_PIN count changed. */
  readonly frames: IndexRange[];
  /** Legacy VFIO containers whose type1 state changed (invariants_type1.ts). */
  readonly containers: Set<number>;
  /** Accounting is a global total: any pin, unpin or charge sets this. */
  accounting: boolean;
  /** dma-bufs revoked in the step. */
  readonly revoked: Set<number>;
  /** Contexts whose mmap cookies, cookie VMAs or objects changed. */
  readonly cookieCtxs: Set<number>;
  /**
   * No operation is in flight: temporary references (a COPY's kref on its source pages, a reference an in-flight
   * ioctl took) must all be gone, so reference counts are compared for equality rather than as lower bounds.
   */
  quiescent: boolean;
}

export const emptyScope = (all = false): Scope => ({
  all, areas: new Map(), ioas: new Set(), reserved: [], pages: new Map(), domains: new Map(), objects: new Set(), frames: [], containers: new Set(), accounting: all, quiescent: true,
  revoked: new Set(), cookieCtxs: new Set(),
});
/** Everything, at a quiescent point unless told otherwise. */
export const allScope = (quiescent = true): Scope => ({ ...emptyScope(true), quiescent });

export function scopeAddArea(s: Scope, key: string, area: number): void {
  let set = s.areas.get(key);
  if (set === undefined) s.areas.set(key, (set = new Set()));
  set.add(area);
}
export function scopeAddPages(s: Scope, pages: number, start: number, last: number): void {
  let l = s.pages.get(pages);
  if (l === undefined) s.pages.set(pages, (l = []));
  l.push({ start, last });
}
export function scopeAddDomain(s: Scope, domain: number, iova: bigint, last: bigint): void {
  const l = s.domains.get(domain);
  if (l === 'all') return;
  if (l === undefined) s.domains.set(domain, [{ iova, last }]);
  else l.push({ iova, last });
}

/** Domains a legacy VFIO type1 container owns (vfio_iommu_type1.c): not iommufd's, so the IOAS checks leave them be. */
export function type1Domains(st: State): Set<number> {
  const out = new Set<number>();
  for (const c of st.containers.values()) if (c.iommu?.domain !== undefined) out.add(c.iommu.domain);
  return out;
}

/**
 * The reverse lookups the checks need, which the state does not keep: built by one walk of the state (`scanIndexes`,
 * for full checks) or kept up to date from the events by `InvariantMonitor` (so a check costs O(touched)).
 */
export interface Indexes {
  /** The areas (of any IOAS) using iopt_pages `pages`. */
  areasOf(pages: number): readonly AreaRef[];
  /** The IOASes whose domain list holds `domain` (one, when all is well). */
  ioasOfDomain(domain: number): readonly IoasRef[];
  /** How many `holds` entries of other objects of context `ctx` name object `id`. */
  incoming(ctx: number, id: number): number;
  /** The accesses (`ctx:id`) with pin items on iopt_pages `pages`. */
  accessesOf(pages: number): readonly string[];
}

export function scanIndexes(st: State): Indexes {
  const areas = new Map<number, AreaRef[]>();
  const domains = new Map<number, IoasRef[]>();
  const incoming = new Map<string, number>();
  const accesses = new Map<number, Set<string>>();
  const push = <K, V>(m: Map<K, V[]>, k: K, v: V): void => {
    const l = m.get(k);
    if (l === undefined) m.set(k, [v]);
    else l.push(v);
  };
  for (const r of allIoas(st)) {
    for (const n of r.iopt.areas.inOrder()) push(areas, n.value.pages, { ioas: r, area: n.value });
    for (const d of r.iopt.domains) push(domains, d, r);
  }
  for (const ctx of st.ctxs.values())
    for (const o of ctx.objects.values()) {
      for (const h of o.holds) incoming.set(objKey(ctx.id, h), (incoming.get(objKey(ctx.id, h)) ?? 0) + 1);
      for (const it of o.access?.items.values() ?? [])
        for (const piece of it.pieces) {
          let s = accesses.get(piece.pages);
          if (s === undefined) accesses.set(piece.pages, (s = new Set()));
          s.add(objKey(ctx.id, o.id));
        }
    }
  return {
    areasOf: (p) => areas.get(p) ?? [],
    ioasOfDomain: (d) => domains.get(d) ?? [],
    incoming: (c, id) => incoming.get(objKey(c, id)) ?? 0,
    accessesOf: (p) => [...(accesses.get(p) ?? [])],
  };
}

/**
 * Whether an area is filled (stored in its IOAS's domains, the kernel's `domains_itree` membership): a published
 * area of an IOAS with domains always is (`iopt_map_pages` fills before it publishes, `iopt_table_add_domain` fills
 * every published area); an unpublished one is while MAP has filled it and until UNMAP has unfilled it, which shows
 * as its first IOVA being mapped in the IOAS's first domain. `undefined`: the state cannot tell (below).
 */
export function isFilled(st: State, iopt: Iopt, a: Area): boolean | undefined {
  if (iopt.domains.length === 0) return false;
  if (a.published) return true;
  // A dead dma-buf area (hw/dmabuf.ts) is filled but mapped nowhere, so while a MAP or COPY builds one (reserved, not
  // yet published) or an UNMAP takes one down, no PTE says whether its fill step has run: unknown.
  const p = st.pages.get(a.pages);
  if (p !== undefined && isDeadPages(st, p)) return undefined;
  const d = st.domains.get(iopt.domains[0]!);
  return d !== undefined && d.map.iterFirst(a.start, a.start) !== undefined;
}

/** The IOVA of the first byte of page `index` of an area's pages, clamped to the area. */
export function iovaOfIndex(st: State, a: Area, index: number): bigint {
  const page = BigInt(st.pageSize);
  const v = a.start - BigInt(a.pageOffset) + BigInt(index - a.pagesStart) * page;
  return v < a.start ? a.start : v;
}
/** The IOVA of the last byte of page `index` of an area's pages, clamped to the area. */
export function iovaLastOfIndex(st: State, a: Area, index: number): bigint {
  const page = BigInt(st.pageSize);
  const v = a.start - BigInt(a.pageOffset) + BigInt(index - a.pagesStart + 1) * page - 1n;
  return v > a.last ? a.last : v;
}

export const rangesIntersect = (a: IndexRange, s: number, l: number): boolean => a.start <= l && s <= a.last;

/** Merges index ranges into sorted disjoint ones. */
export function mergeRanges(rs: readonly IndexRange[]): IndexRange[] {
  const sorted = [...rs].sort((x, y) => x.start - y.start);
  const out: IndexRange[] = [];
  for (const r of sorted) {
    const prev = out[out.length - 1];
    if (prev !== undefined && r.start <= prev.last + 1) out[out.length - 1] = { start: prev.start, last: Math.max(prev.last, r.last) };
    else out.push({ ...r });
  }
  return out;
}
