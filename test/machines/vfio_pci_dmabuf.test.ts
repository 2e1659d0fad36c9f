/**
 * VFIO_DEVICE_FEATURE and its DMA_BUF export (machines/vfio_pci_dmabuf.ts): each refusal of
 * `vfio_ioctl_device_feature`, `vfio_check_feature` and `vfio_pci_core_feature_dma_buf` in the kernel's order, a
 * buffer created revoked while memory decode is off, the one-range rule of the iommufd import, and the device's last
 * close revoking its dma-bufs for good.
 */
import { describe, expect, it } from 'vitest';
import { featureDmaBuf, GPU, NIC, P2P_HEADER, pciCommand, vfioSetup } from '../support/p2p.js';
import { replayOps } from '../support/replay.js';

const MB = 0x100000;
const GET_DMA_BUF = ['VFIO_DEVICE_FEATURE_GET', 'VFIO_DEVICE_FEATURE_DMA_BUF'];
const mapFile = (over: object, iova = '0x1000000'): object => ({
  op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_MAP_FILE',
  arg: { flags: ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_READABLE', 'IOMMU_IOAS_MAP_WRITEABLE'], ioas_id: '$ioas', fd: '$buf', start: 0, length: 0x4000, iova },
  ...over,
});
const why = (entries: ReturnType<typeof replayOps>['entries'], line: number): string =>
  entries.filter((e) => e.line === line && e.ev.type === 'CallCompleted').map((e) => (e.ev as { why: string }).why).join('');

describe('VFIO_DEVICE_FEATURE DMA_BUF', () => {
  it.each([
    ['argsz below the flags', featureDmaBuf(MB, { errno: 'EINVAL' }, { argsz: 7 }), 'argsz 7 < 8'],
    ['a flag above SET', { ...featureDmaBuf(MB, { errno: 'EINVAL' }), arg: { argsz: 40, flags: (1 << 19) | (1 << 17) | 11 } }, 'unknown flags 0xa000b'],
    ['GET and SET without PROBE', featureDmaBuf(MB, { errno: 'EINVAL' }, { flags: ['VFIO_DEVICE_FEATURE_GET', 'VFIO_DEVICE_FEATURE_SET', 'VFIO_DEVICE_FEATURE_DMA_BUF'] }), 'GET and SET together'],
    ['SET', featureDmaBuf(MB, { errno: 'EINVAL' }, { flags: ['VFIO_DEVICE_FEATURE_SET', 'VFIO_DEVICE_FEATURE_DMA_BUF'] }), 'GET only'],
    ['neither GET nor SET', featureDmaBuf(MB, { errno: 'EINVAL' }, { flags: ['VFIO_DEVICE_FEATURE_DMA_BUF'] }), 'neither GET nor SET'],
    ['a payload shorter than the struct', featureDmaBuf(MB, { errno: 'EINVAL' }, { argsz: 23 }), '15 payload bytes < 16'],
    ['no range', featureDmaBuf(MB, { errno: 'EINVAL' }, { ranges: [] }), 'nr_ranges 0'],
    ['flags in the payload', featureDmaBuf(MB, { errno: 'EINVAL' }, { extra: 1 }), 'flags 0x1 is not 0'],
    ['the ROM region, before its ranges are looked at', featureDmaBuf(MB, { errno: 'ENODEV' }, { index: 6, ranges: [[1, 0]] }), 'region 6 is not a BAR'],
    ['an unaligned range', featureDmaBuf(MB, { errno: 'EINVAL' }, { ranges: [[0x800, 0x1000]] }), 'validate_dmabuf_input: range 0'],
    ['an empty range after a good one', featureDmaBuf(MB, { errno: 'EINVAL' }, { ranges: [[0, 0x1000], [0x1000, 0]] }), 'range 1'],
    ['a BAR the header does not declare', featureDmaBuf(MB, { errno: 'EINVAL' }, { index: 1 }), 'no P2P provider'],
    ['a page of a BAR smaller than a page', featureDmaBuf(0x1000, { errno: 'EINVAL' }, { index: 2 }), 'ends past BAR 2'],
    ['a range past the end of the BAR', featureDmaBuf(MB, { errno: 'EINVAL' }, { ranges: [[0x1000, MB]] }), 'ends past BAR 0'],
  ])('refuses %s', (_what, line, because) => {
    const { problems, entries } = replayOps([...vfioSetup, line], P2P_HEADER);
    expect(problems).toEqual([]);
    expect(why(entries, vfioSetup.length + 2)).toContain(because);
  });

  it('answers a PROBE with 0 and no fd, an unknown feature with ENOTTY, and exports whole BARs and parts of them', () => {
    const { problems, st } = replayOps([
      ...vfioSetup,
      featureDmaBuf(MB, { ret: 0 }, { flags: ['VFIO_DEVICE_FEATURE_PROBE', ...GET_DMA_BUF] }),
      { op: 'ioctl', fd: '$gpu', cmd: 'VFIO_DEVICE_FEATURE', arg: { argsz: 8, flags: ['VFIO_DEVICE_FEATURE_GET', 'VFIO_DEVICE_FEATURE_BUS_MASTER'] }, errno: 'ENOTTY' },
      { op: 'ioctl', fd: '$gpu', cmd: 'VFIO_DEVICE_FEATURE', arg: { argsz: 8, flags: 0x20000 | 12 }, errno: 'ENOTTY' },
      featureDmaBuf(MB, { ret: '$whole' }),
      featureDmaBuf(MB, { ret: '$parts' }, { ranges: [[0, 0x1000], [0x10000, 0x2000]] }),
    ], P2P_HEADER);
    expect(problems).toEqual([]);
    expect([...st.dmabufs.values()].map((d) => [d.size, d.nrRanges, d.dev])).toEqual([[BigInt(MB), 1, GPU], [0x3000n, 2, GPU]]);
  });

  it('is unknown to a kernel before 6.19 and refused on a device fd not bound yet', () => {
    const unbound = replayOps([{ op: 'open', path: GPU, ret: '$gpu' }, featureDmaBuf(MB, { errno: 'EINVAL' })], P2P_HEADER);
    expect(unbound.problems).toEqual([]);
    const old = replayOps([...vfioSetup, featureDmaBuf(MB, { errno: 'ENOTTY' })], { ...P2P_HEADER, kernel: '6.18' });
    expect(old.problems).toEqual([]);
  });

  it('is created revoked while memory decode is off, and maps once MEMORY is set again', () => {
    const { problems } = replayOps([
      ...vfioSetup, pciCommand(false), featureDmaBuf(MB, { ret: '$buf' }),
      mapFile({ errno: 'ENODEV' }), pciCommand(true), mapFile({ ret: 0 }),
      { op: 'dma', dev: NIC, iova: '0x1000000', length: 4, ret: 0 },
    ], P2P_HEADER);
    expect(problems).toEqual([]);
  });

  it('cannot be imported by iommufd with more than one range, nor revoked by the selftest', () => {
    const { problems } = replayOps([
      ...vfioSetup, featureDmaBuf(MB, { ret: '$buf' }, { ranges: [[0, 0x2000], [0x4000, 0x2000]] }), mapFile({ errno: 'EOPNOTSUPP' }),
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_DMABUF_REVOKE', dmabuf_revoke: { dmabuf_fd: '$buf', revoked: 1 } }, errno: 'EOPNOTSUPP' },
    ], { ...P2P_HEADER, iommufd_test: true });
    expect(problems).toEqual([]);
  });

  it('is revoked for good by the device\'s last close: its BAR mmap keeps the device open until munmap', () => {
    const { problems, entries, st } = replayOps([
      ...vfioSetup, featureDmaBuf(MB, { ret: '$buf' }), mapFile({ ret: 0 }),
      { op: 'close', fd: '$gpu', ret: 0 },
      { op: 'dma', dev: NIC, iova: '0x1000000', length: 4, ret: 0 },
      { op: 'munmap', addr: '0x7f2000000000', length: '0x100000', ret: 0 },
      { op: 'dma', dev: NIC, iova: '0x1000000', length: 4, errno: 'EFAULT' },
      mapFile({ errno: 'ENODEV' }, '0x2000000'),
    ], P2P_HEADER);
    expect(problems).toEqual([]);
    expect(entries.filter((e) => e.ev.type === 'P2pUnmap').map((e) => e.line)).toEqual([vfioSetup.length + 6]);
    expect([...st.dmabufs.values()].map((d) => [d.revoked, d.orphaned])).toEqual([[true, true]]);
  });
});

describe('the dma-buf fd VFIO_DEVICE_FEATURE returns', () => {
  it('is the one the trace saw, as for every fd-returning call (QEMU with hundreds of open files gets fd 306)', async () => {
    const { readFileSync } = await import('node:fs');
    const { Replayer } = await import('../../src/replay/engine.js');
    const installed: number[] = [];
    const r = new Replayer((e) => { if (e.ev.type === 'FdInstalled') installed.push(e.ev.fd); });
    readFileSync('examples/gpu-bar-dmabuf-reset.jsonl', 'utf8').split('\n').forEach((l, i) => {
      if (l.trim() === '') return;
      const o = JSON.parse(l) as Record<string, unknown>;
      if (o.cmd === 'VFIO_DEVICE_FEATURE' && o.ret === '$gpubuf') o.ret = 306;
      r.feedLine(JSON.stringify(o).replaceAll('"$gpubuf"', '306'), i + 1);
    });
    expect(r.divergences).toEqual([]);
    expect(installed).toContain(306);
  });
});
