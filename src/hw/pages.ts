/**
 * Page pinning (drivers/iommu/iommufd/pages.c). A page is pinned once per `iopt_pages` that holds it (by a domain
 * fill or an access pin), whatever the number of areas, domains and accesses sharing that `iopt_pages`; the
 * selftest reads the count back as page_ref_count / GUP_PIN_COUNTING_BIAS (MD_CHECK_REFS).
 *
 * The pin ledger lives in the mm model (`mm.pins`, a run-length map from page index to pin count), so a pinned
 * page stays counted after munmap, exactly as a FOLL_LONGTERM pin keeps the page alive.
 */
import type { State } from '../projections/state.js';

/** Pin references on the page containing `va`. */
export function pinRefs(st: State, va: bigint): number {
  return st.mm.pins.get(Number(va / BigInt(st.pageSize)));
}
