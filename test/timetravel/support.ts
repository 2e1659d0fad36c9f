/** Shared helpers of the time-travel tests: conformance traces, reference replays. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LogEntry } from '../../src/events/domain.js';
import { foldEntry, viewOf } from '../../src/timetravel/index.js';
import { initialState } from '../../src/projections/state.js';
import { Replayer } from '../../src/replay/engine.js';
import type { Json } from '../../src/timetravel/json.js';

export const CORE = join(process.cwd(), '..', 'shared', 'conformance', 'core');
export const EXAMPLES = join(process.cwd(), 'examples');

/** The conformance traces of core/ with at most `maxLines` lines, in name order. */
export function coreTraces(maxLines = 200): string[] {
  return readdirSync(CORE).filter((f) => f.endsWith('.jsonl')).sort()
    .map((f) => join(CORE, f))
    .filter((f) => readFileSync(f, 'utf8').split('\n').length <= maxLines + 1);
}

/** The log of a trace by a plain replay, and the view after each entry (index i: after entry i), by a plain fold. */
export function reference(text: string): { entries: LogEntry[]; views: Json[]; initial: Json } {
  const entries: LogEntry[] = [];
  const r = new Replayer((e) => entries.push(e));
  text.split('\n').forEach((l, i) => { if (i < text.split('\n').length - 1 || l !== '') r.feedLine(l, i + 1); });
  const st = initialState();
  const initial = viewOf(st);
  const views = entries.map((e) => {
    foldEntry(st, e);
    return viewOf(st);
  });
  return { entries, views, initial };
}
