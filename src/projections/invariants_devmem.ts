/**
 * Invariants of device memory handed to user space and to peer devices: revoked dma-buf memory is unreachable
 * through any IOMMU (B14), and an mmap cookie of the iommufd file resolves only to a live owner, which no VMA
 * outlives.
 *
 * Revocation (pages.c `iopt_revoke_notify`, `iopt_dmabuf_revoked`): before an exporter's `move_notify` returns,
 * iommufd has unmapped every domain range of every area backed by the buffer and flushed the IOTLB; the pages are
 * dead and no domain maps them again (a domain added later skips them). So at every step boundary no PTE and no
 * IOTLB entry of the area's IOAS's domains may lie inside a dead area. A PTE mapping a dead area that appears later
 * is caught where PTEs are checked (invariants_dma.ts `checkPtes` calls `deadAreaMapped`).
 *
 * Cookies (driver.c `_iommufd_alloc_mmap`/`_iommufd_destroy_mmap`, main.c `iommufd_fops_mmap`,
 * `iommufd_fops_vma_close`): a cookie is removed when its owner is destroyed; a VMA of a cookie holds a `users`
 * reference on the owner, so IOMMU_DESTROY is EBUSY until munmap. So every cookie names a live owner, and every
 * cookie VMA names a cookie that exists, with the same owner.
 */
import { isDeadPages } from '../hw/dmabuf.js';
import type { HwDomain } from '../hw/domain.js';
import type { Area } from '../hw/io_pagetable.js';
import { S_FINALIZED } from '../machines/lifecycle.js';
import { allIoas, hex, type InvariantViolation, type IoasRef } from './invariants_core.js';
import type { IommufdCtx, State } from './state.js';

export const R_REVOKED = 'pages.c iopt_revoke_notify / iopt_dmabuf_revoked (dma_buf_move_notify): a revoked buffer is unmapped from every domain and the IOTLB flushed before the exporter goes on; its dead areas are never mapped again';
export const R_COOKIE = 'driver.c _iommufd_destroy_mmap, main.c iommufd_fops_mmap / iommufd_fops_vma_close: a cookie names a live owner, and each VMA of a cookie holds a users reference on it (no owner is destroyed while mapped)';

/** Whether area `a` is backed by pages a revocation killed. */
export function isDeadArea(st: State, a: Area): boolean {
  const p = st.pages.get(a.pages);
  return p !== undefined && isDeadPages(st, p);
}

/** The violation when domain `d` maps or caches [from, to] of the dead area `a` of `r`, else nothing. */
export function deadAreaMapped(d: HwDomain, r: IoasRef, a: Area, out: InvariantViolation[]): void {
  const pte = d.map.iterFirst(a.start, a.last);
  if (pte !== undefined) {
    out.push({
      name: 'revoked-unreachable', rule: R_REVOKED,
      message: `domain ${d.id} still maps IOVA [${hex(pte.start > a.start ? pte.start : a.start)}, ${hex(pte.last < a.last ? pte.last : a.last)}] of area ${a.id} of IOAS ${r.obj.id} (ctx ${r.ctx.id}), whose dma-buf was revoked`,
    });
    return;
  }
  const e = d.iotlb.iterFirst(a.start, a.last);
  if (e !== undefined)
    out.push({
      name: 'revoked-unreachable', rule: R_REVOKED,
      message: `the IOTLB of domain ${d.id} still caches IOVA [${hex(e.start)}, ${hex(e.last)}] of area ${a.id} of IOAS ${r.obj.id} (ctx ${r.ctx.id}), whose dma-buf was revoked`,
    });
}

/** No domain maps or caches a dead area of a dma-buf in `dmabufs` (every buffer: `'all'`). */
export function checkRevoked(st: State, dmabufs: ReadonlySet<number> | 'all', out: InvariantViolation[]): void {
  if (dmabufs !== 'all' && dmabufs.size === 0) return;
  if (![...st.dmabufs.values()].some((b) => b.deadPages.size > 0)) return;
  for (const r of allIoas(st)) {
    if (r.iopt.domains.length === 0) continue;
    for (const n of r.iopt.areas.inOrder()) {
      const a = n.value;
      const buf = st.pages.get(a.pages)?.dmabuf;
      if (buf === undefined || (dmabufs !== 'all' && !dmabufs.has(buf)) || !isDeadArea(st, a)) continue;
      for (const id of r.iopt.domains) {
        const d = st.domains.get(id);
        if (d !== undefined) deadAreaMapped(d, r, a, out);
      }
    }
  }
}

function checkCtxCookies(c: IommufdCtx, out: InvariantViolation[]): void {
  const live = (id: number): boolean => c.objects.get(id)?.life === S_FINALIZED;
  for (const k of c.v.cookies.values())
    if (!live(k.owner))
      out.push({ name: 'cookie-owner-live', rule: R_COOKIE, message: `ctx ${c.id}: mmap cookie ${hex(k.start)} names object ${k.owner}, which is not a live object` });
  for (const m of c.v.vmas.values()) {
    const k = c.v.cookies.get(m.cookie);
    if (k === undefined || k.owner !== m.owner)
      out.push({ name: 'cookie-owner-live', rule: R_COOKIE, message: `ctx ${c.id}: the VMA at ${hex(m.start)} maps cookie ${hex(m.cookie)} of object ${m.owner}, which no longer exists (the owner was destroyed while mapped)` });
    else if (!live(m.owner))
      out.push({ name: 'cookie-owner-live', rule: R_COOKIE, message: `ctx ${c.id}: the VMA at ${hex(m.start)} maps cookie ${hex(m.cookie)} of object ${m.owner}, which is not live` });
  }
}

/** The cookies and cookie VMAs of the contexts in `ctxs` (every context: `'all'`). */
export function checkCookies(st: State, ctxs: ReadonlySet<number> | 'all', out: InvariantViolation[]): void {
  for (const c of st.ctxs.values()) if (ctxs === 'all' || ctxs.has(c.id)) checkCtxCookies(c, out);
}
