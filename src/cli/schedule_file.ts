/**
 * A check counterexample's schedule file (`iotrail check` writes `NAME.schedule.json` beside `NAME.jsonl`): the trace
 * line of each atomic step in the order they ran, and the seeded bugs that were on. `iotrail replay --schedule` and
 * the time-travel commands (`--schedule`) read it the same way.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

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
