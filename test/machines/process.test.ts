import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import { sys_close, sys_mmap, sys_open } from '../../src/machines/process.js';
import { runToCompletion, type Step } from '../../src/machines/ioctl.js';
import { DEFAULT_HEADER } from '../../src/replay/engine.js';
import { evolve, initialState, type State } from '../../src/projections/state.js';
import { ioasAllocated, opened } from '../support/given.js';

function drain(st: State, op: Step) {
  const events: DomainEvent[] = [];
  const done = runToCompletion(op, (es) => events.push(...es));
  events.push(...done.events);
  for (const e of events) evolve(st, e);
  return { events, outcome: done.outcome };
}
const stateOf = (...batches: DomainEvent[][]): State => {
  const st = initialState();
  for (const b of batches) for (const e of b) evolve(st, e);
  return st;
};

describe('open and close of /dev/iommu', () => {
  it('gives each open its own context and the lowest free fd from 3', () => {
    const st = stateOf(opened());
    const r = drain(st, sys_open({ st, header: DEFAULT_HEADER, line: 0 }, '/dev/iommu', undefined));
    expect(r.outcome).toMatchObject({ kind: 'ok', ret: 4n });
    expect(r.events[0]).toEqual({ type: 'IommufdOpened', ctx: 2, accountMode: 0, compat: false });
  });

  it('opens /dev/vfio/vfio under iommufd in MM accounting mode', () => {
    const st = initialState();
    const r = drain(st, sys_open({ st, header: DEFAULT_HEADER, line: 0 }, '/dev/vfio/vfio', undefined));
    expect(r.events[0]).toEqual({ type: 'IommufdOpened', ctx: 1, accountMode: 1, compat: true });
  });

  it('destroys leaves first on close: a referenced object waits for its holder', () => {
    const st = stateOf(opened(), ioasAllocated(1), ioasAllocated(2), [{ type: 'ObjectRefTaken', ctx: 1, id: 1, by: 2 }]);
    const r = drain(st, sys_close({ st, header: DEFAULT_HEADER, line: 0 }, 3));
    expect(r.events.map((e) => (e.type === 'ObjectDestroyed' || e.type === 'ObjectRefDropped' ? `${e.type}:${e.id}` : e.type))).toEqual([
      'FdClosed', 'CtxRefDropped', 'ObjectRefDropped:1', 'ObjectDestroyed:2', 'ObjectDestroyed:1', 'IommufdReleased',
    ]);
    expect(st.ctxs.size).toBe(0);
  });

  it('answers EBADF for a close of an fd that is not open', () => {
    const st = initialState();
    expect(drain(st, sys_close({ st, header: DEFAULT_HEADER, line: 0 }, 9)).outcome).toMatchObject({ kind: 'err', errno: 'EBADF' });
  });
});

describe('mmap', () => {
  it('adopts the observed address and rejects a misaligned MAP_FIXED', () => {
    const st = initialState();
    const k = { st, header: DEFAULT_HEADER, line: 0 };
    const base = { length: 8192n, prot: 3n, flags: 0x21n, fd: -1n, offset: 0n };
    expect(drain(st, sys_mmap(k, { ...base, addr: 0n }, 0x7f0000000000n)).outcome).toMatchObject({ kind: 'ok', ret: 0x7f0000000000n });
    expect(drain(st, sys_mmap(k, { ...base, addr: 0x1001n, flags: 0x31n }, undefined)).outcome).toMatchObject({ kind: 'err', errno: 'EINVAL' });
    expect(st.mm.vmas).toHaveLength(1);
  });
});
