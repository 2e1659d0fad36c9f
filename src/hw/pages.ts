/**
 * `iopt_pages` and page pinning (drivers/iommu/iommufd/pages.c). An iopt_pages is a run of user (or memfd) pages
 * that areas slice; COPY shares it between areas and IOASes, so its pages are pinned and charged once however many
 * areas, domains and accesses use them. A page is pinned exactly while some filled area (one stored in a domain,
 * the kernel's `domains_itree`) or some access range covers it; pins happen when a domain is filled or an access
 * pins, never at MAP time when nothing is attached (then a bogus user_va is accepted, as in the kernel).
 *
 * Charging (`iopt_pages_update_pinned`) follows each pinning: RLIMIT_MEMLOCK against the user's locked_vm (USER
 * mode) or the mm's (MM mode), pinned_vm always; NONE (CAP_IPC_LOCK) charges nothing against the limit.
 */
import type { DomainEvent } from '../events/domain.js';
import type { State } from '../projections/state.js';
import { pinCountAt } from './mm.js';
import { LINEAR, RunMap } from './mm_runmap.js';
import { RangeMap } from './range_map.js';

export const IOPT_PAGES_ACCOUNT_NONE = 0, IOPT_PAGES_ACCOUNT_USER = 1, IOPT_PAGES_ACCOUNT_MM = 2;
export type PagesKind = 'user' | 'file' | 'dmabuf';

export interface IoptPages {
  readonly id: number;
  /** IOPT_ADDRESS_USER, _FILE (a memfd) or _DMABUF (hw/dmabuf.ts: the exporter's memory, never charged). */
  readonly kind: PagesKind;
  /** User VA of page 0 (page aligned), for user pages. */
  readonly uptr: bigint;
  /** The memfd of file pages; of dma-buf pages, the selftest exporter's kernel memfd (undefined for a BAR). */
  readonly memfd: number | undefined;
  /** The dma-buf of dma-buf pages. */
  readonly dmabuf: number | undefined;
  /** Byte offset in the file (or dma-buf) of page 0 (page aligned), for file and dma-buf pages. */
  readonly fileStart: bigint;
  readonly npages: number;
  readonly writable: boolean;
  readonly accountMode: 0 | 1 | 2;
  /** kref: the areas using these pages and in-flight COPYs. */
  refs: number;
  /** Per page index: how many filled areas cover it (the kernel's `domains_itree`). */
  readonly fillUsers: RangeMap;
  /** Per page index: how many access pin items cover it (the kernel's `access_itree`). */
  readonly accessUsers: RangeMap;
  /** Per page index: 1 while pinned. */
  readonly pinned: RangeMap;
  /** Per pinned page index: the frame pinned for it, as runs (the PFNs a domain maps). */
  readonly frames: RunMap<number>;
}

/** Per-process pinning totals, in pages (`user->locked_vm`, `mm->locked_vm`, `mm->pinned_vm`). */
export interface Accounting {
  userLockedVm: number;
  mmLockedVm: number;
  pinnedVm: number;
}
export const emptyAccounting = (): Accounting => ({ userLockedVm: 0, mmLockedVm: 0, pinnedVm: 0 });

export type PagesEvent = Extract<DomainEvent, {
  type: 'PagesCreated' | 'PagesReleased' | 'PagesRefTaken' | 'PagesRefDropped' | 'AreaFilled' | 'AreaUnfilled' | 'PagesPinned' | 'PagesUnpinned' | 'AccountingCharged' | 'AccountingUncharged';
}>;

/** The frame pinned for page `index` of `p` (the kernel's pinned PFN), if it is pinned. */
export const frameOf = (p: IoptPages, index: number): number | undefined => p.frames.get(index);

export function pagesEvolve(st: State, ev: PagesEvent): void {
  switch (ev.type) {
    case 'PagesCreated':
      st.pages.set(ev.pages, {
        id: ev.pages, kind: ev.kind, uptr: ev.uptr, memfd: ev.memfd, dmabuf: ev.dmabuf, fileStart: ev.fileStart, npages: ev.npages,
        writable: ev.writable, accountMode: ev.accountMode, refs: 0, fillUsers: new RangeMap(), accessUsers: new RangeMap(), pinned: new RangeMap(),
        frames: new RunMap(LINEAR),
      });
      if (ev.pages >= st.nextPages) st.nextPages = ev.pages + 1;
      return;
    case 'PagesRefTaken':
    case 'PagesRefDropped': {
      const p = pagesOf(st, ev.pages);
      if (ev.type === 'PagesRefDropped' && p.refs === 0) throw new Error(`pages ${ev.pages} have no reference to drop`);
      p.refs += ev.type === 'PagesRefTaken' ? 1 : -1;
      return;
    }
    case 'PagesReleased': {
      const p = pagesOf(st, ev.pages);
      if (p.refs !== 0 || !p.pinned.isEmpty) throw new Error(`pages ${ev.pages} released while referenced or pinned`);
      st.pages.delete(ev.pages);
      return;
    }
    case 'AreaFilled':
    case 'AreaUnfilled':
      pagesOf(st, ev.pages).fillUsers.add(ev.start, ev.last, ev.type === 'AreaFilled' ? 1 : -1);
      return;
    case 'PagesPinned':
    case 'PagesUnpinned': {
      // The frames' own pin counts move with the mm model's FramesPinned/FramesUnpinned events.
      const p = pagesOf(st, ev.pages);
      const d = ev.type === 'PagesPinned' ? 1 : -1;
      p.pinned.add(ev.start, ev.last, d);
      if ([...p.pinned.runs(ev.start, ev.last)].some((r) => r.count > 1)) throw new Error(`pages ${ev.pages} [${ev.start}, ${ev.last}] pinned twice`);
      if (ev.type === 'PagesPinned') p.frames.insert(ev.start, ev.last, ev.frame);
      else p.frames.remove(ev.start, ev.last);
      return;
    }
    case 'AccountingCharged':
    case 'AccountingUncharged': {
      const n = ev.type === 'AccountingCharged' ? ev.npages : -ev.npages;
      if (ev.mode === IOPT_PAGES_ACCOUNT_USER) st.accounting.userLockedVm += n;
      if (ev.mode === IOPT_PAGES_ACCOUNT_MM) st.accounting.mmLockedVm += n;
      st.accounting.pinnedVm += n;
      if (st.accounting.userLockedVm < 0 || st.accounting.mmLockedVm < 0 || st.accounting.pinnedVm < 0)
        throw new Error('accounting went negative');
      return;
    }
  }
}

function pagesOf(st: State, id: number): IoptPages {
  const p = st.pages.get(id);
  if (p === undefined) throw new Error(`no pages ${id}`);
  return p;
}

/** A not-yet-created iopt_pages (its PagesCreated event goes out with the MAP's reservation). */
export function newPages(
  id: number, kind: PagesKind, uptr: bigint, memfd: number | undefined, fileStart: bigint, npages: number,
  writable: boolean, accountMode: 0 | 1 | 2, dmabuf?: number,
): IoptPages {
  return { id, kind, uptr, memfd, dmabuf, fileStart, npages, writable, accountMode, refs: 0, fillUsers: new RangeMap(), accessUsers: new RangeMap(), pinned: new RangeMap(), frames: new RunMap(LINEAR) };
}

export function clonePages(p: IoptPages): IoptPages {
  return { ...p, fillUsers: p.fillUsers.clone(), accessUsers: p.accessUsers.clone(), pinned: p.pinned.clone(), frames: p.frames.clone() };
}

/** Pin references on the frame mapped at `va` (page_ref_count / GUP_PIN_COUNTING_BIAS in MD_CHECK_REFS). */
export const pinRefs = (st: State, va: bigint): number => pinCountAt(st.mm, st.pageSize, va);
