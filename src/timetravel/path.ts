/**
 * Paths into a view: `contexts[0].objects[1].users`, `pages[id=3].pinned`, `accounting.pinnedVm`.
 *
 *   path := step*         step := '.'? NAME | '[' INDEX ']' | '[' FIELD '=' VALUE ']'
 *
 * `[i]` is the i-th element (from 0), as in JavaScript; `[id=3]` is the element whose `id` is 3 (any field works:
 * `[fd=5]`, `[start=0x1000]`). Numbers match hex strings by value (`[start=4096]` finds `"0x1000"`). An index
 * names a different object whenever the array shifts (a destroyed object, a new context), so queries that look
 * across time (blame, diff) first turn index steps over arrays of records into key steps: `canonicalPath`.
 */
import { isObject, numericOf, parseInteger, type Json } from './json.js';

export type Step =
  | { readonly k: 'key'; readonly key: string }
  | { readonly k: 'index'; readonly i: number }
  | { readonly k: 'match'; readonly field: string; readonly value: Json };

export class PathError extends Error {}

const NAME = /^[A-Za-z_$][A-Za-z0-9_$]*/;

function parseValue(text: string): Json {
  const t = text.trim();
  if (t.startsWith('"')) {
    try {
      return JSON.parse(t) as Json;
    } catch {
      throw new PathError(`bad quoted value ${t}`);
    }
  }
  if (t === 'true' || t === 'false') return t === 'true';
  if (t === 'null') return null;
  const n = parseInteger(t);
  if (n !== undefined) return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) && !t.startsWith('0x') ? Number(n) : t;
  return t;
}

export function parsePath(text: string): Step[] {
  const steps: Step[] = [];
  let i = 0;
  const s = text.trim();
  while (i < s.length) {
    const c = s[i]!;
    if (c === '.') {
      if (i === 0 || !NAME.test(s.slice(i + 1))) throw new PathError(`path ${JSON.stringify(s)}: a name must follow "." at ${i}`);
      i++;
      const m = NAME.exec(s.slice(i))!;
      steps.push({ k: 'key', key: m[0] });
      i += m[0].length;
      continue;
    }
    if (c === '[') {
      const end = s.indexOf(']', i);
      if (end < 0) throw new PathError(`path ${JSON.stringify(s)}: "[" at ${i} is not closed`);
      const inner = s.slice(i + 1, end).trim();
      if (/^[0-9]+$/.test(inner)) steps.push({ k: 'index', i: Number(inner) });
      else {
        const eq = inner.indexOf('=');
        const field = inner.slice(0, eq).trim();
        if (eq < 0 || !NAME.test(field) || NAME.exec(field)![0] !== field)
          throw new PathError(`path ${JSON.stringify(s)}: expected [INDEX] or [FIELD=VALUE] at ${i}, got [${inner}]`);
        steps.push({ k: 'match', field, value: parseValue(inner.slice(eq + 1)) });
      }
      i = end + 1;
      continue;
    }
    const m = NAME.exec(s.slice(i));
    if (m === null) throw new PathError(`path ${JSON.stringify(s)}: unexpected ${JSON.stringify(c)} at ${i}`);
    if (steps.length > 0 && s[i - 1] !== '.') throw new PathError(`path ${JSON.stringify(s)}: expected "." or "[" before ${JSON.stringify(m[0])} at ${i}`);
    steps.push({ k: 'key', key: m[0] });
    i += m[0].length;
  }
  return steps;
}

const valueText = (v: Json): string => (typeof v === 'string' && /^(0x[0-9a-f]+|[A-Za-z_$][A-Za-z0-9_$]*)$/.test(v) && v !== 'true' && v !== 'false' && v !== 'null' ? v : JSON.stringify(v));

export function formatPath(steps: readonly Step[]): string {
  let out = '';
  for (const s of steps) {
    if (s.k === 'key') out += out === '' ? s.key : `.${s.key}`;
    else if (s.k === 'index') out += `[${s.i}]`;
    else out += `[${s.field}=${valueText(s.value)}]`;
  }
  return out;
}

/** Whether a field value matches a `[field=value]` step: equal JSON, or equal as numbers. */
export function sameValue(a: Json | undefined, b: Json | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const x = numericOf(a), y = numericOf(b);
  if (x !== undefined && y !== undefined && typeof a !== 'boolean' && typeof b !== 'boolean') return x === y;
  return JSON.stringify(a) === JSON.stringify(b);
}

export function getAt(root: Json, steps: readonly Step[]): Json | undefined {
  let v: Json | undefined = root;
  for (const s of steps) {
    if (v === undefined || v === null) return undefined;
    if (s.k === 'key') v = isObject(v) ? v[s.key] : undefined;
    else if (s.k === 'index') v = Array.isArray(v) ? v[s.i] : undefined;
    else v = Array.isArray(v) ? v.find((e) => isObject(e) && sameValue(e[s.field], s.value)) : undefined;
  }
  return v;
}

/** The field that identifies the records of an array (`id`, `fd`, `start`), when every element has it. */
export function keyFieldOf(arr: readonly Json[]): string | undefined {
  if (arr.length === 0 || !arr.every(isObject)) return undefined;
  for (const f of ['id', 'fd', 'start']) {
    const seen = new Set<string>();
    let ok = true;
    for (const e of arr) {
      const v = (e as Record<string, Json>)[f];
      if (v === undefined || v === null || typeof v === 'object') {
        ok = false;
        break;
      }
      const key = JSON.stringify(v);
      if (seen.has(key)) {
        ok = false;
        break;
      }
      seen.add(key);
    }
    if (ok) return f;
  }
  return undefined;
}

/** The path with each index step over an array of records replaced by the record's key, read in `root`. */
export function canonicalPath(root: Json, steps: readonly Step[]): Step[] {
  const out: Step[] = [];
  let v: Json | undefined = root;
  for (const s of steps) {
    if (s.k === 'index' && Array.isArray(v)) {
      const f = keyFieldOf(v);
      const e: Json | undefined = v[s.i];
      if (f !== undefined && isObject(e)) {
        out.push({ k: 'match', field: f, value: e[f]! });
        v = e;
        continue;
      }
    }
    out.push(s);
    v = v === undefined ? undefined : getAt(v, [s]);
  }
  return out;
}

/**
 * Completions of a partly typed path, against a view: the names, indexes and keys that can follow what is typed.
 * `contexts[0].ob` → `contexts[0].objects`; `pages[` → `pages[0]`, `pages[id=1]`…
 */
export function completePath(root: Json, partial: string): string[] {
  const cut = Math.max(partial.lastIndexOf('.'), partial.lastIndexOf('['));
  const head = cut < 0 ? '' : partial.slice(0, cut);
  const tail = cut < 0 ? partial : partial.slice(cut);
  let base: Json | undefined;
  try {
    base = getAt(root, parsePath(head));
  } catch {
    return [];
  }
  const cands: string[] = [];
  if (isObject(base)) for (const k of Object.keys(base)) cands.push(head === '' ? k : `${head}.${k}`);
  else if (Array.isArray(base)) {
    const f = keyFieldOf(base);
    base.forEach((e, i) => {
      cands.push(`${head}[${i}]`);
      if (f !== undefined && isObject(e)) cands.push(`${head}[${f}=${valueText(e[f]!)}]`);
    });
  }
  const typed = head + tail;
  return cands.filter((c) => c.startsWith(typed));
}
