/**
 * Replaying under a schedule (`iotrail replay --schedule`): the atomic steps of operations of different threads run
 * in the order the schedule names, so a race recorded from a multi-threaded VMM replays as it happened.
 */
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../../src/events/domain.js';
import { Replayer } from '../../src/replay/engine.js';

const HEADER = { iotrail: 1, page_size: 4096, iommufd_test: true, vmas: [{ start: '0x7f0000000000', length: '0x10000', prot: 3, flags: 33 }] };
const MAP = { op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_MAP', arg: { flags: ['IOMMU_IOAS_MAP_WRITEABLE', 'IOMMU_IOAS_MAP_READABLE'], ioas_id: 1, user_va: '0x7f0000000000', length: 8192 }, ret: 0, out: { iova: '0x2000' }, tid: 1 };
const destroy = (outcome: object) => ({ op: 'ioctl', fd: 3, cmd: 'IOMMU_DESTROY', arg: { id: 1 }, ...outcome, tid: 2 });

function replay(lines: readonly object[], schedule?: number[]): { r: Replayer; log: LogEntry[] } {
  const log: LogEntry[] = [];
  const r = new Replayer((e) => log.push(e), undefined, schedule === undefined ? { invariants: true } : { schedule });
  [HEADER, { op: 'open', path: '/dev/iommu', flags: ['O_RDWR'], ret: 3, tid: 1 },
    { op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: 1 }, tid: 1 }, ...lines]
    .forEach((l, i) => r.feedLine(JSON.stringify(l), i + 1));
  r.finish();
  return { r, log };
}

describe('a schedule', () => {
  it('makes an IOMMU_DESTROY that runs between the steps of a MAP of the same IOAS fail with EBUSY', () => {
    // Line 4 (MAP) reserves its area, line 5 (DESTROY) runs, then the MAP fills and publishes; line 6 destroys after.
    const { r, log } = replay([MAP, destroy({ errno: 'EBUSY' }), destroy({ ret: 0 })], [4, 5, 4, 4, 6]);
    expect(r.divergences).toEqual([]);
    expect(r.violations).toEqual([]);
    // The short-term reference the MAP holds between its steps is what DESTROY sees (main.c iommufd_lock_obj).
    const refs = log.filter((e) => e.line === 4 && (e.ev.type === 'ObjectRefTaken' || e.ev.type === 'ObjectRefDropped')).map((e) => e.ev.type);
    expect(refs).toEqual(['ObjectRefTaken', 'ObjectRefDropped']);
  });

  it('reports the divergence of a trace that claims the racing DESTROY freed the IOAS under the MAP', () => {
    const { r } = replay([MAP, destroy({ ret: 0 })], [4, 5, 4, 4]);
    expect(r.divergences.map((d) => [d.line, d.field, d.predicted])).toEqual([[5, 'ret', 'EBUSY']]);
  });

  it('leaves a single-threaded MAP then DESTROY as it was: both succeed', () => {
    const { r } = replay([MAP, destroy({ ret: 0 })]);
    expect(r.divergences).toEqual([]);
    expect(r.violations).toEqual([]);
  });
});

describe('a seeded bug that opens a window (B8, access-rw-during-change)', () => {
  const lines = [
    { op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: 2 }, tid: 1 },
    { op: 'ioctl', fd: 3, cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_CREATE_ACCESS', id: 1, create_access: { flags: 1 } }, ret: 0, out: { create_access: { out_access_fd: 4 } }, tid: 1 },
    { op: 'ioctl', fd: 3, cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_ACCESS_REPLACE_IOAS', id: 4, access_replace_ioas: { ioas_id: 2 } }, ret: 0, tid: 2 },
    { op: 'ioctl', fd: 3, cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_ACCESS_PAGES', id: 4, access_pages: { flags: 1 << 16, iova: 0, length: 4096 } }, errno: 'ENOENT', tid: 1 },
  ];

  it('lets an ACCESS_PAGES with a syzkaller IOVA run while the access is attached to nothing, and the converter faults', async () => {
    const { setMutants } = await import('../../src/check/mutants.js');
    setMutants(['access-rw-during-change']);
    try {
      const { r } = replay(lines, [6, 7, 6]);
      expect(r.violations.map((v) => v.name)).toEqual(['handler-total']);
    } finally {
      setMutants([]);
    }
  });

  it('has no window in the model as it is: the change is one atomic step', () => {
    const { r } = replay(lines, [6, 7]);
    expect(r.violations).toEqual([]);
    expect(r.internal).toEqual([]);
  });
});
