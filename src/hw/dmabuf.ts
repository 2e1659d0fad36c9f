/**
 * dma-bufs as iommufd imports them, and their revocation (drivers/iommu/iommufd/pages.c `iopt_alloc_dmabuf_pages`,
 * `pfn_reader_fill_dmabuf`, `iopt_revoke_notify`, `iopt_dmabuf_revoked`; the exporter's `dma_buf_move_notify`).
 *
 * Theory of operation. One mechanism, two exporters. The selftest (`iommufd_test_dmabuf_get`,
 * machines/selftest_dmabuf.ts) exports zeroed kernel memory, here a kernel memfd; vfio-pci
 * (`vfio_pci_core_feature_dma_buf`, machines/vfio_pci_dmabuf.ts) exports ranges of a device BAR, here the BAR's host
 * physical addresses (hw/vfio_bar.ts `barPhys`). IOMMU_IOAS_MAP_FILE of either makes an iopt_pages of kind 'dmabuf'
 * (IOPT_ADDRESS_DMABUF): never charged, its PFNs are the exporter's (`dmabufFrames`). Differences from the kernel,
 * not observable through any ioctl modelled here: the model pins the selftest's memfd frames (the kernel maps its
 * physical range without FOLL_PIN); a BAR's PFNs are held by the iopt_pages like pinned pages but no RAM frame is
 * pinned for them.
 *
 * An exporter may take its memory back at any time (a device reset, a BAR disabled, the device closed). Before it
 * does, every importer is told: iommufd unmaps every domain range that maps the buffer (flushing the IOTLB, so no
 * translation reaches the memory any more; a **P2pUnmap** names each) and marks the pages dead (`phys.len = 0`). A
 * dead area stays in the IOAS, holding its IOVA, until IOAS_UNMAP; no domain added later maps it. Un-revoking does
 * not revive pages that died (`iopt_revoke_notify` returns early once `iopt_dmabuf_revoked`): only new mappings see
 * the memory again.
 */
import type { DomainEvent } from '../events/domain.js';
import type { State } from '../projections/state.js';
import { flushEvents } from './iotlb.js';
import { isMutant } from '../check/mutants.js';
import type { Failure } from './iopt_ops.js';
import type { IoptPages } from './pages.js';

/** `type_max` of `struct pfn_batch`'s npfns (u32): a dma-buf maps as one batch entry. */
const MAX_NPFNS = 0xffff_ffffn;
const hex = (v: bigint): string => `0x${v.toString(16)}`;

export interface DmabufData {
  readonly size: bigint;
  /** Selftest exporter: the kernel memfd holding the memory. */
  readonly memfd: number | undefined;
  /** vfio-pci exporter: the device path, the host physical address of its first range, and how many ranges it has. */
  readonly dev: string | undefined;
  readonly phys: bigint;
  readonly nrRanges: number;
  revoked: boolean;
  /** `vfio_pci_dma_buf_cleanup` ran (the device was closed): revoked for good, no exporter left to restore it. */
  orphaned: boolean;
  /** The iopt_pages of this buffer that a revocation killed. */
  readonly deadPages: Set<number>;
}
export const cloneDmabuf = (d: DmabufData): DmabufData => ({ ...d, deadPages: new Set(d.deadPages) });

export type DmabufEvent =
  | {
    readonly type: 'DmabufExported'; readonly dmabuf: number; readonly size: bigint; readonly memfd: number | undefined;
    readonly dev: string | undefined; readonly phys: bigint; readonly nrRanges: number; readonly revoked: boolean;
  }
  /** `dma_buf_move_notify` with the exporter's new state; `revoked` kills every iopt_pages of the buffer; `final` orphans it. */
  | { readonly type: 'Revoke'; readonly dmabuf: number; readonly revoked: boolean; readonly final: boolean };

export function dmabufEvolve(st: State, ev: DmabufEvent): void {
  if (ev.type === 'DmabufExported') {
    st.dmabufs.set(ev.dmabuf, { size: ev.size, memfd: ev.memfd, dev: ev.dev, phys: ev.phys, nrRanges: ev.nrRanges, revoked: ev.revoked, orphaned: false, deadPages: new Set() });
    return;
  }
  const d = st.dmabufs.get(ev.dmabuf);
  if (d === undefined) throw new Error(`no dma-buf ${ev.dmabuf}`);
  d.revoked = ev.revoked;
  if (ev.final) d.orphaned = true;
  if (ev.revoked) for (const p of st.pages.values()) if (p.dmabuf === ev.dmabuf) d.deadPages.add(p.id);
}

/** The id the next exported dma-buf gets (dma-bufs are never forgotten, so ids are never reused). */
export const nextDmabufId = (st: State): number => st.dmabufs.size + 1;

/** Who exported dma-buf `id`, for explanations. */
export const exporterName = (d: DmabufData): string => d.dev ?? 'the selftest';

/**
 * The checks of `iopt_alloc_dmabuf_pages` → `iopt_map_dmabuf` in order, for MAP_FILE of [start, start + length) of
 * dma-buf `id`: the range inside the buffer, the exporter's attach (`vfio_pci_dma_buf_attach`: revoked → ENODEV),
 * then `vfio_pci_dma_buf_iommufd_map` (one range only). Undefined when the pages can be made.
 */
export function iopt_alloc_dmabuf_pages(st: State, id: number, start: bigint, length: bigint): Failure | undefined {
  const d = st.dmabufs.get(id)!;
  const fn = 'pages.c iopt_alloc_dmabuf_pages';
  if (d.size <= start + length - 1n) return { errno: 'EINVAL', why: `${fn}: [${hex(start)}, +${hex(length)}) passes the end of the ${hex(d.size)}-byte dma-buf` };
  if (length / BigInt(st.pageSize) >= MAX_NPFNS) return { errno: 'EINVAL', why: `${fn}: ${hex(length)} bytes is MAX_NPFNS pages or more` };
  if (d.revoked) {
    const who = d.dev === undefined ? 'selftest.c iommufd_test_dma_buf_attach' : 'vfio_pci_dmabuf.c vfio_pci_dma_buf_attach';
    return { errno: 'ENODEV', why: `${who}: ${exporterName(d)} has revoked the dma-buf${d.orphaned ? ' for good (the device was closed)' : ''}` };
  }
  if (d.dev !== undefined && d.nrRanges !== 1)
    return { errno: 'EOPNOTSUPP', why: `vfio_pci_dmabuf.c vfio_pci_dma_buf_iommufd_map: the dma-buf has ${d.nrRanges} ranges; iommufd imports only one` };
  return undefined;
}

/** Whether pages `p` were killed by a revocation (`iopt_dmabuf_revoked`). */
export function isDeadPages(st: State, p: IoptPages): boolean {
  return p.dmabuf !== undefined && (st.dmabufs.get(p.dmabuf)?.deadPages.has(p.id) ?? false);
}

/** Whether `p` maps device memory (a BAR) rather than RAM frames: nothing in the mm is pinned for it. */
export const isDeviceMemory = (st: State, p: IoptPages): boolean => p.dmabuf !== undefined && st.dmabufs.get(p.dmabuf)?.memfd === undefined;

/**
 * `pfn_reader_fill_dmabuf` for a BAR exporter: the PFNs of pages [start, start + npages) of `p` are consecutive from
 * the range's physical address (one range: `vfio_pci_dma_buf_iommufd_map` refuses others). Shaped like the mm's
 * pin result, with no mm event: no struct page stands behind a BAR.
 */
export function dmabufFrames(st: State, p: IoptPages, start: number, npages: number): { events: []; runs: { start: bigint; frame: number; npages: number }[] } {
  const d = st.dmabufs.get(p.dmabuf!)!;
  const page = BigInt(st.pageSize);
  const at = p.fileStart + BigInt(start) * page;
  return { events: [], runs: [{ start: at, frame: Number((d.phys + at) / page), npages }] };
}

/**
 * `dma_buf_move_notify(revoked)` as iommufd's importer answers it: on a revocation, `iopt_revoke_notify` of every
 * iopt_pages not dead yet unmaps each filled area of it (`pages->dmabuf.tracker`) from every domain of its IOAS
 * (P2pUnmap, DomainUnmapped, IOTLB flush) and marks it dead; un-revoking changes no mapping. `final` is
 * `vfio_pci_dma_buf_cleanup`.
 */
export function moveNotifyEvents(st: State, dmabuf: number, revoked: boolean, final = false): DomainEvent[] {
  const out: DomainEvent[] = [{ type: 'Revoke', dmabuf, revoked, final }];
  const buf = st.dmabufs.get(dmabuf);
  if (!revoked || buf === undefined) return out;
  for (const ctx of st.ctxs.values()) {
    for (const o of ctx.objects.values()) {
      const i = o.ioas?.iopt;
      if (i === undefined) continue;
      for (const n of i.areas.inOrder()) {
        const a = n.value;
        const p = st.pages.get(a.pages);
        // The kernel's tracker holds every (area, domain) filled, so an area a MAP has filled but not yet published
        // (or an UNMAP has unpublished but not yet unfilled) is unmapped too.
        if (p?.dmabuf !== dmabuf || isDeadPages(st, p)) continue;
        if (!a.published && !i.domains.some((d) => st.domains.get(d)?.map.iterFirst(a.start, a.start) !== undefined)) continue;
        // MUTANT revoke-no-unmap (B14): the importer marks the pages dead but leaves the domains mapping them.
        if (isMutant('revoke-no-unmap')) continue;
        for (const d of i.domains)
          out.push(
            { type: 'P2pUnmap', dmabuf, exporter: exporterName(buf), ctx: ctx.id, ioas: o.id, area: a.id, domain: d, iova: a.start, last: a.last },
            { type: 'DomainUnmapped', domain: d, iova: a.start, last: a.last }, ...flushEvents(st.domains.get(d), a.start, a.last),
          );
      }
    }
  }
  return out;
}
