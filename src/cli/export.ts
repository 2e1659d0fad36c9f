/**
 * `iotrail export --perfetto TRACE [--out FILE]`: the trace's event log as Chrome trace-event JSON, for Perfetto
 * (ui.perfetto.dev) or chrome://tracing. Also `--index` (the time-travel index, to reuse with --index or to open
 * directly) and `--log` (the model's event log as JSONL, as `iotrail replay --log` writes it). Files are written
 * atomically.
 */
import { basename } from 'node:path';
import { AtomicWriter } from './atomic.js';
import { encodeEntry } from '../events/log.js';
import { parse, UsageError } from '../timetravel/args.js';
import { openAny, REPLAY_OPTIONS, REPLAY_OPTIONS_USAGE, replayOpenOptions, out, runCli } from '../timetravel/cli.js';
import type { TraceIndex } from '../timetravel/index.js';
import { perfettoEvents } from '../timetravel/perfetto.js';
import { INDEX_SUFFIX, looksLikeIndex, saveIndex } from '../timetravel/store.js';

export const EXPORT_USAGE = `usage: iotrail export (--perfetto | --index | --log) TRACE [--out FILE] [--index-file FILE] [--invariants] [--schedule F] [--mutant M]...
  --perfetto   Chrome trace-event JSON (open it in ui.perfetto.dev): a track per thread (a slice per trace line, the
               divergences and errors marked), a track per object (its lifetime, what touched it), a track per
               domain, counters of live objects and pinned pages; time is the log entry number (1 entry = 1 us)
  --index      the time-travel index (default FILE: TRACE${INDEX_SUFFIX}, beside the trace)
  --log        the model's event log, JSON Lines
  --out FILE   where to write (default: TRACE.perfetto.json, TRACE${INDEX_SUFFIX}, TRACE.log.jsonl)
${REPLAY_OPTIONS_USAGE}`;

/** Writes lines through an atomic writer: the file appears whole or not at all. */
function writeAtomic(path: string, write: (w: (s: string) => void) => void): void {
  const w = new AtomicWriter(path);
  try {
    write((s) => w.write(s));
    w.commit();
  } catch (e) {
    w.abort();
    throw e;
  }
}

export function writePerfetto(idx: TraceIndex, path: string, traceName: string): number {
  let n = 0;
  writeAtomic(path, (w) => {
    w('{"traceEvents":[\n');
    for (const ev of perfettoEvents(idx, traceName)) {
      w(`${n === 0 ? '' : ',\n'}${JSON.stringify(ev)}`);
      n++;
    }
    w(`\n],"displayTimeUnit":"ns","otherData":${JSON.stringify({ tool: 'iotrail export --perfetto', trace: traceName, entries: idx.count, lines: idx.lines, source: idx.meta.source })}}\n`);
  });
  return n;
}

export async function exportMain(argv: string[]): Promise<number> {
  return runCli('export', EXPORT_USAGE, async () => {
    const { values: o, positionals } = parse(argv, {
      perfetto: { type: 'boolean' }, index: { type: 'boolean' }, log: { type: 'boolean' }, out: { type: 'string' }, 'index-file': { type: 'string' }, ...REPLAY_OPTIONS, help: { type: 'boolean', short: 'h' },
    });
    if (o.help) {
      out(EXPORT_USAGE);
      return 0;
    }
    const kinds = (['perfetto', 'index', 'log'] as const).filter((k) => o[k] === true);
    if (kinds.length !== 1) throw new UsageError('choose one of --perfetto, --index, --log');
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'no trace given' : `one trace, got ${positionals.length} arguments`);
    const trace = positionals[0]!;
    const kind = kinds[0]!;
    const dest = typeof o.out === 'string' ? o.out : `${trace}${kind === 'perfetto' ? '.perfetto.json' : kind === 'index' ? INDEX_SUFFIX : '.log.jsonl'}`;
    const idx = await openAny(trace, { index: o['index-file'] as string | undefined, ...replayOpenOptions(o) });
    if (kind === 'perfetto') {
      const n = writePerfetto(idx, dest, basename(trace));
      out(`wrote ${dest}: ${n} trace events (${idx.count} log entries; open it in https://ui.perfetto.dev)`);
    } else if (kind === 'index') {
      const bytes = saveIndex(idx, dest, idx.chunks.length > 0 && !(await looksLikeIndex(trace)) ? trace : undefined);
      out(`wrote ${dest}: ${idx.count} log entries, ${idx.checkpoints.length} snapshots rebuilt on load, ${bytes} bytes`);
    } else {
      writeAtomic(dest, (w) => {
        for (const e of idx.entries()) w(`${encodeEntry(e)}\n`);
      });
      out(`wrote ${dest}: ${idx.count} log entries`);
    }
    return 0;
  });
}
