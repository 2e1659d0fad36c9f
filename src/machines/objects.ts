/**
 * Object table operations shared by every object kind (main.c): lookup (`iommufd_get_object`), the lowest-free
 * ID rule of `_iommufd_object_alloc` and the reasons a lookup fails. Destruction is in destroy.ts.
 */
import type { ObjectKind } from '../events/domain.js';
import type { IommufdCtx, KObject } from '../projections/state.js';
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

