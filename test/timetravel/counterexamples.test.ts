/**
 * Bisect over what `iotrail check` writes: the counterexample's model log (`.log.jsonl`, opened by every time-travel
 * command), and the checked-in counterexamples of the seeded bugs replayed under their schedules.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULTS } from '../../src/check/explore.js';
import { setMutants } from '../../src/check/mutants.js';
import { runCheck } from '../../src/check/run.js';
import { bisectMain } from '../../src/cli/bisect.js';
import type { LogEntry } from '../../src/events/domain.js';
import { Replayer } from '../../src/replay/engine.js';
import { indexEntries } from '../../src/timetravel/index.js';
import { bisect, firstInternalError } from '../../src/timetravel/queries.js';

const FIXTURES = 'test/fixtures/mutants';
const tmp = mkdtempSync(join(tmpdir(), 'iotrail-tt-cx-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  setMutants([]);
  vi.restoreAllMocks();
});

describe('bisect over check counterexamples', () => {
  it('finds the InvariantViolated entry of the log iotrail check wrote, at the line the check reported', async () => {
    const report = await runCheck({
      seed: 1, threads: DEFAULTS.threads, maxChoices: DEFAULTS.maxChoices, batchRuns: DEFAULTS.batchRuns,
      mutants: ['hwpt-list-dup'], runs: 200, shard: { index: 0, count: 1 }, workers: 1, outDir: tmp,
    });
    setMutants([]);
    const f = report.failure;
    expect(f?.files).toBeDefined();
    let out = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => { out += String(c); return true; });
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(await bisectMain([f!.files!.log, '--first-internal-error', '--json'])).toBe(0);
    const r = JSON.parse(out) as { found: boolean; entry?: { line: number; event: { type: string; name?: string } } };
    expect(r.found).toBe(true);
    expect(r.entry).toMatchObject({ line: f!.violation.line, event: { type: 'InvariantViolated', name: 'hwpt-list-set' } });
  });

  it('finds where a seeded bug breaks an invariant in the hand-made example, and nothing without it', async () => {
    const example = join('examples', 'timetravel', 'timetravel-stale-iotlb.jsonl');
    let out = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => { out += String(c); return true; });
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(await bisectMain([example, '--invariants', '--first-internal-error'])).toBe(1);
    out = '';
    expect(await bisectMain([example, '--mutant', 'unpin-before-flush', '--first-internal-error', '--json'])).toBe(0);
    const r = JSON.parse(out) as { line: number; entry: { event: { type: string; name: string } } };
    expect(r.line).toBe(8);
    expect(r.entry.event).toMatchObject({ type: 'InvariantViolated', name: 'unpin-after-unmap' });
  });

  it('refuses to combine a replay under a schedule with a saved index or a model log', async () => {
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const sched = join(FIXTURES, 'hwpt-list-dup.schedule.json');
    expect(await bisectMain([join(FIXTURES, 'hwpt-list-dup.jsonl'), '--schedule', sched, '--index', join(tmp, 'x.idx'), '--first-error'])).toBe(2);
    expect(await bisectMain([join(FIXTURES, 'hwpt-list-dup.jsonl'), '--mutant', 'no-such-bug', '--first-error'])).toBe(2);
    expect(await bisectMain([join(FIXTURES, 'hwpt-list-dup.jsonl'), '--schedule', join(tmp, 'missing.json'), '--first-error'])).toBe(2);
  });

  const sidecars = readdirSync(FIXTURES).filter((x) => x.endsWith('.schedule.json')).sort();
  it.each(sidecars)('finds the first violated invariant of %s replayed under its schedule', (file) => {
    const s = JSON.parse(readFileSync(join(FIXTURES, file), 'utf8')) as { trace: string; schedule: number[]; mutants: string[]; violation: { name: string; line: number } };
    setMutants(s.mutants);
    const log: LogEntry[] = [];
    const r = new Replayer((e) => log.push(e), undefined, { schedule: s.schedule, invariants: true });
    readFileSync(join(FIXTURES, s.trace), 'utf8').split('\n').forEach((l, i) => r.feedLine(l, i + 1));
    r.finish();
    const first = log.find((e) => e.ev.type === 'InvariantViolated');
    expect(first?.ev).toMatchObject({ type: 'InvariantViolated', name: s.violation.name });
    const b = bisect(indexEntries(log), firstInternalError());
    expect(b.found).toBe(true);
    expect(b.entry?.line ?? b.mark?.line).toBe(s.violation.line);
    // An event the state refused (evolve-accepts) is itself the first error: the index re-folds it and it throws
    // again; any other invariant breaks at its InvariantViolated entry.
    if (s.violation.name === 'evolve-accepts') expect(b).toMatchObject({ n: (first!.ev as { at: number }).at, mark: { kind: 'internal' } });
    else expect(b.n).toBe(first!.n);
  });
});
