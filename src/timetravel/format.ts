/**
 * Text for the terminal: entries, changes and tables of a view (objects, areas, pins, pages, domains, fds). Reads
 * views defensively (a field the view does not have shows as empty), so the model's views can grow.
 */
import type { DomainEvent, LogEntry } from '../events/domain.js';
import type { Change } from './diff.js';
import type { Mark, TraceIndex } from './index.js';
import { isObject, short, toJson, type Json, type JsonObject } from './json.js';

/** `Type k=v k=v`: an event on one line; u64 values in hex. */
export function describeEvent(ev: DomainEvent): string {
  const o = ev as unknown as Record<string, unknown>;
  const parts: string[] = [String(o.type)];
  for (const k of Object.keys(o)) {
    if (k === 'type') continue;
    const v = o[k];
    if (v === undefined) continue;
    parts.push(`${k}=${typeof v === 'string' ? (/^[\w./:-]*$/.test(v) ? v : JSON.stringify(v)) : short(toJson(v), 200)}`);
  }
  return parts.join(' ');
}

/** `#12 line 5 tid 1 [ioctl IOMMU_IOAS_MAP] ObjectAllocated ctx=1 id=2 kind=IOAS` */
export function describeEntry(idx: TraceIndex, e: LogEntry): string {
  const label = idx.lineInfo(e.line).label;
  return `#${e.n} line ${e.line}${e.tid !== 1 ? ` tid ${e.tid}` : ''}${label ? ` [${label}]` : ''} ${describeEvent(e.ev)}`;
}

export function describeMark(m: Mark): string {
  const kind = m.kind === 'divergence' ? 'DIVERGENCE' : m.kind === 'internal' ? 'INTERNAL ERROR' : m.kind === 'invariant' ? 'INVARIANT VIOLATED' : 'TRACE ERROR';
  return `${kind} at #${m.n} line ${m.line}: ${m.message}`;
}

export function formatChange(c: Change): string {
  if (c.op === 'added') return `+ ${c.path}: ${short(c.after)}`;
  if (c.op === 'removed') return `- ${c.path}: ${short(c.before)}`;
  return `~ ${c.path}: ${short(c.before)} -> ${short(c.after)}`;
}

/** A left-aligned text table. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return '(none)';
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd();
  return [line(headers), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

const cell = (v: Json | undefined): string => (v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v));
const arr = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);
const obj = (v: Json | undefined): JsonObject => (isObject(v) ? v : {});
/** A field of the process's memory: under `mm` in newer views, at the top in older ones. */
const mmField = (view: Json, k: string): Json[] => arr(obj(obj(view).mm)[k] ?? obj(view)[k]);

export function objectsTable(view: Json): string {
  const rows: string[][] = [];
  for (const c of arr(obj(view).contexts)) {
    for (const o of arr(obj(c).objects)) {
      const x = obj(o);
      const io = obj(x.ioas);
      rows.push([cell(obj(c).id), cell(x.id), cell(x.kind), cell(x.life), cell(x.users), arr(x.holds).join(','), x.ioas === undefined ? '' : `${arr(io.areas).length} areas`]);
    }
  }
  return table(['ctx', 'id', 'kind', 'life', 'users', 'holds', 'ioas'], rows);
}

export function areasTable(view: Json, ioas?: number): string {
  const rows: string[][] = [];
  for (const c of arr(obj(view).contexts)) {
    for (const o of arr(obj(c).objects)) {
      const x = obj(o);
      if (x.ioas === undefined || (ioas !== undefined && x.id !== ioas)) continue;
      for (const a of arr(obj(x.ioas).areas)) {
        const y = obj(a);
        rows.push([cell(obj(c).id), cell(x.id), cell(y.id), cell(y.start), cell(y.last), cell(y.pages), `${cell(y.pagesStart)}-${cell(y.pagesLast)}`, cell(y.prot), y.published === false ? 'no' : 'yes']);
      }
    }
  }
  return table(['ctx', 'ioas', 'area', 'start', 'last', 'pages', 'page idx', 'prot', 'published'], rows);
}

export function rangesTable(view: Json): string {
  const rows: string[][] = [];
  for (const c of arr(obj(view).contexts)) {
    for (const o of arr(obj(c).objects)) {
      const x = obj(o);
      if (x.ioas === undefined) continue;
      const io = obj(x.ioas);
      for (const r of arr(io.allowed)) rows.push([cell(obj(c).id), cell(x.id), 'allowed', cell(arr(r)[0]), cell(arr(r)[1]), '']);
      for (const r of arr(io.reserved)) rows.push([cell(obj(c).id), cell(x.id), 'reserved', cell(arr(r)[0]), cell(arr(r)[1]), cell(arr(r)[2])]);
    }
  }
  return table(['ctx', 'ioas', 'kind', 'start', 'last', 'owner'], rows);
}

export function pinsTable(view: Json): string {
  const v = obj(view);
  const mm = mmField(view, 'pins').map((r) => ['mm', '', cell(arr(r)[0]), cell(arr(r)[1]), cell(arr(r)[2])]);
  const pages = arr(v.pages).flatMap((p) => arr(obj(p).pinned).map((r) => ['pages', cell(obj(p).id), cell(arr(r)[0]), cell(arr(r)[1]), '1']));
  const acct = obj(v.accounting);
  const text = table(['of', 'pages id', 'first page', 'last page', 'count'], [...mm, ...pages]);
  return `${text}\naccounting: ${Object.entries(acct).map(([k, x]) => `${k}=${cell(x)}`).join(' ')}`;
}

export function pagesTable(view: Json): string {
  const rows = arr(obj(view).pages).map((p) => {
    const x = obj(p);
    return [cell(x.id), cell(x.kind), cell(x.kind === 'file' ? `memfd ${cell(x.memfd)}+${cell(x.fileStart)}` : x.uptr), cell(x.npages), cell(x.refs), arr(x.pinned).map((r) => `${cell(arr(r)[0])}-${cell(arr(r)[1])}`).join(' ')];
  });
  return table(['id', 'kind', 'at', 'npages', 'refs', 'pinned'], rows);
}

export function domainsTable(view: Json): string {
  const rows = arr(obj(view).domains).map((d) => {
    const x = obj(d);
    return [cell(x.id), cell(x.kind), cell(x.driver), arr(x.aperture).map(cell).join('-'), `${arr(x.map).length}`];
  });
  return table(['id', 'kind', 'driver', 'aperture', 'mappings'], rows);
}

export function mappingsTable(view: Json, domain?: number): string {
  const rows: string[][] = [];
  for (const d of arr(obj(view).domains)) {
    const x = obj(d);
    if (domain !== undefined && x.id !== domain) continue;
    for (const m of arr(x.map)) rows.push([cell(x.id), cell(arr(m)[0]), cell(arr(m)[1]), cell(arr(m)[2])]);
  }
  return table(['domain', 'iova', 'last', 'phys'], rows);
}

export function vmasTable(view: Json): string {
  const rows = mmField(view, 'vmas').map((m) => {
    const x = obj(m);
    return [cell(x.start), cell(x.last), cell(x.prot), cell(x.flags), cell(x.memfd), cell(x.offset)];
  });
  return table(['start', 'last', 'prot', 'flags', 'memfd', 'offset'], rows);
}

export function fdsTable(view: Json): string {
  const rows = arr(obj(view).fds).map((f) => {
    const x = obj(f);
    const rest = Object.entries(x).filter(([k]) => k !== 'fd' && k !== 'kind').map(([k, v]) => `${k}=${cell(v)}`).join(' ');
    return [cell(x.fd), cell(x.kind), rest];
  });
  return table(['fd', 'kind', 'refers to'], rows);
}

/** A few lines that say what the state holds. */
export function summary(view: Json): string {
  const v = obj(view);
  const ctxs = arr(v.contexts);
  const objects = ctxs.flatMap((c) => arr(obj(c).objects));
  const kinds = new Map<string, number>();
  for (const o of objects) kinds.set(cell(obj(o).kind), (kinds.get(cell(obj(o).kind)) ?? 0) + 1);
  const areas = objects.reduce<number>((n, o) => n + arr(obj(obj(o).ioas).areas).length, 0);
  return [
    `${arr(v.fds).length} fds, ${ctxs.length} iommufd contexts, ${objects.length} objects${kinds.size ? ` (${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ')})` : ''}`,
    `${areas} areas, ${arr(v.pages).length} iopt_pages, ${arr(v.domains).length} domains, ${mmField(view, 'vmas').length} VMAs, ${mmField(view, 'pins').length} pinned runs`,
    `accounting: ${Object.entries(obj(v.accounting)).map(([k, x]) => `${k}=${cell(x)}`).join(' ')}`,
  ].join('\n');
}

/** The full state as tables. */
export function stateText(view: Json): string {
  return [
    summary(view),
    '', 'objects:', objectsTable(view),
    '', 'areas:', areasTable(view),
    '', 'allowed and reserved IOVA ranges:', rangesTable(view),
    '', 'iopt_pages:', pagesTable(view),
    '', 'pins:', pinsTable(view),
    '', 'domains:', domainsTable(view),
    '', 'VMAs:', vmasTable(view),
    '', 'fds:', fdsTable(view),
  ].join('\n');
}

/** Pretty JSON for one value. */
export function pretty(v: Json | undefined): string {
  return v === undefined ? '(absent)' : JSON.stringify(v, null, 2);
}
