/**
 * `iopt_pages` and page pinning (drivers/iommu/iommufd/pages.c). An iopt_pages is a run of user (or memfd) pages
 * that areas slice; COPY shares it between areas and IOASes, so its pages are pinned and charged once however many
 * areas, domains and accesses use them. A page is pinned when a domain is filled or an access pins, never at MAP
 * time when nothing is attached (then a bogus user_va is accepted, as in the kernel).
 *
 * The pin ledger lives in the mm model (`mm.pins`, a run-length map from host page index to pin count), so a pinned
 * page stays counted after munmap, exactly as a FOLL_LONGTERM pin keeps the page alive.
 */
import type { DomainEvent } from '../events/domain.js';
import type { State } from '../projections/state.js';

export const IOPT_PAGES_ACCOUNT_NONE = 0, IOPT_PAGES_ACCOUNT_USER = 1, IOPT_PAGES_ACCOUNT_MM = 2;

export interface IoptPages {
  readonly id: number;
  readonly kind: 'user' | 'file';
  /** User VA of page 0 (page aligned), for user pages. */
  readonly uptr: bigint;
  readonly memfd: number | undefined;
  /** Byte offset in the file of page 0 (page aligned), for file pages. */
  readonly fileStart: bigint;
  readonly npages: number;
  readonly writable: boolean;
  readonly accountMode: 0 | 1 | 2;
  /** kref: the areas using these pages. */
  refs: number;
}

export type PagesEvent = Extract<DomainEvent, { type: 'PagesCreated' | 'PagesReleased' | 'PagesRefTaken' | 'PagesRefDropped' }>;

export function pagesEvolve(st: State, ev: PagesEvent): void {
  if (ev.type === 'PagesCreated') {
    st.pages.set(ev.pages, {
      id: ev.pages, kind: ev.kind, uptr: ev.uptr, memfd: ev.memfd, fileStart: ev.fileStart, npages: ev.npages,
      writable: ev.writable, accountMode: ev.accountMode, refs: 0,
    });
    if (ev.pages >= st.nextPages) st.nextPages = ev.pages + 1;
    return;
  }
  const p = st.pages.get(ev.pages);
  if (p !== undefined && ev.type !== 'PagesReleased') {
    if (ev.type === 'PagesRefDropped' && p.refs === 0) throw new Error(`pages ${ev.pages} have no reference to drop`);
    p.refs += ev.type === 'PagesRefTaken' ? 1 : -1;
    return;
  }
  if (p === undefined || p.refs !== 0) throw new Error(`pages ${ev.pages} released while ${p ? `${p.refs} area(s) use them` : 'unknown'}`);
  st.pages.delete(ev.pages);
}

/** Pin references on the page containing `va`. */
export function pinRefs(st: State, va: bigint): number {
  return st.mm.pins.get(Number(va / BigInt(st.pageSize)));
}
