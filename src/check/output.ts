/**
 * What a check writes and prints: the counterexample files (atomically, under `logs/` by default), the JSON report
 * and its merge across shards, and the text summary.
 *
 * A counterexample is three files sharing a base name:
 * - `NAME.jsonl`: an ordinary iotrail trace (header + one line per call, with `tid` and the outcomes the model gave);
 * - `NAME.schedule.json`: the interleaving (trace line of each atomic step), the mutants, the violation, and the
 *   fast-check seed, path and shrunk program that reproduce it (`ScheduleFile`);
 * - `NAME.log.jsonl`: the model's event log of the run, ending with the proposed `InvariantViolated` entry.
 * Their contents depend only on the counterexample: the same seed writes byte-identical files.
 */
import { mkdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeFileAtomic } from '../cli/atomic.js';
import type { Counterexample } from './explore.js';
import type { ScheduleFile } from './replay_schedule.js';
import type { TraceLine } from './kernel.js';

export interface FailureReport {
  readonly batch: number;
  /** fast-check seed and path of the shrunk counterexample. */
  readonly seed: number;
  readonly path: string;
  readonly shrinks: number;
  readonly runsToFailure: number;
  /** Seconds from the start of the check to the first failing run (before shrinking). */
  readonly secondsToFailure: number;
  /** Shrunk program length in choices, and the atomic steps and trace lines it ran. */
  readonly choices: number;
  readonly steps: number;
  readonly lines: number;
  readonly violation: { readonly name: string; readonly message: string; readonly rule: string; readonly line: number; readonly step: number; readonly n: number };
  readonly files: { readonly trace: string; readonly schedule: string; readonly log: string } | undefined;
}

export interface CheckReport {
  readonly iotrail_check: 1;
  readonly seed: number;
  readonly shard: { readonly index: number; readonly count: number };
  readonly threads: number;
  readonly maxChoices: number;
  readonly batchRuns: number;
  readonly mutants: readonly string[];
  /** Set when the check explored interleavings the kernel's locks forbid (`--ignore-locks`). */
  readonly ignoreLocks?: boolean;
  readonly runs: number;
  /** Batches run to the end (a failing batch included). */
  readonly batches: readonly number[];
  readonly seconds: number;
  readonly failure: FailureReport | undefined;
}

const jsonLines = (ls: readonly unknown[]): string => ls.map((l) => `${JSON.stringify(l)}\n`).join('');

export function baseName(seed: number, batch: number, mutants: readonly string[]): string {
  return `check-${mutants.length ? mutants.join('+') : 'model'}-s${seed >>> 0}-b${batch}`;
}

/** Writes the counterexample's three files; returns their paths. */
export function writeCounterexample(
  dir: string, seed: number, threads: number, maxChoices: number, mutants: readonly string[], c: Counterexample,
): { trace: string; schedule: string; log: string } {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, baseName(seed, c.batch, mutants));
  const f = c.failure;
  const trace = `${base}.jsonl`, schedule = `${base}.schedule.json`, log = `${base}.log.jsonl`;
  const sidecar: ScheduleFile = {
    iotrail_schedule: 1, trace: basename(trace), schedule: c.schedule, threads, mutants: [...mutants],
    violation: { ...f.violation, line: f.line, step: f.step, n: f.n },
    check: { seed, batch: c.batch, batchSeed: c.seed, path: c.path, threads, maxChoices, choices: c.choices },
  };
  writeFileAtomic(trace, jsonLines(c.trace as TraceLine[]));
  writeFileAtomic(schedule, `${JSON.stringify(sidecar, null, 1)}\n`);
  const entries = [...c.log];
  // The proposed InvariantViolated entry (domain.ts): it changes no state; `at` is the entry that broke the invariant.
  entries.push(JSON.stringify({ n: c.log.length, line: f.line, tid: 0, type: 'InvariantViolated', name: f.violation.name, message: f.violation.message, rule: f.violation.rule, at: f.n }));
  writeFileAtomic(log, entries.map((l) => `${l}\n`).join(''));
  return { trace, schedule, log };
}

export function failureReport(c: Counterexample, secondsToFailure: number, files: FailureReport['files']): FailureReport {
  const f = c.failure;
  return {
    batch: c.batch, seed: c.seed, path: c.path, shrinks: c.shrinks, runsToFailure: c.runsToFailure, secondsToFailure,
    choices: c.choices.length, steps: c.schedule.length, lines: c.trace.length - 1,
    violation: { ...f.violation, line: f.line, step: f.step, n: f.n }, files,
  };
}

/** Combines the reports of the shards of one check (same seed and settings). */
export function mergeReports(rs: readonly CheckReport[]): CheckReport {
  const first = rs[0];
  if (first === undefined) throw new Error('nothing to merge');
  for (const r of rs)
    if (r.seed !== first.seed || r.threads !== first.threads || r.maxChoices !== first.maxChoices || r.batchRuns !== first.batchRuns
      || r.mutants.join() !== first.mutants.join() || (r.ignoreLocks ?? false) !== (first.ignoreLocks ?? false))
      throw new Error('the reports are of different checks (seed, threads, length, batch size or mutants differ)');
  const failures = rs.flatMap((r) => (r.failure ? [r.failure] : [])).sort((a, b) => a.batch - b.batch);
  return {
    ...first, shard: { index: 0, count: 1 }, runs: rs.reduce((s, r) => s + r.runs, 0),
    batches: [...new Set(rs.flatMap((r) => r.batches))].sort((a, b) => a - b), seconds: Math.max(...rs.map((r) => r.seconds)),
    failure: failures[0],
  };
}

export function formatReport(r: CheckReport): string {
  const out: string[] = [];
  const shard = r.shard.count > 1 ? `, shard ${r.shard.index}/${r.shard.count}` : '';
  out.push(`iotrail check: seed ${r.seed}${shard}, ${r.threads} thread(s), programs of up to ${r.maxChoices} choices, mutants: ${r.mutants.length ? r.mutants.join(', ') : 'none'}${r.ignoreLocks ? ', locks ignored' : ''}`);
  const f = r.failure;
  if (f !== undefined) {
    out.push(`FAIL ${f.violation.name} (batch ${f.batch}, found after ${f.runsToFailure} run(s) of the batch, ${f.secondsToFailure.toFixed(1)} s)`);
    out.push(`  ${f.violation.message}`);
    out.push(`  rule: ${f.violation.rule}`);
    out.push(`  at trace line ${f.violation.line}, step ${f.violation.step}, log entry ${f.violation.n}; shrunk ${f.shrinks} time(s) to ${f.choices} choice(s), ${f.steps} step(s), ${f.lines} line(s)`);
    if (f.files !== undefined) {
      out.push(`  trace:    ${f.files.trace}`);
      out.push(`  schedule: ${f.files.schedule}`);
      out.push(`  log:      ${f.files.log}`);
      out.push(`  reproduce: iotrail check --reproduce ${f.files.schedule}`);
    }
    out.push(`  fast-check: seed ${f.seed}, path "${f.path}"`);
  }
  out.push(`${r.runs} run(s) in ${r.seconds.toFixed(1)} s, ${f === undefined ? 'no invariant broken' : '1 invariant broken'}`);
  return out.join('\n');
}
