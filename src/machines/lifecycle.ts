/**
 * Object lifecycles (main.c: `_iommufd_object_alloc`, `iommufd_object_finalize`, `iommufd_object_abort`,
 * `iommufd_object_remove`), one XState v5 machine per object kind: the single source of truth for which
 * lifecycle transitions exist.
 *
 *   allocated ──FINALIZE──▶ finalized ──DESTROY──▶ destroyed
 *       └────────ABORT────▶ aborted          └──TOMBSTONE──▶ tombstoned   (VDEVICE only: its ID stays taken)
 *
 * An allocated object holds its ID (the xarray slot is XA_ZERO_ENTRY: lookups and DESTROY see ENOENT); a
 * tombstoned one too, until the context is closed. Replay must not pay the XState interpreter per event, so
 * `LIFECYCLE_TABLE` is derived from the machines once, at load, by asking XState's own pure `transition()` for
 * every (state, event) pair; test/machines/lifecycle.test.ts proves the table and XState agree on random walks.
 */
import { createMachine, transition, type AnyStateMachine } from 'xstate';
import { OBJECT_KINDS, type ObjectKind } from '../events/domain.js';

export const LIFE_STATES = ['allocated', 'finalized', 'destroyed', 'aborted', 'tombstoned'] as const;
export type LifeState = (typeof LIFE_STATES)[number];
export const LIFE_EVENTS = ['FINALIZE', 'ABORT', 'DESTROY', 'TOMBSTONE'] as const;
export type LifeEvent = (typeof LIFE_EVENTS)[number];

/** Only a vDEVICE whose device goes away is tombstoned (`iommufd_vdevice_abort`, REMOVE_OBJ_TOMBSTONE). */
const TOMBSTONABLE: ReadonlySet<ObjectKind> = new Set(['VDEVICE']);

export function lifecycleMachine(kind: ObjectKind): AnyStateMachine {
  return createMachine({
    id: `iommufd_object:${kind}`,
    initial: 'allocated',
    states: {
      allocated: { on: { FINALIZE: 'finalized', ABORT: 'aborted' } },
      finalized: { on: TOMBSTONABLE.has(kind) ? { DESTROY: 'destroyed', TOMBSTONE: 'tombstoned' } : { DESTROY: 'destroyed' } },
      destroyed: { type: 'final' },
      aborted: { type: 'final' },
      tombstoned: { type: 'final' },
    },
  });
}

export const MACHINES: ReadonlyMap<ObjectKind, AnyStateMachine> = new Map(OBJECT_KINDS.map((k) => [k, lifecycleMachine(k)]));

/** Index of a state in LIFE_STATES; -1 in the table means "no such transition". */
export const S_ALLOCATED = 0, S_FINALIZED = 1, S_DESTROYED = 2, S_ABORTED = 3, S_TOMBSTONED = 4;
export const E_FINALIZE = 0, E_ABORT = 1, E_DESTROY = 2, E_TOMBSTONE = 3;

/**
 * What XState answers for `event` in `state` of a flat machine: the next state, or undefined when the state declares
 * no such transition. Shared with the in-flight call machines (inflight.ts), whose tables are derived the same way.
 */
export function xstateNext<S extends string, E extends string>(machine: AnyStateMachine, state: S, event: E): S | undefined {
  if (!Object.hasOwn(machine.root.states[state]?.config.on ?? {}, event)) return undefined;
  const [next] = transition(machine, machine.resolveState({ value: state, context: {} }), { type: event });
  return next.value as S;
}

function deriveTable(machine: AnyStateMachine): Int8Array {
  const table = new Int8Array(LIFE_STATES.length * LIFE_EVENTS.length).fill(-1);
  LIFE_STATES.forEach((s, si) =>
    LIFE_EVENTS.forEach((e, ei) => {
      const n = xstateNext(machine, s, e);
      if (n !== undefined) table[si * LIFE_EVENTS.length + ei] = LIFE_STATES.indexOf(n);
    }),
  );
  return table;
}

const TABLES: ReadonlyMap<ObjectKind, Int8Array> = new Map(OBJECT_KINDS.map((k) => [k, deriveTable(MACHINES.get(k)!)]));

/** The next lifecycle state index, or -1 if the machine has no such transition. */
export function nextLife(kind: ObjectKind, state: number, event: number): number {
  return TABLES.get(kind)![state * LIFE_EVENTS.length + event]!;
}
