/**
 * Replaying one trace file: stream its lines through a `Replayer`, optionally writing the event log, and sum up
 * the verdict. Shared by `iotrail replay` and its worker threads.
 */
import { statSync } from 'node:fs';
import { encodeEntry } from '../events/log.js';
import { readLineBatches } from '../events/reader.js';
import { type Explanation, Replayer, type ReplaySummary } from '../replay/engine.js';
import { AtomicWriter } from './atomic.js';

/** A trace's verdict: the replay's summary (lines, events, divergences, errors, violations, warnings) and more. */
export interface TraceReport extends ReplaySummary {
  readonly file: string;
  readonly passed: boolean;
  readonly source: string | undefined;
  /** With --explain: the model's reason for each failing (or every) call. */
  readonly explanations: readonly Explanation[];
  /** A file that could not be read at all (missing, a directory, unreadable). */
  readonly ioError: string | undefined;
}

export interface ReplayFileOptions {
  readonly invariants?: boolean | undefined;
  readonly schedule?: readonly number[] | undefined;
  readonly log?: string | undefined;
  readonly stop?: boolean | undefined;
  readonly explain?: 'none' | 'errors' | 'all' | undefined;
  /** Overrides the header's `vfio_container`. */
  readonly vfioContainer?: 'iommufd' | 'type1' | undefined;
  /** Called with the byte count read so far, for progress bars. */
  readonly onProgress?: ((bytes: number, total: number) => void) | undefined;
}

export async function replayFile(file: string, opts: ReplayFileOptions = {}): Promise<TraceReport> {
  let total = 0;
  try {
    total = statSync(file).size;
  } catch (e) {
    return failed(file, (e as Error).message);
  }
  const writer = opts.log === undefined ? undefined : new AtomicWriter(opts.log);
  let stopped = false;
  const r = new Replayer(
    writer && ((e) => writer.write(`${encodeEntry(e)}\n`)),
    opts.stop ? () => { stopped = true; } : undefined,
    { ...(opts.invariants ? { invariants: true } : {}), ...(opts.schedule !== undefined ? { schedule: opts.schedule } : {}) },
  );
  r.explain = opts.explain ?? 'none';
  r.vfioContainer = opts.vfioContainer;
  let lineNo = 0;
  let bytes = 0;
  try {
    outer: for await (const batch of readLineBatches(file)) {
      for (const text of batch) {
        r.feedLine(text, ++lineNo);
        bytes += text.length + 1;
        if (stopped) break outer;
      }
      opts.onProgress?.(Math.min(bytes, total), total);
    }
    if (!stopped) r.finish();
    if (lineNo === 0) r.errors.push({ line: 1, path: '', message: 'empty trace: line 1 must be the header' });
    writer?.commit();
  } catch (e) {
    writer?.abort();
    return failed(file, (e as Error).message);
  }
  const s = r.summary();
  return {
    file, passed: s.divergences.length === 0 && s.errors.length === 0 && s.internal.length === 0 && s.violations.length === 0,
    lines: s.lines, events: s.events, divergences: s.divergences, errors: s.errors, internal: s.internal, violations: s.violations, warnings: s.warnings,
    source: r.header.source, ioError: undefined, explanations: r.explanations,
  };
}

const failed = (file: string, ioError: string): TraceReport => ({
  file, passed: false, lines: 0, events: 0, divergences: [], errors: [], internal: [], violations: [], warnings: [], source: undefined, ioError, explanations: [],
});
