// QEMU trace events that report an ioctl, and what each becomes in an iotrail trace.
//
// Declarations and format strings are QEMU's own (backends/trace-events, hw/vfio/trace-events; PRIx64 is
// written llx). printf binds arguments by position, not by the label in the text, and QEMU has mislabelled
// formats (alloc_viommu prints dev_id after "type="), so every format lists the declaration-order names of
// the arguments it prints. Older QEMU formats follow the newest; args they lack take `defaults`.

import { errnoName } from '../events/errno.js';
import { ENUMS, FLAG_SETS } from '../events/flags.js';
import { jsonInt } from '../events/values.js';
import { enumJson, errnoFromText, flagsJson, jsonHex } from './values.js';
import type { CType, Json, JsonObject } from './values.js';

export type Outcome =
  | { readonly kind: 'ret'; readonly ret: number }
  | { readonly kind: 'errno'; readonly errno: string }
  | { readonly kind: 'failed'; readonly why: string }
  | { readonly kind: 'unobserved' };

export interface Ioctl {
  readonly fd: number | string;
  readonly cmd: string;
  readonly arg?: Json;
  readonly outcome: Outcome;
  readonly out?: JsonObject;
  readonly note?: string;
  /** What a QEMU error message printed after a failed map/unmap must show to be about this call. */
  readonly match?: { readonly iova: bigint; readonly size: bigint; readonly vaddr?: bigint };
}

/** Memory-listener lines: an ioctl only with the legacy container backend, which is known once the log is read. */
export type ListenerOp =
  | { readonly op: 'map'; readonly iova: bigint; readonly last: bigint; readonly vaddr: bigint }
  | { readonly op: 'unmap'; readonly iova: bigint; readonly last: bigint }
  | { readonly op: 'notify'; readonly what: string; readonly iova: bigint; readonly last: bigint }
  | { readonly op: 'skip-map'; readonly iova: bigint }
  | { readonly op: 'close-container'; readonly fd: bigint };

export type FdReq =
  | { readonly iommufd: bigint }
  | { readonly device: bigint; readonly name?: string }
  | { readonly named: string }
  | { readonly soleDevice: true };

export interface Ctx {
  /** The fds an ioctl needs, opening the missing ones as synthesized events; undefined once the line is reported. */
  fds<const R extends readonly FdReq[]>(req: R): { [K in keyof R]: number } | undefined;
  ioctl(io: Ioctl): void;
  openDevice(path: string, fd: bigint): void;
  closeDevice(fd: bigint): void;
  connect(fd: bigint, owned: boolean, users: bigint): void;
  disconnect(fd: bigint, users: bigint): void;
  preopened(fd: bigint): void;
  listener(op: ListenerOp): void;
  notIoctl(reason: string): void;
  unconvertible(reason: string): void;
}

type Decl = Readonly<Record<string, CType>>;
type ArgsOf<A extends Decl> = { readonly [K in keyof A]: A[K] extends 'str' ? string : bigint };
export type Args = Readonly<Record<string, bigint | string>>;
type Format = readonly [format: string, names?: readonly string[]];

export interface EventDef {
  readonly args: Decl;
  readonly formats: readonly Format[];
  readonly defaults: Readonly<Record<string, bigint>>;
  readonly handle: (a: Args, c: Ctx) => void;
}

function def<const A extends Decl>(
  args: A, formats: readonly Format[], handle: (a: ArgsOf<A>, c: Ctx) => void,
  defaults: Partial<Record<keyof A & string, bigint>> = {},
): EventDef {
  return { args, formats, defaults: defaults as Record<string, bigint>, handle: handle as unknown as EventDef['handle'] };
}

/** An ioctl on the /dev/iommu fd the event prints as `iommufd`. */
function onIommufd<const A extends Decl & { readonly iommufd: 'int' }>(
  args: A, formats: readonly Format[], cmd: string, build: (a: ArgsOf<A>) => Omit<Ioctl, 'fd' | 'cmd'>,
  defaults: Partial<Record<keyof A & string, bigint>> = {},
): EventDef {
  return def(args, formats, (a, c) => {
    const fds = c.fds([{ iommufd: a.iommufd as bigint }]);
    if (fds !== undefined) c.ioctl({ fd: fds[0], cmd, ...build(a) });
  }, defaults);
}

const RET0: Outcome = { kind: 'ret', ret: 0 };

function errnoOutcome(n: bigint): Outcome {
  const name = errnoName(Number(n));
  return name !== undefined ? { kind: 'errno', errno: name } : { kind: 'failed', why: `errno ${n} has no known name` };
}

/** Most backend events print the ioctl's own return: -1 on failure, the errno only in a later message. */
function rawRet(v: bigint): Outcome {
  if (v === 0n) return RET0;
  if (v === -1n) return { kind: 'failed', why: 'the trace shows the raw ioctl return -1, not the errno' };
  return v < 0n ? errnoOutcome(-v) : { kind: 'ret', ret: Number(v) };
}

/** set_dirty, get_dirty_bitmap and invalidate_cache print `ret ? errno : 0` instead. */
function errnoRet(v: bigint): Outcome {
  return v === 0n ? RET0 : errnoOutcome(v < 0n ? -v : v);
}

function textOutcome(text: string): Outcome {
  const errno = errnoFromText(text);
  return errno !== undefined ? { kind: 'errno', errno } : { kind: 'failed', why: `unrecognised error text "${text}"` };
}

const idOut = (ret: bigint, out: JsonObject): { out?: JsonObject } => (ret === 0n ? { out } : {});
const mapFlags = (readonly: bigint): Json => flagsJson(readonly ? 5n : 7n, FLAG_SETS.ioas_map);

const UNMAP = { iommufd: 'int', ioas: 'u32', iova: 'u64', size: 'u64', ret: 'int' } as const;
const unmapArg = (a: ArgsOf<typeof UNMAP>): Json => ({ ioas_id: jsonInt(a.ioas), iova: jsonHex(a.iova), length: jsonHex(a.size) });

export const EVENTS: Readonly<Record<string, EventDef>> = {
  iommufd_backend_connect: def({ fd: 'int', owned: 'bool', users: 'u32' }, [['fd=%d owned=%d users=%d']],
    (a, c) => c.connect(a.fd, a.owned === 1n, a.users)),
  iommufd_backend_disconnect: def({ fd: 'int', users: 'u32' }, [['fd=%d users=%d']], (a, c) => c.disconnect(a.fd, a.users)),
  iommu_backend_set_fd: def({ fd: 'int' }, [['pre-opened /dev/iommu fd=%d']], (a, c) => c.preopened(a.fd)),
  iommufd_change_process: def({ fd: 'int', ret: 'bool' }, [['fd=%d (%d)']], (a, c) => {
    const fds = c.fds([{ iommufd: a.fd }]);
    const outcome: Outcome = a.ret === 1n ? RET0 : { kind: 'failed', why: 'QEMU traces only that the ioctl failed' };
    if (fds !== undefined) c.ioctl({ fd: fds[0], cmd: 'IOMMU_IOAS_CHANGE_PROCESS', arg: {}, outcome });
  }),
  iommufd_backend_map_dma: onIommufd(
    { iommufd: 'int', ioas: 'u32', iova: 'u64', size: 'u64', vaddr: 'ptr', readonly: 'bool', ret: 'int' },
    [[' iommufd=%d ioas=%d iova=0x%llx size=0x%llx addr=%p readonly=%d (%d)']], 'IOMMU_IOAS_MAP',
    (a) => ({
      arg: { flags: mapFlags(a.readonly), ioas_id: jsonInt(a.ioas), user_va: jsonHex(a.vaddr), length: jsonHex(a.size), iova: jsonHex(a.iova) },
      outcome: rawRet(a.ret), match: { iova: a.iova, size: a.size, vaddr: a.vaddr },
    })),
  iommufd_backend_map_file_dma: onIommufd(
    { iommufd: 'int', ioas: 'u32', iova: 'u64', size: 'u64', fd: 'int', start: 'ulong', readonly: 'bool', ret: 'int' },
    [[' iommufd=%d ioas=%d iova=0x%llx size=0x%llx fd=%d start=%ld readonly=%d (%d)']], 'IOMMU_IOAS_MAP_FILE',
    (a) => ({
      arg: { flags: mapFlags(a.readonly), ioas_id: jsonInt(a.ioas), fd: jsonInt(a.fd), start: jsonInt(a.start), length: jsonHex(a.size), iova: jsonHex(a.iova) },
      outcome: rawRet(a.ret), match: { iova: a.iova, size: a.size },
      note: `fd ${a.fd} (a RAM block memfd or a VFIO BAR dma-buf) was created before or outside what QEMU traces`,
    })),
  iommufd_backend_unmap_dma_non_exist: onIommufd(UNMAP,
    [[' Unmap nonexistent mapping: iommufd=%d ioas=%d iova=0x%llx size=0x%llx (%d)']], 'IOMMU_IOAS_UNMAP',
    (a) => ({ arg: unmapArg(a), outcome: { kind: 'errno', errno: 'ENOENT' }, note: 'QEMU treats ENOENT from IOMMU_IOAS_UNMAP as success' })),
  iommufd_backend_unmap_dma: onIommufd(UNMAP, [[' iommufd=%d ioas=%d iova=0x%llx size=0x%llx (%d)']], 'IOMMU_IOAS_UNMAP',
    (a) => ({ arg: unmapArg(a), outcome: rawRet(a.ret), match: { iova: a.iova, size: a.size } })),
  // Traced only after success (backends/iommufd.c), so the id it prints is the ioctl's output.
  iommufd_backend_alloc_ioas: onIommufd({ iommufd: 'int', ioas: 'u32' }, [[' iommufd=%d ioas=%d']], 'IOMMU_IOAS_ALLOC',
    (a) => ({ arg: { flags: 0 }, outcome: RET0, out: { out_ioas_id: jsonInt(a.ioas) } })),
  iommufd_backend_alloc_hwpt: onIommufd(
    { iommufd: 'int', dev_id: 'u32', pt_id: 'u32', flags: 'u32', hwpt_type: 'u32', len: 'u32', data_ptr: 'u64', out_hwpt_id: 'u32', ret: 'int' },
    [[' iommufd=%d dev_id=%u pt_id=%u flags=0x%x hwpt_type=%u len=%u data_ptr=0x%llx out_hwpt=%u (%d)']], 'IOMMU_HWPT_ALLOC',
    (a) => ({
      arg: {
        flags: flagsJson(a.flags, FLAG_SETS.hwpt_alloc), dev_id: jsonInt(a.dev_id), pt_id: jsonInt(a.pt_id),
        data_type: enumJson(a.hwpt_type, ENUMS.hwpt_data_type), data_len: jsonInt(a.len), data_uptr: jsonHex(a.data_ptr),
      },
      outcome: rawRet(a.ret), ...idOut(a.ret, { out_hwpt_id: jsonInt(a.out_hwpt_id) }),
    })),
  iommufd_backend_free_id: onIommufd({ iommufd: 'int', id: 'u32', ret: 'int' }, [[' iommufd=%d id=%d (%d)']], 'IOMMU_DESTROY',
    (a) => ({ arg: { id: jsonInt(a.id) }, outcome: rawRet(a.ret) })),
  iommufd_backend_set_dirty: onIommufd({ iommufd: 'int', hwpt_id: 'u32', start: 'bool', ret: 'int' },
    [[' iommufd=%d hwpt=%u enable=%d (%d)']], 'IOMMU_HWPT_SET_DIRTY_TRACKING',
    (a) => ({ arg: { flags: flagsJson(a.start, FLAG_SETS.set_dirty), hwpt_id: jsonInt(a.hwpt_id) }, outcome: errnoRet(a.ret) })),
  iommufd_backend_get_dirty_bitmap: onIommufd(
    { iommufd: 'int', hwpt_id: 'u32', iova: 'u64', size: 'u64', flags: 'u64', page_size: 'u64', ret: 'int' },
    [[' iommufd=%d hwpt=%u iova=0x%llx size=0x%llx flags=0x%llx page_size=0x%llx (%d)'],
      [' iommufd=%d hwpt=%u iova=0x%llx size=0x%llx page_size=0x%llx (%d)', ['iommufd', 'hwpt_id', 'iova', 'size', 'page_size', 'ret']]],
    'IOMMU_HWPT_GET_DIRTY_BITMAP',
    (a) => ({
      arg: {
        hwpt_id: jsonInt(a.hwpt_id), flags: flagsJson(a.flags, FLAG_SETS.get_dirty), iova: jsonHex(a.iova),
        length: jsonHex(a.size), page_size: jsonHex(a.page_size),
      },
      outcome: errnoRet(a.ret), note: 'the bitmap pointer (data) is not in the trace, so it is left out (NULL)',
    }), { flags: 0n }),
  iommufd_backend_invalidate_cache: onIommufd(
    { iommufd: 'int', id: 'u32', data_type: 'u32', entry_len: 'u32', entry_num: 'u32', done_num: 'u32', data_ptr: 'u64', ret: 'int' },
    [[' iommufd=%d id=%u data_type=%u entry_len=%u entry_num=%u done_num=%u data_ptr=0x%llx (%d)']], 'IOMMU_HWPT_INVALIDATE',
    (a) => ({
      arg: {
        hwpt_id: jsonInt(a.id), data_uptr: jsonHex(a.data_ptr), data_type: enumJson(a.data_type, ENUMS.hwpt_invalidate_data_type),
        entry_len: jsonInt(a.entry_len), entry_num: jsonInt(a.entry_num),
      },
      // The kernel writes entry_num back even when the ioctl fails.
      outcome: errnoRet(a.ret), out: { entry_num: jsonInt(a.done_num) },
      note: 'the invalidation entries behind data_uptr are not in the trace',
    })),
  iommufd_backend_alloc_viommu: onIommufd(
    { iommufd: 'int', dev_id: 'u32', type: 'u32', hwpt_id: 'u32', data_len: 'u32', data_ptr: 'u64', viommu_id: 'u32', ret: 'int' },
    [[' iommufd=%d type=%u dev_id=%u hwpt_id=%u data_len=%u data_ptr=0x%llx viommu_id=%u (%d)'],
      [' iommufd=%d type=%u dev_id=%u hwpt_id=%u viommu_id=%u (%d)', ['iommufd', 'dev_id', 'type', 'hwpt_id', 'viommu_id', 'ret']]],
    'IOMMU_VIOMMU_ALLOC',
    (a) => {
      // backends/iommufd.c passes data_ptr and data_len to the trace in swapped order (the pointer truncated to
      // 32 bits), so driver data is only trusted when both are 0.
      const noData = a.data_len === 0n && a.data_ptr === 0n;
      return {
        arg: { flags: 0, type: enumJson(a.type, ENUMS.viommu_type), dev_id: jsonInt(a.dev_id), hwpt_id: jsonInt(a.hwpt_id), ...(noData ? { data_uptr: 0, data_len: 0 } : {}) },
        outcome: rawRet(a.ret), ...idOut(a.ret, { out_viommu_id: jsonInt(a.viommu_id) }),
        ...(noData ? {} : { note: 'data_len/data_uptr left out: QEMU traces them swapped and the pointer truncated' }),
      };
    }, { data_len: 0n, data_ptr: 0n }),
  iommufd_backend_alloc_vdev: onIommufd(
    { iommufd: 'int', dev_id: 'u32', viommu_id: 'u32', virt_id: 'u64', vdev_id: 'u32', ret: 'int' },
    [[' iommufd=%d dev_id=%u viommu_id=%u virt_id=0x%llx vdev_id=%u (%d)']], 'IOMMU_VDEVICE_ALLOC',
    (a) => ({
      arg: { viommu_id: jsonInt(a.viommu_id), dev_id: jsonInt(a.dev_id), virt_id: jsonHex(a.virt_id) },
      outcome: rawRet(a.ret), ...idOut(a.ret, { out_vdevice_id: jsonInt(a.vdev_id) }),
    })),
  iommufd_viommu_alloc_eventq: onIommufd(
    { iommufd: 'int', viommu_id: 'u32', type: 'u32', veventq_id: 'u32', veventq_fd: 'u32', ret: 'int' },
    [[' iommufd=%d viommu_id=%u type=%u veventq_id=%u veventq_fd=%u (%d)']], 'IOMMU_VEVENTQ_ALLOC',
    (a) => ({
      arg: { flags: 0, viommu_id: jsonInt(a.viommu_id), type: enumJson(a.type, ENUMS.veventq_type) },
      outcome: rawRet(a.ret), ...idOut(a.ret, { out_veventq_id: jsonInt(a.veventq_id), out_veventq_fd: jsonInt(a.veventq_fd) }),
      note: 'veventq_depth is not in the trace, so it is left out (0)',
    })),
  iommufd_backend_alloc_hw_queue: onIommufd(
    { iommufd: 'int', viommu_id: 'u32', queue_type: 'u32', index: 'u32', addr: 'u64', size: 'u64', queue_id: 'u32', ret: 'int' },
    [[' iommufd=%d viommu_id=%u queue_type=%u index=%u addr=0x%llx size=0x%llx queue_id=%u (%d)']], 'IOMMU_HW_QUEUE_ALLOC',
    (a) => ({
      arg: {
        flags: 0, viommu_id: jsonInt(a.viommu_id), type: enumJson(a.queue_type, ENUMS.hw_queue_type), index: jsonInt(a.index),
        nesting_parent_iova: jsonHex(a.addr), length: jsonHex(a.size),
      },
      outcome: rawRet(a.ret), ...idOut(a.ret, { out_hw_queue_id: jsonInt(a.queue_id) }),
    })),

  // hw/vfio/iommufd.c: the VFIO cdev side. These are traced only after the ioctl succeeded.
  iommufd_cdev_getfd: def({ dev: 'str', devfd: 'int' }, [[' %s (fd=%d)']], (a, c) => c.openDevice(a.dev, a.devfd)),
  iommufd_cdev_connect_and_bind: def({ iommufd: 'int', name: 'str', devfd: 'int', devid: 'int' },
    [[' [iommufd=%d] Successfully bound device %s (fd=%d): output devid=%d']], (a, c) => {
      const fds = c.fds([{ iommufd: a.iommufd }, { device: a.devfd, name: a.name }]);
      if (fds === undefined) return;
      c.ioctl({ fd: fds[1], cmd: 'VFIO_DEVICE_BIND_IOMMUFD', arg: { flags: 0, iommufd: fds[0] }, outcome: RET0, out: { out_devid: jsonInt(a.devid) } });
    }),
  iommufd_cdev_attach_ioas_hwpt: def({ iommufd: 'int', name: 'str', devfd: 'int', id: 'u32' },
    [[' [iommufd=%d] Successfully attached device %s (%d) to id=%d']], (a, c) => {
      const fds = c.fds([{ device: a.devfd, name: a.name }]);
      // No `out`: QEMU prints the id it passed, not the pt_id the kernel writes back for an IOAS.
      if (fds !== undefined) c.ioctl({ fd: fds[0], cmd: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', arg: { flags: 0, pt_id: jsonInt(a.id) }, outcome: RET0 });
    }),
  iommufd_cdev_pasid_attach_ioas_hwpt: def({ iommufd: 'int', name: 'str', devfd: 'int', pasid: 'u32', id: 'u32' },
    [[' [iommufd=%d] Successfully attached device %s (%d) pasid %u to id=%d']], (a, c) => {
      const fds = c.fds([{ device: a.devfd, name: a.name }]);
      if (fds === undefined) return;
      c.ioctl({
        fd: fds[0], cmd: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
        arg: { flags: flagsJson(1n, FLAG_SETS.vfio_attach), pt_id: jsonInt(a.id), pasid: jsonInt(a.pasid) }, outcome: RET0,
      });
    }),
  iommufd_cdev_detach_ioas_hwpt: def({ iommufd: 'int', name: 'str' }, [[' [iommufd=%d] Successfully detached %s']], (a, c) => {
    const fds = c.fds([{ named: a.name }]);
    if (fds !== undefined) c.ioctl({ fd: fds[0], cmd: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', arg: { flags: 0 }, outcome: RET0 });
  }),
  iommufd_cdev_pasid_detach_ioas_hwpt: def({ iommufd: 'int', name: 'str', pasid: 'u32' },
    [[' [iommufd=%d] Successfully detached %s pasid %u']], (a, c) => {
      const fds = c.fds([{ named: a.name }]);
      if (fds === undefined) return;
      c.ioctl({ fd: fds[0], cmd: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', arg: { flags: flagsJson(1n, FLAG_SETS.vfio_detach), pasid: jsonInt(a.pasid) }, outcome: RET0 });
    }),
  // The message is the Error of the failed attach: "[iommufd=%d] error attach %s (%d) to id=%d: <strerror>".
  iommufd_cdev_fail_attach_existing_container: def({ msg: 'str' }, [[' %s']], (a, c) => {
    const m = /^\[iommufd=-?\d+\] error attach (\S+) \((-?\d+)\) to id=(\d+): (.+)$/.exec(a.msg);
    if (m === null) return c.notIoctl("QEMU's reason for not reusing an existing container");
    const [, name = '', devfd = '', id = '', err = ''] = m;
    const fds = c.fds([{ device: BigInt(devfd), name }]);
    if (fds !== undefined) c.ioctl({ fd: fds[0], cmd: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', arg: { flags: 0, pt_id: jsonInt(BigInt(id)) }, outcome: textOutcome(err) });
  }),
  iommufd_cdev_device_info: def({ name: 'str', devfd: 'int', num_irqs: 'u32', num_regions: 'u32', flags: 'u32' },
    [[' %s (%d) num_irqs=%d num_regions=%d flags=%d']], (a, c) => {
      const fds = c.fds([{ device: a.devfd, name: a.name }]);
      if (fds === undefined) return;
      // The model keeps struct vfio_device_info opaque (src/events/uapi.ts), so `out` would be a trace error.
      c.ioctl({
        fd: fds[0], cmd: 'VFIO_DEVICE_GET_INFO', arg: {}, outcome: RET0,
        note: `QEMU got flags=${a.flags} num_regions=${a.num_regions} num_irqs=${a.num_irqs}`,
      });
    }),

  // hw/vfio: listener events become ioctls only with the legacy container (decided once the whole log is read).
  vfio_listener_region_add_ram: def({ iova_start: 'u64', iova_end: 'u64', vaddr: 'ptr' }, [['region_add [ram] 0x%llx - 0x%llx [%p]']],
    (a, c) => c.listener({ op: 'map', iova: a.iova_start, last: a.iova_end, vaddr: a.vaddr })),
  vfio_listener_region_del: def({ start: 'u64', end: 'u64' }, [['region_del 0x%llx - 0x%llx']],
    (a, c) => c.listener({ op: 'unmap', iova: a.start, last: a.end })),
  vfio_listener_region_add_no_dma_map: def({ name: 'str', iova: 'u64', size: 'u64', page_size: 'u64' },
    [['Region "%s" 0x%llx size=0x%llx is not aligned to 0x%llx and cannot be mapped for DMA']],
    (a, c) => c.listener({ op: 'skip-map', iova: a.iova })),
  vfio_iommu_map_notify: def({ op: 'str', iova_start: 'u64', iova_end: 'u64' }, [['iommu %s @ 0x%llx - 0x%llx']],
    (a, c) => c.listener({ op: 'notify', what: a.op, iova: a.iova_start, last: a.iova_end })),
  vfio_container_disconnect: def({ fd: 'int' }, [['close container->fd=%d']], (a, c) => c.listener({ op: 'close-container', fd: a.fd })),
  vfio_device_put: def({ fd: 'int' }, [['close vdev->fd=%d']], (a, c) => c.closeDevice(a.fd)),
  vfio_group_put: def({ fd: 'int' }, [['close group->fd=%d']],
    (a, c) => c.unconvertible(`closes VFIO group fd ${a.fd}, whose open QEMU does not trace`)),
  vfio_device_get: def({ name: 'str', flags: 'u32', num_regions: 'u32', num_irqs: 'u32' }, [['Device %s flags: %u, regions: %u, irqs: %u']],
    (a, c) => c.unconvertible(`VFIO_GROUP_GET_DEVICE_FD and VFIO_DEVICE_GET_INFO for ${a.name}: the legacy trace shows neither the group fd nor the device fd`)),
  vfio_pci_reset_flr: def({ name: 'str' }, [['%s FLR/VFIO_DEVICE_RESET']], (a, c) => {
    const fds = c.fds([{ named: a.name }]);
    if (fds !== undefined) c.ioctl({ fd: fds[0], cmd: 'VFIO_DEVICE_RESET', outcome: RET0 });
  }),
  vfio_pci_reset_pm: def({ name: 'str' }, [['%s PCI PM Reset']], (a, c) => {
    const fds = c.fds([{ named: a.name }]);
    if (fds !== undefined) c.ioctl({ fd: fds[0], cmd: 'VFIO_DEVICE_RESET', outcome: RET0, note: 'PCI PM reset through VFIO_DEVICE_RESET' });
  }),
  vfio_pci_hot_reset_result: def({ name: 'str', result: 'str' }, [['%s hot reset: %s']], (a, c) => {
    const fds = c.fds([{ named: a.name }]);
    if (fds === undefined) return;
    c.ioctl({
      fd: fds[0], cmd: 'VFIO_DEVICE_PCI_HOT_RESET', arg: { flags: 0, count: 0 },
      outcome: a.result === 'Success' ? RET0 : textOutcome(a.result), note: 'the iommufd form: an empty group_fds array',
    });
  }),
  // QEMU's only traced GET_IRQ_INFO is the probe of the error IRQ (VFIO_PCI_ERR_IRQ_INDEX = 3), and only when it fails.
  vfio_pci_populate_device_get_irq_info_failure: def({ errstr: 'str' }, [['VFIO_DEVICE_GET_IRQ_INFO failure: %s']], (a, c) => {
    const fds = c.fds([{ soleDevice: true }]);
    if (fds !== undefined) c.ioctl({ fd: fds[0], cmd: 'VFIO_DEVICE_GET_IRQ_INFO', arg: { index: 3 }, outcome: textOutcome(a.errstr) });
  }),
};

// Older QEMU names of the same events (hw/vfio/common.c before the 2025 split).
const RENAMED: Readonly<Record<string, string>> = {
  vfio_disconnect_container: 'vfio_container_disconnect', vfio_put_base_device: 'vfio_device_put',
  vfio_put_group: 'vfio_group_put', vfio_get_device: 'vfio_device_get',
  vfio_populate_device_get_irq_info_failure: 'vfio_pci_populate_device_get_irq_info_failure',
};

export function eventDef(name: string): EventDef | undefined {
  return EVENTS[RENAMED[name] ?? name];
}

/** Events that report an ioctl iotrail cannot represent from the trace line, and why. */
export const UNCONVERTIBLE: Readonly<Record<string, string>> = {
  vfio_region_setup: 'reports a VFIO_DEVICE_GET_REGION_INFO result, but QEMU may issue that ioctl several times (argsz growth) or answer from its cache',
  vfio_region_dmabuf: 'VFIO_DEVICE_FEATURE(DMA_BUF): QEMU prints one line per range, not the whole request',
  vfio_migration_set_device_state: 'VFIO_DEVICE_FEATURE(MIG_DEVICE_STATE): device migration state is outside the IOMMU model',
  vfio_query_precopy_size: 'VFIO_MIG_GET_PRECOPY_INFO: device migration is outside the IOMMU model',
  vfio_query_stop_copy_size: 'VFIO_DEVICE_FEATURE(MIG_DATA_SIZE): device migration is outside the IOMMU model',
  vfio_device_dirty_tracking_start: 'VFIO_DEVICE_FEATURE(DMA_LOGGING_START): traced before the ioctl, without its result',
  vfio_prereg_register: 'sPAPR VFIO_IOMMU_SPAPR_REGISTER_MEMORY: the sPAPR IOMMU is outside the model',
  vfio_prereg_unregister: 'sPAPR VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: the sPAPR IOMMU is outside the model',
  vfio_spapr_create_window: 'sPAPR VFIO_IOMMU_SPAPR_TCE_CREATE: the sPAPR IOMMU is outside the model',
  vfio_spapr_remove_window: 'sPAPR VFIO_IOMMU_SPAPR_TCE_REMOVE: the sPAPR IOMMU is outside the model',
};

const NOT_IOCTL: Readonly<Record<string, string>> = {
  iommufd_cdev_alloc_ioas: 'restates the IOMMU_IOAS_ALLOC that iommufd_backend_alloc_ioas reports',
  iommufd_cdev_pci_hot_reset_dep_devices: 'lists a device affected by a hot reset',
  iommufd_backend_viommu_mmap: 'an mmap of vIOMMU MMIO',
  vfio_get_dirty_bitmap: 'summary of a dirty-bitmap query (iommufd_backend_get_dirty_bitmap carries the ioctl)',
  vfio_container_query_dirty_bitmap: 'summary of a dirty-bitmap query (iommufd_backend_get_dirty_bitmap carries the ioctl)',
};

// The informational families of hw/vfio/trace-events: interrupts, config space, quirks, regions, migration...
const INFORMATIONAL = new RegExp(
  '^vfio_(intx|msix?_|msi_|pci_(intx|load_rom|size_rom|read_config|write_config|hot_reset$|hot_reset_(has_)?dep|reset$|emulated|igd|synthesize|populate_device_config)' +
  '|rom_read|vga_|check_|attach_device|detach_device|device_(attach|detach|reset_handler|get_region_info_type|dirty_tracking_update)' +
  '|mdev|add_ext_cap|quirk|ioeventfd|region_(read|write|mmap|exit|finalize|unmap|sparse)|get_dev_region|iommu_map_dirty' +
  '|listener_region_(skip|add_skip|add_iommu|del_iommu|skip_dma_map)|known_safe|spapr_group_attach|legacy_dma_unmap|platform|intp' +
  '|display|load|save|migration_|state_pending|vmstate|send_init|cxl|cpr|prereg_listener|populate_device_config)');

/** Why a known trace event that is not in EVENTS is not an ioctl, or undefined for an unknown event. */
export function notIoctlReason(name: string): string | undefined {
  const known = NOT_IOCTL[name];
  if (known !== undefined) return known;
  return INFORMATIONAL.test(name) ? 'informational VFIO trace event' : undefined;
}
