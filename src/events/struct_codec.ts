/**
 * Decoding of ioctl arguments against their uapi struct layout (structs.ts), in two stages:
 *
 * 1. `decodeStruct` (at trace-read time): shape and types. Unknown fields, bad integers, unknown flag names
 *    and malformed variables are located trace errors. Integers stay `bigint`, variables stay `Var`.
 * 2. `resolveStruct` (at dispatch): variables are replaced by their bound values and the struct is laid out as
 *    the kernel sees it: fields the caller did not give are 0, and fields at or past the caller's `size` are 0
 *    too (copy_struct_from_user zero-fills a short struct).
 *
 * In `out` (mode 'out') the same layout is used, every field is optional and a variable binds.
 */
import { ENUMS, FLAG_SETS, type NameTable } from './flags.js';
import type { FieldDef, FieldType, Scalar, StructDef } from './structs.js';
import {
  bad, Bad, decodeHexBytes, decodeSigned, decodeUnsigned, decodeVarName, isVar, isVarString, ok, show, signed32OrBad,
  unsignedOrBad, type Decoded, type Var,
} from './values.js';

export type RawInt = bigint | Var;
/** A struct as written in the trace, decoded but with variables unresolved. */
export interface TraceStruct {
  readonly def: StructDef;
  readonly fields: Readonly<Record<string, TraceValue>>;
  readonly size: RawInt | undefined;
  readonly tail: Uint8Array | undefined;
  readonly hasVars: boolean;
}
export type TraceValue = RawInt | Uint8Array | readonly TraceStruct[] | TraceStruct | InlineData;
/** Driver data given inline as its struct's fields (`"data_uptr": {"iotlb": 195935983}`). */
export interface InlineData {
  readonly inline: Readonly<Record<string, RawInt>>;
}

const bits = (s: Scalar): 8 | 16 | 32 | 64 => (s === 'u8' ? 8 : s === 'u16' ? 16 : s === 'u64' ? 64 : 32);

export function decodeNames(v: unknown, table: NameTable, width: Scalar, path: string, isFlags: boolean): Decoded<bigint> {
  if (typeof v === 'string' && !(v.charCodeAt(0) >= 48 && v.charCodeAt(0) <= 57)) {
    const n = table[v];
    return n === undefined ? bad(path, `unknown ${isFlags ? 'flag' : 'value'} name ${show(v)}`) : ok(BigInt(n));
  }
  if (Array.isArray(v)) {
    if (!isFlags && v.length !== 1) return bad(path, `expected one name, got ${show(v)}`);
    let acc = 0n;
    for (let i = 0; i < v.length; i++) {
      const name: unknown = v[i];
      const n = typeof name === 'string' ? table[name] : undefined;
      if (n === undefined) return bad(`${path}[${i}]`, `unknown ${isFlags ? 'flag' : 'value'} name ${show(name)}`);
      acc |= BigInt(n);
    }
    return ok(acc);
  }
  return width === 's32' ? decodeSigned(v, 32, path) : decodeUnsigned(v, bits(width), path);
}

/** An integer field: a number, a decimal/hex string or a `$variable`. */
export function decodeInt(v: unknown, width: Scalar, path: string): Decoded<RawInt> {
  const r = intOrBad(v, width, path);
  return r instanceof Bad ? { ok: false, problem: r } : ok(r);
}

/** `decodeInt` without the result wrapper (the hot path). */
export function intOrBad(v: unknown, width: Scalar, path: string): RawInt | Bad {
  if (typeof v === 'string' && v.charCodeAt(0) === 36 /* $ */) {
    const d = decodeVarName(v, path);
    return d.ok ? d.value : new Bad(d.problem.path, d.problem.message);
  }
  return width === 's32' ? signed32OrBad(v, path) : unsignedOrBad(v, bits(width), path);
}

function decodeField(ft: FieldType, v: unknown, path: string, mode: 'in' | 'out'): Decoded<TraceValue> {
  switch (ft.t) {
    case 'u8': case 'u16': case 'u32': case 's32': case 'u64':
      return decodeInt(v, ft.t, path);
    case 'flags': case 'enum':
      if (isVarString(v)) return decodeVarName(v, path);
      return decodeNames(v, ft.t === 'flags' ? FLAG_SETS[ft.set] : ENUMS[ft.set], ft.width, path, ft.t === 'flags');
    case 'bytes':
      return decodeHexBytes(v, path);
    case 'struct':
      return decodeStruct(ft.def, v, path, mode);
    case 'array': {
      if (!Array.isArray(v)) return decodeInt(v, 'u64', path);
      const out: TraceStruct[] = [];
      for (let i = 0; i < v.length; i++) {
        const e = decodeStruct(ft.elem, v[i], `${path}[${i}]`, mode);
        if (!e.ok) return e;
        out.push(e.value);
      }
      return ok(out);
    }
    case 'data': {
      // A string is the blob's bytes in hex unless it is a `0x` pointer or a variable: "0000…" is bytes, not 0.
      if (typeof v === 'string' && !isVarString(v) && !/^0x/i.test(v)) return decodeHexBytes(v, path);
      if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
        const inline: Record<string, RawInt> = {};
        for (const [k, x] of Object.entries(v)) {
          const d = decodeInt(x, 'u64', `${path}.${k}`);
          if (!d.ok) return d;
          inline[k] = d.value;
        }
        return ok({ inline });
      }
      return decodeInt(v, 'u64', path);
    }
  }
}

const hasVarsIn = (v: TraceValue): boolean =>
  isVar(v) || (Array.isArray(v) ? v.some((s: TraceStruct) => s.hasVars) : typeof v === 'object' && v !== null && 'hasVars' in v && v.hasVars === true)
  || (typeof v === 'object' && v !== null && 'inline' in v && Object.values(v.inline).some(isVar));

export function decodeStruct(def: StructDef, raw: unknown, path: string, mode: 'in' | 'out'): Decoded<TraceStruct> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return bad(path, `expected an object (struct ${def.name}), got ${show(raw)}`);
  const fields: Record<string, TraceValue> = {};
  let size: RawInt | undefined;
  let tail: Uint8Array | undefined;
  let hasVars = false;
  for (const key in raw) {
    const v = (raw as Record<string, unknown>)[key];
    const p = path === '' ? key : `${path}.${key}`;
    if (key === 'tail') {
      const t = decodeHexBytes(v, p);
      if (!t.ok) return t;
      tail = t.value;
      continue;
    }
    const fd: FieldDef | undefined = def.byName.get(key);
    if (fd === undefined) return bad(p, `unknown field ${show(key)} of struct ${def.name}`);
    const t = fd.type.t;
    let value: TraceValue;
    if (t === 'u32' || t === 'u64' || t === 's32' || t === 'u16' || t === 'u8') {
      const r = intOrBad(v, t, p);
      if (r instanceof Bad) return { ok: false, problem: r };
      value = r;
      if (typeof r !== 'bigint') hasVars = true;
    } else {
      const d = decodeField(fd.type, v, p, mode);
      if (!d.ok) return d;
      value = d.value;
      if (!hasVars && hasVarsIn(value)) hasVars = true;
    }
    if (key === def.sizeField) {
      size = value as RawInt;
      continue;
    }
    fields[key] = value;
  }
  if (tail !== undefined && mode === 'in') {
    const sz = size === undefined ? def.size : isVar(size) ? undefined : Number(size);
    if (sz !== undefined && tail.length > Math.max(0, sz - def.size))
      return bad(`${path === '' ? '' : `${path}.`}tail`, `tail has ${tail.length} bytes but size ${sz} leaves ${Math.max(0, sz - def.size)} past struct ${def.name} (${def.size} bytes)`);
  }
  return ok({ def, fields, size, tail, hasVars });
}
