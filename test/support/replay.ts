/**
 * Replaying a trace given as objects (a header, the selftest's by default, then one op per object) for tests that check a whole
 * scenario: the divergences and trace errors come back as readable lines, so `expect(problems).toEqual([])` shows
 * exactly where the model answered differently.
 */
import type { LogEntry } from '../../src/events/domain.js';
import type { State } from '../../src/projections/state.js';
import { Replayer } from '../../src/replay/engine.js';

export const SELFTEST_HEADER = { iotrail: 1, iommufd_test: true, memory: 'explicit', limits: { memlock: 'unlimited', cap_sys_resource: true } };

export function replayOps(lines: object[], header: object = SELFTEST_HEADER): { problems: string[]; entries: LogEntry[]; st: State } {
  const entries: LogEntry[] = [];
  const r = new Replayer((e) => entries.push(e));
  r.feedLine(JSON.stringify(header), 1);
  lines.forEach((l, i) => r.feedLine(JSON.stringify(l), i + 2));
  const s = r.summary();
  return { entries, st: r.st, problems: [...s.divergences.map((d) => `line ${d.line}: ${d.field}: ${d.observed} vs ${d.predicted}: ${d.why}`), ...s.errors.map((e) => JSON.stringify(e))] };
}
