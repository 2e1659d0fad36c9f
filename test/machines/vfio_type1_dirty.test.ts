import { describe, expect, it } from 'vitest';
import { header, hex, map, MB, openContainer, play, RAM, ram, setIommu, unmap } from '../support/type1.js';

const PAGE = 0x1000n;
/** The bitmap buffer: one page of private anonymous memory. */
const BMP = 0x7f1000000000n;
const bmpVma = { op: 'mmap', addr: hex(BMP), length: hex(PAGE), prot: ['PROT_READ', 'PROT_WRITE'], flags: ['MAP_PRIVATE', 'MAP_ANONYMOUS', 'MAP_FIXED'] };
const dirty = (flags: string | number, extra: Record<string, unknown> = {}): object =>
  ({ op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_DIRTY_PAGES', arg: { flags: typeof flags === 'string' ? [`VFIO_IOMMU_DIRTY_PAGES_FLAG_${flags}`] : flags, ...extra } });
const get = (iova: bigint, size: bigint, data: unknown = hex(BMP), pgsize = 4096, bsize = 8): object =>
  dirty('GET_BITMAP', { argsz: 48, data: { iova: hex(iova), size: hex(size), bitmap: { pgsize, size: bsize, data } } });
const unmapDirty = (iova: bigint, size: bigint, data: unknown = hex(BMP), pgsize = 4096, argsz = 48): object =>
  ({ op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_UNMAP_DMA', arg: { argsz, flags: ['VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP'], iova: hex(iova), size: hex(size), data: { pgsize, size: 8, data } } });
const readBmp = (bytes: string): object => ({ op: 'mem_read', addr: hex(BMP), length: bytes.length / 2, out: { data: bytes } });
const clearBmp = { op: 'mem_write', addr: hex(BMP), data: '0000000000000000' };
/** A v2 container with two one-page dmas at IOVA 0 and 4 KiB. */
const twoDmas = (): object[] => [ram(MB), bmpVma, ...openContainer(), setIommu(), map(0n, PAGE), map(PAGE, PAGE)];

describe('VFIO_IOMMU_DIRTY_PAGES', () => {
  it('checks in the kernel order: v1 (EACCES), unknown or several flags (EINVAL), GET_BITMAP before START (EINVAL); START and STOP repeat as success', () => {
    const v1 = play(header(), [ram(MB), ...openContainer(), setIommu(1), dirty('START')]);
    expect(v1.outcomes.at(-1)).toBe('EACCES');
    const p = play(header(), [...twoDmas(), dirty(0), dirty(8), dirty(3), get(0n, 2n * PAGE), dirty('START'), dirty('START'), dirty('STOP'), dirty('STOP'), get(0n, 2n * PAGE)]);
    expect(p.outcomes.slice(8)).toEqual(['EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'ok', 'ok', 'ok', 'ok', 'EINVAL']);
    expect(p.st.containers.get(1)!.iommu!.dirtyTracking).toBe(false);
  });

  it('refuses a short argsz, a bitmap too small for the range, a pgsize other than the IOMMU page, an unaligned range, a bitmap past the user address space, and a range bisecting a mapping', () => {
    const p = play(header(), [...twoDmas(), map(0x10000n, 2n * PAGE, RAM + 0x10000n), dirty('START'), dirty('GET_BITMAP', { argsz: 47 }), get(0n, 0x41000n, hex(BMP), 4096, 8),
      get(0n, 2n * PAGE, hex(BMP), 0x2000), get(0x800n, PAGE), get(0n, 2n * PAGE, '0x7ffffffff000'), get(0x10000n, PAGE), get(0n, PAGE)]);
    expect(p.outcomes.slice(10)).toEqual(['EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'EINVAL', 'ok']);
    expect(p.r.divergences).toEqual([]);
  });

  it('answers EOVERFLOW for a wrapping range from v6.18 and EINVAL before', () => {
    const lines = [...twoDmas(), dirty('START'), get(0xfffffffffffff000n, 0x2000n)];
    expect(play(header(), lines).outcomes.at(-1)).toBe('EOVERFLOW');
    expect(play(header({ kernel: '6.12' }), lines).outcomes.at(-1)).toBe('EINVAL');
  });

  it('reports every page of every dma dirty, one bit per IOMMU page from the range start, into user memory', () => {
    const p = play(header(), [...twoDmas(), map(0x40000n, 3n * PAGE, RAM + 0x40000n), dirty('START'), get(0x40000n, 4n * PAGE), readBmp('0700000000000000'),
      clearBmp, get(0n, 2n * PAGE), readBmp('0300000000000000')]);
    expect(p.r.divergences).toEqual([]);
  });

  it('leaves the shifted bits past an unaligned dma in its bitmap, so each later report marks one more page past it', () => {
    // Dma B sits at bit 1 of the word: bitmap_shift_left and the whole-word OR put a bit past B's own bit into its
    // kernel bitmap, bitmap_clear clears only B's bit, and the next report shifts it into the user's word again.
    const p = play(header(), [...twoDmas(), dirty('START'), get(0n, 2n * PAGE), readBmp('0300000000000000'), clearBmp,
      get(0n, 2n * PAGE), readBmp('0700000000000000'), { ...get(0n, 2n * PAGE, '0000000000000000') as Record<string, unknown>, out: { data: { bitmap: { data: '0f00000000000000' } } } },
      dirty('STOP'), dirty('START'), clearBmp, get(0n, 2n * PAGE), readBmp('0300000000000000')]);
    expect(p.r.divergences).toEqual([]);
  });

  it('takes the range from the raw tail bytes a recorder writes as well as from the named data member', () => {
    const raw = Buffer.alloc(40);
    raw.writeBigUInt64LE(0n, 0); raw.writeBigUInt64LE(2n * PAGE, 8); raw.writeBigUInt64LE(4096n, 16); raw.writeBigUInt64LE(8n, 24); raw.writeBigUInt64LE(BMP, 32);
    const p = play(header(), [...twoDmas(), dirty('START'), dirty('GET_BITMAP', { argsz: 48, tail: raw.toString('hex') }), readBmp('0300000000000000')]);
    expect(p.r.divergences).toEqual([]);
  });

  it('answers EFAULT when the bitmap is not writable, after the dmas before the fault were reported', () => {
    const p = play(header(), [...twoDmas(), dirty('START'), get(0n, 2n * PAGE, '0x7f2000000000')]);
    expect(p.outcomes.at(-1)).toBe('EFAULT');
  });

  it('refuses to START when a dma has more pages than a bitmap can count, and a MAP that large while tracking', () => {
    const huge = 0x80000000n * PAGE;
    const big = { op: 'mmap', addr: '0x100000000000', length: hex(huge), prot: ['PROT_READ', 'PROT_WRITE'], flags: ['MAP_SHARED', 'MAP_ANONYMOUS', 'MAP_FIXED'] };
    const h = header({ devices: [{ ...(header().devices as Record<string, unknown>[])[0], iommu: { pgsize_bitmap: '0x40201000', aperture: { start: 0, last: '0xffffffffffff' }, reserved: [], dirty_tracking: false, max_pasids: 0 } }] });
    const bigMap = map(0x100000000000n, huge, 0x100000000000n);
    const p = play(h, [big, ...openContainer(), setIommu(), bigMap, dirty('START')]);
    expect(p.outcomes.slice(-2)).toEqual(['ok', 'EINVAL']);
    const q = play(h, [big, ...openContainer(), setIommu(), dirty('START'), bigMap]);
    expect(q.outcomes.slice(-2)).toEqual(['ok', 'EINVAL']);
    expect([q.st.accounting.mmLockedVm, q.st.mm.pins.isEmpty]).toEqual([0, true]);
  });
});

describe('VFIO_IOMMU_UNMAP_DMA with VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP', () => {
  it('checks argsz (48), tracking and the bitmap page size before anything is removed', () => {
    const p = play(header(), [...twoDmas(), unmapDirty(0n, 2n * PAGE), dirty('START'), unmapDirty(0n, 2n * PAGE, hex(BMP), 4096, 24),
      unmapDirty(0n, 2n * PAGE, hex(BMP), 0x2000), { op: 'ioctl', fd: '$c', cmd: 'VFIO_IOMMU_UNMAP_DMA', arg: { argsz: 48, flags: ['VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP', 'VFIO_DMA_UNMAP_FLAG_ALL'] } }]);
    expect(p.outcomes.slice(8)).toEqual(['EINVAL', 'ok', 'EINVAL', 'EINVAL', 'EINVAL']);
    expect(p.st.containers.get(1)!.iommu!.dmas.size).toBe(2);
  });

  it('reports each dma it removes, relative to the unmap IOVA, and copies the struct back', () => {
    const p = play(header(), [...twoDmas(), dirty('START'), { ...unmapDirty(0n, 2n * PAGE) as Record<string, unknown>, ret: 0, out: { size: 0x2000 } }, readBmp('0300000000000000')]);
    expect(p.r.divergences).toEqual([]);
    expect([p.st.containers.get(1)!.iommu!.dmas.size, p.st.accounting.mmLockedVm]).toEqual([0, 0]);
  });

  it('stops at a bitmap fault: EFAULT, nothing copied back, the dma it could not report stays', () => {
    const p = play(header(), [...twoDmas(), dirty('START'), unmapDirty(0n, 2n * PAGE, '0x7f2000000000'), unmap(0n, 2n * PAGE)]);
    expect(p.outcomes.slice(-2)).toEqual(['EFAULT', 'ok']);
  });
});
