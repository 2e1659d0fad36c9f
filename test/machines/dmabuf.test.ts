/**
 * The selftest's dma-buf through replay: IOAS_MAP_FILE maps it uncharged and only inside its size; a revocation
 * unmaps it from every domain and flushes the IOTLB, the area stays dead (also for domains added later) until
 * IOAS_UNMAP, and a revoked buffer cannot be mapped again.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { State } from '../../src/projections/state.js';
import { replayOps } from '../support/replay.js';

const SEED = Number(process.env['FC_SEED'] ?? 0xd3ab);
console.info(`dmabuf.test.ts: fast-check seed ${SEED}`);

const LEN = 16384;
const setup: object[] = [
  { op: 'open', path: '/dev/iommu', ret: '$fd' },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: '$ioas' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN', id: '$ioas', mock_domain: {} }, ret: 0, out: { mock_domain: { out_stdev_id: '$stdev', out_idev_id: '$idev' } } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_DMABUF_GET', dmabuf_get: { length: LEN, open_flags: 0 } }, ret: '$dfd' },
];
const mapAt = (iova: number, over: object = { ret: 0 }): object => ({
  op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_MAP_FILE',
  arg: { flags: ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_READABLE', 'IOMMU_IOAS_MAP_WRITEABLE'], ioas_id: '$ioas', fd: '$dfd', start: 0, length: LEN, iova: `0x${iova.toString(16)}` }, ...over,
});
const revoke = (revoked: number): object => ({ op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_DMABUF_REVOKE', dmabuf_revoke: { dmabuf_fd: '$dfd', revoked } }, ret: 0 });
const dma = (iova: number, ok: boolean): object => ({ op: 'dma', dev: '$stdev', iova: `0x${iova.toString(16)}`, length: 4, ...(ok ? { ret: 0 } : { errno: 'EFAULT' }) });

/** Every physical byte range a domain's page table or IOTLB still reaches inside the dma-buf's memory. */
function reachesDmabuf(st: State): string[] {
  const ps = BigInt(st.pageSize);
  const out: string[] = [];
  for (const [memfd] of st.dmabufs) {
    const frames = [...st.mm.memfds.get(memfd)!.cache.runs()].map((r) => [BigInt(r.value) * ps, BigInt(r.value + r.last - r.start + 1) * ps - 1n] as const);
    const hit = (p0: bigint, p1: bigint): boolean => frames.some(([f0, f1]) => p0 <= f1 && p1 >= f0);
    for (const d of st.domains.values()) {
      for (const n of d.map.inOrder()) if (hit(n.value, n.value + (n.last - n.start))) out.push(`domain ${d.id} maps IOVA 0x${n.start.toString(16)}`);
      for (const n of d.iotlb.inOrder()) if (hit(n.value.phys, n.value.phys + (n.last - n.start))) out.push(`domain ${d.id} IOTLB caches IOVA 0x${n.start.toString(16)}`);
    }
  }
  return out;
}

describe('a revoked dma-buf', () => {
  it('is unmapped from the domain, faults device DMA, refuses new maps, and keeps its IOVA until IOAS_UNMAP', () => {
    const { problems, st } = replayOps([
      ...setup,
      mapAt(0x1000000), dma(0x1000000, true),
      revoke(1),
      dma(0x1000000, false),
      mapAt(0x2000000, { errno: 'ENODEV' }),
      mapAt(0x1000000, { errno: 'ENODEV' }),
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_UNMAP', arg: { ioas_id: '$ioas', iova: '0x1000000', length: LEN }, ret: 0, out: { length: LEN } },
      revoke(0),
      mapAt(0x1000000), dma(0x1000000, true),
    ]);
    expect(problems).toEqual([]);
    expect(st.dmabufs.size).toBe(1);
  });

  it('is reached by no domain mapping and no IOTLB entry after a revocation, whatever came before and after', () => {
    const step = fc.oneof(
      fc.constant({ k: 'dma' as const }),
      fc.constant({ k: 'domain' as const }),
      fc.constant({ k: 'revoke' as const }),
    );
    fc.assert(fc.property(fc.array(step, { maxLength: 8 }), (steps) => {
      let revoked = false;
      const lines: object[] = [...setup, mapAt(0x1000000)];
      for (const s of steps) {
        if (s.k === 'dma') lines.push(dma(0x1000000 + 4096, !revoked));
        else if (s.k === 'domain') lines.push({ op: 'ioctl', fd: '$fd', cmd: 'IOMMU_HWPT_ALLOC', arg: { dev_id: '$idev', pt_id: '$ioas' }, ret: 0 });
        else { lines.push(revoke(1)); revoked = true; }
      }
      const { problems, st } = replayOps(lines);
      expect(problems).toEqual([]);
      if (revoked) expect(reachesDmabuf(st)).toEqual([]);
      else expect(reachesDmabuf(st).length).toBeGreaterThan(0);
    }), { seed: SEED, numRuns: 60 });
  });
});
