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

/**
 * Mutant `type1-zero-page-pin` (S9: the 6.0 "vfio/type1: Unpin zero pages", 873aefb376bb, fixed a leak that came back
 * when it was reverted before GUP unshared the zero page): a read-only pin of untouched private anonymous memory gets
 * the shared zero page, which `is_invalid_reserved_pfn` calls reserved, so type1 maps it but never charges nor
 * unpins it. The model has no zero-page frame; the frames the pin faulted in stand for it. Returns the pinned runs
 * without those pages, and how many pages that leaves uncharged.
 */
export function zeroPagePinRuns(events: readonly DomainEvent[], runs: readonly { readonly start: bigint; readonly frame: number; readonly npages: number }[], pageSize: number):
  { runs: { start: bigint; frame: number; npages: number }[]; zero: number } {
  const ps = BigInt(pageSize);
  const zero = events.flatMap((e) => (e.type === 'PagesFaulted' && e.source === 'anon' ? [{ start: e.start, last: e.last }] : []));
  const isZero = (va: bigint): boolean => zero.some((z) => z.start <= va && va <= z.last);
  const out: { start: bigint; frame: number; npages: number }[] = [];
  let n = 0;
  for (const r of runs)
    for (let p = 0; p < r.npages; p++) {
      const va = r.start + BigInt(p) * ps;
      if (isZero(va)) { n++; continue; }
      const top = out[out.length - 1];
      if (top !== undefined && top.start + BigInt(top.npages) * ps === va && top.frame + top.npages === r.frame + p) top.npages++;
      else out.push({ start: va, frame: r.frame + p, npages: 1 });
    }
  return { runs: out, zero: n };
}
