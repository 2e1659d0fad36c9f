// `iotrail import qemu`: QEMU trace-event output (-trace 'iommufd*' -trace 'vfio_*') to an iotrail trace
// (trace-format.md). Pure: lines in, trace out; the CLI (src/cli/import.ts) does the I/O.
//
// QEMU traces most ioctls after making them, with what it passed and (mostly) what came back, but not the
// opens of /dev/iommu, so those are synthesized where an fd first appears. Every line the importer cannot use
// is reported with the reason, never dropped. See docs/import-qemu.md.

import { eventDef, notIoctlReason, UNCONVERTIBLE } from './qemu-events.js';
import type { Ctx, FdReq, Ioctl, ListenerOp, Outcome } from './qemu-events.js';
import { parseArgs, parseMessage, splitLine } from './qemu-parse.js';
import type { Message, TraceLine } from './qemu-parse.js';
import { CONTAINER, legacyEvent, materialize } from './qemu-slots.js';
import type { ListenerSlot, Slot, Where } from './qemu-slots.js';
import { errnoName } from '../events/errno.js';
import { jsonInt } from '../events/values.js';
import { errnoFromText } from './values.js';
import { withPrologue } from './prologue.js';
import type { Json, JsonObject } from './values.js';

export type UnusedKind = 'not-an-ioctl' | 'unparseable' | 'unconvertible';
export interface Unused { readonly line: number; readonly text: string; readonly kind: UnusedKind; readonly reason: string }
export type Backend = 'iommufd' | 'legacy';

export interface ImportOptions {
  /** Where the log came from, for the header's `source`. */
  readonly source?: string;
  /** Laid over the generated header (`--header`, with the `--device` entries already in its `devices`). */
  readonly header?: JsonObject;
  /** Which VFIO backend the memory-listener lines belong to; by default iommufd if any iommufd_* line converts. */
  readonly backend?: Backend;
}

export interface ImportStats {
  readonly lines: number;
  readonly blank: number;
  readonly used: number;
  readonly events: number;
  readonly synthesized: number;
  readonly notAnIoctl: number;
  readonly unparseable: number;
  readonly unconvertible: number;
  readonly backend: Backend | 'none';
}

export interface ImportResult {
  readonly header: JsonObject;
  readonly events: JsonObject[];
  readonly unused: Unused[];
  readonly stats: ImportStats;
}

/** Settled entries: finished events, and listener lines that wait for the backend to be known. */
type Entry = { readonly kind: 'done'; readonly line: string } | ListenerSlot;
interface FdInfo { readonly kind: 'iommufd' | 'device'; readonly path: string; name?: string }
type Plan = { readonly fd: number; readonly open?: { readonly kind: FdInfo['kind']; readonly path: string; readonly why: string }; readonly name?: string };

const OPEN_FLAGS: Json = ['O_RDWR', 'O_CLOEXEC'];
const LISTENER_IOMMUFD = 'memory-listener event; with the iommufd backend the iommufd_backend_* line carries the ioctl';

export class QemuImporter implements Ctx {
  private readonly entries: Entry[] = [];
  /** The newest slot stays open: a QEMU message right after a failed call can still supply its errno. */
  private last: Slot | undefined;
  private synthesized = 0;
  private readonly unused: Unused[] = [];
  private readonly fdTable = new Map<number, FdInfo>();
  private readonly deviceFds = new Map<string, number>();
  private readonly declared: readonly JsonObject[];
  private readonly devicePaths = new Set<string>();
  private lines = 0;
  private blank = 0;
  private sawIommufd = false;
  private cur: Where = { line: 0, text: '' };
  private handled = false;

  constructor(private readonly opts: ImportOptions = {}) {
    const devices = opts.header?.devices;
    this.declared = Array.isArray(devices) ? devices.filter((d): d is JsonObject => typeof d === 'object' && d !== null && !Array.isArray(d)) : [];
  }

  push(raw: string): void {
    this.lines += 1;
    const text = raw.replace(/\r?\n?$/, '');
    if (text.trim() === '') {
      this.blank += 1;
      return;
    }
    const line = splitLine(text);
    this.cur = { line: this.lines, text, ...(line?.tid !== undefined ? { tid: line.tid } : {}), ...(line?.ts !== undefined ? { ts: line.ts } : {}) };
    this.handled = false;
    if (line !== undefined) this.event(line);
    else this.message(parseMessage(text));
    // Every line ends up used or reported; a handler that did neither is an importer bug, reported as such.
    if (!this.handled) this.report('unconvertible', 'the importer produced nothing for this line (importer bug)');
  }

  private event(line: TraceLine): void {
    const def = eventDef(line.name);
    if (def === undefined) {
      const why = UNCONVERTIBLE[line.name];
      if (why !== undefined) return this.unconvertible(why);
      const info = notIoctlReason(line.name);
      if (info !== undefined) return this.notIoctl(info);
      return this.report('unparseable', `unknown trace event ${line.name} (not one the importer knows)`);
    }
    const args = parseArgs(def, line);
    if (!args.ok) return this.report('unparseable', `${line.name}: ${args.error}`);
    def.handle(args.value, this);
  }

  private message(msg: Message | undefined): void {
    if (msg === undefined) return this.report('unparseable', 'not a QEMU trace-event line or QEMU message');
    const target = this.last;
    const errno = msg.kind === 'failed' ? errnoFromText(msg.error) : msg.kind === 'dma' ? errnoName(Number(-msg.rc)) : undefined;
    if (target === undefined || errno === undefined || !this.explains(msg, target)) {
      return this.notIoctl('QEMU message that does not explain a failed call right before it');
    }
    const had = target.outcome;
    if (had.kind === 'errno' && had.errno !== errno) {
      target.notes.push(`line ${this.cur.line} says ${errno}, line ${target.resolvedBy[0]?.line ?? target.at.line} said ${had.errno}`);
    } else {
      target.outcome = { kind: 'errno', errno };
    }
    target.notes.push(`errno from line ${this.cur.line}: ${this.cur.text}`);
    target.resolvedBy.push(this.cur);
    this.handled = true;
  }

  private explains(msg: Message, slot: Slot): boolean {
    const open = slot.outcome.kind === 'failed' || slot.outcome.kind === 'errno' || (slot.kind === 'listener' && slot.outcome.kind === 'unobserved');
    if (!open) return false;
    if (slot.kind === 'event') {
      if (msg.kind === 'failed') return slot.io?.cmd === msg.cmd;
      const m = slot.io?.match;
      const unmap = slot.io?.cmd === 'IOMMU_IOAS_UNMAP';
      return msg.kind === 'dma' && m !== undefined && unmap === msg.unmap && m.iova === msg.iova && m.size === msg.size &&
        (msg.vaddr === undefined || m.vaddr === undefined || m.vaddr === msg.vaddr);
    }
    const op = slot.op;
    if (msg.kind !== 'dma' || (op.op !== 'map' && op.op !== 'unmap') || (op.op === 'unmap') !== msg.unmap) return false;
    return op.iova === msg.iova && op.last - op.iova + 1n === msg.size && (op.op === 'unmap' || msg.vaddr === undefined || op.vaddr === msg.vaddr);
  }

  private report(kind: UnusedKind, reason: string): void {
    this.unused.push({ line: this.cur.line, text: this.cur.text, kind, reason });
    this.handled = true;
  }

  notIoctl(reason: string): void { this.report('not-an-ioctl', reason); }
  unconvertible(reason: string): void { this.report('unconvertible', reason); }

  private settle(next: Slot | undefined): void {
    const l = this.last;
    if (l !== undefined) this.entries.push(l.kind === 'event' ? { kind: 'done', line: jsonText(materialize(l)) } : l);
    this.last = next;
  }

  private emit(head: JsonObject, outcome: Outcome, extra: { out?: JsonObject; note?: string; synthesized?: string; io?: Ioctl } = {}): void {
    const { note, ...rest } = extra;
    if (rest.synthesized !== undefined) this.synthesized += 1;
    this.settle({ kind: 'event', at: this.cur, head, outcome, notes: note !== undefined ? [note] : [], resolvedBy: [], ...rest });
    this.handled = true;
  }

  ioctl(io: Ioctl): void {
    const head: JsonObject = { op: 'ioctl', fd: io.fd, cmd: io.cmd, ...(io.arg !== undefined ? { arg: io.arg } : {}) };
    this.emit(head, io.outcome, { ...(io.out !== undefined ? { out: io.out } : {}), ...(io.note !== undefined ? { note: io.note } : {}), io });
  }

  private open(kind: FdInfo['kind'], path: string, fd: number, synthesized?: string): void {
    const stale = this.fdTable.get(fd)?.name;
    if (stale !== undefined) this.deviceFds.delete(stale);
    const info: FdInfo = { kind, path };
    if (kind === 'iommufd') this.sawIommufd = true;
    else {
      this.devicePaths.add(path);
      // A declared name lets later lines that name the device (resets, detach) find its fd without a bind line.
      const name = this.declared.find((d) => d.path === path)?.name;
      if (typeof name === 'string') {
        info.name = name;
        this.deviceFds.set(name, fd);
      }
    }
    this.fdTable.set(fd, info);
    this.emit({ op: 'open', path, flags: OPEN_FLAGS }, { kind: 'ret', ret: fd }, synthesized !== undefined ? { synthesized } : {});
  }

  private close(fd: number, synthesized?: string): void {
    const info = this.fdTable.get(fd);
    if (info?.name !== undefined) this.deviceFds.delete(info.name);
    this.fdTable.delete(fd);
    this.emit({ op: 'close', fd }, { kind: 'unobserved' }, synthesized !== undefined ? { synthesized } : {});
  }

  private plan(r: FdReq): Plan | string {
    if ('soleDevice' in r) {
      const devs = [...this.fdTable].filter(([, i]) => i.kind === 'device');
      const only = devs.length === 1 ? devs[0] : undefined;
      return only !== undefined ? { fd: only[0] } : `the line names no device and ${devs.length} VFIO device fds are open`;
    }
    if ('named' in r) {
      const fd = this.deviceFds.get(r.named);
      return fd !== undefined ? { fd } : `no fd is known for device ${r.named}: its open and bind are not in the trace`;
    }
    const fd = 'iommufd' in r ? r.iommufd : r.device;
    const what = 'iommufd' in r ? '/dev/iommu' : 'VFIO device';
    if (fd < 0n) return `${what} fd ${fd}: QEMU had no such fd open`;
    const n = Number(fd);
    const info = this.fdTable.get(n);
    if ('iommufd' in r) {
      if (info === undefined) return { fd: n, open: { kind: 'iommufd', path: '/dev/iommu', why: `QEMU does not trace opening /dev/iommu; fd ${n} first appears here` } };
      return info.kind === 'iommufd' ? { fd: n } : `fd ${n} is the VFIO device ${info.path} in this trace, not /dev/iommu`;
    }
    const name = r.name;
    const named = name !== undefined ? { name } : {};
    if (info !== undefined) return info.kind === 'device' ? { fd: n, ...named } : `fd ${n} is /dev/iommu in this trace, not a VFIO device`;
    const decl = this.declared.find((d) => name !== undefined && d.name === name);
    if (decl !== undefined && typeof decl.path === 'string') {
      return { fd: n, ...named, open: { kind: 'device', path: decl.path, why: `device ${name} (fd ${n}) was opened outside the trace (e.g. by libvirt); path from its declaration` } };
    }
    return `VFIO device fd ${n}${name !== undefined ? ` (${name})` : ''} was never opened in the trace; declare it with --device path=...${name !== undefined ? `,name=${name}` : ''} to synthesize the open`;
  }

  fds<const R extends readonly FdReq[]>(req: R): { [K in keyof R]: number } | undefined {
    const plans: Plan[] = [];
    for (const r of req) {
      const p = this.plan(r);
      if (typeof p === 'string') return void this.unconvertible(p);
      if (plans.some((q) => q.fd === p.fd && q.open?.kind !== p.open?.kind)) return void this.unconvertible(`fd ${p.fd} would be both /dev/iommu and a device`);
      plans.push(p);
    }
    for (const p of plans) {
      if (p.open !== undefined && !this.fdTable.has(p.fd)) this.open(p.open.kind, p.open.path, p.fd, p.open.why);
      const info = this.fdTable.get(p.fd);
      if (info?.kind === 'iommufd') this.sawIommufd = true;
      if (p.name !== undefined && info !== undefined) {
        info.name = p.name;
        this.deviceFds.set(p.name, p.fd);
      }
    }
    return plans.map((p) => p.fd) as { [K in keyof R]: number };
  }

  openDevice(path: string, fd: bigint): void {
    if (fd >= 0n) return this.open('device', path, Number(fd));
    const errno = errnoName(Number(-fd));
    this.emit({ op: 'open', path, flags: OPEN_FLAGS }, errno !== undefined ? { kind: 'errno', errno } : { kind: 'failed', why: `QEMU traces ${fd}, not the errno` });
  }

  closeDevice(fd: bigint): void {
    if (this.fdTable.get(Number(fd))?.kind !== 'device') return this.unconvertible(`closes VFIO device fd ${fd}, which the trace never opened`);
    this.close(Number(fd));
  }

  connect(fd: bigint, owned: boolean, users: bigint): void {
    const info = this.fdTable.get(Number(fd));
    if (info?.kind === 'iommufd') return this.notIoctl(`another user (users=${users}) of /dev/iommu fd ${fd}`);
    if (info !== undefined || fd < 0n) return this.unconvertible(`fd ${fd} cannot be /dev/iommu here`);
    this.open('iommufd', '/dev/iommu', Number(fd), owned
      ? 'iommufd_backend_connect: QEMU opened /dev/iommu for its first user; the open itself is not traced'
      : `iommufd_backend_connect: fd ${fd} was opened outside QEMU and passed in (-object iommufd,fd=...)`);
  }

  preopened(fd: bigint): void {
    if (this.fdTable.get(Number(fd))?.kind === 'iommufd') return this.notIoctl(`/dev/iommu fd ${fd} is already open`);
    if (this.fdTable.has(Number(fd)) || fd < 0n) return this.unconvertible(`fd ${fd} cannot be /dev/iommu here`);
    this.open('iommufd', '/dev/iommu', Number(fd), `fd ${fd} was opened outside QEMU (e.g. by libvirt) and passed in`);
  }

  disconnect(fd: bigint, users: bigint): void {
    // fd=-1 with users=0 is printed only after QEMU closed the /dev/iommu fd it owned (backends/iommufd.c).
    if (users !== 0n || fd !== -1n) return this.notIoctl(`the iommufd backend lost a user (users=${users})`);
    const open = [...this.fdTable].filter(([, i]) => i.kind === 'iommufd').map(([n]) => n);
    const only = open.length === 1 ? open[0] : undefined;
    if (only === undefined) return this.unconvertible(`QEMU closed its /dev/iommu fd, but ${open.length} are open in the trace`);
    this.close(only, 'iommufd_backend_disconnect: the last user of the /dev/iommu fd QEMU owned closed it');
  }

  listener(op: ListenerOp): void {
    if (op.op !== 'skip-map' && op.op !== 'close-container' && op.last < op.iova) {
      return this.report('unparseable', 'the range ends below its start');
    }
    if (op.op === 'skip-map') {
      // QEMU prints this right after the region_add_ram line of the same section.
      const map = this.last;
      if (map?.kind === 'listener' && map.op.op === 'map' && map.op.iova === op.iova) map.skippedBy = this.cur.line;
      return this.notIoctl('QEMU leaves this unaligned section unmapped');
    }
    // Once the backend is known to be iommufd the line is settled at once instead of held to the end.
    if ((this.opts.backend ?? (this.sawIommufd ? 'iommufd' : undefined)) === 'iommufd') return this.notIoctl(LISTENER_IOMMUFD);
    this.settle({ kind: 'listener', at: this.cur, op, outcome: { kind: 'unobserved' }, notes: [], resolvedBy: [] });
    this.handled = true;
  }

  finish(): ImportResult {
    this.settle(undefined);
    const backend: Backend | 'none' = this.opts.backend ?? (this.sawIommufd ? 'iommufd' : this.entries.some((s) => s.kind === 'listener') ? 'legacy' : 'none');
    const events: string[] = [];
    let container = false;
    const unused = [...this.unused];
    const drop = (s: ListenerSlot, kind: UnusedKind, reason: string): void => {
      for (const w of [s.at, ...s.resolvedBy]) unused.push({ line: w.line, text: w.text, kind, reason });
    };
    for (const s of this.entries) {
      if (s.kind === 'done') {
        events.push(s.line);
        continue;
      }
      if (backend !== 'legacy') {
        drop(s, 'not-an-ioctl', LISTENER_IOMMUFD);
        continue;
      }
      if (s.skippedBy !== undefined) {
        drop(s, 'not-an-ioctl', `QEMU did not map this section (line ${s.skippedBy})`);
        continue;
      }
      const ev = legacyEvent(s);
      if (typeof ev === 'string') {
        drop(s, 'unconvertible', ev);
        continue;
      }
      if (!container && ev.head.op === 'close') {
        drop(s, 'unconvertible', 'closes the legacy container, which no imported call used');
        continue;
      }
      if (!container) {
        container = true;
        events.push(jsonText(materialize({
          ...ev, head: { op: 'open', path: '/dev/vfio/vfio', flags: OPEN_FLAGS }, outcome: { kind: 'unobserved' }, notes: [], resolvedBy: [],
          synthesized: 'legacy VFIO container: QEMU traces neither its fd nor its setup (VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU); $container stands for it',
        }, CONTAINER)));
      }
      events.push(jsonText(materialize(ev)));
    }
    unused.sort((a, b) => a.line - b.line);
    const count = (k: UnusedKind): number => unused.filter((u) => u.kind === k).length;
    const declared = (this.opts.header?.devices ?? []) as JsonObject[];
    const pro = backend === 'iommufd' ? withPrologue(events, Array.isArray(declared) ? declared : []) : { events, added: 0 };
    events.splice(0, events.length, ...pro.events);
    const synthesized = this.synthesized + (container ? 1 : 0) + pro.added;
    const stats: ImportStats = {
      lines: this.lines, blank: this.blank, used: this.lines - this.blank - unused.length, events: events.length, synthesized,
      notAnIoctl: count('not-an-ioctl'), unparseable: count('unparseable'), unconvertible: count('unconvertible'), backend,
    };
    return new Imported(this.header(stats), events, unused, stats);
  }

  private header(stats: ImportStats): JsonObject {
    const declared = new Set(this.declared.map((d) => d.path));
    const undeclared = [...this.devicePaths].filter((p) => !declared.has(p));
    const note = [
      `Imported by iotrail import qemu: ${stats.events} events (${stats.synthesized} synthesized) from ${stats.lines} lines; ` +
        `not imported: ${stats.notAnIoctl} not an ioctl, ${stats.unparseable} unparseable, ${stats.unconvertible} unconvertible.`,
      'Memory is implicit: QEMU mapped guest RAM before the trace starts.',
      'QEMU does not trace KVM ioctls, IOMMU_GET_HW_INFO, IOMMU_IOAS_IOVA_RANGES, most VFIO region/IRQ ioctls or most closes.',
      ...(stats.backend === 'legacy' ? ['Legacy VFIO container: its fd, group setup and device fds are not in the trace; MAP_DMA assumes READ|WRITE (the listener trace does not print read-only).'] : []),
      ...(undeclared.length > 0 ? [`Devices opened but not declared (use --device): ${undeclared.join(', ')}.`] : []),
    ].join(' ');
    const generated: JsonObject = {
      iotrail: 1, page_size: 4096, iommufd_test: false, memory: 'implicit',
      ...(stats.backend === 'legacy' ? { vfio_container: 'type1' } : {}),
      devices: [], source: `QEMU trace events${this.opts.source !== undefined ? `: ${this.opts.source}` : ''}`, note,
    };
    return { ...generated, ...(this.opts.header ?? {}) };
  }
}

export function importQemu(lines: Iterable<string>, opts: ImportOptions = {}): ImportResult {
  const importer = new QemuImporter(opts);
  for (const line of lines) importer.push(line);
  return importer.finish();
}

const jsonText = (v: JsonObject): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? jsonInt(x) : x));

/**
 * Events are kept as their JSON text and parsed only if asked for: a million-event trace then costs a string
 * per event rather than an object graph, which is what made large imports slow (mostly garbage collection).
 */
class Imported implements ImportResult {
  private parsed: JsonObject[] | undefined;
  constructor(readonly header: JsonObject, readonly eventTexts: readonly string[], readonly unused: Unused[], readonly stats: ImportStats) {}
  get events(): JsonObject[] {
    this.parsed ??= this.eventTexts.map((t) => JSON.parse(t) as JsonObject);
    return this.parsed;
  }
}

/** The trace's JSON Lines, header first, one string per line (for writing a large trace piece by piece). */
export function* traceLines(result: Pick<ImportResult, 'header' | 'events'>): Generator<string> {
  yield `${jsonText(result.header)}\n`;
  if (result instanceof Imported) for (const t of result.eventTexts) yield `${t}\n`;
  else for (const ev of result.events) yield `${jsonText(ev)}\n`;
}

/** Deterministic JSON Lines: key order is insertion order, integers beyond 2^53-1 are hex strings. */
export function serializeTrace(result: Pick<ImportResult, 'header' | 'events'>): string {
  return [...traceLines(result)].join('');
}
