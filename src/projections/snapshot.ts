/**
 * A canonical, JSON-ready view of the projected state: maps become arrays sorted by key, u64 values become hex
 * strings. Two states are the same exactly when their views are deep-equal, which is how the tests prove that a
 * log replayed from disk rebuilds the state the live replay reached (and how `state at N` will print it).
 */
import { LIFE_STATES } from '../machines/lifecycle.js';
import type { State } from './state.js';
import { viewMm } from '../hw/mm.js';
import type { Iopt } from '../hw/io_pagetable.js';
import { viewDirty } from '../hw/dirty.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

export function viewIopt(i: Iopt) {
  return {
    iovaAlignment: hex(i.iovaAlignment),
    disableLargePages: i.disableLargePages,
    areas: [...i.areas.inOrder()].map((n) => ({ ...n.value, start: hex(n.value.start), last: hex(n.value.last) })),
    allowed: [...i.allowed.inOrder()].map((n) => [hex(n.start), hex(n.last)]),
    reserved: [...i.reserved.inOrder()].map((n) => [hex(n.start), hex(n.last), n.value]),
  };
}

export function viewState(s: State) {
  const byKey = <K extends number, V>(m: ReadonlyMap<K, V>): [K, V][] => [...m].sort((a, b) => a[0] - b[0]);
  return {
    pageSize: s.pageSize,
    memory: s.memory,
    fds: byKey(s.fds).map(([fd, f]) => ({ fd, ...f })),
    contexts: byKey(s.ctxs).map(([, c]) => ({
      id: c.id,
      accountMode: c.accountMode === 1 ? 'mm' : 'user',
      compat: c.compat,
      vfioIoas: c.vfioIoas,
      nextId: c.ids.lowestFree() ?? null,
      objects: byKey(c.objects).map(([, o]) => ({
        id: o.id, kind: o.kind, life: LIFE_STATES[o.life], users: o.users, holds: [...o.holds].sort((a, b) => a - b),
        ...(o.ioas && { ioas: viewIopt(o.ioas.iopt) }),
      })),
    })),
    nextCtx: s.nextCtx,
    nextMemfd: s.nextMemfd,
    mm: viewMm(s.mm),
    pages: byKey(s.pages).map(([, p]) => ({
      ...p, uptr: hex(p.uptr), fileStart: hex(p.fileStart), memfd: p.memfd ?? null,
      fillUsers: [...p.fillUsers.runs()].map((r) => [r.start, r.last, r.count]), pinned: [...p.pinned.runs()].map((r) => [r.start, r.last]),
    })),
    accounting: { ...s.accounting },
    domains: byKey(s.domains).map(([, d]) => ({
      id: d.id, kind: d.kind, driver: d.driver, pgsizeBitmap: hex(d.pgsizeBitmap), aperture: [hex(d.apertureStart), hex(d.apertureLast)],
      dirtyOps: d.dirtyOps, dirtyTracking: d.dirtyTracking, dirty: viewDirty(d), map: [...d.map.inOrder()].map((n) => [hex(n.start), hex(n.last), hex(n.value)]),
      iotlb: [...d.iotlb.inOrder()].map((n) => [hex(n.start), hex(n.last), hex(n.value.phys), n.value.prot]),
    })),
    nextDomain: s.nextDomain,
    nextMockDev: s.nextMockDev,
    vfioBinds: byKey(s.vfioBinds).map(([fd, b]) => ({ fd, ...b })),
    vfioGroups: byKey(s.vfioGroups).map(([group, ctx]) => ({ group, ctx })),
    nextPages: s.nextPages,
    nextArea: s.nextArea,
    testMemoryLimit: s.testMemoryLimit,
  };
}
export type StateView = ReturnType<typeof viewState>;
