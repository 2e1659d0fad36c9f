/**
 * A canonical, JSON-ready view of the projected state: maps become arrays sorted by key, u64 values become hex
 * strings. Two states are the same exactly when their views are deep-equal, which is how the tests prove that a
 * log replayed from disk rebuilds the state the live replay reached (and how `state at N` will print it).
 */
import { LIFE_STATES } from '../machines/lifecycle.js';
import type { KObject, State } from './state.js';
import { rawGet } from '../hw/cow_map.js';
import { viewMm } from '../hw/mm.js';
import type { Iopt } from '../hw/io_pagetable.js';
import { viewDirty } from '../hw/dirty.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

const inOrder = <T>(t: { first(): T | undefined; next(n: T): T | undefined }): T[] => {
  const out: T[] = [];
  for (let n = t.first(); n !== undefined; n = t.next(n)) out.push(n);
  return out;
};

export function viewIopt(i: Iopt) {
  return {
    iovaAlignment: hex(i.iovaAlignment),
    disableLargePages: i.disableLargePages,
    areas: i.areas.isEmpty ? [] : inOrder(i.areas).map((n) => ({ ...n.value, start: hex(n.value.start), last: hex(n.value.last) })),
    allowed: i.allowed.isEmpty ? [] : inOrder(i.allowed).map((n) => [hex(n.start), hex(n.last)]),
    reserved: i.reserved.isEmpty ? [] : inOrder(i.reserved).map((n) => [hex(n.start), hex(n.last), n.value]),
  };
}

/**
 * Views that are plain JSON by construction (numbers, strings, booleans, arrays and plain objects of them): the
 * object tables, marked as a whole (marking thousands of small objects would cost more than walking them).
 */
const PLAIN = new WeakSet<object>();
const plain = <T extends object>(v: T): T => {
  PLAIN.add(v);
  return v;
};
/** Whether `v` is a view `viewState` built as plain JSON: a walk that converts views to JSON may skip it. */
export const isPlainView = (v: object): boolean => PLAIN.has(v);

/** The view of one table entry: plain JSON by construction (an Area holds only numbers and booleans). */
function viewObject(o: KObject) {
  const holds = o.holds.slice();
  if (holds.length > 1) holds.sort((a, b) => a - b);
  return o.ioas
    ? { id: o.id, kind: o.kind, life: LIFE_STATES[o.life], users: o.users, holds, ioas: viewIopt(o.ioas.iopt) }
    : { id: o.id, kind: o.kind, life: LIFE_STATES[o.life], users: o.users, holds };
}

export function viewState(s: State) {
  // Stored entries: a view only reads, so a fork's copy-on-read (cow_map.ts) would only cost. Keys sorted as numbers.
  const byKey = <K extends number, V>(m: ReadonlyMap<K, V>): [K, V][] => {
    const keys = Float64Array.from(m.keys()).sort();
    const out: [K, V][] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = [keys[i] as K, rawGet(m, keys[i] as K)!];
    return out;
  };
  const byKeyValues = <V>(m: ReadonlyMap<number, V>): V[] => {
    const keys = Float64Array.from(m.keys()).sort();
    const out: V[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = rawGet(m, keys[i]!)!;
    return out;
  };
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
      objects: plain(byKeyValues(c.objects).map(viewObject)),
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
