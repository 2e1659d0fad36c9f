/**
 * Time-travel queries over an index (index.ts): the library that the CLI commands, the terminal debugger and the
 * web page share.
 *
 * - `stateAt(n)`: the view after entry n (-1: the initial state).
 * - `diff(n, m)`: what differs between the views at n and m (diff.ts).
 * - `history(selector)`: every entry that touched an object, an IOVA of an IOAS, a page of an iopt_pages, a domain,
 *   an fd. "Touched" is read off the event's fields (ctx, id, by, ioas, hwpt, idev, area, pages, domain, fd, start/
 *   last, iova/last, pieces), never off event type names, so event types added later are covered when they use the
 *   same field names. Areas are followed through splits, and an IOVA's history includes the pages behind it and the
 *   mappings of the domains attached to its IOAS.
 * - `blame(path, n)`: the entry that last changed the value at a view path, at or before n.
 * - `bisect(predicate)`: the first entry at which a predicate holds.
 */
import type { LogEntry } from '../events/domain.js';
import { forkState, type State } from '../projections/state.js';
import { diffViews, type Change } from './diff.js';
import { compileExpr } from './expr.js';
import { foldEntry, viewOf, type Mark, type TraceIndex } from './index.js';
import { isObject, jsonEqual, parseInteger, type Json } from './json.js';
import { canonicalPath, formatPath, getAt, parsePath, sameValue, type Step } from './path.js';

/** The view at entry n: after entry n has been folded in; -1 is the initial state. */
export function stateAt(idx: TraceIndex, n: number): Json {
  return idx.viewAt(n);
}

/** The structural difference between the views at entries n and m (what changed going from n to m). */
export function diff(idx: TraceIndex, n: number, m: number): Change[] {
  const a = idx.viewAt(n);
  const b = idx.viewAt(m);
  return diffViews(a, b);
}

// ---------------------------------------------------------------------------------------------------------------
// history

export type Selector =
  | { readonly kind: 'object'; readonly id: number; readonly ctx?: number | undefined }
  | { readonly kind: 'iova'; readonly ioas: number; readonly iova: bigint; readonly ctx?: number | undefined }
  /** `index` undefined: any page of the iopt_pages. */
  | { readonly kind: 'page'; readonly pages: number; readonly index?: number | undefined }
  | { readonly kind: 'domain'; readonly domain: number }
  | { readonly kind: 'fd'; readonly fd: number }
  | { readonly kind: 'ctx'; readonly ctx: number }
  | { readonly kind: 'type'; readonly type: string }
  | { readonly kind: 'line'; readonly line: number };

export function describeSelector(s: Selector): string {
  switch (s.kind) {
    case 'object': return `object ${s.id}${s.ctx === undefined ? '' : ` of context ${s.ctx}`}`;
    case 'iova': return `IOVA 0x${s.iova.toString(16)} of IOAS ${s.ioas}${s.ctx === undefined ? '' : ` (context ${s.ctx})`}`;
    case 'page': return s.index === undefined ? `iopt_pages ${s.pages}` : `page ${s.index} of iopt_pages ${s.pages}`;
    case 'domain': return `domain ${s.domain}`;
    case 'fd': return `fd ${s.fd}`;
    case 'ctx': return `context ${s.ctx}`;
    case 'type': return `${s.type} events`;
    case 'line': return `trace line ${s.line}`;
  }
}

type Ev = Readonly<Record<string, unknown>>;
const num = (ev: Ev, f: string): number | undefined => (typeof ev[f] === 'number' ? (ev[f] as number) : undefined);
const big = (ev: Ev, f: string): bigint | undefined => (typeof ev[f] === 'bigint' ? (ev[f] as bigint) : undefined);
/** Fields that name an object of the event's context. */
const OBJECT_FIELDS = ['id', 'by', 'ioas', 'hwpt', 'idev', 'access'] as const;

interface AreaGeo { start: bigint; last: bigint; pages: number; pagesStart: number; pageOffset: number; ioasKey: string }

function splitArea(a: AreaGeo, last: bigint, ps: bigint): [AreaGeo, AreaGeo] {
  const off = last + 1n - a.start + BigInt(a.pageOffset);
  return [
    { ...a, last },
    { ...a, start: last + 1n, pagesStart: a.pagesStart + Number(off / ps), pageOffset: Number(off % ps) },
  ];
}
const pagesLastOf = (a: AreaGeo, ps: bigint): number => a.pagesStart + Number((a.last - a.start + BigInt(a.pageOffset)) / ps);
/** The IOVA range of page `i` of the area's iopt_pages, inside the area. */
function pageSpan(a: AreaGeo, i: number, ps: bigint): [bigint, bigint] {
  const s = a.start + BigInt(i - a.pagesStart) * ps - BigInt(a.pageOffset);
  const lo = s > a.start ? s : a.start, hi = s + ps - 1n < a.last ? s + ps - 1n : a.last;
  return [lo, hi];
}

/**
 * A test of "entry touches the selection", fed every entry in log order (areas, domains and pin items are followed
 * as the log creates, splits and removes them).
 */
export function touches(sel: Selector): (e: LogEntry) => boolean {
  switch (sel.kind) {
    case 'object':
      return (e) => {
        const ev = e.ev as unknown as Ev;
        const ctx = num(ev, 'ctx');
        if (ctx === undefined || (sel.ctx !== undefined && ctx !== sel.ctx)) return false;
        for (const f of OBJECT_FIELDS) if (ev[f] === sel.id) return true;
        const file = ev.file as Ev | undefined;
        return typeof file === 'object' && file !== null && file.access === sel.id;
      };
    case 'domain':
      return (e) => {
        const ev = e.ev as unknown as Ev;
        return ev.domain === sel.domain || (Array.isArray(ev.domains) && ev.domains.includes(sel.domain));
      };
    case 'fd':
      return (e) => (e.ev as unknown as Ev).fd === sel.fd;
    case 'ctx':
      return (e) => (e.ev as unknown as Ev).ctx === sel.ctx;
    case 'type':
      return (e) => e.ev.type === sel.type;
    case 'line':
      return (e) => e.line === sel.line;
    case 'iova':
    case 'page':
      return memoryTouches(sel);
  }
}

function memoryTouches(sel: Extract<Selector, { kind: 'iova' | 'page' }>): (e: LogEntry) => boolean {
  let ps = 4096n;
  const areas = new Map<number, AreaGeo>();
  const ioasDomains = new Map<string, Set<number>>();
  const items = new Set<string>();
  const inRange = (lo: bigint | undefined, hi: bigint | undefined): boolean =>
    sel.kind === 'iova' && lo !== undefined && hi !== undefined && lo <= sel.iova && sel.iova <= hi;
  /** Whether an area (as tracked) holds the selection. */
  const holds = (a: AreaGeo): boolean => sel.kind === 'iova'
    ? a.start <= sel.iova && sel.iova <= a.last
    : a.pages === sel.pages && (sel.index === undefined || (a.pagesStart <= sel.index && sel.index <= pagesLastOf(a, ps)));
  const ioasOk = (ev: Ev): boolean => sel.kind === 'iova' && ev.ioas === sel.ioas && (sel.ctx === undefined || ev.ctx === sel.ctx);
  /** The (pages, index) behind the selected IOVA in the areas followed. */
  const backing = (pages: number, start: number, last: number): boolean => {
    for (const a of areas.values()) {
      if (a.pages !== pages) continue;
      if (sel.kind === 'iova') {
        const idx = a.pagesStart + Number((sel.iova - a.start + BigInt(a.pageOffset)) / ps);
        if (start <= idx && idx <= last) return true;
      }
    }
    return sel.kind === 'page' && pages === sel.pages && (sel.index === undefined || (start <= sel.index && sel.index <= last));
  };
  return (e) => {
    const ev = e.ev as unknown as Ev;
    const type = ev.type as string;
    if (type === 'TraceStarted' && typeof ev.pageSize === 'number') ps = BigInt(ev.pageSize);
    const ctx = num(ev, 'ctx'), ioas = num(ev, 'ioas'), area = num(ev, 'area'), domain = num(ev, 'domain');
    const key = `${ctx}:${ioas}`;
    // Domains attached to an IOAS (its mappings are the IOAS's IOVAs).
    if (domain !== undefined && ioas !== undefined && ctx !== undefined && type !== 'DomainAllocated' && type !== 'HwptInitialized') {
      let set = ioasDomains.get(key);
      if (set === undefined) ioasDomains.set(key, (set = new Set()));
      if (type.endsWith('Removed')) set.delete(domain);
      else set.add(domain);
      return ioasOk(ev) || (sel.kind === 'page' && [...areas.values()].some((a) => a.ioasKey === key));
    }
    // A new area.
    const start = big(ev, 'start'), last = big(ev, 'last');
    const pages = num(ev, 'pages');
    if (area !== undefined && start !== undefined && last !== undefined && pages !== undefined && ctx !== undefined && ioas !== undefined) {
      const g: AreaGeo = { start, last, pages, pagesStart: num(ev, 'pagesStart') ?? 0, pageOffset: num(ev, 'pageOffset') ?? 0, ioasKey: key };
      if ((sel.kind === 'iova' ? ioasOk(ev) : true) && holds(g)) {
        areas.set(area, g);
        return true;
      }
      return false;
    }
    // An area followed: published, unpublished, split, removed, access-prevented.
    if (area !== undefined) {
      const g = areas.get(area);
      if (g === undefined) return false;
      const splitAt = big(ev, 'last');
      const lhs = num(ev, 'lhs'), rhs = num(ev, 'rhs');
      if (splitAt !== undefined && lhs !== undefined && rhs !== undefined) {
        const [l, r] = splitArea(g, splitAt, ps);
        areas.delete(area);
        if (holds(l)) areas.set(lhs, l);
        if (holds(r)) areas.set(rhs, r);
      } else if (type === 'AreaRemoved') areas.delete(area);
      return true;
    }
    // Ranges of the IOAS itself: reserved, allowed.
    if (ioasOk(ev)) {
      if (inRange(start, last)) return true;
      if (Array.isArray(ev.ranges)) return true; // the allowed list changed: every IOVA's status may have
    }
    // Pages: created, released, pinned, filled (by page index range).
    if (pages !== undefined) {
      const s = num(ev, 'start'), l = num(ev, 'last');
      if (s !== undefined && l !== undefined) return backing(pages, s, l);
      return [...areas.values()].some((a) => a.pages === pages) || (sel.kind === 'page' && pages === sel.pages);
    }
    // Access pin items over the areas followed.
    if (Array.isArray(ev.pieces)) {
      const hit = (ev.pieces as Ev[]).some((p) => {
        const a = num(p, 'area');
        const pg = num(p, 'pages'), s = num(p, 'start'), l = num(p, 'last');
        return (a !== undefined && areas.has(a) && (pg === undefined || s === undefined || l === undefined || backing(pg, s, l)))
          || (sel.kind === 'page' && pg === sel.pages && s !== undefined && l !== undefined && backing(pg, s, l));
      });
      if (hit) items.add(`${ctx}:${num(ev, 'id')}:${num(ev, 'item')}`);
      return hit;
    }
    const item = num(ev, 'item');
    if (item !== undefined && items.has(`${ctx}:${num(ev, 'id')}:${item}`)) {
      items.delete(`${ctx}:${num(ev, 'id')}:${item}`);
      return true;
    }
    // Domain mappings over the selection.
    const iova = big(ev, 'iova');
    if (domain !== undefined && iova !== undefined && last !== undefined) {
      if (sel.kind === 'iova') {
        for (const [k, set] of ioasDomains) if (set.has(domain) && k.endsWith(`:${sel.ioas}`) && (sel.ctx === undefined || k.startsWith(`${sel.ctx}:`))) return inRange(iova, last);
        return false;
      }
      for (const a of areas.values()) {
        if (!ioasDomains.get(a.ioasKey)?.has(domain)) continue;
        if (sel.index === undefined) {
          if (iova <= a.last && a.start <= last) return true;
        } else {
          const [lo, hi] = pageSpan(a, sel.index, ps);
          if (lo <= hi && iova <= hi && lo <= last) return true;
        }
      }
    }
    return false;
  };
}

export interface HistoryOptions {
  readonly from?: number | undefined;
  readonly to?: number | undefined;
  /** At most this many entries (the first ones); 0 or undefined for all. */
  readonly limit?: number | undefined;
}

/** Every log entry that touched the selection, in order (entries `from` ≤ n ≤ `to`). */
export function history(idx: TraceIndex, sel: Selector, opts: HistoryOptions = {}): LogEntry[] {
  const test = touches(sel);
  const from = opts.from ?? 0, to = opts.to ?? idx.count - 1;
  const out: LogEntry[] = [];
  // Stateful selectors follow areas from the start of the log; the others may start late.
  const begin = sel.kind === 'iova' || sel.kind === 'page' ? 0 : Math.max(0, from);
  for (const e of idx.entries(begin, to + 1)) {
    if (test(e) && e.n >= from) {
      out.push(e);
      if (opts.limit && out.length >= opts.limit) break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// blame

export interface BlameResult {
  /** The path as given, and with index steps over arrays of records turned into keys (read at `at`). */
  readonly path: string;
  readonly canonical: string;
  readonly at: number;
  /** The value at `at` (undefined: nothing there). */
  readonly value: Json | undefined;
  /** The entry that last changed it, at or before `at`; undefined when it has not changed since the initial state. */
  readonly entry: LogEntry | undefined;
  /** The value just before that entry. */
  readonly before: Json | undefined;
  readonly mode: 'walk' | 'bisect';
  /** Views computed to answer. */
  readonly rebuilds: number;
}

export interface BlameOptions {
  /**
   * 'walk' (default): exact. Scans back from `at`, snapshot segment by snapshot segment, folding each forward and
   * comparing the value before and after each entry that touches the path's object (or every entry, for a path that
   * names none); confirms at the end that the change found leads to the value at `at`, else scans every entry.
   * 'bisect': O(log n) rebuilds, binary search for the first entry from which the value stays what it is at `at`;
   * exact unless the value, before `at`, changed away and came back (A → B → A: it then answers a later change).
   */
  readonly mode?: 'walk' | 'bisect' | undefined;
}

/** The selection whose history covers every change of the value at a (canonical) path, if the path names one. */
export function selectorForPath(steps: readonly Step[]): Selector | undefined {
  const [a, b, c, d] = steps;
  const id = (s: Step | undefined): number | undefined => (s?.k === 'match' && (s.field === 'id' || s.field === 'fd') ? Number(parseInteger(String(s.value)) ?? NaN) : undefined);
  if (a?.k !== 'key') return undefined;
  if (a.key === 'contexts') {
    const ctx = id(b);
    if (ctx === undefined || Number.isNaN(ctx)) return undefined;
    if (c?.k === 'key' && c.key === 'objects') {
      const obj = id(d);
      return obj === undefined || Number.isNaN(obj) ? { kind: 'ctx', ctx } : { kind: 'object', id: obj, ctx };
    }
    return { kind: 'ctx', ctx };
  }
  const key = id(b);
  if (key === undefined || Number.isNaN(key)) return undefined;
  if (a.key === 'pages') return { kind: 'page', pages: key };
  if (a.key === 'domains') return { kind: 'domain', domain: key };
  if (a.key === 'fds' || a.key === 'vfioBinds') return { kind: 'fd', fd: key };
  return undefined;
}

export function blame(idx: TraceIndex, pathText: string, at: number, opts: BlameOptions = {}): BlameResult {
  idx.checkEntry(at);
  const view = idx.viewAt(at);
  const steps = canonicalPath(view, parsePath(pathText));
  const value = getAt(view, steps);
  const base = { path: pathText, canonical: formatPath(steps), at, value };
  if (opts.mode === 'bisect') {
    let rebuilds = 1;
    const same = (n: number): boolean => {
      rebuilds++;
      return jsonEqual(getAt(idx.viewAt(n), steps), value);
    };
    // Smallest x in [-1, at] with the value at x equal to the value at `at` (assuming it holds from x on).
    let lo = -1, hi = at;
    if (same(-1)) return { ...base, entry: undefined, before: undefined, mode: 'bisect', rebuilds };
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (same(mid)) hi = mid;
      else lo = mid;
    }
    return { ...base, entry: idx.entry(hi), before: getAt(idx.viewAt(hi - 1), steps), mode: 'bisect', rebuilds: rebuilds + 1 };
  }
  const sel = selectorForPath(steps);
  const first = walkBack(idx, steps, at, sel);
  if (sel === undefined || (first.found !== undefined ? jsonEqual(first.found.after, value) : jsonEqual(first.initial, value)))
    return { ...base, entry: first.found?.entry, before: first.found?.before, mode: 'walk', rebuilds: first.rebuilds };
  // Something outside the path's object changed the value: look at every entry.
  const all = walkBack(idx, steps, at, undefined);
  return { ...base, entry: all.found?.entry, before: all.found?.before, mode: 'walk', rebuilds: first.rebuilds + all.rebuilds };
}

interface Found { entry: LogEntry; before: Json | undefined; after: Json | undefined }

/** The last change of the value at `steps` at or before entry `at`, by segments from the end. */
function walkBack(idx: TraceIndex, steps: readonly Step[], at: number, sel: Selector | undefined): { found: Found | undefined; initial: Json | undefined; rebuilds: number } {
  let rebuilds = 0;
  const valueOf = (st: State): Json | undefined => {
    rebuilds++;
    return getAt(viewOf(st), steps);
  };
  // A stateful selection (areas followed through the log) is evaluated once, forward, into a bitmap.
  let test: ((e: LogEntry) => boolean) | undefined;
  if (sel !== undefined && (sel.kind === 'iova' || sel.kind === 'page')) {
    const t = touches(sel);
    const bits = new Uint8Array(at + 1);
    for (const e of idx.entries(0, at + 1)) bits[e.n] = t(e) ? 1 : 0;
    test = (e) => bits[e.n] === 1;
  } else if (sel !== undefined) test = touches(sel);
  let end = at + 1; // position: entries [cp.p, end) of the segment
  for (let ci = idx.checkpointAtOrBefore(at + 1); ci >= 0; ci--) {
    const cp = idx.checkpoints[ci]!;
    if (cp.p >= end) continue;
    const st = forkState(cp.state);
    let current: Json | undefined;
    let known = false;
    let found: Found | undefined;
    for (const e of idx.entries(cp.p, end)) {
      const relevant = test === undefined || test(e);
      if (relevant && !known) {
        current = valueOf(st);
        known = true;
      }
      foldEntry(st, e);
      if (relevant) {
        const after = valueOf(st);
        if (!jsonEqual(after, current)) found = { entry: e, before: current, after };
        current = after;
      }
    }
    if (found !== undefined) return { found, initial: undefined, rebuilds };
    end = cp.p;
  }
  return { found: undefined, initial: getAt(idx.viewAt(-1), steps), rebuilds: rebuilds + 1 };
}

// ---------------------------------------------------------------------------------------------------------------
// bisect

/**
 * A predicate for bisect. `entry` and `mark` predicates look at the log and the marks only (no state is rebuilt):
 * the answer is the first entry or mark that passes, found by one scan. `view` predicates look at the state.
 */
export interface Predicate {
  readonly describe: string;
  readonly entry?: ((e: LogEntry) => boolean) | undefined;
  readonly mark?: ((m: Mark) => boolean) | undefined;
  readonly view?: ((view: Json, e: LogEntry | undefined) => boolean) | undefined;
  /** The last entry known not to satisfy a view predicate (the search starts after it); -1 by default. */
  readonly from?: ((idx: TraceIndex) => number | { readonly none: string }) | undefined;
}

export interface BisectOptions {
  /**
   * 'binary' (default): O(log n) rebuilds. It assumes the predicate is monotone over [from, to]: false up to some
   * entry, true from it on. Whatever the predicate, it returns an entry at which it is true and was false just
   * before; if the predicate holds, stops holding and holds again, that is one of the transitions, not necessarily
   * the first. 'linear': rebuilds the view after every entry from `from` on and returns the first at which it
   * holds: exact for any predicate, and O(n) views.
   */
  readonly mode?: 'binary' | 'linear' | undefined;
  readonly from?: number | undefined;
  readonly to?: number | undefined;
}

export interface BisectResult {
  readonly found: boolean;
  /** The first entry where the predicate holds (-1: in the initial state already). */
  readonly n: number | undefined;
  readonly entry: LogEntry | undefined;
  /** For mark predicates: the mark (an internal error is not a log entry). */
  readonly mark: Mark | undefined;
  readonly mode: 'scan' | 'binary' | 'linear';
  readonly probes: number;
  readonly message: string;
}

export function bisect(idx: TraceIndex, pred: Predicate, opts: BisectOptions = {}): BisectResult {
  const to = Math.min(opts.to ?? idx.count - 1, idx.count - 1);
  if (pred.view === undefined) {
    // Log and marks only: one scan.
    let best: { n: number; entry: LogEntry | undefined; mark: Mark | undefined } | undefined;
    const from = opts.from;
    if (pred.mark) for (const m of idx.marks) if ((from === undefined || m.n > from) && m.n <= to && pred.mark(m) && (best === undefined || m.n < best.n)) best = { n: m.n, entry: undefined, mark: m };
    let probes = 0;
    if (pred.entry) {
      for (const e of idx.entries(Math.max(0, (from ?? -1) + 1), (best?.n ?? to) + 1)) {
        probes++;
        if (pred.entry(e)) {
          if (best === undefined || e.n <= best.n) best = { n: e.n, entry: e, mark: best?.n === e.n ? best.mark : undefined };
          break;
        }
      }
    }
    if (best === undefined) return { found: false, n: undefined, entry: undefined, mark: undefined, mode: 'scan', probes, message: `no entry satisfies ${pred.describe}` };
    const entry = best.entry ?? (best.n >= 0 ? idx.entry(best.n) : undefined);
    return { found: true, n: best.n, entry, mark: best.mark, mode: 'scan', probes, message: `first ${pred.describe}: entry ${best.n}${best.mark ? ` (line ${best.mark.line}: ${best.mark.message})` : entry ? ` (line ${entry.line})` : ''}` };
  }
  const test = pred.view;
  let probes = 0;
  const holds = (n: number): boolean => {
    probes++;
    return test(idx.viewAt(n), n >= 0 ? idx.entry(n) : undefined);
  };
  let lo: number;
  if (opts.from !== undefined) lo = opts.from;
  else {
    const f = pred.from?.(idx) ?? -1;
    if (typeof f !== 'number') return { found: false, n: undefined, entry: undefined, mark: undefined, mode: opts.mode ?? 'binary', probes, message: f.none };
    lo = f;
  }
  if (lo > to) return { found: false, n: undefined, entry: undefined, mark: undefined, mode: opts.mode ?? 'binary', probes, message: `empty range: from ${lo} to ${to}` };
  if (holds(lo)) {
    const what = lo === -1 ? 'in the initial state already' : `at entry ${lo} already (the start of the search)`;
    return { found: true, n: lo, entry: lo >= 0 ? idx.entry(lo) : undefined, mark: undefined, mode: opts.mode ?? 'binary', probes, message: `${pred.describe} holds ${what}` };
  }
  if (opts.mode === 'linear') {
    // One working state folded forward, one view per entry.
    const ci = idx.checkpointAtOrBefore(lo + 1);
    const cp = idx.checkpoints[ci]!;
    const st = forkState(cp.state);
    for (const e of idx.entries(cp.p, lo + 1)) foldEntry(st, e);
    for (const e of idx.entries(lo + 1, to + 1)) {
      foldEntry(st, e);
      probes++;
      if (test(viewOf(st), e)) return { found: true, n: e.n, entry: e, mark: undefined, mode: 'linear', probes, message: `first ${pred.describe}: entry ${e.n} (line ${e.line})` };
    }
    return { found: false, n: undefined, entry: undefined, mark: undefined, mode: 'linear', probes, message: `${pred.describe} never holds from entry ${lo + 1} to ${to}` };
  }
  let hi = to;
  if (!holds(hi))
    return { found: false, n: undefined, entry: undefined, mark: undefined, mode: 'binary', probes, message: `${pred.describe} does not hold at entry ${hi} (the end of the search); if it holds somewhere before, bisect --linear finds it` };
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (holds(mid)) hi = mid;
    else lo = mid;
  }
  const e = idx.entry(hi);
  return { found: true, n: hi, entry: e, mark: undefined, mode: 'binary', probes, message: `first ${pred.describe}: entry ${hi} (line ${e.line})` };
}

// ---------------------------------------------------------------------------------------------------------------
// predicates

export const firstDivergence = (): Predicate => ({ describe: 'divergence', entry: (e) => e.ev.type === 'Diverged', mark: (m) => m.kind === 'divergence' });
/** An internal model error (an event the state could not take) or an `InvariantViolated` event. */
export const firstInternalError = (): Predicate => ({
  describe: 'internal model error or violated invariant', entry: (e) => (e.ev.type as string) === 'InvariantViolated', mark: (m) => m.kind === 'internal' || m.kind === 'invariant',
});
export const firstError = (): Predicate => ({
  describe: 'divergence, violated invariant, model or trace error',
  entry: (e) => e.ev.type === 'Diverged' || (e.ev.type as string) === 'InvariantViolated', mark: () => true,
});

export function pathEquals(pathText: string, value: Json): Predicate {
  const steps = parsePath(pathText);
  return { describe: `${formatPath(steps)} == ${JSON.stringify(value)}`, view: (v) => { const x = getAt(v, steps); return x !== undefined && sameValue(x, value); } };
}

export function exprPredicate(src: string): Predicate {
  const c = compileExpr(src);
  return { describe: `(${src})`, view: c.test };
}

/** Whether IOVA `iova` of IOAS `ioas` is inside a published area (in context `ctx`, or any context holding it). */
export function iovaMapped(view: Json, ioas: number, iova: bigint, ctx?: number): boolean {
  const ctxs = isObject(view) && Array.isArray(view.contexts) ? view.contexts : [];
  for (const c of ctxs) {
    if (!isObject(c) || (ctx !== undefined && c.id !== ctx) || !Array.isArray(c.objects)) continue;
    for (const o of c.objects) {
      if (!isObject(o) || o.id !== ioas || !isObject(o.ioas) || !Array.isArray(o.ioas.areas)) continue;
      for (const a of o.ioas.areas) {
        if (!isObject(a) || a.published === false) continue;
        const s = parseInteger(String(a.start)), l = parseInteger(String(a.last));
        if (s !== undefined && l !== undefined && s <= iova && iova <= l) return true;
      }
    }
  }
  return false;
}

/**
 * IOVA `iova` of IOAS `ioas` stops being mapped (no published area covers it). The search starts at the first
 * entry where it is mapped (found through its history), so "unmapped" means "was mapped, then was not".
 */
export function iovaUnmapped(ioas: number, iova: bigint, ctx?: number): Predicate {
  const name = `IOVA 0x${iova.toString(16)} of IOAS ${ioas} unmapped`;
  return {
    describe: name,
    view: (v) => !iovaMapped(v, ioas, iova, ctx),
    from: (idx) => {
      for (const e of history(idx, { kind: 'iova', ioas, iova, ctx })) {
        if (iovaMapped(idx.viewAt(e.n), ioas, iova, ctx)) return e.n;
      }
      return { none: `IOVA 0x${iova.toString(16)} is never mapped in IOAS ${ioas}` };
    },
  };
}
