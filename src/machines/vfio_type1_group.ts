/**
 * VFIO groups on a legacy container (drivers/vfio/group.c `vfio_group_ioctl_set_container`,
 * `vfio_group_ioctl_unset_container`, `vfio_group_ioctl_get_device_fd`, `vfio_group_fops_release`;
 * drivers/vfio/container.c `vfio_container_attach_group`, `vfio_group_detach_container`, `vfio_ioctl_set_iommu`;
 * drivers/vfio/vfio_iommu_type1.c `vfio_iommu_type1_attach_group`, `vfio_iommu_type1_detach_group`,
 * `vfio_iommu_type1_release`).
 *
 * Theory of operation. A group joins a container at the head of its group list. Once the container has a driver
 * (SET_IOMMU), a joining group is attached to the live type1 instance at once: its devices' IOMMU (from the trace
 * header) gives the domain's aperture and reserved regions, which clip the container's `iova_list`; an existing
 * dma outside what remains makes the attach fail with EINVAL, a platform without MSI isolation with EPERM. A group
 * leaving detaches; the last hardware group takes every dma with it (unmap, unpin, un-charge), and the last group
 * of the container releases the type1 instance: the container has no driver again, and a new SET_IOMMU starts
 * from an empty tree and a fresh `dma_avail`. Closing the container fd changes nothing while groups hold it.
 *
 * The group fds and their numbers are the same objects the iommufd-backed container uses (vfio_group.ts); this
 * file is reached from there when the other end is a legacy container.
 */
import type { DomainEvent } from '../events/domain.js';
import type { HeaderDevice } from '../events/header.js';
import type { Failure } from '../hw/iopt_ops.js';
import { reaccountDma, vfio_remove_dma, unpinDraft } from '../hw/type1_pins.js';
import { containerOf, vaddrInvalidCount, type IovaRange, type Type1Iommu, type VfioContainer } from '../hw/vfio_dma.js';
import type { State } from '../projections/state.js';
import { fail, respond, succeed, unmodelled, type Kernel, type Step } from './ioctl.js';
import type { IoctlInput } from './main.js';
import { pickFd } from './process.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

const groupDevices = (k: Kernel, group: number): HeaderDevice[] => k.header.devices.filter((d) => d.group === group);

/** `vfio_update_pgsize_bitmap`: sub-page sizes are replaced by PAGE_SIZE. */
function pgsizeOf(bitmap: bigint, pageSize: number): bigint {
  const page = BigInt(pageSize);
  return (bitmap & (page - 1n)) !== 0n ? (bitmap & ~(page - 1n)) | page : bitmap;
}

/** `ranges` minus [start, last] (`vfio_iommu_resv_exclude`). */
function cut(ranges: readonly IovaRange[], start: bigint, last: bigint): IovaRange[] {
  const out: IovaRange[] = [];
  for (const r of ranges) {
    if (r.last < start || r.start > last) { out.push(r); continue; }
    if (r.start < start) out.push({ start: r.start, last: start - 1n });
    if (r.last > last) out.push({ start: last + 1n, last: r.last });
  }
  return out;
}

/** The iova_list and pgsize_bitmap of a domain serving `groups`: apertures intersected, reserved regions cut out. */
function iovaListOf(k: Kernel, groups: readonly number[]): { list: IovaRange[]; pgsize: bigint } {
  let list: IovaRange[] = [];
  let pgsize = (1n << 64n) - 1n;
  let first = true;
  for (const g of groups) for (const d of groupDevices(k, g)) {
    const a = d.iommu.aperture;
    list = first ? [{ start: a.start, last: a.last }] : list.flatMap((r) => (r.last < a.start || r.start > a.last ? [] : [{ start: r.start > a.start ? r.start : a.start, last: r.last < a.last ? r.last : a.last }]));
    first = false;
    pgsize &= d.iommu.pgsize_bitmap;
  }
  for (const g of groups) for (const d of groupDevices(k, g))
    for (const r of d.iommu.reserved) if (r.type !== 'direct_relaxable') list = cut(list, r.start, r.last);
  return { list, pgsize: first ? BigInt.asUintN(64, ~(BigInt(k.st.pageSize) - 1n)) : pgsizeOf(pgsize, k.st.pageSize) };
}

const inList = (list: readonly IovaRange[], start: bigint, last: bigint): boolean => list.some((r) => r.start <= start && last <= r.last);

/** An emulated IOMMU group (`VFIO_EMULATED_IOMMU`): its devices are mdevs (`vfio_register_emulated_iommu_dev`). */
export const isEmulatedGroup = (k: Kernel, group: number): boolean => {
  const devs = groupDevices(k, group);
  return devs.length > 0 && devs.every((d) => d.mdev !== undefined);
};

/**
 * `vfio_iommu_type1_attach_group` of `group` to `iommu`: an emulated group is only recorded; a hardware group joins
 * the domain (allocated by the first one).
 */
export function type1AttachGroupEvents(k: Kernel, c: VfioContainer, iommu: Type1Iommu, group: number, domainId: number | undefined): DomainEvent[] | Failure | { unmodelled: string } {
  const fn = 'vfio_iommu_type1.c vfio_iommu_type1_attach_group';
  const devs = groupDevices(k, group);
  const dev = devs[0];
  const invalid = vaddrInvalidCount(iommu);
  if (invalid > 0) return { errno: 'EBUSY', why: `${fn}: ${invalid} vfio_dma(s) have an invalid vaddr (UNMAP_DMA VADDR without the MAP_DMA VADDR that follows)` };
  if (dev === undefined) return { errno: 'ENODEV', why: `${fn}: group ${group} has no device in the trace header` };
  if (iommu.domainGroups.includes(group) || iommu.emulatedGroups.includes(group)) return { errno: 'EINVAL', why: `${fn}: group ${group} is already attached` };
  // An emulated group cannot DMA by itself: recorded with pinned-page dirty scope, no domain.
  if (isEmulatedGroup(k, group)) return [{ type: 'Type1EmulatedGroupAdded', container: c.id, group }];
  if (iommu.domain === undefined && !iommu.dmas.isEmpty)
    return { unmodelled: `${fn}: vfio_iommu_replay of the vfio_dmas an emulated-only container mapped unpinned (pinning them for the new hardware domain)` };
  const { list, pgsize } = iovaListOf(k, [...iommu.domainGroups, group]);
  for (const n of iommu.dmas.inOrder())
    if (!inList(list, n.start, n.last)) return { errno: 'EINVAL', why: `${fn}: the existing dma [${hex(n.start)}, ${hex(n.last)}] falls outside group ${group}'s aperture or into one of its reserved regions (vfio_iommu_aper_conflict / vfio_iommu_resv_conflict)` };
  if (list.length === 0) return { errno: 'EINVAL', why: `${fn}: no usable IOVA is left once group ${group}'s reserved regions are cut out` };
  if (!devs.every((d) => d.iommu.msi_isolated)) return { errno: 'EPERM', why: `${fn}: group ${group}'s IOMMU has no MSI isolation (interrupt remapping) and allow_unsafe_interrupts is off` };
  const events: DomainEvent[] = [];
  let domain = iommu.domain;
  if (domain === undefined) {
    domain = domainId ?? k.st.nextDomain;
    events.push({
      type: 'DomainAllocated', domain, kind: 'paging', driver: 'platform', pgsizeBitmap: dev.iommu.pgsize_bitmap,
      apertureStart: dev.iommu.aperture.start, apertureLast: dev.iommu.aperture.last, dirtyOps: false, ctx: 0, hwpt: 0,
    });
  }
  events.push({ type: 'Type1DomainAttached', container: c.id, group, domain, iovaList: list, pgsizeBitmap: pgsize });
  return events;
}

/**
 * `vfio_iommu_type1_detach_group`. The last group of the domain frees it: with no emulated group left every dma goes
 * (`vfio_iommu_unmap_unpin_all`), else each is unmapped and re-charged to its external pins
 * (`vfio_iommu_unmap_unpin_reaccount`). The last emulated group of a container without a domain takes every dma.
 */
export function type1DetachGroupEvents(k: Kernel, st: State, c: VfioContainer, iommu: Type1Iommu, group: number): DomainEvent[] {
  const draft = unpinDraft(st);
  const events: DomainEvent[] = [];
  // One push per dma: a container may hold 65535 of them, too many events for one spread.
  const removeAll = (): void => { for (const n of iommu.dmas.inOrder()) events.push(...vfio_remove_dma(st, c.id, iommu.domain, n.value, draft)); };
  if (iommu.emulatedGroups.includes(group)) {
    if (iommu.emulatedGroups.length === 1 && iommu.domain === undefined) removeAll();
    events.push({ type: 'Type1EmulatedGroupRemoved', container: c.id, group });
    return events;
  }
  if (!iommu.domainGroups.includes(group)) return [];
  const rest = iommu.domainGroups.filter((g) => g !== group);
  if (rest.length === 0) {
    if (iommu.emulatedGroups.length === 0) removeAll();
    else for (const n of iommu.dmas.inOrder()) events.push(...reaccountDma(st, c.id, iommu.domain!, n.value, draft));
  }
  const { list, pgsize } = iovaListOf(k, rest);
  events.push({ type: 'Type1DomainDetached', container: c.id, group, iovaList: list, pgsizeBitmap: pgsize });
  if (rest.length === 0 && iommu.domain !== undefined) events.push({ type: 'DomainFreed', domain: iommu.domain });
  return events;
}

/** `vfio_group_detach_container`: detach from the driver, leave the list; the last group releases the driver. */
export function vfioGroupDetachContainerEvents(k: Kernel, c: VfioContainer, group: number): DomainEvent[] {
  const events: DomainEvent[] = c.iommu === undefined ? [] : type1DetachGroupEvents(k, k.st, c, c.iommu, group);
  events.push({ type: 'VfioContainerGroupRemoved', container: c.id, group });
  if (c.iommu !== undefined && c.groups.length === 1) events.push({ type: 'Type1IommuReleased', container: c.id });
  return events;
}

/** Device fds of `group` that are open (each holds `container_users`). */
const groupDeviceFds = (k: Kernel, group: number): number =>
  [...k.st.fds.values()].filter((f) => f.kind === 'vfio_device' && groupDevices(k, group).some((d) => d.path === f.path)).length;

/**
 * The group ioctls when the other end is a legacy container; undefined when the group has none and the command
 * is not a SET_CONTAINER naming one (the iommufd-backed model answers those).
 */
export function vfioGroupType1Ioctl(k: Kernel, group: number, op: 'status' | 'set' | 'unset' | 'device', input: IoctlInput, want: bigint | undefined): Step | undefined {
  const c = containerOf(k.st.containers, group);
  if (op === 'set') {
    const fn = 'group.c vfio_group_ioctl_set_container';
    const f = input.k === 'int' ? k.st.fds.get(Number(input.v)) : undefined;
    if (f?.kind !== 'vfio_container') return undefined;
    if (c !== undefined || k.st.vfioGroups.has(group)) return fail('EINVAL', `${fn}: group ${group} already has a container`);
    const target = k.st.containers.get(f.container)!;
    const events: DomainEvent[] = [{ type: 'VfioContainerGroupAdded', container: target.id, group }];
    if (target.iommu !== undefined) {
      const r = type1AttachGroupEvents(k, target, target.iommu, group, undefined);
      if ('unmodelled' in r) return unmodelled(r.unmodelled);
      if ('errno' in r) return fail(r.errno, `container.c vfio_container_attach_group: ${r.why}`);
      events.push(...r);
    }
    return succeed(`${fn}: container.c vfio_container_attach_group: group ${group} joins container ${target.id}${target.iommu ? ' and is attached to its type1 IOMMU at once' : ''}`, undefined, events);
  }
  if (c === undefined) return undefined;
  if (op === 'status') {
    // The copy_from_user and argsz checks come first and are the same on either backend (vfio_group.ts).
    if (input.k !== 'struct' || input.a.size < 8) return undefined;
    return succeed(`group.c vfio_group_ioctl_get_status: group ${group} is in container ${c.id}: VIABLE|CONTAINER_SET`, respond(input.a, { flags: 3n }));
  }
  if (op === 'unset') {
    const fn = 'group.c vfio_group_ioctl_unset_container';
    if (groupDeviceFds(k, group) > 0) return fail('EBUSY', `${fn}: device fds of group ${group} are open (container_users != 1)`);
    const last = c.groups.length === 1;
    return succeed(`${fn}: container.c vfio_group_detach_container: group ${group} leaves container ${c.id}${last && c.iommu ? '; it was the last group: vfio_iommu_type1_release removes every mapping and the container has no driver again' : ''}`,
      undefined, vfioGroupDetachContainerEvents(k, c, group));
  }
  const fn = 'group.c vfio_group_ioctl_get_device_fd';
  if (input.k !== 'string') return undefined;
  const dev = groupDevices(k, group).find((d) => d.name === input.v.split(' ')[0]);
  if (dev === undefined) return fail('ENODEV', `${fn}: no device named ${JSON.stringify(input.v)} in group ${group}`);
  if (c.iommu === undefined) return fail('EINVAL', `group.c vfio_df_group_open → vfio_group_use_container: container ${c.id} has no IOMMU driver (SET_IOMMU was not done)`);
  const fd = pickFd(k.st, want);
  return succeed(`${fn}: ${dev.name} opened as fd ${fd} on container ${c.id}`, undefined, [{ type: 'FdInstalled', fd, file: { kind: 'vfio_device', path: dev.path } }], BigInt(fd));
}

/**
 * `vfio_group_fops_release` of a group on a legacy container once `closing` goes, undefined if it is on none.
 * Each device fd holds the group file, so the release (and the detach) waits for the last of the group fd and
 * its device fds.
 */
export function vfioGroupType1CloseEvents(k: Kernel, group: number, closing: number): DomainEvent[] | undefined {
  const c = containerOf(k.st.containers, group);
  if (c === undefined) return undefined;
  const holders = [...k.st.fds].filter(([fd, f]) => fd !== closing &&
    ((f.kind === 'vfio_group' && f.group === group) || (f.kind === 'vfio_device' && groupDevices(k, group).some((d) => d.path === f.path))));
  return holders.length > 0 ? [] : vfioGroupDetachContainerEvents(k, c, group);
}
