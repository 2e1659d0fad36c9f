/**
 * Replaying a trace under an interleaving schedule: the reference for `iotrail replay --schedule FILE` (see the
 * engine change proposed with the checker), and what `iotrail check --reproduce SIDECAR` runs today.
 *
 * The schedule is a list of trace line numbers, one per atomic step: the `i`th entry runs the next step of that
 * line's operation, starting it if it has not started (so a line's first entry is where its thread issued it).
 * Lines the schedule does not name, and operations left unfinished, then run to completion in line order. Every
 * step is folded with the invariant checks; each completed line's outcome is compared with the one it records.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { TraceLine } from './kernel.js';
import { setMutants } from './mutants.js';
import { IommufdWorld, type Failure } from './world.js';

/** The JSON sidecar `iotrail check` writes beside a counterexample trace. */
export interface ScheduleFile {
  readonly iotrail_schedule: 1;
  /** The trace, relative to the sidecar. */
  readonly trace: string;
  /** Trace line of each atomic step, in order. */
  readonly schedule: readonly number[];
  readonly threads: number;
  /** Mutants the counterexample was found with (replay must switch them on to reproduce it). */
  readonly mutants: readonly string[];
  readonly violation?: { readonly name: string; readonly message: string; readonly rule: string; readonly line: number; readonly step: number; readonly n: number };
  readonly check?: {
    readonly seed: number; readonly batch: number; readonly batchSeed: number; readonly path: string; readonly threads: number;
    readonly maxChoices: number; readonly choices: unknown;
  };
}

export interface ScheduleReplay {
  readonly failure: Failure | undefined;
  readonly divergences: readonly string[];
  readonly steps: number;
  /** Problems with the schedule itself (a line named after its operation finished, a line that does not exist). */
  readonly problems: readonly string[];
  readonly world: IommufdWorld;
}

export function parseTrace(text: string): TraceLine[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as TraceLine);
}

export function replayWithSchedule(lines: readonly TraceLine[], schedule: readonly number[], opts: { keepLog?: boolean; fullChecks?: boolean } = {}): ScheduleReplay {
  const header = lines[0];
  if (header === undefined) throw new Error('empty trace: line 1 must be the header');
  const world = new IommufdWorld({ replayHeader: header, keepLog: opts.keepLog === true, fullChecks: opts.fullChecks === true });
  const ops = new Map<number, ReturnType<IommufdWorld['issueLine']>>();
  const done = new Set<number>();
  const problems: string[] = [];
  let steps = 0;
  const stepLine = (ln: number): void => {
    const json = lines[ln - 1];
    if (json === undefined || ln < 2) {
      problems.push(`schedule step ${steps}: there is no trace line ${ln}`);
      return;
    }
    if (done.has(ln)) {
      problems.push(`schedule step ${steps}: line ${ln} has already completed`);
      return;
    }
    let op = ops.get(ln);
    if (op === undefined) {
      op = world.issueLine(typeof json.tid === 'number' ? json.tid : 1, json, { kind: 'open', ctx: undefined, ioas: [] }, ln);
      ops.set(ln, op);
    }
    const r = op.step();
    steps++;
    if (r === 'done') {
      ops.delete(ln);
      done.add(ln);
    }
  };
  for (const ln of schedule) {
    if (world.failed) break;
    stepLine(ln);
  }
  for (let ln = 2; ln <= lines.length && !world.failed; ln++) while (!done.has(ln) && !world.failed) stepLine(ln);
  return { failure: world.failure, divergences: world.divergences, steps, problems, world };
}

/** Reads a sidecar and its trace, switches its mutants on, and replays. */
export function reproduce(sidecarPath: string, opts: { keepLog?: boolean } = {}): { file: ScheduleFile; tracePath: string; result: ScheduleReplay } {
  const file = JSON.parse(readFileSync(sidecarPath, 'utf8')) as ScheduleFile;
  if (file.iotrail_schedule !== 1 || !Array.isArray(file.schedule)) throw new Error(`${sidecarPath}: not an iotrail schedule (iotrail_schedule: 1)`);
  const tracePath = resolve(dirname(sidecarPath), file.trace);
  setMutants(file.mutants ?? []);
  try {
    return { file, tracePath, result: replayWithSchedule(parseTrace(readFileSync(tracePath, 'utf8')), file.schedule, opts) };
  } finally {
    setMutants([]);
  }
}
