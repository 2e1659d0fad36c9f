/**
 * Structural diff of two views. Objects are compared key by key; arrays of records (every element has a distinct
 * `id`, `fd` or `start`) are matched by that key, so a destroyed object shows as one removal rather than as every
 * later object changing; other arrays (runs, ranges, id lists) are compared as multisets of values. Paths use the
 * syntax of path.ts, with key steps (`contexts[id=1].objects[id=2].users`).
 */
import { isObject, type Json } from './json.js';
import { formatPath, keyFieldOf, type Step } from './path.js';

export interface Change {
  readonly path: string;
  readonly op: 'added' | 'removed' | 'changed';
  readonly before?: Json;
  readonly after?: Json;
}

export function diffViews(a: Json, b: Json): Change[] {
  const out: Change[] = [];
  walk(a, b, [], out);
  return out;
}

function walk(a: Json, b: Json, at: Step[], out: Change[]): void {
  if (a === b) return;
  if (isObject(a) && isObject(b)) {
    for (const k of Object.keys(a)) {
      const p = [...at, { k: 'key', key: k } as const];
      if (!(k in b)) out.push({ path: formatPath(p), op: 'removed', before: a[k]! });
      else walk(a[k]!, b[k]!, p, out);
    }
    for (const k of Object.keys(b)) if (!(k in a)) out.push({ path: formatPath([...at, { k: 'key', key: k }]), op: 'added', after: b[k]! });
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const fa = a.length ? keyFieldOf(a) : undefined, fb = b.length ? keyFieldOf(b) : undefined;
    const field = a.length === 0 ? fb : b.length === 0 ? fa : fa === fb ? fa : undefined;
    if (field !== undefined) {
      const key = (e: Json): string => JSON.stringify((e as Record<string, Json>)[field]);
      const mb = new Map(b.map((e) => [key(e), e]));
      const ma = new Map(a.map((e) => [key(e), e]));
      for (const e of a) {
        const k = key(e);
        const p: Step[] = [...at, { k: 'match', field, value: (e as Record<string, Json>)[field]! }];
        const other = mb.get(k);
        if (other === undefined) out.push({ path: formatPath(p), op: 'removed', before: e });
        else walk(e, other, p, out);
      }
      for (const e of b) {
        if (!ma.has(key(e))) out.push({ path: formatPath([...at, { k: 'match', field, value: (e as Record<string, Json>)[field]! }]), op: 'added', after: e });
      }
      return;
    }
    if (a.every((e) => !isObject(e)) && b.every((e) => !isObject(e))) {
      // Multisets of values: what left, what came.
      const count = new Map<string, number>();
      for (const e of b) count.set(JSON.stringify(e), (count.get(JSON.stringify(e)) ?? 0) + 1);
      const removed: [number, Json][] = [];
      a.forEach((e, i) => {
        const k = JSON.stringify(e);
        const c = count.get(k) ?? 0;
        if (c > 0) count.set(k, c - 1);
        else removed.push([i, e]);
      });
      const left = new Map<string, number>();
      for (const e of a) left.set(JSON.stringify(e), (left.get(JSON.stringify(e)) ?? 0) + 1);
      const added: [number, Json][] = [];
      b.forEach((e, i) => {
        const k = JSON.stringify(e);
        const c = left.get(k) ?? 0;
        if (c > 0) left.set(k, c - 1);
        else added.push([i, e]);
      });
      for (const [i, e] of removed) out.push({ path: formatPath([...at, { k: 'index', i }]), op: 'removed', before: e });
      for (const [i, e] of added) out.push({ path: formatPath([...at, { k: 'index', i }]), op: 'added', after: e });
      return;
    }
    const n = Math.max(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const p: Step[] = [...at, { k: 'index', i }];
      if (i >= b.length) out.push({ path: formatPath(p), op: 'removed', before: a[i]! });
      else if (i >= a.length) out.push({ path: formatPath(p), op: 'added', after: b[i]! });
      else walk(a[i]!, b[i]!, p, out);
    }
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push({ path: formatPath(at), op: 'changed', before: a, after: b });
}
