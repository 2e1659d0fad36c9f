/**
 * Variables and the kernel's view of an argument. `$name` inside `out` (or as `ret`) binds the value the model
 * produces; anywhere else it uses the bound value (trace-format.md "Values"). `resolveStruct` turns a decoded
 * trace struct into what the kernel reads after `copy_struct_from_user`: missing fields are 0, and the bytes at or
 * past the caller's `size` are 0 because a short struct is zero-extended.
 */
import type { InlineData, RawInt, TraceStruct, TraceValue } from './struct_codec.js';
import type { FieldDef, StructDef } from './structs.js';
import { isVar, type Var } from './values.js';

export interface Arg {
  readonly def: StructDef;
  /** The caller's `size`/`argsz` (what the kernel reads first). */
  readonly size: number;
  /** Bytes the caller passed beyond the kernel's struct, when `size` > sizeof. */
  readonly tail: Uint8Array | undefined;
  readonly v: Readonly<Record<string, ArgValue>>;
}
export type ArgValue = bigint | readonly Arg[] | Arg | Uint8Array | { readonly inline: Readonly<Record<string, bigint>> };

export type Env = Map<string, bigint>;

/** A use of a variable that nothing bound (yet). */
export class Unbound {
  constructor(readonly name: string, readonly path: string) {}
}

export function resolveInt(v: RawInt, env: Env, path: string): bigint | Unbound {
  if (!isVar(v)) return v;
  const b = env.get(v.$);
  return b === undefined ? new Unbound(v.$, path) : b;
}

const WIDTH: Record<string, number> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 };
function fieldWidth(f: FieldDef): number {
  const t = f.type;
  if (t.t === 'flags' || t.t === 'enum') return WIDTH[t.width]!;
  if (t.t === 'bytes') return t.len;
  if (t.t === 'array' || t.t === 'data') return 8;
  if (t.t === 'struct') return t.def.size;
  return WIDTH[t.t]!;
}

function resolveValue(f: FieldDef, v: TraceValue, env: Env, path: string): ArgValue | Unbound {
  if (typeof v === 'bigint' || isVar(v)) return resolveInt(v as bigint | Var, env, path);
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v)) {
    const out: Arg[] = [];
    for (let i = 0; i < v.length; i++) {
      const r = resolveStruct(v[i] as TraceStruct, env, `${path}[${i}]`);
      if (r instanceof Unbound) return r;
      out.push(r);
    }
    return out;
  }
  if ('inline' in (v as object)) {
    const inline: Record<string, bigint> = {};
    for (const [k, x] of Object.entries((v as InlineData).inline)) {
      const r = resolveInt(x, env, `${path}.${k}`);
      if (r instanceof Unbound) return r;
      inline[k] = r;
    }
    return { inline };
  }
  void f;
  return resolveStruct(v as TraceStruct, env, path);
}

export function resolveStruct(s: TraceStruct, env: Env, path: string): Arg | Unbound {
  const def = s.def;
  let size = def.size;
  if (s.size !== undefined) {
    const r = resolveInt(s.size, env, `${path}.${def.sizeField ?? 'size'}`);
    if (r instanceof Unbound) return r;
    size = Number(r & 0xffff_ffffn);
  }
  const v: Record<string, ArgValue> = {};
  for (const name in s.fields) {
    const f = def.byName.get(name)!;
    const p = path === '' ? name : `${path}.${name}`;
    const r = resolveValue(f, s.fields[name]!, env, p);
    if (r instanceof Unbound) return r;
    if (def.sizeField !== null && f.off >= size) continue;
    const w = fieldWidth(f);
    if (def.sizeField !== null && typeof r === 'bigint' && f.off + w > size) {
      v[name] = r & ((1n << BigInt(8 * (size - f.off))) - 1n);
    } else {
      v[name] = r;
    }
  }
  return { def, size, tail: s.tail, v };
}
