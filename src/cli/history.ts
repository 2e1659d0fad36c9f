/**
 * `iotrail history TRACE SELECTOR [--json] [--limit N]`: every log entry that touched an object, an IOVA of an
 * IOAS, a page of an iopt_pages, a domain, an fd.
 */
import { parse, SELECTOR_OPTIONS, SELECTOR_USAGE, selectorFrom, UsageError } from '../timetravel/args.js';
import { jsonText, openAny, REPLAY_OPTIONS, REPLAY_OPTIONS_USAGE, replayOpenOptions, out, runCli } from '../timetravel/cli.js';
import { describeEntry } from '../timetravel/format.js';
import { describeSelector, history } from '../timetravel/queries.js';

export const HISTORY_USAGE = `usage: iotrail history TRACE SELECTOR [--json] [--limit N] [--index FILE] [--invariants] [--schedule F] [--mutant M]...
SELECTOR: ${SELECTOR_USAGE}
  --object ID [--ctx C]      entries naming object ID (of context C): alloc, finalize, references, attach, destroy
  --iova ADDR --ioas ID      entries touching that IOVA: its area (through splits), reserved/allowed ranges, the
                             pages behind it, access pins, the mappings of the domains attached to the IOAS
  --page I --pages P         entries touching page I of iopt_pages P (--pages P alone: any page of it)
  --domain D, --fd F, --type EVENT, --line L
  --limit N                  at most N entries
${REPLAY_OPTIONS_USAGE}`;

export async function historyMain(argv: string[]): Promise<number> {
  return runCli('history', HISTORY_USAGE, async () => {
    const { values: o, positionals } = parse(argv, {
      ...SELECTOR_OPTIONS, json: { type: 'boolean' }, limit: { type: 'string' }, index: { type: 'string' }, ...REPLAY_OPTIONS, help: { type: 'boolean', short: 'h' },
    });
    if (o.help) {
      out(HISTORY_USAGE);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'no trace given' : `one trace, got ${positionals.length} arguments`);
    const sel = selectorFrom(o);
    const limit = o.limit === undefined ? undefined : Number(o.limit);
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) throw new UsageError('--limit takes a whole number');
    const idx = await openAny(positionals[0]!, { index: o.index as string | undefined, ...replayOpenOptions(o) });
    const es = history(idx, sel, { limit });
    if (o.json) out(jsonText({ selector: sel, entries: es.map((e) => ({ n: e.n, line: e.line, tid: e.tid, label: idx.lineInfo(e.line).label, event: e.ev })) }));
    else {
      out(`history of ${describeSelector(sel)}: ${es.length} entr${es.length === 1 ? 'y' : 'ies'}`);
      for (const e of es) out(`  ${describeEntry(idx, e)}`);
    }
    return es.length > 0 ? 0 : 1;
  });
}
