import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { enabledMutants, isMutant, MUTANTS, setMutants } from '../../src/check/mutants.js';
import { INVARIANT_NAMES } from '../../src/projections/invariants.js';

describe('the mutant registry', () => {
  it('names each mutant once, with the seeded bug, the invariant meant to catch it and the file of its guard', () => {
    expect(new Set(MUTANTS.map((m) => m.name)).size).toBe(MUTANTS.length);
    for (const m of MUTANTS) {
      expect(m.bug).toMatch(/B\d|S\d|IOTLB|auto domain|spec\.md §/);
      for (const i of m.caughtBy) expect(INVARIANT_NAMES.has(i)).toBe(true);
      expect(existsSync(new URL(`../../${m.file}`, import.meta.url))).toBe(true);
    }
    expect(MUTANTS.map((m) => m.name)).toEqual(expect.arrayContaining([
      'unfill-past-end', 'iova-align-wrap', 'unpin-before-flush', 'auto-domain-leak', 'destroy-unlocked-ref', 'access-replace-stale', 'hwpt-list-dup',
    ]));
  });

  it('switches nothing on until asked, and exactly what it is asked', () => {
    expect(enabledMutants()).toEqual([]);
    expect(isMutant('iova-align-wrap')).toBe(false);
    setMutants(['iova-align-wrap']);
    try {
      expect(isMutant('iova-align-wrap')).toBe(true);
      expect(isMutant('hwpt-list-dup')).toBe(false);
    } finally {
      setMutants([]);
    }
    expect(isMutant('iova-align-wrap')).toBe(false);
  });

  it('refuses a name it does not know, leaving the switch as it was', () => {
    expect(() => setMutants(['no-such-bug'])).toThrow(/unknown mutant "no-such-bug"/);
    expect(enabledMutants()).toEqual([]);
  });
});
