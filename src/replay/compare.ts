/**
 * Comparing what the trace observed in `out` with what the model wrote back. Only the fields the trace gives are
 * compared; a `$variable` there binds the model's value instead. A field the model did not write back (the kernel
 * copies nothing on that path, or only part of the struct) is itself a divergence.
 */
import type { Env } from '../events/resolve.js';
import type { InlineData, RawInt, TraceStruct, TraceValue } from '../events/struct_codec.js';
import { hexOf, isVar } from '../events/values.js';
import type { Out, OutValue } from '../machines/ioctl.js';

export interface OutProblem {
  readonly field: string;
  readonly observed: string;
  readonly predicted: string;
  readonly why: string | undefined;
}

/** Numbers as a kernel developer reads them: small ones in decimal, addresses and masks in hex. */
export function fmt(v: bigint | number): string {
  const b = BigInt(v);
  return b >= -4096n && b < 4096n ? b.toString() : `0x${b.toString(16)}`;
}

const showOut = (v: OutValue | undefined): string =>
  v === undefined ? 'not written' : typeof v === 'bigint' ? fmt(v) : v instanceof Uint8Array ? hexOf(v) : Array.isArray(v) ? `${v.length} element(s)` : 'a struct';

function compareInt(path: string, obs: RawInt, pred: OutValue | undefined, env: Env, poisoned: Map<string, number>, acc: OutProblem[]): void {
  if (typeof pred !== 'bigint') {
    if (isVar(obs)) poisoned.set(obs.$, -1);
    acc.push({ field: path, observed: isVar(obs) ? obs.$ : fmt(obs), predicted: showOut(pred), why: pred === undefined ? 'the model does not write this field back on this path' : undefined });
    return;
  }
  if (isVar(obs)) {
    env.set(obs.$, pred);
    poisoned.delete(obs.$);
  } else if (obs !== pred) {
    acc.push({ field: path, observed: fmt(obs), predicted: fmt(pred), why: undefined });
  }
}

function compareValue(path: string, obs: TraceValue, pred: OutValue | undefined, env: Env, poisoned: Map<string, number>, acc: OutProblem[]): void {
  if (typeof obs === 'bigint' || isVar(obs)) return compareInt(path, obs as RawInt, pred, env, poisoned, acc);
  if (obs instanceof Uint8Array) {
    if (!(pred instanceof Uint8Array) || hexOf(pred) !== hexOf(obs)) acc.push({ field: path, observed: hexOf(obs), predicted: showOut(pred), why: undefined });
    return;
  }
  if (Array.isArray(obs)) {
    const arr = Array.isArray(pred) ? (pred as readonly Out[]) : undefined;
    if (arr === undefined) {
      acc.push({ field: path, observed: `${obs.length} element(s)`, predicted: showOut(pred), why: undefined });
      return;
    }
    obs.forEach((e: TraceStruct, i: number) => {
      const p = arr[i];
      if (p === undefined) acc.push({ field: `${path}[${i}]`, observed: 'an element', predicted: 'not written', why: `the model writes ${arr.length} element(s)` });
      else compareStruct(`${path}[${i}]`, e, p, env, poisoned, acc);
    });
    return;
  }
  if ('inline' in obs) {
    const p = pred !== undefined && typeof pred === 'object' && !(pred instanceof Uint8Array) && !Array.isArray(pred) ? (pred as Out) : undefined;
    for (const [k, v] of Object.entries((obs as InlineData).inline)) compareInt(`${path}.${k}`, v, p?.[k], env, poisoned, acc);
    return;
  }
  const p = pred !== undefined && typeof pred === 'object' && !(pred instanceof Uint8Array) && !Array.isArray(pred) ? (pred as Out) : undefined;
  if (p === undefined) {
    acc.push({ field: path, observed: 'a struct', predicted: showOut(pred), why: 'the model does not write this struct back on this path' });
    return;
  }
  compareStruct(path, obs as TraceStruct, p, env, poisoned, acc);
}

function compareStruct(path: string, obs: TraceStruct, pred: Out, env: Env, poisoned: Map<string, number>, acc: OutProblem[]): void {
  const sf = obs.def.sizeField;
  if (obs.size !== undefined && sf !== null) compareInt(`${path}.${sf}`, obs.size, pred[sf], env, poisoned, acc);
  const fields = obs.fields;
  for (const k in fields) compareValue(`${path}.${k}`, fields[k]!, pred[k], env, poisoned, acc);
  if (obs.tail !== undefined) compareValue(`${path}.tail`, obs.tail, pred.tail, env, poisoned, acc);
}

export function compareOut(obs: TraceStruct, pred: Out | undefined, env: Env, poisoned: Map<string, number>, line: number): OutProblem[] {
  const acc: OutProblem[] = [];
  compareStruct('out', obs, pred ?? {}, env, poisoned, acc);
  if (acc.length > 0) for (const [k, v] of poisoned) if (v === -1) poisoned.set(k, line);
  return acc;
}
