/**
 * Fault queues through replay: a fault on a device attached to a HWPT with a fault object is read from the fault
 * fd as a 40-byte record under the lowest free cookie, and each cookie is answered at most once.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { replayOps } from '../support/replay.js';

const SEED = Number(process.env['FC_SEED'] ?? 0xfa017);
console.info(`fault.test.ts: fast-check seed ${SEED}`);

const replay = (lines: object[]): string[] => replayOps(lines).problems;

const setup: object[] = [
  { op: 'open', path: '/dev/iommu', ret: '$fd' },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: '$ioas' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN', id: '$ioas', mock_domain: {} }, ret: 0,
    out: { mock_domain: { out_stdev_id: '$stdev', out_idev_id: '$idev' } } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_FAULT_QUEUE_ALLOC', arg: {}, ret: 0, out: { out_fault_id: '$fault', out_fault_fd: '$ffd' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_HWPT_ALLOC', arg: { flags: ['IOMMU_HWPT_FAULT_ID_VALID'], dev_id: '$idev', pt_id: '$ioas', fault_id: '$fault' }, ret: 0, out: { out_hwpt_id: '$h' } },
  { op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE', id: '$stdev', mock_domain_replace: { pt_id: '$h' } }, ret: 0 },
];
const trigger = (grpid: number): object => ({ op: 'ioctl', fd: '$fd', cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_TRIGGER_IOPF', trigger_iopf: { dev_id: '$idev', pasid: 0, grpid, perm: 1, addr: '0xdeadb000' } }, ret: 0 });
const le32 = (v: number): string => Buffer.from(Uint32Array.of(v).buffer).toString('hex');
const answer = (cookie: number): string => le32(cookie) + le32(0);

describe('the fault fd', () => {
  it('reads a queued fault as an iommu_hwpt_pgfault record with cookie 1, and refuses counts that are not whole records', () => {
    // flags LAST_PAGE, dev_id 3 (the mock device's idev), pasid 0, grpid 7, perm READ, addr, length 0, cookie 1.
    const record = le32(2) + le32(3) + le32(0) + le32(7) + le32(1) + le32(0) + '00b0adde00000000' + le32(0) + le32(1);
    expect(replay([
      ...setup, trigger(7),
      { op: 'read', fd: '$ffd', count: 41, errno: 'ESPIPE' },
      { op: 'read', fd: '$ffd', count: 80, ret: 40, out: { data: record } },
      { op: 'read', fd: '$ffd', count: 40, ret: 0 },
      { op: 'write', fd: '$ffd', data: answer(1), ret: 8 },
      { op: 'write', fd: '$ffd', data: answer(1), errno: 'EINVAL' },
    ])).toEqual([]);
  });

  it('answers every cookie at most once, whatever the order of faults, reads and answers', () => {
    const step = fc.oneof(
      fc.record({ k: fc.constant('trigger' as const) }),
      fc.record({ k: fc.constant('read' as const), n: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ k: fc.constant('answer' as const), cookie: fc.integer({ min: 1, max: 4 }) }),
    );
    fc.assert(fc.property(fc.array(step, { maxLength: 16 }), (steps) => {
      let queued = 0;
      const outstanding = new Set<number>();
      const lines: object[] = [...setup];
      for (const s of steps) {
        if (s.k === 'trigger') { queued++; lines.push(trigger(queued)); }
        else if (s.k === 'read') {
          const n = Math.min(s.n, queued);
          for (let i = 0; i < n; i++) { let c = 1; while (outstanding.has(c)) c++; outstanding.add(c); }
          queued -= n;
          lines.push({ op: 'read', fd: '$ffd', count: 40 * s.n, ret: 40 * n });
        } else {
          const ok = outstanding.delete(s.cookie);
          lines.push({ op: 'write', fd: '$ffd', data: answer(s.cookie), ...(ok ? { ret: 8 } : { errno: 'EINVAL' }) });
        }
      }
      expect(replay(lines)).toEqual([]);
    }), { seed: SEED, numRuns: 80 });
  });
});
