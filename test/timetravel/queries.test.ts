import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DomainEvent, LogEntry } from '../../src/events/domain.js';
import { diffViews } from '../../src/timetravel/diff.js';
import { compileExpr, ExprError } from '../../src/timetravel/expr.js';
import { indexEntries, indexText, type TraceIndex } from '../../src/timetravel/index.js';
import { isObject, jsonEqual, parseInteger, type Json } from '../../src/timetravel/json.js';
import { canonicalPath, completePath, formatPath, getAt, parsePath, PathError } from '../../src/timetravel/path.js';
import {
  bisect, blame, diff, exprPredicate, firstDivergence, firstError, firstInternalError, history, iovaUnmapped, pathEquals, stateAt,
} from '../../src/timetravel/queries.js';
import { coreTraces, CORE, EXAMPLES, reference } from './support.js';

const EXAMPLE = join(EXAMPLES, 'timetravel', 'timetravel-unmap-twice.jsonl');
const SPLITS = join(CORE, '..', 'domain', 'vfio_compat_mock_domain.huge_map.Ver1v0.jsonl');

/** The value at `path` after every entry (index i+1: after entry i; index 0: the initial state). */
function series(ref: ReturnType<typeof reference>, steps: ReturnType<typeof parsePath>): (Json | undefined)[] {
  return [getAt(ref.initial, steps), ...ref.views.map((v) => getAt(v, steps))];
}

/** The last entry ≤ n at which the value changed, by brute force; undefined if it never did. */
function lastChange(vals: (Json | undefined)[], n: number): number | undefined {
  for (let i = n; i >= 0; i--) if (!jsonEqual(vals[i + 1], vals[i])) return i;
  return undefined;
}

/** Paths worth blaming in a view: every object's users, life, holds and areas; pages; domains; accounting. */
function pathsOf(view: Json): string[] {
  const out = ['accounting.pinnedVm', 'accounting.userLockedVm', 'nextArea'];
  const v = view as Record<string, Json>;
  (v.contexts as Json[]).forEach((c, ci) => {
    ((c as Record<string, Json>).objects as Json[]).forEach((o, oi) => {
      out.push(`contexts[${ci}].objects[${oi}].users`, `contexts[${ci}].objects[${oi}].holds`, `contexts[${ci}].objects[${oi}].life`);
      if (isObject(o) && o.ioas !== undefined) out.push(`contexts[${ci}].objects[${oi}].ioas.areas`, `contexts[${ci}].objects[${oi}].ioas.reserved`);
    });
  });
  (v.pages as Json[]).forEach((_p, i) => out.push(`pages[${i}].pinned`, `pages[${i}].refs`));
  (v.domains as Json[]).forEach((_d, i) => out.push(`domains[${i}].map`));
  return out;
}

describe('view paths', () => {
  it('parse and print back the same path, index and key steps alike', () => {
    for (const p of ['contexts[0].objects[1].users', 'pages[id=3].pinned', 'domains[id=1].map[0]', 'accounting', 'mm.vmas[start=0x7f0000000000].prot', '']) {
      expect(formatPath(parsePath(p))).toBe(p);
    }
  });

  it('reject malformed paths with the position of the mistake', () => {
    expect(() => parsePath('contexts[0')).toThrow(PathError);
    expect(() => parsePath('contexts[x]')).toThrow(/expected \[INDEX\] or \[FIELD=VALUE\]/);
    expect(() => parsePath('a..b')).toThrow(PathError);
    expect(() => parsePath('a b')).toThrow(PathError);
  });

  it('match keys by value, hex strings against numbers', () => {
    const view: Json = { vmas: [{ start: '0x1000', prot: 3 }, { start: '0x3000', prot: 1 }] };
    expect(getAt(view, parsePath('vmas[start=4096].prot'))).toBe(3);
    expect(getAt(view, parsePath('vmas[start=0x3000].prot'))).toBe(1);
    expect(getAt(view, parsePath('vmas[2]'))).toBeUndefined();
  });

  it('turn index steps over arrays of records into key steps, read in the view', () => {
    const ref = reference(readFileSync(EXAMPLE, 'utf8'));
    const view = ref.views[40]!;
    expect(formatPath(canonicalPath(view, parsePath('contexts[0].objects[3].users')))).toBe('contexts[id=1].objects[id=4].users');
    expect(formatPath(canonicalPath(view, parsePath('domains[0].map[1]')))).toBe('domains[id=1].map[1]');
  });

  it('complete partly typed paths from the view', () => {
    const ref = reference(readFileSync(EXAMPLE, 'utf8'));
    const view = ref.views[40]!;
    expect(completePath(view, 'acc')).toEqual(['accounting']);
    expect(completePath(view, 'contexts[0].ob')).toEqual(['contexts[0].objects']);
    expect(completePath(view, 'contexts[0].objects[')).toContain('contexts[0].objects[id=4]');
    expect(completePath(view, 'accounting.p')).toEqual(['accounting.pinnedVm']);
  });
});

describe('structural diff', () => {
  it('is empty exactly when two views are equal, and names paths whose values it reports', () => {
    for (const f of coreTraces(60).slice(0, 25)) {
      const ref = reference(readFileSync(f, 'utf8'));
      const views = [ref.initial, ...ref.views];
      for (let i = 1; i < views.length; i++) {
        const a = views[i - 1]!, b = views[i]!;
        const changes = diffViews(a, b);
        expect(changes.length === 0, `${f} entry ${i - 1}`).toBe(jsonEqual(a, b));
        for (const c of changes) {
          const steps = parsePath(c.path);
          if (c.op !== 'added' && !/\[[0-9]+\]$/.test(c.path)) expect(getAt(a, steps), `${f} ${c.path}`).toEqual(c.before);
          if (c.op !== 'removed' && !/\[[0-9]+\]$/.test(c.path)) expect(getAt(b, steps), `${f} ${c.path}`).toEqual(c.after);
        }
      }
    }
  });

  it('shows an unmap as the area, its pages and its mapping leaving, and the pin accounting dropping', () => {
    const idx = indexText(readFileSync(EXAMPLE, 'utf8'));
    const before = idx.lowerBoundLine(9) - 1, after = idx.lowerBoundLine(10) - 1;
    const changes = diff(idx, before, after);
    const paths = changes.map((c) => `${c.op} ${c.path}`);
    expect(paths).toContain('removed contexts[id=1].objects[id=1].ioas.areas[id=1]');
    expect(paths).toContain('removed pages[id=1]');
    expect(changes.find((c) => c.path === 'accounting.pinnedVm')).toMatchObject({ op: 'changed', before: 4, after: 2 });
    expect(diff(idx, after, after)).toEqual([]);
  });
});

describe('history', () => {
  it('of an object is exactly the entries of its context that name it', () => {
    for (const f of coreTraces(120).slice(0, 30)) {
      const idx = indexText(readFileSync(f, 'utf8'));
      const all = [...idx.entries()];
      const ids = new Set(all.flatMap((e) => (e.ev.type === 'ObjectAllocated' ? [e.ev.id] : [])));
      for (const id of ids) {
        const got = history(idx, { kind: 'object', id, ctx: 1 }).map((e) => e.n);
        const want = all.filter((e) => {
          const ev = e.ev as unknown as Record<string, unknown>;
          return ev.ctx === 1 && ['id', 'by', 'ioas', 'hwpt', 'idev', 'access'].some((k) => ev[k] === id);
        }).map((e) => e.n);
        expect(got, `${f} object ${id}`).toEqual(want);
      }
    }
  });

  it('of an IOVA follows its area, the pages behind it and the domain mapping, and nothing of the area beside it', () => {
    const idx = indexText(readFileSync(EXAMPLE, 'utf8'));
    const es = history(idx, { kind: 'iova', ioas: 1, iova: 0x1001000n });
    const types = es.map((e) => e.ev.type);
    for (const t of ['AreaReserved', 'PagesPinned', 'AreaFilled', 'DomainMapped', 'AreaPublished', 'AreaUnpublished', 'DomainUnmapped', 'PagesUnpinned', 'AreaRemoved'])
      expect(types, t).toContain(t);
    for (const e of es) {
      const ev = e.ev as unknown as Record<string, unknown>;
      expect(ev.area === 2 || ev.pages === 2, `#${e.n} ${e.ev.type}`).toBe(false);
    }
    expect(history(idx, { kind: 'iova', ioas: 1, iova: 0x1004000n }).some((e) => e.ev.type === 'AreaReserved' && e.ev.area === 2)).toBe(true);
  });

  it('of an IOVA holds every entry that changes what the state says about that IOVA, through area splits', () => {
    const text = readFileSync(SPLITS, 'utf8');
    const ref = reference(text);
    const idx = indexText(text);
    expect([...idx.entries()].some((e) => e.ev.type === 'AreaSplit')).toBe(true);
    // What the view says about IOVA a of IOAS `ioas`: the areas and reserved ranges over it, the mappings over it.
    const slice = (v: Json, ioas: number, a: bigint): string => {
      const inside = (s: Json | undefined, l: Json | undefined): boolean => {
        const x = parseInteger(String(s)), y = parseInteger(String(l));
        return x !== undefined && y !== undefined && x <= a && a <= y;
      };
      const o = ((v as Record<string, Json[]>).contexts ?? []).flatMap((c) => ((c as Record<string, Json[]>).objects ?? [])).find((x) => isObject(x) && x.id === ioas && x.ioas !== undefined) as Record<string, Record<string, Json[]>> | undefined;
      const areas = (o?.ioas?.areas ?? []).filter((x) => isObject(x) && inside(x.start, x.last));
      const reserved = (o?.ioas?.reserved ?? []).filter((r) => Array.isArray(r) && inside(r[0], r[1]));
      // A mapping is what the IOVA translates to (a run split around it does not change that).
      const maps = ((v as Record<string, Json[]>).domains ?? []).flatMap((d) => ((d as Record<string, Json[]>).map ?? [])
        .filter((m) => Array.isArray(m) && inside(m[0], m[1])).map((m) => `0x${(parseInteger(String((m as Json[])[2]))! + a - parseInteger(String((m as Json[])[0]))!).toString(16)}`));
      return JSON.stringify({ areas, reserved, maps });
    };
    const views = [ref.initial, ...ref.views];
    const ioasIds = new Set(ref.entries.flatMap((e) => (e.ev.type === 'AreaReserved' ? [e.ev.ioas] : [])));
    const iovas = new Set(ref.entries.flatMap((e) => (e.ev.type === 'AreaReserved' ? [e.ev.start, e.ev.last, (e.ev.start + e.ev.last) / 2n]
      : e.ev.type === 'AreaSplit' ? [e.ev.last, e.ev.last + 1n] : [])));
    expect(iovas.size).toBeGreaterThan(3);
    for (const ioas of ioasIds) {
      for (const a of iovas) {
        const got = new Set(history(idx, { kind: 'iova', ioas, iova: a }).map((e) => e.n));
        for (let i = 1; i < views.length; i++) {
          if (slice(views[i - 1]!, ioas, a) !== slice(views[i]!, ioas, a)) expect(got.has(i - 1), `IOVA 0x${a.toString(16)} of IOAS ${ioas}: entry ${i - 1} ${ref.entries[i - 1]!.ev.type}`).toBe(true);
        }
      }
    }
  });

  it('of a page follows the areas over it through a split, and leaves out the half that does not hold it', () => {
    const ev = (x: Record<string, unknown>): DomainEvent => x as unknown as DomainEvent;
    const log: LogEntry[] = [
      ev({ type: 'PagesCreated', pages: 1, kind: 'user', uptr: 0x7f0000000000n, memfd: undefined, fileStart: 0n, npages: 4, writable: true, accountMode: 1 }),
      ev({ type: 'AreaReserved', ctx: 1, ioas: 1, area: 1, start: 0x10000n, last: 0x13fffn, pages: 1, pagesStart: 0, pagesLast: 3, pageOffset: 0, prot: 3, mappedAt: 2 }),
      ev({ type: 'AreaSplit', ctx: 1, ioas: 1, area: 1, last: 0x11fffn, lhs: 2, rhs: 3 }),
      ev({ type: 'AreaRemoved', ctx: 1, ioas: 1, area: 2 }),
      ev({ type: 'AreaRemoved', ctx: 1, ioas: 1, area: 3 }),
      ev({ type: 'PagesPinned', pages: 1, start: 3, last: 3 }),
      ev({ type: 'PagesPinned', pages: 1, start: 0, last: 1 }),
    ].map((e, n) => ({ n, line: n + 2, tid: 1, ev: e }));
    const idx = indexEntries(log);
    expect(history(idx, { kind: 'page', pages: 1, index: 3 }).map((e) => e.n)).toEqual([0, 1, 2, 4, 5]);
    expect(history(idx, { kind: 'page', pages: 1, index: 0 }).map((e) => e.n)).toEqual([0, 1, 2, 3, 6]);
    expect(history(idx, { kind: 'iova', ioas: 1, iova: 0x12000n }).map((e) => e.n)).toEqual([1, 2, 4]);
  });
});

describe('blame', () => {
  it('names the entry that last changed a value, as a brute-force scan of every state does, for every path of small conformance traces', () => {
    let checked = 0;
    for (const f of [...coreTraces(40).slice(0, 12), EXAMPLE]) {
      const text = readFileSync(f, 'utf8');
      const ref = reference(text);
      const idx = indexText(text, 5, 0);
      const count = ref.entries.length;
      for (const n of [count - 1, Math.floor(count / 2), Math.floor(count / 3)]) {
        for (const p of pathsOf(ref.views[n]!)) {
          const r = blame(idx, p, n);
          const vals = series(ref, parsePath(r.canonical));
          expect(r.value, `${f} ${p} @${n}`).toEqual(vals[n + 1]);
          expect(r.entry?.n, `${f} ${p} @${n}`).toBe(lastChange(vals, n));
          if (r.entry !== undefined) expect(r.before, `${f} ${p} @${n}`).toEqual(vals[r.entry.n]);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(200);
  });

  it('in fast mode agrees with the walk on values that never come back, in far fewer rebuilds', () => {
    const text = readFileSync(SPLITS, 'utf8');
    const idx = indexText(text, 16, 0);
    const n = idx.count - 1;
    const walk = blame(idx, 'nextArea', n), fast = blame(idx, 'nextArea', n, { mode: 'bisect' });
    expect(fast.entry?.n).toBe(walk.entry?.n);
    expect(fast.rebuilds).toBeLessThan(walk.rebuilds);
    expect(fast.rebuilds).toBeLessThanOrEqual(Math.ceil(Math.log2(idx.count + 1)) + 3);
  });

  it('reports a value unchanged since the initial state', () => {
    const idx = indexText(readFileSync(EXAMPLE, 'utf8'));
    const r = blame(idx, 'testMemoryLimit', idx.count - 1);
    expect(r.entry).toBeUndefined();
    expect(r.value).toBe(65536);
  });
});

describe('bisect', () => {
  const example = (): TraceIndex => indexText(readFileSync(EXAMPLE, 'utf8'));

  it('finds the divergence of the hand-made example on the line where it diverges', () => {
    const idx = example();
    for (const pred of [firstDivergence(), firstError()]) {
      const r = bisect(idx, pred);
      expect(r.found).toBe(true);
      expect(r.entry?.line ?? r.mark?.line).toBe(10);
      expect(r.entry?.ev.type).toBe('Diverged');
    }
    expect(bisect(idx, firstInternalError()).found).toBe(false);
  });

  it('finds the first internal model error and the first violated invariant of a log', () => {
    const ev = (x: Record<string, unknown>): DomainEvent => x as unknown as DomainEvent;
    const log: LogEntry[] = [
      ev({ type: 'TraceStarted', pageSize: 4096, memory: 'explicit' }),
      ev({ type: 'IommufdOpened', ctx: 1, accountMode: 0, compat: false }),
      ev({ type: 'ObjectFinalized', ctx: 1, id: 7 }),
      ev({ type: 'InvariantViolated', message: 'pins and accounting disagree' }),
    ].map((e, n) => ({ n, line: n + 1, tid: 1, ev: e }));
    const idx = indexEntries(log);
    const r = bisect(idx, firstInternalError());
    expect(r.found).toBe(true);
    expect(r.n).toBe(2);
    expect(r.mark?.kind).toBe('internal');
    expect(r.mark?.message).toMatch(/no object 7/);
    expect(bisect(idx, firstInternalError(), { from: 2 }).mark).toMatchObject({ kind: 'invariant', n: 3, message: 'pins and accounting disagree' });
  });

  it('finds when an IOVA stops being mapped', () => {
    const idx = example();
    const r = bisect(idx, iovaUnmapped(1, 0x1001000n));
    expect(r.found).toBe(true);
    expect(r.entry?.line).toBe(9);
    expect(r.entry?.ev.type).toBe('AreaUnpublished');
    expect(bisect(idx, iovaUnmapped(1, 0x2000000n)).message).toMatch(/never mapped/);
    expect(bisect(idx, iovaUnmapped(1, 0x1004000n), { mode: 'linear' }).entry?.line).toBe(13);
  });

  it('finds the first state where a path has a value, and says so when it never does', () => {
    const idx = example();
    // pinnedVm goes 0, 2, 4, 2, 0: not monotone, so binary search does not find it (it holds neither at the end)…
    expect(bisect(idx, pathEquals('accounting.pinnedVm', 4)).message).toMatch(/does not hold at entry 92.*--linear/);
    // …and the linear scan does.
    const r = bisect(idx, pathEquals('accounting.pinnedVm', 4), { mode: 'linear' });
    expect(r.entry?.ev.type).toBe('AccountingCharged');
    expect(stateAt(idx, r.n!)).toMatchObject({ accounting: { pinnedVm: 4 } });
    expect(stateAt(idx, r.n! - 1)).toMatchObject({ accounting: { pinnedVm: 2 } });
    expect(bisect(idx, pathEquals('accounting.pinnedVm', 99), { mode: 'linear' }).found).toBe(false);
    // Monotone from where the search starts: binary search finds the same entry.
    expect(bisect(idx, pathEquals('accounting.pinnedVm', 4), { from: r.n! - 1, to: r.n! + 2 }).n).toBe(r.n);
  });

  it('in linear mode finds the first entry of a predicate that is not monotone; binary mode returns a transition', () => {
    for (const f of coreTraces(120).slice(0, 20)) {
      const text = readFileSync(f, 'utf8');
      const ref = reference(text);
      const idx = indexText(text, 8, 0);
      const src = 'len(contexts[0].objects) == 2';
      const test = compileExpr(src).test;
      const truth = [ref.initial, ...ref.views].map((v) => test(v, undefined));
      const first = truth.findIndex((x) => x) - 1;
      const lin = bisect(idx, exprPredicate(src), { mode: 'linear' });
      if (first < -1 || truth.indexOf(true) < 0) {
        expect(lin.found, f).toBe(false);
        continue;
      }
      expect(lin.n, f).toBe(first);
      const bin = bisect(idx, exprPredicate(src));
      if (bin.found && bin.n! >= 0) {
        expect(truth[bin.n! + 1], f).toBe(true);
        expect(truth[bin.n!], f).toBe(false);
      }
    }
  });
});

describe('the predicate language', () => {
  const view: Json = { a: { b: 3, h: '0x10', s: 'finalized' }, list: [{ id: 1 }, { id: 2 }] };
  const t = (src: string): boolean => compileExpr(src).test(view, undefined);

  it('compares numbers, hex strings and text, and combines with && || !', () => {
    expect(t('a.b == 3')).toBe(true);
    expect(t('a.h == 16 && a.h > 0xf')).toBe(true);
    expect(t('a.s == "finalized"')).toBe(true);
    expect(t("a.s != 'finalized' || !exists(a.zz)")).toBe(true);
    expect(t('len(list) >= 2 && exists(list[id=2]) && !exists(list[id=3])')).toBe(true);
    expect(t('a.zz == 1')).toBe(false);
    expect(t('a.zz != 1')).toBe(true);
    expect(t('(a.b < 2) || (a.b > 2 && a.b <= 3)')).toBe(true);
  });

  it('reads the entry at the view through $event, $line and $n', () => {
    const e: LogEntry = { n: 4, line: 9, tid: 1, ev: { type: 'FdClosed', fd: 3 } };
    expect(compileExpr('$event.type == "FdClosed" && $event.fd == 3 && $line == 9 && $n == 4').test(view, e)).toBe(true);
  });

  it('rejects mistakes with their position', () => {
    expect(() => compileExpr('a.b ==')).toThrow(ExprError);
    expect(() => compileExpr('a.b == 3 )')).toThrow(/unexpected "\)" at 9/);
    expect(() => compileExpr('len a')).toThrow(/takes a path/);
    expect(() => compileExpr('"unterminated')).toThrow(/unterminated/);
  });
});
