/**
 * Views as plain JSON. `viewState` is canonical but may hand out structures it shares with the live state (a spread
 * of an object that holds a RangeMap, say); time travel caches views while it keeps folding the state they came
 * from, so every view is first copied into plain, immutable-by-convention JSON data: objects, arrays, strings,
 * finite numbers, booleans and null. bigints become `0x…` hex strings, as `viewState` writes u64 values.
 */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

const hex = (v: bigint): string => (v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`);

const OBJECT = Symbol('object');
/** The JSON of anything but an object (null is JSON's own): `OBJECT` for the objects the callers walk. */
function scalarJson(v: unknown): Json | typeof OBJECT {
  switch (typeof v) {
    case 'string': case 'boolean': return v;
    case 'number': return Number.isFinite(v) ? v : null;
    case 'bigint': return hex(v);
    case 'undefined': case 'function': case 'symbol': return null;
    default: return v === null ? null : OBJECT;
  }
}

export function toJson(v: unknown): Json {
  const sc = scalarJson(v);
  if (sc !== OBJECT) return sc;
  if (Array.isArray(v)) return v.map(toJson);
  if (v instanceof Map) return [...v].map(([k, x]) => [toJson(k), toJson(x)]);
  if (v instanceof Set) return [...v].map(toJson);
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>, (x) => toJson(x));
  const withToJson = v as { toJSON?: () => unknown };
  if (typeof withToJson.toJSON === 'function') return toJson(withToJson.toJSON());
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return fromInstance(v as object);
  const o: JsonObject = {};
  for (const k of Object.keys(v as object)) {
    const x = (v as Record<string, unknown>)[k];
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
    o[k] = toJson(x);
  }
  return o;
}

/**
 * A class instance that slipped into a view (a run map, an interval tree: structures with parent pointers) is shown
 * the way `viewState` shows its siblings: a run map as `[start, last, value]` runs, a tree as `[start, last, value]`
 * nodes in order, anything else iterable as an array; otherwise its own fields, with cycles cut.
 */
function fromInstance(v: object, seen: Set<object> = new Set()): Json {
  const x = v as { runs?: () => Iterable<{ start: unknown; last: unknown; count?: unknown; value?: unknown }>; inOrder?: () => Iterable<{ start: unknown; last: unknown; value: unknown }> };
  if (typeof x.runs === 'function') return [...x.runs()].map((r) => [toJson(r.start), toJson(r.last), toJson(r.count ?? r.value)]);
  if (typeof x.inOrder === 'function') return [...x.inOrder()].map((n) => [toJson(n.start), toJson(n.last), toJson(n.value)]);
  if (Symbol.iterator in v) return [...(v as Iterable<unknown>)].map(toJson);
  if (seen.has(v)) return null;
  seen.add(v);
  const o: JsonObject = {};
  for (const k of Object.keys(v)) {
    const f = (v as Record<string, unknown>)[k];
    if (f === undefined || typeof f === 'function' || typeof f === 'symbol') continue;
    o[k] = typeof f === 'object' && f !== null && !Array.isArray(f) && Object.getPrototypeOf(f) !== Object.prototype ? fromInstance(f, seen) : toJson(f);
  }
  seen.delete(v);
  return o;
}

/**
 * Like `toJson`, but returns a plain-JSON subtree as it is, by reference, and copies only the containers on the way to
 * something that needs converting (a bigint, a class instance, `undefined`). For views of states that nothing will
 * mutate again (index.ts never folds into a state it has shown): most of a view is already plain, and this costs a
 * walk where `toJson` costs a second view's worth of garbage. `isPlain`: subtrees known to be plain JSON already,
 * returned without a walk.
 */
export function toJsonShared(v: unknown, isPlain: (v: object) => boolean = () => false): Json {
  const sc = scalarJson(v);
  if (sc !== OBJECT) return sc;
  if (isPlain(v as object)) return v as Json;
  if (Array.isArray(v)) {
    let out: Json[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const c: unknown = v[i];
      const x = toJsonShared(c, isPlain);
      if (out === undefined && (x !== c || c === undefined)) out = (v as Json[]).slice(0, i);
      if (out !== undefined) out.push(x);
    }
    return out ?? (v as Json[]);
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return toJson(v);
  const o = v as Record<string, unknown>;
  let out: JsonObject | undefined;
  const keys = Object.keys(o);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const c = o[k];
    const drop = c === undefined || typeof c === 'function' || typeof c === 'symbol';
    const x = drop ? null : toJsonShared(c, isPlain);
    if (out === undefined && (drop || x !== c)) {
      out = {};
      for (let j = 0; j < i; j++) out[keys[j]!] = o[keys[j]!] as Json;
    }
    if (out !== undefined && !drop) out[k] = x;
  }
  return out ?? (o as JsonObject);
}

export const isObject = (v: Json | undefined): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export function jsonEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A value for messages: JSON, cut to `max` characters. */
export function short(v: Json | undefined, max = 120): string {
  if (v === undefined) return '(absent)';
  const s = JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** Parses a number given as decimal or 0x-hex (a u64 may exceed 2^53: bigint). */
export function parseInteger(text: string): bigint | undefined {
  const t = text.trim();
  if (/^-?[0-9]+$/.test(t)) return BigInt(t);
  if (/^0x[0-9a-fA-F]+$/.test(t)) return BigInt(t);
  return undefined;
}

/** A view value as a number for comparisons: JSON numbers and `0x…`/decimal strings; undefined if neither. */
export function numericOf(v: Json | undefined): bigint | undefined {
  if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v) : undefined;
  if (typeof v === 'string') return parseInteger(v);
  if (typeof v === 'boolean') return v ? 1n : 0n;
  return undefined;
}
