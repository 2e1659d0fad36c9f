/**
 * The VFIO device cdev (drivers/vfio/device_cdev.c, drivers/vfio/iommufd.c, vfio_main.c): a device opened as
 * `/dev/vfio/devices/vfioN` binds to an iommufd (VFIO_DEVICE_BIND_IOMMUFD → `iommufd_device_bind`), attaches to an
 * IOAS or HWPT (VFIO_DEVICE_ATTACH_IOMMUFD_PT, auto domains as in device.c) and is unbound when its fd closes.
 *
 * Until the bind succeeds every other ioctl on the fd is EINVAL (`vfio_df_device_access_granted`). A bound device
 * holds a reference on the iommufd's file, so closing the iommufd does not release the context. VFIO_DEVICE_RESET
 * and VFIO_DEVICE_FEATURE (its DMA_BUF export, vfio_pci_dmabuf.ts) are served for cdev and group fds alike.
 */
import type { DomainEvent } from '../events/domain.js';
import type { HeaderDevice } from '../events/header.js';
import { COMMAND_BY_NAME, commandFor } from '../events/uapi.js';
import { isFailure, type Failure } from '../hw/iopt_ops.js';
import { fail, respond, succeed, u32, unmodelled, type Call, type Kernel, type Step } from './ioctl.js';
import { attachPt, detachEvents, IOMMU_NO_PASID, replacePt, unbindEvents } from './device.js';
import type { IoctlInput } from './main.js';
import { deviceReleaseEvents, vfio_pci_ioctl_reset } from './vfio_pci_bar.js';
import { vfio_ioctl_device_feature } from './vfio_pci_dmabuf.js';
import type { IommufdCtx, KObject } from '../projections/state.js';
import { kernelAtLeast } from './version.js';

const V = (n: string): number => COMMAND_BY_NAME.get(n)!.value;
const RESET = V('VFIO_DEVICE_RESET'), FEATURE = V('VFIO_DEVICE_FEATURE');
const BIND = V('VFIO_DEVICE_BIND_IOMMUFD'), ATTACH = V('VFIO_DEVICE_ATTACH_IOMMUFD_PT'), DETACH = V('VFIO_DEVICE_DETACH_IOMMUFD_PT');
const VFIO_DEVICE_BIND_FLAG_TOKEN = 1, VFIO_DEVICE_ATTACH_PASID = 1;

export const headerDevice = (k: Kernel, path: string): HeaderDevice | undefined => k.header.devices.find((d) => d.path === path);

const log2 = (n: number): number => (n <= 1 ? 0 : Math.floor(Math.log2(n)));

/** `vfio_df_ioctl_bind_iommufd` → `vfio_df_open` → `iommufd_device_bind`. */
function bind(k: Kernel, fd: number, dev: HeaderDevice, input: IoctlInput): Step {
  const fn = 'device_cdev.c vfio_df_ioctl_bind_iommufd';
  if (input.k !== 'struct') return input.k === 'null' ? fail('EFAULT', `${fn}: get_user(argsz) from a NULL arg`) : unmodelled('VFIO_DEVICE_BIND_IOMMUFD with a non-struct argument');
  const a = input.a;
  if (a.size < 16) return fail('EINVAL', `${fn}: argsz ${a.size} < 16`);
  if (a.size > a.def.size && a.tail !== undefined && a.tail.some((b) => b !== 0)) return fail('E2BIG', `${fn}: copy_struct_from_user: non-zero bytes past the struct`);
  const flags = u32(a, 'flags');
  const iommufd = Number(BigInt.asIntN(32, BigInt(u32(a, 'iommufd'))));
  const allowed = kernelAtLeast(k.header, 6, 17) ? VFIO_DEVICE_BIND_FLAG_TOKEN : 0;
  if (iommufd < 0 || (flags & ~allowed) !== 0) return fail('EINVAL', `${fn}: iommufd ${iommufd} < 0 or flags 0x${flags.toString(16)} unknown`);
  if (k.st.vfioBinds.has(fd)) return fail('EINVAL', `${fn}: the device fd is already bound`);
  if ((flags & VFIO_DEVICE_BIND_FLAG_TOKEN) !== 0) return unmodelled('VF tokens (VFIO_DEVICE_BIND_FLAG_TOKEN)');
  const f = k.st.fds.get(iommufd);
  if (f === undefined) return fail('EBADF', `${fn}: iommufd_ctx_from_fd(${iommufd}): fd is not open`);
  if (f.kind !== 'iommufd') return fail('EBADFD', `${fn}: iommufd_ctx_from_fd(${iommufd}): not an iommufd`);
  for (const [ofd] of k.st.fds) {
    const b = k.st.vfioBinds.get(ofd);
    const of = k.st.fds.get(ofd);
    if (b !== undefined && of?.kind === 'vfio_device' && of.path === dev.path)
      return fail('EINVAL', `vfio_main.c vfio_df_open: ${dev.path} is already open through fd ${ofd}`);
  }
  const b = bindEvents(k, fd, dev, k.st.ctxs.get(f.ctx)!);
  if (isFailure(b)) return fail(b.errno, b.why);
  return succeed(`${fn}: ${dev.name} bound to context ${f.ctx} as device ${b.idev}`, respond(a, { out_devid: BigInt(b.idev) }), b.events);
}

/** `iommufd_device_bind` of a platform device for fd `fd`: the DEVICE object, its references, the binding. */
export function bindEvents(k: Kernel, fd: number, dev: HeaderDevice, ctx: IommufdCtx): { events: DomainEvent[]; idev: number } | Failure {
  if (!dev.iommu.msi_isolated) return { errno: 'EPERM', why: `device.c iommufd_device_bind: ${dev.name}'s IOMMU group lacks MSI isolation (interrupt remapping)` };
  const group = `vfio:${dev.group ?? dev.path}`;
  for (const [cid, c] of k.st.ctxs) {
    if (cid === ctx.id) continue;
    for (const o of c.objects.values())
      if (o.idev?.group === group) return { errno: 'EPERM', why: `iommu.c iommu_device_claim_dma_owner: IOMMU group ${dev.group} is owned by another iommufd (context ${cid})` };
  }
  const id = ctx.ids.lowestFree();
  if (id === undefined) return { errno: 'EBUSY', why: 'main.c _iommufd_object_alloc: no free id' };
  const c = ctx.id;
  const events: DomainEvent[] = [
    { type: 'ObjectAllocated', ctx: c, id, kind: 'DEVICE' },
    {
      type: 'DeviceBound', ctx: c, id, dev: dev.path, group, mock: false, dirtyCapable: dev.iommu.dirty_tracking, pasidBits: log2(dev.iommu.max_pasids),
      pgsizeBitmap: dev.iommu.pgsize_bitmap, apertureStart: dev.iommu.aperture.start, apertureLast: dev.iommu.aperture.last,
      resv: dev.iommu.reserved.filter((r) => r.type !== 'direct_relaxable').map((r) => ({ start: r.start, last: r.last })),
    },
    { type: 'ObjectRefTaken', ctx: c, id, by: 0 },
    { type: 'ObjectFinalized', ctx: c, id },
    { type: 'CtxRefTaken', ctx: c },
    { type: 'VfioDeviceBound', fd, ctx: c, idev: id },
  ];
  return { events, idev: id };
}

function bound(k: Kernel, fd: number): { ctx: IommufdCtx; idev: KObject } | undefined {
  const b = k.st.vfioBinds.get(fd);
  if (b === undefined) return undefined;
  const ctx = k.st.ctxs.get(b.ctx)!;
  return { ctx, idev: ctx.objects.get(b.idev)! };
}

/** `vfio_df_ioctl_attach_pt`: attach (or replace) at NO_PASID or a PASID; pt_id comes back as the HWPT used. */
function attach(k: Kernel, fd: number, input: IoctlInput): Step {
  const fn = 'device_cdev.c vfio_df_ioctl_attach_pt';
  if (input.k !== 'struct') return fail('EFAULT', `${fn}: NULL arg`);
  const a = input.a;
  if (a.size < 12) return fail('EINVAL', `${fn}: argsz ${a.size} < 12`);
  const flags = u32(a, 'flags');
  if ((flags & ~VFIO_DEVICE_ATTACH_PASID) !== 0) return fail('EINVAL', `${fn}: flags 0x${flags.toString(16)} outside VFIO_DEVICE_ATTACH_PASID`);
  if ((flags & VFIO_DEVICE_ATTACH_PASID) !== 0 && a.size < 16) return fail('EINVAL', `${fn}: argsz ${a.size} too short for pasid`);
  const pasid = (flags & VFIO_DEVICE_ATTACH_PASID) !== 0 ? u32(a, 'pasid') : IOMMU_NO_PASID;
  const b = bound(k, fd)!;
  const c: Call = { k, ctx: b.ctx };
  const ptId = u32(a, 'pt_id');
  const already = b.idev.idev!.attached.has(pasid);
  const r = already ? replacePt(k.st, k.header, b.ctx, b.idev, pasid, ptId, b.ctx.ids.clone()) : attachPt(k.st, k.header, b.ctx, b.idev, pasid, ptId, b.ctx.ids.clone());
  if ('unmodelled' in r) return unmodelled(r.unmodelled);
  if (isFailure(r)) return fail(r.errno, r.why);
  void c;
  return succeed(`${fn}: device ${b.idev.id} ${already ? 'moved' : 'attached'} to HWPT ${r.hwpt}${pasid ? ` at pasid ${pasid}` : ''}`, respond(a, { pt_id: BigInt(r.hwpt) }), r.events);
}

/** `vfio_df_ioctl_detach_pt`: always 0, a no-op when nothing is attached. */
function detach(k: Kernel, fd: number, input: IoctlInput): Step {
  const fn = 'device_cdev.c vfio_df_ioctl_detach_pt';
  if (input.k !== 'struct') return fail('EFAULT', `${fn}: NULL arg`);
  const a = input.a;
  if (a.size < 8) return fail('EINVAL', `${fn}: argsz ${a.size} < 8`);
  const flags = u32(a, 'flags');
  if ((flags & ~1) !== 0) return fail('EINVAL', `${fn}: flags 0x${flags.toString(16)} outside VFIO_DEVICE_DETACH_PASID`);
  if ((flags & 1) !== 0 && a.size < 12) return fail('EINVAL', `${fn}: argsz ${a.size} too short for pasid`);
  const pasid = (flags & 1) !== 0 ? u32(a, 'pasid') : IOMMU_NO_PASID;
  const b = bound(k, fd)!;
  return succeed(`${fn}: detached`, undefined, detachEvents(k.st, b.ctx, b.idev, pasid));
}

/** `vfio_device_fops_unl_ioctl` on a cdev fd; `want` is the fd the trace saw an fd-returning ioctl return. */
export function vfio_device_ioctl(k: Kernel, fd: number, path: string, cmd: number, input: IoctlInput, want?: bigint): Step {
  const dev = headerDevice(k, path);
  if (dev === undefined) return unmodelled(`VFIO device ${path}, which the trace header does not declare`);
  const def = commandFor(cmd, 'vfio_device');
  if (cmd === BIND) return bind(k, fd, dev, input);
  const granted = k.st.vfioBinds.has(fd) || k.header.vfio_container === 'type1';
  if (cmd === RESET && granted) return vfio_pci_ioctl_reset(k, path);
  if (cmd === FEATURE && granted) return vfio_ioctl_device_feature(k, path, input, want);
  if (!k.st.vfioBinds.has(fd) && granted) return unmodelled(`${def?.name ?? `0x${cmd.toString(16)}`} on a device fd opened through a legacy container's group`);
  if (!k.st.vfioBinds.has(fd)) return fail('EINVAL', `vfio_main.c vfio_device_fops_unl_ioctl: the device fd is not bound to an iommufd yet`);
  if (cmd === ATTACH) return attach(k, fd, input);
  if (cmd === DETACH) return detach(k, fd, input);
  if (def === undefined) return fail('ENOTTY', `vfio-pci: 0x${cmd.toString(16)} is not a VFIO device ioctl`);
  return unmodelled(`${def.name} (VFIO device regions, IRQs and features)`);
}

/**
 * Closing a bound device fd: the device's last close (`vfio_pci_core_close_device`, when no other fd or BAR VMA
 * holds it: its dma-bufs are revoked for good), every attachment goes, then `iommufd_device_unbind`, then the
 * context reference.
 */
export function vfioDeviceCloseEvents(k: Kernel, fd: number): DomainEvent[] {
  const b = bound(k, fd);
  if (b === undefined) return [];
  const f = k.st.fds.get(fd);
  const released = f?.kind === 'vfio_device' ? deviceReleaseEvents(k, f.path, { fd }) : [];
  const pasids = [...b.idev.idev!.attached.keys()].sort((x, y) => (x === 0 ? 1 : y === 0 ? -1 : x - y));
  const events: DomainEvent[] = [...released];
  for (const p of pasids) events.push(...detachEvents(k.st, b.ctx, b.idev, p));
  return [...events, ...unbindEvents(b.ctx, b.idev), { type: 'VfioDeviceUnbound', fd }, { type: 'CtxRefDropped', ctx: b.ctx.id }];
}
