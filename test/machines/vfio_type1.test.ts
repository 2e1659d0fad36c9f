import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkInvariants } from '../../src/projections/invariants.js';
import type { State } from '../../src/projections/state.js';
import { DEV0, dmaCount, header, hex, IOMMU, map, MB, openContainer, play, RAM, ram, RW, setIommu, unmap } from '../support/type1.js';

const SEED = Number(process.env['FC_SEED'] ?? 0x7e1);
console.info(`vfio_type1.test.ts: fast-check seed ${SEED}`);

describe('the legacy container before SET_IOMMU', () => {
  it('answers EINVAL to MAP_DMA, UNMAP_DMA and GET_INFO, and CHECK_EXTENSION(UPDATE_VADDR) is 0', () => {
    const p = play(header(), [ram(MB), ...openContainer(), map(0n, 0x1000n), unmap(0n, 0x1000n),
      { op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_GET_INFO', arg: {} }, { op: 'ioctl', fd: '$c', cmd: 'VFIO_CHECK_EXTENSION', arg: 10 }]);
    expect(p.outcomes).toEqual(['ok', 'ok', 'ok', 'ok', 'EINVAL', 'EINVAL', 'EINVAL', 'ok']);
  });

  it('refuses SET_IOMMU without a group (EINVAL), an unknown type (ENODEV), UNMAP_ALL as a type (EINVAL) and a second SET_IOMMU (EINVAL)', () => {
    const p = play(header(), [{ op: 'open', path: '/dev/vfio/vfio', ret: '$c' }, setIommu(3), { op: 'open', path: '/dev/vfio/15', ret: '$g' },
      { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_SET_CONTAINER', arg: '$c' }, setIommu(6), setIommu(9), setIommu(1), setIommu(3)]);
    expect(p.outcomes).toEqual(['ok', 'EINVAL', 'ok', 'ok', 'ENODEV', 'EINVAL', 'ok', 'EINVAL']);
  });

  it('refuses a device fd before SET_IOMMU and a group without MSI isolation at SET_IOMMU (EPERM)', () => {
    const unsafe = { ...DEV0, iommu: { ...IOMMU(), msi_isolated: false } };
    const p = play(header({ devices: [unsafe] }), [...openContainer(), { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_GET_DEVICE_FD', arg: '0000:01:00.0' }, setIommu(1)]);
    expect(p.outcomes).toEqual(['ok', 'ok', 'ok', 'EINVAL', 'EPERM']);
    expect(p.st.containers.get(1)!.iommu).toBeUndefined();
  });
});

describe('VFIO_IOMMU_MAP_DMA on type1', () => {
  it('checks in the kernel order: size 0, overflow (EOVERFLOW), no prot, misalignment, overlap (EEXIST), reserved MSI window (EINVAL)', () => {
    const p = play(header(), [ram(4n * MB), ...openContainer(), setIommu(), map(0n, 0n), map(0xfffffffffffff000n, 0x2000n, RAM),
      map(0n, 0x1000n, RAM, 0), map(0x800n, 0x1000n), map(0n, 0x2000n), map(0x1000n, 0x1000n), map(0xfee00000n, 0x1000n, RAM)]);
    expect(p.outcomes.slice(5)).toEqual(['EINVAL', 'EOVERFLOW', 'EINVAL', 'EINVAL', 'ok', 'EEXIST', 'EINVAL']);
  });

  it('answers EINVAL instead of EOVERFLOW for a wrapping range on kernels before the 2025 overflow series', () => {
    const p = play(header({ kernel: '6.12' }), [ram(MB), ...openContainer(), setIommu(), map(0xfffffffffffff000n, 0x2000n, RAM), unmap(0xfffffffffffff000n, 0x2000n)]);
    expect(p.outcomes.slice(5)).toEqual(['EINVAL', 'EINVAL']);
    const q = play(header(), [ram(MB), ...openContainer(), setIommu(), map(0xfffffffffffff000n, 0x2000n, RAM), unmap(0xfffffffffffff000n, 0x2000n)]);
    expect(q.outcomes.slice(5)).toEqual(['EOVERFLOW', 'EOVERFLOW']);
  });

  it('pins and charges every page to locked_vm, and UNMAP gives back exactly that', () => {
    const p = play(header(), [ram(4n * MB), ...openContainer(), setIommu(), map(0n, 2n * MB), map(2n * MB, MB)]);
    expect(p.st.accounting.mmLockedVm).toBe(768);
    expect(p.r.divergences).toEqual([]);
    const q = play(header(), [ram(4n * MB), ...openContainer(), setIommu(), map(0n, 2n * MB), map(2n * MB, MB), unmap(0n, 2n * MB)]);
    expect(q.st.accounting.mmLockedVm).toBe(256);
  });

  it('answers ENOMEM past RLIMIT_MEMLOCK without CAP_IPC_LOCK and maps nothing, but CAP_IPC_LOCK bypasses the limit', () => {
    const lim = { memlock: 0x100000, cap_ipc_lock: false };
    const p = play(header({ limits: lim }), [ram(4n * MB), ...openContainer(), setIommu(), map(0n, MB), map(MB, 0x1000n)]);
    expect(p.outcomes.slice(5)).toEqual(['ok', 'ENOMEM']);
    expect([p.st.accounting.mmLockedVm, dmaCount(p.st)]).toEqual([256, 1]);
    const q = play(header({ limits: { ...lim, cap_ipc_lock: true } }), [ram(4n * MB), ...openContainer(), setIommu(), map(0n, MB), map(MB, 0x1000n)]);
    expect(q.outcomes.slice(5)).toEqual(['ok', 'ok']);
    expect(q.st.accounting.mmLockedVm).toBe(257);
  });

  it('answers EFAULT for a VA with no VMA and leaves nothing pinned or charged', () => {
    const p = play(header(), [...openContainer(), setIommu(), map(0n, 0x1000n)]);
    expect(p.outcomes.slice(4)).toEqual(['EFAULT']);
    expect([p.st.accounting.mmLockedVm, dmaCount(p.st), p.st.mm.pins.isEmpty]).toEqual([0, 0, true]);
  });
});

describe('VFIO_IOMMU_UNMAP_DMA on type1', () => {
  const three = (v: number): object[] => [ram(16n * MB), ...openContainer(), setIommu(v), map(0n, 4n * MB), map(4n * MB, 4n * MB), map(10n * MB, 2n * MB)];
  it('v2 refuses to bisect a mapping and copies nothing back', () => {
    const p = play(header(), [...three(3), { ...unmap(2n * MB, 2n * MB) as Record<string, unknown>, errno: 'EINVAL' }]);
    expect(p.r.divergences).toEqual([]);
    expect(dmaCount(p.st)).toBe(3);
  });
  it('v1 stops at a mapping starting below the range (size 0) and removes whole mappings that start inside it', () => {
    const p = play(header(), [...three(1),
      { ...unmap(2n * MB, 8n * MB) as Record<string, unknown>, ret: 0, out: { size: 0 } },
      { ...unmap(0n, 2n * MB) as Record<string, unknown>, ret: 0, out: { size: hex(4n * MB) } }]);
    expect(p.r.divergences).toEqual([]);
    expect(dmaCount(p.st)).toBe(2);
  });
  it('UNMAP_ALL removes everything and needs iova and size 0', () => {
    const p = play(header(), [...three(3), unmap(0x1000n, 0n, ['VFIO_DMA_UNMAP_FLAG_ALL']),
      { ...unmap(0n, 0n, ['VFIO_DMA_UNMAP_FLAG_ALL']) as Record<string, unknown>, ret: 0, out: { size: hex(10n * MB) } }]);
    expect(p.outcomes.slice(-2)).toEqual(['EINVAL', 'ok']);
    expect(p.r.divergences).toEqual([]);
    expect([dmaCount(p.st), p.st.accounting.mmLockedVm, p.st.mm.pins.isEmpty]).toEqual([0, 0, true]);
  });
});

describe('groups leaving a type1 container', () => {
  it('the last group takes every mapping, pin and charge with it, and the container has no driver again', () => {
    const p = play(header(), [ram(4n * MB), ...openContainer(), setIommu(), map(0n, 2n * MB),
      { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_UNSET_CONTAINER' }, map(0n, 2n * MB)]);
    expect(p.outcomes.slice(-2)).toEqual(['ok', 'EINVAL']);
    expect([p.st.accounting.mmLockedVm, p.st.mm.pins.isEmpty, p.st.containers.get(1)!.iommu, p.st.domains.size]).toEqual([0, true, undefined, 0]);
  });
  it('closing the container fd keeps the mappings while a group holds the container', () => {
    const p = play(header(), [ram(4n * MB), ...openContainer(), setIommu(), map(0n, 2n * MB), { op: 'close', fd: '$c' }]);
    expect([dmaCount(p.st), p.st.accounting.mmLockedVm]).toEqual([1, 512]);
  });
  it('refuses UNSET_CONTAINER while a device fd of the group is open (EBUSY)', () => {
    const p = play(header(), [...openContainer(), setIommu(), { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_GET_DEVICE_FD', arg: '0000:01:00.0', ret: '$d' },
      { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_UNSET_CONTAINER' }]);
    expect(p.outcomes.slice(-2)).toEqual(['ok', 'EBUSY']);
  });
});

describe('BAR mmaps and peer-to-peer mappings', () => {
  const bar = (fd: string, index: number, len: bigint, prot = ['PROT_READ', 'PROT_WRITE'], flags = ['MAP_SHARED']): object =>
    ({ op: 'mmap', addr: '0x7e0000000000', length: hex(len), prot, flags: [...flags, 'MAP_FIXED'], fd, offset: hex(BigInt(index) << 40n) });
  const withDevice = (): object[] => [...openContainer(), setIommu(), { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_GET_DEVICE_FD', arg: '0000:01:00.0', ret: '$d' }];
  it('refuses a private mapping, a config-space region, a sub-page BAR and a range past the BAR with EINVAL', () => {
    const p = play(header(), [...withDevice(), bar('$d', 0, MB, undefined, ['MAP_PRIVATE']), bar('$d', 7, 0x1000n), bar('$d', 2, 0x1000n), bar('$d', 0, 2n * MB), bar('$d', 0, MB)]);
    expect(p.outcomes.slice(-5)).toEqual(['EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'ok']);
  });
  it('maps a BAR VA into the container without a pin or a charge, and a device DMA reaches the BAR', () => {
    const p = play(header(), [...withDevice(), bar('$d', 0, MB), { ...map(0x100000000n, MB, 0x7e0000000000n) as Record<string, unknown>, ret: 0 },
      { op: 'dma', dev: '/dev/vfio/devices/vfio0', iova: '0x100000000', length: 8, write: false, ret: 0 }]);
    expect(p.r.divergences).toEqual([]);
    expect([p.st.accounting.mmLockedVm, p.st.mm.pins.isEmpty, dmaCount(p.st)]).toEqual([0, true, 1]);
  });
  it('answers EFAULT for an IOMMU write through a read-only BAR mapping', () => {
    const p = play(header(), [...withDevice(), bar('$d', 0, MB, ['PROT_READ']), map(0x100000000n, MB, 0x7e0000000000n)]);
    expect(p.outcomes.at(-1)).toBe('EFAULT');
  });
  it('under iommufd, IOAS_MAP of a BAR VA fails with EFAULT (GUP refuses VM_PFNMAP)', () => {
    const p = play(header({ vfio_container: 'iommufd' }), [...withDevice(), bar('$d', 0, MB), map(0x100000000n, MB, 0x7e0000000000n)]);
    expect(p.outcomes.at(-2)).toBe('ok');
    expect(p.outcomes.at(-1)).toBe('EFAULT');
  });
});

type Op =
  | { op: 'map'; slot: number; pages: number; write: boolean; shared: boolean }
  | { op: 'unmap'; slot: number; pages: number; all: boolean }
  | { op: 'touch'; slot: number }
  | { op: 'vaddr'; slot: number; pages: number; invalidate: boolean }
  | { op: 'dma'; slot: number; write: boolean }
  | { op: 'detach' }
  | { op: 'reattach' }
  | { op: 'close'; container: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('map' as const), slot: fc.integer({ min: 0, max: 15 }), pages: fc.integer({ min: 1, max: 4 }), write: fc.boolean(), shared: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('unmap' as const), slot: fc.integer({ min: 0, max: 15 }), pages: fc.integer({ min: 1, max: 6 }), all: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('touch' as const), slot: fc.integer({ min: 0, max: 15 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('vaddr' as const), slot: fc.integer({ min: 0, max: 15 }), pages: fc.integer({ min: 1, max: 4 }), invalidate: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('dma' as const), slot: fc.integer({ min: 0, max: 15 }), write: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ op: 'detach' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reattach' as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('close' as const), container: fc.boolean() }) },
);

/**
 * Pins and charges per mm (one process: one mm) are exactly the live dmas', the count stays within
 * dma_entry_limit, every domain mapping points at a frame someone pins, and the invariant library holds.
 */
function checkBalance(st: State, limit: number): void {
  let charged = 0, pinned = 0, count = 0;
  for (const c of st.containers.values()) {
    const i = c.iommu;
    if (i === undefined) continue;
    expect(i.dmas.size).toBeLessThanOrEqual(limit);
    expect(i.dmaAvail + i.dmas.size).toBe(limit);
    for (const n of i.dmas.inOrder()) {
      charged += n.value.lockedVm;
      pinned += n.value.pinned.reduce((a, r) => a + r.npages, 0);
      count++;
    }
  }
  expect(st.accounting.mmLockedVm).toBe(charged);
  let pins = 0;
  for (const r of st.mm.pins.runs()) pins += (r.last - r.start + 1) * r.count;
  expect(pins).toBe(pinned);
  for (const d of st.domains.values()) for (const n of d.map.inOrder()) {
    const f0 = Number(n.value / 4096n), f1 = f0 + Number((n.last - n.start) / 4096n);
    for (let f = f0; f <= f1; f++) expect(st.mm.pins.get(f), `frame ${f} mapped by domain ${d.id} but not pinned`).toBeGreaterThan(0);
  }
  if (count === 0) expect(st.accounting.mmLockedVm).toBe(0);
  expect(checkInvariants(st)).toEqual([]);
}

const inLiveDma = (st: State, iova: bigint): boolean => [...st.containers.values()].some((c) => c.iommu?.dmas.iterFirst(iova, iova) !== undefined);

describe('type1 pinning and accounting under any sequence of map, unmap, VADDR updates, CPU stores, device DMA, group detach, re-attach and close', () => {
  it('keeps locked_vm equal to what the live dmas charged and pins equal to their pins after every call, never exceeds dma_entry_limit, and lets no DMA reach a page nobody pins', () => {
    const LIMIT = 3;
    fc.assert(fc.property(fc.array(opArb, { maxLength: 25 }), fc.boolean(), (ops, v2) => {
      const lines: object[] = [ram(64n * 4096n), { ...ram(64n * 4096n, true), addr: hex(RAM + 0x100000n) }, ...openContainer(), setIommu(v2 ? 3 : 1)];
      /** Per line: the IOVA a `dma` line reaches, to judge its outcome. */
      const dmaAt = new Map<number, bigint>();
      for (const o of ops) {
        const iova = BigInt(o.op === 'map' || o.op === 'unmap' || o.op === 'touch' || o.op === 'vaddr' || o.op === 'dma' ? o.slot : 0) * 0x4000n;
        if (o.op === 'map') lines.push(map(iova, BigInt(o.pages) * 4096n, RAM + (o.shared ? 0x100000n : 0n) + iova, o.write ? RW : ['VFIO_DMA_MAP_FLAG_READ']));
        else if (o.op === 'unmap') lines.push(o.all ? unmap(0n, 0n, ['VFIO_DMA_UNMAP_FLAG_ALL']) : unmap(iova, BigInt(o.pages) * 4096n));
        else if (o.op === 'touch') lines.push({ op: 'mem_write', addr: hex(RAM + iova), data: 'ff' });
        else if (o.op === 'vaddr') lines.push(o.invalidate ? unmap(iova, BigInt(o.pages) * 4096n, ['VFIO_DMA_UNMAP_FLAG_VADDR'])
          : map(iova, BigInt(o.pages) * 4096n, RAM + 0x100000n + iova, ['VFIO_DMA_MAP_FLAG_VADDR']));
        else if (o.op === 'dma') {
          dmaAt.set(lines.length, iova);
          lines.push({ op: 'dma', dev: '/dev/vfio/devices/vfio0', iova: hex(iova), length: 8, write: o.write, ...(o.write ? { data: '5a5a5a5a5a5a5a5a' } : {}) });
        } else if (o.op === 'detach') lines.push({ op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_UNSET_CONTAINER' });
        else if (o.op === 'close') lines.push({ op: 'close', fd: o.container ? '$c' : '$g' });
        else lines.push({ op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_SET_CONTAINER', arg: '$c' }, setIommu(v2 ? 3 : 1));
      }
      const reached = new Map<number, boolean>();
      const p = play(header({ limits: { memlock: 'unlimited', dma_entry_limit: LIMIT } }), lines, (st, i) => {
        checkBalance(st, LIMIT);
        const at = dmaAt.get(i);
        if (at !== undefined) reached.set(i, inLiveDma(st, at));
      });
      // A device DMA succeeds only inside a live vfio_dma (whose pages checkBalance showed pinned).
      for (const [i, inside] of reached) if (p.outcomes[i] === 'ok') expect(inside, `line ${i + 2}: a DMA outside every vfio_dma succeeded`).toBe(true);
      // Closing every fd leaves nothing charged, pinned or mapped.
      const q = play(header(), [...lines, { op: 'close', fd: '$g' }, { op: 'close', fd: '$c' }]);
      expect([q.st.accounting.mmLockedVm, q.st.mm.pins.isEmpty, q.st.domains.size]).toEqual([0, true, 0]);
    }), { seed: SEED, numRuns: 150 });
  });
});

describe('a P2P mapping when the exporting device goes away', () => {
  const lines = (): object[] => [...openContainer(), setIommu(),
    { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_GET_DEVICE_FD', arg: '0000:01:00.0', ret: '$d' },
    { op: 'mmap', addr: '0x7e0000000000', length: hex(MB), prot: ['PROT_READ', 'PROT_WRITE'], flags: ['MAP_SHARED', 'MAP_FIXED'], fd: '$d', offset: 0 },
    map(0x100000000n, MB, 0x7e0000000000n)];
  it('a reset zaps the BAR mapping, keeps the IOMMU mapping, and reports a StaleDeviceMapping warning', () => {
    const p = play(header(), [...lines(), { op: 'ioctl', fd: '$d', cmd: 'VFIO_DEVICE_RESET', ret: 0 },
      { op: 'dma', dev: '/dev/vfio/devices/vfio0', iova: '0x100000000', length: 8, write: false, ret: 0 }]);
    expect(p.r.divergences).toEqual([]);
    expect(p.events.filter((e) => e.type === 'MmuNotifierInvalidate').map((e) => e.type === 'MmuNotifierInvalidate' && e.reason)).toEqual(['vfio_zap']);
    expect(p.r.warnings.map((w) => [w.line, w.kind])).toEqual([[9, 'StaleDeviceMapping']]);
  });
  it('clearing PCI_COMMAND.MEMORY zaps the BAR and warns; a MAP of the BAR is EFAULT until MEMORY is set again', () => {
    const cmd = (v: string): object => ({ op: 'pwrite', fd: '$d', offset: '0x70000000004', data: v, ret: 2 });
    const p = play(header(), [...lines(), cmd('0400'), map(0x200000000n, MB, 0x7e0000000000n), cmd('0600'), map(0x200000000n, MB, 0x7e0000000000n)]);
    expect(p.r.divergences).toEqual([]);
    expect(p.outcomes.slice(-4)).toEqual(['ok', 'EFAULT', 'ok', 'ok']);
    expect(p.r.warnings.map((w) => w.line)).toEqual([9]);
  });
  it('closing the device fd releases it only once its BAR is unmapped too, and only then warns', () => {
    const p = play(header(), [...lines(), { op: 'close', fd: '$d' }, { op: 'munmap', addr: '0x7e0000000000', length: hex(MB) }]);
    expect(p.r.warnings.map((w) => w.line)).toEqual([10]);
    const q = play(header(), [...lines(), unmap(0x100000000n, MB), { op: 'close', fd: '$d' }, { op: 'munmap', addr: '0x7e0000000000', length: hex(MB) }]);
    expect(q.r.warnings).toEqual([]);
  });
});

describe('the VADDR flags (live update)', () => {
  const V = ['VFIO_DMA_UNMAP_FLAG_VADDR'];
  const vmap = (iova: bigint, size: bigint, vaddr: bigint): object =>
    ({ op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_MAP_DMA', arg: { flags: ['VFIO_DMA_MAP_FLAG_VADDR'], vaddr: hex(vaddr), iova: hex(iova), size: hex(size) } });
  it('UNMAP(VADDR) keeps mapping, pins and charge; a second one is EINVAL; attaching a group is EBUSY until MAP(VADDR)', () => {
    const p = play(header(), [ram(4n * MB), ...openContainer(), setIommu(), map(0n, MB),
      { ...unmap(0n, MB, V) as Record<string, unknown>, ret: 0, out: { size: hex(MB) } }, unmap(0n, MB, V),
      { op: 'open', path: '/dev/vfio/16', ret: '$g2' }, { op: 'ioctl', fd: '$g2', cmd: 'VFIO_GROUP_SET_CONTAINER', arg: '$c' },
      map(0n, MB), vmap(0n, 2n * MB, RAM + MB), vmap(MB, MB, RAM + MB), vmap(0n, MB, RAM + MB),
      { op: 'ioctl', fd: '$g2', cmd: 'VFIO_GROUP_SET_CONTAINER', arg: '$c' }]);
    expect(p.r.divergences).toEqual([]);
    expect(p.outcomes.slice(7)).toEqual(['EINVAL', 'ok', 'EBUSY', 'EEXIST', 'EINVAL', 'ENOENT', 'ok', 'ok']);
    const dma = [...p.st.containers.get(1)!.iommu!.dmas.inOrder()].map((n) => n.value);
    expect(dma.map((d) => [d.vaddr, d.vaddrInvalid, d.lockedVm])).toEqual([[RAM + MB, false, 256]]);
    expect(p.st.accounting.mmLockedVm).toBe(256);
  });
});

describe('a group fd closed while its device fds are open', () => {
  it('stays in the container until the last device fd closes, then takes the mappings with it', () => {
    const base = [ram(4n * MB), ...openContainer(), setIommu(), { op: 'ioctl', fd: '$g', cmd: 'VFIO_GROUP_GET_DEVICE_FD', arg: '0000:01:00.0', ret: '$d' },
      map(0n, MB), { op: 'close', fd: '$g' }];
    const p = play(header(), [...base, { op: 'dma', dev: '/dev/vfio/devices/vfio0', iova: 0, length: 8, write: false, ret: 0 }]);
    expect(p.r.divergences).toEqual([]);
    expect(dmaCount(p.st)).toBe(1);
    const q = play(header(), [...base, { op: 'close', fd: '$d' }]);
    expect([dmaCount(q.st), q.st.accounting.mmLockedVm, q.st.containers.get(1)!.groups]).toEqual([0, 0, []]);
  });
});
