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
import { decodeInt, decodeNames, decodeStruct, intOrBad, type RawInt, type TraceStruct } from './struct_codec.js';
import { COMMAND_BY_NAME, type CommandDef } from './uapi.js';
import { bad, Bad, decodeHexBytes, decodeUnsigned, decodeVarName, isVarString, ok, show, type Decoded, type Problem, type Var } from './values.js';
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
    // Extensions (docs/trace-format-type1.md): the process execs; an mdev driver's calls into the legacy container.
    | { readonly op: 'exec'; readonly cloexec: readonly RawInt[] }
    | { readonly op: 'mdev_pin'; readonly dev: string; readonly iova: RawInt; readonly npage: RawInt; readonly prot: bigint }
    | { readonly op: 'mdev_unpin'; readonly dev: string; readonly iova: RawInt; readonly npage: RawInt }
    | { readonly op: 'mdev_dma_rw'; readonly dev: string; readonly iova: RawInt; readonly length: RawInt; readonly write: boolean; readonly data: Uint8Array | undefined; readonly out: Uint8Array | undefined }
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
type Kind = 'u64' | 's64' | 'fd' | 'fds' | 'str' | 'hex' | 'bool' | 'dev' | { flags: FlagSetName } | { enum: EnumName } | 'any';
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
  exec: { cloexec: opt('fds', []) },
  mdev_pin: { dev: req('str'), iova: req('u64'), npage: req('u64'), prot: req({ flags: 'iommu_prot' }) },
  mdev_unpin: { dev: req('str'), iova: req('u64'), npage: req('u64') },
  mdev_dma_rw: { dev: req('str'), iova: req('u64'), length: req('u64'), write: opt('bool', false), data: opt('hex'), out: opt('any') },
};
const COMMON = new Set(['op', 'seq', 'tid', 'ts', 'note', 'ret', 'errno']);

function decodeKind(kind: Kind, v: unknown, path: string): Decoded<unknown> {
  if (kind === 'any') return ok(v);
  if (kind === 'u64') return decodeInt(v, 'u64', path);
  if (kind === 's64' || kind === 'fd') return decodeInt(v, 's32', path);
  if (kind === 'fds') {
    if (!Array.isArray(v)) return bad(path, `expected an array of fds, got ${show(v)}`);
    const fds: RawInt[] = [];
    for (let i = 0; i < v.length; i++) {
      const d = decodeInt(v[i], 's32', `${path}[${i}]`);
      if (!d.ok) return d;
      fds.push(d.value);
    }
    return ok(fds);
  }
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

/** A name never starts with a digit; `0x…` and decimal strings are numbers. */
const startsLikeNumber = (v: string): boolean => {
  const c = v.charCodeAt(0);
  return c >= 48 && c <= 57;
};

function decodeCmd(v: unknown): Decoded<CmdRef> {
  if (typeof v === 'string' && !startsLikeNumber(v)) {
    const def = COMMAND_BY_NAME.get(v);
    return def ? ok({ value: def.value, def, text: v }) : bad('cmd', `unknown ioctl name ${show(v)}`);
  }
  const n = decodeUnsigned(v, 32, 'cmd');
  if (!n.ok) return n;
  const value = Number(n.value);
  // A number is resolved against the fd at dispatch: 0x3b6a is VFIO_GROUP_GET_DEVICE_FD on a group but an unknown
  // command (ENOTTY) on an iommufd, whose arg need not be a string.
  return ok({ value, def: undefined, text: `0x${value.toString(16)}` });
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

/**
 * Reads the fields of one event object, keeping the first problem; after a problem every read returns a
 * placeholder, and the caller checks `problem` once at the end. One fixed-shape object literal per op keeps the
 * decoded events monomorphic, which the replay's hot path relies on.
 */
class Fields {
  problem: Problem | undefined = undefined;
  constructor(private readonly o: Record<string, unknown>) {}
  private take<T>(key: string, kind: Kind, required: boolean, dflt: T): T {
    if (this.problem !== undefined) return dflt;
    const v = this.o[key];
    if (v === undefined) {
      if (required) this.problem = { path: key, message: `missing required field ${show(key)} of op ${show(this.o.op)}` };
      return dflt;
    }
    const d = decodeKind(kind, v, key);
    if (!d.ok) {
      this.problem = d.problem;
      return dflt;
    }
    return d.value as T;
  }
  private intOf(key: string, width: 'u64' | 's32', dflt: RawInt | undefined): RawInt {
    if (this.problem !== undefined) return 0n;
    const v = this.o[key];
    if (v === undefined) {
      if (dflt === undefined) this.problem = { path: key, message: `missing required field ${show(key)} of op ${show(this.o.op)}` };
      return dflt ?? 0n;
    }
    const r = intOrBad(v, width, key);
    if (r instanceof Bad) {
      this.problem = r;
      return 0n;
    }
    return r;
  }
  int(key: string, dflt?: RawInt): RawInt { return this.intOf(key, 'u64', dflt); }
  fd(key: string, dflt?: RawInt): RawInt { return this.intOf(key, 's32', dflt); }
  optInt(key: string): RawInt | undefined { return this.take<RawInt | undefined>(key, 'u64', false, undefined); }
  str(key: string): string { return this.take(key, 'str', true, ''); }
  hex(key: string): Uint8Array { return this.take(key, 'hex', true, EMPTY); }
  optHex(key: string): Uint8Array | undefined { return this.take<Uint8Array | undefined>(key, 'hex', false, undefined); }
  bool(key: string, dflt: boolean): boolean { return this.take(key, 'bool', false, dflt); }
  dev(key: string): string | Var { return this.take<string | Var>(key, 'dev', true, ''); }
  fds(key: string): readonly RawInt[] { return this.take<readonly RawInt[]>(key, 'fds', false, []); }
  flags(key: string, set: FlagSetName, dflt?: bigint): bigint { return this.take(key, { flags: set }, dflt === undefined, dflt ?? 0n); }
  enumOf(key: string, set: EnumName): bigint { return this.take(key, { enum: set }, true, 0n); }
  dataOut(): Uint8Array | undefined {
    if (this.problem !== undefined) return undefined;
    const d = decodeDataOut(this.o.out);
    if (!d.ok) this.problem = d.problem;
    return d.ok ? d.value : undefined;
  }
}
const EMPTY = new Uint8Array(0);

/** Decodes one event object (already JSON-parsed); `line` is its 1-based line number. */
export function decodeEvent(raw: unknown, line: number): Decoded<TraceEvent> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('', `expected an event object, got ${show(raw)}`);
  const o = raw as Record<string, unknown>;
  const op = o.op;
  if (typeof op !== 'string') return bad('op', `expected an op name, got ${show(op)}`);
  const spec = Object.hasOwn(OPS, op) ? OPS[op as Op] : undefined;
  if (spec === undefined) return bad('op', `unknown op ${show(op)}`);
  for (const key in o) {
    if (COMMON.has(key) || Object.hasOwn(spec, key)) continue;
    return bad(key, `unknown field ${show(key)} of op ${show(op)}`);
  }
  let tid = 1;
  let seq: bigint | undefined;
  let note: string | undefined;
  let ret: RawInt | undefined;
  let errno: Errno | undefined;
  if (o.tid !== undefined) {
    const d = decodeUnsigned(o.tid, 32, 'tid');
    if (!d.ok) return d;
    tid = Number(d.value);
  }
  if (o.seq !== undefined) {
    const d = decodeUnsigned(o.seq, 64, 'seq');
    if (!d.ok) return d;
    seq = d.value;
  }
  if (o.ts !== undefined) {
    const d = decodeUnsigned(o.ts, 64, 'ts');
    if (!d.ok) return d;
  }
  if (o.note !== undefined) {
    if (typeof o.note !== 'string') return bad('note', `expected a string, got ${show(o.note)}`);
    note = o.note;
  }
  if (o.ret !== undefined) {
    // `ret` is -1 beside an errno; otherwise an fd, an address or an ioctl's return value.
    const d = o.ret === -1 ? ok(-1n) : decodeInt(o.ret, 'u64', 'ret');
    if (!d.ok) return d;
    ret = d.value;
  }
  if (o.errno !== undefined) {
    if (!isErrno(o.errno)) return bad('errno', `expected an errno name (ENOENT, EBUSY, ...), got ${show(o.errno)}`);
    errno = o.errno;
  }
  const f = new Fields(o);
  let ev: TraceEvent;
  switch (op as Op) {
    case 'open': ev = { op: 'open', line, tid, seq, note, ret, errno, path: f.str('path'), flags: f.flags('flags', 'open', 0n) }; break;
    case 'close': ev = { op: 'close', line, tid, seq, note, ret, errno, fd: f.fd('fd') }; break;
    case 'ioctl': {
      const fd = f.fd('fd');
      if (f.problem) return { ok: false, problem: f.problem };
      const c = decodeCmd(o.cmd);
      if (!c.ok) return c;
      const a = decodeIoctlArg(c.value.def, o.arg === undefined ? {} : o.arg);
      if (!a.ok) return a;
      let out: unknown = o.out;
      if (c.value.def !== undefined) {
        const d = decodeIoctlOut(c.value.def, o.out);
        if (!d.ok) return d;
        out = d.value;
      }
      ev = { op: 'ioctl', line, tid, seq, note, ret, errno, fd, cmd: c.value, arg: a.value, out };
      break;
    }
    case 'mmap':
      ev = { op: 'mmap', line, tid, seq, note, ret, errno, addr: f.int('addr', 0n), length: f.int('length'), prot: f.flags('prot', 'prot', 0n),
        flags: f.flags('flags', 'mmap'), fd: f.fd('fd', -1n), offset: f.int('offset', 0n) };
      break;
    case 'munmap': ev = { op: 'munmap', line, tid, seq, note, ret, errno, addr: f.int('addr'), length: f.int('length') }; break;
    case 'madvise': ev = { op: 'madvise', line, tid, seq, note, ret, errno, addr: f.int('addr'), length: f.int('length'), advice: f.enumOf('advice', 'madvise') }; break;
    case 'memfd_create': ev = { op: 'memfd_create', line, tid, seq, note, ret, errno, name: f.str('name'), flags: f.flags('flags', 'memfd', 0n) }; break;
    case 'ftruncate': ev = { op: 'ftruncate', line, tid, seq, note, ret, errno, fd: f.fd('fd'), length: f.int('length') }; break;
    case 'read': ev = { op: 'read', line, tid, seq, note, ret, errno, fd: f.fd('fd'), count: f.int('count'), out: f.dataOut() }; break;
    case 'write': ev = { op: 'write', line, tid, seq, note, ret, errno, fd: f.fd('fd'), data: f.hex('data') }; break;
    case 'pread': ev = { op: 'pread', line, tid, seq, note, ret, errno, fd: f.fd('fd'), offset: f.int('offset'), count: f.int('count'), out: f.dataOut() }; break;
    case 'pwrite': ev = { op: 'pwrite', line, tid, seq, note, ret, errno, fd: f.fd('fd'), offset: f.int('offset'), data: f.hex('data') }; break;
    case 'mem_write': ev = { op: 'mem_write', line, tid, seq, note, ret, errno, addr: f.int('addr'), data: f.hex('data') }; break;
    case 'mem_read': ev = { op: 'mem_read', line, tid, seq, note, ret, errno, addr: f.int('addr'), length: f.int('length'), out: f.dataOut() }; break;
    case 'dma':
      ev = { op: 'dma', line, tid, seq, note, ret, errno, dev: f.dev('dev'), pasid: f.optInt('pasid'), iova: f.int('iova'), length: f.int('length'),
        write: f.bool('write', false), data: f.optHex('data'), out: f.dataOut() };
      break;
    case 'exec': ev = { op: 'exec', line, tid, seq, note, ret, errno, cloexec: f.fds('cloexec') }; break;
    case 'mdev_pin':
      ev = { op: 'mdev_pin', line, tid, seq, note, ret, errno, dev: f.str('dev'), iova: f.int('iova'), npage: f.int('npage'), prot: f.flags('prot', 'iommu_prot') };
      break;
    case 'mdev_unpin': ev = { op: 'mdev_unpin', line, tid, seq, note, ret, errno, dev: f.str('dev'), iova: f.int('iova'), npage: f.int('npage') }; break;
    case 'mdev_dma_rw':
      ev = { op: 'mdev_dma_rw', line, tid, seq, note, ret, errno, dev: f.str('dev'), iova: f.int('iova'), length: f.int('length'),
        write: f.bool('write', false), data: f.optHex('data'), out: f.dataOut() };
      break;
  }
  return f.problem ? { ok: false, problem: f.problem } : ok(ev);
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
