/**
 * IOAS objects (drivers/iommu/iommufd/ioas.c): IOMMU_IOAS_ALLOC, the IOAS half of IOMMU_OPTION (HUGE_PAGES),
 * IOMMU_IOAS_IOVA_RANGES, IOMMU_IOAS_CHANGE_PROCESS, IOMMU_VFIO_IOAS (vfio_compat.c), and the leading argument
 * checks of the mapping ioctls whose io_pagetable mechanics (io_pagetable.c, pages.c) are not modelled yet.
 *
 * Theory of operation. An IOAS is an io_pagetable: areas (IOVA → user pages), allowed and reserved IOVA ranges
 * and an `iova_alignment`. It is created empty, with one usable range [0, 2^64-1] and alignment 1. Every check
 * below is in the kernel's order: an argument check the kernel makes before the IOAS lookup answers first even
 * when the id is bogus (IOMMU_IOAS_MAP with no R/W flag is EINVAL on any ioas_id).
 */
import { U64_MAX } from '../events/values.js';
import { fail, respond, succeed, u32, u64, unmodelled, type Arg, type Call, type Handler, type Operation, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';

const MAP_FIXED_IOVA = 1, MAP_WRITEABLE = 2, MAP_READABLE = 4;
const MAP_FLAGS = MAP_FIXED_IOVA | MAP_WRITEABLE | MAP_READABLE;

/** `iommufd_get_ioas`. */
function getIoas(c: Call, id: number, fn: string) {
  const o = getObject(c.ctx, id, 'IOAS');
  return o ? { o } : { err: fail('ENOENT', `ioas.c ${fn}: iommufd_get_ioas(${id}): ${lookupWhy(c.ctx, id, 'IOAS')}`) };
}

/** `iommufd_ioas_alloc_ioctl`: reserve the lowest free id, respond, then finalize under ioas_creation_lock. */
export function* iommufd_ioas_alloc_ioctl(c: Call, a: Arg): Operation {
  if (u32(a, 'flags') !== 0) return fail('EOPNOTSUPP', `ioas.c iommufd_ioas_alloc_ioctl: flags 0x${u32(a, 'flags').toString(16)} != 0`);
  const id = c.ctx.ids.lowestFree();
  if (id === undefined) return fail('EBUSY', 'main.c _iommufd_object_alloc: xa_alloc found no free id in [1, INT_MAX]');
  const ctx = c.ctx.id;
  yield [{ type: 'ObjectAllocated', ctx, id, kind: 'IOAS' }];
  return succeed(`ioas.c iommufd_ioas_alloc_ioctl: IOAS ${id} (lowest free id)`, respond(a, { out_ioas_id: BigInt(id) }),
    [{ type: 'ObjectFinalized', ctx, id }]);
}

/** `iommufd_ioas_option` → `iommufd_ioas_option_huge_pages` → `iopt_disable_large_pages`/`iopt_enable_large_pages`. */
export function iommufd_ioas_option(c: Call, a: Arg): Step {
  const id = u32(a, 'object_id');
  const g = getIoas(c, id, 'iommufd_ioas_option');
  if (g.err) return g.err;
  const ioas = g.o.ioas!;
  const op = u32(a, 'op');
  const val64 = u64(a, 'val64');
  if (op === 1)
    return succeed(`ioas.c iommufd_ioas_option_huge_pages: large pages are ${ioas.disableLargePages ? 'disabled' : 'enabled'}`,
      { val64: ioas.disableLargePages ? 0n : 1n });
  if (op !== 0) return fail('EOPNOTSUPP', `ioas.c iommufd_ioas_option_huge_pages: op ${op} is neither SET nor GET`);
  if (val64 !== 0n && val64 !== 1n) return fail('EINVAL', `ioas.c iommufd_ioas_option_huge_pages: val64 ${val64} is neither 0 nor 1`);
  const disable = val64 === 0n;
  if (disable === ioas.disableLargePages)
    return succeed(`io_pagetable.c: large pages already ${disable ? 'disabled' : 'enabled'}`, { val64 });
  return succeed(`io_pagetable.c iopt_${disable ? 'disable' : 'enable'}_large_pages on IOAS ${id}`, { val64 },
    [{ type: 'IoasLargePagesSet', ctx: c.ctx.id, id, disableLargePages: disable }]);
}

/** `iommufd_ioas_iova_ranges`: the holes of the reserved tree over [0, ULONG_MAX], in ascending order. */
function iommufd_ioas_iova_ranges(c: Call, a: Arg): Step {
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', 'ioas.c iommufd_ioas_iova_ranges: __reserved != 0');
  const g = getIoas(c, u32(a, 'ioas_id'), 'iommufd_ioas_iova_ranges');
  if (g.err) return g.err;
  const ioas = g.o.ioas!;
  const holes: { start: bigint; last: bigint }[] = [];
  let at: bigint | undefined = 0n;
  for (const r of ioas.reserved) {
    if (at === undefined) break;
    if (r.start > at) holes.push({ start: at, last: r.start - 1n });
    at = r.last === U64_MAX ? undefined : r.last + 1n;
  }
  if (at !== undefined) holes.push({ start: at, last: U64_MAX });
  const room = u32(a, 'num_iovas');
  const written = holes.slice(0, room).map((h) => ({ start: h.start, last: h.last }));
  const out = respond(a, { num_iovas: BigInt(holes.length), out_iova_alignment: ioas.iovaAlignment, allowed_iovas: written });
  if (holes.length > room)
    return fail('EMSGSIZE', `ioas.c iommufd_ioas_iova_ranges: ${holes.length} ranges do not fit num_iovas=${room}`, [], out);
  return succeed(`ioas.c iommufd_ioas_iova_ranges: ${holes.length} usable range(s) outside the reserved ranges`, out);
}

function iommufd_ioas_allow_iovas(c: Call, a: Arg): Step {
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', 'ioas.c iommufd_ioas_allow_iovas: __reserved != 0');
  const g = getIoas(c, u32(a, 'ioas_id'), 'iommufd_ioas_allow_iovas');
  if (g.err) return g.err;
  return unmodelled('IOMMU_IOAS_ALLOW_IOVAS (the allowed interval tree)');
}

/** The checks `iommufd_ioas_map`, `_map_file` and `_copy` share before they look anything up. */
function mapFlagChecks(fn: string, flags: number, iovas: readonly [string, bigint][]) {
  if ((flags & ~MAP_FLAGS) !== 0) return fail('EOPNOTSUPP', `ioas.c ${fn}: flags 0x${flags.toString(16)} outside FIXED_IOVA|WRITEABLE|READABLE`);
  for (const [name, v] of iovas)
    if (v >= U64_MAX) return fail('EOVERFLOW', `ioas.c ${fn}: ${name} 0x${v.toString(16)} >= ULONG_MAX`);
  if ((flags & (MAP_WRITEABLE | MAP_READABLE)) === 0) return fail('EINVAL', `ioas.c ${fn}: neither IOMMU_IOAS_MAP_WRITEABLE nor READABLE`);
  return undefined;
}

function iommufd_ioas_map(c: Call, a: Arg): Step {
  const fn = 'iommufd_ioas_map';
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', `ioas.c ${fn}: __reserved != 0`);
  const e = mapFlagChecks(fn, u32(a, 'flags'), [['iova', u64(a, 'iova')], ['length', u64(a, 'length')]]);
  if (e) return e;
  const g = getIoas(c, u32(a, 'ioas_id'), fn);
  return g.err ?? unmodelled('IOMMU_IOAS_MAP (io_pagetable areas and pinning)');
}

function iommufd_ioas_map_file(c: Call, a: Arg): Step {
  const fn = 'iommufd_ioas_map_file';
  const e = mapFlagChecks(fn, u32(a, 'flags'), [['iova', u64(a, 'iova')], ['length', u64(a, 'length')]]);
  if (e) return e;
  const g = getIoas(c, u32(a, 'ioas_id'), fn);
  return g.err ?? unmodelled('IOMMU_IOAS_MAP_FILE (io_pagetable areas and pinning)');
}

function iommufd_ioas_copy(c: Call, a: Arg): Step {
  const fn = 'iommufd_ioas_copy';
  const e = mapFlagChecks(fn, u32(a, 'flags'),
    [['length', u64(a, 'length')], ['src_iova', u64(a, 'src_iova')], ['dst_iova', u64(a, 'dst_iova')]]);
  if (e) return e;
  const g = getIoas(c, u32(a, 'src_ioas_id'), fn);
  return g.err ?? unmodelled('IOMMU_IOAS_COPY (io_pagetable areas and pinning)');
}

function iommufd_ioas_unmap(c: Call, a: Arg): Step {
  const g = getIoas(c, u32(a, 'ioas_id'), 'iommufd_ioas_unmap');
  return g.err ?? unmodelled('IOMMU_IOAS_UNMAP (io_pagetable areas)');
}

/** `iommufd_ioas_change_process`: with no area anywhere there is nothing to re-account and it succeeds. */
function iommufd_ioas_change_process(c: Call, a: Arg): Step {
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', 'ioas.c iommufd_ioas_change_process: __reserved != 0');
  for (const o of c.ctx.objects.values())
    if (o.ioas !== undefined && o.ioas.areas > 0) return unmodelled('IOMMU_IOAS_CHANGE_PROCESS over IOASes with areas');
  return succeed('ioas.c iommufd_ioas_change_process: no IOAS has an area, nothing to re-account');
}

/** `iommufd_vfio_ioas` (vfio_compat.c): which IOAS the VFIO compat ioctls use. */
function iommufd_vfio_ioas(c: Call, a: Arg): Step {
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', 'vfio_compat.c iommufd_vfio_ioas: __reserved != 0');
  const op = u32(a, 'op');
  const ctx = c.ctx.id;
  if (op === 0) {
    const cur = c.ctx.vfioIoas;
    if (cur === 0 || getObject(c.ctx, cur, 'IOAS') === undefined)
      return fail('ENODEV', 'vfio_compat.c iommufd_vfio_ioas: GET with no compat IOAS set');
    return succeed(`vfio_compat.c iommufd_vfio_ioas: compat IOAS is ${cur}`, respond(a, { ioas_id: BigInt(cur) }));
  }
  if (op === 1) {
    const id = u32(a, 'ioas_id');
    const g = getIoas(c, id, 'iommufd_vfio_ioas');
    if (g.err) return g.err;
    return succeed(`vfio_compat.c iommufd_vfio_ioas: compat IOAS set to ${id}`, undefined, [{ type: 'VfioIoasSet', ctx, id }]);
  }
  if (op === 2) return succeed('vfio_compat.c iommufd_vfio_ioas: compat IOAS cleared', undefined, [{ type: 'VfioIoasSet', ctx, id: 0 }]);
  return fail('EOPNOTSUPP', `vfio_compat.c iommufd_vfio_ioas: op ${op} is not GET, SET or CLEAR`);
}

export const IOAS_HANDLERS: Readonly<Record<string, Handler>> = {
  IOMMU_IOAS_ALLOW_IOVAS: iommufd_ioas_allow_iovas,
  IOMMU_IOAS_COPY: iommufd_ioas_copy,
  IOMMU_IOAS_IOVA_RANGES: iommufd_ioas_iova_ranges,
  IOMMU_IOAS_MAP: iommufd_ioas_map,
  IOMMU_IOAS_UNMAP: iommufd_ioas_unmap,
  IOMMU_VFIO_IOAS: iommufd_vfio_ioas,
  IOMMU_IOAS_MAP_FILE: iommufd_ioas_map_file,
  IOMMU_IOAS_CHANGE_PROCESS: iommufd_ioas_change_process,
};
