/**
 * VFIO group fds (drivers/vfio/group.c) on a container served by iommufd (CONFIG_IOMMUFD_VFIO_CONTAINER): a group
 * is set to the iommufd, which creates the compat IOAS (`iommufd_vfio_compat_ioas_create`); opening a device through
 * the group binds it to that iommufd and attaches it to the compat IOAS (`vfio_df_group_open` →
 * `vfio_iommufd_physical_bind` + `vfio_iommufd_compat_attach_ioas`). The legacy type1 container is another backend.
 */
import type { DomainEvent } from '../events/domain.js';
import { COMMAND_BY_NAME } from '../events/uapi.js';
import { isFailure } from '../hw/iopt_ops.js';
import { cloneState, evolve } from '../projections/state.js';
import { fail, respond, succeed, u32, unmodelled, type Kernel, type Operation, type Step } from './ioctl.js';
import { vfioGroupType1Ioctl } from './vfio_type1_group.js';
import { attachPt, IOMMU_NO_PASID } from './device.js';
import type { IoctlInput } from './main.js';
import { pickFd } from './process.js';
import { iommufd_vfio_compat_ioas_create } from './vfio_compat.js';
import { bindEvents } from './vfio_device.js';

const V = (n: string): number => COMMAND_BY_NAME.get(n)!.value;
const GET_STATUS = V('VFIO_GROUP_GET_STATUS'), SET_CONTAINER = V('VFIO_GROUP_SET_CONTAINER'),
  UNSET_CONTAINER = V('VFIO_GROUP_UNSET_CONTAINER'), GET_DEVICE_FD = V('VFIO_GROUP_GET_DEVICE_FD');
const VIABLE = 1n, CONTAINER_SET = 2n;

/** Device fds opened through this group (each holds the group busy). */
function groupDeviceFds(k: Kernel, group: number): number[] {
  const out: number[] = [];
  for (const [fd, f] of k.st.fds) if (f.kind === 'vfio_device' && k.header.devices.find((d) => d.path === f.path)?.group === group && k.st.vfioBinds.has(fd)) out.push(fd);
  return out;
}

function* setContainer(k: Kernel, group: number, input: IoctlInput): Operation {
  const fn = 'group.c vfio_group_ioctl_set_container';
  if (input.k !== 'int') return fail('EFAULT', `${fn}: get_user of the container fd`);
  const fd = Number(input.v);
  const f = k.st.fds.get(fd);
  if (f === undefined) return fail('EBADF', `${fn}: fd ${fd} is not open`);
  if (k.st.vfioGroups.has(group)) return fail('EINVAL', `${fn}: group ${group} already has a container`);
  if (f.kind !== 'iommufd') return fail('EBADFD', `${fn}: fd ${fd} is neither a VFIO container nor an iommufd`);
  const ctx = k.st.ctxs.get(f.ctx)!;
  const r = yield* iommufd_vfio_compat_ioas_create({ k, ctx });
  if (isFailure(r)) return fail(r.errno, r.why);
  return succeed(`${fn}: ${r.why}`, undefined, [...r.events, { type: 'VfioGroupContainerSet', group, ctx: ctx.id }, { type: 'CtxRefTaken', ctx: ctx.id }]);
}

/** `vfio_group_ioctl_get_device_fd` → `vfio_df_group_open`: bind to the group's iommufd, attach to the compat IOAS. */
function getDeviceFd(k: Kernel, group: number, input: IoctlInput, want: bigint | undefined): Step {
  const fn = 'group.c vfio_group_ioctl_get_device_fd';
  if (input.k !== 'string') return fail('EFAULT', `${fn}: strndup_user of the device name`);
  const dev = k.header.devices.find((d) => d.group === group && d.name === input.v.split(' ')[0]);
  if (dev === undefined) return fail('ENODEV', `${fn}: no device named ${JSON.stringify(input.v)} in group ${group}`);
  const ctxId = k.st.vfioGroups.get(group);
  if (ctxId === undefined) return fail('EINVAL', 'group.c vfio_df_group_open: the group has no container');
  const ctx = k.st.ctxs.get(ctxId)!;
  const fd = pickFd(k.st, want);
  const bound = bindEvents(k, fd, dev, ctx);
  if (isFailure(bound)) return fail(bound.errno, bound.why);
  const scratch = cloneState(k.st);
  const events: DomainEvent[] = [{ type: 'FdInstalled', fd, file: { kind: 'vfio_device', path: dev.path } }, ...bound.events];
  for (const e of events) evolve(scratch, e);
  const sctx = scratch.ctxs.get(ctxId)!;
  if (sctx.vfioIoas === 0) return fail('EINVAL', 'iommufd.c vfio_iommufd_compat_attach_ioas: no compat IOAS');
  const r = attachPt(scratch, k.header, sctx, sctx.objects.get(bound.idev)!, IOMMU_NO_PASID, sctx.vfioIoas, sctx.ids.clone());
  if ('unmodelled' in r) return unmodelled(r.unmodelled);
  if (isFailure(r)) return fail(r.errno, r.why);
  return succeed(`${fn}: ${dev.name} opened as fd ${fd}, bound as device ${bound.idev} and attached to HWPT ${r.hwpt}`, undefined, [...events, ...r.events], BigInt(fd));
}

/** `vfio_group_fops_unl_ioctl`. */
export function vfio_group_ioctl(k: Kernel, group: number, cmd: number, input: IoctlInput, want: bigint | undefined): Step {
  // A group on a legacy container (or being set to one) is the type1 backend's (vfio_type1_group.ts).
  const op = cmd === GET_STATUS ? 'status' : cmd === SET_CONTAINER ? 'set' : cmd === UNSET_CONTAINER ? 'unset' : cmd === GET_DEVICE_FD ? 'device' : undefined;
  const legacy = op === undefined ? undefined : vfioGroupType1Ioctl(k, group, op, input, want);
  if (legacy !== undefined) return legacy;
  if (cmd === GET_STATUS) {
    if (input.k !== 'struct') return fail('EFAULT', 'group.c vfio_group_ioctl_get_status: copy_from_user of a NULL arg');
    if (input.a.size < 8) return fail('EINVAL', `group.c vfio_group_ioctl_get_status: argsz ${input.a.size} < 8`);
    const set = k.st.vfioGroups.has(group);
    return succeed(`group.c vfio_group_ioctl_get_status: group ${group} is viable${set ? ' with a container' : ''}`,
      respond(input.a, { flags: set ? VIABLE | CONTAINER_SET : VIABLE }));
  }
  if (cmd === SET_CONTAINER) return setContainer(k, group, input);
  if (cmd === UNSET_CONTAINER) {
    const fn = 'group.c vfio_group_ioctl_unset_container';
    const ctx = k.st.vfioGroups.get(group);
    if (ctx === undefined) return fail('EINVAL', `${fn}: group ${group} has no container`);
    if (groupDeviceFds(k, group).length > 0) return fail('EBUSY', `${fn}: device fds of group ${group} are open`);
    return succeed(`${fn}: group ${group} left its container (the compat IOAS and its mappings stay)`, undefined,
      [{ type: 'VfioGroupContainerUnset', group }, { type: 'CtxRefDropped', ctx }]);
  }
  if (cmd === GET_DEVICE_FD) return getDeviceFd(k, group, input, want);
  void u32;
  return fail('ENOTTY', `group.c vfio_group_fops_unl_ioctl: 0x${cmd.toString(16)} is not a group ioctl`);
}

/** Closing a group fd detaches its container. */
export function vfioGroupCloseEvents(k: Kernel, group: number): DomainEvent[] {
  const ctx = k.st.vfioGroups.get(group);
  return ctx === undefined ? [] : [{ type: 'VfioGroupContainerUnset', group }, { type: 'CtxRefDropped', ctx }];
}
