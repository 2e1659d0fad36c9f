/**
 * Augmented interval tree modelling the kernel's `lib/interval_tree.c`
 * (INTERVAL_TREE_DEFINE over rb_root_cached), used by io_pagetable.c for
 * `area_itree` / `allowed_itree` / `reserved_itree` and by pages.c for
 * `access_itree` / `domains_itree`.
 *
 * AVL rather than red-black or a treap: the project forbids Math.random
 * (replays must be deterministic) and AVL's height bound (< 1.44 log2 n) is
 * the tighter one.  Each node carries the kernel's `__subtree_last` (max
 * `last` in its subtree) so queries prune exactly like
 * `interval_tree_subtree_search`.
 *
 * Intervals are inclusive [start, last]; overlaps and duplicates are allowed
 * (the io_pagetable, not the tree, forbids overlapping areas).  Order is
 * (start, insertion id): equal starts iterate in insertion order, as in the
 * kernel rb-tree, which inserts equal keys to the right.  Handles returned by
 * `insert` keep their identity across other inserts/removes: removal relinks
 * nodes (like `rb_erase`) instead of copying keys between them.
 *
 * Keys are `bigint` (u64 IOVAs, the default) or `number` (page indexes, see
 * range_map.ts); one tree uses one key type.
 */
import { U64_MAX } from './u64.js';

export type IntervalKey = bigint | number;

/** Public view of a node: the kernel's `struct interval_tree_node` + payload. */
export interface IntervalNode<T, K extends IntervalKey = bigint> {
  readonly start: K;
  readonly last: K;
  /** Payload; mutable (e.g. io_pagetable sets `area->pages` after insert). */
  value: T;
}

class Node<T, K extends IntervalKey> implements IntervalNode<T, K> {
  left: Node<T, K> | null = null;
  right: Node<T, K> | null = null;
  parent: Node<T, K> | null = null;
  height = 1;
  /** `__subtree_last`: max `last` over this subtree. */
  subtreeLast: K;
  /** The node holding `subtreeLast`. */
  lastNode: Node<T, K>;
  /** The smallest start in this subtree (its leftmost node's). */
  minStart: K;
  /**
   * Whether the union of this subtree's intervals may have a hole between its first start and its last byte: exact
   * for disjoint intervals, an over-estimate where earlier intervals overlap later ones (safe for skipping).
   */
  gapInside = false;
  constructor(
    readonly start: K,
    readonly last: K,
    public value: T,
    readonly id: number,
    public owner: IntervalTree<T, K> | null,
  ) {
    this.subtreeLast = last;
    this.lastNode = this;
    this.minStart = start;
  }
}

/** Whether `b` starts after a hole following a span that ends at `a` (no +1 that could wrap). */
function gapBetween<K extends IntervalKey>(a: K, b: K): boolean {
  return b > a && (typeof b === 'bigint' ? b - (a as bigint) > 1n : (b as number) - (a as number) > 1);
}

function h<T, K extends IntervalKey>(n: Node<T, K> | null): number {
  return n === null ? 0 : n.height;
}

/** Recompute height and `__subtree_last` from the children (the rb "propagate" callback). */
function pull<T, K extends IntervalKey>(n: Node<T, K>): void {
  const l = n.left;
  const r = n.right;
  n.height = 1 + Math.max(h(l), h(r));
  let m = n.last;
  let mn: Node<T, K> = n;
  if (l !== null && l.subtreeLast > m) { m = l.subtreeLast; mn = l.lastNode; }
  if (r !== null && r.subtreeLast > m) { m = r.subtreeLast; mn = r.lastNode; }
  n.subtreeLast = m;
  n.lastNode = mn;
  n.minStart = l !== null ? l.minStart : n.start;
  let gap = false;
  let cover = n.last;
  if (l !== null) {
    gap = l.gapInside || gapBetween(l.subtreeLast, n.start);
    if (l.subtreeLast > cover) cover = l.subtreeLast;
  }
  if (r !== null) gap = gap || r.gapInside || gapBetween(cover, r.minStart);
  n.gapInside = gap;
}

/**
 * Walks `s` in order from a running `cover` (the highest last so far), skipping every subtree that continues the
 * span without a hole; stops at the first node that starts after a hole.
 */
function spanThrough<T, K extends IntervalKey>(s: Node<T, K>, st: { cover: Node<T, K> }): Node<T, K> | undefined {
  if (gapBetween(st.cover.last, s.minStart)) {
    let x = s;
    while (x.left !== null) x = x.left;
    return x;
  }
  if (!s.gapInside) {
    if (s.subtreeLast > st.cover.last) st.cover = s.lastNode;
    return undefined;
  }
  if (s.left !== null) {
    const f = spanThrough(s.left, st);
    if (f !== undefined) return f;
  }
  if (gapBetween(st.cover.last, s.start)) return s;
  if (s.last > st.cover.last) st.cover = s;
  return s.right === null ? undefined : spanThrough(s.right, st);
}

/** Strict (start, id) order. */
function before<T, K extends IntervalKey>(a: Node<T, K>, b: Node<T, K>): boolean {
  return a.start < b.start || (a.start === b.start && a.id < b.id);
}

function checkKey(k: IntervalKey, what: string): void {
  if (typeof k === 'bigint') {
    if (k < 0n || k > U64_MAX) throw new RangeError(`${what} ${k} is not a u64`);
  } else if (!Number.isSafeInteger(k) || k < 0) {
    throw new RangeError(`${what} ${k} is not a non-negative safe integer`);
  }
}

function checkRange(start: IntervalKey, last: IntervalKey): void {
  checkKey(start, 'start');
  checkKey(last, 'last');
  if (typeof start !== typeof last) throw new TypeError('start and last must have the same key type');
  if (start > last) throw new RangeError(`empty interval [${start}, ${last}]`);
}

export class IntervalTree<T, K extends IntervalKey = bigint> {
  private root: Node<T, K> | null = null;
  private count = 0;
  private nextId = 0;
  private mods = 0;

  /** Number of nodes. */
  get size(): number {
    return this.count;
  }

  get isEmpty(): boolean {
    return this.root === null;
  }

  /** Height of the tree (0 when empty); exposed so tests can assert balance. */
  get height(): number {
    return h(this.root);
  }

  /**
   * Incremented by every insert/remove.  Iterators (here and in span_iter.ts)
   * snapshot it and throw if the tree changes under them, instead of
   * silently walking freed nodes as a kernel use-after-free would.
   */
  get modCount(): number {
    return this.mods;
  }

  /** `interval_tree_insert()`: O(log n).  Returns the node handle. */
  insert(start: K, last: K, value: T): IntervalNode<T, K> {
    checkRange(start, last);
    const node = new Node<T, K>(start, last, value, this.nextId++, this);
    let parent: Node<T, K> | null = null;
    let cur = this.root;
    let goLeft = false;
    while (cur !== null) {
      parent = cur;
      goLeft = before(node, cur);
      cur = goLeft ? cur.left : cur.right;
    }
    node.parent = parent;
    if (parent === null) this.root = node;
    else if (goLeft) parent.left = node;
    else parent.right = node;
    this.count++;
    this.mods++;
    this.rebalanceUp(parent);
    return node;
  }

  /**
   * `interval_tree_remove()`: O(log n).  The handle must belong to this tree;
   * afterwards it is detached (removing it again throws).
   */
  remove(handle: IntervalNode<T, K>): void {
    const z = this.own(handle);
    let fix: Node<T, K> | null;
    if (z.left === null || z.right === null) {
      const child = z.left ?? z.right;
      this.replaceChild(z.parent, z, child);
      if (child !== null) child.parent = z.parent;
      fix = z.parent;
    } else {
      // Two children: splice in the in-order successor y *as a node* so that
      // every other handle keeps its identity.
      let y: Node<T, K> = z.right;
      while (y.left !== null) y = y.left;
      if (y.parent === z) {
        fix = y;
      } else {
        const yp = y.parent as Node<T, K>;
        fix = yp;
        yp.left = y.right;
        if (y.right !== null) y.right.parent = yp;
        y.right = z.right;
        z.right.parent = y;
      }
      y.left = z.left;
      z.left.parent = y;
      y.parent = z.parent;
      this.replaceChild(z.parent, z, y);
    }
    z.left = z.right = z.parent = null;
    z.owner = null;
    this.count--;
    this.mods++;
    this.rebalanceUp(fix);
  }

  /** True iff `handle` is currently a node of this tree. */
  has(handle: IntervalNode<T, K>): boolean {
    return handle instanceof Node && handle.owner === this;
  }

  /**
   * `interval_tree_iter_first()`: the lowest-(start, id) node intersecting
   * [start, last], or undefined.  O(log n).
   */
  iterFirst(start: K, last: K): IntervalNode<T, K> | undefined {
    checkRange(start, last);
    const root = this.root;
    if (root === null || root.subtreeLast < start) return undefined;
    return subtreeSearch(root, start, last);
  }

  /**
   * `interval_tree_iter_next()`: the node after `handle` (in (start, id)
   * order) intersecting [start, last].  Amortised O(log n) per step, so a full
   * walk of k results is O(k log n) worst case, O(log n + k) typical.
   */
  iterNext(handle: IntervalNode<T, K>, start: K, last: K): IntervalNode<T, K> | undefined {
    checkRange(start, last);
    let node = this.own(handle);
    let rb = node.right;
    for (;;) {
      // Loop invariant: rb === node.right.
      if (rb !== null && start <= rb.subtreeLast) return subtreeSearch(rb, start, last);
      // Move up until we come from a node's left child.
      let prev: Node<T, K>;
      do {
        const p: Node<T, K> | null = node.parent;
        if (p === null) return undefined;
        prev = node;
        node = p;
        rb = node.right;
      } while (prev === rb);
      // Nodes to the right all start later; once past `last` nothing can intersect.
      if (last < node.start) return undefined;
      if (start <= node.last) return node;
    }
  }

  /**
   * The used span that begins with `handle`: `end` is the node with the greatest `last` among the nodes that overlap
   * or touch one another from `handle` on (in (start, id) order), `next` the first node after them that starts after
   * a hole (undefined if none). This is `interval_tree_span_iter_next_gap` without walking the span node by node:
   * subtrees that cannot hold a hole are skipped, so it is O(log n) where the walk would be O(span).
   */
  spanFrom(handle: IntervalNode<T, K>): { end: IntervalNode<T, K>; next: IntervalNode<T, K> | undefined } {
    let x = this.own(handle);
    const st = { cover: x as Node<T, K> };
    for (;;) {
      if (x.right !== null) {
        const f = spanThrough(x.right, st);
        if (f !== undefined) return { end: st.cover, next: f };
      }
      // Up to the first ancestor reached from its left subtree: the next node in order.
      let prev: Node<T, K>;
      let p: Node<T, K> | null;
      do {
        prev = x;
        p = x.parent;
        if (p === null) return { end: st.cover, next: undefined };
        x = p;
      } while (x.right === prev);
      if (gapBetween(st.cover.last, x.start)) return { end: st.cover, next: x };
      if (x.last > st.cover.last) st.cover = x;
    }
  }

  /** All nodes intersecting [start, last] in (start, id) order.  Throws if the tree is modified mid-walk. */
  *intersecting(start: K, last: K): Generator<IntervalNode<T, K>, void, undefined> {
    const mods = this.mods;
    for (let n = this.iterFirst(start, last); n !== undefined; n = this.iterNext(n, start, last)) {
      yield n;
      if (this.mods !== mods) throw new Error('IntervalTree modified during intersecting()');
    }
  }

  /** All nodes in (start, id) order.  Throws if the tree is modified mid-walk. */
  *inOrder(): Generator<IntervalNode<T, K>, void, undefined> {
    const mods = this.mods;
    for (let n = this.root === null ? null : leftmost(this.root); n !== null; n = successor(n)) {
      yield n;
      if (this.mods !== mods) throw new Error('IntervalTree modified during inOrder()');
    }
  }

  /** Lowest-(start, id) node (`rb_first_cached`), O(log n). */
  first(): IntervalNode<T, K> | undefined {
    return this.root === null ? undefined : leftmost(this.root);
  }

  /** Highest-(start, id) node, O(log n).  (Not the node with the largest `last`.) */
  last(): IntervalNode<T, K> | undefined {
    let n = this.root;
    if (n === null) return undefined;
    while (n.right !== null) n = n.right;
    return n;
  }

  /** In-order successor of `handle` (any node, intersecting or not). */
  next(handle: IntervalNode<T, K>): IntervalNode<T, K> | undefined {
    return successor(this.own(handle)) ?? undefined;
  }

  /** In-order predecessor of `handle`. */
  prev(handle: IntervalNode<T, K>): IntervalNode<T, K> | undefined {
    let n = this.own(handle);
    if (n.left !== null) {
      n = n.left;
      while (n.right !== null) n = n.right;
      return n;
    }
    let p = n.parent;
    while (p !== null && p.left === n) {
      n = p;
      p = p.parent;
    }
    return p ?? undefined;
  }

  /**
   * The first node (in insertion order among equal starts) with exactly this
   * [start, last] and, if given, satisfying `pred`.  O(log n + m) where m is
   * the number of nodes sharing `start`.
   */
  findExact(start: K, last: K, pred?: (value: T) => boolean): IntervalNode<T, K> | undefined {
    checkRange(start, last);
    let cand: Node<T, K> | null = null;
    let n = this.root;
    while (n !== null) {
      if (n.start >= start) {
        cand = n;
        n = n.left;
      } else {
        n = n.right;
      }
    }
    for (let c = cand; c !== null && c.start === start; c = successor(c)) {
      if (c.last === last && (pred === undefined || pred(c.value))) return c;
    }
    return undefined;
  }

  /** Remove every node (handles become detached).  O(n). */
  clear(): void {
    const stack: Node<T, K>[] = this.root === null ? [] : [this.root];
    for (let n = stack.pop(); n !== undefined; n = stack.pop()) {
      if (n.left !== null) stack.push(n.left);
      if (n.right !== null) stack.push(n.right);
      n.left = n.right = n.parent = null;
      n.owner = null;
    }
    this.root = null;
    this.count = 0;
    this.mods++;
  }

  /**
   * Verify every structural invariant (order, parent links, AVL balance,
   * heights, `__subtree_last`, size).  O(n); for tests.  Throws on violation.
   */
  checkInvariants(): void {
    let seen = 0;
    let prev: Node<T, K> | null = null;
    const visit = (n: Node<T, K> | null, parent: Node<T, K> | null): void => {
      if (n === null) return;
      if (n.parent !== parent) throw new Error(`bad parent link at [${n.start}, ${n.last}]`);
      if (n.owner !== this) throw new Error('node owned by another tree');
      visit(n.left, n);
      if (prev !== null && !before(prev, n)) throw new Error(`order violated at [${n.start}, ${n.last}]`);
      prev = n;
      seen++;
      visit(n.right, n);
      const bf = h(n.left) - h(n.right);
      if (bf > 1 || bf < -1) throw new Error(`AVL balance violated at [${n.start}, ${n.last}]`);
      const { height, subtreeLast } = n;
      pull(n);
      if (n.height !== height) throw new Error(`stale height at [${n.start}, ${n.last}]`);
      if (n.subtreeLast !== subtreeLast) throw new Error(`stale subtreeLast at [${n.start}, ${n.last}]`);
    };
    visit(this.root, null);
    if (seen !== this.count) throw new Error(`size ${this.count} but ${seen} nodes reachable`);
  }

  private own(handle: IntervalNode<T, K>): Node<T, K> {
    if (!(handle instanceof Node) || handle.owner !== this) {
      throw new Error('interval node is not in this tree (already removed, or from another tree)');
    }
    return handle as Node<T, K>;
  }

  private replaceChild(parent: Node<T, K> | null, old: Node<T, K>, neu: Node<T, K> | null): void {
    if (parent === null) this.root = neu;
    else if (parent.left === old) parent.left = neu;
    else parent.right = neu;
  }

  /** Rotate `x` down to the left (`toLeft`) or right; returns the new subtree root. */
  private rotate(x: Node<T, K>, toLeft: boolean): Node<T, K> {
    const y = (toLeft ? x.right : x.left) as Node<T, K>;
    const inner = toLeft ? y.left : y.right;
    if (toLeft) x.right = inner;
    else x.left = inner;
    if (inner !== null) inner.parent = x;
    y.parent = x.parent;
    this.replaceChild(x.parent, x, y);
    if (toLeft) y.left = x;
    else y.right = x;
    x.parent = y;
    pull(x);
    pull(y);
    return y;
  }

  /**
   * Walk from `n` to the root fixing heights/augmentation and restoring AVL
   * balance.  Always goes to the root (O(log n)) because `__subtree_last`
   * may change on every ancestor even when heights do not.
   */
  private rebalanceUp(n: Node<T, K> | null): void {
    while (n !== null) {
      pull(n);
      const bf = h(n.left) - h(n.right);
      if (bf > 1) {
        const l = n.left as Node<T, K>;
        if (h(l.left) < h(l.right)) this.rotate(l, true);
        n = this.rotate(n, false);
      } else if (bf < -1) {
        const r = n.right as Node<T, K>;
        if (h(r.right) < h(r.left)) this.rotate(r, false);
        n = this.rotate(n, true);
      }
      n = n.parent;
    }
  }
}

function leftmost<T, K extends IntervalKey>(n: Node<T, K>): Node<T, K> {
  while (n.left !== null) n = n.left;
  return n;
}

function successor<T, K extends IntervalKey>(n: Node<T, K>): Node<T, K> | null {
  if (n.right !== null) return leftmost(n.right);
  let p = n.parent;
  while (p !== null && p.right === n) {
    n = p;
    p = p.parent;
  }
  return p;
}

/**
 * `interval_tree_subtree_search()`: leftmost node of the subtree rooted at
 * `node` intersecting [start, last].  Requires `node.subtreeLast >= start`.
 */
function subtreeSearch<T, K extends IntervalKey>(node: Node<T, K>, start: K, last: K): Node<T, K> | undefined {
  for (;;) {
    const l = node.left;
    if (l !== null && l.subtreeLast >= start) {
      // Some node on the left ends at/after start; it is further left than `node`.
      node = l;
      continue;
    }
    if (node.start <= last) {
      if (start <= node.last) return node;
      const r = node.right;
      if (r !== null && r.subtreeLast >= start) {
        node = r;
        continue;
      }
    }
    return undefined;
  }
}
