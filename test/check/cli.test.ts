import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkMain } from '../../src/cli/check.js';
import type { CheckReport } from '../../src/check/output.js';

let out = '', err = '';
function capture(): void {
  out = '';
  err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { out += String(s); return true; });
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { err += String(s); return true; });
}
afterEach(() => vi.restoreAllMocks());

describe('iotrail check', () => {
  it('lists the mutants and the invariants', async () => {
    capture();
    expect(await checkMain(['--list-mutants'])).toBe(0);
    expect(out).toMatch(/^unfill-past-end\n  B2/m);
    capture();
    expect(await checkMain(['--list-invariants', '--json'])).toBe(0);
    expect((JSON.parse(out) as { name: string }[]).map((i) => i.name)).toContain('pin-conservation');
  });

  it('exits 2 on a bad option, an unknown mutant, or both --runs and --time', async () => {
    capture();
    expect(await checkMain(['--runs', 'x'])).toBe(2);
    expect(await checkMain(['--mutant', 'nope'])).toBe(2);
    expect(await checkMain(['--runs', '5', '--time', '5'])).toBe(2);
    expect(await checkMain(['--shard', '2/2'])).toBe(2);
    expect(err).toMatch(/--shard takes I\/N/);
  });

  it('finds nothing in the model and says so, exit 0', async () => {
    capture();
    const dir = mkdtempSync(join(tmpdir(), 'iotrail-cli-'));
    expect(await checkMain(['--seed', '3', '--runs', '100', '--out', dir])).toBe(0);
    expect(out).toMatch(/^iotrail check: seed 3, 3 thread\(s\)/);
    expect(out).toMatch(/100 run\(s\) in .* s, no invariant broken\n$/);
  });

  it('reports a broken invariant with its files, exit 1, and reproduces it from the schedule', async () => {
    capture();
    const dir = mkdtempSync(join(tmpdir(), 'iotrail-cli-'));
    expect(await checkMain(['--seed', '5', '--runs', '200', '--ignore-locks', '--out', dir, '--json'])).toBe(1);
    const r = JSON.parse(out) as CheckReport;
    expect(r.failure?.files?.schedule).toMatch(/check-model-s5-b\d+\.schedule\.json$/);
    capture();
    expect(await checkMain(['--reproduce', r.failure!.files!.schedule])).toBe(1);
    expect(out).toContain(`FAIL ${r.failure!.violation.name} at trace line ${r.failure!.violation.line}`);
  });

  it('merges shard reports: runs add up, the lowest failing batch wins', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iotrail-cli-'));
    const paths: string[] = [];
    for (const s of ['0/2', '1/2']) {
      capture();
      await checkMain(['--seed', '5', '--runs', '100', '--ignore-locks', '--shard', s, '--out', dir, '--json']);
      const p = join(dir, `r${s[0]}.json`);
      writeFileSync(p, out);
      paths.push(p);
    }
    capture();
    const code = await checkMain(['--merge', ...paths, '--json']);
    const m = JSON.parse(out) as CheckReport;
    expect(code).toBe(m.failure === undefined ? 0 : 1);
    expect(m.shard).toEqual({ index: 0, count: 1 });
    expect(m.batches.length).toBeGreaterThan(1);
  });
});
