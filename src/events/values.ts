/**
 * Trace values (../shared/trace-format.md, "Values"): integers as JSON numbers, decimal or hex strings,
 * decoded to `bigint` for u64 so nothing above 2^53 is ever rounded; `$variables`; errno names; hex bytes.
 *
 * Every decoder here returns errors as values (a `Problem` carrying the JSON path), never throws: a trace is
 * untrusted input and one bad field must become one located error, not a crash.
 */

export const U64_MAX = (1n << 64n) - 1n;
export const U32_MAX = 0xffff_ffff;

/** A use (outside `out`) or a binding (inside `out`) of a trace variable. */
export interface Var {
  readonly $: string;
}
export const isVar = (v: unknown): v is Var =>
  typeof v === 'object' && v !== null && typeof (v as { $?: unknown }).$ === 'string';

/** A located decoding problem: `path` is the JSON path below the event (`arg.length`). */
export interface Problem {
  readonly path: string;
  readonly message: string;
}

export type Decoded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: Problem };
export const ok = <T>(value: T): Decoded<T> => ({ ok: true, value });
export const bad = (path: string, message: string): Decoded<never> => ({ ok: false, problem: { path, message } });

export const show = (v: unknown): string => {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'bigint') return v.toString();
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 60)}…` : s;
  } catch {
    return String(v);
  }
};

const DEC = /^(0|[1-9][0-9]*)$/;
const HEX = /^0[xX][0-9a-fA-F]+$/;
const NEG_DEC = /^-(0|[1-9][0-9]*)$/;

/** A located problem as a class, so hot decoders can return `bigint | Bad` without a wrapper per value. */
export class Bad implements Problem {
  constructor(readonly path: string, readonly message: string) {}
}
const MAX_NUM: Readonly<Record<number, number>> = { 8: 0xff, 16: 0xffff, 32: 0xffff_ffff, 64: Number.MAX_SAFE_INTEGER };
const MAX_BIG: Readonly<Record<number, bigint>> = { 8: 0xffn, 16: 0xffffn, 32: 0xffff_ffffn, 64: U64_MAX };

/** `decodeUnsigned` without the result wrapper: the hot path of trace decoding. */
export function unsignedOrBad(v: unknown, bits: 8 | 16 | 32 | 64, path: string): bigint | Bad {
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v) && v >= 0 && v <= MAX_NUM[bits]!) return BigInt(v);
    if (!Number.isInteger(v)) return new Bad(path, `expected a u${bits}, got ${show(v)}`);
    if (!Number.isSafeInteger(v)) return new Bad(path, `expected a u${bits}, got ${show(v)} (integers above 2^53-1 must be strings)`);
    return new Bad(path, `expected a u${bits}, got ${show(v)} (${v < 0 ? 'negative' : `overflows ${bits} bits`})`);
  }
  if (typeof v === 'string' && (DEC.test(v) || HEX.test(v))) {
    const n = BigInt(v);
    return n <= MAX_BIG[bits]! ? n : new Bad(path, `expected a u${bits}, got ${show(v)} (overflows ${bits} bits)`);
  }
  return new Bad(path, `expected a u${bits}, got ${show(v)}`);
}

/** A signed 32-bit integer without the result wrapper. */
export function signed32OrBad(v: unknown, path: string): bigint | Bad {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= -0x8000_0000 && v <= 0x7fff_ffff) return BigInt(v);
  const d = decodeSigned(v, 32, path);
  return d.ok ? d.value : new Bad(d.problem.path, d.problem.message);
}

/**
 * An unsigned integer of `bits` bits. Accepts a non-negative safe JSON integer, a decimal string or a
 * `0x` hex string. A number above 2^53−1 is rejected: JSON.parse has already rounded it, so its value is
 * unknowable, and the format requires such values as strings.
 */
export function decodeUnsigned(v: unknown, bits: 8 | 16 | 32 | 64, path: string): Decoded<bigint> {
  const r = unsignedOrBad(v, bits, path);
  return r instanceof Bad ? { ok: false, problem: r } : ok(r);
}

/** A signed integer (fds, `ret`): the format allows negative numbers only where the C type is signed. */
export function decodeSigned(v: unknown, bits: 32 | 64, path: string): Decoded<bigint> {
  let n: bigint;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) return bad(path, `expected an s${bits}, got ${show(v)}`);
    n = BigInt(v);
  } else if (typeof v === 'string' && (DEC.test(v) || HEX.test(v) || NEG_DEC.test(v))) {
    n = BigInt(v);
  } else {
    return bad(path, `expected an s${bits}, got ${show(v)}`);
  }
  const lim = 1n << BigInt(bits - 1);
  if (n < -lim || n >= lim) return bad(path, `expected an s${bits}, got ${show(v)} (out of range)`);
  return ok(n);
}

const VAR_NAME = /^\$[A-Za-z_][A-Za-z0-9_]*$/;
export const isVarString = (v: unknown): v is string => typeof v === 'string' && v.startsWith('$');

export function decodeVarName(v: string, path: string): Decoded<Var> {
  return VAR_NAME.test(v) ? ok({ $: v }) : bad(path, `malformed variable name ${show(v)}`);
}

/** Lowercase hex, two digits per byte, no prefix. */
export function decodeHexBytes(v: unknown, path: string): Decoded<Uint8Array> {
  if (typeof v !== 'string' || v.length % 2 !== 0 || !/^[0-9a-f]*$/.test(v))
    return bad(path, `expected lowercase hex bytes, got ${show(v)}`);
  return ok(Uint8Array.from(Buffer.from(v, 'hex')));
}
export const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** How a value is written back into JSON: a number when safe, otherwise a hex string (trace-format "Values"). */
export function jsonInt(v: bigint | number): number | string {
  if (typeof v === 'number') return v;
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : `0x${v.toString(16)}`;
}
