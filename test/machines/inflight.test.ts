import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import { classifyStep, INFLIGHT_EVENTS, INFLIGHT_MACHINES, InflightCall, inflightKindOf, type InflightKind } from '../../src/machines/inflight.js';
import { xstateNext } from '../../src/machines/lifecycle.js';

const ev = (type: string): DomainEvent => ({ type } as unknown as DomainEvent);

describe('in-flight call machines', () => {
  it('derive their table from XState: a random walk through the table is a walk XState takes', () => {
    fc.assert(fc.property(fc.constantFrom<InflightKind>('map', 'unmap'), fc.array(fc.constantFrom(...INFLIGHT_EVENTS), { maxLength: 20 }), (kind, events) => {
      const m = INFLIGHT_MACHINES.get(kind)!;
      let state = m.config.initial as string;
      for (const e of events) {
        const next = xstateNext(m, state, e);
        const declared = Object.hasOwn(m.root.states[state]!.config.on ?? {}, e);
        expect(next === undefined).toBe(!declared);
        if (next !== undefined) state = next;
      }
    }), { seed: 7 });
  });

  it('follow MAP through reserve, fill and publish: domains_rwsem is held from the fill until the publish', () => {
    const c = new InflightCall('map');
    c.step([ev('ObjectRefTaken'), ev('PagesCreated'), ev('AreaReserved')]);
    expect([c.phase, c.holds()]).toEqual(['reserved', ['ioas']]);
    c.step([ev('AreaFilled'), ev('DomainMapped')]);
    expect([c.phase, c.holds()]).toEqual(['filled', ['ioas', 'domains_rwsem']]);
  });

  it('follow COPY, which references the source pages before it reserves in the destination', () => {
    const c = new InflightCall('map');
    c.step([ev('PagesRefTaken')]);
    expect(c.phase).toBe('gotPages');
    c.step([ev('ObjectRefTaken'), ev('AreaReserved')]);
    expect(c.phase).toBe('reserved');
  });

  it('follow UNMAP through notify rounds and area removals, and refuse a removal that was not unpublished', () => {
    const c = new InflightCall('unmap');
    for (const [step, phase] of [
      [[ev('ObjectRefTaken'), ev('AreaAccessPrevented')], 'prevented'], [[ev('AccessUnpinned')], 'scanning'], [[], 'scanning'], [[], 'scanning'],
      [[ev('AreaUnpublished')], 'unpublished'], [[ev('DomainUnmapped'), ev('AreaRemoved')], 'removed'], [[ev('AreaUnpublished')], 'unpublished'],
    ] as const) {
      c.step(step);
      expect(c.phase).toBe(phase);
    }
    expect(c.holds()).toEqual(['ioas', 'domains_rwsem']);
    expect(() => new InflightCall('unmap').step([ev('AreaRemoved')])).toThrow(/in state scanning cannot take a REMOVE step/);
  });

  it('name the calls that yield, and classify what each step does', () => {
    expect(['IOMMU_IOAS_MAP', 'IOMMU_IOAS_MAP_FILE', 'IOMMU_IOAS_COPY', 'VFIO_IOMMU_MAP_DMA'].map(inflightKindOf)).toEqual(['map', 'map', 'map', 'map']);
    expect(['IOMMU_IOAS_UNMAP', 'VFIO_IOMMU_UNMAP_DMA', 'IOMMU_DESTROY'].map(inflightKindOf)).toEqual(['unmap', 'unmap', undefined]);
    expect(classifyStep('unmap', [ev('AreaSplit')])).toBe('QUIET');
    expect(classifyStep('map', [])).toBe('STEP');
  });
});
