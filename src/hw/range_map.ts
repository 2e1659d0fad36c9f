/**
 * Run-length map from page index to a small non-negative count: the model's
 * replacement for per-page state the kernel keeps implicitly (how many
 * holders pin each PFN index of an `iopt_pages`: the `access_itree` users,
 * domain-filled areas via `domains_itree`, `npinned` accounting in pages.c).
 *
 * Stored as sorted, disjoint, maximal runs `[start, last] -> count` with
 * count > 0; zero-count ranges are simply absent, and adjacent runs with equal
 * counts are always merged, so the representation of a given function is
 * unique (tests compare it with a naive model run for run).  Memory is
 * O(number of runs): pinning a 1 TiB mapping once is one run.
 *
 * Index type: `number`.  A 2^64-byte IOVA/VA space with 4 KiB pages has 2^52
 * page indexes, well inside Number.MAX_SAFE_INTEGER (2^53 - 1), and number
 * arithmetic is much cheaper than bigint on these hot paths.  Indexes are
 * validated to be safe non-negative integers (0..MAX_PAGE_INDEX); `index + 1`
 * of the maximum is 2^53, still exact, but we never store it.
 *
 * Runs live in an IntervalTree keyed by number (an AVL tree, O(log n) per
 * lookup/insert/remove) rather than a sorted array: splice would make each
 * split/merge O(n) memmove, which for 100k runs is ~100k element moves per
 * pin operation.  Cost of `add` is O((k + 1) log n) for k runs touched.
 */
import { IntervalTree, type IntervalNode } from './interval_tree.js';

/** Largest accepted index (2^53 - 1). */
export const MAX_PAGE_INDEX: number = Number.MAX_SAFE_INTEGER;

export interface Run {
  readonly start: number;
  readonly last: number;
  readonly count: number;
}

function checkIndexRange(start: number, last: number): void {
  if (!Number.isSafeInteger(start) || start < 0) throw new RangeError(`bad start index ${start}`);
  if (!Number.isSafeInteger(last) || last < 0) throw new RangeError(`bad last index ${last}`);
  if (start > last) throw new RangeError(`empty index range [${start}, ${last}]`);
}

export class RangeMap {
  private readonly tree = new IntervalTree<number, number>();
  /** Number of indexes with a non-zero count; kept incrementally for O(1) totals. */
  private nonZero = 0;

  /** Number of stored runs (the memory cost). */
  get runCount(): number {
    return this.tree.size;
  }

  get isEmpty(): boolean {
    return this.tree.isEmpty;
  }

  /** Count at `index` (0 when absent).  O(log n). */
  get(index: number): number {
    checkIndexRange(index, index);
    return this.tree.iterFirst(index, index)?.value ?? 0;
  }

  /**
   * Add `delta` (any safe integer, may be negative) to the count of every
   * index in [start, last].  Atomic: if any resulting count would be negative
   * or exceed MAX_SAFE_INTEGER it throws RangeError and changes nothing (a
   * pin-count underflow is a model bug, like the kernel's WARN_ONs).
   * O((k + 1) log n), k = runs intersecting [start, last].
   */
  add(start: number, last: number, delta: number): void {
    checkIndexRange(start, last);
    if (!Number.isSafeInteger(delta)) throw new RangeError(`bad delta ${delta}`);
    if (delta === 0) return;
    const tree = this.tree;
    const hit: IntervalNode<number, number>[] = [];
    for (let n = tree.iterFirst(start, last); n !== undefined; n = tree.iterNext(n, start, last)) hit.push(n);

    // Validation pass, before any mutation.
    let cursor = start;
    for (const n of hit) {
      if (n.start > cursor && delta < 0) {
        throw new RangeError(`count underflow: index ${cursor} has count 0, delta ${delta}`);
      }
      const c = n.value + delta;
      if (c < 0) throw new RangeError(`count underflow at [${n.start}, ${n.last}]: ${n.value} + ${delta}`);
      if (!Number.isSafeInteger(c)) throw new RangeError(`count overflow at [${n.start}, ${n.last}]`);
      cursor = n.last + 1;
    }
    if (cursor <= last && delta < 0) {
      throw new RangeError(`count underflow: index ${cursor} has count 0, delta ${delta}`);
    }

    // One run that is exactly [start, last], whose count stays positive and differs from both neighbours' (so no
    // merge is due): the count changes in place, with no tree surgery. This is pinning or unpinning a run again.
    if (hit.length === 1) {
      const n = hit[0]!, c = n.value + delta;
      if (n.start === start && n.last === last && c > 0) {
        const l = start > 0 ? tree.iterFirst(start - 1, start - 1) : undefined;
        const r = last < MAX_PAGE_INDEX ? tree.iterFirst(last + 1, last + 1) : undefined;
        if (l?.value !== c && r?.value !== c) {
          n.value = c;
          return;
        }
      }
    }

    // Build the replacement runs for the affected stretch, in order.
    const pieces: Run[] = [];
    const left = start > 0 ? tree.iterFirst(start - 1, start - 1) : undefined;
    if (left !== undefined && left.last === start - 1) {
      tree.remove(left); // re-added below, possibly merged with the first new piece
      pieces.push({ start: left.start, last: left.last, count: left.value });
    }
    cursor = start;
    for (const n of hit) {
      if (n.start < start) pieces.push({ start: n.start, last: start - 1, count: n.value });
      if (n.start > cursor) {
        pieces.push({ start: cursor, last: n.start - 1, count: delta });
        this.nonZero += n.start - cursor;
      }
      const s = n.start > start ? n.start : start;
      const l = n.last < last ? n.last : last;
      const c = n.value + delta;
      pieces.push({ start: s, last: l, count: c });
      if (c === 0) this.nonZero -= l - s + 1;
      if (n.last > last) pieces.push({ start: last + 1, last: n.last, count: n.value });
      cursor = n.last + 1;
      tree.remove(n);
    }
    if (cursor <= last) {
      pieces.push({ start: cursor, last, count: delta });
      this.nonZero += last - cursor + 1;
    }
    const right = last < MAX_PAGE_INDEX ? tree.iterFirst(last + 1, last + 1) : undefined;
    if (right !== undefined && right.start === last + 1) {
      tree.remove(right);
      pieces.push({ start: right.start, last: right.last, count: right.value });
    }

    // Re-insert, dropping zero runs and merging equal adjacent ones.
    let pend: Run | undefined;
    for (const p of pieces) {
      if (p.count === 0) continue;
      if (pend !== undefined && pend.count === p.count && pend.last + 1 === p.start) {
        pend = { start: pend.start, last: p.last, count: p.count };
        continue;
      }
      if (pend !== undefined) tree.insert(pend.start, pend.last, pend.count);
      pend = p;
    }
    if (pend !== undefined) tree.insert(pend.start, pend.last, pend.count);
  }

  /**
   * The runs intersecting [start, last], clipped to it, ascending.  Gaps are
   * zero counts.  Throws if the map is modified during iteration.
   */
  *runs(start = 0, last: number = MAX_PAGE_INDEX): Generator<Run, void, undefined> {
    checkIndexRange(start, last);
    for (const n of this.tree.intersecting(start, last)) {
      yield {
        start: n.start > start ? n.start : start,
        last: n.last < last ? n.last : last,
        count: n.value,
      };
    }
  }

  /**
   * Sum of counts over [start, last] (count x pages).  A bigint because
   * 2^52 pages x count can exceed 2^53.  O(log n + k).
   */
  sum(start = 0, last: number = MAX_PAGE_INDEX): bigint {
    let total = 0n;
    for (const r of this.runs(start, last)) total += BigInt(r.count) * BigInt(r.last - r.start + 1);
    return total;
  }

  /**
   * Number of indexes in [start, last] with a non-zero count (e.g. pages
   * pinned at least once: `npinned`).  O(1) for the whole map, O(log n + k)
   * for a sub-range.
   */
  countNonZero(start?: number, last?: number): number {
    if (start === undefined && last === undefined) return this.nonZero;
    let total = 0;
    for (const r of this.runs(start ?? 0, last ?? MAX_PAGE_INDEX)) total += r.last - r.start + 1;
    return total;
  }

  /** True iff some index in [start, last] has a non-zero count.  O(log n). */
  anyNonZero(start: number, last: number): boolean {
    checkIndexRange(start, last);
    return this.tree.iterFirst(start, last) !== undefined;
  }

  /** An independent copy (for state snapshots).  O(n log n). */
  clone(): RangeMap {
    const c = new RangeMap();
    for (const r of this.runs()) {
      c.tree.insert(r.start, r.last, r.count);
      c.nonZero += r.last - r.start + 1;
    }
    return c;
  }

  /** Drop everything.  O(n). */
  clear(): void {
    this.tree.clear();
    this.nonZero = 0;
  }

  /** Verify the canonical form and the cached totals.  O(n); for tests. */
  checkInvariants(): void {
    this.tree.checkInvariants();
    let prev: Run | undefined;
    let nz = 0;
    for (const r of this.runs()) {
      if (r.count <= 0) throw new Error(`non-positive run [${r.start}, ${r.last}] = ${r.count}`);
      if (prev !== undefined) {
        if (prev.last >= r.start) throw new Error(`overlapping runs at ${r.start}`);
        if (prev.last + 1 === r.start && prev.count === r.count) throw new Error(`unmerged runs at ${r.start}`);
      }
      nz += r.last - r.start + 1;
      prev = r;
    }
    if (nz !== this.nonZero) throw new Error(`nonZero cache ${this.nonZero} but runs cover ${nz}`);
  }
}

/**
 * Walks [start, last] over ascending, disjoint runs inside it: each run as `run`, and each stretch no run covers as
 * a gap (`run` undefined). The one place the model turns "the runs that hold something" into "the rest".
 */
export function* walkGaps<R extends { readonly start: number; readonly last: number }>(
  runs: Iterable<R>, start: number, last: number,
): Generator<{ start: number; last: number; run: R | undefined }> {
  let at = start;
  for (const r of runs) {
    if (r.start > at) yield { start: at, last: r.start - 1, run: undefined };
    yield { start: r.start, last: r.last, run: r };
    at = r.last + 1;
  }
  if (at <= last) yield { start: at, last, run: undefined };
}

/** The stretches of [start, last] that no run covers. */
export function gapsOf(runs: Iterable<{ readonly start: number; readonly last: number }>, start: number, last: number): { start: number; last: number }[] {
  const out: { start: number; last: number }[] = [];
  for (const w of walkGaps(runs, start, last)) if (w.run === undefined) out.push({ start: w.start, last: w.last });
  return out;
}

/** The runs of `m` over [start, last] with the holes included as count 0. */
export function* denseRuns(m: RangeMap | undefined, start: number, last: number): Generator<Run> {
  for (const w of walkGaps(m?.runs(start, last) ?? [], start, last)) yield w.run ?? { start: w.start, last: w.last, count: 0 };
}
