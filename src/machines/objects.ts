/**
 * Object table operations shared by every object kind (main.c): lookup (`iommufd_get_object`), the lowest-free
 * ID rule of `_iommufd_object_alloc`, removal checks of `iommufd_object_remove`, and the order in which
 * `iommufd_fops_release` destroys what a closed context still holds.
 */
import type { DomainEvent, ObjectKind } from '../events/domain.js';
import type { IommufdCtx, KObject, State } from '../projections/state.js';
import { ioasTeardownEvents } from '../hw/iopt_ops.js';
import { S_FINALIZED } from './lifecycle.js';

/**
 * `iommufd_get_object(ictx, id, type)`: the object if its slot holds a finalized object of that kind (or any kind)
 * whose `users` has not dropped to 0. Reserved (allocated, not finalized) and tombstoned slots look empty.
 */
export function getObject(ctx: IommufdCtx, id: number, kind: ObjectKind | 'ANY' | readonly ObjectKind[]): KObject | undefined {
  const o = ctx.objects.get(id);
  if (o === undefined || o.life !== S_FINALIZED || o.users === 0) return undefined;
  if (kind === 'ANY') return o;
  if (typeof kind === 'string') return o.kind === kind ? o : undefined;
  return kind.includes(o.kind) ? o : undefined;
}

/** Why a lookup failed, for the divergence report. */
export function lookupWhy(ctx: IommufdCtx, id: number, kind: ObjectKind | 'ANY' | readonly ObjectKind[]): string {
  const o = ctx.objects.get(id);
  const want = kind === 'ANY' ? 'an object' : typeof kind === 'string' ? `a ${kind}` : kind.join(' or ');
  if (id === 0) return `id 0 is never allocated (xa_alloc with XA_FLAGS_ALLOC1 starts at 1), so it is not ${want}`;
  if (o === undefined) return `no object has id ${id} in this iommufd (it was never allocated, or was destroyed)`;
  if (o.life !== S_FINALIZED) return `id ${id} is reserved by a ${o.kind} that is not finalized (XA_ZERO_ENTRY)`;
  return `id ${id} is a ${o.kind}, not ${want}`;
}

/**
 * `iommufd_fops_release`: passes in ascending ID order; each destroys every object whose `users` is 1 (only the
 * table's own reference). Destroying an object drops the references it held (`dropsRefs`), which can free
 * objects later in the same pass or in the next one. A pass that finds objects but destroys none is the kernel's
 * WARN-and-leak case.
 */
export function releaseOrder(ctx: IommufdCtx, dropsRefs: (o: KObject) => readonly number[]): { order: number[]; leaked: number[] } {
  const users = new Map<number, number>();
  for (const [id, o] of ctx.objects) if (o.life === S_FINALIZED) users.set(id, o.users);
  const order: number[] = [];
  const ids = [...users.keys()].sort((a, b) => a - b);
  for (;;) {
    let destroyed = 0;
    for (const id of ids) {
      if (users.get(id) !== 1) continue;
      users.delete(id);
      order.push(id);
      destroyed++;
      for (const ref of dropsRefs(ctx.objects.get(id)!)) {
        const u = users.get(ref);
        if (u !== undefined) users.set(ref, u - 1);
      }
    }
    if (users.size === 0 || destroyed === 0) break;
  }
  return { order, leaked: [...users.keys()] };
}

/**
 * Destroying objects: each runs its kind's destroy op (an IOAS unmaps everything: `iommufd_ioas_destroy` →
 * `iopt_unmap_all`), drops the references it holds, then leaves the table.
 */
export function destroyEvents(st: State, ctx: IommufdCtx, ids: readonly number[]): DomainEvent[] {
  const out: DomainEvent[] = [];
  const dropped = new Map<number, number>();
  for (const id of ids) {
    const o = ctx.objects.get(id);
    if (o?.ioas !== undefined) out.push(...ioasTeardownEvents(st, { ctx: ctx.id, ioas: id }, o.ioas.iopt, dropped));
    for (const held of o?.holds ?? []) out.push({ type: 'ObjectRefDropped', ctx: ctx.id, id: held, by: id });
    out.push({ type: 'ObjectDestroyed', ctx: ctx.id, id });
  }
  return out;
}
