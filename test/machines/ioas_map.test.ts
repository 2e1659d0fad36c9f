/**
 * The IOAS mapping ioctls, check by check in the kernel's order (drivers/iommu/iommufd/ioas.c and io_pagetable.c,
 * newest: commit 85e0d1de of torvalds/linux; spec: iommufd-core-spec.md §3.3–§3.9, §4). Every `given` is built by
 * running the real handlers (test/support/steps.ts), so a test starts from a state the model itself reached.
 */
import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import { memRead } from '../../src/hw/mm.js';
import { given, ioasAllocated, ioctl, opened } from '../support/given.js';
import {
  BUF, FIXED_RW, MOCK_APERTURE_START, PAGE, RW, TEST_HEADER, U64_MAX, addReserved, after, allowIovas, areasOf, at, checkMap,
  checkRefs, copy, execute, expectErr, expectOk, hugePages, mapAuto, mapFixed, mmapped, mockDomain, unmap,
} from '../support/steps.js';

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const IOVA = 0x1000000n;
const SZ64K = 0x10000n;
const base = (): DomainEvent[][] => [opened(), ioasAllocated(1)];
/** An IOAS with one 64 KiB area [IOVA, IOVA + 64K - 1] mapped (FIXED) at trace line 5. */
const withArea = () => after(base(), at(5, mapFixed(1, BUF, SZ64K, IOVA)));
const state = (events: DomainEvent[]) => after([events]).state;
const ioptOf = (st: ReturnType<typeof state>, id = 1) => st.ctxs.get(1)!.objects.get(id)!.ioas!.iopt;

describe('IOMMU_IOAS_MAP checks, in the kernel order', () => {
  it('rejects unknown flags and a non-zero __reserved with EOPNOTSUPP before anything else', () => {
    given(opened()).when(ioctl('IOMMU_IOAS_MAP', { flags: 8, ioas_id: 9, length: hex(U64_MAX), iova: hex(U64_MAX) })).thenFails('EOPNOTSUPP');
    given(opened()).when(ioctl('IOMMU_IOAS_MAP', { flags: RW, __reserved: 1, ioas_id: 9, length: hex(U64_MAX) })).thenFails('EOPNOTSUPP');
  });

  it('checks iova against ULONG_MAX even without FIXED_IOVA, and length, before the R/W flags', () => {
    // ioas.c iommufd_ioas_map: `if (cmd->iova >= ULONG_MAX || cmd->length >= ULONG_MAX) return -EOVERFLOW;`
    given(opened()).when(ioctl('IOMMU_IOAS_MAP', { flags: 0, ioas_id: 9, length: 4096, iova: hex(U64_MAX) })).thenFails('EOVERFLOW');
    given(opened()).when(ioctl('IOMMU_IOAS_MAP', { flags: 0, ioas_id: 9, length: hex(U64_MAX) })).thenFails('EOVERFLOW');
    given(opened()).when(ioctl('IOMMU_IOAS_MAP', { flags: 0, ioas_id: 9, length: hex(U64_MAX - 1n), iova: hex(U64_MAX - 1n) })).thenFails('EINVAL');
  });

  it('answers ENOENT for a missing IOAS and for an id that is not an IOAS, after the flag checks', () => {
    given(opened()).when(ioctl('IOMMU_IOAS_MAP', { flags: 'IOMMU_IOAS_MAP_READABLE', ioas_id: 9, length: 4096 })).thenFails('ENOENT');
    const dev = after(base(), mockDomain(1));
    // Object 3 is the mock device (idev), 4 its auto HWPT: neither is an IOAS.
    given(dev.events).when(ioctl('IOMMU_IOAS_MAP', { flags: RW, ioas_id: 3, user_va: hex(BUF), length: 4096 })).thenFails('ENOENT', /not a IOAS|IOAS/);
    given(dev.events).when(ioctl('IOMMU_IOAS_MAP', { flags: RW, ioas_id: 4, user_va: hex(BUF), length: 4096 })).thenFails('ENOENT');
  });

  it('looks the IOAS up before it checks the user range (iopt_alloc_user_pages: EOVERFLOW, then EINVAL for length 0)', () => {
    const top = U64_MAX - 0xfffn;
    given(opened()).when(mapAuto(9, top, 0x1000n)).thenFails('ENOENT');
    // pages.c iopt_alloc_user_pages: check_add_overflow(uptr, length, &end) — the last page of the address space overflows.
    given(...base()).when(mapAuto(1, top, 0x1000n)).thenFails('EOVERFLOW');
    given(...base()).when(mapAuto(1, BUF, 0n)).thenFails('EINVAL');
    given(opened()).when(mapAuto(9, BUF, 0n)).thenFails('ENOENT');
  });
});

describe('IOMMU_IOAS_MAP with FIXED_IOVA', () => {
  it('maps at the given IOVA with an unpublished area first, publishes it, and pins nothing when no domain is attached', () => {
    const r = given(...base()).when(mapFixed(1, BUF + 0x10n, 0x2000n, IOVA)).then([
      { type: 'PagesCreated', pages: 1, kind: 'user', uptr: BUF, memfd: undefined, fileStart: 0n, npages: 3, writable: true, accountMode: 1 },
      {
        type: 'AreaReserved', ctx: 1, ioas: 1, area: 1, start: IOVA, last: IOVA + 0x1fffn, pages: 1, pagesStart: 0, pagesLast: 2,
        pageOffset: 0x10, prot: 3, mappedAt: 0,
      },
      { type: 'AreaPublished', ctx: 1, ioas: 1, area: 1 },
    ], { iova: IOVA, length: 0x2000n, user_va: BUF + 0x10n });
    expect(r.state.accounting).toEqual({ userLockedVm: 0, mmLockedVm: 0, pinnedVm: 0 });
  });

  it('accepts an unmapped user address when nothing is attached (nothing is pinned or validated)', () => {
    // The header's memory is "explicit" and no VMA exists; io_pagetable.c only pins when a domain is filled.
    const r = execute(after(base()).state, TEST_HEADER, mapFixed(1, 0x1000n, SZ64K, IOVA));
    expectOk(r, { iova: IOVA });
  });

  it('answers EEXIST for an overlap, naming the area and the trace line that mapped it', () => {
    const s = withArea();
    const why = expectErr(execute(state(s.events), TEST_HEADER, mapFixed(1, BUF, SZ64K, IOVA + 0x8000n)), 'EEXIST');
    expect(why).toContain(`[${hex(IOVA)}, ${hex(IOVA + SZ64K - 1n)}] mapped at line 5`);
    given(s.events).when(mapFixed(1, BUF, SZ64K, IOVA - 0x8000n)).thenFails('EEXIST', /mapped at line 5/);
    given(s.events).when(mapFixed(1, BUF, 1n, IOVA + SZ64K - 1n)).thenFails('EEXIST');
  });

  it('maps right below and right above an existing area', () => {
    const s = withArea();
    expectOk(execute(state(s.events), TEST_HEADER, mapFixed(1, BUF, SZ64K, IOVA - SZ64K)));
    expectOk(execute(state(s.events), TEST_HEADER, mapFixed(1, BUF, SZ64K, IOVA + SZ64K)));
  });

  it('answers EEXIST for an area that is still being mapped (pages == NULL counts as used IOVA)', () => {
    const halfBuilt: DomainEvent[] = [
      { type: 'PagesCreated', pages: 1, kind: 'user', uptr: BUF, memfd: undefined, fileStart: 0n, npages: 16, writable: true, accountMode: 1 },
      { type: 'AreaReserved', ctx: 1, ioas: 1, area: 1, start: IOVA, last: IOVA + SZ64K - 1n, pages: 1, pagesStart: 0, pagesLast: 15, pageOffset: 0, prot: 3, mappedAt: 3 },
    ];
    // io_pagetable.c iopt_check_iova: iopt_area_iter_first() sees areas whatever their pages pointer.
    given(opened(), ioasAllocated(1), halfBuilt).when(mapFixed(1, BUF, 0x1000n, IOVA + 0x1000n)).thenFails('EEXIST', /still being mapped/);
  });

  it('answers EINVAL for a range that intersects a reserved range, checked before the areas', () => {
    const s = after(base(), mapFixed(1, BUF, SZ64K, IOVA), addReserved(1, IOVA + SZ64K, 0x1000n));
    given(s.events).when(mapFixed(1, BUF, 0x2000n, IOVA + SZ64K - 0x1000n)).thenFails('EINVAL', /reserved/);
    given(s.events).when(mapFixed(1, BUF, 0x20000n, IOVA)).thenFails('EINVAL', /reserved/);
    expectOk(execute(state(s.events), TEST_HEADER, mapFixed(1, BUF, 0x1000n, IOVA + SZ64K + 0x1000n)));
  });

  it('ignores the allowed ranges (they restrict only automatic allocation)', () => {
    const s = after(base(), allowIovas(1, [[0x100000n, 0x1fffffn]]));
    expectOk(execute(state(s.events), TEST_HEADER, mapFixed(1, BUF, SZ64K, IOVA)), { iova: IOVA });
  });

  it('answers EOVERFLOW when iova + length - 1 passes the end of the address space', () => {
    given(...base()).when(mapFixed(1, BUF, 0x2000n, U64_MAX - 0xfffn)).thenFails('EOVERFLOW');
  });

  it('checks the length against iova_alignment before the IOVA, then the IOVA, then the user page offset', () => {
    // HUGE_PAGES off raises iova_alignment to PAGE_SIZE.
    const s = after(base(), hugePages(1, 0), mapFixed(1, BUF, SZ64K, IOVA));
    expect(ioptOf(s.state).iovaAlignment).toBe(PAGE);
    // iopt_alloc_area_pages: `(length & (iopt->iova_alignment - 1)) || !length` → EINVAL, before iopt_check_iova's EEXIST.
    given(s.events).when(mapFixed(1, BUF, 0x800n, IOVA)).thenFails('EINVAL', /iova_alignment/);
    given(s.events).when(mapFixed(1, BUF, 0x1000n, IOVA + SZ64K + 0x800n)).thenFails('EINVAL', /iova_alignment/);
    // iopt_insert_area: `area->page_offset & (iopt->iova_alignment - 1)` → EINVAL.
    given(s.events).when(mapFixed(1, BUF + 0x800n, 0x1000n, IOVA + SZ64K)).thenFails('EINVAL', /offset/);
    expectOk(execute(state(s.events), TEST_HEADER, mapFixed(1, BUF, 0x1000n, IOVA + SZ64K)));
  });
});

describe('IOMMU_IOAS_MAP with an automatic IOVA (spec §4.2)', () => {
  const auto = (events: DomainEvent[], uva: bigint, length: bigint): bigint => {
    const out = expectOk(execute(state(events), TEST_HEADER, mapAuto(1, uva, length)));
    return out!.iova as bigint;
  };

  it('starts at PAGE_SIZE aligned to the length, and places the next map after the first', () => {
    const s = after(base(), mapAuto(1, BUF, SZ64K));
    expect(s.outs[0]).toMatchObject({ iova: 0x10000n });
    expect(auto(s.events, BUF, SZ64K)).toBe(0x20000n);
    expect(auto(after(base()).events, BUF, 0x1000n)).toBe(0x1000n);
  });

  it('clamps the alignment to the THP size (2 MiB) when the length and the user address allow more', () => {
    // io_pagetable.c iopt_alloc_iova: `if (iova_alignment >= max_alignment) iova_alignment = max_alignment;` (HPAGE_SIZE).
    expect(auto(after(base()).events, BUF, 0x400000n)).toBe(0x200000n);
  });

  it('keeps the user address in-page offset, aligning only as far as its lowest set bit', () => {
    expect(auto(after(base()).events, BUF + 0x123n, 0x1000n)).toBe(0x1123n);
    expect(auto(after(base()).events, BUF + 0x3000n, SZ64K)).toBe(0x1000n);
    expect(auto(after(base()).events, BUF + 0x10000n, SZ64K)).toBe(0x10000n);
  });

  it('searches inside the allowed ranges only, skipping a range whose aligned start does not fit', () => {
    const s = after(base(), allowIovas(1, [[0x3000n, 0x3fffn], [0x40000000n, 0x4fffffffn]]));
    expect(auto(s.events, BUF, 0x2000n)).toBe(0x40000000n);
    expect(auto(s.events, BUF, 0x1000n)).toBe(0x3000n);
  });

  it('rejects a candidate equal to the last byte of its hole, even for a 1-byte map', () => {
    // __alloc_iova_check_range: `if (aligned_start >= last || last - aligned_start < length - 1) return false;`
    const s = after(base(), allowIovas(1, [[0x5000n, 0x6fffn]]), mapFixed(1, BUF + 1n, 0xfffn, 0x5001n));
    expect(auto(s.events, BUF, 1n)).toBe(0x6000n);
  });

  it('skips reserved ranges and areas, and answers ENOSPC when no hole fits', () => {
    const s = after(base(), addReserved(1, 0x1000n, 0xf000n), mapFixed(1, BUF, SZ64K, 0x10000n));
    expect(auto(s.events, BUF, 0x1000n)).toBe(0x20000n);
    given(after(base(), allowIovas(1, [[0x1000n, 0x1fffn]])).events).when(mapAuto(1, BUF, 0x2000n)).thenFails('ENOSPC');
    given(after(base(), addReserved(1, 0x1000n, U64_MAX - 0x1fffn)).events).when(mapAuto(1, BUF, 0x1000n)).thenFails('ENOSPC');
  });

  it('answers EOVERFLOW for a length of ULONG_MAX/2 or more, which a FIXED map of an empty IOAS accepts', () => {
    given(...base()).when(mapAuto(1, 0x1000n, 1n << 63n)).thenFails('EOVERFLOW');
    expectOk(execute(after(base()).state, TEST_HEADER, mapFixed(1, 0x1000n, 1n << 63n, 0x1000n)));
  });

  it('answers EINVAL when the alignment the address allows is below the IOAS iova_alignment', () => {
    const s = after(base(), hugePages(1, 0));
    given(s.events).when(mapAuto(1, BUF + 0x800n, 0x1000n)).thenFails('EINVAL', /iova_alignment/);
    expect(auto(s.events, BUF + 0x1000n, 0x1000n)).toBe(0x1000n);
  });

  it('places a map inside a mock domain aperture at 16 MiB with the 2 KiB page offset kept, and the domain maps it', () => {
    const s = after([...base(), mmapped(BUF, 0x200000n)], mockDomain(1));
    const hwpt = Number((s.outs[0]!.mock_domain as { out_hwpt_id: bigint }).out_hwpt_id);
    const r = execute(state(s.events), TEST_HEADER, mapAuto(1, BUF + 0x800n, 0x1800n));
    expectOk(r, { iova: MOCK_APERTURE_START | 0x800n });
    expectOk(execute(r.state, TEST_HEADER, checkMap(hwpt, MOCK_APERTURE_START + 0x800n, 0x1800n, BUF + 0x800n)));
  });
});

describe('IOMMU_IOAS_MAP_FILE', () => {
  const memfd = (size: bigint): DomainEvent[] => [
    { type: 'MemfdCreated', memfd: 1, name: 'buf' },
    { type: 'FdInstalled', fd: 4, file: { kind: 'memfd', memfd: 1 } },
    { type: 'MemfdResized', memfd: 1, size },
  ];
  const mapFile = (arg: Record<string, unknown>) => ioctl('IOMMU_IOAS_MAP_FILE', { flags: RW, ioas_id: 1, fd: 4, length: 0x10000, ...arg });

  it('checks flags, overflow, the R/W flags and the IOAS before the file range and the fd', () => {
    given(opened()).when(mapFile({ flags: 8, ioas_id: 9, fd: 99, iova: hex(U64_MAX) })).thenFails('EOPNOTSUPP');
    given(opened()).when(mapFile({ flags: 0, ioas_id: 9, iova: hex(U64_MAX) })).thenFails('EOVERFLOW');
    given(opened()).when(mapFile({ flags: 0, ioas_id: 9, length: hex(U64_MAX) })).thenFails('EOVERFLOW');
    given(opened()).when(mapFile({ flags: 0, ioas_id: 9 })).thenFails('EINVAL');
    given(opened()).when(mapFile({ ioas_id: 9, fd: 99, length: 0 })).thenFails('ENOENT');
  });

  it('checks length 0 (EINVAL) and start + length - 1 (EOVERFLOW) before it looks at the fd (EBADF)', () => {
    // io_pagetable.c iopt_map_file_pages: `if (!length) return -EINVAL; if (check_add_overflow(start, length - 1, &last)) return -EOVERFLOW;` then fget → EBADF.
    given(...base()).when(mapFile({ fd: 99, length: 0 })).thenFails('EINVAL');
    given(...base()).when(mapFile({ fd: 99, start: hex(U64_MAX), length: 2 })).thenFails('EOVERFLOW');
    given(...base()).when(mapFile({ fd: 99 })).thenFails('EBADF');
  });

  it('maps a memfd, using the file offset as the alignment hint of an automatic IOVA', () => {
    const s = after([...base(), memfd(0x20000n)]);
    // A file offset of 0 is "no hint": the alignment is roundup_pow_of_two(length).
    expectOk(execute(state(s.events), TEST_HEADER, mapFile({})), { iova: 0x10000n });
    expectOk(execute(state(s.events), TEST_HEADER, mapFile({ start: 0x1000, length: 0x1000 })), { iova: 0x1000n });
    expectOk(execute(state(s.events), TEST_HEADER, mapFile({ flags: FIXED_RW, iova: hex(IOVA) })), { iova: IOVA });
  });

  it('pins the memfd pages when a domain is attached, refusing pages beyond the file size', () => {
    const s = after([...base(), memfd(0x10000n)], mockDomain(1));
    expectOk(execute(state(s.events), TEST_HEADER, mapFile({ flags: FIXED_RW, iova: hex(IOVA) })));
    expect(execute(state(s.events), TEST_HEADER, mapFile({ flags: FIXED_RW, iova: hex(IOVA), length: 0x20000 })).done.outcome)
      .toMatchObject({ kind: 'err', errno: 'EINVAL' });
  });

  it('says it does not model mapping a file that is not a memfd yet', () => {
    const other: DomainEvent[] = [{ type: 'FdInstalled', fd: 5, file: { kind: 'other', path: '/tmp/data' } }];
    const r = execute(state([...opened(), ...ioasAllocated(1), ...other]), TEST_HEADER, mapFile({ fd: 5 }));
    expect(r.done.outcome.kind).toBe('unmodelled');
  });
});

describe('IOMMU_IOAS_COPY', () => {
  const copyArg = (arg: Record<string, unknown>) =>
    ioctl('IOMMU_IOAS_COPY', { flags: RW, dst_ioas_id: 2, src_ioas_id: 1, length: 0x1000, src_iova: hex(IOVA), ...arg });

  it('checks flags, then length, src_iova and dst_iova against ULONG_MAX, then the R/W flags, then the source IOAS', () => {
    given(opened()).when(copyArg({ flags: 8, length: hex(U64_MAX) })).thenFails('EOPNOTSUPP');
    given(opened()).when(copyArg({ flags: 0, length: hex(U64_MAX) })).thenFails('EOVERFLOW');
    given(opened()).when(copyArg({ flags: 0, src_iova: hex(U64_MAX) })).thenFails('EOVERFLOW');
    given(opened()).when(copyArg({ flags: 0, dst_iova: hex(U64_MAX) })).thenFails('EOVERFLOW');
    given(opened()).when(copyArg({ flags: 0 })).thenFails('EINVAL');
    given(opened()).when(copyArg({ src_ioas_id: 9 })).thenFails('ENOENT');
  });

  it('reads the source range before it looks up the destination', () => {
    const s = withArea();
    // iopt_get_pages: length 0 → EINVAL; an uncovered range → ENOENT; both before iommufd_get_ioas(dst).
    given(s.events).when(copyArg({ dst_ioas_id: 9, length: 0 })).thenFails('EINVAL');
    given(s.events).when(copyArg({ dst_ioas_id: 9, src_iova: hex(IOVA + SZ64K - 0x800n) })).thenFails('ENOENT', /not fully mapped/);
  });

  it('answers ENOENT for a missing destination and drops the page references it took', () => {
    const s = withArea();
    const r = execute(state(s.events), TEST_HEADER, copyArg({ dst_ioas_id: 9 }));
    expect(r.done.outcome).toMatchObject({ kind: 'err', errno: 'ENOENT' });
    expect(r.state.pages.get(1)!.refs).toBe(1);
  });

  it('shares the pages: a domain-backed copy leaves every page of the buffer with one pin', () => {
    const s = after([...base(), mmapped(BUF, SZ64K), ioasAllocated(2)], mockDomain(1), mockDomain(2), mapFixed(1, BUF, SZ64K, IOVA));
    const r = execute(state(s.events), TEST_HEADER, copy(2, 1, IOVA, SZ64K, IOVA));
    expectOk(r, { dst_iova: IOVA });
    expect(r.state.accounting.pinnedVm).toBe(16);
    // selftest.c iommufd_test_md_check_refs: page_ref_count / GUP_PIN_COUNTING_BIAS == refs.
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, SZ64K, 1)));
    expect(execute(r.state, TEST_HEADER, checkRefs(BUF, SZ64K, 2)).done.outcome).toMatchObject({ kind: 'err', errno: 'EIO' });
    // IOAS 2's auto HWPT (stdev 6, idev 7, hwpt 8) maps the same frames.
    expect(s.outs[1]).toMatchObject({ mock_domain: { out_hwpt_id: 8n } });
    expectOk(execute(r.state, TEST_HEADER, checkMap(8, IOVA, SZ64K, BUF)));
    // Unmapping the source keeps the copy's pins.
    expectOk(execute(r.state, TEST_HEADER, unmap(1, IOVA, SZ64K)));
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, SZ64K, 1)));
  });

  it('pins again for a second, independent MAP of the same memory', () => {
    const s = after([...base(), mmapped(BUF, SZ64K)], mockDomain(1), mapFixed(1, BUF, SZ64K, IOVA), mapFixed(1, BUF, SZ64K, IOVA + SZ64K));
    expectOk(execute(s.state, TEST_HEADER, checkRefs(BUF, SZ64K, 2)));
    expect(s.state.accounting.pinnedVm).toBe(32);
  });

  it('copies any contiguous sub-range, across adjacent areas, into back-to-back areas', () => {
    const s = after([...base(), ioasAllocated(2)], mapFixed(1, BUF, 0x1000n, IOVA), mapFixed(1, BUF + 0x10000n, 0x1000n, IOVA + 0x1000n));
    const r = execute(state(s.events), TEST_HEADER, copy(2, 1, IOVA + 0x800n, 0x1000n, 0x5000800n));
    expectOk(r, { dst_iova: 0x5000800n });
    expect(areasOf(r.state, 2)).toEqual([[0x5000800n, 0x5000fffn], [0x5001000n, 0x50017ffn]]);
  });

  it('uses the source byte user address as the alignment hint of an automatic destination IOVA', () => {
    const s = after([...base(), ioasAllocated(2)], mapFixed(1, BUF + 0x10000n, 0x20000n, IOVA));
    expectOk(execute(state(s.events), TEST_HEADER, copy(2, 1, IOVA, SZ64K)), { dst_iova: 0x10000n });
    // Source byte at BUF + 0x11000: its lowest set bit (0x1000) caps the alignment.
    expectOk(execute(state(s.events), TEST_HEADER, copy(2, 1, IOVA + 0x1000n, SZ64K)), { dst_iova: 0x1000n });
  });

  it('under CONFIG_IOMMUFD_TEST, takes MOCK_FLAGS_ACCESS_SYZ in flags as "source IOVA = nth area + offset" and clears it', () => {
    // ioas.c iommufd_ioas_copy: `iommufd_test_syz_conv_iova_id(ucmd, cmd->src_ioas_id, &cmd->src_iova, &cmd->flags);`
    // runs before the flag check; selftest.c clears MOCK_FLAGS_ACCESS_SYZ (1 << 16) and sets src_iova to
    // iopt_area_iova(area #nth_area) + offset, {nth_area, offset} being the two u32 halves of src_iova.
    const s = after([...base(), ioasAllocated(2)], mapFixed(1, BUF, SZ64K, IOVA));
    const syz = ioctl('IOMMU_IOAS_COPY', { flags: 0x10007, dst_ioas_id: 2, src_ioas_id: 1, length: 0x1000, src_iova: hex(0x2000n << 32n), dst_iova: hex(IOVA) });
    const r = execute(state(s.events), TEST_HEADER, syz);
    expectOk(r);
    expect(areasOf(r.state, 2)).toEqual([[IOVA, IOVA + 0xfffn]]);
    expect(r.state.ctxs.get(1)!.objects.get(2)!.ioas!.iopt.areaById.get(2)!.value.pagesStart).toBe(2);
    // Without CONFIG_IOMMUFD_TEST the conversion is a no-op stub and bit 16 is an unknown flag.
    given(s.events).withHeader({ iommufd_test: false }).when(syz).thenFails('EOPNOTSUPP');
  });

  it('answers EPERM for a writeable copy of pages that were mapped read-only', () => {
    const s = after([...base(), ioasAllocated(2)], mapFixed(1, BUF, SZ64K, IOVA, ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_READABLE']));
    // io_pagetable.c iopt_insert_area: `if ((iommu_prot & IOMMU_WRITE) && !pages->writable) return -EPERM;`
    const r = execute(state(s.events), TEST_HEADER, copy(2, 1, IOVA, SZ64K, IOVA));
    expect(r.done.outcome).toMatchObject({ kind: 'err', errno: 'EPERM' });
    expect(areasOf(r.state, 2)).toEqual([]);
    expect(r.state.pages.get(1)!.refs).toBe(1);
    expectOk(execute(state(s.events), TEST_HEADER, copy(2, 1, IOVA, SZ64K, IOVA, ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_READABLE'])));
  });
});

describe('IOMMU_IOAS_UNMAP', () => {
  it('looks the IOAS up before any range check', () => {
    given(opened()).when(unmap(9, 0x1000n, 0n)).thenFails('ENOENT');
    given(opened()).when(unmap(9, U64_MAX, 1n)).thenFails('ENOENT');
  });

  it('answers EOVERFLOW for iova or length >= ULONG_MAX (but unmap-all), EINVAL for length 0, EOVERFLOW when the range wraps', () => {
    given(...base()).when(unmap(1, U64_MAX, 1n)).thenFails('EOVERFLOW');
    given(...base()).when(unmap(1, 0x1000n, U64_MAX)).thenFails('EOVERFLOW');
    given(...base()).when(unmap(1, 0x1000n, 0n)).thenFails('EINVAL');
    given(...base()).when(unmap(1, U64_MAX - 1n, 3n)).thenFails('EOVERFLOW');
    given(...base()).when(unmap(1, U64_MAX - 1n, 2n)).thenFails('ENOENT');
  });

  it('answers ENOENT when the range unmaps 0 bytes, and succeeds over holes between whole areas', () => {
    const s = after(base(), mapFixed(1, BUF, SZ64K, IOVA), mapFixed(1, BUF, SZ64K, IOVA + 0x40000n));
    given(s.events).when(unmap(1, IOVA + SZ64K, 0x30000n)).thenFails('ENOENT', /no area/);
    const r = execute(state(s.events), TEST_HEADER, unmap(1, IOVA - 0x1000n, 0x60000n));
    expectOk(r, { length: 0x20000n });
    expect(areasOf(r.state, 1)).toEqual([]);
  });

  it('unmaps whole areas only: a range that cuts an area is ENOENT and the area stays', () => {
    const s = withArea();
    const r = execute(state(s.events), TEST_HEADER, unmap(1, IOVA, 0x8000n));
    expectErr(r, 'ENOENT', /cuts area/);
    expect(areasOf(r.state, 1)).toEqual([[IOVA, IOVA + SZ64K - 1n]]);
    given(s.events).when(unmap(1, IOVA + 0x8000n, SZ64K)).thenFails('ENOENT');
  });

  it('is not atomic: areas below a cut area are already unmapped when ENOENT comes back, and length is not written', () => {
    const s = after(base(), mapFixed(1, BUF, SZ64K, IOVA), mapFixed(1, BUF, SZ64K, IOVA + SZ64K), mapFixed(1, BUF, SZ64K, IOVA + 0x20000n));
    const r = execute(state(s.events), TEST_HEADER, unmap(1, IOVA, 0x28000n));
    expect(r.done.outcome).toMatchObject({ kind: 'err', errno: 'ENOENT', out: undefined });
    expect(areasOf(r.state, 1)).toEqual([[IOVA + 0x20000n, IOVA + 0x2ffffn]]);
    expect(r.state.pages.get(1)).toBeUndefined();
    expect(r.state.pages.get(2)).toBeUndefined();
  });

  it('unmaps everything for iova 0 and length U64_MAX, succeeding with length 0 on an empty IOAS', () => {
    given(...base()).when(unmap(1, 0n, U64_MAX)).then([], { length: 0n });
    const s = after([...base(), mmapped(BUF, SZ64K)], mockDomain(1), mapFixed(1, BUF, SZ64K, IOVA), mapFixed(1, BUF, 0x1000n, IOVA + 0x100000n));
    const r = execute(state(s.events), TEST_HEADER, unmap(1, 0n, U64_MAX));
    expectOk(r, { length: SZ64K + 0x1000n });
    expect(areasOf(r.state, 1)).toEqual([]);
    expect(r.state.accounting).toEqual({ userLockedVm: 0, mmLockedVm: 0, pinnedVm: 0 });
    expectOk(execute(r.state, TEST_HEADER, checkRefs(BUF, SZ64K, 0)));
  });

  it('answers EBUSY for an area that is still being mapped', () => {
    const halfBuilt: DomainEvent[] = [
      { type: 'PagesCreated', pages: 1, kind: 'user', uptr: BUF, memfd: undefined, fileStart: 0n, npages: 16, writable: true, accountMode: 1 },
      { type: 'AreaReserved', ctx: 1, ioas: 1, area: 1, start: IOVA, last: IOVA + SZ64K - 1n, pages: 1, pagesStart: 0, pagesLast: 15, pageOffset: 0, prot: 3, mappedAt: 3 },
    ];
    given(opened(), ioasAllocated(1), halfBuilt).when(unmap(1, IOVA, SZ64K)).thenFails('EBUSY');
    given(opened(), ioasAllocated(1), halfBuilt).when(unmap(1, 0n, U64_MAX)).thenFails('EBUSY');
  });
});

describe('IOMMU_IOAS_ALLOW_IOVAS', () => {
  it('checks __reserved, then the IOAS, then each element', () => {
    given(opened()).when(ioctl('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: 9, __reserved: 1, num_iovas: 1, allowed_iovas: [{ start: 2, last: 1 }] })).thenFails('EOPNOTSUPP');
    given(opened()).when(allowIovas(9, [[2n, 1n]])).thenFails('ENOENT');
    given(...base()).when(ioctl('IOMMU_IOAS_ALLOW_IOVAS', { ioas_id: 1, num_iovas: 1 })).thenFails('EFAULT');
  });

  it('answers EINVAL for start >= last, so a one-byte range is refused', () => {
    given(...base()).when(allowIovas(1, [[0x1000n, 0x1000n]])).thenFails('EINVAL', /start/);
    given(...base()).when(allowIovas(1, [[0x2000n, 0x1000n]])).thenFails('EINVAL');
  });

  it('answers EINVAL for an element overlapping an earlier one, and accepts adjacent ones', () => {
    given(...base()).when(allowIovas(1, [[0x1000n, 0x2fffn], [0x2fffn, 0x3fffn]])).thenFails('EINVAL', /overlaps/);
    given(...base()).when(allowIovas(1, [[0x1000n, 0x2fffn], [0x3000n, 0x3fffn]]))
      .then([{ type: 'AllowedIovasSet', ctx: 1, ioas: 1, ranges: [{ start: 0x1000n, last: 0x2fffn }, { start: 0x3000n, last: 0x3fffn }] }]);
  });

  it('answers EADDRINUSE for a range over a reserved range and keeps the old list (the swap is undone)', () => {
    const s = after(base(), allowIovas(1, [[0x100000n, 0x1fffffn]]), addReserved(1, 0x10000000n, 0x1000n));
    const r = execute(state(s.events), TEST_HEADER, allowIovas(1, [[0x8000000n, 0x10000000n]]));
    expectErr(r, 'EADDRINUSE', /reserved/);
    expect([...ioptOf(r.state).allowed.inOrder()].map((n) => [n.start, n.last])).toEqual([[0x100000n, 0x1fffffn]]);
  });

  it('replaces the whole list, empties it with num_iovas 0, and does not look at existing areas', () => {
    const s = after(base(), mapFixed(1, BUF, SZ64K, IOVA), allowIovas(1, [[0x100000n, 0x1fffffn]]));
    const r = execute(state(s.events), TEST_HEADER, allowIovas(1, [[IOVA, IOVA + 0xfffffn]]));
    expectOk(r);
    expect([...ioptOf(r.state).allowed.inOrder()].map((n) => [n.start, n.last])).toEqual([[IOVA, IOVA + 0xfffffn]]);
    const e = execute(r.state, TEST_HEADER, allowIovas(1, []));
    expectOk(e);
    expect(ioptOf(e.state).allowed.isEmpty).toBe(true);
  });
});

describe('IOMMU_IOAS_IOVA_RANGES with reserved ranges', () => {
  const ranges = (ioas = 1, num = 4) => ioctl('IOMMU_IOAS_IOVA_RANGES', { ioas_id: ioas, num_iovas: num, allowed_iovas: hex(BUF) });
  /** The ranges go to user memory: the buffer is mapped. */
  const withBuf = (): DomainEvent[][] => [...base(), mmapped(BUF, PAGE)];

  it('reports the holes of the reserved ranges, merging adjacent ones, and ignores allowed ranges and areas', () => {
    const s = after(withBuf(), addReserved(1, 0x10000n, 0x10000n), addReserved(1, 0x20000n, 0x10000n), allowIovas(1, [[0x100000n, 0x1fffffn]]),
      mapFixed(1, BUF, SZ64K, IOVA));
    given(s.events).when(ranges()).thenOk({
      num_iovas: 2n, out_iova_alignment: 1n, allowed_iovas: [{ start: 0n, last: 0xffffn }, { start: 0x30000n, last: U64_MAX }],
    });
  });

  it('answers EMSGSIZE with the required count when the array is too small, after writing what fits', () => {
    const s = after(withBuf(), addReserved(1, 0x10000n, 0x10000n));
    // ioas.c iommufd_ioas_iova_ranges: the first range is copied out, then the struct, then `rc = -EMSGSIZE`.
    const r = execute(state(s.events), TEST_HEADER, ranges(1, 1));
    expect(r.done.outcome).toMatchObject({ kind: 'err', errno: 'EMSGSIZE', out: { num_iovas: 2n, allowed_iovas: [{ start: 0n, last: 0xffffn }] } });
    const mem = memRead(r.state.mm, r.state.memory, 4096, BUF, 32);
    expect(Buffer.from(mem as Uint8Array).toString('hex')).toBe(`${'00'.repeat(8)}ffff000000000000${'00'.repeat(16)}`);
  });

  it('reports only the aperture of an attached mock domain, and its 2 KiB alignment', () => {
    const s = after(withBuf(), mockDomain(1));
    given(s.events).when(ranges()).thenOk({
      num_iovas: 1n, out_iova_alignment: 2048n, allowed_iovas: [{ start: MOCK_APERTURE_START, last: (1n << 31n) - 1n }],
    });
  });
});

describe('IOMMU_OPTION HUGE_PAGES with areas', () => {
  const get = ioctl('IOMMU_OPTION', { option_id: 'IOMMU_OPTION_HUGE_PAGES', op: 'IOMMU_OPTION_OP_GET', object_id: 1 });

  it('refuses to disable large pages with EADDRINUSE when an area is not PAGE_SIZE aligned, and leaves them enabled', () => {
    const s = after(base(), mapFixed(1, BUF + 0x800n, 0x800n, IOVA + 0x800n));
    const r = execute(state(s.events), TEST_HEADER, hugePages(1, 0));
    expectErr(r, 'EADDRINUSE', /not aligned/);
    expect(ioptOf(r.state).iovaAlignment).toBe(1n);
    given(s.events).when(get).then([], { val64: 1n });
  });

  it('refuses with EINVAL while a domain is attached and an area exists', () => {
    const s = after([...base(), mmapped(BUF, SZ64K)], mockDomain(1), mapFixed(1, BUF, SZ64K, IOVA));
    given(s.events).when(hugePages(1, 0)).thenFails('EINVAL', /domain/);
  });

  it('disables with aligned areas, raising iova_alignment to PAGE_SIZE, and enabling lowers it back', () => {
    const s = after(base(), mapFixed(1, BUF, SZ64K, IOVA));
    const r = execute(state(s.events), TEST_HEADER, hugePages(1, 0));
    expectOk(r, { val64: 0n });
    expect(ioptOf(r.state).iovaAlignment).toBe(PAGE);
    expectOk(execute(r.state, TEST_HEADER, hugePages(1, 0)));
    expectOk(execute(r.state, TEST_HEADER, hugePages(1, 1)), { val64: 1n });
    expect(ioptOf(r.state).iovaAlignment).toBe(1n);
  });

  it('disables with a domain attached and no area, the alignment becoming the larger of PAGE_SIZE and the domain page', () => {
    const s = after(base(), mockDomain(1));
    const r = execute(state(s.events), TEST_HEADER, hugePages(1, 0));
    expectOk(r);
    expect(ioptOf(r.state).iovaAlignment).toBe(PAGE);
    expectOk(execute(r.state, TEST_HEADER, hugePages(1, 1)));
    expect(ioptOf(r.state).iovaAlignment).toBe(2048n);
  });
});

describe('IOMMU_TEST_OP_ADD_RESERVED', () => {
  it('checks length 0 (EINVAL) and start + length - 1 (EOVERFLOW) before the IOAS', () => {
    given(opened()).when(addReserved(9, 0x1000n, 0n)).thenFails('EINVAL');
    given(opened()).when(addReserved(9, U64_MAX, 2n)).thenFails('EOVERFLOW');
    given(opened()).when(addReserved(9, 0x1000n, 0x1000n)).thenFails('ENOENT');
    given(...base()).when(addReserved(1, U64_MAX, 1n))
      .then([{ type: 'ReservedAdded', ctx: 1, ioas: 1, start: U64_MAX, last: U64_MAX, owner: '' }]);
  });

  it('answers EADDRINUSE over an area (even a half-built one) or an allowed range, and allows overlapping reserved ranges', () => {
    const s = after(base(), mapFixed(1, BUF, SZ64K, IOVA), allowIovas(1, [[0x100000n, 0x1fffffn]]), addReserved(1, 0x8000000n, 0x10000n));
    given(s.events).when(addReserved(1, IOVA + SZ64K - 1n, 2n)).thenFails('EADDRINUSE', /area/);
    given(s.events).when(addReserved(1, 0x1ff000n, 0x2000n)).thenFails('EADDRINUSE', /allowed/);
    given(s.events).when(addReserved(1, 0x8008000n, 0x10000n)).then([{ type: 'ReservedAdded', ctx: 1, ioas: 1, start: 0x8008000n, last: 0x8017fffn, owner: '' }]);
    const halfBuilt: DomainEvent[] = [
      { type: 'PagesCreated', pages: 1, kind: 'user', uptr: BUF, memfd: undefined, fileStart: 0n, npages: 16, writable: true, accountMode: 1 },
      { type: 'AreaReserved', ctx: 1, ioas: 1, area: 1, start: IOVA, last: IOVA + SZ64K - 1n, pages: 1, pagesStart: 0, pagesLast: 15, pageOffset: 0, prot: 3, mappedAt: 3 },
    ];
    given(opened(), ioasAllocated(1), halfBuilt).when(addReserved(1, IOVA, 1n)).thenFails('EADDRINUSE');
  });

  it('makes a reserved range avoided by automatic IOVAs and refused to FIXED maps', () => {
    const s = after(base(), addReserved(1, 0x1000n, 0x1000n));
    expectOk(execute(state(s.events), TEST_HEADER, mapAuto(1, BUF, 0x1000n)), { iova: 0x2000n });
    given(s.events).when(mapFixed(1, BUF, 0x1000n, 0x1000n)).thenFails('EINVAL');
  });
});
