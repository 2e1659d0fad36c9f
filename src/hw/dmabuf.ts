/**
 * dma-buf revocation (drivers/iommu/iommufd/pages.c `iopt_revoke_notify`, `iopt_dmabuf_revoked`; the exporter's
 * `dma_buf_move_notify`, here the selftest's `iommufd_test_dmabuf_revoke`).
 *
 * Theory of operation. An exporter may take its memory back at any time (a device reset, a BAR disabled). Before
 * it does, every importer is told: iommufd unmaps every domain range that maps the buffer (flushing the IOTLB, so
 * no translation reaches the memory any more) and marks the pages dead (`phys.len = 0`). A dead area stays in the
 * IOAS, holding its IOVA, until IOAS_UNMAP; no domain added later maps it. Un-revoking does not revive pages that
 * died: only new mappings see the memory again.
 */
import type { DomainEvent } from '../events/domain.js';
import type { State } from '../projections/state.js';
import { flushEvents } from './iotlb.js';

export interface DmabufData {
  readonly size: bigint;
  revoked: boolean;
  /** The iopt_pages of this buffer that a revocation killed. */
  readonly deadPages: Set<number>;
}
export const cloneDmabuf = (d: DmabufData): DmabufData => ({ ...d, deadPages: new Set(d.deadPages) });

export type DmabufEvent =
  | { readonly type: 'DmabufExported'; readonly memfd: number; readonly size: bigint }
  /** `dma_buf_move_notify` with the exporter's new state; `revoked` kills every iopt_pages of the buffer. */
  | { readonly type: 'Revoke'; readonly memfd: number; readonly revoked: boolean };

export function dmabufEvolve(st: State, ev: DmabufEvent): void {
  if (ev.type === 'DmabufExported') {
    st.dmabufs.set(ev.memfd, { size: ev.size, revoked: false, deadPages: new Set() });
    return;
  }
  const d = st.dmabufs.get(ev.memfd);
  if (d === undefined) throw new Error(`no dma-buf on memfd ${ev.memfd}`);
  d.revoked = ev.revoked;
  if (ev.revoked) for (const p of st.pages.values()) if (p.memfd === ev.memfd) d.deadPages.add(p.id);
}

/** Whether pages `id` (of memfd `memfd`) were killed by a revocation (`iopt_dmabuf_revoked`). */
export function isDeadPages(st: State, memfd: number | undefined, id: number): boolean {
  return memfd !== undefined && (st.dmabufs.get(memfd)?.deadPages.has(id) ?? false);
}

/** `iopt_revoke_notify` for every importer of the buffer: each live area is unmapped from every domain. */
export function revokeEvents(st: State, memfd: number): DomainEvent[] {
  const out: DomainEvent[] = [{ type: 'Revoke', memfd, revoked: true }];
  for (const ctx of st.ctxs.values()) {
    for (const o of ctx.objects.values()) {
      const i = o.ioas?.iopt;
      if (i === undefined) continue;
      for (const n of i.areas.inOrder()) {
        const a = n.value;
        const p = st.pages.get(a.pages);
        if (p?.memfd !== memfd || isDeadPages(st, memfd, p.id) || !a.published) continue;
        for (const d of i.domains) out.push({ type: 'DomainUnmapped', domain: d, iova: a.start, last: a.last }, ...flushEvents(st.domains.get(d), a.start, a.last));
      }
    }
  }
  return out;
}
