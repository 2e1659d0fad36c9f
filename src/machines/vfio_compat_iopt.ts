/**
 * io_pagetable entry points that the VFIO compat ioctls (vfio_compat.ts) and the IOAS ioctls (ioas.ts) share, so
 * neither restates the other: `iopt_alloc_user_pages` (pages.c, the user pages a MAP slices), the accounting mode
 * new pages get, `iopt_disable_large_pages` (VFIO_SET_IOMMU(TYPE1) and IOMMU_OPTION HUGE_PAGES=0), and re-reading
 * an IOAS between the steps of an operation.
 *
 */
import type { DomainEvent } from '../events/domain.js';
import { areaLength, type Iopt } from '../hw/io_pagetable.js';
import { ioptAlignment } from '../hw/iopt_domains.js';
import type { Failure, PagesSlice } from '../hw/iopt_ops.js';
import { IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_NONE, IOPT_PAGES_ACCOUNT_USER, newPages } from '../hw/pages.js';
import { U64_MAX } from '../hw/u64.js';
import type { State } from '../projections/state.js';
import type { Call } from './ioctl.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** The `pgsize_bitmap` of every domain attached to the IOAS (`xa_for_each(&iopt->domains)`). */
export const ioptDomainPgsizes = (st: State, i: Iopt): bigint[] =>
  i.domains.flatMap((d) => { const dom = st.domains.get(d); return dom === undefined ? [] : [dom.pgsizeBitmap]; });

/**
 * The accounting mode new pages get: `iopt_alloc_pages` picks NONE with CAP_IPC_LOCK, else USER, and
 * `iopt_map_common` upgrades USER to MM in an MM-mode context (RLIMIT_MODE=1, or opened as /dev/vfio/vfio).
 */
export function accountModeFor(c: Call): 0 | 1 | 2 {
  if (c.k.header.limits.cap_ipc_lock) return IOPT_PAGES_ACCOUNT_NONE;
  return c.ctx.accountMode === 1 ? IOPT_PAGES_ACCOUNT_MM : IOPT_PAGES_ACCOUNT_USER;
}

/** The io_pagetable of IOAS `id` as it is now (re-read after every step: other threads may have run). */
export function readIopt(c: Call, id: number): { st: State; iopt: Iopt } {
  const o = c.ctx.objects.get(id);
  if (o?.ioas === undefined) throw new Error(`IOAS ${id} vanished while an operation held it`);
  return { st: c.k.st, iopt: o.ioas.iopt };
}

/**
 * `iopt_alloc_user_pages(uptr, length, writable)` → `iopt_alloc_pages`: the pages covering [uptr, uptr+length)
 * from the page holding `uptr`, and the event that creates them (emitted with the area reservation, so pages that
 * never get an IOVA are never seen). Nothing is pinned here.
 */
export function iopt_alloc_user_pages(c: Call, uptr: bigint, length: bigint, writable: boolean): PagesSlice | Failure {
  const page = BigInt(c.k.st.pageSize);
  if (uptr + length > U64_MAX) return { errno: 'EOVERFLOW', why: `pages.c iopt_alloc_user_pages: user address ${hex(uptr)} + length ${hex(length)} overflows` };
  if (length === 0n || length > U64_MAX - page) return { errno: 'EINVAL', why: `pages.c iopt_alloc_pages: length ${hex(length)} is 0 or above SIZE_MAX - PAGE_SIZE` };
  const down = uptr - (uptr % page);
  const npages = Number((uptr % page + length + page - 1n) / page);
  const pages = newPages(c.k.st.nextPages, 'user', down, undefined, 0n, npages, writable, accountModeFor(c));
  const created: DomainEvent = {
    type: 'PagesCreated', pages: pages.id, kind: 'user', uptr: down, memfd: undefined, fileStart: 0n, npages, writable, accountMode: pages.accountMode,
  };
  return { pages, created, startByte: uptr - down, length };
}

/**
 * `iopt_disable_large_pages`: already disabled is success; refused (EINVAL) once a domain is attached and areas
 * exist; otherwise `iopt_calculate_iova_alignment` with the flag set may raise the alignment to PAGE_SIZE, and if it
 * rises every area must already conform (`iopt_check_iova_alignment`, EADDRINUSE, and the flag is restored).
 */
export function iopt_disable_large_pages(c: Call, id: number, i: Iopt): { events: DomainEvent[]; why: string } | Failure {
  const fn = 'io_pagetable.c iopt_disable_large_pages';
  if (i.disableLargePages) return { events: [], why: `${fn}: large pages of IOAS ${id} are already disabled` };
  if (i.domains.length > 0 && i.areas.size > 0)
    return { errno: 'EINVAL', why: `${fn}: IOAS ${id} has ${i.domains.length} domain(s) attached and ${i.areas.size} area(s) mapped (they may use large IOPTEs)` };
  const want = ioptAlignment(c.k.st, i, { disableLargePages: true });
  if (want > i.iovaAlignment) {
    const mask = want - 1n;
    for (const n of i.areas.inOrder()) {
      const a = n.value;
      if ((a.start & mask) !== 0n || (areaLength(a) & mask) !== 0n || (BigInt(a.pageOffset) & mask) !== 0n)
        return {
          errno: 'EADDRINUSE',
          why: `io_pagetable.c iopt_check_iova_alignment: area [${hex(a.start)}, ${hex(a.last)}] (page offset ${hex(BigInt(a.pageOffset))}) of IOAS ${id} is not aligned to the new iova_alignment ${hex(want)}`,
        };
    }
  }
  return { events: [{ type: 'IoasLargePagesSet', ctx: c.ctx.id, id, disableLargePages: true, iovaAlignment: want }], why: `${fn}: large pages of IOAS ${id} disabled (iova_alignment ${hex(want)})` };
}
