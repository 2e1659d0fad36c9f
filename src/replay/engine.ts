/**
 * The replay engine: feeds a trace through the model, one line at a time, and judges each observed outcome
 * (trace-format.md "Replay verdict").
 *
 * For each event it resolves the trace's variables, builds the operation (a syscall, or an ioctl dispatched by
 * the fd's file), runs its steps to completion — appending every domain event to the log and folding it into the
 * state with `evolve` — and compares `ret`/`errno` and each `out` field with the model's. A difference is a
 * `Divergence` carrying the handler's reason. A line that cannot be decoded is a `TraceError`; replay goes on with
 * the next line, so one bad line never hides the verdict on the others.
 */
import type { DomainEvent, LogEntry } from '../events/domain.js';
import { sameErrno } from '../events/errno.js';
import { decodeHeader, type TraceHeader } from '../events/header.js';
import { Unbound, resolveInt, resolveStruct, type Env } from '../events/resolve.js';
import type { RawInt, TraceStruct } from '../events/struct_codec.js';
import { decodeEvent, decodeIoctlArg, decodeIoctlOut, formatTraceError, type TraceError, type TraceEvent } from '../events/trace.js';
import { commandFor } from '../events/uapi.js';
import { isVar, ok } from '../events/values.js';
import { sys_read, sys_write } from '../machines/fault.js';
import { sys_dma } from '../machines/dma.js';
import { extensionOp } from '../machines/extension_ops.js';
import { isDone, runToCompletion, type Done, type Kernel, type Operation, type Outcome, type Step } from '../machines/ioctl.js';
import { evolveRefused, handlerThrew, InvariantMonitor, type InvariantViolation } from '../projections/invariants.js';
import { iommufd_fops_ioctl, type IoctlInput } from '../machines/main.js';
import { vfio_device_ioctl } from '../machines/vfio_device.js';
import { vfio_group_ioctl } from '../machines/vfio_group.js';
import { vfio_container_ioctl } from '../machines/vfio_type1.js';
import { vfio_pci_config_pwrite } from '../machines/vfio_pci_bar.js';
import * as sys from '../machines/process.js';
import { evolve, initialState, ProjectionError, type State } from '../projections/state.js';
import { compareOut, fmt } from './compare.js';

export interface Divergence {
  readonly line: number;
  readonly field: string;
  readonly observed: string;
  readonly predicted: string;
  readonly why: string;
}
export interface Explanation {
  readonly line: number;
  readonly call: string;
  readonly result: string;
  readonly why: string;
}
export interface ReplaySummary {
  readonly lines: number;
  readonly events: number;
  readonly divergences: readonly Divergence[];
  readonly errors: readonly TraceError[];
  /** Model bugs (an event the state could not take); never expected, always reported. */
  readonly internal: readonly TraceError[];
  /** With `invariants`: each invariant broken (the first time), where. */
  readonly violations: readonly InvariantBreak[];
  readonly warnings: readonly Warning[];
}
export interface Warning {
  readonly line: number;
  readonly kind: 'StaleDeviceMapping';
  readonly message: string;
}

/** A broken invariant: the trace line whose step broke it and the log entry it broke at. */
export interface InvariantBreak extends InvariantViolation {
  readonly line: number;
  readonly n: number;
}
export interface ReplayOptions {
  /** Check the invariant library after every atomic step (InvariantMonitor: O(what the step touched)). */
  readonly invariants?: boolean;
  /**
   * Replay under an interleaving (`iotrail check`'s `.schedule.json`): the trace line of each atomic step, in order;
   * a line's first entry starts its operation. Lines the schedule never names run to completion when read.
   */
  readonly schedule?: readonly number[];
}
/** An event the state refused, already reported as `evolve-accepts`: the operation stops there. */
class Refused extends Error {}

export type LogSink = (e: LogEntry) => void;

export class Replayer implements Kernel {
  readonly st: State = initialState();
  header: TraceHeader = DEFAULT_HEADER;
  private readonly env: Env = new Map();
  /** Variables that a diverged event failed to bind, and the line that should have bound them. */
  private readonly poisoned = new Map<string, number>();
  private n = 0;
  private lines = 0;
  private sawHeader = false;
  line = 0;
  /** The observed `out` of the event being applied (decoded late for numeric commands). */
  private curOut: unknown = undefined;
  private tid = 1;
  readonly divergences: Divergence[] = [];
  readonly errors: TraceError[] = [];
  readonly internal: TraceError[] = [];
  readonly violations: InvariantBreak[] = [];
  private readonly monitor: InvariantMonitor | undefined;
  /** Operations started and not finished (more than one only under a schedule). */
  private inFlight = 0;
  private readonly scheduled: ReadonlySet<number>;
  private schedPos = 0;
  /** Scheduled lines read but not started yet, and started operations, by line. */
  private readonly fed = new Map<number, TraceEvent>();
  private readonly running = new Map<number, { ev: TraceEvent; op: Operation; out: unknown }>();
  /** StaleDeviceMapping hazards the model saw (warnings: the kernel behaves so, no divergence). */
  readonly warnings: Warning[] = [];

  /** With `explain`, every call whose outcome was an error, and why the model agrees (`--explain`). */
  readonly explanations: Explanation[] = [];
  explain: 'none' | 'errors' | 'all' = 'none';
  /** `--vfio-container`: serve /dev/vfio/vfio by this backend whatever the header says. */
  vfioContainer: 'iommufd' | 'type1' | undefined = undefined;

  constructor(
    private readonly sink: LogSink | undefined = undefined, private readonly onDivergence?: (d: Divergence) => void,
    private readonly opts: ReplayOptions = {},
  ) {
    this.monitor = opts.invariants || opts.schedule !== undefined ? new InvariantMonitor(this.st) : undefined;
    this.scheduled = new Set(opts.schedule ?? []);
  }

  get eventCount(): number {
    return this.n;
  }

  summary(): ReplaySummary {
    return { lines: this.lines, events: this.n, divergences: this.divergences, errors: this.errors, internal: this.internal, violations: this.violations, warnings: this.warnings };
  }

  /** Feeds one line of the trace; `lineNo` is 1-based. Never throws for bad input. */
  feedLine(text: string, lineNo: number): void {
    this.lines = lineNo;
    const t = text.endsWith('\r') ? text.slice(0, -1) : text;
    if (t.trim() === '') return;
    let raw: unknown;
    try {
      raw = JSON.parse(t);
    } catch (e) {
      this.errors.push({ line: lineNo, path: '', message: `malformed JSON (${(e as Error).message})` });
      return;
    }
    if (!this.sawHeader) {
      this.sawHeader = true;
      const h = decodeHeader(raw);
      if (!h.ok) {
        this.errors.push({ line: lineNo, path: h.problem.path, message: h.problem.message });
        return;
      }
      this.header = this.vfioContainer === undefined ? h.value : { ...h.value, vfio_container: this.vfioContainer };
      this.emit([{ type: 'TraceStarted', pageSize: h.value.page_size, memory: h.value.memory }], lineNo, 0);
      // VMAs that existed before the first event (header `vmas`).
      this.emit(h.value.vmas.map((v) => ({
        type: 'VmaMapped', start: v.start, length: v.length, prot: Number(v.prot), flags: Number(v.flags), memfd: undefined, offset: v.offset,
      })), lineNo, 0);
      return;
    }
    const d = decodeEvent(raw, lineNo);
    if (!d.ok) {
      this.errors.push({ line: lineNo, path: d.problem.path, message: d.problem.message });
      return;
    }
    this.apply(d.value);
  }

  /** Applies one decoded event. */
  apply(ev: TraceEvent): void {
    if (this.scheduled.has(ev.line)) {
      this.fed.set(ev.line, ev);
      this.pump(false);
      return;
    }
    this.line = ev.line;
    this.tid = ev.tid;
    this.curOut = 'out' in ev ? ev.out : undefined;
    try {
      const op = this.operation(ev);
      if (op === undefined) {
        // The event could not run (an unbound variable): what it would have bound is unbound too.
        this.poison(ev);
        return;
      }
      this.inFlight++;
      let d: Done;
      try {
        d = runToCompletion(op, (events) => this.emit(events, ev.line, ev.tid));
      } finally {
        this.inFlight--;
      }
      this.emit(d.events, ev.line, ev.tid);
      this.judge(ev, d);
    } catch (e) {
      this.internalError(ev, e);
    }
  }

  /** Folds one atomic step's events, with the invariant checks around each and at the end of the step. */
  private emit(events: readonly DomainEvent[], line: number, tid: number): void {
    this.fold(events, line, tid);
    if (this.monitor !== undefined) this.broken(this.monitor.endStep(this.st, { quiescent: this.inFlight === 0 }), line, tid, this.n - 1);
  }

  /** Records broken invariants (each the first time only: the state stays broken) and logs InvariantViolated. */
  private broken(vs: readonly InvariantViolation[], line: number, tid: number, at: number): void {
    for (const v of vs) {
      if (this.violations.some((x) => x.name === v.name)) continue;
      this.violations.push({ ...v, line, n: at });
      this.sink?.({ n: this.n, line, tid, ev: { type: 'InvariantViolated', name: v.name, message: v.message, rule: v.rule, at } });
      this.n++;
    }
  }

  /** Runs the schedule as far as the lines read so far allow; at the end (`final`), all of it and what is left. */
  private pump(final: boolean): void {
    const s = this.opts.schedule ?? [];
    while (this.schedPos < s.length) {
      const ln = s[this.schedPos]!;
      const r = this.running.get(ln);
      if (r !== undefined) {
        this.schedPos++;
        this.stepScheduled(ln, r);
        continue;
      }
      const ev = this.fed.get(ln);
      if (ev === undefined) {
        if (!final && ln > this.lines) return; // not read yet
        this.errors.push({ line: ln, path: '', message: `schedule step ${this.schedPos}: line ${ln} is not an operation of the trace, or has already completed` });
        this.schedPos++;
        continue;
      }
      this.fed.delete(ln);
      this.schedPos++;
      this.startScheduled(ev);
    }
    if (!final) return;
    for (const ev of [...this.fed.values()].sort((a, b) => a.line - b.line)) this.startScheduled(ev);
    this.fed.clear();
    for (const ln of [...this.running.keys()].sort((a, b) => a - b)) {
      const r = this.running.get(ln)!;
      while (this.running.has(ln)) this.stepScheduled(ln, r);
    }
  }

  private startScheduled(ev: TraceEvent): void {
    this.line = ev.line;
    this.tid = ev.tid;
    this.curOut = 'out' in ev ? ev.out : undefined;
    try {
      const op = this.operation(ev);
      if (op === undefined) return this.poison(ev);
      if (isDone(op)) {
        this.emit(op.events, ev.line, ev.tid);
        return this.judge(ev, op);
      }
      const r = { ev, op, out: this.curOut };
      this.running.set(ev.line, r);
      this.inFlight++;
      this.stepScheduled(ev.line, r);
    } catch (e) {
      this.internalError(ev, e);
    }
  }

  private stepScheduled(ln: number, r: { ev: TraceEvent; op: Operation; out: unknown }): void {
    const ev = r.ev;
    this.line = ev.line;
    this.tid = ev.tid;
    this.curOut = r.out;
    try {
      const it = r.op.next();
      if (!it.done) return this.emit(it.value, ev.line, ev.tid);
      this.running.delete(ln);
      this.inFlight--;
      this.emit(it.value.events, ev.line, ev.tid);
      this.judge(ev, it.value);
    } catch (e) {
      if (this.running.delete(ln)) this.inFlight--;
      this.internalError(ev, e);
    }
  }

  /**
   * A model bug (a handler threw, or decide and evolve disagree): reported on its line, replay goes on. Checking
   * invariants, it is the violation `iotrail check` reports (`handler-total`, `evolve-accepts`), so a counterexample
   * replays as what the checker found.
   */
  private internalError(ev: TraceEvent, e: unknown): void {
    if (e instanceof Refused) return;
    if (this.monitor !== undefined) {
      this.monitor.reset();
      return this.broken([handlerThrew(ev.line, e)], ev.line, ev.tid, this.n - 1);
    }
    const where = e instanceof ProjectionError ? '' : ` (${(e as Error).stack?.split('\n')[1]?.trim() ?? 'no stack'})`;
    this.internal.push({ line: ev.line, path: '', message: `internal model error: ${(e as Error).message}${where}` });
  }

  /** The end of the trace: under a schedule, its remaining steps and the operations still in flight. */
  finish(): void {
    if (this.opts.schedule !== undefined) this.pump(true);
  }

  private fold(events: readonly DomainEvent[], line: number, tid: number): void {
    const sink = this.sink, m = this.monitor;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      if (sink !== undefined) sink({ n: this.n, line, tid, ev });
      const at = this.n++;
      if (m !== undefined) this.broken(m.before(this.st, ev), line, tid, at);
      if (m === undefined) evolve(this.st, ev);
      else {
        try {
          evolve(this.st, ev);
        } catch (e) {
          m.reset();
          this.broken([evolveRefused(line, ev, e)], line, tid, at);
          throw new Refused();
        }
      }
      if (m !== undefined) this.broken(m.after(this.st, ev), line, tid, at);
      if (ev.type === 'StaleDeviceMapping') this.warnings.push({ line, kind: ev.type, message: ev.why });
    }
  }

  /** Resolves a used variable, or records why it cannot be (returns undefined). */
  private use(v: RawInt, path: string): bigint | undefined {
    const r = resolveInt(v, this.env, path);
    return r instanceof Unbound ? this.unbound(r) : r;
  }

  private unbound(u: Unbound): undefined {
    const from = this.poisoned.get(u.name);
    if (from !== undefined) {
      this.diverge(u.path, 'a value', 'nothing', `${u.name} was to be bound by line ${from}, which diverged; this line cannot be replayed`);
    } else {
      this.errors.push({ line: this.line, path: u.path, message: `variable ${u.name} is used before it is bound` });
    }
    return undefined;
  }

  /** The value the trace observed for a call that returns an fd or address, which the model then adopts. */
  private wanted(ev: TraceEvent): bigint | undefined {
    return ev.ret !== undefined && !isVar(ev.ret) && ev.errno === undefined ? ev.ret : undefined;
  }

  private fdOf(v: RawInt): number | undefined {
    const fd = this.use(v, 'fd');
    return fd === undefined ? undefined : Number(fd);
  }

  private operation(ev: TraceEvent): Step | undefined {
    switch (ev.op) {
      case 'open':
        return sys.sys_open(this, ev.path, this.wanted(ev));
      case 'close': {
        const fd = this.fdOf(ev.fd);
        return fd === undefined ? undefined : sys.sys_close(this, fd);
      }
      case 'ioctl':
        return this.ioctl(ev);
      case 'mmap': {
        const r = this.resolveAll({ addr: ev.addr, length: ev.length, fd: ev.fd, offset: ev.offset });
        return r && sys.sys_mmap(this, { addr: r.addr, length: r.length, prot: ev.prot, flags: ev.flags, fd: r.fd, offset: r.offset }, this.wanted(ev));
      }
      case 'munmap': {
        const r = this.resolveAll({ addr: ev.addr, length: ev.length });
        return r && sys.sys_munmap(this, r.addr, r.length);
      }
      case 'madvise': {
        const r = this.resolveAll({ addr: ev.addr, length: ev.length });
        return r && sys.sys_madvise(this, r.addr, r.length, ev.advice);
      }
      case 'memfd_create':
        return sys.sys_memfd_create(this, ev.name, ev.flags, this.wanted(ev));
      case 'ftruncate': {
        const r = this.resolveAll({ fd: ev.fd, length: ev.length });
        return r && sys.sys_ftruncate(this, Number(r.fd), r.length);
      }
      case 'read': {
        const fd = this.fdOf(ev.fd);
        const r = this.resolveAll({ count: ev.count });
        return fd === undefined || r === undefined ? undefined : sys_read(this, fd, r.count);
      }
      case 'write': {
        const fd = this.fdOf(ev.fd);
        return fd === undefined ? undefined : sys_write(this, fd, ev.data);
      }
      case 'pwrite': {
        const r = this.resolveAll({ fd: ev.fd, offset: ev.offset });
        if (r === undefined) return undefined;
        const f = this.st.fds.get(Number(r.fd));
        if (f?.kind === 'vfio_device') return vfio_pci_config_pwrite(this, Number(r.fd), f.path, r.offset, ev.data);
        return sys.notModelledOp(`${ev.op} (fault and event queue fds, VFIO regions)`);
      }
      case 'pread':
        return sys.notModelledOp(`${ev.op} (fault and event queue fds, VFIO regions)`);
      case 'mem_write': {
        const r = this.resolveAll({ addr: ev.addr });
        return r && sys.sys_mem_write(this, r.addr, ev.data);
      }
      case 'mem_read': {
        const r = this.resolveAll({ addr: ev.addr, length: ev.length });
        return r && sys.sys_mem_read(this, r.addr, r.length);
      }
      case 'dma': {
        const dev = typeof ev.dev === 'string' ? ev.dev : this.use(ev.dev, 'dev');
        const r = this.resolveAll({ pasid: ev.pasid ?? 0n, iova: ev.iova, length: ev.length });
        return dev === undefined || r === undefined ? undefined
          : sys_dma(this, { dev, pasid: r.pasid, iova: r.iova, length: r.length, write: ev.write, data: ev.data });
      }
      case 'exec': case 'mdev_pin': case 'mdev_unpin': case 'mdev_dma_rw':
        return extensionOp(this, ev, (v, path) => this.use(v, path));
    }
  }

  private resolveAll<K extends string>(fields: Record<K, RawInt>): Record<K, bigint> | undefined {
    const out = {} as Record<K, bigint>;
    for (const k in fields) {
      const v = this.use(fields[k], k);
      if (v === undefined) return undefined;
      out[k] = v;
    }
    return out;
  }

  private ioctl(ev: Extract<TraceEvent, { op: 'ioctl' }>): Step | undefined {
    const fd = this.fdOf(ev.fd);
    if (fd === undefined) return undefined;
    const f = this.st.fds.get(fd);
    if (f === undefined) return fail('EBADF', `ioctl: fd ${fd} is not open`);
    if (f.kind !== 'iommufd' && f.kind !== 'vfio_device' && f.kind !== 'vfio_group' && f.kind !== 'vfio_container')
      return fail('ENOTTY', `ioctl: fd ${fd} is ${f.kind === 'memfd' ? 'a memfd' : f.kind === 'access' ? 'a selftest access' : f.kind === 'eventq' ? `the fd of event queue ${f.id}` : f.kind === 'dmabuf' ? 'a dma-buf' : f.path}, which has no ioctls`);
    const family = f.kind === 'iommufd' ? 'iommufd' : f.kind;
    let arg = ev.arg;
    if (ev.cmd.def === undefined) {
      // A numeric command: decode arg and out now that the fd says which command the number means.
      const def = commandFor(ev.cmd.value, family);
      const d = decodeIoctlArg(def, arg.k === "raw" ? arg.v : null);
      const o = def === undefined ? ok(undefined) : decodeIoctlOut(def, ev.out);
      const bad = !d.ok ? d.problem : !o.ok ? o.problem : undefined;
      if (bad !== undefined) {
        this.errors.push({ line: ev.line, path: bad.path, message: bad.message });
        return undefined;
      }
      arg = (d as { value: typeof arg }).value;
      this.curOut = (o as { value: unknown }).value;
    }
    let input: IoctlInput;
    switch (arg.k) {
      case 'null': input = { k: 'null' }; break;
      case 'string': input = { k: 'string', v: arg.v }; break;
      case 'raw': input = { k: 'raw' }; break;
      case 'int': {
        const v = this.use(arg.v, 'arg');
        if (v === undefined) return undefined;
        input = { k: 'int', v };
        break;
      }
      case 'struct': {
        const a = resolveStruct(arg.s, this.env, 'arg');
        if (a instanceof Unbound) return this.unbound(a);
        input = { k: 'struct', a };
        break;
      }
    }
    if (f.kind === 'vfio_device') return vfio_device_ioctl(this, fd, f.path, ev.cmd.value, input, this.wanted(ev));
    if (f.kind === 'vfio_group') return vfio_group_ioctl(this, f.group, ev.cmd.value, input, this.wanted(ev));
    if (f.kind === 'vfio_container') return vfio_container_ioctl(this, f.container, ev.cmd.value, input);
    const ctx = this.st.ctxs.get(f.ctx)!;
    return iommufd_fops_ioctl({ k: this, ctx }, ev.cmd.value, input);
  }

  private diverge(field: string, observed: string, predicted: string, why: string): void {
    const d: Divergence = { line: this.line, field, observed, predicted, why };
    this.divergences.push(d);
    this.onDivergence?.(d);
    this.emit([{ type: 'Diverged', field, observed, predicted, why }], this.line, this.tid);
  }

  private poison(ev: TraceEvent): void {
    if (ev.ret !== undefined && isVar(ev.ret)) this.poisoned.set(ev.ret.$, ev.line);
    const out = this.curOut;
    if (out !== undefined && typeof out === 'object' && out !== null && 'def' in out) poisonStruct(out as TraceStruct, this.poisoned, ev.line);
  }

  private judge(ev: TraceEvent, d: Done): void {
    const o: Outcome = d.outcome;
    if (o.kind === 'unmodelled') {
      this.emit([{ type: 'CallCompleted', op: ev.op, ret: undefined, errno: undefined, why: `not modelled: ${o.what}` }], ev.line, ev.tid);
      this.diverge('result', observedText(ev), 'not modelled', `not modelled yet: ${o.what}`);
      this.poison(ev);
      return;
    }
    this.emit([{ type: 'CallCompleted', op: ev.op, ret: o.kind === 'ok' ? o.ret : undefined, errno: o.kind === 'err' ? o.errno : undefined, why: o.why }], ev.line, ev.tid);
    if (this.explain === 'all' || (this.explain === 'errors' && o.kind === 'err'))
      this.explanations.push({ line: ev.line, call: ev.op === 'ioctl' ? ev.cmd.def?.name ?? ev.cmd.text : ev.op, result: o.kind === 'err' ? o.errno : `ret ${fmt(o.ret)}`, why: o.why });
    if (ev.errno !== undefined) {
      if (o.kind !== 'err' || !sameErrno(o.errno, ev.errno)) {
        this.diverge('errno', ev.errno, o.kind === 'err' ? o.errno : `success (ret ${fmt(o.ret)})`, o.why);
        this.poison(ev);
        return;
      }
    } else if (ev.ret !== undefined) {
      if (o.kind === 'err') {
        this.diverge('ret', isVar(ev.ret) ? `success (${ev.ret.$})` : fmt(ev.ret), o.errno, o.why);
        this.poison(ev);
        return;
      }
      if (isVar(ev.ret)) {
        this.env.set(ev.ret.$, o.ret);
        this.poisoned.delete(ev.ret.$);
      } else if (ev.ret !== o.ret) {
        this.diverge('ret', fmt(ev.ret), fmt(o.ret), o.why);
      }
    }
    const out = this.curOut;
    if (out !== undefined && out !== null && typeof out === 'object' && 'def' in out) {
      const problems = compareOut(out as TraceStruct, o.out, this.env, this.poisoned, ev.line);
      for (const p of problems) this.diverge(p.field, p.observed, p.predicted, p.why ?? o.why);
    } else if (out instanceof Uint8Array) {
      const got = o.kind === 'ok' ? o.out?.['data'] : undefined;
      if (!(got instanceof Uint8Array)) this.diverge('out.data', 'bytes', 'not modelled', 'not modelled yet: data returned by this call');
      else if (Buffer.compare(got, out) !== 0)
        this.diverge('out.data', Buffer.from(out).toString('hex'), Buffer.from(got).toString('hex'), o.why);
    }
  }
}

function poisonStruct(s: TraceStruct, poisoned: Map<string, number>, line: number): void {
  if (s.size !== undefined && isVar(s.size)) poisoned.set(s.size.$, line);
  for (const v of Object.values(s.fields)) {
    if (isVar(v)) poisoned.set(v.$, line);
    else if (typeof v === 'object' && v !== null && 'inline' in v) {
      for (const x of Object.values(v.inline)) if (isVar(x)) poisoned.set(x.$, line);
    }
    else if (Array.isArray(v)) for (const e of v) poisonStruct(e as TraceStruct, poisoned, line);
    else if (typeof v === 'object' && v !== null && 'def' in v) poisonStruct(v as TraceStruct, poisoned, line);
  }
}

function observedText(ev: TraceEvent): string {
  if (ev.errno !== undefined) return ev.errno;
  if (ev.ret !== undefined) return isVar(ev.ret) ? `success (${ev.ret.$})` : `ret ${fmt(ev.ret)}`;
  return 'not observed';
}

const fail = (errno: 'EBADF' | 'ENOTTY', why: string): Done => ({ events: [], outcome: { kind: 'err', errno, out: undefined, why } });

export const DEFAULT_HEADER: TraceHeader = {
  iotrail: 1, page_size: 4096, iommufd_test: false, memory: 'explicit', vmas: [],
  limits: { memlock: 'unlimited', cap_sys_resource: true, cap_ipc_lock: false }, vfio_container: 'iommufd', devices: [],
  kernel: undefined, source: undefined,
};

export { formatTraceError };
