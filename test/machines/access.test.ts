/**
 * iommufd accesses through the selftest's test access (selftest.c `iommufd_test_create_access`,
 * `iommufd_test_access_pages`, `iommufd_test_access_item_destroy`, `iommufd_test_access_unmap`,
 * `iommufd_test_staccess_release`; device.c `iommufd_access_pin_pages`). Spec: iommufd-core-spec.md §6,
 * iommufd-device-spec.md §5.2.
 */
import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import { given, ioasAllocated, ioctl, opened } from '../support/given.js';
import {
  BUF, PAGE, TEST_HEADER, U64_MAX, accessPages, after, areasOf, checkRefs, createAccess, destroy, destroyAccessPages,
  execute, executeClose, expectErr, expectOk, mapFixed, mmapped, mockDomain, unmap,
} from '../support/steps.js';

const IOVA = 0x1000000n;
const SZ64K = 0x10000n;
const ACCESS_FD = 4;
const base = (): DomainEvent[][] => [opened(), ioasAllocated(1), mmapped(BUF, 0x20000n)];
/** IOAS 1 with [IOVA, +64K) mapped from BUF (no domain), and a pinning test access (object 2, fd 4). */
const withAccess = (...more: Parameters<typeof after>[1][]) => after(base(), mapFixed(1, BUF, SZ64K, IOVA), createAccess(1), ...more);
const st = (events: DomainEvent[]) => after([events]).state;
const objects = (s: ReturnType<typeof st>) => [...(s.ctxs.get(1)?.objects.values() ?? [])].map((o) => [o.id, o.kind, o.users]);
const NONE = { userLockedVm: 0, mmLockedVm: 0, pinnedVm: 0 };

describe('IOMMU_TEST_OP_CREATE_ACCESS', () => {
  it('returns the lowest free fd, consumes an object id it does not report, and holds the IOAS and the context', () => {
    const s = after(base(), createAccess(1), ioctl('IOMMU_IOAS_ALLOC', {}));
    expect(s.outs[0]).toMatchObject({ create_access: { out_access_fd: BigInt(ACCESS_FD) } });
    expect(s.outs[1]).toMatchObject({ out_ioas_id: 3n });
    expect(objects(s.state)).toEqual([[1, 'IOAS', 2], [2, 'ACCESS', 2], [3, 'IOAS', 1]]);
    expect(s.state.fds.get(ACCESS_FD)).toEqual({ kind: 'access', ctx: 1, access: 2 });
    expect(s.state.ctxs.get(1)!.fileRefs).toBe(2);
    given(s.events).when(destroy(1)).thenFails('EBUSY');
    given(s.events).when(destroy(2)).thenFails('EBUSY');
  });

  it('raises the IOAS alignment to PAGE_SIZE for a pinning access only', () => {
    const pin = after(base(), createAccess(1, 1));
    expect(pin.state.ctxs.get(1)!.objects.get(1)!.ioas!.iopt.iovaAlignment).toBe(PAGE);
    const rw = after(base(), createAccess(1, 0));
    expect(rw.state.ctxs.get(1)!.objects.get(1)!.ioas!.iopt.iovaAlignment).toBe(1n);
  });

  it('answers EOPNOTSUPP for unknown flags and ENOENT for a missing IOAS, leaving no object and no fd', () => {
    given(...base()).when(createAccess(1, 2)).thenFails('EOPNOTSUPP');
    const r = given(...base()).when(createAccess(9)).thenFails('ENOENT');
    expect(r.state.ctxs.get(1)!.ids.lowestFree()).toBe(2);
    expect(r.state.fds.has(ACCESS_FD)).toBe(false);
  });

  it('answers EADDRINUSE when an area is not aligned to the PAGE_SIZE a pinning access needs', () => {
    const s = after(base(), mapFixed(1, BUF + 0x800n, 0x800n, IOVA + 0x800n));
    given(s.events).when(createAccess(1)).thenFails('EADDRINUSE');
    expectOk(execute(st(s.events), TEST_HEADER, createAccess(1, 0)));
  });
});

describe('IOMMU_TEST_OP_ACCESS_PAGES', () => {
  it('pins the pages once and charges them, numbering its items from 0', () => {
    const s = withAccess();
    const r = execute(st(s.events), TEST_HEADER, accessPages(ACCESS_FD, IOVA, SZ64K));
    expectOk(r, { access_pages: { out_access_pages_id: 0n } });
    expect(r.state.accounting).toEqual({ userLockedVm: 16, mmLockedVm: 0, pinnedVm: 16 });
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, SZ64K, 1)));
    expectOk(execute(r.state, TEST_HEADER, accessPages(ACCESS_FD, IOVA, PAGE)), { access_pages: { out_access_pages_id: 1n } });
    expect(r.state.accounting.pinnedVm).toBe(16);
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, PAGE, 1)));
  });

  it('accepts a uptr that is the memory behind the IOVA, also before the process has touched it', () => {
    // selftest.c iommufd_test_access_pages → iommufd_test_check_pages: get_user_pages_fast(uptr) must return the very
    // pages iommufd_access_pin_pages pinned; pinning faulted them in, so the check sees the same pages.
    const s = withAccess();
    const r = execute(st(s.events), TEST_HEADER, accessPages(ACCESS_FD, IOVA, SZ64K, BUF));
    expectOk(r, { access_pages: { out_access_pages_id: 0n } });
    expectOk(execute(r.state, TEST_HEADER, accessPages(ACCESS_FD, IOVA + PAGE, PAGE, BUF + PAGE)), { access_pages: { out_access_pages_id: 1n } });
  });

  it('checks the length (ENOMEM above 16 MiB) and the flags before the access fd', () => {
    const s = withAccess();
    given(s.events).when(accessPages(99, IOVA, (16n << 20n) + 1n, 0n, 2)).thenFails('ENOMEM');
    given(s.events).when(accessPages(99, IOVA, PAGE, 0n, 2)).thenFails('EOPNOTSUPP');
  });

  it('answers EBADFD for an fd that is not a test access', () => {
    given(withAccess().events).when(accessPages(3, IOVA, PAGE)).thenFails('EBADFD');
  });

  it('answers EBADFD, not EBADF, for an fd that is not open', () => {
    // selftest.c iommufd_access_get: `file = fget(fd); if (!file) return ERR_PTR(-EBADFD);`
    given(withAccess().events).when(accessPages(99, IOVA, PAGE)).thenFails('EBADFD');
  });

  it('answers EOPNOTSUPP for an access created without NEEDS_PIN_PAGES', () => {
    const s = after(base(), mapFixed(1, BUF, SZ64K, IOVA), createAccess(1, 0));
    given(s.events).when(accessPages(ACCESS_FD, IOVA, PAGE)).thenFails('EOPNOTSUPP');
  });

  it('answers EINVAL for length 0 and EOVERFLOW when the range wraps', () => {
    const s = withAccess();
    given(s.events).when(accessPages(ACCESS_FD, IOVA, 0n)).thenFails('EINVAL');
    given(s.events).when(accessPages(ACCESS_FD, U64_MAX, 2n)).thenFails('EOVERFLOW');
  });

  it('answers EINVAL when the range does not start on a page of the pages', () => {
    const s = withAccess();
    given(s.events).when(accessPages(ACCESS_FD, IOVA + 0x800n, 0x800n)).thenFails('EINVAL');
    // A range may end inside a page of the last area.
    expectOk(execute(st(s.events), TEST_HEADER, accessPages(ACCESS_FD, IOVA, 0x800n)));
  });

  it('answers EPERM for a write to an area mapped read-only and a read of an area mapped write-only', () => {
    const ro = after(base(), mapFixed(1, BUF, SZ64K, IOVA, ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_READABLE']), createAccess(1));
    given(ro.events).when(accessPages(ACCESS_FD, IOVA, PAGE, 0n, 1)).thenFails('EPERM');
    expectOk(execute(st(ro.events), TEST_HEADER, accessPages(ACCESS_FD, IOVA, PAGE)));
    const wo = after(base(), mapFixed(1, BUF, SZ64K, IOVA, ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_WRITEABLE']), createAccess(1));
    given(wo.events).when(accessPages(ACCESS_FD, IOVA, PAGE)).thenFails('EPERM');
    expectOk(execute(st(wo.events), TEST_HEADER, accessPages(ACCESS_FD, IOVA, PAGE, 0n, 1)));
  });

  it('answers ENOENT for a range with a gap or without any area, and pins nothing', () => {
    const s = withAccess();
    const r = execute(st(s.events), TEST_HEADER, accessPages(ACCESS_FD, IOVA, SZ64K + PAGE));
    expectErr(r, 'ENOENT');
    expect(r.state.accounting).toEqual(NONE);
    given(s.events).when(accessPages(ACCESS_FD, IOVA + 0x100000n, PAGE)).thenFails('ENOENT');
  });

  it('checks the alignment of each area piece (EINVAL) before it finds that the range is not fully covered (ENOENT)', () => {
    const s = withAccess();
    // device.c iommufd_access_pin_pages: `if (area->prevent_access || !iopt_area_contig_is_aligned(&iter)) { rc = -EINVAL; ...`
    // runs inside iopt_for_each_contig_area; `if (!iopt_area_contig_done(&iter)) { rc = -ENOENT; ...` comes after the loop.
    given(s.events).when(accessPages(ACCESS_FD, IOVA + 0x800n, SZ64K)).thenFails('EINVAL');
  });

  it('checks the protection of each area piece (EPERM) before it finds that the range is not fully covered (ENOENT)', () => {
    const ro = after(base(), mapFixed(1, BUF, SZ64K, IOVA, ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_READABLE']), createAccess(1));
    // device.c iommufd_access_pin_pages: `if (!check_area_prot(area, flags)) { rc = -EPERM; ...` inside the loop.
    given(ro.events).when(accessPages(ACCESS_FD, IOVA, SZ64K + PAGE, 0n, 1)).thenFails('EPERM');
  });

  it('answers EBADE when uptr is not the memory behind the IOVA, and unpins what it pinned', () => {
    const s = withAccess();
    const r = execute(st(s.events), TEST_HEADER, accessPages(ACCESS_FD, IOVA, PAGE, BUF + PAGE));
    expect(r.done.outcome).toMatchObject({ kind: 'err', errno: 'EBADE' });
    expect(r.state.accounting).toEqual(NONE);
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, PAGE, 0)));
  });

  it('answers EFAULT when the user memory behind the area is not mapped', () => {
    const s = after(base(), mapFixed(1, 0x10000000n, SZ64K, IOVA), createAccess(1));
    given(s.events).when(accessPages(ACCESS_FD, IOVA, PAGE)).thenFails('EFAULT');
  });
});

describe('IOMMU_TEST_OP_DESTROY_ACCESS_PAGES', () => {
  it('unpins the item, and a second destroy of it is ENOENT', () => {
    const s = withAccess(accessPages(ACCESS_FD, IOVA, SZ64K));
    const r = execute(st(s.events), TEST_HEADER, destroyAccessPages(ACCESS_FD, 0));
    expectOk(r);
    expect(r.state.accounting).toEqual(NONE);
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, SZ64K, 0)));
    expectErr(execute(r.state, TEST_HEADER, destroyAccessPages(ACCESS_FD, 0)), 'ENOENT');
  });

  it('keeps pages pinned while another item or a domain still holds them', () => {
    const s = withAccess(accessPages(ACCESS_FD, IOVA, SZ64K), accessPages(ACCESS_FD, IOVA, PAGE));
    const r = execute(st(s.events), TEST_HEADER, destroyAccessPages(ACCESS_FD, 0));
    expectOk(r);
    expect(r.state.accounting.pinnedVm).toBe(1);
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, PAGE, 1)));
    // With a domain attached the item's pages stay pinned (once) by the domain.
    const d = after(base(), mockDomain(1), mapFixed(1, BUF, SZ64K, IOVA), createAccess(1), accessPages(ACCESS_FD, IOVA, SZ64K, BUF));
    expect(d.state.accounting.pinnedVm).toBe(16);
    const e = execute(st(d.events), TEST_HEADER, destroyAccessPages(ACCESS_FD, 0));
    expectOk(e);
    expect(e.state.accounting.pinnedVm).toBe(16);
    expectOk(execute(e.state, TEST_HEADER, checkRefs(BUF, SZ64K, 1)));
  });

  it('answers ENOENT for an item never pinned', () => {
    given(withAccess().events).when(destroyAccessPages(ACCESS_FD, 7)).thenFails('ENOENT');
  });

  it('answers EBADFD for an fd that is not open', () => {
    // selftest.c iommufd_test_access_item_destroy → iommufd_access_get: `if (!file) return ERR_PTR(-EBADFD);`
    given(withAccess().events).when(destroyAccessPages(99, 0)).thenFails('EBADFD');
  });
});

describe('the unmap notification', () => {
  it('lets an IOAS_UNMAP over pinned pages succeed by unpinning the items, which are then gone', () => {
    const s = withAccess(accessPages(ACCESS_FD, IOVA, SZ64K), accessPages(ACCESS_FD, IOVA + PAGE, PAGE));
    const r = execute(st(s.events), TEST_HEADER, unmap(1, IOVA, SZ64K));
    expectOk(r, { length: SZ64K });
    expect(areasOf(r.state, 1)).toEqual([]);
    expect(r.state.accounting).toEqual(NONE);
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, SZ64K, 0)));
    // The driver's unmap callback removed both items.
    expectErr(execute(r.state, TEST_HEADER, destroyAccessPages(ACCESS_FD, 0)), 'ENOENT');
    expectErr(execute(r.state, TEST_HEADER, destroyAccessPages(ACCESS_FD, 1)), 'ENOENT');
  });

  it('unpins every page of partially overlapping items unpinned in one notification', () => {
    // Items [0, 4], [3] and [4] (page indices): iommufd_test_access_unmap unpins all three, and with them every page.
    const s = withAccess(accessPages(ACCESS_FD, IOVA, 5n * PAGE), accessPages(ACCESS_FD, IOVA + 3n * PAGE, PAGE), accessPages(ACCESS_FD, IOVA + 4n * PAGE, PAGE));
    expect(s.state.accounting.pinnedVm).toBe(5);
    const r = execute(st(s.events), TEST_HEADER, unmap(1, IOVA, SZ64K));
    expectOk(r, { length: SZ64K });
    expect(r.state.accounting).toEqual(NONE);
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, SZ64K, 0)));
    expect(r.state.pages.size).toBe(0);
  });

  it('leaves items on other areas alone', () => {
    const s = withAccess(mapFixed(1, BUF + SZ64K, SZ64K, IOVA + SZ64K), accessPages(ACCESS_FD, IOVA, PAGE), accessPages(ACCESS_FD, IOVA + SZ64K, PAGE));
    const r = execute(st(s.events), TEST_HEADER, unmap(1, IOVA, SZ64K));
    expectOk(r);
    expect(r.state.accounting.pinnedVm).toBe(1);
    expectErr(execute(r.state, TEST_HEADER, destroyAccessPages(ACCESS_FD, 0)), 'ENOENT');
    expectOk(execute(r.state, TEST_HEADER, destroyAccessPages(ACCESS_FD, 1)));
    expect(r.state.accounting).toEqual(NONE);
  });

  it('with a domain attached, leaves nothing pinned once the area is unmapped', () => {
    const s = after(base(), mockDomain(1), mapFixed(1, BUF, SZ64K, IOVA), createAccess(1), accessPages(ACCESS_FD, IOVA, SZ64K, BUF));
    expect(s.state.accounting.pinnedVm).toBe(16);
    expectOk(execute(s.state, TEST_HEADER, checkRefs(BUF, SZ64K, 1)));
    const r = execute(st(s.events), TEST_HEADER, unmap(1, 0n, U64_MAX));
    expectOk(r, { length: SZ64K });
    expect(r.state.accounting).toEqual(NONE);
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, SZ64K, 0)));
  });
});

describe('closing the access fd', () => {
  it('unpins every item, destroys the access and releases the IOAS', () => {
    const s = withAccess(accessPages(ACCESS_FD, IOVA, SZ64K), accessPages(ACCESS_FD, IOVA, PAGE));
    const r = executeClose(st(s.events), TEST_HEADER, ACCESS_FD);
    expectOk(r);
    expect(r.state.fds.has(ACCESS_FD)).toBe(false);
    expect(objects(r.state)).toEqual([[1, 'IOAS', 1]]);
    expect(r.state.accounting).toEqual(NONE);
    expect(r.state.ctxs.get(1)!.fileRefs).toBe(1);
    expect(r.state.ctxs.get(1)!.objects.get(1)!.ioas!.iopt.iovaAlignment).toBe(1n);
    expectOk(execute(r.state, TEST_HEADER, destroy(1)));
  });

  it('unpins every page of partially overlapping items', () => {
    const s = withAccess(accessPages(ACCESS_FD, IOVA, 5n * PAGE), accessPages(ACCESS_FD, IOVA + 3n * PAGE, PAGE), accessPages(ACCESS_FD, IOVA + 4n * PAGE, PAGE));
    const r = executeClose(st(s.events), TEST_HEADER, ACCESS_FD);
    expectOk(r);
    expect(r.state.accounting).toEqual(NONE);
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, SZ64K, 0)));
  });

  it('keeps the context open while an access fd is open after the iommufd fd is closed, and frees all of it at the last close', () => {
    const s = withAccess(accessPages(ACCESS_FD, IOVA, SZ64K));
    const r = executeClose(st(s.events), TEST_HEADER, 3);
    expectOk(r);
    // The access holds a reference on the context's file (iommufd_ctx_get): nothing is released yet.
    expect(r.state.ctxs.get(1)!.fileRefs).toBe(1);
    expect(objects(r.state)).toEqual([[1, 'IOAS', 2], [2, 'ACCESS', 2]]);
    expect(r.state.accounting.pinnedVm).toBe(16);
    const last = executeClose(r.state, TEST_HEADER, ACCESS_FD);
    expectOk(last);
    expect(last.state.ctxs.size).toBe(0);
    expect(last.state.pages.size).toBe(0);
    expect(last.state.accounting).toEqual(NONE);
    expect([...last.state.mm.pins.runs()].filter((x) => x.count !== 0)).toEqual([]);
  });
});
