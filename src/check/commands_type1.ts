/**
 * The checker's commands on the legacy VFIO container served by vfio_iommu_type1 (header `vfio_container: "type1"`):
 * open the container and the groups, GROUP_SET_CONTAINER, SET_IOMMU, MAP_DMA / UNMAP_DMA, the VADDR invalidate and
 * update of live update, dirty tracking, GROUP_UNSET_CONTAINER and closes. As in commands.ts, a command names choices
 * among what exists when it is issued ("the 2nd vfio_dma", "its end"), never a raw fd or IOVA, and a command whose
 * prerequisite is missing issues the step that builds it (opening the container, attaching a group) instead.
 */
import fc from 'fast-check';
import { containerOf, dmaLast, type VfioContainer, type VfioDma } from '../hw/vfio_dma.js';
import type { State } from '../projections/state.js';
import { BUFFERS, PAGE, U64_MAX } from './buffers.js';
import { u64Json, type TraceLine } from './kernel.js';

/** The IOMMU groups of the header's two VFIO devices (type1 attaches them to a container's one domain). */
export const T1_GROUPS: readonly number[] = [100, 101];
/** The emulated group of the header's mdev (the T2 capture's mtty UUID, with a driver that pins: dma_unmap). */
export const T1_MDEV_GROUP = 102;
export const T1_MDEV = { path: '/sys/bus/mdev/devices/83b8f4f2-509f-382f-3c1e-e6bfe0fa1001', name: '83b8f4f2-509f-382f-3c1e-e6bfe0fa1001' };
/** Where `t1_bar` mmaps BAR0 of the first VFIO device (a VM_PFNMAP VMA a MAP_DMA can map, and an mdev then pin). */
export const T1_BAR_VA = 0x7f0000800000n;
const T1_BAR_PAGES = 16;
const SETUP_GROUPS: readonly number[] = [...T1_GROUPS, T1_MDEV_GROUP];
/** A private anonymous buffer: what a read-only MAP_DMA of untouched memory pins from (the zero page, before 6.x). */
export const T1_BUFFER = { start: 0x7f0000400000n, pages: 32 };
/** `dma_entry_limit` of the checked runs: low, so that the limit is reached in a few MAP_DMAs. */
export const T1_DMA_ENTRY_LIMIT = 2;

/** The header devices: one per group, a 64-bit aperture (the top of the IOVA space is mappable) minus the MSI window. */
export const T1_DEVICES: readonly Record<string, unknown>[] = [
  ...T1_GROUPS.map((group, i) => ({
    path: `/dev/vfio/devices/vfio${i}`, name: `0000:0${i + 1}:00.0`, group, bars: [{ index: 0, size: Number(BigInt(T1_BAR_PAGES) * PAGE) }],
    iommu: { pgsize_bitmap: '0x40201000', aperture: { start: 0, last: '0xffffffffffffffff' }, reserved: [{ start: '0xfee00000', last: '0xfeefffff', type: 'msi' }], dirty_tracking: false, max_pasids: 0 },
  })),
  { ...T1_MDEV, group: T1_MDEV_GROUP, mdev: true },
];

/** IOVAs worth trying: low, 1 GiB, the MSI window, the top pages of the address space. */
const T1_IOVA_CONSTS: readonly bigint[] = [0n, 0x100000n, 1n << 30n, 0xfee00000n, U64_MAX - 4n * PAGE + 1n, U64_MAX - 8n * PAGE + 1n, 0x10000n];

/** An IOVA: the `n`th vfio_dma plus `off` pages, the byte after it, or a constant. */
export type T1Iova = { readonly k: 'dma'; readonly n: number; readonly off: number } | { readonly k: 'end'; readonly n: number } | { readonly k: 'const'; readonly i: number };

export type T1Cmd =
  | { readonly op: 't1_setup'; readonly g: number; readonly c: number; readonly v2: boolean }
  | { readonly op: 't1_map'; readonly c: number; readonly iova: T1Iova; readonly buf: number; readonly off: number; readonly pages: number; readonly ro: boolean }
  | { readonly op: 't1_unmap'; readonly c: number; readonly how: 'dma' | 'span' | 'pick' | 'all'; readonly n: number; readonly k: number; readonly iova: T1Iova; readonly pages: number }
  | { readonly op: 't1_vaddr'; readonly c: number; readonly n: number; readonly buf: number; readonly off: number }
  | { readonly op: 't1_dirty'; readonly c: number; readonly what: 'START' | 'STOP' | 'GET_BITMAP'; readonly n: number }
  | { readonly op: 't1_unset'; readonly g: number }
  | { readonly op: 't1_close'; readonly n: number }
  /** The mdev driver pins `npage` pages from the n-th dma plus `off` pages (plus half a page with `sub`). */
  | { readonly op: 't1_mdev_pin'; readonly c: number; readonly n: number; readonly off: number; readonly sub: boolean; readonly npage: number; readonly w: boolean }
  /** The mdev driver unpins the n-th page it holds (or, when it holds none, the n-th dma's first page). */
  | { readonly op: 't1_mdev_unpin'; readonly c: number; readonly n: number; readonly npage: number }
  | { readonly op: 't1_mdev_rw'; readonly c: number; readonly n: number; readonly off: number; readonly len: number; readonly write: boolean }
  | { readonly op: 't1_exec' }
  | { readonly op: 't1_bar'; readonly c: number };

const sel = fc.nat({ max: 15 });
const iova: fc.Arbitrary<T1Iova> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('dma' as const), n: sel, off: fc.nat({ max: 4 }) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('end' as const), n: sel }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('const' as const), i: fc.nat({ max: T1_IOVA_CONSTS.length - 1 }) }) },
);
/** A user buffer: the shared ones, the private one (BUFFERS.length), the BAR mmap (BUFFERS.length + 1). */
const buf = fc.nat({ max: BUFFERS.length + 1 });
const pages = fc.integer({ min: 1, max: 8 });

/** The type1 command mix, one entry of commands.ts's `cmdArb`. */
export const t1CmdArb: fc.Arbitrary<T1Cmd> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('t1_setup' as const), g: sel, c: sel, v2: fc.nat({ max: 9 }).map((x) => x < 8) }) },
  { weight: 10, arbitrary: fc.record({ op: fc.constant('t1_map' as const), c: sel, iova, buf, off: fc.nat({ max: 40 }), pages, ro: fc.boolean() }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('t1_unmap' as const), c: sel, how: fc.constantFrom('dma' as const, 'dma' as const, 'span' as const, 'pick' as const, 'all' as const), n: sel, k: fc.nat({ max: 2 }), iova, pages }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('t1_vaddr' as const), c: sel, n: sel, buf, off: fc.nat({ max: 40 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('t1_dirty' as const), c: sel, what: fc.constantFrom('START' as const, 'STOP' as const, 'GET_BITMAP' as const), n: sel }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('t1_unset' as const), g: sel }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('t1_close' as const), n: sel }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('t1_mdev_pin' as const), c: sel, n: sel, off: fc.nat({ max: 2 }), sub: fc.boolean(), npage: fc.integer({ min: 1, max: 2 }), w: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('t1_mdev_unpin' as const), c: sel, n: sel, npage: fc.integer({ min: 1, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('t1_mdev_rw' as const), c: sel, n: sel, off: fc.nat({ max: 4 }), len: fc.integer({ min: 1, max: 3 }), write: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('t1_exec' as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('t1_bar' as const), c: sel }) },
);

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const pick = <T>(xs: readonly T[], n: number): T | undefined => (xs.length === 0 ? undefined : xs[n % xs.length]);
const ioctl = (fd: number, cmd: string, arg?: unknown): TraceLine => (arg === undefined ? { op: 'ioctl', fd, cmd } : { op: 'ioctl', fd, cmd, arg });

/** Open fds of a kind, lowest first, with what they name. */
/** The fd of the first open device fd of `path`. */
const deviceFd = (st: State, path: string): number | undefined => [...st.fds].sort((a, b) => a[0] - b[0]).find(([, f]) => f.kind === 'vfio_device' && f.path === path)?.[0];

function fdsOf(st: State, kind: 'vfio_container' | 'vfio_group'): { fd: number; id: number }[] {
  const out: { fd: number; id: number }[] = [];
  for (const [fd, f] of [...st.fds].sort((a, b) => a[0] - b[0]))
    if (f.kind === 'vfio_container' && kind === f.kind) out.push({ fd, id: f.container });
    else if (f.kind === 'vfio_group' && kind === f.kind) out.push({ fd, id: f.group });
  return out;
}

const dmasOf = (c: VfioContainer | undefined): VfioDma[] => [...(c?.iommu?.dmas.inOrder() ?? [])].map((n) => n.value);

function resolveIova(p: T1Iova, dmas: readonly VfioDma[]): bigint {
  if (p.k === 'const') return T1_IOVA_CONSTS[p.i % T1_IOVA_CONSTS.length]!;
  const d = pick(dmas, p.n);
  if (d === undefined) return T1_IOVA_CONSTS[p.n % T1_IOVA_CONSTS.length]!;
  if (p.k === 'end') return dmaLast(d) === U64_MAX ? d.iova : dmaLast(d) + 1n;
  return (d.iova + BigInt(p.off) * PAGE) & U64_MAX;
}

function vaddrOf(b: number, off: number): bigint {
  const v = b === BUFFERS.length ? T1_BUFFER : b === BUFFERS.length + 1 ? { start: T1_BAR_VA, pages: T1_BAR_PAGES } : BUFFERS[b % BUFFERS.length]!;
  return v.start + BigInt(off % v.pages) * PAGE;
}

/** The kind of the trace line a type1 command resolves to, and the line (undefined: nothing to do). */
export function resolveT1(st: State, cmd: T1Cmd): { kind: T1Cmd['op'] | 'close'; json: TraceLine; ctx?: number | undefined } | undefined {
  const conts = fdsOf(st, 'vfio_container'), groups = fdsOf(st, 'vfio_group');
  const setup = (g: number, c: number, v2: boolean): { kind: T1Cmd['op']; json: TraceLine } => {
    const json = ((): TraceLine => {
      if (conts.length === 0) return { op: 'open', path: '/dev/vfio/vfio', flags: ['O_RDWR'] };
      const group = SETUP_GROUPS[g % SETUP_GROUPS.length]!;
      const gfd = groups.find((x) => x.id === group);
      // A group that is not open yet is opened; one outside a container joins the c-th container.
      if (gfd === undefined) return { op: 'open', path: `/dev/vfio/${group}`, flags: ['O_RDWR'] };
      const cont = containerOf(st.containers, group);
      if (cont === undefined) return ioctl(gfd.fd, 'VFIO_GROUP_SET_CONTAINER', pick(conts, c)!.fd);
      const cfd = conts.find((x) => x.id === cont.id) ?? pick(conts, c)!;
      return ioctl(cfd.fd, 'VFIO_SET_IOMMU', v2 ? 3 : 1);
    })();
    return { kind: 't1_setup', json };
  };
  if (cmd.op === 't1_setup') return setup(cmd.g, cmd.c, cmd.v2);
  if (cmd.op === 't1_exec') {
    // An exec with iommufd pages is not modelled (machines/exec.ts): first close what keeps them, lowest fd first.
    const holder = st.pages.size === 0 ? undefined : [...st.fds].sort((a, b) => a[0] - b[0]).find(([, f]) => f.kind === 'iommufd' || f.kind === 'access' || f.kind === 'eventq' || f.kind === 'dmabuf');
    if (holder === undefined) return { kind: cmd.op, json: { op: 'exec' } };
    const f = holder[1];
    return { kind: 'close', json: { op: 'close', fd: holder[0] }, ctx: f.kind === 'iommufd' || f.kind === 'access' || f.kind === 'eventq' ? f.ctx : undefined };
  }
  // A device fd of `group`'s device `name`, once its group sits in a container with a type1 instance.
  const openDevice = (group: number, name: string, c: number): { kind: T1Cmd['op']; json: TraceLine } => {
    const g = groups.find((x) => x.id === group);
    const cont = containerOf(st.containers, group);
    if (g === undefined || cont?.iommu === undefined) return setup(SETUP_GROUPS.indexOf(group), c, true);
    return { kind: 't1_setup', json: ioctl(g.fd, 'VFIO_GROUP_GET_DEVICE_FD', name) };
  };
  if (cmd.op === 't1_bar') {
    const dev = T1_DEVICES[0]!;
    const fd = deviceFd(st, dev['path'] as string);
    if (fd === undefined) return openDevice(T1_GROUPS[0]!, dev['name'] as string, cmd.c);
    return { kind: cmd.op, json: { op: 'mmap', addr: hex(T1_BAR_VA), length: hex(BigInt(T1_BAR_PAGES) * PAGE), prot: ['PROT_READ', 'PROT_WRITE'], flags: ['MAP_SHARED', 'MAP_FIXED'], fd, offset: 0 } };
  }
  if (cmd.op === 't1_mdev_pin' || cmd.op === 't1_mdev_unpin' || cmd.op === 't1_mdev_rw') {
    if (deviceFd(st, T1_MDEV.path) === undefined) return openDevice(T1_MDEV_GROUP, T1_MDEV.name, cmd.c);
    const mc = containerOf(st.containers, T1_MDEV_GROUP);
    const dmas = dmasOf(mc);
    const d = pick(dmas, cmd.n);
    const mfd = conts.find((x) => x.id === mc?.id)?.fd;
    // A pin needs a vfio_dma in the mdev's container: map one there first (guest RAM, read-write).
    if (d === undefined && cmd.op === 't1_mdev_pin' && mfd !== undefined)
      return { kind: 't1_map', json: ioctl(mfd, 'VFIO_IOMMU_MAP_DMA', { flags: ['VFIO_DMA_MAP_FLAG_READ', 'VFIO_DMA_MAP_FLAG_WRITE'], vaddr: hex(vaddrOf(st.mm.vmas.some((v) => v.pfnmap !== undefined) && cmd.n % 2 === 1 ? BUFFERS.length + 1 : cmd.n % (BUFFERS.length + 1), cmd.off)), iova: u64Json(BigInt(cmd.n) << 20n), size: u64Json(4n * PAGE) }) };
    const at = d === undefined ? BigInt(cmd.n) * PAGE : d.iova + BigInt(cmd.op === 't1_mdev_unpin' ? 0 : cmd.off) * PAGE;
    const dev = T1_MDEV.path;
    if (cmd.op === 't1_mdev_pin')
      return { kind: cmd.op, json: { op: 'mdev_pin', dev, iova: u64Json(at + (cmd.sub ? PAGE / 2n : 0n)), npage: cmd.npage, prot: cmd.w ? ['IOMMU_READ', 'IOMMU_WRITE'] : ['IOMMU_READ'] } };
    if (cmd.op === 't1_mdev_rw') {
      const n = cmd.len * 512;
      return { kind: cmd.op, json: { op: 'mdev_dma_rw', dev, iova: u64Json(at + 256n), length: n, write: cmd.write, ...(cmd.write ? { data: '5a'.repeat(n) } : {}) } };
    }
    const held = [...(st.mdevPins.get(dev)?.pins.keys() ?? [])].sort((a, b) => (a < b ? -1 : 1));
    return { kind: cmd.op, json: { op: 'mdev_unpin', dev, iova: u64Json(pick(held, cmd.n) ?? at), npage: cmd.npage } };
  }
  if (cmd.op === 't1_close') {
    const devs = [...st.fds].filter(([, f]) => f.kind === 'vfio_device').map(([fd]) => fd);
    const fds = [...conts.map((x) => x.fd), ...groups.map((x) => x.fd), ...devs].sort((a, b) => a - b);
    const fd = pick(fds, cmd.n);
    return fd === undefined ? undefined : { kind: cmd.op, json: { op: 'close', fd } };
  }
  if (cmd.op === 't1_unset') {
    const g = pick(groups, cmd.g);
    return g === undefined ? undefined : { kind: cmd.op, json: ioctl(g.fd, 'VFIO_GROUP_UNSET_CONTAINER') };
  }
  // The rest run on a container with a type1 instance: set one up first.
  const withIommu = conts.filter((x) => st.containers.get(x.id)?.iommu !== undefined);
  const cfd = pick(withIommu, cmd.c);
  if (cfd === undefined) return setup(cmd.c, cmd.c, true);
  const cont = st.containers.get(cfd.id)!;
  const dmas = dmasOf(cont);
  const fd = cfd.fd;
  switch (cmd.op) {
    case 't1_map': {
      const at = resolveIova(cmd.iova, dmas);
      return { kind: cmd.op, json: ioctl(fd, 'VFIO_IOMMU_MAP_DMA', { flags: cmd.ro ? ['VFIO_DMA_MAP_FLAG_READ'] : ['VFIO_DMA_MAP_FLAG_READ', 'VFIO_DMA_MAP_FLAG_WRITE'], vaddr: hex(vaddrOf(cmd.buf, cmd.off)), iova: u64Json(at), size: u64Json(BigInt(cmd.pages) * PAGE) }) };
    }
    case 't1_unmap': {
      const d = pick(dmas, cmd.n);
      if (cmd.how === 'all' || (d === undefined && cmd.how !== 'pick')) return { kind: cmd.op, json: ioctl(fd, 'VFIO_IOMMU_UNMAP_DMA', { flags: ['VFIO_DMA_UNMAP_FLAG_ALL'], iova: 0, size: 0 }) };
      let iova: bigint, size: bigint;
      if (cmd.how === 'dma') [iova, size] = [d!.iova, d!.size];
      else if (cmd.how === 'span') {
        const z = dmas[Math.min(dmas.indexOf(d!) + cmd.k, dmas.length - 1)]!;
        [iova, size] = [d!.iova, dmaLast(z) - d!.iova + 1n];
      } else [iova, size] = [resolveIova(cmd.iova, dmas), BigInt(cmd.pages) * PAGE];
      return { kind: cmd.op, json: ioctl(fd, 'VFIO_IOMMU_UNMAP_DMA', { iova: u64Json(iova), size: u64Json(size) }) };
    }
    case 't1_vaddr': {
      // Live update: invalidate the n-th dma's vaddr, or give an invalidated one its new vaddr.
      const d = pick(dmas, cmd.n);
      if (d === undefined) return undefined;
      if (!d.vaddrInvalid) return { kind: cmd.op, json: ioctl(fd, 'VFIO_IOMMU_UNMAP_DMA', { flags: ['VFIO_DMA_UNMAP_FLAG_VADDR'], iova: u64Json(d.iova), size: u64Json(d.size) }) };
      return { kind: cmd.op, json: ioctl(fd, 'VFIO_IOMMU_MAP_DMA', { flags: ['VFIO_DMA_MAP_FLAG_VADDR'], vaddr: hex(vaddrOf(cmd.buf, cmd.off)), iova: u64Json(d.iova), size: u64Json(d.size) }) };
    }
    case 't1_dirty': {
      if (cmd.what !== 'GET_BITMAP') return { kind: cmd.op, json: ioctl(fd, 'VFIO_IOMMU_DIRTY_PAGES', { flags: [`VFIO_IOMMU_DIRTY_PAGES_FLAG_${cmd.what}`] }) };
      // The n-th dma's bits into an inline bitmap (no user memory involved).
      const d = pick(dmas, cmd.n);
      const [at, size] = d === undefined ? [0n, PAGE] : [d.iova, d.size];
      const bytes = Number(((size / PAGE + 63n) / 64n) * 8n);
      return {
        kind: cmd.op,
        json: ioctl(fd, 'VFIO_IOMMU_DIRTY_PAGES', { argsz: 48, flags: ['VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP'], data: { iova: u64Json(at), size: u64Json(size), bitmap: { pgsize: Number(PAGE), size: bytes, data: '00'.repeat(bytes) } } }),
      };
    }
  }
}
