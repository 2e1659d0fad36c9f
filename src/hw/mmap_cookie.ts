/**
 * mmap cookies on the iommufd file (drivers/iommu/iommufd/driver.c `_iommufd_alloc_mmap`/`_iommufd_destroy_mmap`,
 * main.c `iommufd_fops_mmap`, `iommufd_fops_vma_open`/`_close`).
 *
 * Theory of operation. A driver that wants user space to map a physical range (a vIOMMU's register page, a HW
 * queue's doorbell) asks the core for a cookie: `mtree_alloc_range(&ictx->mt_mmap, …, length, PAGE_SIZE,
 * ULONG_MAX)` picks the lowest free, page-aligned offset from PAGE_SIZE up, so offset 0 is never a cookie and the
 * values are the same on every run. The offset goes back to user space in the driver's output
 * (`out_mmap_offset`/`out_mmap_length`); `mmap(fd, offset)` then finds the cookie, requires MAP_SHARED (EINVAL) and
 * no PROT_EXEC (EPERM), and only the exact offset and length of a cookie whose owner is alive (ENXIO otherwise).
 * Each VMA takes a `users` reference on the owner, so IOMMU_DESTROY of the owner is EBUSY until munmap; the VMA
 * also holds the iommufd file (`vma->vm_file`); a VMA split by a partial munmap holds one of each per piece. The
 * range behind a cookie is modelled as a hidden memfd's pages.
 */
import type { DomainEvent } from '../events/domain.js';
import type { IommufdCtx, State } from '../projections/state.js';
import type { MmapCookie } from '../projections/viommu.js';
import { ftruncateEvents } from './mm.js';
import type { Failure } from './iopt_ops.js';
import { U64_MAX } from './u64.js';
import { isMutant } from '../check/mutants.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** `mtree_alloc_range` from PAGE_SIZE: the lowest start of a free gap of `length` bytes. */
export function allocCookieOffset(ctx: IommufdCtx, pageSize: number, length: bigint): bigint | undefined {
  let start = BigInt(pageSize);
  for (const c of [...ctx.v.cookies.values()].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))) {
    if (start + length <= c.start) break;
    if (c.start + c.length > start) start = c.start + c.length;
  }
  return start + length - 1n > U64_MAX ? undefined : start;
}

/**
 * The events of a new cookie of `length` bytes owned by `owner`, backed by fresh zeroed kernel pages holding
 * `contents` at offset 0 (`__get_free_pages(__GFP_ZERO)` then the driver's store).
 */
export function cookieAllocEvents(st: State, ctx: IommufdCtx, owner: number, length: bigint, contents: Uint8Array): { offset: bigint; events: DomainEvent[] } | Failure {
  const offset = allocCookieOffset(ctx, st.pageSize, length);
  if (offset === undefined) return { errno: 'ENOSPC', why: 'driver.c _iommufd_alloc_mmap: mtree_alloc_range finds no free range' };
  const memfd = st.nextMemfd, frame = st.mm.nextFrame;
  const events: DomainEvent[] = [
    { type: 'MemfdCreated', memfd, name: `[iommufd mmap ${hex(offset)}]` },
    { type: 'MemfdResized', memfd, size: length },
    { type: 'FilePagesAdded', file: memfd, start: 0n, last: length - 1n, frame },
  ];
  if (contents.length > 0) events.push({ type: 'MemWritten', frame, offset: 0, data: Buffer.from(contents).toString('hex') });
  events.push({ type: 'MmapCookieAdded', ctx: ctx.id, start: offset, length, owner, memfd });
  return { offset, events };
}

/** `_iommufd_destroy_mmap` for every cookie `owner` holds: the cookie leaves the tree and its pages are freed. */
export function cookieDestroyEvents(st: State, ctx: IommufdCtx, owner: number): DomainEvent[] {
  const out: DomainEvent[] = [];
  // MUTANT cookie-outlives-owner: the owner's destroy leaves its cookies in ictx->mt_mmap.
  if (isMutant('cookie-outlives-owner')) return out;
  for (const c of ctx.v.cookies.values()) {
    if (c.owner !== owner) continue;
    out.push({ type: 'MmapCookieRemoved', ctx: ctx.id, start: c.start }, ...ftruncateEvents(st.mm, st.pageSize, c.memfd, 0n));
  }
  return out;
}

/** The cookie whose range holds `offset` (`mtree_load` returns the entry for any contained offset). */
function cookieAt(ctx: IommufdCtx, offset: bigint): MmapCookie | undefined {
  for (const c of ctx.v.cookies.values()) if (offset >= c.start && offset < c.start + c.length) return c;
  return undefined;
}

const MAP_PRIVATE = 2n, PROT_EXEC = 4n;

/**
 * `iommufd_fops_mmap` for a VMA of `length` (page aligned by do_mmap) at file `offset`: the cookie it maps and the
 * references the VMA takes, or why it is refused.
 */
export function iommufd_fops_mmap(ctx: IommufdCtx, flags: bigint, prot: bigint, offset: bigint, length: bigint): { cookie: MmapCookie } | Failure {
  const fn = 'main.c iommufd_fops_mmap';
  if ((flags & 3n) === MAP_PRIVATE) return { errno: 'EINVAL', why: `${fn}: the VMA is not VM_SHARED (MAP_SHARED is required)` };
  if ((prot & PROT_EXEC) !== 0n) return { errno: 'EPERM', why: `${fn}: the VMA is VM_EXEC (PROT_EXEC)` };
  const c = cookieAt(ctx, offset);
  if (c === undefined) return { errno: 'ENXIO', why: `${fn}: no mmap cookie holds offset ${hex(offset)}` };
  const owner = ctx.objects.get(c.owner);
  if (owner === undefined || owner.users === 0) return { errno: 'ENXIO', why: `${fn}: the owner of cookie ${hex(c.start)} is being destroyed` };
  if (c.start !== offset || c.length !== length)
    return { errno: 'ENXIO', why: `${fn}: [${hex(offset)}, +${hex(length)}) is not exactly the cookie [${hex(c.start)}, +${hex(c.length)})` };
  return { cookie: c };
}

/** The VMA's `vm_ops->open` side: a reference on the owner and on the file. */
export function cookieVmaEvents(ctx: IommufdCtx, c: MmapCookie, start: bigint, length: bigint): DomainEvent[] {
  return [
    { type: 'CookieVmaMapped', ctx: ctx.id, start, last: start + length - 1n, cookie: c.start, owner: c.owner },
    { type: 'ObjectRefTaken', ctx: ctx.id, id: c.owner, by: 0 },
    { type: 'CtxRefTaken', ctx: ctx.id },
  ];
}

/**
 * munmap of [start, last] over the cookie VMAs: a VMA inside it is closed (`iommufd_fops_vma_close`: the owner and
 * file references go); a VMA it cuts is split first (`__split_vma`: each new piece gets `vm_ops->open`, a reference
 * on the owner, and `get_file`), then the piece inside is closed, so what stays mapped keeps one reference per piece.
 * `lastRef` names a context whose last file reference this drops (a release from munmap, which the caller refuses).
 */
export function cookieVmaUnmapEvents(st: State, start: bigint, last: bigint): { events: DomainEvent[]; lastRef: number | undefined } {
  const events: DomainEvent[] = [];
  let lastRef: number | undefined;
  for (const ctx of st.ctxs.values()) {
    let refs = ctx.fileRefs;
    for (const v of ctx.v.vmas.values()) {
      if (v.last < start || v.start > last) continue;
      const kept = [
        ...(v.start < start ? [{ start: v.start, last: start - 1n }] : []),
        ...(v.last > last ? [{ start: last + 1n, last: v.last }] : []),
      ];
      events.push({ type: 'CookieVmaUnmapped', ctx: ctx.id, start: v.start });
      for (const k of kept)
        events.push(
          { type: 'CookieVmaMapped', ctx: ctx.id, start: k.start, last: k.last, cookie: v.cookie, owner: v.owner },
          { type: 'ObjectRefTaken', ctx: ctx.id, id: v.owner, by: 0 },
          { type: 'CtxRefTaken', ctx: ctx.id },
        );
      events.push({ type: 'ObjectRefDropped', ctx: ctx.id, id: v.owner, by: 0 }, { type: 'CtxRefDropped', ctx: ctx.id });
      refs += kept.length - 1;
      if (refs === 0) lastRef = ctx.id;
    }
  }
  return { events, lastRef };
}
