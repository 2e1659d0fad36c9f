import { describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../src/events/domain.js';
import type { TraceHeader } from '../../src/events/header.js';
import { resolveStruct, Unbound } from '../../src/events/resolve.js';
import { decodeIoctlArg } from '../../src/events/trace.js';
import { COMMAND_BY_NAME } from '../../src/events/uapi.js';
import { hexOf } from '../../src/events/values.js';
import { ioptEvolve, newIopt, type Area, type Iopt } from '../../src/hw/io_pagetable.js';
import { applyAreaSplit, iopt_area_split, iopt_cut_iova, splitArea, type AreaSplitEvent } from '../../src/hw/iopt_split.js';
import { runToCompletion, type Done, type Kernel, type Out } from '../../src/machines/ioctl.js';
import { iommufd_fops_ioctl, type IoctlInput } from '../../src/machines/main.js';
import { iommufd_vfio_compat_ioas_create, vfioInfoCapChain } from '../../src/machines/vfio_compat.js';
import { evolve, initialState, type State } from '../../src/projections/state.js';
import { DEFAULT_HEADER } from '../../src/replay/engine.js';
import { given, ioasAllocated, ioctl, opened, type IoctlCall, type Ran, withoutShortTermHold } from '../support/given.js';

const U64_MAX = (1n << 64n) - 1n;
const PAGE = 4096n;
const NO_DOMAIN_PGSIZES = 0xffff_ffff_ffff_f000n;
const bytes = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

// ---- Given events ----------------------------------------------------------------------------------------------

/** IOAS `id` is the compat IOAS (IOMMU_VFIO_IOAS SET). */
const compat = (id = 1): DomainEvent[] => [{ type: 'VfioIoasSet', ctx: 1, id }];
/** VFIO_SET_IOMMU(TYPE1) happened: large pages disabled, alignment PAGE_SIZE. */
const type1 = (id = 1): DomainEvent[] => [{ type: 'IoasLargePagesSet', ctx: 1, id, disableLargePages: true, iovaAlignment: PAGE }];
/** A /dev/vfio/vfio open: context 1 in MM accounting mode. */
const openedCompat = (): DomainEvent[] => [
  { type: 'IommufdOpened', ctx: 1, accountMode: 1, compat: true },
  { type: 'FdInstalled', fd: 3, file: { kind: 'iommufd', ctx: 1 } },
];
/** A published area `area` of IOAS 1 on new pages `pages`, from page-aligned user memory at `uptr`. */
function mapped(area: number, pages: number, start: bigint, length: bigint, opts: { uptr?: bigint; published?: boolean; ioas?: number } = {}): DomainEvent[] {
  const uptr = opts.uptr ?? 0x7f00_0000_0000n + BigInt(pages) * 0x100_0000n;
  const npages = Number((length + PAGE - 1n) / PAGE);
  const ioas = opts.ioas ?? 1;
  const ev: DomainEvent[] = [
    { type: 'PagesCreated', pages, kind: 'user', uptr, memfd: undefined, fileStart: 0n, npages, writable: true, accountMode: 1 },
    { type: 'AreaReserved', ctx: 1, ioas, area, start, last: start + length - 1n, pages, pagesStart: 0, pagesLast: npages - 1, pageOffset: 0, prot: 3, mappedAt: 0 },
  ];
  if (opts.published !== false) ev.push({ type: 'AreaPublished', ctx: 1, ioas, area });
  return ev;
}
/** A hardware domain with `pgsizes` attached to IOAS 1 (no area mapped in it). */
const domainAttached = (pgsizes: bigint, align: bigint, domain = 1): DomainEvent[] => [
  { type: 'DomainAllocated', domain, kind: 'paging', driver: 'mock', pgsizeBitmap: pgsizes, apertureStart: 0n, apertureLast: U64_MAX, dirtyOps: false, ctx: 1, hwpt: 9 },
  { type: 'IoptDomainAdded', ctx: 1, ioas: 1, domain, iovaAlignment: align },
];

const outcomeOf = (r: Ran): Done['outcome'] => r.done.outcome;
const outOf = (r: Ran): Out | undefined => {
  const o = r.done.outcome;
  return o.kind === 'unmodelled' ? undefined : o.out;
};
const tailHex = (r: Ran): string | undefined => {
  const t = outOf(r)?.tail;
  return t instanceof Uint8Array ? hexOf(t) : undefined;
};
const areasOf = (st: State, ioas = 1): Area[] => [...st.ctxs.get(1)!.objects.get(ioas)!.ioas!.iopt.areas.inOrder()].map((n) => n.value);

// ---- A runner whose evolve already has the proposed AreaSplit case ---------------------------------------------

/**
 * The `AreaSplit` case proposed for `evolve` (src/projections/state.ts) and `ioptEvolve` (src/hw/io_pagetable.ts),
 * applied here until they have it; every other event goes through the real `evolve`.
 */
function evolveWired(st: State, e: DomainEvent): void {
  const ev = e as unknown as AreaSplitEvent;
  if (ev.type !== 'AreaSplit') {
    evolve(st, e);
    return;
  }
  const i = st.ctxs.get(ev.ctx)!.objects.get(ev.ioas)!.ioas!.iopt;
  const pages = i.areaById.get(ev.area)!.value.pages;
  applyAreaSplit(i, ev, st.pageSize);
  st.pages.get(pages)!.refs++;
  st.nextArea = Math.max(st.nextArea, ev.lhs + 1, ev.rhs + 1);
}

/** `given(...).when(call)` with `evolveWired`: the state before, one ioctl through the real dispatch, what it did. */
function whenWired(batches: DomainEvent[][], call: IoctlCall, h: Partial<TraceHeader> = {}): Ran {
  const st = initialState();
  for (const b of batches) for (const e of b) evolveWired(st, e);
  const def = COMMAND_BY_NAME.get(call.cmd as string)!;
  const d = decodeIoctlArg(def, call.arg);
  if (!d.ok || d.value.k !== 'struct') throw new Error('bad test arg');
  const a = resolveStruct(d.value.s, new Map(), 'arg');
  if (a instanceof Unbound) throw new Error('variables are not allowed here');
  const input: IoctlInput = { k: 'struct', a };
  const k: Kernel = { st, header: { ...DEFAULT_HEADER, iommufd_test: true, ...h }, line: 0 };
  const events: DomainEvent[] = [];
  const apply = (es: readonly DomainEvent[]): void => {
    for (const e of es) {
      events.push(e);
      evolveWired(st, e);
    }
  };
  const done = runToCompletion(iommufd_fops_ioctl({ k, ctx: st.ctxs.get(1)! }, def.value, input), apply);
  apply(done.events);
  return { events: withoutShortTermHold(events), done, state: st };
}

const split = (area: number, last: bigint, lhs: number, rhs: number): DomainEvent =>
  ({ type: 'AreaSplit', ctx: 1, ioas: 1, area, last, lhs, rhs }) as unknown as DomainEvent;

// ---- The commands that need no IOAS ------------------------------------------------------------------------------

describe('VFIO_GET_API_VERSION and VFIO_CHECK_EXTENSION', () => {
  it('reports VFIO_API_VERSION 0', () => {
    given(opened()).when(ioctl('VFIO_GET_API_VERSION', null)).then([], undefined, 0n);
  });

  it('supports TYPE1, TYPE1v2 and UNMAP_ALL without a compat IOAS, and nothing else', () => {
    for (const ext of [1, 3, 9]) given(opened()).when(ioctl('VFIO_CHECK_EXTENSION', ext)).then([], undefined, 1n);
    for (const ext of [2, 5, 6, 7, 8, 10, 11]) given(opened()).when(ioctl('VFIO_CHECK_EXTENSION', ext)).then([], undefined, 0n);
  });

  it('answers DMA_CC with ENODEV without a compat IOAS and with 1 when it has no incoherent HWPT', () => {
    given(opened()).when(ioctl('VFIO_CHECK_EXTENSION', 4)).thenFails('ENODEV');
    given(opened(), ioasAllocated(1), compat()).when(ioctl('VFIO_CHECK_EXTENSION', 4)).then([], undefined, 1n);
  });

  it('answers ENOTTY for VFIO_IOMMU_DIRTY_PAGES, which iommufd does not implement', () => {
    given(opened(), ioasAllocated(1), compat()).when(ioctl('VFIO_IOMMU_DIRTY_PAGES', {})).thenFails('ENOTTY');
  });
});

// ---- VFIO_SET_IOMMU ----------------------------------------------------------------------------------------------

describe('VFIO_SET_IOMMU', () => {
  it('rejects every type but TYPE1 and TYPE1v2 with EINVAL before it looks for the compat IOAS', () => {
    for (const t of [0, 2, 4, 6, 8, 9, -1]) given(opened()).when(ioctl('VFIO_SET_IOMMU', t)).thenFails('EINVAL');
  });

  it('answers ENODEV when there is no compat IOAS, or it was destroyed', () => {
    given(opened(), ioasAllocated(1)).when(ioctl('VFIO_SET_IOMMU', 1)).thenFails('ENODEV', /no compat IOAS/);
    given(opened(), ioasAllocated(1), compat(), [{ type: 'ObjectDestroyed', ctx: 1, id: 1 }]).when(ioctl('VFIO_SET_IOMMU', 3)).thenFails('ENODEV');
  });

  it('disables large pages of the compat IOAS for TYPE1, which raises its IOVA alignment to PAGE_SIZE', () => {
    const r = given(opened(), ioasAllocated(1), compat()).when(ioctl('VFIO_SET_IOMMU', 1)).then(type1());
    expect(r.state.ctxs.get(1)!.objects.get(1)!.ioas!.iopt.iovaAlignment).toBe(PAGE);
  });

  it('changes nothing for TYPE1v2, and both may be repeated', () => {
    given(opened(), ioasAllocated(1), compat()).when(ioctl('VFIO_SET_IOMMU', 3)).then([]);
    given(opened(), ioasAllocated(1), compat(), type1()).when(ioctl('VFIO_SET_IOMMU', 1)).then([]);
    given(opened(), ioasAllocated(1), compat(), type1()).when(ioctl('VFIO_SET_IOMMU', 3)).then([]);
  });

  it('refuses TYPE1 with EADDRINUSE when a mapping is not PAGE_SIZE aligned', () => {
    given(opened(), ioasAllocated(1), compat(), mapped(1, 1, 0x100000n, 0x800n))
      .when(ioctl('VFIO_SET_IOMMU', 1)).thenFails('EADDRINUSE', /not aligned to the new iova_alignment 0x1000/);
  });

  it('refuses TYPE1 with EINVAL once a domain is attached and something is mapped, but not before', () => {
    given(opened(), ioasAllocated(1), compat(), domainAttached(2048n, 2048n), mapped(1, 1, 0x1000000n, 0x1000n))
      .when(ioctl('VFIO_SET_IOMMU', 1)).thenFails('EINVAL', /domain/);
    given(opened(), ioasAllocated(1), compat(), domainAttached(2048n, 2048n))
      .when(ioctl('VFIO_SET_IOMMU', 1)).then(type1());
  });
});

// ---- VFIO_IOMMU_GET_INFO -----------------------------------------------------------------------------------------

describe('VFIO_IOMMU_GET_INFO', () => {
  const info = (argsz: number, tail?: string) => ioctl('VFIO_IOMMU_GET_INFO', tail === undefined ? { argsz } : { argsz, tail });
  const ready = [opened(), ioasAllocated(1), compat()];
  const DMA_AVAIL = '03000100 28000000 ffffffff';
  const IOVA_ONE = '01000100 00000000 01000000 00000000 0000000000000000 ffffffffffffffff';

  it('answers EFAULT for a NULL argument, EINVAL below 16 bytes, then ENODEV without a compat IOAS', () => {
    given(...ready).when(ioctl('VFIO_IOMMU_GET_INFO', null)).thenFails('EFAULT');
    given(opened()).when(info(15)).thenFails('EINVAL');
    given(opened()).when(info(16)).thenFails('ENODEV');
  });

  it('copies back only argsz, flags and iova_pgsizes to a 16-byte caller, with the size of the whole chain', () => {
    const r = given(...ready).when(info(16)).then([], { argsz: 72n, flags: 3n, iova_pgsizes: NO_DOMAIN_PGSIZES });
    expect(Object.keys(outOf(r)!).sort()).toEqual(['argsz', 'flags', 'iova_pgsizes']);
  });

  it('leaves cap_offset 0 and writes no capability when the caller has room for the header only', () => {
    const r = given(...ready).when(info(24)).then([], { argsz: 72n, flags: 3n, iova_pgsizes: NO_DOMAIN_PGSIZES, cap_offset: 0n, pad: 0n });
    expect(tailHex(r)).toBeUndefined();
  });

  it('writes DMA_AVAIL once 12 bytes fit, and links it to IOVA_RANGE once argsz reaches its offset 40', () => {
    expect(tailHex(given(...ready).when(info(35)).then([], { cap_offset: 0n }))).toBe('00'.repeat(11));
    expect(tailHex(given(...ready).when(info(36)).then([], { cap_offset: 0n }))).toBe(hexOf(bytes('03000100 00000000 ffffffff')));
    expect(tailHex(given(...ready).when(info(40)).then([], { cap_offset: 0n }))).toBe(hexOf(bytes(`${DMA_AVAIL} 00000000`)));
  });

  it('writes no IOVA_RANGE entry or header until it fits, and reports argsz 72 throughout', () => {
    const r = given(...ready).when(info(71)).then([], { argsz: 72n, cap_offset: 0n });
    expect(tailHex(r)).toBe(hexOf(bytes(`${DMA_AVAIL} 00000000 ${'00'.repeat(31)}`)));
  });

  it('returns the whole chain with cap_offset 24 when argsz covers it', () => {
    const r = given(...ready).when(info(72)).then([], { argsz: 72n, flags: 3n, cap_offset: 24n });
    expect(tailHex(r)).toBe(hexOf(bytes(`${DMA_AVAIL} 00000000 ${IOVA_ONE}`)));
  });

  it('leaves the caller\'s bytes where the kernel writes nothing: the padding after DMA_AVAIL and past the chain', () => {
    const r = given(...ready).when(info(100, 'aa'.repeat(76))).then([], { argsz: 72n, cap_offset: 24n });
    expect(tailHex(r)).toBe(hexOf(bytes(`${DMA_AVAIL} aaaaaaaa ${IOVA_ONE} ${'aa'.repeat(28)}`)));
  });

  it('lists the holes of the reserved ranges, writing entries that fit before the header that does not', () => {
    const resv = [{ type: 'ReservedAdded' as const, ctx: 1, ioas: 1, start: 0x10000n, last: 0x1ffffn, owner: '' }];
    const r72 = given(...ready, resv).when(info(72)).then([], { argsz: 88n, cap_offset: 0n });
    expect(tailHex(r72)).toBe(hexOf(bytes(`${DMA_AVAIL} 00000000 ${'00'.repeat(16)} 0000000000000000 ffff000000000000`)));
    const r88 = given(...ready, resv).when(info(88)).then([], { argsz: 88n, cap_offset: 24n });
    expect(tailHex(r88)).toBe(hexOf(bytes(`${DMA_AVAIL} 00000000 01000100 00000000 02000000 00000000
      0000000000000000 ffff000000000000 0000020000000000 ffffffffffffffff`)));
  });

  it('does not pad DMA_AVAIL to 8 bytes before v6.6, so IOVA_RANGE starts at 36 and the chain is 68 bytes', () => {
    const r = given(...ready).withHeader({ kernel: '6.5.0' }).when(info(68)).then([], { argsz: 68n, cap_offset: 24n });
    expect(tailHex(r)).toBe(hexOf(bytes(`03000100 24000000 ffffffff ${IOVA_ONE}`)));
  });

  it('folds sub-page sizes of the domains into PAGE_SIZE and keeps the others (all ones without a domain)', () => {
    given(...ready, domainAttached(2048n, 2048n)).when(info(24)).then([], { iova_pgsizes: PAGE });
    given(...ready, domainAttached(0x4020_1000n, PAGE)).when(info(24)).then([], { iova_pgsizes: 0x4020_1000n });
  });

  it('builds the chain the same way as a pure function of argsz, the ranges and the kernel version', () => {
    const one = [{ start: 0n, last: U64_MAX }];
    expect(vfioInfoCapChain(24, one, true, undefined)).toEqual({ total: 72, capOffset: 0, tail: undefined });
    expect(vfioInfoCapChain(72, [], true, undefined).total).toBe(56);
    expect(vfioInfoCapChain(52, [], false, undefined).capOffset).toBe(24);
  });
});

// ---- VFIO_IOMMU_MAP_DMA ------------------------------------------------------------------------------------------

describe('VFIO_IOMMU_MAP_DMA', () => {
  const RW = ['VFIO_DMA_MAP_FLAG_READ', 'VFIO_DMA_MAP_FLAG_WRITE'];
  const map = (arg: Record<string, unknown>) => ioctl('VFIO_IOMMU_MAP_DMA', { flags: RW, vaddr: '0x7f0000000000', iova: '0x100000', size: '0x4000', ...arg });
  const ready = [opened(), ioasAllocated(1), compat()];
  const created = (o: { writable?: boolean; accountMode?: 0 | 1 | 2 } = {}): DomainEvent => ({
    type: 'PagesCreated', pages: 1, kind: 'user', uptr: 0x7f00_0000_0000n, memfd: undefined, fileStart: 0n, npages: 4,
    writable: o.writable ?? true, accountMode: o.accountMode ?? 1,
  });
  const reserved = (prot = 3): DomainEvent => ({
    type: 'AreaReserved', ctx: 1, ioas: 1, area: 1, start: 0x100000n, last: 0x103fffn, pages: 1, pagesStart: 0, pagesLast: 3, pageOffset: 0, prot, mappedAt: 0,
  });
  const published: DomainEvent = { type: 'AreaPublished', ctx: 1, ioas: 1, area: 1 };

  it('answers EFAULT for a NULL argument', () => {
    given(...ready).when(ioctl('VFIO_IOMMU_MAP_DMA', null)).thenFails('EFAULT');
  });

  it('checks argsz, then the flags (VADDR is rejected), before it looks for the compat IOAS', () => {
    given(opened()).when(map({ argsz: 31 })).thenFails('EINVAL', /argsz 31/);
    given(opened()).when(map({ flags: ['VFIO_DMA_MAP_FLAG_READ', 'VFIO_DMA_MAP_FLAG_VADDR'] })).thenFails('EINVAL', /flags/);
    given(opened()).when(map({})).thenFails('ENODEV');
  });

  it('maps the user memory at the given IOVA, copying nothing back', () => {
    const r = given(...ready).when(map({})).then([created(), reserved(), published]);
    expect(outOf(r)).toBeUndefined();
  });

  it('accepts flags 0, which maps with neither READ nor WRITE on pages that are not writable', () => {
    given(...ready).when(map({ flags: 0 })).then([created({ writable: false }), reserved(0), published]);
  });

  it('charges pages to the mm when the container was opened as /dev/vfio/vfio', () => {
    given(openedCompat(), ioasAllocated(1), compat()).when(map({})).then([created({ accountMode: 2 }), reserved(), published]);
  });

  it('answers EINVAL for size 0 and EOVERFLOW when vaddr + size overflows, before choosing the IOVA', () => {
    given(...ready).when(map({ size: 0 })).thenFails('EINVAL', /length 0x0/);
    given(...ready).when(map({ vaddr: '0xfffffffffffff000', size: '0x2000' })).thenFails('EOVERFLOW', /iopt_alloc_user_pages/);
  });

  it('answers EEXIST over an existing mapping, EOVERFLOW past the end of the IOVA space and EINVAL on a reserved range', () => {
    given(...ready, mapped(1, 1, 0x102000n, 0x1000n)).when(map({})).thenFails('EEXIST');
    given(...ready).when(map({ iova: '0xfffffffffffff000' })).thenFails('EOVERFLOW', /iopt_check_iova/);
    given(...ready, [{ type: 'ReservedAdded', ctx: 1, ioas: 1, start: 0x100000n, last: 0x100fffn, owner: '' }]).when(map({})).thenFails('EINVAL', /reserved/);
  });

  it('requires PAGE_SIZE aligned IOVA and size once TYPE1 disabled large pages', () => {
    given(...ready, type1()).when(map({ size: '0x800' })).thenFails('EINVAL', /iova_alignment/);
    given(...ready, type1()).when(map({ iova: '0x100800' })).thenFails('EINVAL', /iopt_check_iova/);
    given(...ready).when(map({ iova: '0x100800' })).then([created(), { ...(reserved() as object), start: 0x100800n, last: 0x1047ffn } as DomainEvent, published]);
  });
});

// ---- VFIO_IOMMU_UNMAP_DMA ----------------------------------------------------------------------------------------

describe('VFIO_IOMMU_UNMAP_DMA', () => {
  const unmap = (arg: Record<string, unknown>) => ioctl('VFIO_IOMMU_UNMAP_DMA', { flags: 0, ...arg });
  const ready = [opened(), ioasAllocated(1), compat()];
  const removed = (area: number, pages: number, released = true): DomainEvent[] => [
    { type: 'AreaUnpublished', ctx: 1, ioas: 1, area },
    { type: 'AreaRemoved', ctx: 1, ioas: 1, area },
    ...(released ? [{ type: 'PagesReleased' as const, pages }] : []),
  ];

  it('answers EFAULT for a NULL argument, and checks argsz and flags before the compat IOAS', () => {
    given(...ready).when(ioctl('VFIO_IOMMU_UNMAP_DMA', null)).thenFails('EFAULT');
    given(opened()).when(unmap({ argsz: 23 })).thenFails('EINVAL', /argsz 23/);
    given(opened()).when(unmap({ flags: ['VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP'] })).thenFails('EINVAL', /flags/);
    given(opened()).when(unmap({ flags: ['VFIO_DMA_UNMAP_FLAG_VADDR'] })).thenFails('EINVAL', /flags/);
    const r = given(opened()).when(unmap({ iova: '0x1000', size: '0x1000' })).thenFails('ENODEV');
    expect(outOf(r)).toBeUndefined();
  });

  it('requires iova and size 0 with UNMAP_FLAG_ALL, and then writes nothing back', () => {
    for (const arg of [{ iova: '0x1000' }, { size: '0x1000' }]) {
      const r = given(...ready, mapped(1, 1, 0x1000n, 0x1000n)).when(unmap({ flags: ['VFIO_DMA_UNMAP_FLAG_ALL'], ...arg })).thenFails('EINVAL', /FLAG_ALL/);
      expect(outOf(r)).toBeUndefined();
    }
  });

  it('removes every mapping with UNMAP_FLAG_ALL and writes back the bytes removed', () => {
    given(...ready, mapped(1, 1, 0x1000n, 0x1000n), mapped(2, 2, 0x10000n, 0x3000n))
      .when(unmap({ flags: ['VFIO_DMA_UNMAP_FLAG_ALL'] }))
      .then([...removed(1, 1), ...removed(2, 2)], { argsz: 24n, flags: 2n, iova: 0n, size: 0x4000n });
  });

  it('succeeds with size 0 for UNMAP_FLAG_ALL on an empty IOAS, on old kernels too', () => {
    given(...ready).when(unmap({ flags: ['VFIO_DMA_UNMAP_FLAG_ALL'] })).then([], { size: 0n });
    given(...ready).withHeader({ kernel: '6.17.0' }).when(unmap({ flags: ['VFIO_DMA_UNMAP_FLAG_ALL'] })).then([], { size: 0n });
  });

  it('removes whole mappings inside the range, skipping holes, and writes back the bytes removed', () => {
    given(...ready, mapped(1, 1, 0x1000n, 0x1000n), mapped(2, 2, 0x4000n, 0x2000n))
      .when(unmap({ iova: '0x1000', size: '0x10000' })).then([...removed(1, 1), ...removed(2, 2)], { size: 0x3000n, iova: 0x1000n, argsz: 24n });
  });

  it('echoes the caller\'s argsz when it is larger than the struct', () => {
    given(...ready, mapped(1, 1, 0x1000n, 0x1000n)).when(unmap({ argsz: 32, iova: '0x1000', size: '0x1000' })).then(removed(1, 1), { argsz: 32n, size: 0x1000n });
  });

  it('answers ENOENT for part of a mapping under TYPE1v2, writing back size 0 and removing nothing', () => {
    const r = given(...ready, mapped(1, 1, 0x1000000n, 0x400000n)).when(unmap({ iova: '0x13c0000', size: '0x40000' })).thenFails('ENOENT', /cuts area/);
    expect(outOf(r)).toMatchObject({ size: 0n, iova: 0x13c0000n });
  });

  it('has already removed the whole mappings below the one it cannot cut when it answers ENOENT, and says how much', () => {
    const r = whenWired([...ready, mapped(1, 1, 0x100000n, 0x1000n), mapped(2, 2, 0x101000n, 0x2000n)], unmap({ iova: '0x100000', size: '0x2000' }));
    const o = outcomeOf(r);
    expect(o.kind === 'err' ? o.errno : o.kind).toBe('ENOENT');
    expect(r.events).toEqual(removed(1, 1));
    expect(outOf(r)).toMatchObject({ size: 0x1000n });
    expect(areasOf(r.state).map((a) => a.id)).toEqual([2]);
  });

  it('succeeds with size 0 for a range with no mapping, which kernels before v6.18 answer with ENOENT', () => {
    given(...ready).when(unmap({ iova: '0x1000', size: '0x1000' })).then([], { size: 0n });
    const r = given(...ready).withHeader({ kernel: '6.17.0' }).when(unmap({ iova: '0x1000', size: '0x1000' })).thenFails('ENOENT');
    expect(outOf(r)).toMatchObject({ size: 0n });
  });

  it('answers EINVAL for size 0 and EOVERFLOW past the end of the IOVA space, still writing size back', () => {
    expect(outOf(given(...ready).when(unmap({ iova: '0x1000', size: 0 })).thenFails('EINVAL', /length 0/))).toMatchObject({ size: 0n });
    expect(outOf(given(...ready, type1()).when(unmap({ iova: '0x1000', size: 0 })).thenFails('EINVAL'))).toMatchObject({ size: 0n });
    expect(outOf(given(...ready).when(unmap({ iova: '0x2000', size: '0xffffffffffffffff' })).thenFails('EOVERFLOW'))).toMatchObject({ size: 0n });
  });

  it('answers EBUSY for a mapping another thread is still building, writing back size 0', () => {
    const r = given(...ready, mapped(1, 1, 0x1000n, 0x1000n, { published: false })).when(unmap({ iova: '0x1000', size: '0x1000' })).thenFails('EBUSY');
    expect(outOf(r)).toMatchObject({ size: 0n });
  });

  it('does not cut under TYPE1 when the range starts and ends on mapping boundaries', () => {
    given(...ready, type1(), mapped(1, 1, 0x1000n, 0x2000n)).when(unmap({ iova: '0x1000', size: '0x2000' })).then(removed(1, 1), { size: 0x2000n });
  });

  it('refuses a TYPE1 cut off the IOVA alignment with EINVAL before cutting anything, writing nothing back', () => {
    const r = given(...ready, type1(), mapped(1, 1, 0x100000n, 0x4000n)).when(unmap({ iova: '0x101000', size: '0x800' })).thenFails('EINVAL', /0x101800/);
    expect(outOf(r)).toBeUndefined();
  });
});

describe('VFIO_IOMMU_UNMAP_DMA under TYPE1 (the AreaSplit event applied by the proposed evolve case)', () => {
  const ready = [opened(), ioasAllocated(1), compat(), type1()];
  const unmap = (iova: string, size: string): IoctlCall => ioctl('VFIO_IOMMU_UNMAP_DMA', { flags: 0, iova, size });

  it('punches a hole in the middle of a mapping: cuts at its last byte, then before its first, and removes the middle', () => {
    const r = whenWired([...ready, mapped(1, 1, 0x100000n, 0x4000n)], unmap('0x101000', '0x1000'));
    expect(outcomeOf(r).kind).toBe('ok');
    expect(r.events).toEqual([
      split(1, 0x101fffn, 2, 3), split(2, 0x100fffn, 4, 5),
      { type: 'AreaUnpublished', ctx: 1, ioas: 1, area: 5 }, { type: 'AreaRemoved', ctx: 1, ioas: 1, area: 5 },
    ]);
    expect(outOf(r)).toMatchObject({ size: 0x1000n });
    expect(areasOf(r.state).map((a) => [a.id, a.start, a.last, a.pagesStart, a.pagesLast, a.pageOffset])).toEqual([
      [4, 0x100000n, 0x100fffn, 0, 0, 0], [3, 0x102000n, 0x103fffn, 2, 3, 0],
    ]);
    expect(r.state.pages.get(1)!.refs).toBe(2);
    expect(r.state.nextArea).toBe(6);
  });

  it('cuts only once when the range starts at IOVA 0', () => {
    const r = whenWired([...ready, mapped(1, 1, 0n, 0x4000n)], unmap('0x0', '0x1000'));
    expect(r.events).toEqual([split(1, 0xfffn, 2, 3), { type: 'AreaUnpublished', ctx: 1, ioas: 1, area: 2 }, { type: 'AreaRemoved', ctx: 1, ioas: 1, area: 2 }]);
    expect(areasOf(r.state).map((a) => [a.id, a.start, a.last])).toEqual([[3, 0x1000n, 0x3fffn]]);
  });

  it('unmaps every piece of a mapping one at a time and releases the pages with the last one', () => {
    const batches: DomainEvent[][] = [...ready, mapped(1, 1, 0x1000000n, 0x40000n)];
    let r: Ran | undefined;
    for (const piece of [3, 0, 2, 1]) {
      r = whenWired(batches, unmap(`0x${(0x1000000 + piece * 0x10000).toString(16)}`, '0x10000'));
      expect(outcomeOf(r).kind).toBe('ok');
      expect(outOf(r)).toMatchObject({ size: 0x10000n });
      batches.push(r.events);
    }
    expect(areasOf(r!.state)).toEqual([]);
    expect(r!.state.pages.has(1)).toBe(false);
  });

  it('keeps an earlier cut when a later one fails, and writes nothing back', () => {
    const r = whenWired([...ready, mapped(1, 1, 0x100000n, 0x2000n, { published: false }), mapped(2, 2, 0x102000n, 0x2000n)], unmap('0x101000', '0x2000'));
    const o = outcomeOf(r);
    expect(o.kind === 'err' ? o.errno : o.kind).toBe('EBUSY');
    expect(o.kind === 'err' ? o.why : '').toMatch(/earlier cuts stay/);
    expect(r.events).toEqual([split(2, 0x102fffn, 3, 4)]);
    expect(outOf(r)).toBeUndefined();
    expect(areasOf(r.state).map((a) => a.id)).toEqual([1, 3, 4]);
  });
});

// ---- iopt_area_split / iopt_cut_iova as functions ----------------------------------------------------------------

describe('iopt_area_split and iopt_cut_iova', () => {
  const area = (o: Partial<Area> = {}): Area => ({
    id: 1, start: 0x10000n, last: 0x12fffn, pages: 1, pagesStart: 2, pagesLast: 5, pageOffset: 0x800, prot: 3, line: 7,
    published: true, numAccesses: 0, preventAccess: false, numLocks: 0, ...o,
  });
  const stateWith = (align: bigint, o: { disableLargePages?: boolean; domains?: number[] } = {}): { st: State; i: Iopt } => {
    const st = initialState();
    const i = newIopt();
    i.iovaAlignment = align;
    i.disableLargePages = o.disableLargePages ?? false;
    i.domains.push(...(o.domains ?? []));
    return { st, i };
  };

  it('gives the halves the byte offsets and page ranges iopt_insert_area computes, inheriting the rest', () => {
    const [l, r] = splitArea(area({ numAccesses: 0 }), 0x107ffn, 8, 9, 4096);
    expect(l).toEqual(area({ id: 8, last: 0x107ffn, pagesLast: 2 }));
    expect(r).toEqual(area({ id: 9, start: 0x10800n, pagesStart: 3, pageOffset: 0, pagesLast: 5 }));
    const [l2, r2] = splitArea(area(), 0x10fffn, 8, 9, 4096);
    expect([l2.pagesLast, r2.pagesStart, r2.pageOffset]).toEqual([3, 3, 0x800]);
  });

  it('moves the halves into the trees in place of the area', () => {
    const i = newIopt();
    ioptEvolve(i, { type: 'AreaReserved', ctx: 1, ioas: 1, area: 1, start: 0x10000n, last: 0x12fffn, pages: 1, pagesStart: 0, pagesLast: 2, pageOffset: 0, prot: 3, mappedAt: 4 }, 4096);
    applyAreaSplit(i, { type: 'AreaSplit', ctx: 1, ioas: 1, area: 1, last: 0x10fffn, lhs: 2, rhs: 3 }, 4096);
    expect([...i.areas.inOrder()].map((n) => [n.value.id, n.start, n.last, n.value.line])).toEqual([[2, 0x10000n, 0x10fffn, 4], [3, 0x11000n, 0x12fffn, 4]]);
    expect([...i.areaById.keys()].sort()).toEqual([2, 3]);
    expect(() => applyAreaSplit(i, { type: 'AreaSplit', ctx: 1, ioas: 1, area: 1, last: 0x10fffn, lhs: 4, rhs: 5 }, 4096)).toThrow(/no area 1/);
  });

  it('does nothing at the area\'s first or last byte, as the kernel returns 0 there', () => {
    const { st, i } = stateWith(1n);
    expect(iopt_area_split(st, i, area(), 0x10000n, 2, 3)).toBeUndefined();
    expect(iopt_area_split(st, i, area(), 0x12fffn, 2, 3)).toBeUndefined();
  });

  it('checks, in order: half-built or access-blocked (EBUSY), alignment of the new start and its byte (EINVAL), accesses (EINVAL), a domain with large pages (EINVAL)', () => {
    const { st, i } = stateWith(PAGE, { disableLargePages: true });
    const err = (a: Area, iova: bigint, ii = i) => { const r = iopt_area_split(st, ii, a, iova, 2, 3); return r !== undefined && !Array.isArray(r) ? r.errno : r; };
    expect(err(area({ published: false, pageOffset: 0, pagesStart: 0 }), 0x107ffn)).toBe('EBUSY');
    expect(err(area({ preventAccess: true }), 0x107ffn)).toBe('EBUSY');
    expect(err(area({ pageOffset: 0 }), 0x107ffn)).toBe('EINVAL');
    expect(err(area(), 0x10fffn)).toBe('EINVAL');
    expect(err(area(), 0x107ffn)).toBe('EINVAL');
    expect(err(area({ pageOffset: 0, numAccesses: 1 }), 0x10fffn)).toBe('EINVAL');
    expect(Array.isArray(iopt_area_split(st, i, area({ pageOffset: 0 }), 0x10fffn, 2, 3))).toBe(true);
    const big = stateWith(1n, { domains: [1] });
    expect(err(area(), 0x10fffn, big.i)).toBe('EINVAL');
    const bigOff = stateWith(PAGE, { domains: [1], disableLargePages: true });
    expect(Array.isArray(iopt_area_split(bigOff.st, bigOff.i, area({ pageOffset: 0 }), 0x10fffn, 2, 3))).toBe(true);
  });

  it('sees the halves of its earlier cuts, numbers the new areas from nextArea, and skips IOVAs in no area', () => {
    const st = initialState();
    for (const e of [...opened(), ...ioasAllocated(1), ...mapped(1, 1, 0x100000n, 0x4000n)]) evolve(st, e);
    const i = st.ctxs.get(1)!.objects.get(1)!.ioas!.iopt;
    const r = iopt_cut_iova(st, { ctx: 1, ioas: 1 }, i, [0x102fffn, 0x200000n, 0x100fffn, 0x100fffn]);
    expect(r.failure).toBeUndefined();
    expect(r.events).toEqual([split(1, 0x102fffn, 2, 3), split(2, 0x100fffn, 4, 5)]);
    expect(r.done).toHaveLength(2);
  });
});

// ---- The compat IOAS a group attach creates ----------------------------------------------------------------------

describe('iommufd_vfio_compat_ioas_create (the seam a VFIO group attach calls)', () => {
  function drive(st: State, between: DomainEvent[] = []) {
    const c = { k: { st, header: DEFAULT_HEADER, line: 0 }, ctx: st.ctxs.get(1)! };
    const gen = iommufd_vfio_compat_ioas_create(c);
    const steps: (readonly DomainEvent[])[] = [];
    let n = gen.next();
    while (!n.done) {
      steps.push(n.value);
      for (const e of n.value) evolve(st, e);
      for (const e of between) evolve(st, e);
      n = gen.next();
    }
    if ('events' in n.value) for (const e of n.value.events) evolve(st, e);
    return { steps, result: n.value };
  }
  const build = (...b: DomainEvent[][]): State => {
    const st = initialState();
    for (const x of b) for (const e of x) evolve(st, e);
    return st;
  };

  it('allocates an IOAS, makes it the compat IOAS and finalizes it when there is none', () => {
    const st = build(opened());
    const { steps, result } = drive(st);
    expect(steps).toEqual([[{ type: 'ObjectAllocated', ctx: 1, id: 1, kind: 'IOAS' }]]);
    expect(result).toMatchObject({ events: [{ type: 'VfioIoasSet', ctx: 1, id: 1 }, { type: 'ObjectFinalized', ctx: 1, id: 1 }] });
    expect(st.ctxs.get(1)!.vfioIoas).toBe(1);
  });

  it('keeps a live compat IOAS and aborts the one it allocated, freeing its id', () => {
    const st = build(opened(), ioasAllocated(1), compat());
    const { steps, result } = drive(st);
    expect(steps).toEqual([[{ type: 'ObjectAllocated', ctx: 1, id: 2, kind: 'IOAS' }]]);
    expect(result).toMatchObject({ events: [{ type: 'ObjectAborted', ctx: 1, id: 2 }] });
    expect(st.ctxs.get(1)!.vfioIoas).toBe(1);
    expect(st.ctxs.get(1)!.objects.has(2)).toBe(false);
  });

  it('decides under the object table lock, after the allocation: a compat IOAS set in between wins', () => {
    const st = build(opened(), ioasAllocated(1));
    const { result } = drive(st, compat(1));
    expect(result).toMatchObject({ events: [{ type: 'ObjectAborted', ctx: 1, id: 2 }] });
  });

  it('makes the new IOAS the compat IOAS when the old one was destroyed', () => {
    const st = build(opened(), ioasAllocated(1), compat(), [{ type: 'ObjectDestroyed', ctx: 1, id: 1 }]);
    const { result } = drive(st);
    expect(result).toMatchObject({ events: [{ type: 'VfioIoasSet', ctx: 1, id: 1 }, { type: 'ObjectFinalized', ctx: 1, id: 1 }] });
  });
});
