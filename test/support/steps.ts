/**
 * Building the `given` of a given/when/then test by running real calls. `after(batches, ...calls)` folds the
 * batches into a fresh state, runs each call through the real dispatch (`iommufd_fops_ioctl`, or the process
 * syscalls for `close`), requires each to succeed, and hands back every event so far as one batch for `given`:
 * the state a test starts from is then exactly the one the model itself would have built.
 */
import { expect } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import type { TraceHeader } from '../../src/events/header.js';
import { resolveStruct, Unbound } from '../../src/events/resolve.js';
import { decodeIoctlArg } from '../../src/events/trace.js';
import { COMMAND_BY_NAME } from '../../src/events/uapi.js';
import { runToCompletion, type Done, type Kernel, type Out } from '../../src/machines/ioctl.js';
import { iommufd_fops_ioctl, type IoctlInput } from '../../src/machines/main.js';
import { sys_close } from '../../src/machines/process.js';
import { evolve, initialState, type State } from '../../src/projections/state.js';
import { DEFAULT_HEADER } from '../../src/replay/engine.js';
import { CTX, type IoctlCall } from './given.js';

/** The header `given` uses: the default platform with CONFIG_IOMMUFD_TEST. */
export const TEST_HEADER: TraceHeader = { ...DEFAULT_HEADER, iommufd_test: true };

export const U64_MAX = (1n << 64n) - 1n;
export const PAGE = 4096n;
/** The selftests' buffer address (a MAP_SHARED|MAP_ANONYMOUS mapping, 2 MiB aligned). */
export const BUF = 0x7f0000000000n;
export const MOCK_APERTURE_START = 1n << 24n;

/** A shared anonymous read-write VMA (`mmap(MAP_SHARED|MAP_ANONYMOUS)`), as the selftests' buffer. */
export const mmapped = (start: bigint, length: bigint, prot = 3): DomainEvent[] =>
  [{ type: 'VmaMapped', start, length, prot, flags: 0x21, memfd: undefined, offset: 0n }];

/** A call of `after`: an ioctl on a context, or the close of an fd; `line` is the trace line it stands for. */
export type Step =
  | (IoctlCall & { readonly line?: number; readonly ctx?: number })
  | { readonly close: number; readonly line?: number };
/** The same ioctl, recorded as if it were trace line `line` (areas remember the line that mapped them). */
export const at = (line: number, call: IoctlCall): Step => ({ ...call, line });
export const close = (fd: number): Step => ({ close: fd });

export interface Ran {
  readonly events: DomainEvent[];
  readonly done: Done;
  readonly state: State;
}

/** Runs one ioctl on `st` (folding each step's events into it, as replay does) and returns what it decided. */
export function execute(st: State, header: TraceHeader, call: IoctlCall, line = 0, ctx = CTX): Ran {
  const def = typeof call.cmd === 'string' ? COMMAND_BY_NAME.get(call.cmd) : [...COMMAND_BY_NAME.values()].find((d) => d.value === call.cmd);
  if (def === undefined) throw new Error(`unknown command ${String(call.cmd)}`);
  const d = decodeIoctlArg(def, call.arg);
  if (!d.ok) throw new Error(`bad test arg: ${d.problem.path}: ${d.problem.message}`);
  const a = d.value;
  let input: IoctlInput;
  if (a.k === 'struct') {
    const r = resolveStruct(a.s, new Map(), 'arg');
    if (r instanceof Unbound) throw new Error('variables are not allowed in given/when tests');
    input = { k: 'struct', a: r };
  } else if (a.k === 'null') input = { k: 'null' };
  else throw new Error('after() runs struct ioctls only');
  const k: Kernel = { st, header, line };
  const events: DomainEvent[] = [];
  const apply = (es: readonly DomainEvent[]): void => {
    for (const e of es) {
      events.push(e);
      evolve(st, e);
    }
  };
  const c = st.ctxs.get(ctx);
  if (c === undefined) throw new Error(`no context ${ctx}`);
  const done = runToCompletion(iommufd_fops_ioctl({ k, ctx: c }, def.value, input), apply);
  apply(done.events);
  return { events, done, state: st };
}

/** Runs the `close` syscall on `st`. */
export function executeClose(st: State, header: TraceHeader, fd: number, line = 0): Ran {
  const events: DomainEvent[] = [];
  const apply = (es: readonly DomainEvent[]): void => {
    for (const e of es) {
      events.push(e);
      evolve(st, e);
    }
  };
  const done = runToCompletion(sys_close({ st, header, line }, fd), apply);
  apply(done.events);
  return { events, done, state: st };
}

const describeOutcome = (d: Done): string =>
  d.outcome.kind === 'ok' ? 'ok' : d.outcome.kind === 'err' ? `${d.outcome.errno}: ${d.outcome.why}` : `unmodelled: ${d.outcome.what}`;

export interface Setup {
  /** Every event: the batches, then what each call decided. Pass it to `given`. */
  readonly events: DomainEvent[];
  /** The `out` of each call, in order. */
  readonly outs: (Out | undefined)[];
  readonly state: State;
}

/** Folds `batches`, then runs `steps` in order, each of which must succeed. */
export function after(batches: readonly DomainEvent[][], ...steps: Step[]): Setup {
  return afterWith(TEST_HEADER, batches, ...steps);
}

export function afterWith(header: TraceHeader, batches: readonly DomainEvent[][], ...steps: Step[]): Setup {
  const st = initialState();
  const events: DomainEvent[] = [];
  for (const b of batches) for (const e of b) {
    events.push(e);
    evolve(st, e);
  }
  const outs: (Out | undefined)[] = [];
  steps.forEach((s, i) => {
    const r = 'close' in s ? executeClose(st, header, s.close, s.line ?? 0) : execute(st, header, s, s.line ?? 0, s.ctx ?? CTX);
    expect(describeOutcome(r.done), `setup step ${i} (${'close' in s ? `close ${s.close}` : String(s.cmd)})`).toBe('ok');
    events.push(...r.events);
    outs.push(r.done.outcome.kind === 'ok' ? r.done.outcome.out : undefined);
  });
  return { events, outs, state: st };
}

/** Asserts that a call succeeded (whatever events it decided) and returns its `out`. */
export function expectOk(r: Ran, out?: Out): Out | undefined {
  expect(describeOutcome(r.done)).toBe('ok');
  const o = r.done.outcome;
  if (o.kind !== 'ok') return undefined;
  if (out !== undefined) expect(o.out).toMatchObject(out);
  return o.out;
}

/** Asserts that a call failed with `errno` and decided no event. */
export function expectErr(r: Ran, errno: string, whyMatches?: RegExp): string {
  const o = r.done.outcome;
  expect(o.kind === 'err' ? o.errno : o.kind === 'ok' ? 'success' : `unmodelled: ${o.what}`).toBe(errno);
  expect(r.events).toEqual([]);
  const why = o.kind === 'err' ? o.why : '';
  if (whyMatches !== undefined) expect(why).toMatch(whyMatches);
  return why;
}

// ---- argument builders -------------------------------------------------------------------------------------

export const RW = ['IOMMU_IOAS_MAP_WRITEABLE', 'IOMMU_IOAS_MAP_READABLE'];
export const FIXED_RW = ['IOMMU_IOAS_MAP_FIXED_IOVA', ...RW];
const hex = (v: bigint): string => `0x${v.toString(16)}`;

export const mapFixed = (ioas: number, uva: bigint, length: bigint, iova: bigint, flags: readonly string[] = FIXED_RW): IoctlCall =>
  ({ cmd: 'IOMMU_IOAS_MAP', arg: { flags, ioas_id: ioas, user_va: hex(uva), length: hex(length), iova: hex(iova) } });
export const mapAuto = (ioas: number, uva: bigint, length: bigint, flags: readonly string[] = RW): IoctlCall =>
  ({ cmd: 'IOMMU_IOAS_MAP', arg: { flags, ioas_id: ioas, user_va: hex(uva), length: hex(length) } });
export const unmap = (ioas: number, iova: bigint, length: bigint): IoctlCall =>
  ({ cmd: 'IOMMU_IOAS_UNMAP', arg: { ioas_id: ioas, iova: hex(iova), length: hex(length) } });
export const copy = (dst: number, src: number, srcIova: bigint, length: bigint, dstIova?: bigint, flags?: readonly string[]): IoctlCall => ({
  cmd: 'IOMMU_IOAS_COPY',
  arg: {
    flags: flags ?? (dstIova === undefined ? RW : FIXED_RW), dst_ioas_id: dst, src_ioas_id: src, length: hex(length),
    src_iova: hex(srcIova), ...(dstIova === undefined ? {} : { dst_iova: hex(dstIova) }),
  },
});
export const addReserved = (ioas: number, start: bigint, length: bigint): IoctlCall =>
  ({ cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_ADD_RESERVED', id: ioas, add_reserved: { start: hex(start), length: hex(length) } } });
export const allowIovas = (ioas: number, ranges: readonly (readonly [bigint, bigint])[]): IoctlCall => ({
  cmd: 'IOMMU_IOAS_ALLOW_IOVAS',
  arg: { ioas_id: ioas, num_iovas: ranges.length, allowed_iovas: ranges.map(([s, l]) => ({ start: hex(s), last: hex(l) })) },
});
export const mockDomain = (id: number): IoctlCall => ({ cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN', id, mock_domain: {} } });
export const mockDomainFlags = (id: number, devFlags: number): IoctlCall =>
  ({ cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS', id, mock_domain_flags: { dev_flags: devFlags } } });
export const checkRefs = (uptr: bigint, length: bigint, refs: number): IoctlCall =>
  ({ cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MD_CHECK_REFS', check_refs: { length: hex(length), uptr: hex(uptr), refs } } });
export const checkMap = (hwpt: number, iova: bigint, length: bigint, uptr: bigint): IoctlCall =>
  ({ cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MD_CHECK_MAP', id: hwpt, check_map: { iova: hex(iova), length: hex(length), uptr: hex(uptr) } } });
export const destroy = (id: number): IoctlCall => ({ cmd: 'IOMMU_DESTROY', arg: { id } });
export const hugePages = (ioas: number, val: 0 | 1): IoctlCall =>
  ({ cmd: 'IOMMU_OPTION', arg: { option_id: 'IOMMU_OPTION_HUGE_PAGES', op: 'IOMMU_OPTION_OP_SET', object_id: ioas, val64: val } });
export const createAccess = (ioas: number, flags = 1): IoctlCall =>
  ({ cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_CREATE_ACCESS', id: ioas, create_access: { flags } } });
export const accessPages = (fd: number, iova: bigint, length: bigint, uptr = 0n, flags = 0): IoctlCall => ({
  cmd: 'IOMMU_TEST_CMD',
  arg: { op: 'IOMMU_TEST_OP_ACCESS_PAGES', id: fd, access_pages: { flags, iova: hex(iova), length: hex(length), uptr: hex(uptr) } },
});
export const destroyAccessPages = (fd: number, item: number): IoctlCall =>
  ({ cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_DESTROY_ACCESS_PAGES', id: fd, destroy_access_pages: { access_pages_id: item } } });

/** The areas of IOAS `ioas` of context 1, as [start, last] pairs. */
export function areasOf(st: State, ioas: number, ctx = CTX): [bigint, bigint][] {
  const i = st.ctxs.get(ctx)?.objects.get(ioas)?.ioas?.iopt;
  if (i === undefined) throw new Error(`no IOAS ${ioas}`);
  return [...i.areas.inOrder()].map((n) => [n.start, n.last]);
}
