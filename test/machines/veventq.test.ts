/**
 * vEVENT queues through replay: sequence numbers count every report, a full queue records reports in one
 * lost-events header at its tail, and reads copy whole entries only.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { replayOps } from '../support/replay.js';

const SEED = Number(process.env['FC_SEED'] ?? 0x5e9);
console.info(`veventq.test.ts: fast-check seed ${SEED}`);

const replay = (lines: object[]): string[] => replayOps(lines).problems;

const VIRT_ID = 0x99;
const setup = (depth: number): object[] => [
  { op: 'open', path: '/dev/iommu', ret: '$fd' },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: '$ioas' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN', id: '$ioas', mock_domain: {} }, ret: 0,
    out: { mock_domain: { out_stdev_id: '$stdev', out_idev_id: '$idev' } } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_HWPT_ALLOC', arg: { flags: ['IOMMU_HWPT_ALLOC_NEST_PARENT'], dev_id: '$idev', pt_id: '$ioas' }, ret: 0, out: { out_hwpt_id: '$hwpt' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VIOMMU_ALLOC', arg: { type: 0xdeadbeef, dev_id: '$idev', hwpt_id: '$hwpt' }, ret: 0, out: { out_viommu_id: '$viommu' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VDEVICE_ALLOC', arg: { dev_id: '$idev', viommu_id: '$viommu', virt_id: VIRT_ID }, ret: 0, out: { out_vdevice_id: '$vdev' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VEVENTQ_ALLOC', arg: { viommu_id: '$viommu', type: 0xbeefbeef, veventq_depth: depth }, ret: 0, out: { out_veventq_id: '$q', out_veventq_fd: '$qfd' } },
];
const trigger = { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_TRIGGER_VEVENT', trigger_vevent: { dev_id: '$idev' } }, ret: 0 };
const le32 = (v: number): string => Buffer.from(Uint32Array.of(v).buffer).toString('hex');

describe('the vEVENTQ fd', () => {
  it('refuses a second queue of one type on a vIOMMU and a trigger without a vEVENTQ of the selftest type', () => {
    expect(replay([
      ...setup(2),
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_VEVENTQ_ALLOC', arg: { viommu_id: '$viommu', type: 0xbeefbeef, veventq_depth: 2 }, errno: 'EEXIST' },
      { op: 'close', fd: '$qfd', ret: 0 },
      { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_DESTROY', arg: { id: '$q' }, ret: 0 },
      { ...trigger, ret: undefined, errno: 'EOPNOTSUPP' },
    ])).toEqual([]);
  });

  it('numbers reports in sequence and records those past the depth in one lost-events header, whatever the order of reports and reads', () => {
    const step = fc.oneof(fc.constant({ k: 'report' as const }), fc.record({ k: fc.constant('read' as const), count: fc.integer({ min: 0, max: 40 }) }));
    fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.array(step, { maxLength: 14 }), (depth, steps) => {
      // The reference: every report takes the next sequence; a full queue's report replaces a lost header at the tail.
      let seq = 0, num = 0;
      const q: { seq: number; lost: boolean }[] = [];
      const lines: object[] = [...setup(depth)];
      for (const s of steps) {
        if (s.k === 'report') {
          if (q.at(-1)?.lost) q.pop();
          const lost = num === depth;
          q.push({ seq: seq++, lost });
          if (!lost) num++;
          lines.push(trigger);
        } else {
          let done = 0, hex = '';
          while (q.length > 0) {
            const e = q[0]!;
            const size = e.lost ? 8 : 12;
            if (done >= s.count || 8 > s.count - done || size > s.count - done) break;
            hex += le32(e.lost ? 1 : 0) + le32(e.seq) + (e.lost ? '' : le32(VIRT_ID));
            done += size;
            if (!e.lost) num--;
            q.shift();
          }
          lines.push({ op: 'read', fd: '$qfd', count: s.count, ret: done, ...(done > 0 ? { out: { data: hex } } : {}) });
        }
      }
      expect(replay(lines)).toEqual([]);
    }), { seed: SEED, numRuns: 100 });
  });
});
