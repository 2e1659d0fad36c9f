/**
 * The process side of a trace: its file descriptor table and the syscalls that reach the IOMMU API or build the
 * user memory it maps (fs/open.c, fs/file.c, mm/mmap.c, mm/memfd.c), and `iommufd_fops_open`/`_release`
 * (main.c). Opening /dev/iommu makes a new iommufd context with its own object ID space; the last close of it
 * destroys every object it still holds, leaves first (objects.ts `releaseOrder`).
 */
import type { DomainEvent, FileRef } from '../events/domain.js';
import { FLAG_SETS } from '../events/flags.js';
import { U64_MAX } from '../events/values.js';
import { chooseMmapAddress, ftruncateEvents, isMmFault, madviseEvents, memRead, memWriteEvents, mmapEvents, munmapEvents } from '../hw/mm.js';
import { cloneState, evolve, type State } from '../projections/state.js';
import { fail, succeed, unmodelled, type Kernel, type Step } from './ioctl.js';
import { releaseEvents } from './destroy.js';
import { accessReleaseEvents } from './access.js';
import { vfioDeviceCloseEvents } from './vfio_device.js';
import { vfioGroupCloseEvents } from './vfio_group.js';
import { cookieVmaEvents, cookieVmaUnmapEvents, iommufd_fops_mmap } from '../hw/mmap_cookie.js';
import { eventqCloseEvents } from './eventq.js';
import { vfioGroupType1CloseEvents } from './vfio_type1_group.js';
import { deviceReleaseEvents, vfio_pci_core_mmap } from './vfio_pci_bar.js';
import { mdevCloseEvents } from './vfio_type1_mdev.js';

const M = FLAG_SETS.mmap;
const FD_MIN = 3;

/** The fd `open` would return: the trace's observed one when it is free, else the lowest free fd (fs/file.c). */
export function pickFd(st: State, want: bigint | undefined): number {
  if (want !== undefined && want >= 0n && want <= 0x7fff_ffffn && !st.fds.has(Number(want))) return Number(want);
  let fd = FD_MIN;
  while (st.fds.has(fd)) fd++;
  return fd;
}


export function sys_open(k: Kernel, path: string, want: bigint | undefined): Step {
  const fd = pickFd(k.st, want);
  if (path === '/dev/iommu' || (path === '/dev/vfio/vfio' && k.header.vfio_container === 'iommufd')) {
    const ctx = k.st.nextCtx;
    const compat = path === '/dev/vfio/vfio';
    return succeed(`main.c iommufd_fops_open: new iommufd context ${ctx}${compat ? ' (VFIO container personality, account_mode MM)' : ''}`,
      undefined, [
        { type: 'IommufdOpened', ctx, accountMode: compat ? 1 : 0, compat },
        { type: 'FdInstalled', fd, file: { kind: 'iommufd', ctx } },
      ], BigInt(fd));
  }
  if (path === '/dev/vfio/vfio') {
    const container = k.st.nextContainer;
    return succeed(`container.c vfio_fops_open: new legacy container ${container} (no group, no IOMMU driver)`, undefined, [
      { type: 'VfioContainerOpened', container },
      { type: 'FdInstalled', fd, file: { kind: 'vfio_container', container } },
    ], BigInt(fd));
  }
  if (path.startsWith('/dev/vfio/devices/')) {
    if (k.header.devices.find((d) => d.path === path) === undefined)
      return fail('ENOENT', `open ${path}: the trace header declares no such VFIO device`);
    return succeed(`vfio_main.c vfio_device_fops_cdev_open: ${path}`, undefined, [{ type: 'FdInstalled', fd, file: { kind: 'vfio_device', path } }], BigInt(fd));
  }
  const g = /^\/dev\/vfio\/([0-9]+)$/.exec(path);
  if (g !== null) {
    const group = Number(g[1]);
    if (!k.header.devices.some((d) => d.group === group)) return fail('ENOENT', `open ${path}: the trace header declares no device in group ${group}`);
    for (const f of k.st.fds.values()) if (f.kind === 'vfio_group' && f.group === group) return fail('EBUSY', `group.c vfio_group_fops_open: group ${group} is already open`);
    return succeed(`group.c vfio_group_fops_open: group ${group}`, undefined, [{ type: 'FdInstalled', fd, file: { kind: 'vfio_group', group } }], BigInt(fd));
  }
  if (path.startsWith('/dev/vfio/')) return unmodelled(`open of ${path} (the legacy type1 container and its groups)`);
  return succeed(`open ${path}: not an IOMMU file; modelled as an ordinary file`, undefined,
    [{ type: 'FdInstalled', fd, file: { kind: 'other', path } }], BigInt(fd));
}

/**
 * `iommufd_fops_release`, once the context's last file reference is gone: decided against the state as `before`
 * leaves it (the access or fd teardown that dropped the reference happens first).
 */
function releaseAfter(st: State, ctxId: number, before: readonly DomainEvent[]): DomainEvent[] | { leaked: number[] } {
  const scratch = cloneState(st);
  for (const e of before) evolve(scratch, e);
  const { events, leaked } = releaseEvents(scratch, ctxId);
  if (leaked.length > 0) return { leaked };
  return [...events, { type: 'IommufdReleased', ctx: ctxId }];
}

export function sys_close(k: Kernel, fd: number): Step {
  const f = k.st.fds.get(fd);
  if (f === undefined) return fail('EBADF', `close: fd ${fd} is not open`);
  const events: DomainEvent[] = [{ type: 'FdClosed', fd }];
  const bind = f.kind === 'vfio_device' ? k.st.vfioBinds.get(fd) : undefined;
  if (f.kind === 'vfio_group') {
    const t1 = vfioGroupType1CloseEvents(k, f.group, fd);
    if (t1 !== undefined) return succeed(`group.c vfio_group_fops_release: group ${f.group}${t1.length ? ' leaves its legacy container' : ': its device fds still hold the group file'}`, undefined, [...events, ...t1]);
    const ev = vfioGroupCloseEvents(k, f.group);
    const ctxId = k.st.vfioGroups.get(f.group);
    if (ctxId === undefined || k.st.ctxs.get(ctxId)!.fileRefs > 1) return succeed(`group.c vfio_group_fops_release: group ${f.group}`, undefined, [...events, ...ev]);
    const rel = releaseAfter(k.st, ctxId, [...events, ...ev]);
    if ('leaked' in rel) return unmodelled(`release of an iommufd whose objects ${rel.leaked.join(', ')} are still referenced`);
    return succeed(`group.c vfio_group_fops_release: group ${f.group}; it held the last reference on context ${ctxId}`, undefined, [...events, ...ev, ...rel]);
  }
  if (f.kind === 'vfio_container') return succeed(`container.c vfio_fops_release: container ${f.container} loses its fd; its groups keep it (and its mappings) alive`, undefined, events);
  if (f.kind === 'vfio_device' && bind === undefined) {
    // The device fd held its group's file: the group may now be released (and leave its legacy container).
    const group = k.header.devices.find((d) => d.path === f.path)?.group;
    const g = group === undefined ? undefined : vfioGroupType1CloseEvents(k, group, fd);
    // An mdev driver's close_device unpins what it still holds (vfio_type1_mdev.ts).
    const mdev = mdevCloseEvents(k, f.path, fd);
    return succeed(`close of VFIO device fd ${fd}${mdev.length ? '; its mdev driver unpins what it still holds' : ''}${g?.length ? `; group ${group} is released and leaves its legacy container` : ''}`, undefined, [...events, ...mdev, ...deviceReleaseEvents(k, f.path, { fd }), ...(g ?? [])]);
  }
  if (f.kind !== 'access' && f.kind !== 'iommufd' && f.kind !== 'eventq' && bind === undefined) return succeed(`close fd ${fd}`, undefined, events);
  const ctx = k.st.ctxs.get(f.kind === 'access' || f.kind === 'iommufd' || f.kind === 'eventq' ? f.ctx : bind!.ctx)!;
  let what: string;
  if (f.kind === 'eventq') {
    what = `eventq.c iommufd_eventq_fops_release: event queue ${f.id} loses its file`;
    events.push(...eventqCloseEvents(k.st, ctx, f.id));
  } else if (f.kind === 'access') {
    what = `selftest.c iommufd_test_staccess_release: access ${f.access} destroyed`;
    events.push(...accessReleaseEvents(k.st, ctx, ctx.objects.get(f.access)!));
  } else if (f.kind === 'iommufd') {
    what = `close of iommufd context ${ctx.id}`;
    events.push({ type: 'CtxRefDropped', ctx: ctx.id });
  } else {
    what = `vfio close of a bound device: detached and unbound (device ${bind!.idev})`;
    events.push(...vfioDeviceCloseEvents(k, fd));
  }
  if (ctx.fileRefs > 1)
    return succeed(`${what}; ${ctx.fileRefs - 1} other reference(s) keep context ${ctx.id} open`, undefined, events);
  const rel = releaseAfter(k.st, ctx.id, events);
  if ('leaked' in rel) return unmodelled(`release of an iommufd whose objects ${rel.leaked.join(', ')} are still referenced`);
  const order = rel.flatMap((e) => (e.type === 'ObjectDestroyed' ? [e.id] : []));
  return succeed(`${what}; main.c iommufd_fops_release: context ${ctx.id} freed${order.length ? `, destroying ${order.join(', ')}` : ''}`, undefined, [...events, ...rel]);
}

export interface MmapArgs {
  readonly addr: bigint; readonly length: bigint; readonly prot: bigint; readonly flags: bigint; readonly fd: bigint; readonly offset: bigint;
}

/** `do_mmap` checks in order, then the VMA. The address is the trace's observed one when given. */
export function sys_mmap(k: Kernel, a: MmapArgs, want: bigint | undefined): Step {
  const page = BigInt(k.st.pageSize);
  const type = Number(a.flags & 3n);
  if (a.length === 0n) return fail('EINVAL', 'mm/mmap.c do_mmap: length 0');
  const len = (a.length + page - 1n) & ~(page - 1n);
  if (len > U64_MAX) return fail('ENOMEM', 'mm/mmap.c do_mmap: length overflows when page aligned');
  if (a.offset % page !== 0n) return fail('EINVAL', 'mm/mmap.c: offset is not page aligned');
  if (type === 0) return fail('EINVAL', 'mm/mmap.c: flags have neither MAP_SHARED nor MAP_PRIVATE');
  const fixed = (a.flags & BigInt(M.MAP_FIXED | M.MAP_FIXED_NOREPLACE)) !== 0n;
  if (fixed && a.addr % page !== 0n) return fail('EINVAL', 'mm/mmap.c: MAP_FIXED address is not page aligned');
  let memfd: number | undefined, fileOffset = a.offset;
  let vmaOpen: ((start: bigint) => DomainEvent[]) | undefined;
  let pfnmap: string | undefined;
  if ((a.flags & BigInt(M.MAP_ANONYMOUS)) === 0n) {
    const f: FileRef | undefined = a.fd < 0n ? undefined : k.st.fds.get(Number(a.fd));
    if (f === undefined) return fail('EBADF', `mm/mmap.c: fd ${a.fd} is not open and MAP_ANONYMOUS is not set`);
    if (f.kind === 'iommufd') {
      const ctx = k.st.ctxs.get(f.ctx)!;
      const r = iommufd_fops_mmap(ctx, a.flags, a.prot, a.offset, len);
      if ('errno' in r) return fail(r.errno, r.why);
      // io_remap_pfn_range of the cookie's pages; vm_pgoff is reset to 0.
      memfd = r.cookie.memfd;
      fileOffset = 0n;
      vmaOpen = (start) => cookieVmaEvents(ctx, r.cookie, start, len);
    } else if (f.kind === 'memfd') memfd = f.memfd;
    else if (f.kind === 'vfio_device') {
      const bad = vfio_pci_core_mmap(k, Number(a.fd), f.path, a.offset, len, a.flags);
      if (bad !== undefined) return bad;
      pfnmap = f.path;
    } else if (f.kind !== 'other') return unmodelled(`mmap of a ${f.kind} file`);
  }
  const addr = fixed ? a.addr : want !== undefined && want % page === 0n ? want : chooseMmapAddress(k.st.mm, len, k.st.pageSize);
  if (addr === undefined) return fail('ENOMEM', 'mm/mmap.c get_unmapped_area: no gap fits');
  if (addr + len - 1n > U64_MAX) return fail('ENOMEM', 'mm/mmap.c: mapping would pass the end of the address space');
  // Whatever the new mapping replaces is unmapped first: invalidated, zapped, freed (hw/mm_unmap.ts).
  const events: DomainEvent[] = mmapEvents(k.st.mm, k.st.memory, k.st.pageSize, { start: addr, length: len, prot: Number(a.prot), flags: Number(a.flags), memfd, offset: fileOffset, ...(pfnmap === undefined ? {} : { pfnmap }) });
  if (vmaOpen !== undefined) events.push(...vmaOpen(addr));
  return succeed(`mmap [0x${addr.toString(16)}, 0x${(addr + len - 1n).toString(16)}]`, undefined, events, addr);
}

export function sys_munmap(k: Kernel, addr: bigint, length: bigint): Step {
  const page = BigInt(k.st.pageSize);
  if (addr % page !== 0n) return fail('EINVAL', 'mm/mmap.c do_vmi_munmap: address is not page aligned');
  if (length === 0n) return fail('EINVAL', 'mm/mmap.c do_vmi_munmap: length 0');
  const len = (length + page - 1n) & ~(page - 1n);
  if (addr + len - 1n > U64_MAX) return fail('EINVAL', 'mm/mmap.c do_vmi_munmap: range passes the end of the address space');
  const cookies = cookieVmaUnmapEvents(k.st, addr, addr + len - 1n);
  if (cookies.lastRef !== undefined) return unmodelled(`munmap of the last reference on iommufd context ${cookies.lastRef} (release from munmap)`);
  // A BAR VMA holds its device file: the last one going may release the device.
  const devs = new Set(k.st.mm.vmas.filter((v) => v.pfnmap !== undefined && v.start >= addr && v.last <= addr + len - 1n).map((v) => v.pfnmap!));
  const released = [...devs].flatMap((p) => deviceReleaseEvents(k, p, { start: addr, last: addr + len - 1n }));
  return succeed(`munmap [0x${addr.toString(16)}, 0x${(addr + len - 1n).toString(16)}]`, undefined, [...munmapEvents(k.st.mm, k.st.memory, k.st.pageSize, addr, len), ...cookies.events, ...released]);
}

/** mm/madvise.c do_madvise: argument checks, then the advice VMA by VMA (hw/mm_unmap.ts madviseEvents). */
export function sys_madvise(k: Kernel, addr: bigint, length: bigint, advice: bigint): Step {
  const r = madviseEvents(k.st.mm, k.st.memory, k.st.pageSize, addr, length, Number(advice));
  return isMmFault(r) ? fail(r.errno, r.why, r.events) : succeed(r.why, undefined, r.events);
}

/** A CPU store into user memory: faults in what is missing; a fault part way keeps the bytes before it. */
export function sys_mem_write(k: Kernel, addr: bigint, data: Uint8Array): Step {
  const r = memWriteEvents(k.st.mm, k.st.memory, k.st.pageSize, addr, data);
  return isMmFault(r) ? fail(r.errno, r.why, r.events) : succeed(r.why, undefined, r.events);
}

/** A CPU load from user memory; the bytes are `out.data`. */
export function sys_mem_read(k: Kernel, addr: bigint, length: bigint): Step {
  if (length > 0x7fff_ffffn) return unmodelled(`mem_read of ${length} bytes`);
  const r = memRead(k.st.mm, k.st.memory, k.st.pageSize, addr, Number(length));
  return isMmFault(r) ? fail(r.errno, r.why) : succeed(`read ${length} byte(s) at 0x${addr.toString(16)}`, { data: r });
}

export function sys_memfd_create(k: Kernel, name: string, flags: bigint, want: bigint | undefined): Step {
  if (Buffer.byteLength(name) > 249) return fail('EINVAL', 'mm/memfd.c memfd_create: name longer than 249 bytes');
  if ((flags & ~0x1fn) !== 0n) return fail('EINVAL', 'mm/memfd.c memfd_create: unknown flags');
  const fd = pickFd(k.st, want);
  const memfd = k.st.nextMemfd;
  return succeed(`memfd_create ${JSON.stringify(name)}`, undefined, [
    { type: 'MemfdCreated', memfd, name },
    { type: 'FdInstalled', fd, file: { kind: 'memfd', memfd } },
  ], BigInt(fd));
}

export function sys_ftruncate(k: Kernel, fd: number, length: bigint): Step {
  const f = k.st.fds.get(fd);
  if (f === undefined) return fail('EBADF', `ftruncate: fd ${fd} is not open`);
  if (f.kind !== 'memfd') return fail('EINVAL', 'ftruncate: not a regular file');
  if (length > 0x7fff_ffff_ffff_ffffn) return fail('EINVAL', 'ftruncate: length above LLONG_MAX');
  return succeed(`memfd ${f.memfd} is now ${length} bytes`, undefined, ftruncateEvents(k.st.mm, k.st.pageSize, f.memfd, length));
}

export const notModelledOp = (what: string): Step => unmodelled(what);
