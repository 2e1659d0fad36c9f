/**
 * What the time-travel commands share: opening what the user named (a trace, a saved index, or a model event log)
 * and running a command with the usual exit codes (0 done, 1 nothing found, 2 usage or input error).
 */
import { readLineBatches } from '../events/reader.js';
import { decodeEntry } from '../events/log.js';
import type { LogEntry } from '../events/domain.js';
import { Progress } from '../cli/progress.js';
import { indexEntries, type TraceIndex } from './index.js';
import { loadIndex, looksLikeIndex, openIndex } from './store.js';
import { UsageError } from './args.js';
import { applyReplayFlags, ScheduleReadError, UnknownMutantError } from '../cli/schedule_file.js';
import type { ReplayOptions } from '../replay/engine.js';

export class InputError extends Error {}

/** Whether the file is a model event log (`iotrail replay --log`): its first line is an entry, not a trace header. */
async function looksLikeLog(path: string): Promise<boolean> {
  for await (const batch of readLineBatches(path, 1 << 14)) {
    const first = batch.find((l) => l.trim() !== '');
    if (first === undefined) continue;
    try {
      const o = JSON.parse(first) as Record<string, unknown>;
      return typeof o.n === 'number' && typeof o.type === 'string' && o.iotrail === undefined;
    } catch {
      return false;
    }
  }
  return false;
}

export interface OpenOptions {
  /** A saved index to use for this trace (built and saved there when missing or stale). */
  readonly index?: string | undefined;
  readonly k?: number | undefined;
  /** Quiet: no progress bar, no notes on stderr. */
  readonly quiet?: boolean | undefined;
  /** Replay the trace with invariant checks, or under a check counterexample's schedule (`replayOpenOptions`). */
  readonly replay?: ReplayOptions | undefined;
}

/** The options every time-travel command takes to replay a trace as `iotrail replay` would with them. */
export const REPLAY_OPTIONS = { invariants: { type: 'boolean' }, schedule: { type: 'string' }, mutant: { type: 'string', multiple: true } } as const;
export const REPLAY_OPTIONS_USAGE = `  --invariants   replay with the invariant checks: a broken invariant is an InvariantViolated entry (bisect --first-internal-error)
  --schedule F   replay under the interleaving of a check counterexample (F.schedule.json; implies --invariants, turns its mutants on)
  --mutant M     turn a seeded bug on (iotrail check --list-mutants); repeatable`;

/**
 * What `--invariants`, `--schedule` and `--mutant` ask for: the replay options, with the mutants switched on (they
 * are module state of the model). Nothing when none is given.
 */
export function replayOpenOptions(o: { invariants?: boolean | undefined; schedule?: string | undefined; mutant?: string[] | undefined }): { replay?: ReplayOptions } {
  if (o.invariants !== true && o.schedule === undefined && (o.mutant ?? []).length === 0) return {};
  try {
    const { schedule } = applyReplayFlags(o);
    return { replay: { invariants: true, ...(schedule === undefined ? {} : { schedule }) } };
  } catch (e) {
    if (e instanceof UnknownMutantError) throw new UsageError(e.message);
    if (!(e instanceof ScheduleReadError)) throw e;
    throw new InputError(`--schedule ${e.path}: ${(e.cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : e.message}`);
  }
}

/** Opens a trace (replaying it), a saved index, or a model event log. */
export async function openAny(path: string, opts: OpenOptions = {}): Promise<TraceIndex> {
  const progress = Progress.forStderr(opts.quiet === true);
  try {
    const replaying = opts.replay !== undefined;
    if (replaying && opts.index !== undefined) throw new UsageError('--index cannot be combined with --invariants, --schedule or --mutant (an index built so is not saved)');
    if (await looksLikeIndex(path)) {
      if (replaying) throw new UsageError(`${path} is a saved index: --invariants, --schedule and --mutant need the trace`);
      return await loadIndex(path);
    }
    if (await looksLikeLog(path)) {
      if (replaying) throw new UsageError(`${path} is a model event log: --invariants, --schedule and --mutant need the trace`);
      const entries: LogEntry[] = [];
      let line = 0;
      for await (const batch of readLineBatches(path)) {
        for (const l of batch) {
          line++;
          if (l.trim() === '') continue;
          const d = decodeEntry(l);
          if (!d.ok) throw new InputError(`${path}: line ${line}: ${d.problem.path ? `${d.problem.path}: ` : ''}${d.problem.message}`);
          entries.push(d.value);
        }
      }
      return indexEntries(entries, opts.k);
    }
    const r = await openIndex(path, opts.index, { k: opts.k, replay: opts.replay, onProgress: (b, t) => progress.update(`indexing ${path}`, b, t) });
    progress.clear();
    if (r.how === 'rebuilt' && opts.quiet !== true) process.stderr.write(`iotrail: rebuilt the index (${r.why})\n`);
    return r.index;
  } catch (e) {
    progress.clear();
    if (e instanceof InputError || e instanceof UsageError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new InputError(`${path}: no such file`);
    if (err.code === 'EISDIR') throw new InputError(`${path}: is a directory (give one trace)`);
    throw new InputError(`${path}: ${err.message}`);
  }
}

/** Runs a command body with the exit codes and messages of the tool. */
export async function runCli(name: string, usage: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`iotrail ${name}: ${e.message}\n${usage}\n`);
      return 2;
    }
    if (e instanceof InputError || e instanceof RangeError) {
      process.stderr.write(`iotrail ${name}: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

export const out = (s: string): void => {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
};

/** JSON for --json output: bigints as hex strings. */
export const jsonText = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x), 2);
