/**
 * The object ID space of one iommufd context (main.c `_iommufd_object_alloc`: `xa_alloc` with XA_FLAGS_ALLOC1 and
 * `xa_limit_31b`): IDs from 1 to INT_MAX, always the lowest free one, freed IDs reused. A min-heap of freed IDs
 * below a high-water mark gives that in O(log n) per allocation, where a scan of the table would be O(n).
 */
export const ID_MAX = 0x7fff_ffff;

export class IdAllocator {
  private heap: number[] = [];
  private next = 1;

  /** The ID xa_alloc would hand out now, or undefined when [1, INT_MAX] is exhausted (EBUSY). */
  lowestFree(): number | undefined {
    const h = this.heap[0];
    if (h !== undefined) return h;
    return this.next <= ID_MAX ? this.next : undefined;
  }

  take(id: number): void {
    if (this.heap[0] === id) {
      this.pop();
    } else if (id >= this.next) {
      // Not the lowest free ID: only a log written by another allocator does this. Skipped IDs become free.
      for (let i = this.next; i < id; i++) this.push(i);
      this.next = id + 1;
    } else {
      const i = this.heap.indexOf(id);
      if (i < 0) throw new Error(`id ${id} is not free`);
      this.heap.splice(i, 1);
      this.heap.sort((a, b) => a - b);
    }
  }

  release(id: number): void {
    this.push(id);
  }

  clone(): IdAllocator {
    const c = new IdAllocator();
    c.heap = this.heap.slice();
    c.next = this.next;
    return c;
  }

  private push(v: number): void {
    const h = this.heap;
    h.push(v);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= v) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = v;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const c = r < h.length && h[r]! < h[l]! ? r : l;
      if (h[c]! >= last) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
}
