import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { batchSeed, execute, programArb, runBatch, searchPrograms, type ExploreOptions } from '../../src/check/explore.js';
import { runSchedule } from '../../src/check/scheduler.js';
import { runCheck } from '../../src/check/run.js';
import { reproduce } from '../../src/check/replay_schedule.js';
import { mergeReports } from '../../src/check/output.js';
import fc from 'fast-check';
import { toyCmd, ToyWorld, type ToyCmd } from './toy.js';

const toyFails = (threads: number) => (choices: readonly { t: number; cmd: ToyCmd }[]): boolean => {
  const w = new ToyWorld();
  runSchedule(w, choices, threads);
  return w.failed;
};

describe('the explorer', () => {
  it('finds the lost update planted in a toy model and shrinks it to an increment raced by another', () => {
    const r = searchPrograms(toyCmd, toyFails(2), { seed: 42, runs: 1000, threads: 2, maxChoices: 20 });
    expect(r.found).toBeDefined();
    const w = new ToyWorld();
    const s = runSchedule(w, r.found!.choices, 2);
    expect(w.failure).toBe('counter 1 after 2 increments');
    // Line 2 reads, line 3 (another thread) increments, line 2 writes back what it read.
    expect(w.trace).toHaveLength(2);
    expect(w.trace[0]).toMatch(/^2 t\d incr$/);
    expect(w.trace[1]).toMatch(/^3 t\d (incr|atomic)$/);
    expect(s.schedule[0]).toBe(2);
    expect(s.schedule[1]).toBe(3);
    expect(s.schedule).toContain(2);
  });

  it('finds nothing in the toy model when there is only one thread', () => {
    expect(searchPrograms(toyCmd, toyFails(1), { seed: 42, runs: 300, threads: 1, maxChoices: 20 }).found).toBeUndefined();
  });

  it('interleaves the atomic steps of operations of different threads', () => {
    const [program] = fc.sample(programArb(3, 40), { seed: 7, numRuns: 1 });
    let interleaved = 0;
    for (const p of fc.sample(programArb(3, 40), { seed: 9, numRuns: 50 })) {
      const ex = execute(p, 3);
      expect(ex.failure).toBeUndefined();
      expect(ex.stuck).toEqual([]);
      let max = 0;
      for (const l of ex.schedule) {
        if (l < max) interleaved++;
        max = Math.max(max, l);
      }
    }
    expect(program).toBeDefined();
    expect(interleaved).toBeGreaterThan(20);
  });

  it('keeps every invariant of the model over a few hundred programs', () => {
    const o: ExploreOptions = { seed: 11, threads: 3, maxChoices: 40, batchRuns: 50, mutants: [] };
    for (let b = 0; b < 6; b++) expect(runBatch(o, b, 50).counterexample?.failure).toBeUndefined();
  });

  it('checks incrementally what a check of the whole state after every step checks', () => {
    for (const p of fc.sample(programArb(3, 40), { seed: 13, numRuns: 60 })) {
      for (const ignoreLocks of [false, true]) {
        const inc = execute(p, 3, { ignoreLocks });
        const full = execute(p, 3, { ignoreLocks, fullChecks: true });
        // The full check may see a violation the incremental one has no scope for, never the other way round.
        if (inc.failure !== undefined) expect(full.failure?.violation.name).toBe(inc.failure.violation.name);
        if (full.failure === undefined) expect(inc.failure).toBeUndefined();
        else expect(inc.failure?.violation.name ?? full.failure.violation.name).toBe(full.failure.violation.name);
      }
    }
  });

  it('derives unrelated fast-check seeds for neighbouring batches, the same ones every time', () => {
    const seeds = Array.from({ length: 100 }, (_, b) => batchSeed(1, b));
    expect(new Set(seeds).size).toBe(100);
    expect(batchSeed(1, 7)).toBe(seeds[7]);
    expect(batchSeed(2, 7)).not.toBe(seeds[7]);
  });
});

describe('counterexamples', () => {
  const cfg = (outDir: string, extra: object = {}) => ({
    seed: 5, threads: 3, maxChoices: 40, batchRuns: 50, mutants: [], ignoreLocks: true, runs: 500,
    shard: { index: 0, count: 1 }, workers: 1, outDir, ...extra,
  });

  it('are byte-identical for the same seed', async () => {
    const a = mkdtempSync(join(tmpdir(), 'iotrail-check-a-')), b = mkdtempSync(join(tmpdir(), 'iotrail-check-b-'));
    const ra = await runCheck(cfg(a)), rb = await runCheck(cfg(b));
    expect(ra.failure).toBeDefined();
    expect(readdirSync(a).sort()).toEqual(readdirSync(b).sort());
    for (const f of readdirSync(a)) expect(readFileSync(join(a, f), 'utf8')).toBe(readFileSync(join(b, f), 'utf8'));
    expect({ ...ra.failure, secondsToFailure: 0 }).toEqual({ ...rb.failure, secondsToFailure: 0, files: ra.failure!.files });
  });

  it('are written as a trace, a schedule and a log, and the schedule replays the violation on the same line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iotrail-check-'));
    const r = await runCheck(cfg(dir));
    const f = r.failure!;
    expect(Object.values(f.files!).map((p) => p.slice(dir.length + 1)).sort()).toEqual([
      'check-model-s5-b0.jsonl', 'check-model-s5-b0.log.jsonl', 'check-model-s5-b0.schedule.json',
    ].map((n) => n.replace('b0', `b${f.batch}`)).sort());
    const trace = readFileSync(f.files!.trace, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(trace[0]).toMatchObject({ iotrail: 1, iommufd_test: true });
    expect(trace.slice(1).every((l) => typeof l.tid === 'number')).toBe(true);
    const log = readFileSync(f.files!.log, 'utf8').trim().split('\n');
    expect(JSON.parse(log[log.length - 1]!)).toMatchObject({ type: 'InvariantViolated', name: f.violation.name, at: f.violation.n });
    const rep = reproduce(f.files!.schedule);
    expect(rep.result.problems).toEqual([]);
    expect(rep.result.divergences).toEqual([]);
    expect(rep.result.failure?.violation).toEqual({ name: f.violation.name, message: f.violation.message, rule: f.violation.rule });
    expect(rep.result.failure?.line).toBe(f.violation.line);
  });

  it('come from the lowest failing batch, split across shards as across workers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iotrail-check-'));
    const whole = await runCheck(cfg(dir, { outDir: undefined }));
    const s0 = await runCheck(cfg(dir, { outDir: undefined, shard: { index: 0, count: 2 } }));
    const s1 = await runCheck(cfg(dir, { outDir: undefined, shard: { index: 1, count: 2 } }));
    expect(s0.batches.every((b) => b % 2 === 0)).toBe(true);
    expect(s1.batches.every((b) => b % 2 === 1)).toBe(true);
    const m = mergeReports([s0, s1]);
    expect(m.failure?.batch).toBe(Math.min(s0.failure?.batch ?? Infinity, s1.failure?.batch ?? Infinity));
    expect(whole.failure?.batch).toBeDefined();
    expect(m.failure?.batch).toBe(whole.failure?.batch);
  });
});
