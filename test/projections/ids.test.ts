import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdAllocator } from '../../src/projections/ids.js';

describe('IdAllocator', () => {
  it('hands out ids from 1 and reuses the lowest freed id first', () => {
    const a = new IdAllocator();
    for (let i = 1; i <= 5; i++) {
      expect(a.lowestFree()).toBe(i);
      a.take(i);
    }
    a.release(4);
    a.release(2);
    expect(a.lowestFree()).toBe(2);
    a.take(2);
    expect(a.lowestFree()).toBe(4);
  });

  it('always agrees with a scan for the lowest free id, whatever the alloc/free order', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant(-1), fc.integer({ min: 1, max: 40 })), { maxLength: 200 }), (ops) => {
        const a = new IdAllocator();
        const used = new Set<number>();
        for (const op of ops) {
          if (op === -1) {
            const id = a.lowestFree()!;
            let want = 1;
            while (used.has(want)) want++;
            expect(id).toBe(want);
            a.take(id);
            used.add(id);
          } else if (used.has(op)) {
            used.delete(op);
            a.release(op);
          }
        }
      }),
      { seed: 7, numRuns: 300 },
    );
  });

  it('accepts a log that took a higher id than the lowest free one', () => {
    const a = new IdAllocator();
    a.take(3);
    expect(a.lowestFree()).toBe(1);
    a.take(1);
    a.take(2);
    expect(a.lowestFree()).toBe(4);
  });
});
