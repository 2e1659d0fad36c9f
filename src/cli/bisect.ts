/** `iotrail bisect TRACE PREDICATE [--linear] [--from N] [--to N] [--json]`: the first entry at which a predicate holds. */
import { parse, parseEntry, PREDICATE_OPTIONS, PREDICATE_USAGE, predicateFrom, UsageError } from '../timetravel/args.js';
import { jsonText, openAny, REPLAY_OPTIONS, REPLAY_OPTIONS_USAGE, replayOpenOptions, out, runCli } from '../timetravel/cli.js';
import { describeEntry, describeMark } from '../timetravel/format.js';
import { bisect } from '../timetravel/queries.js';

export const BISECT_USAGE = `usage: iotrail bisect TRACE PREDICATE [--linear] [--from N] [--to N] [--json] [--index FILE] [--invariants] [--schedule F] [--mutant M]...
PREDICATE: ${PREDICATE_USAGE}
  --first-divergence        the first Diverged entry
  --first-internal-error    the first internal model error or InvariantViolated event
  --first-error             the first of any of those, or a trace error
  --iova-unmapped ADDR --ioas ID   the first entry after ADDR was mapped at which no published area covers it
  --path P --equals VALUE   the first entry at which the value at view path P equals VALUE (JSON, or text)
  --expr EXPR               the first entry at which EXPR holds: e.g. 'accounting.pinnedVm > 0',
                            'len(contexts[0].objects) >= 3 && !exists(contexts[0].objects[id=2])', '$event.type == "Diverged"'
Predicates over the state are found by binary search, which assumes that once the predicate holds it keeps
holding (it returns an entry where it turns true, the first one if that assumption holds); --linear checks every
entry in order instead (exact for any predicate, one state rebuild per entry). Exit status 0 found, 1 not found.
${REPLAY_OPTIONS_USAGE}`;

export async function bisectMain(argv: string[]): Promise<number> {
  return runCli('bisect', BISECT_USAGE, async () => {
    const { values: o, positionals } = parse(argv, {
      ...PREDICATE_OPTIONS, linear: { type: 'boolean' }, from: { type: 'string' }, to: { type: 'string' }, json: { type: 'boolean' }, index: { type: 'string' }, ...REPLAY_OPTIONS, help: { type: 'boolean', short: 'h' },
    });
    if (o.help) {
      out(BISECT_USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'no trace given' : `one trace, got ${positionals.length} arguments`);
    const pred = predicateFrom(o);
    const idx = await openAny(positionals[0]!, { index: o.index as string | undefined, ...replayOpenOptions(o) });
    const from = typeof o.from === 'string' ? parseEntry(idx, o.from, '--from') : undefined;
    const to = typeof o.to === 'string' ? parseEntry(idx, o.to, '--to') : undefined;
    const r = bisect(idx, pred, { mode: o.linear ? 'linear' : 'binary', from, to });
    if (o.json) {
      out(jsonText({ found: r.found, n: r.n ?? null, line: r.mark?.line ?? r.entry?.line ?? null, mode: r.mode, probes: r.probes, message: r.message,
        entry: r.entry ? { n: r.entry.n, line: r.entry.line, tid: r.entry.tid, event: r.entry.ev } : null, mark: r.mark ?? null }));
      return r.found ? 0 : 1;
    }
    out(r.message);
    if (r.mark) out(`  ${describeMark(r.mark)}`);
    if (r.entry) out(`  ${describeEntry(idx, r.entry)}`);
    const line = r.mark?.line ?? r.entry?.line;
    if (line !== undefined) {
      const info = idx.lineInfo(line);
      if (info.note) out(`  note on line ${line}: ${info.note}`);
    }
    out(`  (${r.mode}, ${r.probes} probe${r.probes === 1 ? '' : 's'})`);
    return r.found ? 0 : 1;
  });
}
