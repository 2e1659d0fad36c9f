/**
 * dma-buf revocation through replay, for both exporters of hw/dmabuf.ts: the selftest's (IOMMU_TEST_OP_DMABUF_GET,
 * revoked by IOMMU_TEST_OP_DMABUF_REVOKE) and vfio-pci's (a GPU BAR exported by VFIO_DEVICE_FEATURE DMA_BUF, revoked
 * by VFIO_DEVICE_RESET and by a PCI_COMMAND write clearing MEMORY). IOAS_MAP_FILE maps a buffer uncharged and only
 * inside its size; a revocation unmaps it from every domain and flushes the IOTLB (and, for a BAR, zaps its CPU
 * mappings first), the area stays dead (also for domains added later) until IOAS_UNMAP, and a revoked buffer cannot
 * be mapped again until its exporter restores it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../../src/events/domain.js';
import type { State } from '../../src/projections/state.js';
import { featureDmaBuf, NIC, P2P_HEADER, pciCommand, vfioSetup } from '../support/p2p.js';
import { replayOps, SELFTEST_HEADER } from '../support/replay.js';

const SEED = Number(process.env['FC_SEED'] ?? 0xd3ab);
console.info(`dmabuf.test.ts: fast-check seed ${SEED}`);

const LEN = 16384;
/** One exporter: how to set up a peer and a buffer, and the steps that revoke or restore it. */
interface Exporter {
  readonly name: string;
  readonly header: object;
  readonly setup: object[];
  /** The peer device's `dma` target and the device to add a second domain for. */
  readonly peer: string;
  readonly idev: string;
  /** What the exporter can do: `kills` whether it revokes (killing a live area), `after` the buffer's revoked state after it (undefined: unchanged). */
  readonly steps: readonly { readonly line: object; readonly kills: boolean; readonly after: boolean | undefined }[];
}

const selftest: Exporter = {
  name: 'the selftest exporter',
  header: SELFTEST_HEADER,
  setup: [
    { op: 'open', path: '/dev/iommu', ret: '$fd' },
    { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: '$ioas' } },
    { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN', id: '$ioas', mock_domain: {} }, ret: 0, out: { mock_domain: { out_stdev_id: '$stdev', out_idev_id: '$idev' } } },
    { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_DMABUF_GET', dmabuf_get: { length: LEN, open_flags: 0 } }, ret: '$dfd' },
  ],
  peer: '$stdev', idev: '$idev',
  steps: [1, 0].map((revoked) => ({
    line: { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_DMABUF_REVOKE', dmabuf_revoke: { dmabuf_fd: '$dfd', revoked } }, ret: 0 },
    kills: revoked === 1, after: revoked === 1,
  })),
};

const vfio: Exporter = {
  name: 'a VFIO GPU BAR',
  header: P2P_HEADER,
  setup: [...vfioSetup, featureDmaBuf(LEN, { ret: '$dfd' })],
  peer: NIC, idev: '$nicdev',
  steps: [
    // The reset revokes and, memory decode being on, restores; with decode off the buffer stays revoked.
    { line: { op: 'ioctl', fd: '$gpu', cmd: 'VFIO_DEVICE_RESET', ret: 0 }, kills: true, after: undefined },
    { line: pciCommand(false), kills: true, after: true },
    { line: pciCommand(true), kills: false, after: false },
  ],
};

const mapAt = (iova: number, over: object = { ret: 0 }): object => ({
  op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_MAP_FILE',
  arg: { flags: ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_READABLE', 'IOMMU_IOAS_MAP_WRITEABLE'], ioas_id: '$ioas', fd: '$dfd', start: 0, length: LEN, iova: `0x${iova.toString(16)}` }, ...over,
});
const unmapAt = (iova: number): object => ({ op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_UNMAP', arg: { ioas_id: '$ioas', iova: `0x${iova.toString(16)}`, length: LEN }, ret: 0, out: { length: LEN } });
const dma = (dev: string, iova: number, ok: boolean): object => ({ op: 'dma', dev, iova: `0x${iova.toString(16)}`, length: 4, ...(ok ? { ret: 0 } : { errno: 'EFAULT' }) });

/** The host physical ranges of a dma-buf's memory: the selftest memfd's frames, or the BAR range. */
function memoryOf(st: State, id: number): (readonly [bigint, bigint])[] {
  const d = st.dmabufs.get(id)!;
  const ps = BigInt(st.pageSize);
  if (d.memfd === undefined) return [[d.phys, d.phys + d.size - 1n]];
  return [...st.mm.memfds.get(d.memfd)!.cache.runs()].map((r) => [BigInt(r.value) * ps, BigInt(r.value + r.last - r.start + 1) * ps - 1n] as const);
}

/** Every domain PTE and IOTLB entry that still reaches a dma-buf's memory. */
function reachesDmabuf(st: State): string[] {
  const out: string[] = [];
  for (const [id] of st.dmabufs) {
    const ranges = memoryOf(st, id);
    const hit = (p0: bigint, p1: bigint): boolean => ranges.some(([f0, f1]) => p0 <= f1 && p1 >= f0);
    for (const d of st.domains.values()) {
      for (const n of d.map.inOrder()) if (hit(n.value, n.value + (n.last - n.start))) out.push(`domain ${d.id} maps IOVA 0x${n.start.toString(16)}`);
      for (const n of d.iotlb.inOrder()) if (hit(n.value.phys, n.value.phys + (n.last - n.start))) out.push(`domain ${d.id} IOTLB caches IOVA 0x${n.start.toString(16)}`);
    }
  }
  return out;
}

/**
 * CPU mappings of revoked BAR memory: every revocation of a BAR dma-buf must come after an mmu_notifier invalidation,
 * in the same call, of each BAR VMA of its device (the model inserts no BAR PTE, so the zap is all there is to check).
 */
function unzappedRevocations(st: State, entries: readonly LogEntry[]): string[] {
  const out: string[] = [];
  const bars = st.mm.vmas.filter((v) => v.pfnmap !== undefined);
  entries.forEach((e, i) => {
    if (e.ev.type !== 'Revoke' || !e.ev.revoked) return;
    const dev = st.dmabufs.get(e.ev.dmabuf)?.dev;
    if (dev === undefined) return;
    const before = entries.slice(0, i).filter((x) => x.line === e.line);
    for (const v of bars.filter((b) => b.pfnmap === dev))
      if (!before.some((x) => x.ev.type === 'MmuNotifierInvalidate' && x.ev.start <= v.start && x.ev.last >= v.last))
        out.push(`line ${e.line}: dma-buf ${e.ev.dmabuf} revoked while the BAR VMA [0x${v.start.toString(16)}, 0x${v.last.toString(16)}] was not zapped`);
  });
  return out;
}

describe.each([selftest, vfio])('a revoked dma-buf of $name', (x) => {
  const [kill] = x.steps;
  it('is unmapped from the domain, faults device DMA, refuses new maps while revoked, and keeps its IOVA until IOAS_UNMAP', () => {
    const revokedNow = x === selftest ? kill!.line : pciCommand(false);
    const restore = x === selftest ? x.steps[1]!.line : pciCommand(true);
    const { problems, st, entries } = replayOps([
      ...x.setup,
      mapAt(0x1000000), dma(x.peer, 0x1000000, true),
      revokedNow,
      dma(x.peer, 0x1000000, false),
      mapAt(0x2000000, { errno: 'ENODEV' }),
      mapAt(0x1000000, { errno: 'ENODEV' }),
      unmapAt(0x1000000),
      restore,
      mapAt(0x1000000), dma(x.peer, 0x1000000, true),
    ], x.header);
    expect(problems).toEqual([]);
    expect(st.dmabufs.size).toBe(1);
    expect(entries.filter((e) => e.ev.type === 'P2pUnmap').length).toBe(1);
    expect(unzappedRevocations(st, entries)).toEqual([]);
  });

  it('is reached by no domain mapping, no IOTLB entry and no CPU mapping after a revocation, whatever came before and after', () => {
    const step = fc.oneof(
      fc.constant({ k: 'dma' as const }),
      fc.constant({ k: 'domain' as const }),
      fc.constant({ k: 'remap' as const }),
      fc.nat({ max: x.steps.length - 1 }).map((i) => ({ k: 'exporter' as const, i })),
    );
    fc.assert(fc.property(fc.array(step, { maxLength: 8 }), (steps) => {
      // The model of the kernel this test holds the replay to: is an area mapped at 0x1000000, is it dead, is the buffer revoked.
      let mapped = true, dead = false, revoked = false;
      const lines: object[] = [...x.setup, mapAt(0x1000000)];
      for (const s of steps) {
        if (s.k === 'dma') lines.push(dma(x.peer, 0x1000000 + 4096, mapped && !dead));
        else if (s.k === 'domain') lines.push({ op: 'ioctl', fd: '$fd', cmd: 'IOMMU_HWPT_ALLOC', arg: { dev_id: x.idev, pt_id: '$ioas' }, ret: 0 });
        else if (s.k === 'remap') {
          if (mapped) lines.push(unmapAt(0x1000000));
          lines.push(mapAt(0x1000000, revoked ? { errno: 'ENODEV' } : { ret: 0 }));
          mapped = !revoked;
          dead = false;
        } else {
          const e = x.steps[s.i]!;
          lines.push(e.line);
          if (e.kills && mapped) dead = true;
          revoked = e.after ?? revoked;
        }
      }
      const { problems, st, entries } = replayOps(lines, x.header);
      expect(problems).toEqual([]);
      if (mapped && !dead) expect(reachesDmabuf(st).length).toBeGreaterThan(0);
      else expect(reachesDmabuf(st)).toEqual([]);
      expect(unzappedRevocations(st, entries)).toEqual([]);
    }), { seed: SEED, numRuns: 80 });
  });
});
