/**
 * Emmett-style ioctl tests: `given(events).when(call).then(events)` or `.thenFails('ENOENT')`. The given events
 * build the state through `evolve`, exactly as replay does; `when` runs one ioctl through the real dispatch
 * (`iommufd_fops_ioctl`), and `then` compares every domain event it decided.
 */
import { expect } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import type { Errno } from '../../src/events/errno.js';
import { resolveStruct, Unbound } from '../../src/events/resolve.js';
import { decodeIoctlArg } from '../../src/events/trace.js';
import { COMMAND_BY_NAME } from '../../src/events/uapi.js';
import { runToCompletion, type Done, type Kernel, type Out } from '../../src/machines/ioctl.js';
import { iommufd_fops_ioctl, type IoctlInput } from '../../src/machines/main.js';
import { DEFAULT_HEADER } from '../../src/replay/engine.js';
import type { TraceHeader } from '../../src/events/header.js';
import { evolve, initialState, type State } from '../../src/projections/state.js';

export const CTX = 1;
/** The events of opening /dev/iommu as fd 3 (context 1). */
export const opened = (ctx = CTX, fd = 3): DomainEvent[] => [
  { type: 'IommufdOpened', ctx, accountMode: 0, compat: false },
  { type: 'FdInstalled', fd, file: { kind: 'iommufd', ctx } },
];
export const ioasAllocated = (id: number, ctx = CTX): DomainEvent[] => [
  { type: 'ObjectAllocated', ctx, id, kind: 'IOAS' },
  { type: 'ObjectFinalized', ctx, id },
];

export interface IoctlCall {
  readonly cmd: string | number;
  readonly arg: unknown;
}
export const ioctl = (cmd: string | number, arg: unknown = {}): IoctlCall => ({ cmd, arg });

export interface Ran {
  readonly events: DomainEvent[];
  readonly done: Done;
  readonly state: State;
}

/**
 * The events of a call without the short-term `users` reference a multi-step call holds on the object it looked up
 * (machines/ioctl.ts `holding`: taken with its first step, dropped with its last). The tests of what a call does
 * compare the rest; test/replay/schedule.test.ts shows the reference at work (a racing DESTROY is EBUSY).
 */
export function withoutShortTermHold(events: readonly DomainEvent[]): DomainEvent[] {
  const first = events[0], last = events[events.length - 1];
  if (first?.type !== 'ObjectRefTaken' || first.by !== 0 || last?.type !== 'ObjectRefDropped' || last.by !== 0) return [...events];
  if (first.ctx !== last.ctx || first.id !== last.id) return [...events];
  return events.slice(1, -1);
}

export function run(st: State, header: TraceHeader, call: IoctlCall, ctx = CTX): Ran {
  const def = typeof call.cmd === 'string' ? COMMAND_BY_NAME.get(call.cmd) : [...COMMAND_BY_NAME.values()].find((d) => d.value === call.cmd);
  const value = typeof call.cmd === 'number' ? call.cmd : def!.value;
  const d = decodeIoctlArg(def, call.arg);
  if (!d.ok) throw new Error(`bad test arg: ${d.problem.path}: ${d.problem.message}`);
  let input: IoctlInput;
  const a = d.value;
  if (a.k === 'struct') {
    const r = resolveStruct(a.s, new Map(), 'arg');
    if (r instanceof Unbound) throw new Error('variables are not allowed in given/when tests');
    input = { k: 'struct', a: r };
  } else if (a.k === 'int') input = { k: 'int', v: a.v as bigint };
  else if (a.k === 'string') input = { k: 'string', v: a.v };
  else input = { k: a.k === 'null' ? 'null' : 'raw' };
  const k: Kernel = { st, header, line: 0 };
  const events: DomainEvent[] = [];
  const apply = (es: readonly DomainEvent[]): void => {
    for (const e of es) {
      events.push(e);
      evolve(st, e);
    }
  };
  const done = runToCompletion(iommufd_fops_ioctl({ k, ctx: st.ctxs.get(ctx)! }, value, input), apply);
  apply(done.events);
  return { events: withoutShortTermHold(events), done, state: st };
}

export function given(...batches: DomainEvent[][]) {
  let header: TraceHeader = { ...DEFAULT_HEADER, iommufd_test: true };
  const build = (): State => {
    const st = initialState();
    for (const b of batches) for (const e of b) evolve(st, e);
    return st;
  };
  const api = {
    withHeader(h: Partial<TraceHeader>) {
      header = { ...header, ...h };
      return api;
    },
    when(call: IoctlCall, ctx = CTX) {
      const ran = (): Ran => run(build(), header, call, ctx);
      return {
        /** The call succeeds, deciding exactly these events (and writing back `out` fields, when given). */
        then(events: DomainEvent[], out?: Out, ret = 0n): Ran {
          const r = ran();
          const o = r.done.outcome;
          expect(o.kind, o.kind === 'err' ? `${o.errno}: ${o.why}` : o.kind === 'unmodelled' ? o.what : '').toBe('ok');
          expect(r.events).toEqual(events);
          if (o.kind === 'ok') {
            expect(o.ret).toBe(ret);
            if (out !== undefined) expect(o.out).toMatchObject(out);
          }
          return r;
        },
        /** The call succeeds and writes back `out` (its events are not compared: memory writes, faults...). */
        thenOk(out?: Out, ret = 0n): Ran {
          const r = ran();
          const o = r.done.outcome;
          expect(o.kind, o.kind === 'err' ? `${o.errno}: ${o.why}` : o.kind === 'unmodelled' ? o.what : '').toBe('ok');
          if (o.kind === 'ok') {
            expect(o.ret).toBe(ret);
            if (out !== undefined) expect(o.out).toMatchObject(out);
          }
          return r;
        },
        /** The call fails with `errno` and decides no event. */
        thenFails(errno: Errno, whyMatches?: RegExp): Ran {
          const r = ran();
          const o = r.done.outcome;
          expect(o.kind === 'err' ? o.errno : o.kind === 'ok' ? 'success' : `unmodelled: ${o.what}`).toBe(errno);
          expect(r.events).toEqual([]);
          if (whyMatches !== undefined && o.kind === 'err') expect(o.why).toMatch(whyMatches);
          return r;
        },
      };
    },
  };
  return api;
}
