/**
 * The trace format (../shared/trace-format.md, version 1) as io-ts codecs. A trace line decodes to a
 * `TraceEvent` or to a located `TraceError` (`line 12: arg.length: expected a u64, got "12x"`); nothing throws.
 *
 * The codecs are io-ts `Type`s whose `validate` runs a hand-written single pass over the object (the generic
 * io-ts combinators allocate a context per field, which on a million-line trace costs more than JSON.parse).
 */
import * as t from 'io-ts';
import { isErrno, type Errno } from './errno.js';
import { ENUMS, FLAG_SETS, type EnumName, type FlagSetName } from './flags.js';
import { decodeInt, decodeNames, decodeStruct, type RawInt, type TraceStruct } from './struct_codec.js';
import { COMMAND_BY_NAME, commandsByValue, type CommandDef } from './uapi.js';
import { bad, decodeHexBytes, decodeUnsigned, decodeVarName, isVarString, ok, show, type Decoded, type Problem, type Var } from './values.js';
import { decodeHeader, type TraceHeader } from './header.js';

export type { TraceHeader } from './header.js';

/** How the ioctl's `arg` was given; a numeric VFIO `cmd` keeps it raw until the fd says which struct it is. */
export type IoctlArg =
  | { readonly k: 'null' }
  | { readonly k: 'struct'; readonly s: TraceStruct }
  | { readonly k: 'int'; readonly v: RawInt }
  | { readonly k: 'string'; readonly v: string }
  | { readonly k: 'raw'; readonly v: unknown };

export interface CmdRef {
  readonly value: number;
  /** Set when the trace named the command, or when its number means one command whatever the fd. */
  readonly def: CommandDef | undefined;
  readonly text: string;
}

interface Base {
  readonly line: number;
  readonly tid: number;
  readonly seq: bigint | undefined;
  readonly note: string | undefined;
  readonly ret: RawInt | undefined;
  readonly errno: Errno | undefined;
}
export type TraceEvent = Base &
  (
    | { readonly op: 'open'; readonly path: string; readonly flags: bigint }
    | { readonly op: 'close'; readonly fd: RawInt }
    | { readonly op: 'ioctl'; readonly fd: RawInt; readonly cmd: CmdRef; readonly arg: IoctlArg; readonly out: unknown }
    | { readonly op: 'mmap'; readonly addr: RawInt; readonly length: RawInt; readonly prot: bigint; readonly flags: bigint; readonly fd: RawInt; readonly offset: RawInt }
    | { readonly op: 'munmap'; readonly addr: RawInt; readonly length: RawInt }
    | { readonly op: 'madvise'; readonly addr: RawInt; readonly length: RawInt; readonly advice: bigint }
    | { readonly op: 'memfd_create'; readonly name: string; readonly flags: bigint }
    | { readonly op: 'ftruncate'; readonly fd: RawInt; readonly length: RawInt }
    | { readonly op: 'read'; readonly fd: RawInt; readonly count: RawInt; readonly out: Uint8Array | undefined }
    | { readonly op: 'write'; readonly fd: RawInt; readonly data: Uint8Array }
    | { readonly op: 'pread'; readonly fd: RawInt; readonly offset: RawInt; readonly count: RawInt; readonly out: Uint8Array | undefined }
    | { readonly op: 'pwrite'; readonly fd: RawInt; readonly offset: RawInt; readonly data: Uint8Array }
    | { readonly op: 'mem_write'; readonly addr: RawInt; readonly data: Uint8Array }
    | { readonly op: 'mem_read'; readonly addr: RawInt; readonly length: RawInt; readonly out: Uint8Array | undefined }
    | { readonly op: 'dma'; readonly dev: string | Var; readonly pasid: RawInt | undefined; readonly iova: RawInt; readonly length: RawInt; readonly write: boolean; readonly data: Uint8Array | undefined; readonly out: Uint8Array | undefined }
  );
export type Op = TraceEvent['op'];
export type EventOf<O extends Op> = Extract<TraceEvent, { op: O }>;

/** A located trace error: the line and the JSON path of the offending value. */
export interface TraceError {
  readonly line: number;
  readonly path: string;
  readonly message: string;
}
export const formatTraceError = (e: TraceError): string =>
  `line ${e.line}: ${e.path === '' ? '' : `${e.path}: `}${e.message}`;

// ---- field kinds of the syscall ops -------------------------------------------------------------------------
type Kind = 'u64' | 's64' | 'fd' | 'str' | 'hex' | 'bool' | 'dev' | { flags: FlagSetName } | { enum: EnumName } | 'any';
interface FieldSpec { readonly kind: Kind; readonly required: boolean; readonly dflt?: unknown }
const req = (kind: Kind): FieldSpec => ({ kind, required: true });
const opt = (kind: Kind, dflt?: unknown): FieldSpec => ({ kind, required: false, dflt });

const OPS: Readonly<Record<Op, Readonly<Record<string, FieldSpec>>>> = {
  open: { path: req('str'), flags: opt({ flags: 'open' }, 0n) },
  close: { fd: req('fd') },
  ioctl: { fd: req('fd'), cmd: req('any'), arg: opt('any', {}), out: opt('any') },
  mmap: {
    addr: opt('u64', 0n), length: req('u64'), prot: opt({ flags: 'prot' }, 0n), flags: req({ flags: 'mmap' }),
    fd: opt('fd', -1n), offset: opt('u64', 0n),
  },
  munmap: { addr: req('u64'), length: req('u64') },
  madvise: { addr: req('u64'), length: req('u64'), advice: req({ enum: 'madvise' }) },
  memfd_create: { name: req('str'), flags: opt({ flags: 'memfd' }, 0n) },
  ftruncate: { fd: req('fd'), length: req('u64') },
  read: { fd: req('fd'), count: req('u64'), out: opt('any') },
  write: { fd: req('fd'), data: req('hex') },
  pread: { fd: req('fd'), offset: req('u64'), count: req('u64'), out: opt('any') },
  pwrite: { fd: req('fd'), offset: req('u64'), data: req('hex') },
  mem_write: { addr: req('u64'), data: req('hex') },
  mem_read: { addr: req('u64'), length: req('u64'), out: opt('any') },
  dma: {
    dev: req('dev'), pasid: opt('u64'), iova: req('u64'), length: req('u64'), write: opt('bool', false),
    data: opt('hex'), out: opt('any'),
  },
};
const COMMON = new Set(['op', 'seq', 'tid', 'ts', 'note', 'ret', 'errno']);

function decodeKind(kind: Kind, v: unknown, path: string): Decoded<unknown> {
  if (kind === 'any') return ok(v);
  if (kind === 'u64') return decodeInt(v, 'u64', path);
  if (kind === 's64' || kind === 'fd') return decodeInt(v, 's32', path);
  if (kind === 'str') return typeof v === 'string' ? ok(v) : bad(path, `expected a string, got ${show(v)}`);
  if (kind === 'hex') return decodeHexBytes(v, path);
  if (kind === 'bool') return typeof v === 'boolean' ? ok(v) : bad(path, `expected true or false, got ${show(v)}`);
  if (kind === 'dev') {
    if (isVarString(v)) return decodeVarName(v, path);
    return typeof v === 'string' ? ok(v) : bad(path, `expected a device path or $variable, got ${show(v)}`);
  }
  if ('flags' in kind) return decodeNames(v, FLAG_SETS[kind.flags], 'u64', path, true);
  return decodeNames(v, ENUMS[kind.enum], 'u64', path, false);
}

/** `out` of a byte-returning op: `{"data": "hex"}`. */
function decodeDataOut(v: unknown): Decoded<Uint8Array | undefined> {
  if (v === undefined) return ok(undefined);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('out', `expected an object, got ${show(v)}`);
  for (const k of Object.keys(v)) if (k !== 'data') return bad(`out.${k}`, `unknown field ${show(k)}`);
  const d = (v as { data?: unknown }).data;
  return d === undefined ? ok(undefined) : decodeHexBytes(d, 'out.data');
}

function decodeCmd(v: unknown): Decoded<CmdRef> {
  if (typeof v === 'string' && !/^(0x|[0-9])/i.test(v)) {
    const def = COMMAND_BY_NAME.get(v);
    return def ? ok({ value: def.value, def, text: v }) : bad('cmd', `unknown ioctl name ${show(v)}`);
  }
  const n = decodeUnsigned(v, 32, 'cmd');
  if (!n.ok) return n;
  const value = Number(n.value);
  const cands = commandsByValue(value);
  return ok({ value, def: cands.length === 1 ? cands[0] : undefined, text: `0x${value.toString(16)}` });
}

/** Decodes `arg` (and `out`) once the command is known; also used at dispatch for numeric VFIO commands. */
export function decodeIoctlArg(def: CommandDef | undefined, arg: unknown): Decoded<IoctlArg> {
  if (arg === null) return ok({ k: 'null' });
  if (def === undefined) return ok({ k: 'raw', v: arg });
  switch (def.arg.k) {
    case 'struct': {
      const s = decodeStruct(def.arg.def, arg, 'arg', 'in');
      return s.ok ? ok({ k: 'struct', s: s.value }) : s;
    }
    case 'int': case 'intptr': {
      const d = decodeInt(arg, 's32', 'arg');
      return d.ok ? ok({ k: 'int', v: d.value }) : d;
    }
    case 'string':
      return typeof arg === 'string' ? ok({ k: 'string', v: arg }) : bad('arg', `expected a string, got ${show(arg)}`);
    case 'none':
      return ok({ k: 'null' });
    case 'opaque':
      return ok({ k: 'raw', v: arg });
  }
}

export function decodeIoctlOut(def: CommandDef | undefined, out: unknown): Decoded<TraceStruct | undefined> {
  if (out === undefined) return ok(undefined);
  if (def === undefined || def.arg.k !== 'struct') {
    return bad('out', `ioctl ${def?.name ?? 'with an unnamed command'} has no output fields this model knows`);
  }
  const s = decodeStruct(def.arg.def, out, 'out', 'out');
  return s.ok ? ok(s.value) : s;
}

/** Decodes one event object (already JSON-parsed); `line` is its 1-based line number. */
export function decodeEvent(raw: unknown, line: number): Decoded<TraceEvent> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('', `expected an event object, got ${show(raw)}`);
  const o = raw as Record<string, unknown>;
  const op = o.op;
  if (typeof op !== 'string') return bad('op', `expected an op name, got ${show(op)}`);
  const spec = Object.hasOwn(OPS, op) ? OPS[op as Op] : undefined;
  if (spec === undefined) return bad('op', `unknown op ${show(op)}`);
  const ev: Record<string, unknown> = { op, line, tid: 1, seq: undefined, note: undefined, ret: undefined, errno: undefined };
  for (const key in o) {
    if (COMMON.has(key) || Object.hasOwn(spec, key)) continue;
    return bad(key, `unknown field ${show(key)} of op ${show(op)}`);
  }
  if (o.tid !== undefined) {
    const d = decodeUnsigned(o.tid, 32, 'tid');
    if (!d.ok) return d;
    ev.tid = Number(d.value);
  }
  if (o.seq !== undefined) {
    const d = decodeUnsigned(o.seq, 64, 'seq');
    if (!d.ok) return d;
    ev.seq = d.value;
  }
  if (o.ts !== undefined) {
    const d = decodeUnsigned(o.ts, 64, 'ts');
    if (!d.ok) return d;
  }
  if (o.note !== undefined) {
    if (typeof o.note !== 'string') return bad('note', `expected a string, got ${show(o.note)}`);
    ev.note = o.note;
  }
  if (o.ret !== undefined) {
    const d = decodeInt(o.ret, 'u64', 'ret');
    const r = d.ok ? d : o.ret === -1 ? ok(-1n) : d;
    if (!r.ok) return r;
    ev.ret = r.value;
  }
  if (o.errno !== undefined) {
    if (!isErrno(o.errno)) return bad('errno', `expected an errno name (ENOENT, EBUSY, ...), got ${show(o.errno)}`);
    ev.errno = o.errno;
  }
  for (const key in spec) {
    const fs = spec[key]!;
    const v = o[key];
    if (v === undefined) {
      if (fs.required) return bad(key, `missing required field ${show(key)} of op ${show(op)}`);
      ev[key] = fs.dflt;
      continue;
    }
    const d = decodeKind(fs.kind, v, key);
    if (!d.ok) return d;
    ev[key] = d.value;
  }
  if (op === 'ioctl') {
    const c = decodeCmd(o.cmd);
    if (!c.ok) return c;
    ev.cmd = c.value;
    const a = decodeIoctlArg(c.value.def, o.arg === undefined ? {} : o.arg);
    if (!a.ok) return a;
    ev.arg = a.value;
    if (c.value.def !== undefined) {
      const out = decodeIoctlOut(c.value.def, o.out);
      if (!out.ok) return out;
      ev.out = out.value;
    }
  } else if (op === 'read' || op === 'pread' || op === 'mem_read' || op === 'dma') {
    const d = decodeDataOut(o.out);
    if (!d.ok) return d;
    ev.out = d.value;
  }
  return ok(ev as unknown as TraceEvent);
}

// ---- io-ts codecs ---------------------------------------------------------------------------------------------
const fromDecoder = <A>(name: string, dec: (u: unknown) => Decoded<A>): t.Type<A, unknown, unknown> =>
  new t.Type<A, unknown, unknown>(
    name,
    (u): u is A => dec(u).ok,
    (u, c) => {
      const r = dec(u);
      return r.ok ? t.success(r.value) : t.failure(u, [...c, { key: r.problem.path, type: t.unknown, actual: u }], r.problem.message);
    },
    (a) => a,
  );

export const TraceHeaderC = fromDecoder<TraceHeader>('TraceHeader', decodeHeader);
export const traceEventC = (line: number) => fromDecoder<TraceEvent>('TraceEvent', (u) => decodeEvent(u, line));
export const structC = (def: CommandDef) =>
  fromDecoder<IoctlArg>(`struct ${def.arg.k === 'struct' ? def.arg.def.name : def.name}`, (u) => decodeIoctlArg(def, u));
export const problemOf = (p: Problem, line: number): TraceError => ({ line, path: p.path, message: p.message });
