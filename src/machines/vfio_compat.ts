/**
 * The VFIO type1 container personality of an iommufd (drivers/iommu/iommufd/vfio_compat.c `iommufd_vfio_ioctl`;
 * core spec §7), reached for any command number outside the iommufd table, on /dev/iommu and on /dev/vfio/vfio
 * when iommufd provides it. Commands it does not know (VFIO_IOMMU_DIRTY_PAGES included) are ENOIOCTLCMD, which the
 * VFS reports as ENOTTY.
 *
 * Theory of operation. Every command but GET_API_VERSION and CHECK_EXTENSION acts on the "compat IOAS",
 * `ictx->vfio_ioas`: set by IOMMU_VFIO_IOAS SET (ioas.ts) or created when a VFIO group is attached to the container
 * (`iommufd_vfio_compat_ioas_create` below, the seam the group model calls); with none, or with it being destroyed,
 * they answer ENODEV. The type1 flavours differ only in unmapping: TYPE1 disables large pages on the compat IOAS,
 * and an UNMAP_DMA on an IOAS with large pages disabled first cuts the areas at both ends of the range
 * (iopt_split.ts), so a hole can be punched in a mapping; TYPE1v2 leaves them whole and an unmap that cuts one is
 * ENOENT. UNMAP_DMA writes `size` (the bytes unmapped) back even when the unmap failed part way.
 *
 * Version deltas (header `kernel`): before v6.6 the capability chain of GET_INFO is not 8-byte aligned (the
 * 12-byte DMA_AVAIL cap is followed directly by IOVA_RANGE); before v6.18 (and the stable backports of
 * afb47765f923, which the major.minor switch does not see) an UNMAP_DMA of a range with no mapping is ENOENT.
 */
import type { DomainEvent } from '../events/domain.js';
import type { Errno } from '../events/errno.js';
import { ENUMS } from '../events/flags.js';
import { COMMAND_BY_NAME } from '../events/uapi.js';
import { usableRanges, type Iopt } from '../hw/io_pagetable.js';
import { iopt_map_pages, iopt_unmap_iova_range, isFailure, type Failure } from '../hw/iopt_ops.js';
import { iopt_cut_iova } from '../hw/iopt_split.js';
import { U64_MAX } from '../hw/u64.js';
import { fail, holding, respond, succeed, u32, u64, unmodelled, type Call, type Operation, type Step } from './ioctl.js';
import type { IoctlInput } from './main.js';
import { getObject } from './objects.js';
import { kernelAtLeast } from './version.js';
import { iopt_alloc_user_pages, iopt_disable_large_pages, ioptDomainPgsizes, readIopt } from './vfio_compat_iopt.js';

const V = (name: string): number => COMMAND_BY_NAME.get(name)!.value;
const GET_API_VERSION = V('VFIO_GET_API_VERSION'), CHECK_EXTENSION = V('VFIO_CHECK_EXTENSION'), SET_IOMMU = V('VFIO_SET_IOMMU');
const GET_INFO = V('VFIO_IOMMU_GET_INFO'), MAP_DMA = V('VFIO_IOMMU_MAP_DMA'), UNMAP_DMA = V('VFIO_IOMMU_UNMAP_DMA');
const T = ENUMS.vfio_iommu_type;

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** vfio.h: VFIO_DMA_MAP_FLAG_READ/WRITE, VFIO_DMA_UNMAP_FLAG_ALL, VFIO_IOMMU_INFO_PGSIZES/CAPS, cap ids. */
const MAP_READ = 1, MAP_WRITE = 2, UNMAP_ALL = 2;
const INFO_PGSIZES = 1n, INFO_CAPS = 2n;
const CAP_IOVA_RANGE = 1, CAP_DMA_AVAIL = 3;
/** `offsetofend` of the last field each command reads (its `minsz`), and sizeof(struct vfio_iommu_type1_info). */
const MAP_MINSZ = 32, UNMAP_MINSZ = 24, INFO_MINSZ = 16, INFO_SIZE = 24;

/**
 * `get_compat_ioas`: `ictx->vfio_ioas` if one is set and `iommufd_lock_obj` can take it (it is not being
 * destroyed), else ENODEV.
 */
export function getCompatIoas(c: Call): { id: number; iopt: Iopt } | Failure {
  const id = c.ctx.vfioIoas;
  if (id === 0) return { errno: 'ENODEV', why: 'vfio_compat.c get_compat_ioas: no compat IOAS (none was set with IOMMU_VFIO_IOAS, and no VFIO group is attached)' };
  const o = getObject(c.ctx, id, 'IOAS');
  if (o?.ioas === undefined) return { errno: 'ENODEV', why: `vfio_compat.c get_compat_ioas: the compat IOAS ${id} is being destroyed` };
  return { id, iopt: o.ioas.iopt };
}

/**
 * `iommufd_vfio_compat_ioas_create`: what attaching a VFIO group to an iommufd-backed container does first
 * (drivers/vfio/group.c `vfio_group_ioctl_set_container`); no device is involved. It allocates an IOAS (the id is
 * reserved at once), then under the object table lock keeps an existing live compat IOAS (the new one is aborted,
 * success) or makes the new one the compat IOAS and finalizes it. The group model `yield*`s this and puts the
 * returned events in its own step. `no_iommu_mode` (a no-IOMMU group attached first: EINVAL) is not modelled: no
 * such group exists yet.
 */
export function* iommufd_vfio_compat_ioas_create(c: Call): Generator<readonly DomainEvent[], { events: DomainEvent[]; why: string } | Failure, void> {
  const fn = 'vfio_compat.c iommufd_vfio_compat_ioas_create';
  const id = c.ctx.ids.lowestFree();
  if (id === undefined) return { errno: 'EBUSY', why: `${fn}: iommufd_ioas_alloc: xa_alloc found no free id in [1, INT_MAX]` };
  const ctx = c.ctx.id;
  yield [{ type: 'ObjectAllocated', ctx, id, kind: 'IOAS' }];
  const cur = c.ctx.vfioIoas;
  if (cur !== 0 && getObject(c.ctx, cur, 'IOAS') !== undefined)
    return { events: [{ type: 'ObjectAborted', ctx, id }], why: `${fn}: compat IOAS ${cur} already exists; the new IOAS ${id} is aborted` };
  return { events: [{ type: 'VfioIoasSet', ctx, id }, { type: 'ObjectFinalized', ctx, id }], why: `${fn}: IOAS ${id} created as the compat IOAS` };
}

/** `iommufd_vfio_check_extension`. */
function checkExtension(c: Call, ext: bigint): Step {
  const fn = 'vfio_compat.c iommufd_vfio_check_extension';
  switch (Number(ext)) {
    case T.VFIO_TYPE1_IOMMU: case T.VFIO_TYPE1v2_IOMMU: case T.VFIO_UNMAP_ALL:
      return succeed(`${fn}: extension ${ext} is supported`, undefined, [], 1n);
    case T.VFIO_DMA_CC_IOMMU: {
      // iommufd_vfio_cc_iommu: 0 if any HWPT of the compat IOAS does not enforce cache coherency (no HWPT is modelled yet).
      const g = getCompatIoas(c);
      if (isFailure(g)) return fail(g.errno, `${fn}: DMA_CC: ${g.why}`);
      return succeed(`${fn}: DMA_CC: no HWPT of IOAS ${g.id} breaks cache coherency`, undefined, [], 1n);
    }
    default:
      return succeed(`${fn}: extension ${ext} is not supported (NOIOMMU needs CONFIG_VFIO_NOIOMMU)`, undefined, [], 0n);
  }
}

/**
 * `iommufd_vfio_set_iommu`: only TYPE1 and TYPE1v2, then the compat IOAS; TYPE1 disables its large pages (the
 * same `iopt_disable_large_pages` as IOMMU_OPTION HUGE_PAGES=0), TYPE1v2 changes nothing. It may be repeated. The
 * NOIOMMU branch needs `no_iommu_mode`, which only a no-IOMMU group sets (not modelled), so NOIOMMU is EINVAL here.
 */
function setIommu(c: Call, arg: bigint): Step {
  const fn = 'vfio_compat.c iommufd_vfio_set_iommu';
  const type = BigInt.asUintN(64, arg);
  if (type !== BigInt(T.VFIO_TYPE1_IOMMU) && type !== BigInt(T.VFIO_TYPE1v2_IOMMU))
    return fail('EINVAL', `${fn}: type ${type} is neither VFIO_TYPE1_IOMMU (1) nor VFIO_TYPE1v2_IOMMU (3)`);
  const g = getCompatIoas(c);
  if (isFailure(g)) return fail(g.errno, g.why);
  if (type === BigInt(T.VFIO_TYPE1v2_IOMMU)) return succeed(`${fn}: TYPE1v2 on compat IOAS ${g.id}: nothing changes`);
  const r = iopt_disable_large_pages(c, g.id, g.iopt);
  if (isFailure(r)) return fail(r.errno, r.why);
  return succeed(`${fn}: TYPE1 on compat IOAS ${g.id}: ${r.why}`, undefined, r.events);
}

/**
 * `iommufd_get_pagesizes`: the AND of the domains' page size bitmaps (all ones with none), sub-page sizes folded
 * into PAGE_SIZE (as `vfio_update_pgsize_bitmap`), then at least the IOAS `iova_alignment`.
 */
export function iommufd_get_pagesizes(i: Iopt, domainPgsizes: readonly bigint[], pageSize: number): bigint {
  const page = BigInt(pageSize);
  const pageMask = U64_MAX & ~(page - 1n);
  let bitmap = U64_MAX;
  for (const p of domainPgsizes) bitmap &= p;
  if ((bitmap & ~pageMask) !== 0n) bitmap = (bitmap & pageMask) | page;
  return bitmap > i.iovaAlignment ? bitmap : i.iovaAlignment;
}

export interface CapChain {
  /** The size of the whole chain after the header: the `argsz` written back. */
  readonly total: number;
  /** `sizeof(info)` when the caller's argsz held the whole chain, else 0. */
  readonly capOffset: number;
  /** Bytes [24, end) of the caller's buffer after the call (undefined when argsz <= 24). */
  readonly tail: Uint8Array | undefined;
}

/**
 * The capability chain of `iommufd_vfio_iommu_get_info` as the caller's buffer holds it afterwards: DMA_AVAIL
 * (`iommufd_fill_cap_dma_avail`: id 3, version 1, avail U32_MAX; 12 bytes) at offset 24, then IOVA_RANGE
 * (`iommufd_fill_cap_iova`: id 1, version 1, nr_iovas, reserved, then {start, end} per usable range; 16 + 16·n
 * bytes); each cap size rounded up to 8 from v6.6 (`aligned`). A cap is filled only when `argsz > offset`, a range
 * entry only if it fits in the room left, the IOVA_RANGE header only if every entry fits; the previous cap's
 * `next` is written when `argsz` reaches the current cap's offset. Bytes the kernel does not write (padding, room
 * too small) keep what the caller had there: its input `tail`, zero where it gave none. The tail runs to argsz,
 * but past the chain only as far as the caller's own bytes.
 */
export function vfioInfoCapChain(argsz: number, ranges: readonly { start: bigint; last: bigint }[], aligned: boolean, userTail: Uint8Array | undefined): CapChain {
  const n = ranges.length;
  const pad = (s: number): number => (aligned ? (s + 7) & ~7 : s);
  const dmaSize = 12, iovaSize = 16 + 16 * n;
  const total = INFO_SIZE + pad(dmaSize) + pad(iovaSize);
  const have = userTail?.length ?? 0;
  const end = Math.min(argsz, Math.max(total, INFO_SIZE + have));
  const tail = argsz > INFO_SIZE ? new Uint8Array(end - INFO_SIZE) : undefined;
  if (tail !== undefined && userTail !== undefined) tail.set(userTail.subarray(0, tail.length));
  const dv = tail && new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  const u16 = (off: number, v: number): void => dv?.setUint16(off - INFO_SIZE, v, true);
  const u32 = (off: number, v: number): void => dv?.setUint32(off - INFO_SIZE, v, true);
  const u64 = (off: number, v: bigint): void => dv?.setBigUint64(off - INFO_SIZE, v, true);
  const header = (off: number, id: number): void => { u16(off, id); u16(off + 2, 1); u32(off + 4, 0); };
  const fills: readonly [(at: number, avail: number) => void, number][] = [
    [(at, avail) => {
      if (avail < dmaSize) return;
      header(at, CAP_DMA_AVAIL);
      u32(at + 8, 0xffff_ffff);
    }, dmaSize],
    [(at, avail) => {
      ranges.forEach((r, k) => {
        if (avail < 16 + 16 * (k + 1)) return;
        u64(at + 16 + 16 * k, r.start);
        u64(at + 24 + 16 * k, r.last);
      });
      if (avail < iovaSize) return;
      header(at, CAP_IOVA_RANGE);
      u32(at + 8, n);
      u32(at + 12, 0);
    }, iovaSize],
  ];
  let off = INFO_SIZE;
  let last: number | undefined;
  for (const [fill, size] of fills) {
    if (argsz > off) fill(off, argsz - off);
    if (last !== undefined && argsz >= off) u32(last + 4, off);
    last = off;
    off += pad(size);
  }
  return { total, capOffset: argsz >= total ? INFO_SIZE : 0, tail };
}

/** `iommufd_vfio_iommu_get_info`: reads 16 bytes; copies back min(argsz, 24) header bytes and the chain. */
function getInfo(c: Call, input: IoctlInput): Step {
  const fn = 'vfio_compat.c iommufd_vfio_iommu_get_info';
  if (input.k === 'null') return fail('EFAULT', `${fn}: copy_from_user of ${INFO_MINSZ} bytes from a NULL arg`);
  if (input.k !== 'struct') return unmodelled('VFIO_IOMMU_GET_INFO with a raw pointer argument');
  const a = input.a;
  if (a.size < INFO_MINSZ) return fail('EINVAL', `${fn}: argsz ${a.size} < ${INFO_MINSZ} (offsetofend iova_pgsizes)`);
  const g = getCompatIoas(c);
  if (isFailure(g)) return fail(g.errno, g.why);
  const pgsizes = iommufd_get_pagesizes(g.iopt, ioptDomainPgsizes(c.k.st, g.iopt), c.k.st.pageSize);
  const ranges = usableRanges(g.iopt);
  const chain = vfioInfoCapChain(a.size, ranges, kernelAtLeast(c.k.header, 6, 6), a.tail);
  const out = respond(a, { argsz: BigInt(chain.total), flags: INFO_PGSIZES | INFO_CAPS, iova_pgsizes: pgsizes, cap_offset: BigInt(chain.capOffset), pad: 0n });
  const fits = chain.capOffset !== 0 ? 'the whole chain fits' : `argsz ${a.size} is below the ${chain.total} bytes of the chain, so cap_offset stays 0`;
  return succeed(`${fn}: compat IOAS ${g.id}: iova_pgsizes ${hex(pgsizes)}, DMA_AVAIL and IOVA_RANGE with ${ranges.length} range(s); ${fits}`,
    chain.tail === undefined ? out : { ...out, tail: chain.tail });
}

/**
 * `iommufd_vfio_map_dma`: reads 32 bytes; argsz and flags (READ|WRITE only; 0 is accepted and maps with neither),
 * then a fixed-IOVA `iopt_map_user_pages` into the compat IOAS with the context's accounting mode. Nothing is
 * copied back.
 */
function* mapDma(c: Call, input: IoctlInput): Operation {
  const fn = 'vfio_compat.c iommufd_vfio_map_dma';
  if (input.k === 'null') return fail('EFAULT', `${fn}: copy_from_user of ${MAP_MINSZ} bytes from a NULL arg`);
  if (input.k !== 'struct') return unmodelled('VFIO_IOMMU_MAP_DMA with a raw pointer argument');
  const a = input.a;
  const flags = u32(a, 'flags');
  if (a.size < MAP_MINSZ) return fail('EINVAL', `${fn}: argsz ${a.size} < ${MAP_MINSZ}`);
  if ((flags & ~(MAP_READ | MAP_WRITE)) !== 0) return fail('EINVAL', `${fn}: flags 0x${flags.toString(16)} outside VFIO_DMA_MAP_FLAG_READ|WRITE (VADDR is not supported)`);
  const prot = ((flags & MAP_READ) ? 1 : 0) | ((flags & MAP_WRITE) ? 2 : 0);
  const g = getCompatIoas(c);
  if (isFailure(g)) return fail(g.errno, g.why);
  const vaddr = u64(a, 'vaddr'), iova = u64(a, 'iova'), size = u64(a, 'size');
  const slice = iopt_alloc_user_pages(c, vaddr, size, (prot & 2) !== 0);
  if (isFailure(slice)) return fail(slice.errno, slice.why);
  const r = yield* iopt_map_pages(() => readIopt(c, g.id), c.k.header, { ctx: c.ctx.id, ioas: g.id }, [slice], size, iova, prot, c.k.line);
  if (isFailure(r)) return fail(r.errno, r.why, r.undo);
  return succeed(`${fn}: [${hex(iova)}, ${hex(iova + size - 1n)}] of compat IOAS ${g.id} maps user VA ${hex(vaddr)}`, undefined, r.publish);
}

/**
 * `iommufd_vfio_unmap_dma`: reads 24 bytes; argsz and flags (UNMAP_FLAG_ALL only), the compat IOAS, then either
 * unmap-all (iova and size must be 0) or, after cutting at both ends when large pages are disabled, `iopt_unmap_iova`.
 * From there on the 24 bytes go back with `size` = bytes unmapped, whatever the result; an argument error, ENODEV,
 * a non-zero range with UNMAP_FLAG_ALL and a failed cut return before that and write nothing.
 */
function* unmapDma(c: Call, input: IoctlInput): Operation {
  const fn = 'vfio_compat.c iommufd_vfio_unmap_dma';
  if (input.k === 'null') return fail('EFAULT', `${fn}: copy_from_user of ${UNMAP_MINSZ} bytes from a NULL arg`);
  if (input.k !== 'struct') return unmodelled('VFIO_IOMMU_UNMAP_DMA with a raw pointer argument');
  const a = input.a;
  const flags = u32(a, 'flags');
  if (a.size < UNMAP_MINSZ) return fail('EINVAL', `${fn}: argsz ${a.size} < ${UNMAP_MINSZ}`);
  if ((flags & ~UNMAP_ALL) !== 0) return fail('EINVAL', `${fn}: flags 0x${flags.toString(16)} outside VFIO_DMA_UNMAP_FLAG_ALL (GET_DIRTY_BITMAP and VADDR are not supported)`);
  const g = getCompatIoas(c);
  if (isFailure(g)) return fail(g.errno, g.why);
  const id = g.id;
  const where = { ctx: c.ctx.id, ioas: id };
  const iova = u64(a, 'iova'), size = u64(a, 'size');
  const all = (flags & UNMAP_ALL) !== 0;
  const wrote = (unmapped: bigint) => respond(a, { size: unmapped });
  const failed = (errno: Errno, why: string, unmapped: bigint, events: readonly DomainEvent[] = []) => fail(errno, why, events, wrote(unmapped));
  let start = 0n, last = U64_MAX;
  let cuts = '';
  if (all) {
    if (iova !== 0n || size !== 0n) return fail('EINVAL', `${fn}: VFIO_DMA_UNMAP_FLAG_ALL with iova ${hex(iova)} and size ${hex(size)} (both must be 0)`);
  } else {
    if (g.iopt.disableLargePages) {
      // Cut at the last byte of the range and, unless it starts at 0, just before it (unsigned arithmetic).
      const iovas = [(iova + size - 1n) & U64_MAX, ...(iova !== 0n ? [iova - 1n] : [])];
      const r = iopt_cut_iova(c.k.st, where, g.iopt, iovas);
      if (r.failure !== undefined)
        return fail(r.failure.errno, `${r.failure.why} (cutting for a type1 unmap of [${hex(iova)}, +${hex(size)}]; earlier cuts stay)`, r.events);
      cuts = r.done.length > 0 ? ` after ${r.done.join('; ')}` : '';
      // iopt_cut_iova drops iova_rwsem before iopt_unmap_iova takes the locks again.
      yield r.events;
    }
    if (size === 0n) return failed('EINVAL', 'io_pagetable.c iopt_unmap_iova: length 0', 0n);
    if (iova + size - 1n > U64_MAX) return failed('EOVERFLOW', `io_pagetable.c iopt_unmap_iova: iova ${hex(iova)} + size ${hex(size)} - 1 overflows`, 0n);
    start = iova;
    last = iova + size - 1n;
  }
  const r = yield* iopt_unmap_iova_range(() => readIopt(c, id), where, start, last);
  if (r.failure !== undefined) return failed(r.failure.errno, `${r.failure.why}${cuts}`, r.unmapped);
  if (!all && r.unmapped === 0n && !kernelAtLeast(c.k.header, 6, 18))
    return failed('ENOENT', `io_pagetable.c iopt_unmap_iova_range: no area lies in [${hex(start)}, ${hex(last)}] (before v6.18 an empty range is ENOENT)`, 0n);
  return succeed(`${fn}: ${hex(r.unmapped)} bytes unmapped from compat IOAS ${id}${all ? ' (unmap all)' : ''}${cuts}`, wrote(r.unmapped));
}

/** The integer a VFIO_SET_IOMMU / VFIO_CHECK_EXTENSION caller passed (no argument reads as 0). */
const intArg = (input: IoctlInput): bigint => (input.k === 'int' ? input.v : 0n);

export function iommufd_vfio_ioctl(c: Call, cmd: number, input: IoctlInput): Step {
  if (cmd === GET_API_VERSION) return succeed('vfio_compat.c: VFIO_API_VERSION is 0');
  if (cmd === CHECK_EXTENSION) return checkExtension(c, intArg(input));
  if (cmd === SET_IOMMU) return setIommu(c, intArg(input));
  if (cmd === GET_INFO) return getInfo(c, input);
  // get_compat_ioas looks ctx->vfio_ioas up in the call's first step and holds it to the end (a compat IOAS that is
  // missing fails that step, before anything is held).
  if (cmd === MAP_DMA) return holding(c.ctx.id, c.ctx.vfioIoas, mapDma(c, input));
  if (cmd === UNMAP_DMA) return holding(c.ctx.id, c.ctx.vfioIoas, unmapDma(c, input));
  return fail('ENOTTY', `vfio_compat.c iommufd_vfio_ioctl: 0x${cmd.toString(16)} is neither an iommufd nor a VFIO compat command (ENOIOCTLCMD)`);
}

