/**
 * A check counterexample's schedule file (`iotrail check` writes `NAME.schedule.json` beside `NAME.jsonl`): the trace
 * line of each atomic step in the order they ran, and the seeded bugs that were on. `iotrail replay --schedule` and
 * the time-travel commands (`--schedule`) read it the same way.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MUTANTS, setMutants } from '../check/mutants.js';

export interface ScheduleFile {
  readonly schedule: readonly number[];
  /** The trace it interleaves, resolved against the schedule file's directory. */
  readonly trace: string | undefined;
  readonly mutants: readonly string[];
}

/** Reads and checks a schedule file; throws an Error saying what is wrong with it. */
export function readScheduleFile(path: string): ScheduleFile {
  const f = JSON.parse(readFileSync(path, 'utf8')) as { schedule?: unknown; trace?: unknown; mutants?: unknown };
  if (typeof f !== 'object' || f === null || !Array.isArray(f.schedule) || !f.schedule.every((x) => Number.isSafeInteger(x) && (x as number) > 0))
    throw new Error('no "schedule" array of trace line numbers');
  const mutants = Array.isArray(f.mutants) ? f.mutants.filter((m): m is string => typeof m === 'string') : [];
  return { schedule: f.schedule as number[], trace: typeof f.trace === 'string' ? join(dirname(path), f.trace) : undefined, mutants };
}

/** `--schedule F` named a file that cannot be read as a schedule. */
export class ScheduleReadError extends Error {
  constructor(readonly path: string, override readonly cause: unknown) {
    super((cause as Error).message);
  }
}
/** `--mutant M` (or the schedule) named a seeded bug that does not exist. */
export class UnknownMutantError extends Error {
  constructor(readonly mutant: string) {
    super(`unknown mutant ${JSON.stringify(mutant)} (iotrail check --list-mutants)`);
  }
}

/**
 * `--invariants`, `--schedule F` and `--mutant M`, as `iotrail replay` and the time-travel commands take them: the
 * schedule and the trace it names, the mutants (given, and the schedule's), switched on, and whether invariants are
 * checked (a schedule implies it). Throws ScheduleReadError or UnknownMutantError.
 */
export function applyReplayFlags(o: { invariants?: boolean | undefined; schedule?: string | undefined; mutant?: readonly string[] | undefined }):
  { schedule: readonly number[] | undefined; trace: string | undefined; mutants: readonly string[]; invariants: boolean } {
  const mutants = [...(o.mutant ?? [])];
  let f: ScheduleFile | undefined;
  if (o.schedule !== undefined) {
    try {
      f = readScheduleFile(o.schedule);
    } catch (e) {
      throw new ScheduleReadError(o.schedule, e);
    }
    for (const m of f.mutants) if (!mutants.includes(m)) mutants.push(m);
  }
  const unknown = mutants.find((m) => !MUTANTS.some((x) => x.name === m));
  if (unknown !== undefined) throw new UnknownMutantError(unknown);
  setMutants(mutants);
  return { schedule: f?.schedule, trace: f?.trace, mutants, invariants: o.invariants === true || f !== undefined };
}
