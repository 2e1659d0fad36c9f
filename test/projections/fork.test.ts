import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CowMap, frozenEmptyMap, rawEntries } from '../../src/hw/cow_map.js';
import { cloneState, forkState, initialState, snapshotState } from '../../src/projections/state.js';
import { foldEntry, viewOf } from '../../src/timetravel/index.js';
import { coreTraces, reference } from '../timetravel/support.js';

describe('forks of snapshots (copy-on-read)', () => {
  // The core selftests, and the examples (type1 containers, VFIO BARs and dma-bufs, vIOMMU cookies, dirty tracking).
  const traces = [...coreTraces(120), ...readdirSync('examples').filter((f) => f.endsWith('.jsonl')).map((f) => join('examples', f))];

  it('fold to the same state as a deep copy, and never change the snapshot they were forked from', () => {
    expect(traces.length).toBeGreaterThan(40);
    for (const f of traces) {
      const { entries, views } = reference(readFileSync(f, 'utf8'));
      // Snapshots at a quarter, half and three quarters, each forked twice and folded to the end.
      for (const at of [entries.length >> 2, entries.length >> 1, (3 * entries.length) >> 2]) {
        const st = initialState();
        for (const e of entries.slice(0, at)) foldEntry(st, e);
        const snap = snapshotState(st);
        const before = viewOf(snap);
        for (let k = 0; k < 2; k++) {
          const fork = forkState(snap);
          for (const e of entries.slice(at)) foldEntry(fork, e);
          if (entries.length > 0) expect(viewOf(fork), `${f} from ${at}`).toEqual(views[entries.length - 1]);
          // A deep copy of a fork is a state of its own too.
          const copy = cloneState(fork);
          expect(viewOf(copy)).toEqual(viewOf(fork));
        }
        expect(viewOf(snap), `${f}: the snapshot at ${at}`).toEqual(before);
      }
    }
  });

  it('copy a value the first time it is taken out, and only then', () => {
    const a = { n: 1 }, b = { n: 2 };
    const src = new Map([[1, a], [2, b]]);
    const m = new CowMap(src, (v) => ({ ...v }));
    expect(m.isShared(1)).toBe(true);
    const got = m.get(1)!;
    expect(got).not.toBe(a);
    expect(m.get(1)).toBe(got);
    got.n = 10;
    expect(a.n).toBe(1);
    expect(m.isShared(1)).toBe(false);
    // Reads that only look (views) see the stored values, and copy nothing.
    expect(rawEntries(m)).toEqual([[1, got], [2, b]]);
    expect(m.isShared(2)).toBe(true);
    for (const v of m.values()) v.n++;
    expect([a.n, b.n, m.get(1)!.n, m.get(2)!.n]).toEqual([1, 2, 11, 3]);
    m.set(3, { n: 3 });
    expect(m.isShared(3)).toBe(false);
    m.delete(2);
    expect([...m.keys()]).toEqual([1, 3]);
    expect(src.size).toBe(2);
  });

  it('share one frozen empty table between snapshots, which refuses writes', () => {
    const st = initialState();
    const e = frozenEmptyMap<number, number>();
    expect(e.size).toBe(0);
    expect(() => e.set(1, 1)).toThrow(TypeError);
    expect(() => e.delete(1)).toThrow(TypeError);
    expect(viewOf(snapshotState(st))).toEqual(viewOf(st));
  });
});
