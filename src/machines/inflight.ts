/**
 * In-flight calls: one XState v5 machine per kind of ioctl that drops its locks midway, whose states are the
 * points between two of its atomic steps and whose `meta.holds` says what the kernel still holds there. The
 * handlers (ioas.ts, vfio_compat.ts, hw/iopt_ops.ts) yield a step wherever the kernel code drops a lock; these
 * machines say which steps may follow which, and what another thread then finds taken:
 *
 *   map (IOMMU_IOAS_MAP, MAP_FILE, COPY, VFIO_IOMMU_MAP_DMA on the iommufd; io_pagetable.c iopt_map_pages)
 *     started ─PAGES─▶ gotPages ─RESERVE─▶ reserved ─STEP─▶ filled ─DONE─▶ done
 *        └──────────RESERVE───────────────▲
 *     reserved: the area holds its IOVA (iova_rwsem dropped), the IOAS its short-term reference;
 *     filled:   iopt_fill_domains_pages ran under domains_rwsem (read), held until the area is published.
 *
 *   unmap (IOMMU_IOAS_UNMAP, VFIO_IOMMU_UNMAP_DMA; io_pagetable.c iopt_unmap_iova_range, iopt_cut_iova)
 *     scanning ─PREVENT─▶ prevented ─QUIET─▶ scanning ─UNPUBLISH─▶ unpublished ─REMOVE─▶ removed ─▶ (next area)
 *     scanning: between areas, or after a step that changed nothing structural (type1's cuts, an area prevented
 *               by an earlier round, an access's unpins);
 *     prevented: prevent_access set, both locks dropped while the accesses are told (iommufd_access_notify_unmap);
 *     unpublished, removed: area->pages is NULL and the domains are unfilled under domains_rwsem (read).
 *
 * Replay must not pay the XState interpreter per step, so, as for object lifecycles (lifecycle.ts), the transition
 * table is derived from the machines once by asking XState's pure `transition()` for every (state, event) pair;
 * test/machines/inflight.test.ts proves the table and XState agree. A step the machine has no transition for is a
 * model bug (`InflightCall.step` throws, which replay and the checker report).
 */
import { createMachine, type AnyStateMachine } from 'xstate';
import { xstateNext } from './lifecycle.js';
import type { DomainEvent } from '../events/domain.js';

/** What a call holds between its steps that another thread can run into. */
export type Hold = 'ioas' | 'domains_rwsem';
export type InflightKind = 'map' | 'unmap';
export const INFLIGHT_EVENTS = ['PAGES', 'RESERVE', 'STEP', 'QUIET', 'PREVENT', 'UNPUBLISH', 'REMOVE'] as const;
export type InflightEvent = (typeof INFLIGHT_EVENTS)[number];

interface StateDef { readonly on: Partial<Record<InflightEvent, string>>; readonly holds: readonly Hold[] }

const DEFS: Readonly<Record<InflightKind, Readonly<Record<string, StateDef>>>> = {
  map: {
    // Never seen by another thread: the first step runs as the call starts.
    started: { on: { PAGES: 'gotPages', RESERVE: 'reserved' }, holds: [] },
    // COPY: the source's pages referenced, the destination looked up with the reservation that follows.
    gotPages: { on: { RESERVE: 'reserved' }, holds: ['ioas'] },
    reserved: { on: { STEP: 'filled' }, holds: ['ioas'] },
    filled: { on: {}, holds: ['ioas', 'domains_rwsem'] },
  },
  unmap: {
    scanning: { on: { QUIET: 'scanning', PREVENT: 'prevented', UNPUBLISH: 'unpublished' }, holds: ['ioas'] },
    prevented: { on: { QUIET: 'scanning' }, holds: ['ioas'] },
    unpublished: { on: { REMOVE: 'removed' }, holds: ['ioas', 'domains_rwsem'] },
    removed: { on: { QUIET: 'scanning', PREVENT: 'prevented', UNPUBLISH: 'unpublished' }, holds: ['ioas', 'domains_rwsem'] },
  },
};
const INITIAL: Readonly<Record<InflightKind, string>> = { map: 'started', unmap: 'scanning' };

export function inflightMachine(kind: InflightKind): AnyStateMachine {
  const states: Record<string, { on: Partial<Record<InflightEvent, string>>; meta: { holds: readonly Hold[] } }> = {};
  for (const [name, d] of Object.entries(DEFS[kind])) states[name] = { on: d.on, meta: { holds: d.holds } };
  return createMachine({ id: `inflight:${kind}`, initial: INITIAL[kind], states });
}

export const INFLIGHT_MACHINES: ReadonlyMap<InflightKind, AnyStateMachine> = new Map((['map', 'unmap'] as const).map((k) => [k, inflightMachine(k)]));


/** The derived table: kind → state → event → next state. */
const TABLE: ReadonlyMap<InflightKind, ReadonlyMap<string, ReadonlyMap<InflightEvent, string>>> = new Map(
  (['map', 'unmap'] as const).map((k) => {
    const m = INFLIGHT_MACHINES.get(k)!;
    const byState = new Map<string, Map<InflightEvent, string>>();
    for (const s of Object.keys(DEFS[k])) {
      const row = new Map<InflightEvent, string>();
      for (const e of INFLIGHT_EVENTS) {
        const n = xstateNext(m, s, e);
        if (n !== undefined) row.set(e, n);
      }
      byState.set(s, row);
    }
    return [k, byState];
  }),
);
const HOLDS: ReadonlyMap<InflightKind, ReadonlyMap<string, readonly Hold[]>> = new Map(
  (['map', 'unmap'] as const).map((k) => [k, new Map(Object.entries(DEFS[k]).map(([s, d]) => [s, d.holds]))]),
);

/** The in-flight machine of an ioctl on an iommufd fd, by command name (none: the call is one atomic step). */
export function inflightKindOf(cmd: string): InflightKind | undefined {
  switch (cmd) {
    case 'IOMMU_IOAS_MAP': case 'IOMMU_IOAS_MAP_FILE': case 'IOMMU_IOAS_COPY': case 'VFIO_IOMMU_MAP_DMA':
      return 'map';
    case 'IOMMU_IOAS_UNMAP': case 'VFIO_IOMMU_UNMAP_DMA':
      return 'unmap';
    default:
      return undefined;
  }
}

/** The machine event a yielded step is: classified by what its events do (the handlers' lock-dropping points). */
export function classifyStep(kind: InflightKind, events: readonly DomainEvent[]): InflightEvent {
  const has = (t: DomainEvent['type']): boolean => events.some((e) => e.type === t);
  if (kind === 'map') return has('AreaReserved') ? 'RESERVE' : has('PagesRefTaken') ? 'PAGES' : 'STEP';
  if (has('AreaRemoved')) return 'REMOVE';
  if (has('AreaUnpublished')) return 'UNPUBLISH';
  if (has('AreaAccessPrevented')) return 'PREVENT';
  return 'QUIET';
}

/** One in-flight call: where it is between its steps and what it holds there. */
export class InflightCall {
  private state: string;
  constructor(readonly kind: InflightKind) {
    this.state = INITIAL[kind];
  }

  get phase(): string {
    return this.state;
  }

  /** Takes the step the call just yielded. Throws when the machine has no such transition (a handler bug). */
  step(events: readonly DomainEvent[]): void {
    const e = classifyStep(this.kind, events);
    const next = TABLE.get(this.kind)!.get(this.state)!.get(e);
    if (next === undefined) throw new Error(`in-flight ${this.kind} call in state ${this.state} cannot take a ${e} step`);
    this.state = next;
  }

  /** What it holds now (the machine state's `meta.holds`). */
  holds(): readonly Hold[] {
    return HOLDS.get(this.kind)!.get(this.state)!;
  }
}
