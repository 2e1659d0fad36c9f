import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeEvent } from '../../src/events/trace.js';
import { checkInvariants } from '../../src/projections/invariants.js';
import type { State } from '../../src/projections/state.js';
import { DEV0, header, hex, map, MB, MDEV, mdevFd, openContainer, openMdev, pin, play, RAM, ram, setIommu, unmap, unpin, vpfnsOf } from '../support/type1.js';

const SEED = Number(process.env['FC_SEED'] ?? 0x3d4);
console.info(`vfio_type1_mdev.test.ts: fast-check seed ${SEED}`);

const H = (extra: Record<string, unknown> = {}): Record<string, unknown> => header({ devices: [DEV0, MDEV], ...extra });
/** An emulated-only container: the mdev's group, SET_IOMMU, the device fd, 1 MiB of guest RAM mapped at IOVA 0. */
const mdevOnly = (v = 3): object[] => [ram(4n * MB), ...openMdev(), setIommu(v), mdevFd(), map(0n, MB)];
const rw = (iova: bigint, length: number, write: boolean, data?: string): object =>
  ({ op: 'mdev_dma_rw', dev: MDEV.path, iova: hex(iova), length, write, ...(data === undefined ? {} : { data }) });

describe('an emulated (mdev) group in a type1 container', () => {
  it('is attached without a domain: UPDATE_VADDR is 0, MAP_DMA pins and charges nothing, UNMAP(VADDR) is EBUSY', () => {
    const p = play(H(), [...mdevOnly(), { op: 'ioctl', fd: '$c', cmd: 'VFIO_CHECK_EXTENSION', arg: 10, ret: 0 },
      { ...unmap(0n, MB, ['VFIO_DMA_UNMAP_FLAG_VADDR']) as Record<string, unknown>, errno: 'EBUSY' }]);
    expect(p.r.divergences).toEqual([]);
    const i = p.st.containers.get(1)!.iommu!;
    expect([i.domain, i.emulatedGroups, i.iovaList]).toEqual([undefined, [20], []]);
    expect([p.st.accounting.mmLockedVm, p.st.mm.pins.isEmpty, i.dmas.size]).toEqual([0, true, 1]);
  });

  it('answers GET_INFO without the IOVA_RANGE capability (72 bytes of chain)', () => {
    const p = play(H(), [...mdevOnly(), { op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_GET_INFO', arg: { argsz: 16 }, ret: 0, out: { argsz: 72 } }]);
    expect(p.r.divergences).toEqual([]);
  });

  it('loses its mappings with the last emulated group, as a hardware container does with its last group', () => {
    const p = play(H(), [...mdevOnly(), { op: 'close', fd: '$m' }, { op: 'ioctl', fd: '$mg', cmd: 'VFIO_GROUP_UNSET_CONTAINER', ret: 0 }, map(0n, MB)]);
    expect(p.outcomes.slice(-1)).toEqual(['EINVAL']);
    expect(p.st.containers.get(1)!.iommu).toBeUndefined();
  });
});

describe('vfio_pin_pages on a type1 container', () => {
  it('pins each page from the dma\'s mm and charges it without a hardware domain; pinning an IOVA again takes a reference', () => {
    const p = play(H(), [...mdevOnly(), { ...pin(0x1000n, 2) as Record<string, unknown>, ret: 2 }, { ...pin(0x1000n, 1) as Record<string, unknown>, ret: 1 }]);
    expect(p.r.divergences).toEqual([]);
    expect(vpfnsOf(p.st)).toEqual([[0x1000n, 2], [0x2000n, 1]]);
    expect([p.st.accounting.mmLockedVm, p.st.containers.get(1)!.iommu!.dmas.iterFirst(0n, 0n)!.value.lockedVm]).toEqual([2, 2]);
    expect([...p.st.mm.pins.runs()].map((r) => [r.start, r.last, r.count])).toEqual([[0, 1, 1]]);
  });

  it('checks in the kernel\'s order: npage 0, a closed device, npage > 512 (E2BIG), v1 (EACCES), no dma, prot not covered (EPERM)', () => {
    const closed = play(H(), [ram(MB), ...openMdev(), setIommu(), map(0n, MB), pin(0n, 1)]);
    expect(closed.outcomes.slice(-1)).toEqual(['EINVAL']);
    const p = play(H(), [...mdevOnly(), pin(0n, 0), pin(0n, 513), pin(2n * MB, 1), map(MB, MB, RAM + MB, ['VFIO_DMA_MAP_FLAG_READ']), pin(MB, 1, ['IOMMU_READ', 'IOMMU_WRITE'])]);
    expect(p.outcomes.slice(-5)).toEqual(['EINVAL', 'E2BIG', 'EINVAL', 'ok', 'EPERM']);
    const v1 = play(H(), [...mdevOnly(1), pin(0n, 1)]);
    expect(v1.outcomes.slice(-1)).toEqual(['EACCES']);
    expect(vpfnsOf(p.st)).toEqual([]);
  });

  it('refuses a device whose driver has no dma_unmap callback (EINVAL), and a vfio-pci device', () => {
    const nodma = { ...MDEV, mdev: { dma_unmap: false } };
    const p = play(H({ devices: [DEV0, nodma] }), [...mdevOnly(), pin(0n, 1)]);
    expect(p.outcomes.slice(-1)).toEqual(['EINVAL']);
    const q = play(H(), [ram(MB), ...openContainer(), setIommu(), { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_GET_DEVICE_FD', arg: DEV0.name }, map(0n, MB), pin(0n, 1, ['IOMMU_READ'], DEV0.path)]);
    expect(q.outcomes.slice(-1)).toEqual(['EINVAL']);
  });

  it('charges nothing more with a hardware domain in the container (MAP_DMA did), and refuses a PFNMAP-backed dma (EINVAL)', () => {
    const lines = [ram(4n * MB), ...openContainer(), ...openMdev(false), setIommu(), mdevFd(), map(0n, MB),
      { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_GET_DEVICE_FD', arg: DEV0.name, ret: '$d' },
      { op: 'mmap', addr: '0x7e0000000000', length: hex(MB), prot: ['PROT_READ', 'PROT_WRITE'], flags: ['MAP_SHARED', 'MAP_FIXED'], fd: '$d', offset: 0 },
      map(0x100000000n, MB, 0x7e0000000000n), pin(0n, 1), pin(0x100000000n, 1)];
    const p = play(H(), lines);
    expect(p.outcomes.slice(-2)).toEqual(['ok', 'EINVAL']);
    expect(p.st.accounting.mmLockedVm).toBe(256);
    expect(vpfnsOf(p.st)).toEqual([[0n, 1]]);
  });

  it('answers ENOMEM past RLIMIT_MEMLOCK and keeps nothing of the call pinned or charged', () => {
    const p = play(H({ limits: { memlock: 0x2000, cap_ipc_lock: false } }), [...mdevOnly(), pin(0n, 2), pin(0x2000n, 2), pin(0x2000n, 1)]);
    expect(p.outcomes.slice(-3)).toEqual(['ok', 'ENOMEM', 'ENOMEM']);
    expect([p.st.accounting.mmLockedVm, vpfnsOf(p.st)]).toEqual([2, [[0n, 1], [0x1000n, 1]]]);
  });

  it('keys vpfns by exact IOVA: two pins in one page are two vpfns, each unpinned by its own IOVA', () => {
    const p = play(H(), [...mdevOnly(), pin(0x1000n, 1), pin(0x1800n, 1), unpin(0x1000n, 1)]);
    expect(vpfnsOf(p.st)).toEqual([[0x1800n, 1]]);
    expect([...p.st.mm.pins.runs()].map((r) => [r.start, r.count])).toEqual([[0, 1]]);
    const q = play(H(), [...mdevOnly(), pin(0x1000n, 1), pin(0x1800n, 1), unpin(0x1000n, 1), unpin(0x1800n, 1)]);
    expect([vpfnsOf(q.st), q.st.mm.pins.isEmpty, q.st.accounting.mmLockedVm]).toEqual([[], true, 0]);
  });

  it('answers EBUSY while a vaddr is invalid and ENODEV once the dma\'s mm is gone (exec)', () => {
    const p = play(H(), [...mdevOnly(), { op: 'exec' }, pin(0n, 1)]);
    expect(p.outcomes.slice(-1)).toEqual(['ENODEV']);
  });
});

describe('DMA_UNMAP of a dma an mdev pinned', () => {
  it('notifies the driver, which unpins what it pinned there; the dma goes and nothing stays pinned or charged', () => {
    const p = play(H(), [...mdevOnly(), pin(0x1000n, 2), pin(0x1000n, 1), { ...unmap(0n, MB) as Record<string, unknown>, ret: 0, out: { size: hex(MB) } }]);
    expect(p.r.divergences).toEqual([]);
    expect([vpfnsOf(p.st), p.st.mm.pins.isEmpty, p.st.accounting.mmLockedVm, p.st.mdevPins.size]).toEqual([[], true, 0, 0]);
    const unmapLine = p.events.filter((e) => e.type === 'MdevDriverPins' && e.delta === -1).length;
    expect(unmapLine).toBe(3);
  });

  it('with a hardware domain: the driver unpins, then the IOMMU mapping is unpinned and un-charged', () => {
    const p = play(H(), [ram(4n * MB), ...openContainer(), ...openMdev(false), setIommu(), mdevFd(), map(0n, MB), pin(0n, 3), unmap(0n, MB)]);
    expect([vpfnsOf(p.st), p.st.mm.pins.isEmpty, p.st.accounting.mmLockedVm]).toEqual([[], true, 0]);
  });

  it('closing the mdev\'s device fd makes its driver unpin what it still holds', () => {
    const p = play(H(), [...mdevOnly(), pin(0x1000n, 2), { op: 'close', fd: '$m' }]);
    expect([vpfnsOf(p.st), p.st.mm.pins.isEmpty, p.st.accounting.mmLockedVm]).toEqual([[], true, 0]);
  });

  it('re-charges only the external pins when the last hardware group leaves an emulated group behind', () => {
    const p = play(H(), [ram(4n * MB), ...openContainer(), ...openMdev(false), setIommu(), mdevFd(), map(0n, MB), pin(0n, 2),
      { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_UNSET_CONTAINER', ret: 0 }]);
    const d = p.st.containers.get(1)!.iommu!.dmas.iterFirst(0n, 0n)!.value;
    expect([d.iommuMapped, d.pinned, d.lockedVm, p.st.accounting.mmLockedVm, p.st.domains.size]).toEqual([false, [], 2, 2, 0]);
  });
});

describe('vfio_dma_rw', () => {
  it('reads and writes through the dma\'s user memory; EPERM for a write to a read-only dma; EINVAL outside every dma', () => {
    const p = play(H(), [...mdevOnly(), { op: 'mem_write', addr: hex(RAM + 0x10n), data: 'aabb' },
      { ...rw(0x10n, 2, false) as Record<string, unknown>, ret: 0, out: { data: 'aabb' } }, rw(0x20n, 2, true, 'ccdd'),
      { op: 'mem_read', addr: hex(RAM + 0x20n), length: 2, ret: 0, out: { data: 'ccdd' } },
      map(MB, MB, RAM + MB, ['VFIO_DMA_MAP_FLAG_READ']), rw(MB, 2, true, 'eeff'), rw(3n * MB, 2, false)]);
    expect(p.r.divergences).toEqual([]);
    expect(p.outcomes.slice(-2)).toEqual(['EPERM', 'EINVAL']);
  });
});

describe('dirty tracking with only emulated groups (pinned-page dirty scope)', () => {
  const get = (data: string): object => ({ op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_DIRTY_PAGES', arg: { argsz: 48, flags: ['VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP'], data: { iova: 0, size: hex(MB), bitmap: { pgsize: 4096, size: 32, data: '00'.repeat(32) } } }, ret: 0, out: { data: { bitmap: { data } } } });
  const start = { op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_DIRTY_PAGES', arg: { flags: ['VFIO_IOMMU_DIRTY_PAGES_FLAG_START'] }, ret: 0 };
  it('reports the externally pinned and dma_rw-written pages only; a report re-seeds the pinned pages, an unpin clears nothing', () => {
    const bits = (...pages: number[]): string => { const b = new Uint8Array(32); for (const x of pages) b[x >> 3]! |= 1 << (x & 7); return Buffer.from(b).toString('hex'); };
    const p = play(H(), [...mdevOnly(), pin(0x3000n, 1), start, pin(0x5000n, 1), rw(0x9000n, 4, true, '01020304'), get(bits(3, 5, 9)), unpin(0x5000n, 1), get(bits(3, 5)), get(bits(3))]);
    expect(p.r.divergences).toEqual([]);
  });
});

describe('exec', () => {
  const vmap = (iova: bigint, size: bigint, vaddr: bigint): object =>
    ({ op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_MAP_DMA', arg: { flags: ['VFIO_DMA_MAP_FLAG_VADDR'], vaddr: hex(vaddr), iova: hex(iova), size: hex(size) } });
  it('moves to a new mm with locked_vm 0; MAP(VADDR) charges it the dma\'s pages, and UNMAP un-charges it', () => {
    const lines = [ram(MB, true), ...openContainer(), setIommu(), map(0n, MB), unmap(0n, MB, ['VFIO_DMA_UNMAP_FLAG_VADDR']), { op: 'exec' }];
    const p = play(header(), lines);
    expect([p.st.mmId, p.st.accounting.mmLockedVm, p.st.mm.vmas.length, p.st.mm.pins.isEmpty]).toEqual([2, 0, 0, false]);
    const q = play(header(), [...lines, { ...ram(MB, true), addr: hex(RAM + 4n * MB) }, vmap(0n, MB, RAM + 4n * MB)]);
    expect([q.st.accounting.mmLockedVm, q.st.containers.get(1)!.iommu!.dmas.iterFirst(0n, 0n)!.value.mm]).toEqual([256, 2]);
    const r = play(header(), [...lines, vmap(0n, MB, RAM), unmap(0n, MB)]);
    expect([r.st.accounting.mmLockedVm, r.st.mm.pins.isEmpty]).toEqual([0, true]);
  });

  it('answers ENOMEM to MAP(VADDR) when the new mm cannot take the charge, and leaves the dma with the old mm', () => {
    const q = play(header({ limits: { memlock: 0x80000, cap_ipc_lock: false } }), [ram(MB, true), ...openContainer(), setIommu(), map(0n, 0x80000n),
      { op: 'mem_write', addr: hex(RAM + 0x80000n), data: '00' }, unmap(0n, 0x80000n, ['VFIO_DMA_UNMAP_FLAG_VADDR']), { op: 'exec' },
      { ...ram(MB, true), addr: hex(RAM + 4n * MB) }, map(MB, 0x1000n, RAM + 4n * MB), vmap(0n, 0x80000n, RAM)]);
    expect(q.outcomes.slice(-1)).toEqual(['ENOMEM']);
    expect(q.st.containers.get(1)!.iommu!.dmas.iterFirst(0n, 0n)!.value.mm).toBe(1);
  });

  it('closes the fds the trace lists as close-on-exec, in order', () => {
    const p = play(header(), [...openContainer(), setIommu(), { op: 'open', path: '/tmp/x', ret: '$x' }, { op: 'exec', cloexec: ['$x'] }]);
    expect([...p.st.fds.values()].map((f) => f.kind)).toEqual(['vfio_container', 'vfio_group']);
  });

  it('is not modelled while iommufd holds pages (their accounting follows source_mm)', () => {
    const p = play({ iotrail: 1 }, [ram(MB), { op: 'open', path: '/dev/iommu', ret: '$i' },
      { op: 'ioctl', fd: '$i', cmd: 'IOMMU_IOAS_ALLOC', arg: {}, out: { out_ioas_id: '$a' } },
      { op: 'ioctl', fd: '$i', cmd: 'IOMMU_IOAS_MAP', arg: { flags: ['IOMMU_IOAS_MAP_READABLE'], ioas_id: '$a', user_va: hex(RAM), length: 4096 } }, { op: 'exec' }]);
    expect(p.outcomes.slice(-1)[0]).toMatch(/^unmodelled: not modelled: exec while iommufd holds/);
  });
});

describe('the trace format extension', () => {
  it('decodes the new ops and refuses an unknown op, an unknown prot name and a non-array cloexec precisely', () => {
    expect(decodeEvent({ op: 'mdev_pin', dev: MDEV.path, iova: 0, npage: 1, prot: ['IOMMU_READ'] }, 2).ok).toBe(true);
    expect(decodeEvent({ op: 'mdev_pinn', dev: MDEV.path }, 3)).toEqual({ ok: false, problem: { path: 'op', message: 'unknown op "mdev_pinn"' } });
    const bad = decodeEvent({ op: 'mdev_pin', dev: MDEV.path, iova: 0, npage: 1, prot: ['IOMMU_EXEC'] }, 4);
    expect(bad.ok ? '' : bad.problem.path).toBe('prot[0]');
    const cl = decodeEvent({ op: 'exec', cloexec: 3 }, 5);
    expect(cl.ok ? '' : cl.problem.message).toBe('expected an array of fds, got 3');
  });
});

type Op =
  | { op: 'map'; slot: number; pages: number; ro: boolean }
  | { op: 'unmap'; slot: number; pages: number; all: boolean }
  | { op: 'pin'; slot: number; off: number; half: boolean; npage: number; ro: boolean }
  | { op: 'unpin'; k: number; npage: number }
  | { op: 'rw'; slot: number; write: boolean }
  | { op: 'exec' } | { op: 'remap' }
  | { op: 'vaddr'; slot: number; invalidate: boolean }
  | { op: 'close' } | { op: 'reopen' } | { op: 'detach' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('map' as const), slot: fc.nat({ max: 7 }), pages: fc.integer({ min: 1, max: 4 }), ro: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('unmap' as const), slot: fc.nat({ max: 7 }), pages: fc.integer({ min: 1, max: 6 }), all: fc.boolean() }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('pin' as const), slot: fc.nat({ max: 7 }), off: fc.nat({ max: 3 }), half: fc.boolean(), npage: fc.integer({ min: 1, max: 3 }), ro: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('unpin' as const), k: fc.nat({ max: 7 }), npage: fc.integer({ min: 1, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('rw' as const), slot: fc.nat({ max: 7 }), write: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ op: 'exec' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'remap' as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('vaddr' as const), slot: fc.nat({ max: 7 }), invalidate: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ op: 'close' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'detach' as const }) },
);

/** The live mm's locked_vm is what the dmas it owns charged; FOLL_PINs are the dmas' and the vpfns'; vpfns are the driver's pins. */
function checkPerMm(st: State): void {
  let charged = 0, pins = 0, refs = 0;
  for (const c of st.containers.values())
    for (const n of c.iommu?.dmas.inOrder() ?? []) {
      if (n.value.mm === st.mmId) charged += n.value.lockedVm;
      pins += n.value.pinned.reduce((a, r) => a + r.npages, 0);
      for (const v of n.value.vpfns.values()) { pins += v.ram ? 1 : 0; refs += v.ref; }
    }
  expect(st.accounting.mmLockedVm).toBe(charged);
  let frames = 0;
  for (const r of st.mm.pins.runs()) frames += (r.last - r.start + 1) * r.count;
  expect(frames).toBe(pins);
  expect(refs).toBe([...st.mdevPins.values()].reduce((a, p) => a + [...p.pins.values()].reduce((x, y) => x + y, 0), 0));
  expect(checkInvariants(st)).toEqual([]);
}

describe('external pins and locked_vm under any sequence of pin, unpin, map, unmap (with the notifier), VADDR, exec, detach and close', () => {
  it('balance per mm after every call, and closing every fd leaves nothing pinned or charged', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 30 }), fc.boolean(), (ops, hw) => {
      const slot = (s: number): bigint => BigInt(s) * 0x4000n;
      const lines: object[] = [ram(MB, true), ...(hw ? openContainer() : []), ...openMdev(!hw), setIommu(), mdevFd()];
      let remaps = 0, devOpen = true;
      for (const o of ops) {
        if (o.op === 'map') lines.push(map(slot(o.slot), BigInt(o.pages) * 0x1000n, RAM + slot(o.slot), o.ro ? ['VFIO_DMA_MAP_FLAG_READ'] : ['VFIO_DMA_MAP_FLAG_READ', 'VFIO_DMA_MAP_FLAG_WRITE']));
        else if (o.op === 'unmap') lines.push(o.all ? unmap(0n, 0n, ['VFIO_DMA_UNMAP_FLAG_ALL']) : unmap(slot(o.slot), BigInt(o.pages) * 0x1000n));
        else if (o.op === 'pin') lines.push(pin(slot(o.slot) + BigInt(o.off) * 0x1000n + (o.half ? 0x800n : 0n), o.npage, o.ro ? ['IOMMU_READ'] : ['IOMMU_READ', 'IOMMU_WRITE']));
        else if (o.op === 'unpin') lines.push(unpin(slot(o.k), o.npage));
        else if (o.op === 'rw') lines.push(rw(slot(o.slot) + 8n, 4, o.write, o.write ? 'a1a2a3a4' : undefined));
        else if (o.op === 'exec') lines.push({ op: 'exec' });
        else if (o.op === 'remap') lines.push({ ...ram(MB, true), addr: hex(RAM + BigInt(++remaps) * 4n * MB) });
        else if (o.op === 'vaddr') lines.push(o.invalidate ? unmap(slot(o.slot), 0x1000n, ['VFIO_DMA_UNMAP_FLAG_VADDR'])
          : { op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_MAP_DMA', arg: { flags: ['VFIO_DMA_MAP_FLAG_VADDR'], vaddr: hex(RAM + BigInt(remaps) * 4n * MB + slot(o.slot)), iova: hex(slot(o.slot)), size: '0x1000' } });
        else if (o.op === 'close' || o.op === 'reopen') {
          // One device fd at a time, so that `$m` names it.
          if (devOpen === (o.op === 'close')) lines.push(o.op === 'close' ? { op: 'close', fd: '$m' } : mdevFd());
          devOpen = o.op === 'reopen';
        }
        else lines.push({ op: 'ioctl', fd: hw ? '$g' : '$mg', cmd: 'VFIO_GROUP_UNSET_CONTAINER' });
      }
      const p = play(H(), lines, (st) => checkPerMm(st));
      expect(p.r.divergences.filter((d) => d.predicted === 'not modelled')).toEqual([]);
      const q = play(H(), [...lines, ...(devOpen ? [{ op: 'close', fd: '$m' }] : []), { op: 'close', fd: '$mg' }, ...(hw ? [{ op: 'close', fd: '$g' }] : []), { op: 'close', fd: '$c' }]);
      expect([q.st.accounting.mmLockedVm, q.st.mm.pins.isEmpty, q.st.mdevPins.size, q.st.containers.get(1)?.iommu]).toEqual([0, true, 0, undefined]);
    }), { seed: SEED, numRuns: 200 });
  });
});
