import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeEntry } from '../../src/events/log.js';
import { evolve, initialState } from '../../src/projections/state.js';

const ROOT = process.cwd();
const CLI = join(ROOT, 'bin', 'iotrail.js');
const CORE = join(ROOT, '..', 'shared', 'conformance', 'core');
const iotrail = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: ROOT, maxBuffer: 1 << 30 });

let dir = '';
const trace = (name: string, lines: object[]): string => {
  const p = join(dir, name);
  writeFileSync(p, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return p;
};
const H = { iotrail: 1, iommufd_test: true };

beforeAll(() => {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'ignore' });
  dir = mkdtempSync(join(tmpdir(), 'iotrail-cli-'));
});

describe('iotrail replay', () => {
  it('replays a check counterexample under its schedule with its mutant and reports the broken invariant, exit 1', () => {
    const sched = join(ROOT, 'test', 'fixtures', 'mutants', 'access-replace-stale.schedule.json');
    const r = iotrail('replay', '--schedule', sched, '--log', join(dir, 'cx.log.jsonl'));
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^FAIL .*access-replace-stale\.jsonl \(\d+ events, 1 invariant broken\)$/m);
    expect(r.stdout).toMatch(/line \d+: invariant access-one-ioas broken \(log entry \d+\): .*\n {4}rule: /);
    const log = readFileSync(join(dir, 'cx.log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; name?: string });
    expect(log.filter((e) => e.type === 'InvariantViolated').map((e) => e.name)).toEqual(['access-one-ioas']);
    expect(iotrail('replay', '--schedule', sched, '--mutant', 'no-such-bug').status).toBe(2);
  });

  it('exits 0 and ends with "N passed, N failed" when every trace passes', () => {
    const r = iotrail('replay', join(CORE, 'iommufd.cmd_fail.jsonl'), join(CORE, 'iommufd.simple_close.jsonl'));
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('2 passed, 0 failed');
    expect(r.stdout).toMatch(/^PASS .*iommufd.cmd_fail.jsonl/m);
  });

  it('exits 1 on a divergence and says where, what and why', () => {
    const p = trace('diverges.jsonl', [H, { op: 'open', path: '/dev/iommu', ret: '$fd' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: 5 }, errno: 'EBUSY' }]);
    const r = iotrail('replay', p);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/line 3: errno: observed EBUSY, predicted ENOENT\n {4}why: main.c iommufd_object_remove: no object has id 5/);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('0 passed, 1 failed');
  });

  it('exits 2 on a trace error, reporting line and JSON path, and still judges the other lines', () => {
    const p = trace('bad.jsonl', [H, { op: 'open', path: '/dev/iommu', ret: '$fd' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_MAP', arg: { length: '12x' } },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: 0 }, errno: 'EBUSY' }]);
    const r = iotrail('replay', p);
    expect(r.status).toBe(2);
    expect(r.stdout).toContain('line 3: arg.length: expected a u64, got "12x"');
    expect(r.stdout).toContain('line 4: errno: observed EBUSY, predicted ENOENT');
  });

  it('reports a call the model does not cover as a "not modelled yet" divergence, not a crash', () => {
    const p = trace('unmodelled.jsonl', [H, { op: 'open', path: '/dev/iommu', ret: '$fd' }, { op: 'read', fd: '$fd', count: 8, ret: 8 }]);
    const r = iotrail('replay', p);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('not modelled yet: read');
  });

  it('prints at most --max-divergences divergences per trace and says how many it left out', () => {
    const lines: object[] = [H, { op: 'open', path: '/dev/iommu', ret: '$fd' }];
    for (let i = 0; i < 30; i++) lines.push({ op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: 1 }, errno: 'EBUSY' });
    const p = trace('many.jsonl', lines);
    const r = iotrail('replay', '--max-divergences', '5', p);
    expect(r.stdout.match(/errno: observed/g)).toHaveLength(5);
    expect(r.stdout).toContain('... 25 more divergences');
    expect(JSON.parse(iotrail('replay', '--json', p).stdout).traces[0].divergences).toHaveLength(30);
  });

  it('prints a machine-readable report with --json', () => {
    const r = iotrail('replay', '--json', join(CORE, 'iommufd.cmd_fail.jsonl'));
    const j = JSON.parse(r.stdout) as { passed: number; failed: number; traces: { passed: boolean; events: number }[] };
    expect([j.passed, j.failed, j.traces[0]!.passed]).toEqual([1, 0, true]);
    expect(j.traces[0]!.events).toBeGreaterThan(10);
  });

  it('stops at the first divergence with --stop', () => {
    const p = trace('two.jsonl', [H, { op: 'open', path: '/dev/iommu', ret: '$fd' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: 1 }, errno: 'EBUSY' },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: 2 }, errno: 'EBUSY' }]);
    expect(iotrail('replay', p).stdout.match(/errno: observed/g)).toHaveLength(2);
    expect(iotrail('replay', '--stop', p).stdout.match(/errno: observed/g)).toHaveLength(1);
  });

  it('writes a log with --log that rebuilds the same objects, and leaves no partial file', () => {
    const log = join(dir, 'cmd_length.log.jsonl');
    const r = iotrail('replay', '--log', log, join(CORE, 'iommufd.cmd_length.jsonl'));
    expect(r.status).toBe(0);
    const st = initialState();
    for (const l of readFileSync(log, 'utf8').trim().split('\n')) {
      const d = decodeEntry(l);
      if (!d.ok) throw new Error(d.problem.message);
      evolve(st, d.value.ev);
    }
    expect(st.ctxs.size).toBe(0);
    expect(st.fds.size).toBe(1);
    expect(readdirSync(dir).filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('gives the same report with several workers as with one', () => {
    const one = iotrail('replay', '--workers', '1', CORE);
    const many = iotrail('replay', '--workers', '2', CORE);
    expect(many.stdout).toBe(one.stdout);
    expect(many.status).toBe(one.status);
  });

  it('rejects an unknown option and a missing file with exit 2', () => {
    expect(iotrail('replay', '--frobnicate', 'x').status).toBe(2);
    const r = iotrail('replay', join(dir, 'missing.jsonl'));
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no such file');
  });
});
