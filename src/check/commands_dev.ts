/**
 * The checker's commands on the newer parts of the iommufd fd, where three seeded bugs live:
 * - the VFIO type1 compatibility ioctls on /dev/iommu itself (main.c `iommufd_fops_ioctl` falls through to
 *   vfio_compat.c): IOMMU_VFIO_IOAS SET, VFIO_SET_IOMMU (type1 v1 lets UNMAP_DMA cut areas), MAP_DMA, UNMAP_DMA of a
 *   sub-range (area splits, B6);
 * - the selftest dma-buf exporter: DMABUF_GET, IOMMU_IOAS_MAP_FILE of it, DMABUF_REVOKE (B14);
 * - a mock vIOMMU, whose mmap cookie the owner's destroy must take with it: HWPT_ALLOC(NEST_PARENT), VIOMMU_ALLOC,
 *   mmap and munmap of its cookie.
 * As elsewhere (choices.ts), a command names choices among what exists, and a command whose prerequisite is missing
 * issues the step that builds it instead.
 */
import fc from 'fast-check';
import type { IommufdCtx, State } from '../projections/state.js';
import { BUFFERS, PAGE, U64_MAX } from './buffers.js';
import { areasOf, finalized, hex, idOf, ioctl, iommufdFds, iovaPick, pick, resolveIova, sel, type IovaPick } from './choices.js';
import { u64Json, type TraceLine } from './kernel.js';

export type DevCmd =
  | { readonly op: 'cx_set'; readonly ctx: number; readonly ioas: number; readonly v1: boolean }
  | { readonly op: 'cx_map'; readonly ctx: number; readonly iova: IovaPick; readonly buf: number; readonly off: number; readonly pages: number }
  | { readonly op: 'cx_unmap'; readonly ctx: number; readonly how: 'inside' | 'pick' | 'all'; readonly n: number; readonly iova: IovaPick; readonly pages: number }
  | { readonly op: 'db_get'; readonly ctx: number; readonly pages: number }
  | { readonly op: 'db_map'; readonly ctx: number; readonly ioas: number; readonly n: number; readonly fixed: boolean; readonly iova: IovaPick; readonly pages: number }
  | { readonly op: 'db_revoke'; readonly n: number; readonly revoked: boolean }
  | { readonly op: 'vi_alloc'; readonly ctx: number; readonly dev: number }
  | { readonly op: 'vi_mmap'; readonly ctx: number; readonly n: number }
  | { readonly op: 'vi_munmap'; readonly ctx: number; readonly n: number };

const pages = fc.integer({ min: 1, max: 6 });
const ctx = fc.nat({ max: 3 });

/** The mix, one entry of commands.ts's `cmdArb`. */
export const devCmdArb: fc.Arbitrary<DevCmd> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('cx_set' as const), ctx, ioas: sel, v1: fc.nat({ max: 3 }).map((x) => x < 3) }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('cx_map' as const), ctx, iova: iovaPick, buf: fc.nat({ max: BUFFERS.length - 1 }), off: fc.nat({ max: 40 }), pages }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('cx_unmap' as const), ctx, how: fc.constantFrom('inside' as const, 'inside' as const, 'pick' as const, 'all' as const), n: sel, iova: iovaPick, pages }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('db_get' as const), ctx, pages }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('db_map' as const), ctx, ioas: sel, n: sel, fixed: fc.boolean(), iova: iovaPick, pages }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('db_revoke' as const), n: sel, revoked: fc.nat({ max: 3 }).map((x) => x < 3) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('vi_alloc' as const), ctx, dev: sel }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('vi_mmap' as const), ctx, n: sel }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('vi_munmap' as const), ctx, n: sel }) },
);

const RW_FILE = ['IOMMU_IOAS_MAP_WRITEABLE', 'IOMMU_IOAS_MAP_READABLE'];
const MOCK_VIOMMU_TYPE = 0xdeadbeef;
const O_CLOEXEC = 0x80000;

/**
 * What a resolved command is to the scheduler: `map`/`unmap` for the calls that take the IOAS's locks as MAP and
 * UNMAP do (a short-term reference on the IOAS, domains_rwsem between their steps), else its own kind.
 */
export interface DevResolved {
  readonly kind: DevCmd['op'] | 'map' | 'unmap' | 'ioas_alloc' | 'mock_domain';
  readonly json: TraceLine;
  readonly ctx: number | undefined;
  readonly ioas: readonly number[];
}

const testCmd = (fd: number, op: string, member: string, m: Record<string, unknown>): TraceLine => ioctl(fd, 'IOMMU_TEST_CMD', { op, [member]: m });

function dmabufFds(st: State): { fd: number; dmabuf: number }[] {
  const out: { fd: number; dmabuf: number }[] = [];
  for (const [fd, f] of [...st.fds].sort((a, b) => a[0] - b[0])) if (f.kind === 'dmabuf') out.push({ fd, dmabuf: f.dmabuf });
  return out;
}

export function resolveDev(st: State, cmd: DevCmd): DevResolved | undefined {
  const f = pick(iommufdFds(st), 'ctx' in cmd ? cmd.ctx : 0);
  if (cmd.op === 'db_revoke') {
    const b = pick(dmabufFds(st), cmd.n);
    if (b === undefined || f === undefined) return undefined;
    return { kind: cmd.op, json: testCmd(f.fd, 'IOMMU_TEST_OP_DMABUF_REVOKE', 'dmabuf_revoke', { dmabuf_fd: b.fd, revoked: cmd.revoked ? 1 : 0 }), ctx: f.ctx.id, ioas: [] };
  }
  if (f === undefined) return undefined;
  const { fd, ctx: c } = f;
  const ioases = finalized(c, (o) => o.ioas !== undefined);
  const alloc: DevResolved = { kind: 'ioas_alloc', json: ioctl(fd, 'IOMMU_IOAS_ALLOC', {}), ctx: c.id, ioas: [] };
  switch (cmd.op) {
    case 'cx_set': case 'cx_map': case 'cx_unmap':
      return resolveCompat(fd, c, cmd, ioases.map((o) => o.id)) ?? alloc;
    case 'db_get':
      return { kind: cmd.op, json: testCmd(fd, 'IOMMU_TEST_OP_DMABUF_GET', 'dmabuf_get', { length: u64Json(BigInt(cmd.pages) * PAGE), open_flags: O_CLOEXEC }), ctx: c.id, ioas: [] };
    case 'db_map': {
      const b = pick(dmabufFds(st), cmd.n);
      if (b === undefined) return resolveDev(st, { op: 'db_get', ctx: cmd.ctx, pages: cmd.pages });
      if (ioases.length === 0) return alloc;
      const ioas = idOf(ioases, cmd.ioas);
      const size = st.dmabufs.get(b.dmabuf)?.size ?? PAGE;
      const length = BigInt(cmd.pages) * PAGE < size ? BigInt(cmd.pages) * PAGE : size;
      const arg: Record<string, unknown> = {
        flags: [...(cmd.fixed ? ['IOMMU_IOAS_MAP_FIXED_IOVA'] : []), ...RW_FILE], ioas_id: ioas, fd: b.fd, start: 0, length: u64Json(length),
      };
      if (cmd.fixed) arg.iova = u64Json(resolveIova(cmd.iova, areasOf(c, ioas)));
      return { kind: 'map', json: ioctl(fd, 'IOMMU_IOAS_MAP_FILE', arg), ctx: c.id, ioas: [ioas] };
    }
    case 'vi_alloc': {
      const devs = finalized(c, (o) => o.kind === 'DEVICE');
      if (devs.length === 0) {
        if (ioases.length === 0) return alloc;
        // A device first: a mock one on the first IOAS.
        return { kind: 'mock_domain', json: ioctl(fd, 'IOMMU_TEST_CMD', { op: 'IOMMU_TEST_OP_MOCK_DOMAIN', id: ioases[0]!.id, mock_domain: {} }), ctx: c.id, ioas: [] };
      }
      const dev = idOf(devs, cmd.dev);
      const parents = finalized(c, (o) => o.hwpt?.nestParent === true);
      if (parents.length === 0)
        return { kind: cmd.op, json: ioctl(fd, 'IOMMU_HWPT_ALLOC', { flags: ['IOMMU_HWPT_ALLOC_NEST_PARENT'], dev_id: dev, pt_id: idOf(ioases, cmd.dev) }), ctx: c.id, ioas: [] };
      return {
        kind: cmd.op, ctx: c.id, ioas: [],
        json: ioctl(fd, 'IOMMU_VIOMMU_ALLOC', { type: MOCK_VIOMMU_TYPE, dev_id: dev, hwpt_id: idOf(parents, cmd.dev), data_uptr: { in_data: 0xbeef }, data_len: 24 }),
      };
    }
    case 'vi_mmap': {
      const k = pick([...c.v.cookies.values()].sort((a, b) => (a.start < b.start ? -1 : 1)), cmd.n);
      if (k === undefined) return resolveDev(st, { op: 'vi_alloc', ctx: cmd.ctx, dev: cmd.n });
      return {
        kind: cmd.op, ctx: c.id, ioas: [],
        json: { op: 'mmap', addr: 0, length: u64Json(k.length), prot: ['PROT_READ', 'PROT_WRITE'], flags: ['MAP_SHARED'], fd, offset: u64Json(k.start) },
      };
    }
    case 'vi_munmap': {
      const v = pick([...c.v.vmas.values()].sort((a, b) => (a.start < b.start ? -1 : 1)), cmd.n);
      if (v === undefined) return undefined;
      return { kind: cmd.op, ctx: c.id, ioas: [], json: { op: 'munmap', addr: hex(v.start), length: u64Json(v.last - v.start + 1n) } };
    }
  }
}

/**
 * The compat calls on the iommufd fd: the compat IOAS is set first (IOMMU_VFIO_IOAS), then type1 (v1 by default:
 * it disables large pages, so UNMAP_DMA may cut an area), then MAP_DMA at fixed IOVAs and UNMAP_DMA of whole
 * mappings or of pages inside one.
 */
function resolveCompat(fd: number, c: IommufdCtx, cmd: Extract<DevCmd, { op: 'cx_set' | 'cx_map' | 'cx_unmap' }>, ioases: readonly number[]): DevResolved | undefined {
  if (ioases.length === 0) return undefined;
  const compat = c.vfioIoas;
  if (cmd.op === 'cx_set' || compat === 0) {
    if (compat === 0 || cmd.op !== 'cx_set' || !cmd.v1)
      return { kind: 'cx_set', json: ioctl(fd, 'IOMMU_VFIO_IOAS', { op: 'IOMMU_VFIO_IOAS_SET', ioas_id: ioases[(cmd.op === 'cx_set' ? cmd.ioas : 0) % ioases.length]! }), ctx: c.id, ioas: [] };
    return { kind: 'cx_set', json: { op: 'ioctl', fd, cmd: 'VFIO_SET_IOMMU', arg: 1 }, ctx: c.id, ioas: [] };
  }
  const areas = areasOf(c, compat);
  if (cmd.op === 'cx_map') {
    const b = BUFFERS[cmd.buf % BUFFERS.length]!;
    const vaddr = b.start + BigInt(cmd.off % b.pages) * PAGE;
    const iova = resolveIova(cmd.iova, areas);
    return {
      kind: 'map', ctx: c.id, ioas: [compat],
      json: ioctl(fd, 'VFIO_IOMMU_MAP_DMA', { flags: ['VFIO_DMA_MAP_FLAG_READ', 'VFIO_DMA_MAP_FLAG_WRITE'], vaddr: hex(vaddr), iova: u64Json(iova), size: u64Json(BigInt(cmd.pages) * PAGE) }),
    };
  }
  const unmap = (arg: Record<string, unknown>): DevResolved => ({ kind: 'unmap', ctx: c.id, ioas: [compat], json: ioctl(fd, 'VFIO_IOMMU_UNMAP_DMA', arg) });
  if (cmd.how === 'all') return unmap({ flags: ['VFIO_DMA_UNMAP_FLAG_ALL'], iova: 0, size: 0 });
  const a = pick(areas, cmd.n);
  if (cmd.how === 'inside' && a !== undefined) {
    // Pages strictly inside the area when it has room (two cuts), else its tail: a hole type1 v1 punches.
    const n = (a.last - a.start + 1n) / PAGE;
    const from = n >= 3n ? a.start + PAGE : a.start;
    const size = n >= 3n ? (n - 2n) * PAGE : PAGE;
    return unmap({ iova: u64Json(from), size: u64Json(size) });
  }
  const iova = resolveIova(cmd.iova, areas);
  const size = BigInt(cmd.pages) * PAGE;
  return unmap({ iova: u64Json(iova), size: u64Json(iova + size - 1n > U64_MAX ? U64_MAX - iova + 1n : size) });
}
