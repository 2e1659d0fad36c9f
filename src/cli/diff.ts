/** `iotrail diff TRACE N M [--json] [--index FILE]`: what changed in the model's state from entry N to entry M. */
import { parse, parseEntry, UsageError } from '../timetravel/args.js';
import { jsonText, openAny, REPLAY_OPTIONS, REPLAY_OPTIONS_USAGE, replayOpenOptions, out, runCli } from '../timetravel/cli.js';
import { formatChange } from '../timetravel/format.js';
import { diff } from '../timetravel/queries.js';

export const DIFF_USAGE = `usage: iotrail diff TRACE N M [--json] [--index FILE] [--invariants] [--schedule F] [--mutant M]...
  N, M          log entries (-1 or start: the initial state; end; line:L: after trace line L)
  --json        the changes as JSON: [{path, op: added|removed|changed, before, after}]
  --index FILE  use the time-travel index FILE for this trace (built and saved there if missing or stale)
Lines read "+ path: value" (added), "- path: value" (removed), "~ path: before -> after" (changed).
${REPLAY_OPTIONS_USAGE}`;

export async function diffMain(argv: string[]): Promise<number> {
  return runCli('diff', DIFF_USAGE, async () => {
    const { values: o, positionals } = parse(argv, { json: { type: 'boolean' }, index: { type: 'string' }, ...REPLAY_OPTIONS, help: { type: 'boolean', short: 'h' } });
    if (o.help) {
      out(DIFF_USAGE);
      return 0;
    }
    if (positionals.length !== 3) throw new UsageError('expected TRACE N M');
    const idx = await openAny(positionals[0]!, { index: o.index as string | undefined, ...replayOpenOptions(o) });
    const n = parseEntry(idx, positionals[1]!, 'N'), m = parseEntry(idx, positionals[2]!, 'M');
    const changes = diff(idx, n, m);
    if (o.json) out(jsonText({ from: n, to: m, changes }));
    else if (changes.length === 0) out(`no difference between entry ${n} and entry ${m}`);
    else out(changes.map(formatChange).join('\n'));
    return 0;
  });
}
