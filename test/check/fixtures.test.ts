/**
 * The counterexample `iotrail check` found for each seeded bug, checked in under test/fixtures/mutants (written by
 * `npm run bench:mutants -- --fixtures test/fixtures/mutants`). Replaying each under its schedule with its mutant on
 * must break the invariant the checker saw, on the same line; with the mutant off, the same interleaving must keep
 * every invariant. A regression in the invariants, the replay engine's scheduling or the mutant guards shows here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MUTANTS, setMutants } from '../../src/check/mutants.js';
import { replayFile } from '../../src/cli/replay_file.js';

const DIR = 'test/fixtures/mutants';

interface Sidecar {
  readonly trace: string;
  readonly schedule: readonly number[];
  readonly mutants: readonly string[];
  readonly violation: { readonly name: string; readonly line: number };
}

const fixtures = readdirSync(DIR).filter((f) => f.endsWith('.schedule.json')).sort()
  .map((f) => ({ file: f, sidecar: JSON.parse(readFileSync(join(DIR, f), 'utf8')) as Sidecar }));

/** Events of a trace: its lines after the header. */
const eventCount = (trace: string): number => readFileSync(join(DIR, trace), 'utf8').trim().split('\n').length - 1;

afterEach(() => setMutants([]));

describe('the checked-in counterexamples of the seeded bugs', () => {
  it('cover every mutant the checker knows', () => {
    const covered = new Set(fixtures.flatMap((f) => f.sidecar.mutants));
    expect(MUTANTS.filter((m) => m.pending === undefined && !covered.has(m.name)).map((m) => m.name)).toEqual([]);
  });

  for (const { file, sidecar } of fixtures) {
    describe(file, () => {
      const trace = join(DIR, sidecar.trace);

      it('is at most 15 events long', () => {
        expect(eventCount(sidecar.trace)).toBeLessThanOrEqual(15);
      });

      it('breaks the invariant the checker reported, on the same line, when replayed with its mutant', async () => {
        setMutants(sidecar.mutants);
        const r = await replayFile(trace, { schedule: sidecar.schedule, invariants: true });
        expect(r.errors).toEqual([]);
        expect(r.internal).toEqual([]);
        expect(r.violations.map((v) => [v.name, v.line])[0]).toEqual([sidecar.violation.name, sidecar.violation.line]);
        expect(r.passed).toBe(false);
      });

      it('keeps every invariant under the same interleaving without the mutant', async () => {
        setMutants([]);
        const r = await replayFile(trace, { schedule: sidecar.schedule, invariants: true });
        // A mutant that splits an operation into more atomic steps (access-rw-during-change) leaves schedule steps
        // naming an operation the unmodified model has already completed; nothing else may be wrong with the trace.
        expect(r.errors.filter((e) => !/has already completed/.test(e.message))).toEqual([]);
        expect(r.internal).toEqual([]);
        expect(r.violations).toEqual([]);
      });
    });
  }
});
