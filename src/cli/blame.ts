/** `iotrail blame TRACE --path P --at N [--fast] [--json]`: the log entry that last changed the value at a view path. */
import { parse, parseEntry, UsageError } from '../timetravel/args.js';
import { jsonText, openAny, REPLAY_OPTIONS, REPLAY_OPTIONS_USAGE, replayOpenOptions, out, runCli } from '../timetravel/cli.js';
import { describeEntry } from '../timetravel/format.js';
import { short } from '../timetravel/json.js';
import { PathError } from '../timetravel/path.js';
import { blame } from '../timetravel/queries.js';

export const BLAME_USAGE = `usage: iotrail blame TRACE --path P [--at N] [--fast] [--json] [--index FILE] [--invariants] [--schedule F] [--mutant M]...
  --path P   a view path: contexts[0].objects[1].users, contexts[id=1].objects[id=2].life, pages[id=1].pinned,
             accounting.pinnedVm (see iotrail state --json for the view); [i] is the i-th element at N, [id=X] the
             element whose id is X
  --at N     the entry to look back from (default end)
  --fast     binary search over rebuilt states: O(log n) rebuilds, but it assumes the value never changed away and
             back (A -> B -> A) before N; the default walks back through every entry that touches the path
${REPLAY_OPTIONS_USAGE}`;

export async function blameMain(argv: string[]): Promise<number> {
  return runCli('blame', BLAME_USAGE, async () => {
    const { values: o, positionals } = parse(argv, {
      path: { type: 'string' }, at: { type: 'string' }, fast: { type: 'boolean' }, json: { type: 'boolean' }, index: { type: 'string' }, ...REPLAY_OPTIONS, help: { type: 'boolean', short: 'h' },
    });
    if (o.help) {
      out(BLAME_USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'no trace given' : `one trace, got ${positionals.length} arguments`);
    if (typeof o.path !== 'string') throw new UsageError('--path P is required');
    const idx = await openAny(positionals[0]!, { index: o.index as string | undefined, ...replayOpenOptions(o) });
    const at = parseEntry(idx, typeof o.at === 'string' ? o.at : 'end', '--at');
    let r;
    try {
      r = blame(idx, o.path, at, { mode: o.fast ? 'bisect' : 'walk' });
    } catch (e) {
      if (e instanceof PathError) throw new UsageError(e.message);
      throw e;
    }
    if (o.json) {
      out(jsonText({ path: r.path, canonical: r.canonical, at: r.at, value: r.value ?? null, present: r.value !== undefined,
        entry: r.entry ? { n: r.entry.n, line: r.entry.line, tid: r.entry.tid, event: r.entry.ev } : null, before: r.before ?? null, mode: r.mode, rebuilds: r.rebuilds }));
      return 0;
    }
    out(`${r.canonical} at entry ${at}: ${short(r.value, 200)}`);
    if (r.entry === undefined) out('  unchanged since the initial state');
    else {
      out(`  last changed by ${describeEntry(idx, r.entry)}`);
      out(`  before it: ${short(r.before, 200)}`);
      const note = idx.lineInfo(r.entry.line).note;
      if (note) out(`  note on line ${r.entry.line}: ${note}`);
    }
    return 0;
  });
}
