/**
 * Invariants of the object table (main.c, device.c): every long-term reference points at a live object, `users`
 * equals the references the table knows of, objects are freed only at users == 1, and an auto domain lives only
 * while a device uses it.
 */
import type { DomainEvent } from '../events/domain.js';
import { S_ALLOCATED, S_FINALIZED } from '../machines/lifecycle.js';
import { type Indexes, type InvariantViolation, type Scope } from './invariants_core.js';
import type { IommufdCtx, KObject, State } from './state.js';

export const R_REFS_LIVE = 'main.c iommufd_object_remove / iommufd_object_destroy_user: an object is destroyed only when nothing holds a users reference on it, so every held reference points at a live object';
export const R_USERS = 'main.c _iommufd_object_alloc (users = 1), refcount_inc(&obj->users) by each holder (HWPT on IOAS, access on IOAS, device on HWPT) and by the driver (a bound device, each attachment, an access): users counts exactly those';
export const R_FREED_AT_ONE = 'main.c iommufd_object_remove (refcount_dec_if_one, else EBUSY) and iommufd_object_destroy_user (WARN_ON users != 1; linux@99f98a7c0d69, CVE-2023-53795): an object is destroyed only at users == 1';
export const R_AUTO_DOMAIN = 'device.c iommufd_hw_pagetable_put / iommufd_device_auto_get_domain: an auto domain is destroyed when its last device leaves';

function v(out: InvariantViolation[], name: string, rule: string, message: string): void {
  out.push({ name, rule, message });
}

/** The kinds whose every `users` reference the model names (for the others `users` is only bounded below). */
const COUNTED: ReadonlySet<string> = new Set(['IOAS', 'HWPT_PAGING', 'DEVICE', 'ACCESS', 'SELFTEST']);

/** References held on an object from outside the table (`by` 0): the driver's on a bound device and each of its attachments, an access's. */
function driverRefs(o: KObject): number {
  if (o.kind === 'DEVICE' && o.idev !== undefined) return 1 + o.idev.attached.size;
  if (o.kind === 'ACCESS') return 1;
  return 0;
}

function checkObject(st: State, ctx: IommufdCtx, o: KObject, idx: Indexes, scope: Scope, out: InvariantViolation[]): void {
  const where = `${o.kind} ${o.id} (ctx ${ctx.id})`;
  for (const h of o.holds) {
    const t = ctx.objects.get(h);
    if (t === undefined) v(out, 'refs-live', R_REFS_LIVE, `${where} holds a reference on object ${h}, which was destroyed (use after free)`);
    else if (t.life !== S_FINALIZED && t.life !== S_ALLOCATED) v(out, 'refs-live', R_REFS_LIVE, `${where} holds a reference on object ${h}, which is no longer live`);
  }
  if (o.life !== S_FINALIZED && o.life !== S_ALLOCATED) return;
  const inc = idx.incoming(ctx.id, o.id);
  const want = 1 + inc + driverRefs(o);
  if (scope.quiescent && COUNTED.has(o.kind) ? o.users !== want : o.users < want)
    v(out, 'users-balance', R_USERS, `${where} has users ${o.users}, but the table, ${inc} holder(s) and ${driverRefs(o)} driver reference(s) account for ${want}${o.users > want ? ' (a leaked or temporary reference)' : ''}`);
  if (o.kind === 'HWPT_PAGING' && o.hwpt?.auto === true && o.life === S_FINALIZED) {
    // Only devices hold a paging HWPT here: a scoped check counts holders, a full one looks for the attachment.
    const used = scope.all ? [...ctx.objects.values()].some((d) => d.idev !== undefined && [...d.idev.attached.values()].includes(o.id)) : inc > 0;
    if (!used) v(out, 'auto-domain-in-use', R_AUTO_DOMAIN, `auto domain HWPT ${o.id} (ctx ${ctx.id}) has no device attached but was not destroyed`);
  }
}

export function checkObjects(st: State, scope: Scope, idx: Indexes, out: InvariantViolation[]): void {
  if (scope.all) {
    for (const ctx of st.ctxs.values()) for (const o of ctx.objects.values()) checkObject(st, ctx, o, idx, scope, out);
    return;
  }
  const byCtx = new Map<number, Set<number>>();
  for (const k of scope.objects) {
    const [c, id] = k.split(':').map(Number) as [number, number];
    let s = byCtx.get(c);
    if (s === undefined) byCtx.set(c, (s = new Set()));
    s.add(id);
  }
  for (const [c, ids] of byCtx) {
    const ctx = st.ctxs.get(c);
    if (ctx === undefined) continue;
    for (const id of ids) {
      const o = ctx.objects.get(id);
      if (o !== undefined) checkObject(st, ctx, o, idx, scope, out);
      else if (idx.incoming(c, id) > 0)
        v(out, 'refs-live', R_REFS_LIVE, `${idx.incoming(c, id)} object(s) of ctx ${c} hold a reference on object ${id}, which was destroyed (use after free)`);
    }
  }
}

/** Before an event is folded: an object is destroyed or aborted only at users == 1. */
export function checkObjectEvent(st: State, ev: DomainEvent, out: InvariantViolation[]): void {
  if (ev.type !== 'ObjectDestroyed' && ev.type !== 'ObjectAborted') return;
  const o = st.ctxs.get(ev.ctx)?.objects.get(ev.id);
  if (o !== undefined && o.users !== 1)
    v(out, 'freed-at-one', R_FREED_AT_ONE, `${o.kind} ${ev.id} (ctx ${ev.ctx}) is ${ev.type === 'ObjectDestroyed' ? 'destroyed' : 'aborted'} with users ${o.users}: someone still holds it`);
}
