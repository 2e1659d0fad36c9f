/**
 * A trace's log as Chrome trace-event JSON (the format Perfetto's UI and chrome://tracing open): time is the log
 * entry number (1 entry = 1 µs), so the picture is deterministic and every call has a width.
 *
 *   process 1 "trace": one track per thread `tid`; a slice per trace line (its label, its entries, the outcome),
 *                       instants for divergences and errors
 *   process 2 "objects": one track per object id of each iommufd context; a slice per lifetime (allocated →
 *                       destroyed/aborted), instants for what else touched it (finalize, references, attach…)
 *   process 3 "domains": one track per IOMMU domain; a slice per lifetime, instants for map/unmap
 *   process 4 "counters": live objects, pinned pages (pinned_vm)
 *
 * Everything is read off generic event fields (ctx/id/kind, domain, npages), like history (queries.ts).
 */
import type { LogEntry } from '../events/domain.js';
import type { TraceIndex } from './index.js';
import { toJson, type Json } from './json.js';

type TraceEvent = Record<string, Json>;

const OBJECT_FIELDS = ['id', 'by', 'ioas', 'hwpt', 'idev', 'access'] as const;

export function* perfettoEvents(idx: TraceIndex, traceName: string): Generator<TraceEvent, void, void> {
  yield { name: 'process_name', ph: 'M', pid: 1, tid: 0, args: { name: `trace ${traceName}` } };
  yield { name: 'process_sort_index', ph: 'M', pid: 1, tid: 0, args: { sort_index: 1 } };
  yield { name: 'process_name', ph: 'M', pid: 2, tid: 0, args: { name: 'objects' } };
  yield { name: 'process_sort_index', ph: 'M', pid: 2, tid: 0, args: { sort_index: 2 } };
  yield { name: 'process_name', ph: 'M', pid: 3, tid: 0, args: { name: 'domains' } };
  yield { name: 'process_sort_index', ph: 'M', pid: 3, tid: 0, args: { sort_index: 3 } };
  yield { name: 'process_name', ph: 'M', pid: 4, tid: 0, args: { name: 'counters' } };

  const threads = new Set<number>();
  /** Object tracks: `${ctx}:${id}` → tid, and the open lifetime slice. */
  const objTracks = new Map<string, number>();
  const objOpen = new Map<string, { ts: number; kind: string; id: number; ctx: number }>();
  const domOpen = new Map<number, { ts: number; args: TraceEvent }>();
  const domTracks = new Set<number>();
  let live = 0, pinned = 0;
  const end = idx.count;

  // A trace line's slice: consecutive entries of one line and one thread.
  let slice: { line: number; tid: number; first: number; last: number; outcome: Json } | undefined;
  const closeSlice = function* (): Generator<TraceEvent> {
    if (slice === undefined) return;
    const info = idx.lineInfo(slice.line);
    const args: TraceEvent = { line: slice.line, entries: `${slice.first}-${slice.last}` };
    if (info.note) args.note = info.note;
    if (slice.outcome !== null) args.outcome = slice.outcome;
    yield { name: info.label || `line ${slice.line}`, cat: 'call', ph: 'X', ts: slice.first, dur: slice.last - slice.first + 1, pid: 1, tid: slice.tid, args };
    slice = undefined;
  };

  const marksAt = new Map<number, typeof idx.marks[number][]>();
  for (const m of idx.marks) {
    const list = marksAt.get(m.n);
    if (list === undefined) marksAt.set(m.n, [m]);
    else list.push(m);
  }

  for (const e of idx.entries()) {
    if (!threads.has(e.tid)) {
      threads.add(e.tid);
      // The replay stamps what the trace header sets up (TraceStarted, its VMAs) with tid 0.
      yield { name: 'thread_name', ph: 'M', pid: 1, tid: e.tid, args: { name: e.tid === 0 ? 'trace header' : `tid ${e.tid}` } };
    }
    if (slice !== undefined && (slice.line !== e.line || slice.tid !== e.tid)) yield* closeSlice();
    if (slice === undefined) slice = { line: e.line, tid: e.tid, first: e.n, last: e.n, outcome: null };
    slice.last = e.n;
    const ev = e.ev as unknown as Record<string, unknown>;
    const type = String(ev.type);
    if (type === 'CallCompleted') slice.outcome = toJson(ev.errno !== undefined ? { errno: ev.errno, why: ev.why } : { ret: ev.ret, why: ev.why });
    yield* objectEvents(e, ev, type);
    yield* domainEvents(e, ev, type);
    if (type === 'AccountingCharged' || type === 'AccountingUncharged') {
      const np = typeof ev.npages === 'number' ? ev.npages : 0;
      pinned += type === 'AccountingCharged' ? np : -np;
      yield { name: 'pinned pages', ph: 'C', ts: e.n, pid: 4, tid: 0, args: { pinned_vm: pinned } };
    }
    for (const m of marksAt.get(e.n) ?? []) {
      yield { name: `${m.kind.toUpperCase()}`, cat: 'mark', ph: 'i', s: 't', ts: e.n, pid: 1, tid: e.tid, args: { line: m.line, message: m.message } };
    }
  }
  yield* closeSlice();
  for (const m of marksAt.get(-1) ?? []) yield { name: m.kind.toUpperCase(), cat: 'mark', ph: 'i', s: 'g', ts: 0, pid: 1, tid: 0, args: { line: m.line, message: m.message } };
  for (const [key, o] of objOpen) yield { name: `${o.kind} ${o.id}`, cat: 'object', ph: 'X', ts: o.ts, dur: Math.max(1, end - o.ts), pid: 2, tid: objTracks.get(key)!, args: { ctx: o.ctx, id: o.id, end: 'still live at the end of the trace' } };
  for (const [d, o] of domOpen) yield { name: `domain ${d}`, cat: 'domain', ph: 'X', ts: o.ts, dur: Math.max(1, end - o.ts), pid: 3, tid: d, args: { ...o.args, end: 'still allocated at the end of the trace' } };

  function* objectEvents(e: LogEntry, ev: Record<string, unknown>, type: string): Generator<TraceEvent> {
    const ctx = ev.ctx;
    if (typeof ctx !== 'number') return;
    const track = function* (id: number): Generator<TraceEvent, number> {
      const key = `${ctx}:${id}`;
      let tid = objTracks.get(key);
      if (tid === undefined) {
        tid = objTracks.size + 1;
        objTracks.set(key, tid);
        yield { name: 'thread_name', ph: 'M', pid: 2, tid, args: { name: `ctx ${ctx} object ${id}` } };
        yield { name: 'thread_sort_index', ph: 'M', pid: 2, tid, args: { sort_index: ctx * 1_000_000 + id } };
      }
      return tid;
    };
    if (type === 'ObjectAllocated' && typeof ev.id === 'number') {
      yield* track(ev.id);
      objOpen.set(`${ctx}:${ev.id}`, { ts: e.n, kind: String(ev.kind), id: ev.id, ctx });
      live++;
      yield { name: 'live objects', ph: 'C', ts: e.n, pid: 4, tid: 0, args: { objects: live } };
      return;
    }
    if ((type === 'ObjectDestroyed' || type === 'ObjectAborted') && typeof ev.id === 'number') {
      const key = `${ctx}:${ev.id}`;
      const o = objOpen.get(key);
      const tid = yield* track(ev.id);
      if (o !== undefined) {
        yield { name: `${o.kind} ${o.id}`, cat: 'object', ph: 'X', ts: o.ts, dur: Math.max(1, e.n - o.ts + 1), pid: 2, tid, args: { ctx, id: o.id, end: type === 'ObjectDestroyed' ? 'destroyed' : 'aborted', endLine: e.line } };
        objOpen.delete(key);
        live--;
        yield { name: 'live objects', ph: 'C', ts: e.n, pid: 4, tid: 0, args: { objects: live } };
      }
      return;
    }
    const seen = new Set<number>();
    for (const f of OBJECT_FIELDS) {
      const id = ev[f];
      if (typeof id !== 'number' || seen.has(id) || !objOpen.has(`${ctx}:${id}`)) continue;
      seen.add(id);
      const tid = yield* track(id);
      yield { name: type, cat: 'object', ph: 'i', s: 't', ts: e.n, pid: 2, tid, args: { line: e.line, field: f, event: toJson(ev) } };
    }
  }

  function* domainEvents(e: LogEntry, ev: Record<string, unknown>, type: string): Generator<TraceEvent> {
    const d = ev.domain;
    if (typeof d !== 'number') return;
    if (!domTracks.has(d)) {
      domTracks.add(d);
      yield { name: 'thread_name', ph: 'M', pid: 3, tid: d, args: { name: `domain ${d}` } };
    }
    if (type === 'DomainAllocated') {
      domOpen.set(d, { ts: e.n, args: { kind: toJson(ev.kind), driver: toJson(ev.driver), hwpt: toJson(ev.hwpt) } });
      return;
    }
    if (type === 'DomainFreed') {
      const o = domOpen.get(d);
      if (o !== undefined) {
        yield { name: `domain ${d}`, cat: 'domain', ph: 'X', ts: o.ts, dur: Math.max(1, e.n - o.ts + 1), pid: 3, tid: d, args: { ...o.args, end: 'freed', endLine: e.line } };
        domOpen.delete(d);
      }
      return;
    }
    yield { name: type, cat: 'domain', ph: 'i', s: 't', ts: e.n, pid: 3, tid: d, args: { line: e.line, event: toJson(ev) } };
  }
}
