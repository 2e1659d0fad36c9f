import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { transition } from 'xstate';
import { OBJECT_KINDS } from '../../src/events/domain.js';
import { LIFE_EVENTS, LIFE_STATES, MACHINES, nextLife, xstateNext } from '../../src/machines/lifecycle.js';

const SEED = Number(process.env.FC_SEED ?? 20261121);

describe('object lifecycle machines', () => {
  it('give every kind the kernel lifecycle: allocated, then finalized or aborted, then destroyed', () => {
    for (const k of OBJECT_KINDS) {
      const m = MACHINES.get(k)!;
      expect(xstateNext(m, 'allocated', 'FINALIZE')).toBe('finalized');
      expect(xstateNext(m, 'allocated', 'ABORT')).toBe('aborted');
      expect(xstateNext(m, 'finalized', 'DESTROY')).toBe('destroyed');
      expect(xstateNext(m, 'allocated', 'DESTROY')).toBeUndefined();
      expect(xstateNext(m, 'destroyed', 'FINALIZE')).toBeUndefined();
      expect(xstateNext(m, 'finalized', 'TOMBSTONE')).toBe(k === 'VDEVICE' ? 'tombstoned' : undefined);
    }
  });

  it('derive a transition table that agrees with XState transition() on random event walks', () => {
    console.log(`fast-check seed ${SEED} (set FC_SEED to change)`);
    fc.assert(
      fc.property(fc.constantFrom(...OBJECT_KINDS), fc.array(fc.constantFrom(...LIFE_EVENTS), { maxLength: 12 }), (kind, events) => {
        const machine = MACHINES.get(kind)!;
        let snap = machine.resolveState({ value: 'allocated', context: {} });
        let idx = 0;
        for (const e of events) {
          const [next] = transition(machine, snap, { type: e });
          const t = nextLife(kind, idx, LIFE_EVENTS.indexOf(e));
          // The table says -1 where XState does not move; XState then keeps the same state value.
          if (t < 0) expect(next.value).toBe(LIFE_STATES[idx]);
          else expect(next.value).toBe(LIFE_STATES[t]);
          if (t >= 0) idx = t;
          snap = next;
        }
      }),
      { seed: SEED, numRuns: 500 },
    );
  });
});
