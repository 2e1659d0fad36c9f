import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { indexText, BLOCK, stateWeight } from '../../src/timetravel/index.js';
import { buildIndexFromFile, loadIndex, saveIndex, indexBytes, deserializeIndex, openIndex, BadIndexError } from '../../src/timetravel/store.js';
import { coreTraces, reference } from './support.js';

const tmp = mkdtempSync(join(tmpdir(), 'iotrail-tt-index-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the time-travel index', () => {
  const traces = coreTraces(120);

  it('finds enough small conformance traces to test on', () => {
    expect(traces.length).toBeGreaterThan(40);
  });

  it('rebuilds the state at every entry of every small conformance trace exactly as a plain fold does', () => {
    for (const f of traces) {
      const text = readFileSync(f, 'utf8');
      const ref = reference(text);
      const idx = indexText(text, 7, 0);
      expect(idx.count, f).toBe(ref.entries.length);
      expect(idx.viewAt(-1), f).toEqual(ref.initial);
      // Forward, backward and scattered, so both the snapshots and the working copy are exercised.
      const order = [...ref.views.keys()];
      for (const n of [...order, ...order.slice().reverse(), ...order.filter((i) => i % 3 === 0).reverse()]) expect(idx.viewAt(n), `${f} at ${n}`).toEqual(ref.views[n]);
    }
  });

  it('gives back every log entry exactly as the replay emitted it', () => {
    for (const f of traces.slice(0, 20)) {
      const text = readFileSync(f, 'utf8');
      const ref = reference(text);
      const idx = indexText(text);
      expect([...idx.entries()], f).toEqual(ref.entries);
    }
  });

  it('keeps snapshots at least K entries apart, starting with the initial state and ending with the final one', () => {
    const text = readFileSync(traces.find((f) => f.includes('area_auto_iova.mock_domain.'))!, 'utf8');
    const idx = indexText(text, 16, 0);
    const ps = idx.checkpoints.map((c) => c.p);
    expect(ps[0]).toBe(0);
    expect(ps[ps.length - 1]).toBe(idx.count);
    for (let i = 1; i < ps.length - 1; i++) expect(ps[i]! - ps[i - 1]!).toBeGreaterThanOrEqual(16);
    expect(ps.length).toBeGreaterThan(3);
  });

  it('spaces snapshots by the weight of the state too, so big states get fewer', () => {
    const text = readFileSync(traces.find((f) => f.includes('area_auto_iova.mock_domain.'))!, 'utf8');
    const idx = indexText(text, 4, 4);
    const ps = idx.checkpoints.map((c) => c.p);
    expect(ps.length).toBeGreaterThan(3);
    for (let i = 1; i < ps.length - 1; i++) {
      const w = stateWeight(idx.checkpoints[i]!.state);
      expect(ps[i]! - ps[i - 1]!, `snapshot ${i}`).toBeGreaterThanOrEqual(Math.max(4, Math.ceil(4 * w)) - 0);
    }
    expect(indexText(text, 4, 0).checkpoints.length).toBeGreaterThan(ps.length);
  });

  it('saves to disk and loads back to an index that answers the same, with snapshots at the same entries', async () => {
    const f = traces.find((t) => t.includes('area_auto_iova.two_mock_domain'))!;
    const built = await buildIndexFromFile(f, { k: 10, factor: 0 });
    const path = join(tmp, 'a.ttindex');
    saveIndex(built, path, f);
    const loaded = await loadIndex(path);
    expect(loaded.count).toBe(built.count);
    expect(loaded.checkpoints.map((c) => c.p)).toEqual(built.checkpoints.map((c) => c.p));
    expect(loaded.marks).toEqual(built.marks);
    expect(loaded.meta).toEqual(built.meta);
    for (let n = -1; n < built.count; n += 5) expect(loaded.viewAt(n)).toEqual(built.viewAt(n));
    expect([...loaded.entries()]).toEqual([...built.entries()]);
    expect(indexBytes(loaded).equals(indexBytes(built))).toBe(true);
    // Labels and notes come from the trace the index records, relative to the index file.
    expect(loaded.lineInfo(7)).toEqual(built.lineInfo(7));
    expect(loaded.lineInfo(7).label).toMatch(/^ioctl IOMMU_/);
    expect(built.lineInfo(1).label).toBe('header');
  });

  it('writes the same bytes for the same trace (no clock, no randomness)', () => {
    const text = readFileSync(traces[3]!, 'utf8');
    expect(indexBytes(indexText(text)).equals(indexBytes(indexText(text)))).toBe(true);
  });

  it('refuses a truncated or tampered index file with a clear error', () => {
    const text = readFileSync(traces[5]!, 'utf8');
    const bytes = indexBytes(indexText(text));
    expect(() => deserializeIndex(bytes.subarray(0, bytes.length - 1))).toThrow(BadIndexError);
    expect(() => deserializeIndex(Buffer.from('{"format":"something else"}\n'))).toThrow(/not an iotrail time-travel index/);
    const nl = bytes.indexOf(10);
    const header = JSON.parse(bytes.subarray(0, nl).toString()) as { meta: { finalViewSha256: string } };
    header.meta.finalViewSha256 = '0'.repeat(64);
    expect(() => deserializeIndex(Buffer.concat([Buffer.from(JSON.stringify(header)), bytes.subarray(nl)]))).toThrow(/different state/);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 3]! ^= 0x55;
    expect(() => deserializeIndex(flipped)).toThrow(/corrupt index|different state/);
  });

  it('uses a saved index only for the trace it was built from', async () => {
    const f = join(tmp, 't.jsonl');
    const text = readFileSync(traces[0]!, 'utf8');
    writeFileSync(f, text);
    const ip = join(tmp, 't.ttindex');
    expect((await openIndex(f, ip)).how).toBe('built');
    expect((await openIndex(f, ip)).how).toBe('loaded');
    writeFileSync(f, `${text}\n`);
    const again = await openIndex(f, ip);
    expect(again.how).toBe('rebuilt');
    expect(again.why).toMatch(/another version/);
  });

  it('numbers blocks so entries past a block boundary come back in order', () => {
    const text = readFileSync(coreTraces(100000).find((f) => f.includes('access_rw_unaligned.no_domain'))!, 'utf8');
    const idx = indexText(text);
    expect(idx.count).toBeGreaterThan(3 * BLOCK);
    const ns = [...idx.entries(BLOCK - 3, 2 * BLOCK + 3)].map((e) => e.n);
    expect(ns).toEqual(Array.from({ length: BLOCK + 6 }, (_, i) => BLOCK - 3 + i));
    expect(idx.entry(2 * BLOCK).n).toBe(2 * BLOCK);
  });

  it('reads the label and note of any line of a trace file, across its 1 MiB chunks', async () => {
    const f = coreTraces(100000).find((t) => t.includes('access_rw_unaligned.two_mock_domain'))!;
    const lines = readFileSync(f, 'utf8').split('\n');
    const idx = await buildIndexFromFile(f);
    expect(idx.chunks.length).toBeGreaterThan(2);
    for (const n of [1, 2, 3, lines.length - 1, ...idx.chunks.flatMap(([l]) => [l - 1, l, l + 1]), 5000, 20000, 17].filter((n) => n >= 1 && n <= lines.length - 1)) {
      const want = JSON.parse(lines[n - 1]!) as { op?: string; cmd?: string; note?: string };
      const got = idx.lineInfo(n);
      expect(got.note, `line ${n}`).toBe(want.note);
      if (n > 1) expect(got.label, `line ${n}`).toBe(`${want.op}${want.cmd ? ` ${want.cmd}` : ''}`);
    }
  });
});
