import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { bisectMain } from '../../src/cli/bisect.js';
import { blameMain } from '../../src/cli/blame.js';
import { debugMain } from '../../src/cli/debug.js';
import { diffMain } from '../../src/cli/diff.js';
import { exportMain } from '../../src/cli/export.js';
import { historyMain } from '../../src/cli/history.js';
import { stateMain } from '../../src/cli/state.js';
import { serveMain } from '../../src/cli/serve.js';
import { decodeEntry } from '../../src/events/log.js';
import { CORE, EXAMPLES } from './support.js';

const EXAMPLE = join(EXAMPLES, 'timetravel', 'timetravel-unmap-twice.jsonl');
const tmp = mkdtempSync(join(tmpdir(), 'iotrail-tt-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let stdout = '', stderr = '';
beforeEach(() => {
  stdout = '';
  stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => { stdout += String(c); return true; });
  vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => { stderr += String(c); return true; });
});
afterEach(() => vi.restoreAllMocks());

describe('iotrail state', () => {
  it('prints the state after an entry or a trace line as tables, or as JSON', async () => {
    expect(await stateMain([EXAMPLE, '--line', '7'])).toBe(0);
    expect(stdout).toMatch(/^state after entry #51 \(trace line 7 of 14\)/);
    expect(stdout).toMatch(/1 +1 +1 +0x1000000 +0x1001fff/);
    stdout = '';
    expect(await stateMain([EXAMPLE, '--at', '51', '--json'])).toBe(0);
    const j = JSON.parse(stdout) as { at: number; line: number; state: { accounting: { pinnedVm: number } } };
    expect(j).toMatchObject({ at: 51, line: 7, state: { accounting: { pinnedVm: 4 } } });
  });

  it('prints one value by path, and exits 1 when nothing is there', async () => {
    expect(await stateMain([EXAMPLE, '--at', '51', '--path', 'contexts[0].objects[id=4].kind'])).toBe(0);
    expect(stdout).toContain('"HWPT_PAGING"');
    expect(await stateMain([EXAMPLE, '--at', '51', '--path', 'contexts[0].objects[id=9]'])).toBe(1);
  });

  it('says what is wrong with its arguments, with exit status 2', async () => {
    expect(await stateMain([EXAMPLE, '--at', '999'])).toBe(2);
    expect(stderr).toMatch(/--at 999 is out of range: entries run from 0 to 92/);
    expect(await stateMain([])).toBe(2);
    expect(stderr).toContain('no trace given');
    expect(await stateMain([join(tmp, 'nope.jsonl')])).toBe(2);
    expect(stderr).toContain('no such file');
    expect(await stateMain([EXAMPLE, '--bogus'])).toBe(2);
    expect(stderr).toMatch(/Unknown option '--bogus'/);
  });

  it('uses a saved index beside the trace, and rebuilds it when the trace changed', async () => {
    const t = join(tmp, 'copy.jsonl'), ip = join(tmp, 'copy.ttindex');
    writeFileSync(t, readFileSync(EXAMPLE));
    expect(await stateMain([t, '--index', ip, '--at', '10'])).toBe(0);
    expect(existsSync(ip)).toBe(true);
    const first = stdout;
    stdout = '';
    expect(await stateMain([t, '--index', ip, '--at', '10'])).toBe(0);
    expect(stdout).toBe(first);
    writeFileSync(t, readFileSync(join(CORE, 'iommufd.simple_close.jsonl')));
    expect(await stateMain([t, '--index', ip, '--at', 'end'])).toBe(0);
    expect(stderr).toMatch(/rebuilt the index .*another version/);
    // An index can be opened on its own.
    stdout = '';
    expect(await stateMain([ip, '--at', 'end', '--json'])).toBe(0);
    expect(JSON.parse(stdout).at).toBeGreaterThan(0);
  });
});

describe('iotrail diff, history, blame, bisect', () => {
  it('diff prints the changes between two entries', async () => {
    expect(await diffMain([EXAMPLE, 'line:8', 'line:9'])).toBe(0);
    expect(stdout).toContain('- contexts[id=1].objects[id=1].ioas.areas[id=1]:');
    expect(stdout).toContain('~ accounting.pinnedVm: 4 -> 2');
    stdout = '';
    expect(await diffMain([EXAMPLE, '3', '3'])).toBe(0);
    expect(stdout).toBe('no difference between entry 3 and entry 3\n');
    expect(await diffMain([EXAMPLE, '3'])).toBe(2);
  });

  it('history prints every entry that touched an IOVA, an object, a page, a domain', async () => {
    expect(await historyMain([EXAMPLE, '--iova', '0x1000000', '--ioas', '1'])).toBe(0);
    expect(stdout).toMatch(/^history of IOVA 0x1000000 of IOAS 1: 12 entries/);
    expect(stdout).toContain('#30 line 6 [ioctl IOMMU_IOAS_MAP] AreaReserved ctx=1 ioas=1 area=1');
    stdout = '';
    expect(await historyMain([EXAMPLE, '--object', '4', '--ctx', '1', '--json'])).toBe(0);
    const j = JSON.parse(stdout) as { entries: { event: { type: string } }[] };
    expect(j.entries[0]!.event.type).toBe('ObjectAllocated');
    stdout = '';
    expect(await historyMain([EXAMPLE, '--page', '1', '--pages', '2'])).toBe(0);
    expect(stdout).toContain('PagesPinned pages=2 start=0 last=1');
    expect(await historyMain([EXAMPLE, '--domain', '7'])).toBe(1);
    expect(await historyMain([EXAMPLE, '--iova', '0x1000'])).toBe(2);
    expect(stderr).toContain('--iova needs --ioas');
  });

  it('blame names the entry that last changed a value', async () => {
    expect(await blameMain([EXAMPLE, '--path', 'contexts[0].objects[0].users', '--at', 'line:9'])).toBe(0);
    expect(stdout).toMatch(/^contexts\[id=1\]\.objects\[id=1\]\.users at entry 63: 2\n  last changed by #62 line 9 \[ioctl IOMMU_IOAS_UNMAP\] ObjectRefDropped ctx=1 id=1 by=0\n  before it: 3/);
    stdout = '';
    expect(await blameMain([EXAMPLE, '--path', 'accounting.pinnedVm', '--at', '55', '--fast', '--json'])).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ value: 4, entry: { n: 46, line: 7 }, before: 2, mode: 'bisect' });
    expect(await blameMain([EXAMPLE, '--path', 'a[', '--at', '55'])).toBe(2);
  });

  it('bisect finds the first divergence of the hand-made example, on line 10', async () => {
    expect(await bisectMain([EXAMPLE, '--first-divergence'])).toBe(0);
    expect(stdout).toMatch(/^first divergence: entry 65 \(line 10: ret: observed 0, predicted ENOENT/);
    stdout = '';
    expect(await bisectMain([EXAMPLE, '--first-error', '--json'])).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ found: true, n: 65, line: 10 });
    expect(await bisectMain([EXAMPLE, '--first-internal-error'])).toBe(1);
    stdout = '';
    expect(await bisectMain([EXAMPLE, '--iova-unmapped', '0x1000000', '--ioas', '1'])).toBe(0);
    expect(stdout).toMatch(/^first IOVA 0x1000000 of IOAS 1 unmapped: entry 54 \(line 9\)/);
    stdout = '';
    // Object 4 is gone at the end: a binary search over the whole log does not find it finalized…
    expect(await bisectMain([EXAMPLE, '--path', 'contexts[0].objects[id=4].life', '--equals', 'finalized'])).toBe(1);
    expect(stdout).toMatch(/does not hold at entry 92/);
    stdout = '';
    // …up to line 11 it does.
    expect(await bisectMain([EXAMPLE, '--path', 'contexts[0].objects[id=4].life', '--equals', 'finalized', '--to', 'line:11'])).toBe(0);
    expect(stdout).toMatch(/entry 24 \(line 5\)/);
    stdout = '';
    expect(await bisectMain([EXAMPLE, '--expr', 'len(domains[id=1].map) == 2', '--linear'])).toBe(0);
    expect(stdout).toMatch(/entry 48 \(line 7\)/);
    expect(await bisectMain([EXAMPLE])).toBe(2);
    expect(await bisectMain([EXAMPLE, '--expr', 'a =='])).toBe(2);
  });
});

describe('iotrail debug', () => {
  it('runs -e commands without a prompt', async () => {
    expect(await debugMain([EXAMPLE, '-e', 'goto 30', '-e', 'areas', '-e', 'quit', '-e', 'print'])).toBe(0);
    expect(stdout).toMatch(/^at #30 of 92, trace line 6 of 14 \[ioctl IOMMU_IOAS_MAP\]/);
    expect(stdout).toMatch(/1 +1 +1 +0x1000000 +0x1001fff +1 +0-1 +3 +no/);
    expect(stdout).not.toContain('objects ('); // nothing after quit
  });
});

describe('iotrail export', () => {
  it('writes Chrome trace-event JSON with a track per thread and per object, atomically', async () => {
    const out = join(tmp, 'x.perfetto.json');
    expect(await exportMain(['--perfetto', EXAMPLE, '--out', out])).toBe(0);
    expect(readdirSync(tmp).filter((f) => f.includes('.partial-'))).toEqual([]);
    const j = JSON.parse(readFileSync(out, 'utf8')) as { traceEvents: { name: string; ph: string; pid: number; tid: number; ts: number; dur?: number; args?: Record<string, unknown> }[]; displayTimeUnit: string };
    const ev = j.traceEvents;
    expect(ev.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.pid === 1).map((e) => e.args?.name)).toEqual(['trace header', 'tid 1']);
    expect(ev.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.pid === 2).map((e) => e.args?.name)).toEqual(['ctx 1 object 1', 'ctx 1 object 2', 'ctx 1 object 3', 'ctx 1 object 4']);
    const calls = ev.filter((e) => e.ph === 'X' && e.pid === 1);
    expect(calls.length).toBe(14);
    expect(calls.find((e) => e.args?.line === 6)).toMatchObject({ name: 'ioctl IOMMU_IOAS_MAP', args: { note: 'two pages at IOVA 0x1000000' } });
    const lives = ev.filter((e) => e.ph === 'X' && e.pid === 2);
    expect(lives.map((e) => e.name).sort()).toEqual(['DEVICE 3', 'HWPT_PAGING 4', 'IOAS 1', 'SELFTEST 2']);
    expect(lives.find((e) => e.name === 'IOAS 1')).toMatchObject({ ts: 6, args: { end: 'destroyed', endLine: 13 } });
    expect(ev.filter((e) => e.name === 'DIVERGENCE')).toEqual([expect.objectContaining({ ph: 'i', ts: 65, args: expect.objectContaining({ line: 10 }) })]);
    expect(ev.some((e) => e.ph === 'C' && e.name === 'pinned pages')).toBe(true);
    for (const e of ev) if (e.ph === 'X') expect(e.dur!).toBeGreaterThan(0);
  });

  it('writes the index and the model log, which open again as traces', async () => {
    const ip = join(tmp, 'ex.ttindex'), lp = join(tmp, 'ex.log.jsonl');
    expect(await exportMain(['--index', EXAMPLE, '--out', ip])).toBe(0);
    expect(await exportMain(['--log', EXAMPLE, '--out', lp])).toBe(0);
    expect(readFileSync(lp, 'utf8').trim().split('\n').map((l) => decodeEntry(l).ok)).toEqual(Array(93).fill(true));
    stdout = '';
    expect(await bisectMain([ip, '--first-divergence'])).toBe(0);
    expect(stdout).toMatch(/^first divergence: entry 65 \(line 10/);
    expect(stdout).toContain('[ioctl IOMMU_IOAS_UNMAP]'); // the index found its trace for the labels
    stdout = '';
    expect(await bisectMain([lp, '--first-divergence'])).toBe(0);
    expect(stdout).toMatch(/^first divergence: entry 65 \(line 10/);
  });
});

describe('iotrail serve', () => {
  it('serves for a bounded time and stops by itself', async () => {
    const t0 = Date.now();
    expect(await serveMain([EXAMPLE, '--port', '0', '--for', '0.3'])).toBe(0);
    expect(stdout).toMatch(/^iotrail serve: http:\/\/127\.0\.0\.1:\d+\/ \(93 log entries, 1 divergences and errors\)/);
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(await serveMain([EXAMPLE, '--port', '70000'])).toBe(2);
  });
});
