/**
 * `iotrail state TRACE [--at N | --line L] [--path P] [--json] [--index FILE]`: the model's state at a point of a
 * trace (time travel, issue #7).
 */
import { entryOfLine, parse, parseEntry, UsageError } from '../timetravel/args.js';
import { jsonText, openAny, REPLAY_OPTIONS, REPLAY_OPTIONS_USAGE, replayOpenOptions, out, runCli } from '../timetravel/cli.js';
import { pretty, stateText } from '../timetravel/format.js';
import { canonicalPath, getAt, parsePath, PathError } from '../timetravel/path.js';
import { stateAt } from '../timetravel/queries.js';

export const STATE_USAGE = `usage: iotrail state TRACE [--at N | --line L] [--path P] [--json] [--index FILE] [--invariants] [--schedule F] [--mutant M]...
  --at N        the state after log entry N (-1 or start: the initial state; end: after the last entry; default end)
  --line L      the state after trace line L
  --path P      only the value at view path P (contexts[0].objects[id=2].users, pages[id=1].pinned, accounting)
  --json        the view as JSON (the canonical view of src/projections/snapshot.ts)
  --index FILE  use the time-travel index FILE for this trace (built and saved there if missing or stale)
TRACE may also be a saved index or a model event log (iotrail replay --log).
${REPLAY_OPTIONS_USAGE}`;

export async function stateMain(argv: string[]): Promise<number> {
  return runCli('state', STATE_USAGE, async () => {
    const { values: o, positionals } = parse(argv, {
      at: { type: 'string' }, line: { type: 'string' }, path: { type: 'string' }, json: { type: 'boolean' }, index: { type: 'string' }, ...REPLAY_OPTIONS, help: { type: 'boolean', short: 'h' },
    });
    if (o.help) {
      out(STATE_USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'no trace given' : `one trace, got ${positionals.length} arguments`);
    if (o.at !== undefined && o.line !== undefined) throw new UsageError('give --at or --line, not both');
    const idx = await openAny(positionals[0]!, { index: o.index as string | undefined, ...replayOpenOptions(o) });
    const n = typeof o.line === 'string' ? entryOfLine(idx, Number(o.line)) : parseEntry(idx, typeof o.at === 'string' ? o.at : 'end', '--at');
    const view = stateAt(idx, n);
    const where = n < 0 ? 'the initial state' : `after entry #${n} (trace line ${idx.entry(n).line} of ${idx.lines})`;
    if (typeof o.path === 'string') {
      let steps;
      try {
        steps = canonicalPath(view, parsePath(o.path));
      } catch (e) {
        if (e instanceof PathError) throw new UsageError(e.message);
        throw e;
      }
      const v = getAt(view, steps);
      if (o.json) out(jsonText({ at: n, path: o.path, value: v ?? null, present: v !== undefined }));
      else out(`${o.path} ${where}:\n${pretty(v)}`);
      return v === undefined ? 1 : 0;
    }
    if (o.json) out(jsonText({ at: n, line: n < 0 ? null : idx.entry(n).line, state: view }));
    else out(`state ${where}\n\n${stateText(view)}`);
    return 0;
  });
}
