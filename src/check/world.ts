/**
 * The iommufd world the scheduler drives: one model state, its invariant monitor, and the trace being written.
 *
 * Issuing a command resolves it against the live state into a trace line, decodes that line as replay would, and
 * builds the model's operation for it. Each step folds its events one by one with `evolve`, with the event
 * invariants around each and the state invariants at the end of the step. A handler or `evolve` that throws is a
 * violation too (`handler-total`, `evolve-accepts`): the model disagreeing with itself.
 *
 * Locks. The handlers yield where the kernel drops `iova_rwsem`, but the model does not say which other locks an
 * in-flight operation still holds there. The world restates them (core spec §8) and refuses an atomic step that
 * would need one of them, so only interleavings the kernel allows are explored:
 * - `domains_rwsem` (read) is held by MAP/COPY from the fill to the publish and by UNMAP except while it notifies
 *   accesses; attaching or detaching a domain, an access, or changing large pages takes it for write;
 * - an ioctl holds a short-term reference on the IOAS it looked up (`iommufd_get_object`): destroying that IOAS
 *   waits (the kernel answers IOMMU_DESTROY with EBUSY instead: the model has no short-term references yet);
 * - an ioctl holds its iommufd file (`fdget`): the context is not released under it.
 */
import type { DomainEvent } from '../events/domain.js';
import type { TraceHeader } from '../events/header.js';
import type { TraceEvent } from '../events/trace.js';
import { isDone, type Done, type Kernel, type Operation, type Out, type OutValue } from '../machines/ioctl.js';
import { InflightCall, inflightKindOf } from '../machines/inflight.js';
import { InvariantMonitor, type InvariantViolation } from '../projections/invariants.js';
import { evolveRefused, handlerThrew } from '../projections/invariants.js';
import { evolve, initialState, type State } from '../projections/state.js';
import { BUFFERS, OUT_FIELDS, PAGE, resolveCmd, stdevVar, type Cmd, type OpInfo } from './commands.js';
import { T1_BUFFER, T1_DEVICES, T1_DMA_ENTRY_LIMIT } from './commands_type1.js';
import { decodeHeaderLine, decodeLine, headerEvents, kernelFor, operationFor, outJson, type TraceLine } from './kernel.js';
import type { World, WorldOp } from './scheduler.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** The header of every checked trace: the mock driver, explicit memory, the two user buffers. */
export const CHECK_HEADER: TraceLine = {
  iotrail: 1, page_size: Number(PAGE), iommufd_test: true, memory: 'explicit',
  vmas: [
    ...BUFFERS.map((b) => ({ start: hex(b.start), length: hex(BigInt(b.pages) * PAGE), prot: 3, flags: 0x21 })),
    { start: hex(T1_BUFFER.start), length: hex(BigInt(T1_BUFFER.pages) * PAGE), prot: 3, flags: 0x22 },
  ],
  // /dev/vfio/vfio is served by vfio_iommu_type1, with two VFIO devices (one per group) and a low dma_entry_limit.
  vfio_container: 'type1', devices: T1_DEVICES, limits: { memlock: 'unlimited', dma_entry_limit: T1_DMA_ENTRY_LIMIT },
  source: 'iotrail check',
};

export interface Failure {
  readonly violation: InvariantViolation;
  /** The trace line whose step broke it, and that step's place in the schedule (0-based). */
  readonly line: number;
  readonly step: number;
  /** The log position of the event that broke it (events folded before it, header included). */
  readonly n: number;
}

/** What an operation holds between its steps, read off what it has done so far. */
interface Held {
  readonly domainsRead: string | undefined;
  readonly ioas: readonly string[];
  readonly ctx: number | undefined;
}

const key = (ctx: number, id: number): string => `${ctx}:${id}`;

class IommufdOp implements WorldOp {
  private gen: Operation | undefined;
  started = false;
  /** Where the call is between its steps and what it holds there (machines/inflight.ts), for calls that yield. */
  private readonly call: InflightCall | undefined;
  constructor(
    private readonly w: IommufdWorld, readonly line: number, readonly tid: number, readonly json: TraceLine,
    private readonly ev: TraceEvent, readonly info: OpInfo, private readonly k: Kernel,
  ) {
    const kind = json.op === 'ioctl' && typeof json.cmd === 'string' && k.st.fds.get(Number(json.fd))?.kind === 'iommufd' ? inflightKindOf(json.cmd) : undefined;
    this.call = kind === undefined ? undefined : new InflightCall(kind);
  }

  held(): Held {
    const i = this.info;
    const ctx = i.ctx;
    const holds = this.call?.holds();
    const target = ctx !== undefined && i.ioas.length > 0 ? key(ctx, i.ioas[i.ioas.length - 1]!) : undefined;
    const domainsRead = this.started && holds?.includes('domains_rwsem') === true ? target : undefined;
    // A yielding call holds its IOAS where its machine says; any other call, what it looked up.
    const ioas = ctx === undefined || (holds !== undefined && !holds.includes('ioas')) ? [] : i.ioas.map((x) => key(ctx, x));
    return { domainsRead, ioas, ctx };
  }

  step(): 'blocked' | 'more' | 'done' {
    const w = this.w;
    // A destroy waits for the ioctls holding its target at every step (a multi-step destroy decides at its last).
    if ((!this.started || this.info.kind === 'destroy') && w.refusesEarly(this)) return 'blocked';
    if (!this.started) {
      let s;
      try {
        s = operationFor(this.k, this.ev, w.env);
      } catch (e) {
        w.commit(this);
        w.fail(handlerThrew(this.line, e), this.line);
        return 'done';
      }
      if (isDone(s)) {
        if (w.refuses(this, s.events)) return 'blocked';
        this.started = true;
        w.commit(this);
        w.fold(this, s.events, true);
        w.complete(this, s);
        return 'done';
      }
      this.started = true;
      this.gen = s;
      w.commit(this);
    }
    let r: IteratorResult<readonly DomainEvent[], Done>;
    try {
      r = this.gen!.next();
    } catch (e) {
      w.fail(handlerThrew(this.line, e), this.line);
      return 'done';
    }
    if (r.done) {
      w.fold(this, r.value.events, true);
      w.complete(this, r.value);
      return 'done';
    }
    try {
      this.call?.step(r.value);
    } catch (e) {
      w.fail(handlerThrew(this.line, e), this.line);
      return 'done';
    }
    w.fold(this, r.value, false);
    return 'more';
  }
}

export interface WorldOptions {
  /** Check every invariant over the whole state after every step (O(state)) instead of incrementally. */
  readonly fullChecks?: boolean;
  /** Keep every folded event (for the event log of a counterexample). */
  readonly keepLog?: boolean;
  /**
   * Replay mode: start from this header with nothing issued (no line 2 of our own), refuse no step (the schedule
   * being replayed decides), and compare each outcome with the one the line records instead of recording it.
   */
  readonly replayHeader?: TraceLine;
  /** Refuse no step for a lock (explores interleavings the kernel forbids: for showing what the locks protect). */
  readonly ignoreLocks?: boolean;
}

export class IommufdWorld implements World<Cmd> {
  readonly st: State = initialState();
  readonly header: TraceHeader;
  readonly firstLine = 4;
  /** Committed trace lines by line number (line 1 is the header, line 2 opens /dev/iommu, line 3 allocates IOAS 1). */
  readonly lines = new Map<number, TraceLine>();
  readonly log: { n: number; line: number; tid: number; ev: DomainEvent }[] = [];
  failure: Failure | undefined;
  private readonly monitor: InvariantMonitor;
  private readonly inflight = new Set<IommufdOp>();
  private steps = 0;
  private n = 0;

  /** Replay mode: each line whose recorded outcome differs from the model's, and how. */
  readonly divergences: string[] = [];
  /** Variables bound so far (`$stdevN`: the mock devices `dma` lines name). */
  readonly env = new Map<string, bigint>();

  constructor(private readonly opts: WorldOptions = {}) {
    this.header = decodeHeaderLine(opts.replayHeader ?? CHECK_HEADER);
    for (const e of headerEvents(this.header)) this.record(e, 1, 0), evolve(this.st, e);
    this.monitor = new InvariantMonitor(this.st, { full: opts.fullChecks === true });
    // Every run starts as a VMM does: /dev/iommu open as fd 3 (line 2), IOAS 1 allocated (line 3).
    if (opts.replayHeader === undefined) {
      this.issueLine(1, { op: 'open', path: '/dev/iommu', flags: ['O_RDWR'] }, NO_INFO, 2).step();
      const alloc = this.issueLine(1, { op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_ALLOC', arg: {} }, NO_INFO, 3);
      while (alloc.step() === 'more');
    }
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  issue(tid: number, cmd: Cmd, line: number): WorldOp | undefined {
    const r = resolveCmd(this.st, cmd);
    return r === undefined ? undefined : this.issueLine(tid, r.json, r.info, line);
  }

  /** Issues a ready-made trace line (used for line 2 and by schedule replay). */
  issueLine(tid: number, json: TraceLine, info: OpInfo, line: number): IommufdOp {
    const full = { ...json, tid };
    const ev = decodeLine(full, line);
    return new IommufdOp(this, line, tid, full, ev, info, kernelFor(this.st, this.header, line));
  }

  /**
   * Refusals decided before an operation starts, from what it is:
   * - a close that could release an iommufd context waits while another thread's ioctl runs on it (the ioctl's
   *   `fdget` keeps the file, so the release would come after it): deciding a release over a half-built area is
   *   meaningless, the kernel never does it;
   * - a multi-step IOMMU_DESTROY (mutant `destroy-unlocked-ref`) waits, once its first step is computed, while
   *   another operation holds domains_rwsem: its later steps may detach a domain or an access.
   * (IOMMU_DESTROY of an IOAS another thread's ioctl holds is the model's to answer: EBUSY, the ioctl's short-term
   * `users` reference, machines/ioctl.ts `holding`.)
   */
  refusesEarly(self: IommufdOp): boolean {
    const i = self.info;
    if (this.opts.replayHeader !== undefined || this.opts.ignoreLocks || i.ctx === undefined) return false;
    if (i.kind === 'close') {
      // Only the close of the context's last file reference releases it.
      if ((this.st.ctxs.get(i.ctx)?.fileRefs ?? 0) > 1) return false;
      for (const o of this.inflight) if (o !== self && o.info.ctx === i.ctx) return true;
    }
    if (i.kind === 'destroy' && i.target !== undefined && self.started)
      for (const o of this.inflight) if (o !== self && o.held().domainsRead !== undefined) return true;
    return false;
  }

  /** Whether an atomic step with these events must wait for a lock another in-flight operation holds. */
  refuses(self: IommufdOp, events: readonly DomainEvent[]): boolean {
    if (this.opts.replayHeader !== undefined || this.opts.ignoreLocks) return false;
    for (const o of this.inflight) {
      if (o === self) continue;
      const h = o.held();
      for (const e of events) {
        if (h.domainsRead !== undefined) {
          const w = e.type === 'IoptDomainAdded' || e.type === 'IoptDomainRemoved' || e.type === 'AccessAttached' || e.type === 'AccessDetached'
            ? key(e.ctx, e.ioas) : e.type === 'IoasLargePagesSet' ? key(e.ctx, e.id) : undefined;
          if (w === h.domainsRead) return true;
        }
        if ((e.type === 'ObjectDestroyed' || e.type === 'ObjectAborted') && h.ioas.includes(key(e.ctx, e.id))) return true;
        if (e.type === 'IommufdReleased' && e.ctx === h.ctx) return true;
      }
    }
    return false;
  }

  commit(op: IommufdOp): void {
    this.lines.set(op.line, op.json);
    this.inflight.add(op);
  }

  private record(ev: DomainEvent, line: number, tid: number): void {
    if (this.opts.keepLog) this.log.push({ n: this.n, line, tid, ev });
    this.n++;
  }

  fail(v: InvariantViolation, line: number): void {
    if (this.failure === undefined) this.failure = { violation: v, line, step: this.steps, n: this.n };
  }

  /** Folds one step's events with the invariant checks around them. */
  fold(op: IommufdOp, events: readonly DomainEvent[], last: boolean): void {
    const m = this.monitor;
    for (const e of events) {
      const before = m.before(this.st, e);
      if (before.length > 0) return this.fail(before[0]!, op.line);
      this.record(e, op.line, op.tid);
      try {
        evolve(this.st, e);
      } catch (x) {
        m.reset();
        return this.fail(evolveRefused(op.line, e, x), op.line);
      }
      const after = m.after(this.st, e);
      if (after.length > 0) return this.fail(after[0]!, op.line);
    }
    if (last) this.inflight.delete(op);
    const end = m.endStep(this.st, { quiescent: this.inflight.size === 0 });
    if (end.length > 0) this.fail(end[0]!, op.line);
    this.steps++;
  }

  /** Records the outcome on the operation's trace line (replay mode: compares it with the recorded one). */
  complete(op: IommufdOp, d: Done): void {
    this.inflight.delete(op);
    const got = outcomeFields(op.json, d);
    const j = op.json;
    if (this.opts.replayHeader === undefined) {
      // A mock device's selftest id is bound to a variable, so `dma` lines can name the device.
      const md = (got.out?.mock_domain as Record<string, unknown> | undefined);
      if (md !== undefined && typeof md.out_stdev_id === 'number') {
        this.env.set(stdevVar(md.out_stdev_id), BigInt(md.out_stdev_id));
        md.out_stdev_id = stdevVar(md.out_stdev_id);
      }
      Object.assign(j, got);
      // Counterexamples say why the model answered as it did (trace `note`: replay ignores it).
      if (this.opts.keepLog) j.note = d.outcome.kind === 'unmodelled' ? `not modelled: ${d.outcome.what}` : d.outcome.why;
      return;
    }
    // Bind the variables the line's `out` names (a MOCK_DOMAIN's `$stdevN`) to what the model produced.
    const bind = (rec: unknown, val: unknown): unknown => {
      if (typeof rec === 'string' && rec.startsWith('$') && (typeof val === 'number' || typeof val === 'string')) {
        this.env.set(rec, BigInt(val));
        return rec;
      }
      if (rec !== null && typeof rec === 'object' && val !== null && typeof val === 'object') {
        const o: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(val as Record<string, unknown>)) o[k] = bind((rec as Record<string, unknown>)[k], v);
        return o;
      }
      return val;
    };
    const out = j.out === undefined ? got.out : bind(j.out, got.out);
    const want = JSON.stringify({ ret: j.ret, errno: j.errno, out: j.out });
    const have = JSON.stringify({ ret: got.ret, errno: got.errno, out });
    if (want !== have) this.divergences.push(`line ${op.line}: recorded ${want}, the model gives ${have}${d.outcome.kind === 'unmodelled' ? '' : ` (${d.outcome.why})`}`);
  }

  /** The atomic steps of the prelude (lines 2 and 3), for the schedule. */
  readonly prelude = [2, 3, 3];

  /** The trace written so far: header, then every committed line in line order. */
  traceLines(): TraceLine[] {
    return [CHECK_HEADER, ...[...this.lines.entries()].sort((a, b) => a[0] - b[0]).map(([, j]) => j)];
  }
}

const NO_INFO: OpInfo = { kind: 'open', ctx: undefined, ioas: [] };

/** The outcome fields a trace line records: `ret` and the output fields of OUT_FIELDS, or `errno`. */
export function outcomeFields(j: TraceLine, d: Done): { ret?: unknown; errno?: string; out?: Record<string, unknown> } {
  const o = d.outcome;
  if (o.kind === 'unmodelled') return {};
  if (o.kind === 'err') return { errno: o.errno };
  const cmd = j.op === 'ioctl' ? (j.cmd === 'IOMMU_TEST_CMD' ? String((j.arg as { op: string }).op) : String(j.cmd)) : '';
  const fields = OUT_FIELDS[cmd];
  if (fields === undefined || o.out === undefined) return { ret: outJson(o.ret) };
  const out: Record<string, unknown> = {};
  for (const path of fields) {
    let v: OutValue | undefined = o.out;
    for (const p of path) v = v !== undefined && typeof v === 'object' && !(v instanceof Uint8Array) && !Array.isArray(v) ? (v as Out)[p] : undefined;
    if (v === undefined) continue;
    let at = out;
    for (const p of path.slice(0, -1)) at = (at[p] ??= {}) as Record<string, unknown>;
    at[path[path.length - 1]!] = outJson(v);
  }
  return Object.keys(out).length > 0 ? { ret: outJson(o.ret), out } : { ret: outJson(o.ret) };
}
