import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Replayer } from '../../src/replay/engine.js';

const HEADER = JSON.stringify({ iotrail: 1, iommufd_test: true });
const SEED = Number(process.env.FC_SEED ?? 424242);

/** Lines that look almost right: real ops and commands with wrong types, huge numbers and cut-off text. */
const nearMiss = fc.oneof(
  fc.record({
    op: fc.constantFrom('open', 'close', 'ioctl', 'mmap', 'munmap', 'madvise', 'memfd_create', 'ftruncate', 'dma', 'ioctrl', ''),
    fd: fc.oneof(fc.integer(), fc.string(), fc.constant('$nope'), fc.constant(null)),
    cmd: fc.oneof(fc.constantFrom('IOMMU_IOAS_ALLOC', 'IOMMU_DESTROY', 'IOMMU_OPTION', 'IOMMU_TEST_CMD', 'BOGUS'), fc.integer(), fc.string()),
    arg: fc.oneof(fc.constant(null), fc.object(), fc.record({ size: fc.oneof(fc.integer(), fc.string(), fc.bigInt().map(String)), id: fc.anything() })),
    ret: fc.anything(),
    errno: fc.oneof(fc.constantFrom('ENOENT', 'EBUSY', 'EWHAT'), fc.anything()),
    length: fc.oneof(fc.constant('0x1ffffffffffffffff'), fc.double(), fc.constant(2 ** 64)),
  }, { requiredKeys: ['op'] }).map((o) => JSON.stringify(o)),
  fc.json(),
  fc.string(),
  fc.jsonValue().map((v) => JSON.stringify(v)).chain((s) => fc.nat(s.length).map((n) => s.slice(0, n))),
);

describe('malformed trace lines', () => {
  it('each yield a located error or a divergence and never throw', () => {
    console.log(`fast-check seed ${SEED} (set FC_SEED to change)`);
    fc.assert(
      fc.property(fc.array(nearMiss, { minLength: 1, maxLength: 20 }), (lines) => {
        const r = new Replayer();
        r.feedLine(HEADER, 1);
        lines.forEach((l, i) => r.feedLine(l, i + 2));
        for (const e of r.errors) {
          expect(e.line).toBeGreaterThanOrEqual(2);
          expect(e.message.length).toBeGreaterThan(0);
        }
        expect(r.internal).toEqual([]);
      }),
      { seed: SEED, numRuns: 400 },
    );
  });

  it('report a truncated line and still replay the lines around it', () => {
    const r = new Replayer();
    const lines = [HEADER, '{"op":"open","path":"/dev/iommu","ret":"$fd"}', '{"op":"ioctl","fd":"$fd","cmd":"IOMMU_IOAS_AL',
      '{"op":"ioctl","fd":"$fd","cmd":"IOMMU_DESTROY","arg":{"id":0},"errno":"EBUSY"}'];
    lines.forEach((l, i) => r.feedLine(l, i + 1));
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.line).toBe(3);
    expect(r.errors[0]!.message).toMatch(/malformed JSON/);
    expect(r.divergences.map((d) => [d.line, d.observed, d.predicted])).toEqual([[4, 'EBUSY', 'ENOENT']]);
  });
});
