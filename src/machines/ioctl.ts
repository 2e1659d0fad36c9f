/**
 * The ioctl framework shared by every object file: what a handler is, what it returns, and the argument as the
 * kernel sees it after `copy_struct_from_user` (main.c `iommufd_fops_ioctl`, iommufd_private.h
 * `iommufd_ucmd_respond`).
 *
 * A handler is an *operation*: a generator that yields the domain events of each atomic step and returns the
 * events of its last step with the outcome. Each `yield` is a point where the kernel drops its locks (MAP's
 * reserve/fill/publish, UNMAP's notify-and-retry, destroy waiting for short-term users), so another thread's
 * step may run there; after a `yield` a handler re-reads the state. A single-threaded replay runs every
 * operation to completion. Handlers read `Call.k.st` and never write it: only `evolve` does.
 */
import type { DomainEvent } from '../events/domain.js';
import type { Errno } from '../events/errno.js';
import type { TraceHeader } from '../events/header.js';
import type { StructDef } from '../events/structs.js';
import { isMmFault, memRead, memWriteEvents, type MmDraft } from '../hw/mm.js';
import type { IommufdCtx, State } from '../projections/state.js';

import type { Arg } from '../events/resolve.js';
export type { Arg, ArgValue } from '../events/resolve.js';

/** What the kernel writes back, by field name (nested for IOMMU_TEST_CMD's union members). */
export interface Out {
  readonly [field: string]: OutValue;
}
export type OutValue = bigint | readonly Out[] | Out | Uint8Array;

export const u64 = (a: Arg, name: string): bigint => {
  const v = a.v[name];
  return typeof v === 'bigint' ? v : 0n;
};
/** A field of at most 32 bits, as a number. */
export const u32 = (a: Arg, name: string): number => Number(u64(a, name));
/** A user pointer field that is NULL: absent, or the raw pointer 0 (inline data is never NULL). */
export const isNullPtr = (a: Arg, name: string): boolean => {
  const v = a.v[name];
  return v === undefined || v === 0n;
};
/**
 * The `count` elements of a user array field, as the kernel would copy them in: given inline in the trace, or NULL
 * (EFAULT when anything is to be read). A raw pointer into user memory needs page contents, which are read from the
 * mm model once it holds them.
 */
export function userArray(c: Call, a: Arg, name: string, count: number):
  { elems: readonly Arg[] } | { errno: 'EFAULT'; why: string } | { unmodelled: string } {
  if (count === 0) return { elems: [] };
  const v = a.v[name];
  if (Array.isArray(v)) {
    if (v.length < count) return { errno: 'EFAULT', why: `${name} holds ${v.length} element(s) but ${count} are read (the rest are not in the trace)` };
    return { elems: v.slice(0, count) };
  }
  if (v === undefined || v === 0n) return { errno: 'EFAULT', why: `copy_from_user of ${count} element(s) from a NULL ${name}` };
  const f = a.def.byName.get(name);
  if (typeof v !== 'bigint' || f?.type.t !== 'array') return { unmodelled: `${name} given as inline data` };
  const elem = f.type.elem;
  if (count * elem.size > 1 << 24) return { unmodelled: `reading ${count} elements of ${name}` };
  const bytes = copyFromUser(c, v, count * elem.size);
  if (!(bytes instanceof Uint8Array)) return bytes;
  const elems: Arg[] = [];
  for (let i = 0; i < count; i++) elems.push(structFromBytes(elem, bytes.subarray(i * elem.size, (i + 1) * elem.size)));
  return { elems };
}

/**
 * The kernel's `copy_to_user` of `data` to a user pointer field: the events that write user memory, and EFAULT when
 * a page cannot be written (the bytes before it are written all the same). A pointer given inline in the trace names
 * no memory, so nothing is written.
 */
/**
 * The kernel's `copy_to_user` of `data` at `ptr`. Several copies in one atomic step pass one `MmDraft`, so a page
 * the first copy faulted in is not faulted in again by the next.
 */
export function copyToUser(c: Call, ptr: Arg['v'][string] | undefined, data: Uint8Array, d?: MmDraft): { events: readonly DomainEvent[]; fault?: string } {
  if (data.length === 0 || (ptr !== undefined && typeof ptr !== 'bigint')) return { events: [] };
  // An absent pointer field is 0 (NULL), as the trace format says of every missing field.
  if (ptr === undefined || ptr === 0n) return { events: [], fault: 'copy_to_user to a NULL pointer' };
  const r = memWriteEvents(d ?? c.k.st.mm, c.k.st.memory, c.k.st.pageSize, ptr, data);
  return isMmFault(r) ? { events: r.events, fault: `copy_to_user at 0x${ptr.toString(16)}: ${r.why}` } : { events: r.events };
}
export const copyToUserEvents = (c: Call, ptr: Arg['v'][string] | undefined, data: Uint8Array): readonly DomainEvent[] => copyToUser(c, ptr, data).events;

/** The kernel's `copy_from_user` of `length` bytes at `ptr`. */
export function copyFromUser(c: Call, ptr: bigint, length: number): Uint8Array | { errno: 'EFAULT'; why: string } {
  if (ptr === 0n) return { errno: 'EFAULT', why: 'copy_from_user from a NULL pointer' };
  const r = memRead(c.k.st.mm, c.k.st.memory, c.k.st.pageSize, ptr, length);
  return r instanceof Uint8Array ? r : { errno: 'EFAULT', why: `copy_from_user at 0x${ptr.toString(16)}: ${r.why}` };
}

/** A struct of integer fields laid out little endian at its offsets, as the kernel reads it from user memory. */
export function structFromBytes(def: StructDef, bytes: Uint8Array): Arg {
  const v: Record<string, bigint> = {};
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const f of def.fields) {
    const t = f.type.t === 'flags' || f.type.t === 'enum' ? f.type.width : f.type.t;
    if (t === 'u64') v[f.name] = dv.getBigUint64(f.off, true);
    else if (t === 'u32' || t === 's32') v[f.name] = BigInt(dv.getUint32(f.off, true));
    else if (t === 'u16') v[f.name] = BigInt(dv.getUint16(f.off, true));
    else if (t === 'u8') v[f.name] = BigInt(dv.getUint8(f.off));
  }
  return { def, size: def.size, tail: undefined, v };
}

/** The little-endian bytes of a struct of integer fields (copy_to_user of an array element). */
export function structToBytes(def: StructDef, values: Readonly<Record<string, bigint>>): Uint8Array {
  const out = new Uint8Array(def.size);
  const dv = new DataView(out.buffer);
  for (const f of def.fields) {
    const x = values[f.name] ?? 0n;
    const t = f.type.t === 'flags' || f.type.t === 'enum' ? f.type.width : f.type.t;
    if (t === 'u64') dv.setBigUint64(f.off, x, true);
    else if (t === 'u32' || t === 's32') dv.setUint32(f.off, Number(x & 0xffff_ffffn), true);
    else if (t === 'u16') dv.setUint16(f.off, Number(x & 0xffffn), true);
    else if (t === 'u8') dv.setUint8(f.off, Number(x & 0xffn));
  }
  return out;
}

export const member = (a: Arg, name: string): Arg | undefined => {
  const v = a.v[name];
  return typeof v === 'object' && v !== null && 'def' in v ? v : undefined;
};

export type Outcome =
  | { readonly kind: 'ok'; readonly ret: bigint; readonly out: Out | undefined; readonly why: string }
  | { readonly kind: 'err'; readonly errno: Errno; readonly out: Out | undefined; readonly why: string }
  /** The model stops here: the rest of this call is not modelled yet. Always reported as a divergence. */
  | { readonly kind: 'unmodelled'; readonly what: string };
export interface Done {
  readonly events: readonly DomainEvent[];
  readonly outcome: Outcome;
}
export type Operation = Generator<readonly DomainEvent[], Done, void>;
/** What a handler returns: a `Done` when the whole call is one atomic step (most are), else a multi-step operation. */
export type Step = Done | Operation;
export const isDone = (s: Step): s is Done => (s as Done).outcome !== undefined;

/**
 * Runs an operation to completion, handing each step's events to `apply` (which must fold them into the state
 * before the next step reads it), and returns the last step. This is how a single-threaded replay runs a call.
 */
export function runToCompletion(s: Step, apply: (events: readonly DomainEvent[]) => void): Done {
  if (isDone(s)) return s;
  let r = s.next();
  while (!r.done) {
    apply(r.value);
    r = s.next();
  }
  return r.value;
}

/**
 * `iommufd_get_object` … `iommufd_put_object` around the steps of an operation (main.c `iommufd_lock_obj`): the
 * object an ioctl looked up keeps a `users` reference until the ioctl returns, so IOMMU_DESTROY of it from another
 * thread meanwhile is EBUSY (`iommufd_object_remove`: users != 1) rather than freeing it under the ioctl. Taken with
 * the operation's first step and dropped with its last; an operation that completes in one atomic step holds it
 * where nobody can see it, so it emits nothing.
 */
export function* holding(ctx: number, id: number, op: Operation): Operation {
  const first = op.next();
  if (first.done) return first.value;
  yield [{ type: 'ObjectRefTaken', ctx, id, by: 0 }, ...first.value];
  for (;;) {
    const n = op.next();
    if (n.done) return { ...n.value, events: [...n.value.events, { type: 'ObjectRefDropped', ctx, id, by: 0 }] };
    yield n.value;
  }
}

export interface Kernel {
  /** The live projected state; handlers read it, `evolve` alone writes it. */
  readonly st: State;
  readonly header: TraceHeader;
  /** The trace line being replayed (recorded on what it creates, for explanations). */
  readonly line: number;
}
export interface Call {
  readonly k: Kernel;
  readonly ctx: IommufdCtx;
}
export type Handler = (c: Call, a: Arg) => Step;

const NONE: readonly DomainEvent[] = [];
export const fail = (errno: Errno, why: string, events: readonly DomainEvent[] = NONE, out?: Out): Done =>
  ({ events, outcome: { kind: 'err', errno, out, why } });
export const succeed = (why: string, out?: Out, events: readonly DomainEvent[] = NONE, ret = 0n): Done =>
  ({ events, outcome: { kind: 'ok', ret, out, why } });
export const unmodelled = (what: string, events: readonly DomainEvent[] = NONE): Done =>
  ({ events, outcome: { kind: 'unmodelled', what } });

/**
 * `iommufd_ucmd_respond`: the whole kernel copy of the struct goes back, `min(user_size, sizeof)` bytes of it,
 * so input fields are echoed and output fields land only if the caller's struct reaches them.
 */
export function respond(a: Arg, changes: Out): Out {
  const out: Record<string, OutValue> = {};
  for (const f of a.def.fields) {
    if (f.off >= a.size) continue;
    const v = Object.hasOwn(changes, f.name) ? changes[f.name] : f.name === a.def.sizeField ? BigInt(a.size) : echo(a.v[f.name]);
    if (v !== undefined) out[f.name] = v;
    else if (f.type.t !== 'array' && f.type.t !== 'data' && f.type.t !== 'struct' && f.type.t !== 'bytes') out[f.name] = 0n;
  }
  return out;
}
function echo(v: Arg['v'][string] | undefined): OutValue | undefined {
  return typeof v === 'bigint' ? v : undefined;
}
