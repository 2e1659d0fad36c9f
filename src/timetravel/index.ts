/**
 * The time-travel index over a trace's event log (issue #7).
 *
 * Replaying a trace once gives the log (every domain event, numbered densely from 0) and, along the way, snapshots
 * of the state (`snapshotState`) taken every K entries or so. The state after any number of entries `p` is then
 * rebuilt by forking the nearest snapshot at or before `p` (`forkState`: copy-on-read, so a fork costs what the
 * entries folded into it touch, not the size of the state) and folding the entries in between (at most one
 * snapshot spacing) into it with `evolve`, exactly as the replay did (an entry whose `evolve` threw during the
 * replay throws again here, at the same point, and is skipped the same way).
 *
 * Positions and entry numbers: entry `n` is the n-th log entry; "the state at entry n" is the state after entry `n`
 * has been folded in, i.e. after `n + 1` entries (position `p = n + 1`). Entry `-1` names the initial state.
 *
 * Snapshot spacing. Snapshots sit at least K entries apart (K = `DEFAULT_K`) and also at least `weight ×
 * WEIGHT_FACTOR` entries apart, where the weight counts the items of the state (objects, areas, pages, domain
 * mappings, VMAs, fds). A snapshot costs memory (about 0.25 KiB per idle IOAS, whose empty tables are shared; more
 * per area or mapping) and, worse, garbage-collector work for as long as it lives, in proportion to its weight; with
 * the second rule the snapshots together weigh at most 1/WEIGHT_FACTOR items per log entry, however large the state
 * grows (a trace that keeps 2,000 IOASes alive, or 100,000 areas). The price is longer folds on such traces, in
 * proportion to the weight. Small states get a snapshot every K entries. The spacing depends only on the states, so
 * it is deterministic: loading a saved index puts the snapshots at the same entries.
 *
 * Both numbers are measured (`npm run bench`, BENCH_TT_SWEEP prints the alternatives) on the 1M-line object churn,
 * whose ~2,000 live IOASes make the weight rule decide: factor 8 gave 129 snapshots, folds of up to 15,900 entries
 * and a stateAt p99 of 30-63 ms on a loaded 2-core machine; factor 4 gives 255 snapshots (~115 MiB of heap), folds
 * of up to 7,800 entries, p99 15-19 ms, for 0.05-0.1x more index build time; factor 2 (490 snapshots, folds of up
 * to 4,000) did not lower the tail further (it is then the view and the collector, not the fold) and cost
 * 0.15-0.25x more build time, past the 1.5x budget of issue #7. K = 2048 (factor 4) gave 258 snapshots and the
 * same tail there (the weight rule decides), and would only add snapshots of small states elsewhere.
 *
 * The log is held encoded (codec.ts), in blocks of `BLOCK` entries decoded on demand, so an index costs about what
 * its file costs plus the snapshots. No wall clock and no randomness: the same trace gives the same index, byte for
 * byte.
 */
import { createHash } from 'node:crypto';
import type { LogEntry } from '../events/domain.js';
import { isPlainView, viewState } from '../projections/snapshot.js';
import { evolve, forkState, initialState, snapshotState, type State } from '../projections/state.js';
import { Replayer, type ReplayOptions } from '../replay/engine.js';
import { Dictionaries } from './codec.js';
import { toJson, toJsonShared, type Json } from './json.js';

/** Minimum distance between snapshots, in log entries (measured: bench/timetravel.ts). */
export const DEFAULT_K = 4096;
/** Snapshots are also at least `weight × WEIGHT_FACTOR` entries apart (see above; measured likewise). */
export const WEIGHT_FACTOR = 4;
/** Log entries per encoded block. */
export const BLOCK = 1024;
/** Decoded blocks kept in memory. */
const BLOCK_CACHE = 16;
/** Views kept in memory (the web page and the debugger go back and forth). */
const VIEW_CACHE = 2;

export type MarkKind = 'divergence' | 'invariant' | 'internal' | 'trace-error';
/** Where something went wrong: a divergence, a violated invariant, an internal model error, a trace error. */
export interface Mark {
  readonly kind: MarkKind;
  /** The log entry it belongs to: the `Diverged`/`InvariantViolated` entry, or the last entry before the error. */
  readonly n: number;
  readonly line: number;
  readonly message: string;
}

export interface IndexMeta {
  readonly source: string | null;
  /** The trace this index was built from: its size and sha256, so a stale index is never used. */
  readonly traceSize: number | null;
  readonly traceSha256: string | null;
  /** sha256 of the final view: a model that folds the log differently than the one that built the index shows here. */
  readonly finalViewSha256: string;
}

export interface Checkpoint {
  readonly p: number;
  readonly state: State;
}

export class StaleIndexError extends Error {}

/** How many items a state holds: the snapshot spacing rule (see the file comment). */
export function stateWeight(s: State): number {
  let w = s.fds.size + s.pages.size + s.domains.size + s.mm.vmas.length;
  for (const c of s.ctxs.values()) {
    w += c.objects.size;
    for (const o of c.objects.values()) w += o.ioas?.iopt.areaById.size ?? 0;
  }
  for (const d of s.domains.values()) w += d.map.size;
  return w;
}

/** Decides where snapshots go; the same sequence of states gives the same positions. */
export class CheckpointPolicy {
  private last = 0;
  private nextCheck: number;
  constructor(readonly k: number, readonly factor: number = WEIGHT_FACTOR) {
    this.nextCheck = k;
  }
  /** Whether to snapshot the state after `p` entries. */
  due(p: number, st: State): boolean {
    if (p < this.nextCheck) return false;
    const need = Math.max(this.k, Math.ceil(stateWeight(st) * this.factor));
    if (p - this.last >= need) {
      this.last = p;
      this.nextCheck = p + this.k;
      return true;
    }
    this.nextCheck = this.last + need;
    return false;
  }
}

/** Folds one entry as the replay did: an event the state could not take was reported then; its partial effect stays. */
export function foldEntry(st: State, e: LogEntry): void {
  try {
    evolve(st, e.ev);
  } catch {
    // An internal model error, recorded as a mark when the index was built.
  }
}

/** A view as plain JSON, copied: safe whatever happens to the state afterwards. */
export const viewOf = (st: State): Json => toJson(viewState(st));
/** A view as plain JSON that may share parts with the state: only for states that are never folded into again. */
const frozenViewOf = (st: State): Json => toJsonShared(viewState(st), isPlainView);
export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The label of a trace line ("ioctl IOMMU_IOAS_MAP", "mmap", "header") and its note. */
export function lineLabel(text: string, isHeader: boolean): { label: string; note: string | undefined } {
  if (text.trim() === '') return { label: '', note: undefined };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { label: isHeader ? 'header' : '(malformed JSON)', note: undefined };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { label: isHeader ? 'header' : '(not an object)', note: undefined };
  const o = raw as Record<string, unknown>;
  const note = typeof o.note === 'string' ? o.note : undefined;
  if (isHeader) return { label: 'header', note };
  const op = typeof o.op === 'string' ? o.op : '(no op)';
  const cmd = typeof o.cmd === 'string' || typeof o.cmd === 'number' ? ` ${String(o.cmd)}` : '';
  return { label: `${op}${cmd}`, note };
}

/** The text of trace lines, on demand (the trace file, or text in memory): labels and notes are read from it lazily. */
export interface LineSource {
  /** Line `lineNo` (1-based), or undefined when it is not available. */
  line(lineNo: number): string | undefined;
}

/**
 * The log, encoded (codec.ts) in blocks of BLOCK entries, decoded on demand: millions of small entry objects would
 * cost more in garbage collection, while the replay runs, than encoding them does.
 */
export interface EncodedLog {
  readonly dict: Dictionaries;
  readonly blocks: readonly Uint8Array[];
  /** The trace line of the first entry of each block. */
  readonly blockFirstLine: readonly number[];
}

/** Encodes entries as they come, a block at a time. */
export class LogEncoder implements EncodedLog {
  readonly dict = new Dictionaries();
  readonly blocks: Uint8Array[] = [];
  readonly blockFirstLine: number[] = [];
  private inBlock = 0;
  private prevLine = 0;
  count = 0;

  add(e: LogEntry): void {
    if (this.inBlock === 0) {
      this.blockFirstLine.push(e.line);
      this.prevLine = 0;
    }
    this.dict.add(e, this.prevLine);
    this.prevLine = e.line;
    this.count++;
    if (++this.inBlock === BLOCK) this.flush();
  }

  flush(): void {
    if (this.inBlock === 0) return;
    this.blocks.push(this.dict.takeBlock());
    this.inBlock = 0;
  }
}

export interface IndexParts {
  readonly k: number;
  /** The weight factor of the spacing rule (see the file comment). */
  readonly factor: number;
  readonly count: number;
  /** Trace lines fed (the last line number). */
  readonly lines: number;
  /** The line number of the trace header (the first non-blank line). */
  readonly headerLine: number;
  readonly marks: readonly Mark[];
  readonly meta: IndexMeta;
  /** Where each 1 MiB chunk of the trace begins: [first line starting in it, its byte offset], for LineSources. */
  readonly chunks: readonly (readonly [number, number])[];
}

/**
 * An index in memory: the log, the snapshots, the marks. Queries go through `entry`, `entries`, `stateAfter` and
 * `viewAt`; see queries.ts for the rest.
 */
export class TraceIndex implements IndexParts {
  readonly k: number;
  readonly factor: number;
  readonly count: number;
  readonly lines: number;
  readonly headerLine: number;
  readonly marks: readonly Mark[];
  readonly meta: IndexMeta;
  readonly chunks: readonly (readonly [number, number])[];
  /** Where labels and notes come from; settable, since the trace may be found after the index is loaded. */
  lineSource: LineSource | undefined;
  private readonly blockCache = new Map<number, readonly LogEntry[]>();
  private readonly viewCache = new Map<number, Json>();
  private readonly labelCache = new Map<number, { label: string; note: string | undefined }>();

  constructor(parts: IndexParts, private readonly log: EncodedLog, readonly checkpoints: readonly Checkpoint[], lineSource?: LineSource) {
    this.k = parts.k;
    this.factor = parts.factor;
    this.count = parts.count;
    this.lines = parts.lines;
    this.headerLine = parts.headerLine;
    this.marks = parts.marks;
    this.meta = parts.meta;
    this.chunks = parts.chunks;
    this.lineSource = lineSource;
  }

  get blockCount(): number {
    return Math.ceil(this.count / BLOCK);
  }

  /** The entries of block `b` (BLOCK entries from b × BLOCK), decoded; the latest ones are kept. */
  block(b: number, cache = true): readonly LogEntry[] {
    if (b < 0 || b >= this.blockCount) throw new RangeError(`no block ${b}`);
    const log = this.log;
    const hit = this.blockCache.get(b);
    if (hit !== undefined) {
      this.blockCache.delete(b);
      this.blockCache.set(b, hit);
      return hit;
    }
    const entries = log.dict.decodeBlock(log.blocks[b]!, b * BLOCK, Math.min(BLOCK, this.count - b * BLOCK));
    if (cache) {
      this.blockCache.set(b, entries);
      if (this.blockCache.size > BLOCK_CACHE) this.blockCache.delete(this.blockCache.keys().next().value!);
    }
    return entries;
  }

  /** Log entry `n` (0 ≤ n < count). */
  entry(n: number): LogEntry {
    if (!Number.isInteger(n) || n < 0 || n >= this.count) throw new RangeError(`no log entry ${n} (the log has entries 0 to ${this.count - 1})`);
    return this.block(Math.floor(n / BLOCK))[n % BLOCK]!;
  }

  /** Entries `from` ≤ n < `to`, in order. A long scan does not evict the blocks that stepping uses. */
  *entries(from = 0, to = this.count): Generator<LogEntry, void, void> {
    const a = Math.max(0, from), b = Math.min(this.count, to);
    if (a >= b) return;
    const cache = b - a <= BLOCK * 4;
    for (let blk = Math.floor(a / BLOCK); blk * BLOCK < b; blk++) {
      const es = this.block(blk, cache);
      const lo = Math.max(a - blk * BLOCK, 0), hi = Math.min(b - blk * BLOCK, es.length);
      for (let i = lo; i < hi; i++) yield es[i]!;
    }
  }

  /**
   * Folds entries [from, to) into `st`. The blocks it decodes are not kept: they die young, where kept blocks would
   * be copied by every scavenge while random queries evict them anyway.
   */
  foldInto(st: State, from: number, to: number): void {
    if (from >= to) return;
    for (let blk = Math.floor(from / BLOCK); blk * BLOCK < to; blk++) {
      const es = this.block(blk, false);
      const lo = Math.max(from - blk * BLOCK, 0), hi = Math.min(to - blk * BLOCK, es.length);
      for (let i = lo; i < hi; i++) foldEntry(st, es[i]!);
    }
  }

  /** The encoded log (what is saved). */
  encodedLog(): EncodedLog {
    return this.log;
  }

  /** The index of the last snapshot at or before position `p`. */
  checkpointAtOrBefore(p: number): number {
    let lo = 0, hi = this.checkpoints.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.checkpoints[mid]!.p <= p) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * The state after `p` entries (0 ≤ p ≤ count): a snapshot, or a fork of the snapshot before it with the entries
   * between folded in. Read-only: nothing folds into a state once it has been handed out (a view of it may share
   * its parts, and a fork shares what it has not touched with its snapshot; see `viewAt`), so there is no working
   * copy to step forward with: a step costs a fork, which is cheaper than the garbage collection a long-lived
   * working copy costs while queries jump around.
   */
  stateAfter(p: number): State {
    if (!Number.isInteger(p) || p < 0 || p > this.count) throw new RangeError(`no position ${p} (0 to ${this.count})`);
    const cp = this.checkpoints[this.checkpointAtOrBefore(p)]!;
    if (cp.p === p) return cp.state;
    const st = forkState(cp.state);
    this.foldInto(st, cp.p, p);
    return st;
  }

  /** A private copy of the state after `p` entries, for callers that fold on their own. */
  stateCopy(p: number): State {
    const cp = this.checkpoints[this.checkpointAtOrBefore(p)]!;
    const st = forkState(cp.state);
    this.foldInto(st, cp.p, p);
    return st;
  }

  /** The view (plain JSON, see json.ts) of the state at entry `n`: after entry n; -1 for the initial state. */
  viewAt(n: number): Json {
    this.checkEntry(n);
    const hit = this.viewCache.get(n);
    if (hit !== undefined) return hit;
    const v = frozenViewOf(this.stateAfter(n + 1));
    this.viewCache.set(n, v);
    if (this.viewCache.size > VIEW_CACHE) this.viewCache.delete(this.viewCache.keys().next().value!);
    return v;
  }

  /** Throws a RangeError for anything but -1 ≤ n < count. */
  checkEntry(n: number): void {
    if (!Number.isInteger(n) || n < -1 || n >= this.count)
      throw new RangeError(`no entry ${n}: entries run from 0 to ${this.count - 1} (-1 is the initial state)`);
  }

  /** The label ("ioctl IOMMU_IOAS_MAP") and note of trace line `line` ('' when the trace text is not at hand). */
  lineInfo(line: number): { line: number; label: string; note: string | undefined } {
    let hit = this.labelCache.get(line);
    if (hit === undefined) {
      const text = this.lineSource?.line(line);
      hit = text === undefined ? { label: '', note: undefined } : lineLabel(text, line === this.headerLine);
      this.labelCache.set(line, hit);
      if (this.labelCache.size > 4096) this.labelCache.delete(this.labelCache.keys().next().value!);
    }
    return { line, ...hit };
  }

  private firstLineOfBlock(b: number): number {
    return this.log.blockFirstLine[b]!;
  }

  /** The first entry whose trace line is ≥ `line` (count if none). */
  lowerBoundLine(line: number): number {
    let lo = 0, hi = this.blockCount;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.firstLineOfBlock(mid) < line) lo = mid + 1;
      else hi = mid;
    }
    // Block lo starts at or after `line`; the first match may sit at the end of the block before.
    const blk = Math.max(0, lo - 1);
    for (const e of this.entries(blk * BLOCK, Math.min(this.count, (lo + 1) * BLOCK))) if (e.line >= line) return e.n;
    return this.count;
  }

  /** The entries trace line `line` produced: [first, last], or undefined when it produced none. */
  entriesOfLine(line: number): { first: number; last: number } | undefined {
    const first = this.lowerBoundLine(line);
    if (first >= this.count || this.entry(first).line !== line) return undefined;
    return { first, last: this.lowerBoundLine(line + 1) - 1 };
  }
}

/** Builds an index while replaying a trace, line by line (the caller reads the file: index.ts does no I/O). */
export class IndexBuilder {
  private readonly log = new LogEncoder();
  private readonly marks: Mark[] = [];
  private readonly checkpoints: Checkpoint[] = [{ p: 0, state: initialState() }];
  private readonly policy: CheckpointPolicy;
  private readonly r: Replayer;
  private headerLine = 0;
  private maxLine = 0;
  private done = false;

  /** `replay`: replay with invariant checks, or under a check counterexample's schedule (the log then holds them). */
  constructor(readonly k = DEFAULT_K, readonly factor = WEIGHT_FACTOR, replay: ReplayOptions = {}) {
    this.policy = new CheckpointPolicy(k, factor);
    const r: Replayer = new Replayer((e) => {
      // r.st is the state after e.n entries: the sink runs before the entry is folded in.
      if (this.policy.due(e.n, r.st)) this.checkpoints.push({ p: e.n, state: snapshotState(r.st) });
      this.log.add(e);
      const type = e.ev.type as string;
      if (type === 'Diverged' || type === 'InvariantViolated') this.marks.push(markOf(e));
    }, undefined, replay);
    this.r = r;
  }

  /** Feeds trace line `lineNo` (1-based, in order). */
  feedLine(text: string, lineNo: number): void {
    if (this.done) throw new Error('the index is already built');
    if (this.headerLine === 0 && text.trim() !== '') this.headerLine = lineNo;
    this.maxLine = lineNo;
    const e0 = this.r.errors.length, i0 = this.r.internal.length;
    this.r.feedLine(text, lineNo);
    this.markErrors(e0, i0);
  }

  /** Marks the trace errors and internal model errors the replayer reported since it had `e0` and `i0`. */
  private markErrors(e0: number, i0: number): void {
    const { errors, internal } = this.r;
    if (errors.length !== e0 || internal.length !== i0) {
      for (let i = e0; i < errors.length; i++) {
        const t = errors[i]!;
        this.marks.push({ kind: 'trace-error', n: this.r.eventCount - 1, line: t.line, message: t.path ? `${t.path}: ${t.message}` : t.message });
      }
      for (let i = i0; i < internal.length; i++) {
        const t = internal[i]!;
        this.marks.push({ kind: 'internal', n: this.r.eventCount - 1, line: t.line, message: t.message });
      }
    }
  }

  /** Ends the trace. `trace` names what was replayed, so a saved index can be checked against it. */
  finish(trace: { size: number; sha256: string; chunks?: readonly (readonly [number, number])[] } | undefined = undefined, lineSource?: LineSource): TraceIndex {
    if (this.done) throw new Error('the index is already built');
    const e0 = this.r.errors.length, i0 = this.r.internal.length;
    this.r.finish(); // under a schedule: the steps still to run
    this.markErrors(e0, i0);
    this.done = true;
    if (this.headerLine === 0) this.marks.push({ kind: 'trace-error', n: -1, line: 1, message: 'empty trace: line 1 must be the header' });
    const count = this.r.eventCount;
    this.log.flush();
    const finalState = this.r.st;
    if (this.checkpoints[this.checkpoints.length - 1]!.p !== count) this.checkpoints.push({ p: count, state: finalState });
    this.marks.sort((a, b) => a.n - b.n || a.line - b.line);
    const meta: IndexMeta = {
      source: this.r.header.source ?? null, traceSize: trace?.size ?? null, traceSha256: trace?.sha256 ?? null,
      finalViewSha256: sha256(JSON.stringify(viewOf(finalState))),
    };
    return new TraceIndex(
      { k: this.k, factor: this.factor, count, lines: this.maxLine, headerLine: this.headerLine || 1, marks: this.marks, meta, chunks: trace?.chunks ?? [] },
      this.log, this.checkpoints, lineSource,
    );
  }
}

function markOf(e: LogEntry): Mark {
  const ev = e.ev as unknown as Record<string, unknown>;
  if (ev.type === 'Diverged')
    return { kind: 'divergence', n: e.n, line: e.line, message: `${String(ev.field)}: observed ${String(ev.observed)}, predicted ${String(ev.predicted)} (why: ${String(ev.why)})` };
  const what = typeof ev.message === 'string' ? ev.message : typeof ev.why === 'string' ? ev.why : JSON.stringify(toJson(ev));
  return { kind: 'invariant', n: e.n, line: e.line, message: what };
}

/** An index of a trace held in memory (tests, stdin). */
export function indexText(text: string, k = DEFAULT_K, factor = WEIGHT_FACTOR): TraceIndex {
  const b = new IndexBuilder(k, factor);
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((l, i) => b.feedLine(l, i + 1));
  return b.finish({ size: Buffer.byteLength(text), sha256: sha256(text) }, { line: (n) => lines[n - 1] });
}

/** Saved index data: everything but the snapshots (index.ts does no I/O: store.ts reads and writes it). */
export interface IndexData extends IndexParts, EncodedLog {}

/**
 * Rebuilds the snapshots of saved index data by folding its log: a snapshot cannot be restored from its view (a
 * view drops what it does not show: the id allocator's free list, devices, accesses, the mm's frames), so the
 * saved index holds the log, and loading it costs one fold (`evolve` only: no decoding of the trace, no handlers).
 * Throws StaleIndexError when the fold does not reach the state the index was built with.
 */
export function rebuildCheckpoints(data: IndexData): TraceIndex {
  const policy = new CheckpointPolicy(data.k, data.factor);
  const checkpoints: Checkpoint[] = [{ p: 0, state: initialState() }];
  const st = initialState();
  let p = 0;
  for (let b = 0; b < data.blocks.length; b++) {
    for (const e of data.dict.decodeBlock(data.blocks[b]!, b * BLOCK, Math.min(BLOCK, data.count - b * BLOCK))) {
      if (policy.due(p, st)) checkpoints.push({ p, state: snapshotState(st) });
      foldEntry(st, e);
      p++;
    }
  }
  if (p !== data.count) throw new Error(`the index says ${data.count} entries but holds ${p}`);
  if (checkpoints[checkpoints.length - 1]!.p !== p) checkpoints.push({ p, state: st });
  const got = sha256(JSON.stringify(viewOf(st)));
  if (got !== data.meta.finalViewSha256)
    throw new StaleIndexError('the model folds this index\'s log to a different state than the model that built it (rebuild the index)');
  return new TraceIndex(data, data, checkpoints);
}

/** An index of a model event log (the JSONL of `iotrail replay --log`): the log is given, nothing is replayed. */
export function indexEntries(source: Iterable<LogEntry>, k = DEFAULT_K, factor = WEIGHT_FACTOR): TraceIndex {
  const log = new LogEncoder(), marks: Mark[] = [];
  const policy = new CheckpointPolicy(k, factor);
  const checkpoints: Checkpoint[] = [{ p: 0, state: initialState() }];
  const st = initialState();
  let lines = 0;
  for (const e0 of source) {
    const e: LogEntry = { ...e0, n: log.count };
    if (policy.due(e.n, st)) checkpoints.push({ p: e.n, state: snapshotState(st) });
    try {
      evolve(st, e.ev);
    } catch (err) {
      marks.push({ kind: 'internal', n: e.n, line: e.line, message: `internal model error: ${(err as Error).message}` });
    }
    log.add(e);
    const type = e.ev.type as string;
    if (type === 'Diverged' || type === 'InvariantViolated') marks.push(markOf(e));
    lines = Math.max(lines, e.line);
  }
  log.flush();
  const count = log.count;
  if (checkpoints[checkpoints.length - 1]!.p !== count) checkpoints.push({ p: count, state: st });
  const meta: IndexMeta = { source: null, traceSize: null, traceSha256: null, finalViewSha256: sha256(JSON.stringify(viewOf(st))) };
  return new TraceIndex({ k, factor, count, lines, headerLine: 1, marks, meta, chunks: [] }, log, checkpoints);
}
