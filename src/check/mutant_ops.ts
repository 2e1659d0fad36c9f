/**
 * Mutant operations too long for an inline guard: the model file calls them behind `isMutant(...)` (mutants.ts).
 */
import type { DomainEvent } from '../events/domain.js';
import { destroyObjectEvents } from '../machines/destroy.js';
import { fail, succeed, type Call, type Operation } from '../machines/ioctl.js';

/**
 * Mutant `destroy-unlocked-ref` (B1, linux@99f98a7c0d69, CVE-2023-53795): the pre-fix IOMMU_DESTROY took a
 * temporary `users` reference outside destroy_rwsem and decided once its locks were dropped, so a kernel-side destroy
 * (closing an access) racing it sees users != 1, or frees the object under it.
 */
export function* destroyUnlockedRef(c: Call, id: number): Operation {
  const ctx = c.ctx.id;
  yield [{ type: 'ObjectRefTaken', ctx, id, by: 0 }] satisfies DomainEvent[];
  const o = c.ctx.objects.get(id);
  if (o === undefined) return fail('EBUSY', `main.c iommufd_destroy (before 99f98a7c0d69): object ${id} went away under the temporary reference`);
  const drop: DomainEvent = { type: 'ObjectRefDropped', ctx, id, by: 0 };
  if (o.users !== 2) return fail('EBUSY', `main.c iommufd_destroy (before 99f98a7c0d69): ${o.kind} ${id} has users ${o.users - 1} besides the temporary reference`, [drop]);
  return succeed(`main.c iommufd_destroy (before 99f98a7c0d69): ${o.kind} ${id} destroyed`, undefined, [drop, ...destroyObjectEvents(c.k.st, c.ctx, id)]);
}
