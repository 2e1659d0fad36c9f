/**
 * Turning one trace line into the model's operation, the way replay does (src/replay/engine.ts `operation`), for
 * lines with concrete values only (the checker writes no variables). The checker builds every command as a trace
 * line first and runs exactly what that line decodes to, so the trace it writes replays the same calls.
 */
import type { DomainEvent } from '../events/domain.js';
import { decodeHeader, type TraceHeader } from '../events/header.js';
import { resolveStruct, Unbound } from '../events/resolve.js';
import type { RawInt } from '../events/struct_codec.js';
import { decodeEvent, type TraceEvent } from '../events/trace.js';
import { isVar } from '../events/values.js';
import { fail, type Kernel, type Out, type OutValue, type Step } from '../machines/ioctl.js';
import { iommufd_fops_ioctl, type IoctlInput } from '../machines/main.js';
import * as sys from '../machines/process.js';
import { vfio_device_ioctl } from '../machines/vfio_device.js';
import { vfio_group_ioctl } from '../machines/vfio_group.js';
import { vfio_container_ioctl } from '../machines/vfio_type1.js';
import { sys_dma } from '../machines/dma.js';
import { extensionOp } from '../machines/extension_ops.js';
import type { State } from '../projections/state.js';

/** One line of a trace, as written (JSON). */
export type TraceLine = Record<string, unknown>;

const int = (v: RawInt): bigint => {
  if (isVar(v)) throw new Error(`the checker writes no variables, got ${v.$}`);
  return v;
};

/** The events replay folds for a header before the first event (engine.ts `feedLine`). */
export function headerEvents(h: TraceHeader): DomainEvent[] {
  return [
    { type: 'TraceStarted', pageSize: h.page_size, memory: h.memory },
    ...h.vmas.map((v): DomainEvent => ({ type: 'VmaMapped', start: v.start, length: v.length, prot: Number(v.prot), flags: Number(v.flags), memfd: undefined, offset: v.offset })),
  ];
}

export function decodeHeaderLine(raw: TraceLine): TraceHeader {
  const h = decodeHeader(raw);
  if (!h.ok) throw new Error(`bad header: ${h.problem.path}: ${h.problem.message}`);
  return h.value;
}

export function decodeLine(raw: TraceLine, line: number): TraceEvent {
  const d = decodeEvent(raw, line);
  if (!d.ok) throw new Error(`line ${line}: ${d.problem.path}: ${d.problem.message} in ${JSON.stringify(raw)}`);
  return d.value;
}

/** A kernel view for one operation: the shared state, the header, and the line the operation runs for. */
export function kernelFor(st: State, header: TraceHeader, line: number): Kernel {
  return { st, header, line };
}

/**
 * The model's operation for a decoded line (the subset of ops the checker issues, plus mmap and friends). `env`
 * holds the variables bound so far: the checker binds only `$stdevN`, the mock devices a `dma` line names.
 */
export function operationFor(k: Kernel, ev: TraceEvent, env: ReadonlyMap<string, bigint> = new Map()): Step {
  const st = k.st;
  switch (ev.op) {
    case 'dma': {
      const dev = typeof ev.dev === 'string' ? ev.dev : env.get(ev.dev.$);
      if (dev === undefined) throw new Error(`line ${ev.line}: dma by ${JSON.stringify(ev.dev)}, which no line bound`);
      return sys_dma(k, { dev, pasid: ev.pasid === undefined ? 0n : int(ev.pasid), iova: int(ev.iova), length: int(ev.length), write: ev.write, data: ev.data });
    }
    case 'open':
      return sys.sys_open(k, ev.path, ev.ret !== undefined && !isVar(ev.ret) && ev.errno === undefined ? ev.ret : undefined);
    case 'close':
      return sys.sys_close(k, Number(int(ev.fd)));
    case 'mmap':
      return sys.sys_mmap(k, { addr: int(ev.addr), length: int(ev.length), prot: ev.prot, flags: ev.flags, fd: int(ev.fd), offset: int(ev.offset) },
        ev.ret !== undefined && !isVar(ev.ret) && ev.errno === undefined ? ev.ret : undefined);
    case 'munmap':
      return sys.sys_munmap(k, int(ev.addr), int(ev.length));
    case 'madvise':
      return sys.sys_madvise(k, int(ev.addr), int(ev.length), ev.advice);
    case 'ioctl': {
      const fd = Number(int(ev.fd));
      const f = st.fds.get(fd);
      if (f === undefined) return fail('EBADF', `ioctl: fd ${fd} is not open`);
      if (f.kind !== 'iommufd' && f.kind !== 'vfio_device' && f.kind !== 'vfio_group' && f.kind !== 'vfio_container') return fail('ENOTTY', `ioctl: fd ${fd} has no ioctls`);
      let input: IoctlInput;
      const arg = ev.arg;
      switch (arg.k) {
        case 'null': input = { k: 'null' }; break;
        case 'string': input = { k: 'string', v: arg.v }; break;
        case 'raw': input = { k: 'raw' }; break;
        case 'int': input = { k: 'int', v: int(arg.v) }; break;
        case 'struct': {
          const a = resolveStruct(arg.s, new Map(), 'arg');
          if (a instanceof Unbound) throw new Error(`the checker writes no variables, got ${a.name}`);
          input = { k: 'struct', a };
          break;
        }
      }
      if (f.kind === 'vfio_device') return vfio_device_ioctl(k, fd, f.path, ev.cmd.value, input);
      if (f.kind === 'vfio_group') return vfio_group_ioctl(k, f.group, ev.cmd.value, input, undefined);
      if (f.kind === 'vfio_container') return vfio_container_ioctl(k, f.container, ev.cmd.value, input);
      return iommufd_fops_ioctl({ k, ctx: st.ctxs.get(f.ctx)! }, ev.cmd.value, input);
    }
    case 'exec': case 'mdev_pin': case 'mdev_unpin': case 'mdev_dma_rw':
      return extensionOp(k, ev, (v) => int(v))!;
    default:
      return sys.notModelledOp(`${ev.op} (not issued by the checker)`);
  }
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** An `out` value as trace JSON. */
export function outJson(v: OutValue): unknown {
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : hex(v);
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (Array.isArray(v)) return v.map((x) => outJson(x as Out));
  const o: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Out)) o[k] = outJson(x);
  return o;
}

const U64_MAX = (1n << 64n) - 1n;
/**
 * A u64 as trace JSON: a number when exact, else a hex string. The generator's arithmetic (an area's last + 1, a span
 * of areas up to the top) can reach 2^64; such a value is written as ULONG_MAX, which is what a caller would pass.
 */
export const u64Json = (v: bigint): number | string => {
  const x = v > U64_MAX ? U64_MAX : v < 0n ? 0n : v;
  return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : hex(x);
};
