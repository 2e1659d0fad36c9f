/**
 * Destroying objects (main.c `iommufd_object_remove` → the type's destroy op, and `iommufd_fops_release`), with each
 * kind's destroy op: an IOAS unmaps everything (`iommufd_ioas_destroy`), a paging HWPT leaves its IOAS
 * (`iommufd_hwpt_paging_destroy`), a selftest object detaches and unbinds its mock device
 * (`iommufd_selftest_destroy`), a nested HWPT frees its domain (`iommufd_hwpt_nested_destroy`), a vIOMMU its mmap
 * cookie (`iommufd_viommu_destroy`), a HW queue its internal access (`iommufd_hw_queue_destroy`). Every object then drops the references it held and leaves the table.
 */
import type { DomainEvent } from '../events/domain.js';
import { ioasTeardownEvents } from '../hw/iopt_ops.js';
import { cloneState, evolve, type IommufdCtx, type State } from '../projections/state.js';
import { S_FINALIZED } from './lifecycle.js';
import { hwptPagingDestroyEvents } from './hw_pagetable.js';
import { selftestDestroyEvents } from './selftest.js';
import { hwQueueDestroyEvents, viommuDestroyEvents } from './viommu.js';

/** The destroy op of object `id` and its removal from the table. */
export function destroyObjectEvents(st: State, ctx: IommufdCtx, id: number): DomainEvent[] {
  const o = ctx.objects.get(id);
  if (o === undefined) return [];
  const out: DomainEvent[] = [];
  if (o.ioas !== undefined) out.push(...ioasTeardownEvents(st, { ctx: ctx.id, ioas: id }, o.ioas.iopt, new Map()));
  if (o.nested !== undefined) out.push({ type: 'DomainFreed', domain: o.hwpt!.domain });
  else if (o.hwpt !== undefined) out.push(...hwptPagingDestroyEvents(st, ctx, o));
  if (o.viommu !== undefined) out.push(...viommuDestroyEvents(st, ctx, o));
  if (o.hwq !== undefined) out.push(...hwQueueDestroyEvents(st, ctx, o));
  if (o.stdev !== undefined) out.push(...selftestDestroyEvents(st, ctx, o));
  if (o.holds.length > 0) {
    const dropped = new Set<number>();
    for (const e of out) if (e.type === 'ObjectRefDropped' && e.by === id) dropped.add(e.id);
    for (const held of o.holds) if (!dropped.has(held)) out.push({ type: 'ObjectRefDropped', ctx: ctx.id, id: held, by: id });
  }
  out.push({ type: 'ObjectDestroyed', ctx: ctx.id, id });
  return out;
}

/**
 * `iommufd_fops_release`: passes in ascending ID order, each destroying every object whose `users` is 1; a destroy
 * can free others (an auto domain with its device), which later passes see. The decisions are made against a
 * scratch copy of the state that each destroy is folded into, so every one sees the effect of the ones before.
 * Returns the events and the objects that could not be freed (the kernel's WARN-and-leak).
 */
export function releaseEvents(st: State, ctxId: number): { events: DomainEvent[]; leaked: number[] } {
  const scratch = cloneState(st);
  const events: DomainEvent[] = [];
  for (;;) {
    const ctx = scratch.ctxs.get(ctxId)!;
    let destroyed = 0;
    for (const id of [...ctx.objects.keys()].sort((a, b) => a - b)) {
      const o = ctx.objects.get(id);
      if (o === undefined || o.life !== S_FINALIZED || o.users !== 1) continue;
      const ev = destroyObjectEvents(scratch, ctx, id);
      for (const e of ev) evolve(scratch, e);
      events.push(...ev);
      destroyed++;
    }
    const left = [...ctx.objects.values()].filter((o) => o.life === S_FINALIZED).map((o) => o.id);
    if (left.length === 0 || destroyed === 0) return { events, leaked: left };
  }
}
