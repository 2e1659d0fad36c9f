/**
 * Model-based exploration with fast-check. A run is a program of scheduling choices (thread, command) executed by the
 * scheduler against a fresh model; the property is that no invariant breaks. A failing program is shrunk by
 * fast-check (choices removed, selectors lowered) and run once more to produce its trace, schedule and violation.
 *
 * The seed space is split into batches: batch `b` of base seed `s` runs `batchRuns` programs from fast-check seed
 * `batchSeed(s, b)`. `--shard I/N` takes the batches with `b % N == I`; workers share the batches of their shard. A
 * run is thus reproduced by its batch seed and fast-check path, whatever the worker count, and the first failure of
 * a check is the one of the lowest failing batch.
 */
import fc from 'fast-check';
import { cmdArb, type Cmd } from './commands.js';
import { enabledMutants, setMutants } from './mutants.js';
import { runSchedule, type Choice } from './scheduler.js';
import { IommufdWorld, type Failure } from './world.js';
import type { TraceLine } from './kernel.js';
import { encodeEntry } from '../events/log.js';

export interface ExploreOptions {
  readonly seed: number;
  readonly threads: number;
  /** Longest program, in choices. */
  readonly maxChoices: number;
  readonly batchRuns: number;
  readonly mutants: readonly string[];
  /** O(state) checks after every step instead of incremental ones. */
  readonly fullChecks?: boolean;
  /** Explore interleavings the kernel's locks forbid too (world.ts): they break invariants; shows what the locks protect. */
  readonly ignoreLocks?: boolean;
}

export const DEFAULTS = { threads: 3, maxChoices: 60, batchRuns: 50 } as const;

/** A 32-bit seed for batch `b` of base seed `s` (splitmix-style mixing: nearby batches get unrelated seeds). */
export function batchSeed(s: number, b: number): number {
  let x = (Math.imul(s | 0, 0x9e3779b1) ^ Math.imul(b + 1, 0x85ebca6b)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) | 0;
}

export const programArb = (threads: number, maxChoices: number): fc.Arbitrary<Choice<Cmd>[]> =>
  fc.array(fc.record({ t: fc.nat({ max: Math.max(threads - 1, 0) }), cmd: cmdArb }), { minLength: 1, maxLength: maxChoices, size: 'max' });

/** What one program did. */
export interface Execution {
  readonly failure: Failure | undefined;
  readonly trace: TraceLine[];
  /** Trace line of every atomic step, the prelude's (lines 2 and 3) first. */
  readonly schedule: number[];
  readonly stuck: number[];
  readonly world: IommufdWorld;
}

export function execute(choices: readonly Choice<Cmd>[], threads: number, opts: { fullChecks?: boolean; keepLog?: boolean; ignoreLocks?: boolean } = {}): Execution {
  const w = new IommufdWorld({ fullChecks: opts.fullChecks === true, keepLog: opts.keepLog === true, ignoreLocks: opts.ignoreLocks === true });
  const r = w.failed ? { schedule: [], stuck: [] } : runSchedule(w, choices, threads);
  return { failure: w.failure, trace: w.traceLines(), schedule: [...w.prelude, ...r.schedule], stuck: r.stuck, world: w };
}

export interface BatchResult {
  readonly batch: number;
  readonly seed: number;
  readonly runs: number;
  readonly interrupted: boolean;
  readonly counterexample: Counterexample | undefined;
}

/** A shrunk failing program and what it did; plain data (it crosses worker threads). */
export interface Counterexample {
  readonly batch: number;
  /** The fast-check seed and path that reproduce the shrunk program. */
  readonly seed: number;
  readonly path: string;
  readonly shrinks: number;
  /** Runs of this batch up to the first failing one. */
  readonly runsToFailure: number;
  /** Milliseconds from the start of the batch to the first failing run (before shrinking). */
  readonly msToFailure: number;
  readonly choices: Choice<Cmd>[];
  readonly failure: Failure;
  readonly trace: TraceLine[];
  readonly schedule: number[];
  /** The event log of the run, encoded (log.ts `encodeEntry`). */
  readonly log: string[];
}

/** What searching one batch found: the shrunk failing program, with where fast-check found it. */
export interface Search<C> {
  readonly runs: number;
  readonly interrupted: boolean;
  readonly found: { readonly choices: Choice<C>[]; readonly path: string; readonly shrinks: number; readonly runsToFailure: number; readonly msToFailure: number } | undefined;
}

/**
 * The explorer, for any world: fast-check generates programs of (thread, command) choices, `fails` runs one through
 * the scheduler on a fresh world and says whether it broke something, and fast-check shrinks what fails.
 */
export function searchPrograms<C>(
  cmd: fc.Arbitrary<C>, fails: (choices: readonly Choice<C>[]) => boolean,
  o: { readonly seed: number; readonly runs: number; readonly threads: number; readonly maxChoices: number; readonly timeLimitMs?: number | undefined },
): Search<C> {
  const t0 = performance.now();
  let firstFail: number | undefined;
  let runsToFailure = 0;
  const arb = fc.array(fc.record({ t: fc.nat({ max: Math.max(o.threads - 1, 0) }), cmd }), { minLength: 1, maxLength: o.maxChoices, size: 'max' });
  const prop = fc.property(arb, (choices) => {
    const bad = fails(choices);
    if (firstFail === undefined) {
      runsToFailure++;
      if (bad) firstFail = performance.now() - t0;
    }
    return !bad;
  });
  const d = fc.check(prop, {
    seed: o.seed, numRuns: o.runs, ...(o.timeLimitMs !== undefined ? { interruptAfterTimeLimit: Math.max(1, Math.floor(o.timeLimitMs)) } : {}),
  });
  if (!d.failed || d.counterexample === null) return { runs: d.numRuns, interrupted: d.interrupted, found: undefined };
  return {
    runs: d.numRuns, interrupted: d.interrupted,
    found: { choices: d.counterexample[0], path: d.counterexamplePath ?? '', shrinks: d.numShrinks, runsToFailure, msToFailure: firstFail ?? 0 },
  };
}

/** Runs one batch (`runs` programs) and, on failure, the shrunk counterexample. */
export function runBatch(o: ExploreOptions, batch: number, runs: number, timeLimitMs?: number): BatchResult {
  setMutants(o.mutants);
  try {
    const seed = batchSeed(o.seed, batch);
    const how = { fullChecks: o.fullChecks === true, ignoreLocks: o.ignoreLocks === true };
    const r = searchPrograms(cmdArb, (choices) => execute(choices, o.threads, how).failure !== undefined,
      { seed, runs, threads: o.threads, maxChoices: o.maxChoices, timeLimitMs });
    if (r.found === undefined) return { batch, seed, runs: r.runs, interrupted: r.interrupted, counterexample: undefined };
    const f = r.found;
    const ex = execute(f.choices, o.threads, { ...how, keepLog: true });
    if (ex.failure === undefined) throw new Error(`batch ${batch}: the shrunk counterexample does not fail when run again (the model is not deterministic)`);
    return {
      batch, seed, runs: r.runs, interrupted: r.interrupted,
      counterexample: {
        batch, seed, path: f.path, shrinks: f.shrinks, runsToFailure: f.runsToFailure, msToFailure: f.msToFailure,
        choices: f.choices, failure: ex.failure, trace: ex.trace, schedule: ex.schedule, log: ex.world.log.map((e) => encodeEntry(e)),
      },
    };
  } finally {
    setMutants([]);
  }
}

/** Re-runs a counterexample from its batch seed and fast-check path: the shrunk program, or undefined. */
export function rerun(o: ExploreOptions, seed: number, path: string): Choice<Cmd>[] | undefined {
  setMutants(o.mutants);
  try {
    const how = { fullChecks: o.fullChecks === true, ignoreLocks: o.ignoreLocks === true };
    const prop = fc.property(programArb(o.threads, o.maxChoices), (choices) => execute(choices, o.threads, how).failure === undefined);
    const d = fc.check(prop, { seed, path, numRuns: 1 });
    return d.counterexample?.[0];
  } finally {
    setMutants([]);
  }
}

export { enabledMutants };
