/**
 * Event queues (drivers/iommu/iommufd/eventq.c): IOMMU_FAULT_QUEUE_ALLOC (`iommufd_fault_alloc`) and the life of
 * an event queue's file.
 *
 * Theory of operation. `iommufd_eventq_init` makes an anonymous file (`[iommufd-pgfault]`) that holds a `users`
 * reference on its queue object and a reference on the context (`iommufd_ctx_get`), so IOMMU_DESTROY of a queue is
 * EBUSY while its fd is open, and closing the iommufd does not release the context until the queue's fd is closed
 * too (`iommufd_eventq_fops_release` drops both). The fd is reserved (get_unused_fd_flags) before the response is
 * copied and installed only after it, so it is the lowest free fd at the time of the ioctl.
 */
import type { DomainEvent } from '../events/domain.js';
import type { IommufdCtx, State } from '../projections/state.js';
import { fail, respond, succeed, u32, type Arg, type Call, type Step } from './ioctl.js';
import { pickFd } from './process.js';

/** `iommufd_fault_alloc`. */
export function iommufd_fault_alloc(c: Call, a: Arg): Step {
  const fn = 'eventq.c iommufd_fault_alloc';
  if (u32(a, 'flags') !== 0) return fail('EOPNOTSUPP', `${fn}: flags != 0`);
  const id = c.ctx.ids.lowestFree();
  if (id === undefined) return fail('EBUSY', 'main.c _iommufd_object_alloc: no free id');
  const fd = pickFd(c.k.st, undefined);
  const ctx = c.ctx.id;
  const events: DomainEvent[] = [
    { type: 'ObjectAllocated', ctx, id, kind: 'FAULT' },
    { type: 'ObjectRefTaken', ctx, id, by: 0 },
    { type: 'CtxRefTaken', ctx },
    { type: 'ObjectFinalized', ctx, id },
    { type: 'FdInstalled', fd, file: { kind: 'eventq', ctx, id } },
  ];
  return succeed(`${fn}: fault queue ${id}, fd ${fd} ([iommufd-pgfault])`, respond(a, { out_fault_id: BigInt(id), out_fault_fd: BigInt(fd) }), events);
}

/** `iommufd_eventq_fops_release`: the file's references on the queue and on the context go. */
export function eventqCloseEvents(_st: State, ctx: IommufdCtx, id: number): DomainEvent[] {
  return [
    { type: 'ObjectRefDropped', ctx: ctx.id, id, by: 0 },
    { type: 'CtxRefDropped', ctx: ctx.id },
  ];
}
