/**
 * Invariants of one io_pagetable and of the lists hanging off an IOAS (io_pagetable.c, hw_pagetable.c, device.c):
 * areas pairwise disjoint and clear of reserved ranges, `iova_alignment` equal to its recomputation, each domain in
 * exactly one IOAS, the IOAS's HWPT list a set of its own HWPTs, and each access listed by exactly its own IOAS.
 */
import { ioptAlignment } from '../hw/iopt_domains.js';
import { S_FINALIZED } from '../machines/lifecycle.js';
import { allIoas, hex, ioasByKey, ioasKey, type1Domains, type Indexes, type InvariantViolation, type IoasRef, type Scope } from './invariants_core.js';
import type { State } from './state.js';

export const R_DISJOINT = 'io_pagetable.c iopt_insert_area / iopt_check_iova (EEXIST) and iopt_alloc_iova: areas never overlap';
export const R_RESERVED = 'io_pagetable.c iopt_check_iova, __alloc_iova_check_range (ALIGN overflow, CVE-2025-38688) and iopt_reserve_iova (EADDRINUSE): no area intersects a reserved range';
export const R_ALIGN = 'io_pagetable.c iopt_calculate_iova_alignment: iova_alignment is the max of PAGE_SIZE (large pages off), each domain\'s smallest page and each access\'s alignment';
export const R_DOMAIN_OWNER = 'io_pagetable.c iopt_table_add_domain / iopt_table_remove_domain, hw_pagetable.c iommufd_hwpt_paging_alloc/_destroy: a paging domain is in exactly one IOAS, owned by a live HWPT_PAGING of it';
export const R_HWPT_LIST = 'hw_pagetable.c iommufd_hwpt_paging_alloc (list_add_tail hwpt_item) / iommufd_hwpt_paging_destroy (list_del): ioas->hwpt_list holds each of its HWPTs once (CVE-2023-54043)';
export const R_ACCESS_LIST = 'device.c iommufd_access_change_ioas, io_pagetable.c iopt_add_access / iopt_remove_access (iopt_access_list_id): an access is in exactly the access_list of its IOAS (linux@f1fb745ee0a6)';

function v(out: InvariantViolation[], name: string, rule: string, message: string): void {
  out.push({ name, rule, message });
}

/** `areas-disjoint` and `areas-outside-reserved` for one IOAS (all areas) or for the listed areas. */
function checkAreas(st: State, r: IoasRef, ids: ReadonlySet<number> | undefined, out: InvariantViolation[]): void {
  const i = r.iopt;
  const where = `IOAS ${r.obj.id} (ctx ${r.ctx.id})`;
  if (ids === undefined) {
    if (i.areaById.size !== i.areas.size) v(out, 'areas-disjoint', R_DISJOINT, `${where}: ${i.areas.size} areas in the tree but ${i.areaById.size} by id`);
    let prev: { start: bigint; last: bigint; id: number } | undefined;
    for (const n of i.areas.inOrder()) {
      const a = n.value;
      if (i.areaById.get(a.id) !== n) v(out, 'areas-disjoint', R_DISJOINT, `${where}: area ${a.id} is in the tree but not indexed by its id`);
      if (a.start !== n.start || a.last !== n.last || a.start > a.last)
        v(out, 'areas-disjoint', R_DISJOINT, `${where}: area ${a.id} [${hex(a.start)}, ${hex(a.last)}] is malformed or disagrees with its tree node`);
      if (prev !== undefined && prev.last >= a.start)
        v(out, 'areas-disjoint', R_DISJOINT, `${where}: area ${prev.id} [${hex(prev.start)}, ${hex(prev.last)}] overlaps area ${a.id} [${hex(a.start)}, ${hex(a.last)}]`);
      const res = i.reserved.iterFirst(a.start, a.last);
      if (res !== undefined)
        v(out, 'areas-outside-reserved', R_RESERVED, `${where}: area ${a.id} [${hex(a.start)}, ${hex(a.last)}] intersects the reserved range [${hex(res.start)}, ${hex(res.last)}] (${res.value || 'ADD_RESERVED'})`);
      if (prev === undefined || a.last > prev.last) prev = { start: a.start, last: a.last, id: a.id };
    }
    return;
  }
  for (const id of ids) {
    const n = i.areaById.get(id);
    if (n === undefined) continue; // removed by the step
    const a = n.value;
    if (!i.areas.has(n)) {
      v(out, 'areas-disjoint', R_DISJOINT, `${where}: area ${id} is indexed by id but not in the tree`);
      continue;
    }
    if (a.start > a.last) v(out, 'areas-disjoint', R_DISJOINT, `${where}: area ${id} has start ${hex(a.start)} > last ${hex(a.last)}`);
    for (const o of i.areas.intersecting(a.start, a.last))
      if (o !== n) v(out, 'areas-disjoint', R_DISJOINT, `${where}: area ${id} [${hex(a.start)}, ${hex(a.last)}] overlaps area ${o.value.id} [${hex(o.start)}, ${hex(o.last)}]`);
    const res = i.reserved.iterFirst(a.start, a.last);
    if (res !== undefined)
      v(out, 'areas-outside-reserved', R_RESERVED, `${where}: area ${id} [${hex(a.start)}, ${hex(a.last)}] intersects the reserved range [${hex(res.start)}, ${hex(res.last)}] (${res.value || 'ADD_RESERVED'})`);
  }
}

/** Whole-IOAS facts: alignment, its domain list, its HWPT list, its access list (`all`: also what no list names). */
function checkIoasLists(st: State, r: IoasRef, all: boolean, out: InvariantViolation[]): void {
  const i = r.iopt;
  const where = `IOAS ${r.obj.id} (ctx ${r.ctx.id})`;
  const want = ioptAlignment(st, i);
  if (want !== i.iovaAlignment) v(out, 'iova-alignment', R_ALIGN, `${where}: iova_alignment is ${hex(i.iovaAlignment)}, its domains, accesses and large-page setting give ${hex(want)}`);

  const seen = new Set<number>();
  for (const d of i.domains) {
    if (seen.has(d)) v(out, 'domain-owner', R_DOMAIN_OWNER, `${where}: domain ${d} is in iopt->domains twice`);
    seen.add(d);
    if (!st.domains.has(d)) v(out, 'domain-owner', R_DOMAIN_OWNER, `${where}: iopt->domains holds domain ${d}, which does not exist (freed while attached)`);
    // Its owner is one of the IOAS's HWPTs (or, when the list lost it, found the long way in a full check).
    const owner = r.obj.ioas!.hwpts.map((h) => r.ctx.objects.get(h)).find((o) => o?.hwpt?.domain === d)
      ?? (all ? [...r.ctx.objects.values()].find((o) => o.hwpt?.domain === d) : undefined);
    if (owner === undefined) v(out, 'domain-owner', R_DOMAIN_OWNER, `${where}: domain ${d} has no HWPT_PAGING owning it`);
    else if (owner.hwpt!.ioas !== r.obj.id) v(out, 'domain-owner', R_DOMAIN_OWNER, `${where}: domain ${d} belongs to HWPT ${owner.id} of IOAS ${owner.hwpt!.ioas}`);
  }

  const hw = r.obj.ioas!.hwpts;
  const hs = new Set<number>();
  for (const h of hw) {
    if (hs.has(h)) v(out, 'hwpt-list-set', R_HWPT_LIST, `${where}: HWPT ${h} is in ioas->hwpt_list twice`);
    hs.add(h);
    const o = r.ctx.objects.get(h);
    if (o === undefined) v(out, 'hwpt-list-set', R_HWPT_LIST, `${where}: ioas->hwpt_list holds HWPT ${h}, which was destroyed (use after free)`);
    else if (o.kind !== 'HWPT_PAGING' || o.hwpt === undefined || o.hwpt.ioas !== r.obj.id) v(out, 'hwpt-list-set', R_HWPT_LIST, `${where}: ioas->hwpt_list holds object ${h} (${o.kind}), which is not a paging HWPT of this IOAS`);
  }
  if (all)
    for (const o of r.ctx.objects.values())
      if (o.kind === 'HWPT_PAGING' && o.hwpt !== undefined && o.hwpt.ioas === r.obj.id && o.life === S_FINALIZED && !hs.has(o.id))
        v(out, 'hwpt-list-set', R_HWPT_LIST, `${where}: HWPT ${o.id} of this IOAS is missing from ioas->hwpt_list`);

  for (const id of i.accesses.keys()) {
    const o = r.ctx.objects.get(id);
    if (o?.access === undefined) v(out, 'access-one-ioas', R_ACCESS_LIST, `${where}: access_list holds ${id}, which is not a live access (use after free)`);
    else if (o.access.ioas !== r.obj.id)
      v(out, 'access-one-ioas', R_ACCESS_LIST, `${where}: access_list holds access ${id}, whose IOAS is ${o.access.ioas === 0 ? 'none' : o.access.ioas} (stale entry)`);
  }
}

/**
 * Each access of a context is listed by its own IOAS and by no other. A scoped check looks at its own IOAS only (a
 * stale entry elsewhere shows in that IOAS's list check, as the step that left it touched that IOAS).
 */
function checkAccessMembership(st: State, ctxId: number, accessId: number, all: boolean, out: InvariantViolation[]): void {
  const ctx = st.ctxs.get(ctxId);
  const o = ctx?.objects.get(accessId);
  if (ctx === undefined || o?.access === undefined) return;
  const want = o.access.ioas;
  if (!all) {
    const own = want === 0 ? undefined : ctx.objects.get(want)?.ioas;
    if (want !== 0 && !own?.iopt.accesses.has(accessId))
      v(out, 'access-one-ioas', R_ACCESS_LIST, `access ${accessId} (ctx ${ctxId}) is attached to IOAS ${want} but missing from its access list`);
    return;
  }
  const listed: number[] = [];
  for (const x of ctx.objects.values()) if (x.ioas?.iopt.accesses.has(accessId)) listed.push(x.id);
  if (want === 0 ? listed.length !== 0 : listed.length !== 1 || listed[0] !== want)
    v(out, 'access-one-ioas', R_ACCESS_LIST, `access ${accessId} (ctx ${ctxId}) is attached to ${want === 0 ? 'no IOAS' : `IOAS ${want}`} but listed by ${listed.length === 0 ? 'none' : `IOAS ${listed.join(', ')}`}`);
}

export function checkIopt(st: State, scope: Scope, idx: Indexes, out: InvariantViolation[]): void {
  if (scope.all) {
    for (const r of allIoas(st)) {
      checkAreas(st, r, undefined, out);
      checkIoasLists(st, r, true, out);
    }
    const type1 = type1Domains(st);
    for (const d of st.domains.values()) {
      if (d.kind !== 'paging' || type1.has(d.id)) continue;
      const o = idx.ioasOfDomain(d.id);
      if (o.length !== 1) v(out, 'domain-owner', R_DOMAIN_OWNER, `paging domain ${d.id} is attached to ${o.length === 0 ? 'no IOAS' : `${o.length} IOASes (${o.map((x) => x.key).join(', ')})`}`);
    }
    for (const ctx of st.ctxs.values()) for (const o of ctx.objects.values()) if (o.access !== undefined) checkAccessMembership(st, ctx.id, o.id, true, out);
    return;
  }
  for (const [key, ids] of scope.areas) {
    const r = ioasByKey(st, key);
    if (r !== undefined) checkAreas(st, r, ids, out);
  }
  for (const res of scope.reserved) {
    const r = ioasByKey(st, res.key);
    if (r === undefined) continue;
    for (const n of r.iopt.areas.intersecting(res.start, res.last))
      v(out, 'areas-outside-reserved', R_RESERVED, `IOAS ${r.obj.id} (ctx ${r.ctx.id}): the reserved range [${hex(res.start)}, ${hex(res.last)}] covers area ${n.value.id} [${hex(n.start)}, ${hex(n.last)}]`);
  }
  const lists = new Set(scope.ioas);
  for (const key of scope.objects) {
    const [c, id] = key.split(':').map(Number) as [number, number];
    const o = st.ctxs.get(c)?.objects.get(id);
    if (o?.access !== undefined) {
      checkAccessMembership(st, c, id, false, out);
      if (o.access.ioas !== 0) lists.add(ioasKey(c, o.access.ioas));
    }
    if (o?.hwpt !== undefined && o.kind === 'HWPT_PAGING') {
      lists.add(ioasKey(c, o.hwpt.ioas));
      if (o.life === S_FINALIZED && !(st.ctxs.get(c)?.objects.get(o.hwpt.ioas)?.ioas?.hwpts.includes(id) ?? false))
        v(out, 'hwpt-list-set', R_HWPT_LIST, `HWPT ${id} (ctx ${c}) is missing from the hwpt_list of its IOAS ${o.hwpt.ioas}`);
    }
    if (o?.ioas !== undefined) lists.add(key);
  }
  for (const key of lists) {
    const r = ioasByKey(st, key);
    if (r !== undefined) checkIoasLists(st, r, false, out);
  }
  if (scope.domains.size > 0) {
    const type1 = type1Domains(st);
    for (const id of scope.domains.keys()) {
      const d = st.domains.get(id);
      if (d === undefined || d.kind !== 'paging' || type1.has(id)) continue;
      const o = idx.ioasOfDomain(id);
      if (o.length !== 1) v(out, 'domain-owner', R_DOMAIN_OWNER, `paging domain ${id} is attached to ${o.length === 0 ? 'no IOAS' : `${o.length} IOASes (${o.map((x) => x.key).join(', ')})`}`);
    }
  }
}
