/**
 * A run-length map from page index to a value that advances with the index: the shape of every table of the
 * memory model (a page table maps a run of virtual pages to a run of frames, a file's page cache a run of file
 * pages to a run of frames, the frame table a run of frames to their owner and `page->index`). A run
 * `[start, last] -> v` means index `start + d` maps to `shift(v, d)`; faulting in 1 TiB of one VMA is one run.
 *
 * Runs are disjoint, and two adjacent runs are merged whenever the left one continues into the right one
 * (`eq(shift(left, len), right)`), so a given function has exactly one representation: cloning, replaying the
 * log and the naive model in the tests all agree run for run. Runs live in the AVL `IntervalTree` (number keys,
 * range_map.ts's reasoning): O(log n) lookups, O((k + 1) log n) for an update touching k runs.
 */
import { IntervalTree } from './interval_tree.js';
import { MAX_PAGE_INDEX } from './range_map.js';

export interface RunOps<V> {
  /** The value `by` indexes further along a run that starts with `v`. */
  shift(v: V, by: number): V;
  eq(a: V, b: V): boolean;
}
export interface RunEntry<V> {
  readonly start: number;
  readonly last: number;
  /** The value at `start`. */
  readonly value: V;
}

/** Page index → frame (or any number advancing by one per page). */
export const LINEAR: RunOps<number> = { shift: (v, by) => v + by, eq: (a, b) => a === b };

function checkRange(start: number, last: number): void {
  if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(last) || last < start || last > MAX_PAGE_INDEX)
    throw new RangeError(`bad index range [${start}, ${last}]`);
}

export class RunMap<V> {
  private readonly tree = new IntervalTree<V, number>();
  constructor(private readonly ops: RunOps<V>) {}

  /** Number of stored runs (the memory cost). */
  get runCount(): number {
    return this.tree.size;
  }
  get isEmpty(): boolean {
    return this.tree.isEmpty;
  }

  get(index: number): V | undefined {
    checkRange(index, index);
    const n = this.tree.iterFirst(index, index);
    return n === undefined ? undefined : this.ops.shift(n.value, index - n.start);
  }

  /** True iff some index of [start, last] is mapped. O(log n). */
  any(start: number, last: number): boolean {
    checkRange(start, last);
    return this.tree.iterFirst(start, last) !== undefined;
  }

  /** The runs intersecting [start, last], clipped to it (values shifted to the clipped start), ascending. */
  *runs(start = 0, last: number = MAX_PAGE_INDEX): Generator<RunEntry<V>, void, undefined> {
    checkRange(start, last);
    for (const n of this.tree.intersecting(start, last)) {
      const s = n.start > start ? n.start : start;
      yield { start: s, last: n.last < last ? n.last : last, value: this.ops.shift(n.value, s - n.start) };
    }
  }

  /** The runs of [start, last] and the gaps between them, ascending, covering [start, last] exactly. */
  *cover(start: number, last: number): Generator<{ start: number; last: number; value: V | undefined }, void, undefined> {
    let at = start;
    for (const r of this.runs(start, last)) {
      if (r.start > at) yield { start: at, last: r.start - 1, value: undefined };
      yield r;
      at = r.last + 1;
    }
    if (at <= last) yield { start: at, last, value: undefined };
  }

  /** The lowest and highest mapped index, or undefined when empty. */
  extent(): { start: number; last: number } | undefined {
    const f = this.tree.first(), l = this.tree.last();
    // Runs are disjoint, so the run that starts last also ends last.
    return f === undefined || l === undefined ? undefined : { start: f.start, last: l.last };
  }

  /** Maps [start, last] from `value` on; every index of it must be unmapped (else RangeError, nothing changed). */
  insert(start: number, last: number, value: V): void {
    checkRange(start, last);
    if (this.tree.iterFirst(start, last) !== undefined) throw new RangeError(`[${start}, ${last}] is already mapped`);
    const { shift, eq } = this.ops;
    let s = start, l = last, v = value;
    const left = start > 0 ? this.tree.iterFirst(start - 1, start - 1) : undefined;
    if (left !== undefined && eq(shift(left.value, start - left.start), value)) {
      this.tree.remove(left);
      s = left.start;
      v = left.value;
    }
    const right = last < MAX_PAGE_INDEX ? this.tree.iterFirst(last + 1, last + 1) : undefined;
    if (right !== undefined && eq(shift(value, last + 1 - start), right.value)) {
      this.tree.remove(right);
      l = right.last;
    }
    this.tree.insert(s, l, v);
  }

  /** Unmaps [start, last] (splitting runs that straddle its edges); returns what it unmapped, clipped, ascending. */
  remove(start: number, last: number): RunEntry<V>[] {
    checkRange(start, last);
    const hit = [...this.tree.intersecting(start, last)];
    const removed: RunEntry<V>[] = [];
    const { shift } = this.ops;
    for (const n of hit) {
      this.tree.remove(n);
      const s = n.start > start ? n.start : start;
      const l = n.last < last ? n.last : last;
      removed.push({ start: s, last: l, value: shift(n.value, s - n.start) });
      if (n.start < start) this.tree.insert(n.start, start - 1, n.value);
      if (n.last > last) this.tree.insert(last + 1, n.last, shift(n.value, last + 1 - n.start));
    }
    return removed;
  }

  /** An independent copy (values are immutable and shared). */
  clone(): RunMap<V> {
    const c = new RunMap<V>(this.ops);
    for (const n of this.tree.inOrder()) c.tree.insert(n.start, n.last, n.value);
    return c;
  }

  /** Verify disjointness and maximal merging. O(n); for tests. */
  checkInvariants(): void {
    this.tree.checkInvariants();
    let prev: RunEntry<V> | undefined;
    for (const r of this.runs()) {
      if (prev !== undefined) {
        if (prev.last >= r.start) throw new Error(`overlapping runs at ${r.start}`);
        if (prev.last + 1 === r.start && this.ops.eq(this.ops.shift(prev.value, r.start - prev.start), r.value))
          throw new Error(`unmerged runs at ${r.start}`);
      }
      prev = r;
    }
  }
}
