/**
 * Span iteration over interval trees: a transliteration of the kernel's
 * `interval_tree_span_iter` (lib/interval_tree.c, CONFIG_INTERVAL_TREE_SPAN_ITER)
 * and of iommufd's `interval_tree_double_span_iter` (double_span.h, pages.c).
 *
 * A span iteration walks [first, last] and reports maximal alternating
 * "used" spans (union of overlapping *or adjacent* nodes, clipped to the
 * window) and "hole" spans (no node).  It is greedy: two used (or two hole)
 * spans never follow each other.  `iopt_alloc_iova` is built on these: holes
 * of reserved ∪ areas inside each used span of the allowed tree.
 *
 * The iterator classes keep the kernel's state machine field for field
 * (nodes[0]/nodes[1], first_index/last_index, the start/last union, is_hole /
 * is_used with -1 = done) so the edge behaviour matches exactly, including
 * windows touching 0 and 2^64-1: no `+1`/`-1` is ever evaluated where the
 * kernel's would wrap (the kernel never wraps there either; see the comments).
 *
 * The trees must not be modified while an iteration is live (the kernel holds
 * iova_rwsem / pages->mutex); the generators check `modCount` and throw.
 */
import type { IntervalKey, IntervalNode, IntervalTree } from './interval_tree.js';

/** One span of a single-tree walk: [start, last] inclusive. */
export interface Span<K extends IntervalKey = bigint> {
  readonly isHole: boolean;
  readonly start: K;
  readonly last: K;
}

/**
 * One span of a double-tree walk.  `isUsed` mirrors the kernel: 0 = hole of
 * the union, 1 = used by the first tree (which takes priority where both
 * overlap), 2 = used by the second tree and not the first.
 */
export type DoubleSpan<K extends IntervalKey = bigint> =
  | { readonly isHole: true; readonly isUsed: 0; readonly start: K; readonly last: K }
  | { readonly isHole: false; readonly isUsed: 1 | 2; readonly start: K; readonly last: K };

function inc<K extends IntervalKey>(k: K): K {
  return (typeof k === 'bigint' ? k + 1n : (k as number) + 1) as K;
}
function dec<K extends IntervalKey>(k: K): K {
  return (typeof k === 'bigint' ? k - 1n : (k as number) - 1) as K;
}
function min<K extends IntervalKey>(a: K, b: K): K {
  return a < b ? a : b;
}

type N<K extends IntervalKey> = IntervalNode<unknown, K>;

/** `struct interval_tree_span_iter` with its first/next/advance operations. */
export class SpanIterator<K extends IntervalKey = bigint> {
  /** nodes[0]: node ending the current used span; nodes[1]: first node of the next used span. */
  private node0: N<K> | undefined;
  private node1: N<K> | undefined;
  firstIndex!: K;
  lastIndex!: K;
  /** start_hole / start_used (a union in the kernel). */
  start!: K;
  /** last_hole / last_used. */
  last!: K;
  /** 1 = hole, 0 = used, -1 = done (the kernel's `is_hole`). */
  isHole: -1 | 0 | 1 = -1;

  constructor(private readonly tree: IntervalTree<unknown, K>) {}

  get done(): boolean {
    return this.isHole === -1;
  }

  /**
   * `interval_tree_span_iter_next_gap()`: roll node1 into node0 by advancing
   * node1 past every node contiguous with (overlapping or touching) the span
   * it starts.  node0 ends up as the node with the greatest `last` of the
   * span; node1 is the first node of the next used span, or undefined.
   */
  private nextGap(): void {
    // The tree's gap augmentation finds the span's end in O(log n); the kernel walks it node by node. Nodes past
    // the window's end are outside the walk, as `iterNext` with the window would have it.
    const { end, next } = this.tree.spanFrom(this.node1 as N<K>);
    this.node0 = end;
    this.node1 = next !== undefined && next.start <= this.lastIndex ? next : undefined;
  }

  /** nodes[0], which the state machine guarantees is set where this is called. */
  private spanEnd(): N<K> {
    if (this.node0 === undefined) throw new Error('span iterator: nodes[0] unexpectedly NULL');
    return this.node0;
  }

  /** `interval_tree_span_iter_first()`. */
  first(firstIndex: K, lastIndex: K): this {
    if (firstIndex > lastIndex) throw new RangeError(`empty span window [${firstIndex}, ${lastIndex}]`);
    this.firstIndex = firstIndex;
    this.lastIndex = lastIndex;
    this.node0 = undefined;
    this.node1 = this.tree.iterFirst(firstIndex, lastIndex);
    if (this.node1 === undefined) {
      // No nodes intersect the window: the whole window is one hole.
      this.start = firstIndex;
      this.last = lastIndex;
      this.isHole = 1;
      return this;
    }
    if (this.node1.start > firstIndex) {
      // Leading hole; node1.start > firstIndex >= 0 so start - 1 cannot underflow.
      this.start = firstIndex;
      this.last = dec(this.node1.start);
      this.isHole = 1;
      this.nextGap();
      return this;
    }
    // Starting inside a used span.
    this.start = firstIndex;
    this.isHole = 0;
    this.nextGap();
    this.last = this.spanEnd().last;
    if (this.last >= lastIndex) {
      this.last = lastIndex;
      this.node0 = undefined;
      this.node1 = undefined;
    }
    return this;
  }

  /** `interval_tree_span_iter_next()`. */
  next(): this {
    if (this.node0 === undefined && this.node1 === undefined) {
      this.isHole = -1;
      return this;
    }
    if (this.isHole === 1) {
      // A hole is only reported with node0 set; it ends right before node0's span.
      this.start = inc(this.last);
      this.last = this.spanEnd().last;
      if (this.last >= this.lastIndex) {
        this.last = this.lastIndex;
        this.node0 = undefined;
        this.node1 = undefined;
      }
      this.isHole = 0;
      return this;
    }
    const n0 = this.spanEnd();
    if (this.node1 === undefined) {
      // Trailing hole.  n0.last < lastIndex here (else the used span would
      // have been clipped and both nodes cleared), so +1 cannot overflow.
      this.start = inc(n0.last);
      this.last = this.lastIndex;
      this.node0 = undefined;
      this.isHole = 1;
      return this;
    }
    // Interior hole between node0 and node1 (node1.start > node0.last + 1).
    this.start = inc(n0.last);
    this.last = dec(this.node1.start);
    this.isHole = 1;
    this.nextGap();
    return this;
  }

  /**
   * `interval_tree_span_iter_advance()`: move the iteration point to
   * `newIndex` (>= the current span start), reusing the current state when
   * possible.  Used by the double-span iterator.
   */
  advance(newIndex: K): this {
    if (this.isHole === -1) return this;
    this.firstIndex = newIndex;
    if (newIndex > this.lastIndex) {
      this.isHole = -1;
      return this;
    }
    // The kernel relies on the start_hole/start_used union aliasing here.
    if (this.start <= newIndex && newIndex <= this.last) {
      this.start = newIndex;
      return this;
    }
    // newIndex > this.last here, and this.last < newIndex <= lastIndex, so no wrap.
    if (newIndex === inc(this.last)) return this.next();
    return this.first(newIndex, this.lastIndex);
  }
}

/** `struct interval_tree_double_span_iter`: spans of the union of two trees. */
export class DoubleSpanIterator<K extends IntervalKey = bigint> {
  private readonly spans: readonly [SpanIterator<K>, SpanIterator<K>];
  start!: K;
  last!: K;
  /** 0 = hole, 1 = used by tree A, 2 = used by tree B, -1 = done. */
  isUsed: -1 | 0 | 1 | 2 = -1;

  constructor(treeA: IntervalTree<unknown, K>, treeB: IntervalTree<unknown, K>) {
    this.spans = [new SpanIterator(treeA), new SpanIterator(treeB)];
  }

  get done(): boolean {
    return this.isUsed === -1;
  }

  /**
   * `interval_tree_double_span_iter_update()`: tree A's used span wins
   * outright; tree B's used span is cut where A's hole ends; a hole of the
   * union ends at the earlier of the two hole ends.
   */
  private update(): void {
    let lastHole: K | undefined; // ULONG_MAX in the kernel: "no bound yet"
    for (let i = 0; i < 2; i++) {
      const s = this.spans[i] as SpanIterator<K>;
      if (s.done) {
        this.isUsed = -1;
        return;
      }
      if (s.isHole === 1) {
        lastHole = lastHole === undefined ? s.last : min(lastHole, s.last);
        continue;
      }
      this.isUsed = (i + 1) as 1 | 2;
      this.start = s.start;
      this.last = lastHole === undefined ? s.last : min(s.last, lastHole);
      return;
    }
    const [a, b] = this.spans;
    this.isUsed = 0;
    this.start = a.start;
    this.last = min(a.last, b.last);
  }

  /** `interval_tree_double_span_iter_first()`. */
  first(firstIndex: K, lastIndex: K): this {
    for (const s of this.spans) s.first(firstIndex, lastIndex);
    this.update();
    return this;
  }

  /** `interval_tree_double_span_iter_next()`. */
  next(): this {
    // Stop when the span reached the window end: this is what keeps the
    // kernel's `last_hole + 1` from wrapping when the window ends at ULONG_MAX.
    if (this.isUsed === -1 || this.last === this.spans[0].lastIndex) {
      this.isUsed = -1;
      return this;
    }
    const from = inc(this.last);
    for (const s of this.spans) s.advance(from);
    this.update();
    return this;
  }
}

/**
 * `interval_tree_for_each_span()` as a generator: alternating used/hole spans
 * of `tree` over [start, last].  Throws if the tree changes mid-iteration.
 */
export function* spanIter<K extends IntervalKey = bigint>(
  tree: IntervalTree<unknown, K>,
  start: K,
  last: K,
): Generator<Span<K>, void, undefined> {
  const mods = tree.modCount;
  const it = new SpanIterator(tree).first(start, last);
  while (!it.done) {
    yield { isHole: it.isHole === 1, start: it.start, last: it.last };
    if (tree.modCount !== mods) throw new Error('interval tree modified during spanIter()');
    it.next();
  }
}

/**
 * `interval_tree_for_each_double_span()` as a generator: holes of
 * treeA ∪ treeB and the used spans of each (treeA first) over [start, last].
 * Throws if either tree changes mid-iteration.
 */
export function* doubleSpanIter<K extends IntervalKey = bigint>(
  treeA: IntervalTree<unknown, K>,
  treeB: IntervalTree<unknown, K>,
  start: K,
  last: K,
): Generator<DoubleSpan<K>, void, undefined> {
  const modsA = treeA.modCount;
  const modsB = treeB.modCount;
  const it = new DoubleSpanIterator(treeA, treeB).first(start, last);
  while (!it.done) {
    const used = it.isUsed as 0 | 1 | 2;
    yield used === 0
      ? { isHole: true, isUsed: 0, start: it.start, last: it.last }
      : { isHole: false, isUsed: used, start: it.start, last: it.last };
    if (treeA.modCount !== modsA || treeB.modCount !== modsB) {
      throw new Error('interval tree modified during doubleSpanIter()');
    }
    it.next();
  }
}
