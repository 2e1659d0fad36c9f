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
import type { DomainEvent } from '../events/domain.js';
import { U64_MAX } from '../events/values.js';
import { areaLength, describeArea, IOMMU_READ, IOMMU_WRITE, usableRanges } from '../hw/io_pagetable.js';
import { iopt_get_pages, iopt_map_pages, iopt_unmap_iova_range, isFailure, putPages, type PagesSlice } from '../hw/iopt_ops.js';
import { newPages } from '../hw/pages.js';
import { iopt_alloc_dmabuf_pages } from '../hw/dmabuf.js';
import { notifyAccessesEvents } from './access.js';
import { iommu_iova_range } from '../events/structs.js';
import { mmDraft } from '../hw/mm.js';
import { MOCK_FLAGS_ACCESS_SYZ, syzConvIova } from './selftest_access.js';
import { accountModeFor, iopt_alloc_user_pages, iopt_disable_large_pages, readIopt } from './vfio_compat_iopt.js';
import { ioptAlignment } from '../hw/iopt_domains.js';
import { copyToUser, fail, holding, isNullPtr, respond, structToBytes, succeed, u32, u64, unmodelled, userArray, type Arg, type Call, type Handler, type Operation, type Step } from './ioctl.js';
import { getObject, lookupWhy } from './objects.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

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
  const iopt = g.o.ioas!.iopt;
  const op = u32(a, 'op');
  const val64 = u64(a, 'val64');
  if (op === 1)
    return succeed(`ioas.c iommufd_ioas_option_huge_pages: large pages are ${iopt.disableLargePages ? 'disabled' : 'enabled'}`,
      { val64: iopt.disableLargePages ? 0n : 1n });
  if (op !== 0) return fail('EOPNOTSUPP', `ioas.c iommufd_ioas_option_huge_pages: op ${op} is neither SET nor GET`);
  if (val64 !== 0n && val64 !== 1n) return fail('EINVAL', `ioas.c iommufd_ioas_option_huge_pages: val64 ${val64} is neither 0 nor 1`);
  if (val64 === 1n) {
    if (!iopt.disableLargePages) return succeed('io_pagetable.c: large pages already enabled', { val64 });
    return succeed(`io_pagetable.c iopt_enable_large_pages on IOAS ${id}`, { val64 },
      [{ type: 'IoasLargePagesSet', ctx: c.ctx.id, id, disableLargePages: false, iovaAlignment: ioptAlignment(c.k.st, iopt, { disableLargePages: false }) }]);
  }
  const r = iopt_disable_large_pages(c, id, iopt);
  if (isFailure(r)) return fail(r.errno, r.why);
  return succeed(r.why, { val64 }, r.events);
}

/** `iommufd_ioas_iova_ranges`: the holes of the reserved tree over [0, ULONG_MAX], in ascending order. */
function iommufd_ioas_iova_ranges(c: Call, a: Arg): Step {
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', 'ioas.c iommufd_ioas_iova_ranges: __reserved != 0');
  const g = getIoas(c, u32(a, 'ioas_id'), 'iommufd_ioas_iova_ranges');
  if (g.err) return g.err;
  const iopt = g.o.ioas!.iopt;
  const holes = usableRanges(iopt);
  const room = u32(a, 'num_iovas');
  const written = holes.slice(0, room).map((h) => ({ start: h.start, last: h.last }));
  // The ranges go to user memory one element at a time; a fault stops the ioctl before the struct is copied back.
  const mem: DomainEvent[] = [];
  const d = mmDraft(c.k.st.mm, c.k.st.pageSize);
  for (let k = 0; k < written.length; k++) {
    const ptr = a.v.allowed_iovas;
    const at = typeof ptr === 'bigint' ? ptr + BigInt(16 * k) : ptr;
    const w = copyToUser(c, at, structToBytes(iommu_iova_range, written[k]!), d);
    mem.push(...w.events);
    if (w.fault !== undefined) return fail('EFAULT', `ioas.c iommufd_ioas_iova_ranges: ${w.fault}`, mem);
  }
  const out = respond(a, { num_iovas: BigInt(holes.length), out_iova_alignment: iopt.iovaAlignment, allowed_iovas: written });
  if (holes.length > room)
    return fail('EMSGSIZE', `ioas.c iommufd_ioas_iova_ranges: ${holes.length} ranges do not fit num_iovas=${room}`, mem, out);
  return succeed(`ioas.c iommufd_ioas_iova_ranges: ${holes.length} usable range(s) outside the reserved ranges`, out, mem);
}

/** `iommufd_ioas_allow_iovas` → `iopt_set_allow_iova`: replaces the whole allowed list, atomically. */
function iommufd_ioas_allow_iovas(c: Call, a: Arg): Step {
  const fn = 'ioas.c iommufd_ioas_allow_iovas';
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', `${fn}: __reserved != 0`);
  const id = u32(a, 'ioas_id');
  const g = getIoas(c, id, 'iommufd_ioas_allow_iovas');
  if (g.err) return g.err;
  const num = u32(a, 'num_iovas');
  const arr = userArray(c, a, 'allowed_iovas', num);
  if ('unmodelled' in arr) return unmodelled(arr.unmodelled);
  if ('errno' in arr) return fail(arr.errno, `${fn}: ${arr.why}`);
  const ranges: { start: bigint; last: bigint }[] = [];
  for (let k = 0; k < arr.elems.length; k++) {
    const e = arr.elems[k]!;
    const start = u64(e, 'start'), last = u64(e, 'last');
    if (start >= last) return fail('EINVAL', `${fn}: allowed_iovas[${k}] has start ${hex(start)} >= last ${hex(last)}`);
    const clash = ranges.find((r) => r.start <= last && start <= r.last);
    if (clash) return fail('EINVAL', `${fn}: allowed_iovas[${k}] overlaps an earlier element [${hex(clash.start)}, ${hex(clash.last)}]`);
    ranges.push({ start, last });
  }
  for (const r of ranges) {
    const res = g.o.ioas!.iopt.reserved.iterFirst(r.start, r.last);
    if (res) return fail('EADDRINUSE', `io_pagetable.c iopt_set_allow_iova: [${hex(r.start)}, ${hex(r.last)}] intersects the reserved range [${hex(res.start)}, ${hex(res.last)}]`);
  }
  return succeed(`${fn}: ${ranges.length} allowed range(s) on IOAS ${id}`, undefined, [{ type: 'AllowedIovasSet', ctx: c.ctx.id, ioas: id, ranges }]);
}

/** The checks `iommufd_ioas_map`, `_map_file` and `_copy` share before they look anything up. */
function mapFlagChecks(fn: string, flags: number, iovas: readonly [string, bigint][]) {
  if ((flags & ~MAP_FLAGS) !== 0) return fail('EOPNOTSUPP', `ioas.c ${fn}: flags 0x${flags.toString(16)} outside FIXED_IOVA|WRITEABLE|READABLE`);
  for (const [name, v] of iovas)
    if (v >= U64_MAX) return fail('EOVERFLOW', `ioas.c ${fn}: ${name} 0x${v.toString(16)} >= ULONG_MAX`);
  if ((flags & (MAP_WRITEABLE | MAP_READABLE)) === 0) return fail('EINVAL', `ioas.c ${fn}: neither IOMMU_IOAS_MAP_WRITEABLE nor READABLE`);
  return undefined;
}

/** `conv_iommu_prot`: IOMMU_CACHE is implied; READ and WRITE follow the flags. */
const protOf = (flags: number): number => ((flags & MAP_READABLE) ? IOMMU_READ : 0) | ((flags & MAP_WRITEABLE) ? IOMMU_WRITE : 0);

/** MAP and MAP_FILE after the pages exist: `iopt_map_common` → `iopt_map_pages`, then respond with the IOVA. */
function* mapCommon(c: Call, a: Arg, id: number, slice: PagesSlice, fn: string): Operation {
  const flags = u32(a, 'flags');
  const where = { ctx: c.ctx.id, ioas: id };
  const fixed = (flags & MAP_FIXED_IOVA) !== 0 ? u64(a, 'iova') : undefined;
  const r = yield* iopt_map_pages(() => readIopt(c, id), c.k.header, where, [slice], slice.length, fixed, protOf(flags), c.k.line);
  if (isFailure(r)) return fail(r.errno, r.why, r.undo);
  return succeed(`ioas.c ${fn}: [${hex(r.iova)}, ${hex(r.iova + slice.length - 1n)}] of IOAS ${id}`, respond(a, { iova: r.iova }), r.publish);
}

/** `iommufd_ioas_map` → `iopt_map_user_pages` → `iopt_alloc_user_pages`. */
function iommufd_ioas_map(c: Call, a: Arg): Step {
  const fn = 'iommufd_ioas_map';
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', `ioas.c ${fn}: __reserved != 0`);
  const length = u64(a, 'length'), uptr = u64(a, 'user_va');
  const e = mapFlagChecks(fn, u32(a, 'flags'), [['iova', u64(a, 'iova')], ['length', length]]);
  if (e) return e;
  const id = u32(a, 'ioas_id');
  const g = getIoas(c, id, fn);
  if (g.err) return g.err;
  const slice = iopt_alloc_user_pages(c, uptr, length, (u32(a, 'flags') & MAP_WRITEABLE) !== 0);
  if (isFailure(slice)) return fail(slice.errno, slice.why);
  return holding(c.ctx.id, id, mapCommon(c, a, id, slice, fn));
}

/** `iommufd_ioas_map_file` → `iopt_map_file_pages`: a dma-buf (`dma_buf_get` succeeds) or else a memfd. */
function iommufd_ioas_map_file(c: Call, a: Arg): Step {
  const fn = 'iommufd_ioas_map_file';
  const length = u64(a, 'length'), start = u64(a, 'start');
  const e = mapFlagChecks(fn, u32(a, 'flags'), [['iova', u64(a, 'iova')], ['length', length]]);
  if (e) return e;
  const id = u32(a, 'ioas_id');
  const g = getIoas(c, id, fn);
  if (g.err) return g.err;
  if (length === 0n) return fail('EINVAL', 'io_pagetable.c iopt_map_file_pages: length 0');
  if (start + length - 1n > U64_MAX) return fail('EOVERFLOW', 'io_pagetable.c iopt_map_file_pages: start + length - 1 overflows');
  const fd = Number(BigInt.asIntN(32, u64(a, 'fd')));
  const f = c.k.st.fds.get(fd);
  if (f === undefined) return fail('EBADF', `io_pagetable.c iopt_map_file_pages: fget(${fd}): fd is not open`);
  if (f.kind !== 'memfd' && f.kind !== 'dmabuf') return unmodelled(`IOMMU_IOAS_MAP_FILE of ${f.kind === 'other' ? f.path : `a ${f.kind} file`} (only memfds and dma-bufs are modelled)`);
  if (f.kind === 'dmabuf') {
    const refused = iopt_alloc_dmabuf_pages(c.k.st, f.dmabuf, start, length);
    if (refused !== undefined) return fail(refused.errno, refused.why);
  }
  const page = BigInt(c.k.st.pageSize);
  if (length > U64_MAX - page) return fail('EINVAL', `pages.c iopt_alloc_pages: length ${hex(length)} above SIZE_MAX - PAGE_SIZE`);
  const down = start - (start % page);
  const npages = Number((start % page + length + page - 1n) / page);
  const writable = (u32(a, 'flags') & MAP_WRITEABLE) !== 0;
  // A dma-buf's pages are the exporter's memory (hw/dmabuf.ts): never charged (IOPT_PAGES_ACCOUNT_NONE).
  const memfd = f.kind === 'memfd' ? f.memfd : c.k.st.dmabufs.get(f.dmabuf)!.memfd;
  const pages = f.kind === 'dmabuf'
    ? newPages(c.k.st.nextPages, 'dmabuf', 0n, memfd, down, npages, writable, 0, f.dmabuf)
    : newPages(c.k.st.nextPages, 'file', 0n, memfd, down, npages, writable, accountModeFor(c));
  const created = {
    type: 'PagesCreated' as const, pages: pages.id, kind: pages.kind, uptr: 0n, memfd, fileStart: down, npages, writable, accountMode: pages.accountMode,
    ...(f.kind === 'dmabuf' ? { dmabuf: f.dmabuf } : {}),
  };
  return holding(c.ctx.id, id, mapCommon(c, a, id, { pages, created, startByte: start - down, length }, fn));
}

/**
 * `iommufd_ioas_copy`: take references on the source's pages (`iopt_get_pages`), drop the source, then map them
 * into the destination; the new areas share the pages, so nothing is pinned or charged twice.
 */
function* iommufd_ioas_copy(c: Call, a: Arg): Operation {
  const fn = 'iommufd_ioas_copy';
  let flags = u32(a, 'flags'), srcIova = u64(a, 'src_iova');
  const length = u64(a, 'length'), src = u32(a, 'src_ioas_id');
  // iommufd_test_syz_conv_iova_id runs before the flag checks (a no-op stub without CONFIG_IOMMUFD_TEST).
  if (c.k.header.iommufd_test && (flags & MOCK_FLAGS_ACCESS_SYZ) !== 0) {
    flags &= ~MOCK_FLAGS_ACCESS_SYZ;
    const o = getObject(c.ctx, src, 'IOAS');
    if (o?.ioas !== undefined) srcIova = syzConvIova(o.ioas.iopt, srcIova);
  }
  const e = mapFlagChecks(fn, flags, [['length', length], ['src_iova', srcIova], ['dst_iova', u64(a, 'dst_iova')]]);
  if (e) return e;
  const gs = getIoas(c, src, fn);
  if (gs.err) return gs.err;
  const list = iopt_get_pages(c.k.st, gs.o.ioas!.iopt, srcIova, length);
  if (isFailure(list)) return fail(list.errno, list.why);
  yield list.map((l) => ({ type: 'PagesRefTaken' as const, pages: l.pages.id }));
  /** Drops the list's references; `dropped` counts references the same step already dropped (aborted areas). */
  const drop = (dropped = new Map<number, number>()): DomainEvent[] => {
    const out: DomainEvent[] = [];
    for (const l of list) {
      const d = dropped.get(l.pages.id) ?? 0;
      out.push({ type: 'PagesRefDropped', pages: l.pages.id }, ...putPages(c.k.st, l.pages.id, d));
      dropped.set(l.pages.id, d + 1);
    }
    return out;
  };
  const dst = u32(a, 'dst_ioas_id');
  const gd = getIoas(c, dst, fn);
  if (gd.err) return { ...gd.err, events: drop() };
  return yield* holding(c.ctx.id, dst, copyInto(c, a, dst, flags, src, length, list, drop));
}

/** The rest of `iommufd_ioas_copy`, holding the destination: map the source's pages there. */
function* copyInto(c: Call, a: Arg, dst: number, flags: number, src: number, length: bigint, list: readonly PagesSlice[],
  drop: (dropped?: Map<number, number>) => DomainEvent[]): Operation {
  const fn = 'iommufd_ioas_copy';
  const fixed = (flags & MAP_FIXED_IOVA) !== 0 ? u64(a, 'dst_iova') : undefined;
  const r = yield* iopt_map_pages(() => readIopt(c, dst), c.k.header, { ctx: c.ctx.id, ioas: dst }, list, length, fixed, protOf(flags), c.k.line);
  if (isFailure(r)) {
    const dropped = new Map<number, number>();
    for (const e of r.undo ?? []) if (e.type === 'AreaRemoved') {
      const pg = c.ctx.objects.get(dst)?.ioas?.iopt.areaById.get(e.area)?.value.pages;
      if (pg !== undefined) dropped.set(pg, (dropped.get(pg) ?? 0) + 1);
    }
    return fail(r.errno, r.why, [...(r.undo ?? []), ...drop(dropped)]);
  }
  return succeed(`ioas.c ${fn}: [${hex(r.iova)}, ${hex(r.iova + length - 1n)}] of IOAS ${dst} shares the pages of IOAS ${src}`,
    respond(a, { dst_iova: r.iova }), [...r.publish, ...drop()]);
}

/** `iommufd_ioas_unmap`: unmap-all for (0, U64_MAX), else the range; 0 bytes unmapped is ENOENT. */
function iommufd_ioas_unmap(c: Call, a: Arg): Step {
  const id = u32(a, 'ioas_id');
  const g = getIoas(c, id, 'iommufd_ioas_unmap');
  if (g.err) return g.err;
  return holding(c.ctx.id, id, unmapHeld(c, a, id));
}

function* unmapHeld(c: Call, a: Arg, id: number): Operation {
  const fn = 'ioas.c iommufd_ioas_unmap';
  const iova = u64(a, 'iova'), length = u64(a, 'length');
  const where = { ctx: c.ctx.id, ioas: id };
  let start = 0n, last = U64_MAX;
  const all = iova === 0n && length === U64_MAX;
  if (!all) {
    if (iova >= U64_MAX || length >= U64_MAX) return fail('EOVERFLOW', `${fn}: iova or length >= ULONG_MAX`);
    if (length === 0n) return fail('EINVAL', 'io_pagetable.c iopt_unmap_iova: length 0');
    if (iova + length - 1n > U64_MAX) return fail('EOVERFLOW', 'io_pagetable.c iopt_unmap_iova: iova + length - 1 overflows');
    start = iova;
    last = iova + length - 1n;
  }
  const r = yield* iopt_unmap_iova_range(() => readIopt(c, id), where, start, last, (s, l) => notifyAccessesEvents(c.k.st, c.ctx, id, s, l));
  if (r.failure) return fail(r.failure.errno, r.failure.why);
  if (!all && r.unmapped === 0n) return fail('ENOENT', `${fn}: no area lies in [${hex(start)}, ${hex(last)}]`);
  return succeed(`${fn}: ${hex(r.unmapped)} bytes unmapped${all ? ' (unmap all)' : ''}`, respond(a, { length: r.unmapped }));
}

/** `iommufd_ioas_change_process`: with no area anywhere there is nothing to re-account and it succeeds. */
function iommufd_ioas_change_process(c: Call, a: Arg): Step {
  if (u32(a, '__reserved') !== 0) return fail('EOPNOTSUPP', 'ioas.c iommufd_ioas_change_process: __reserved != 0');
  for (const o of c.ctx.objects.values())
    if (o.ioas !== undefined && o.ioas.iopt.areas.size > 0) return unmodelled('IOMMU_IOAS_CHANGE_PROCESS over IOASes with areas');
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
