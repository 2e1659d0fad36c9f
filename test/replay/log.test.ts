import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LogEntry } from '../../src/events/domain.js';
import { decodeEntry, encodeEntry } from '../../src/events/log.js';
import { evolve, initialState, cloneState } from '../../src/projections/state.js';
import { viewState } from '../../src/projections/snapshot.js';
import { Replayer } from '../../src/replay/engine.js';

const SEED = Number(process.env.FC_SEED ?? 1121);

/** Random traces of the modelled calls; ids, fds and addresses are drawn small so they collide often. */
const line = fc.oneof(
  fc.constant({ op: 'open', path: '/dev/iommu' }),
  fc.constant({ op: 'open', path: '/dev/vfio/vfio' }),
  fc.integer({ min: 3, max: 7 }).map((fd) => ({ op: 'close', fd })),
  fc.integer({ min: 3, max: 7 }).map((fd) => ({ op: 'ioctl', fd, cmd: 'IOMMU_IOAS_ALLOC', arg: {} })),
  fc.tuple(fc.integer({ min: 3, max: 7 }), fc.integer({ min: 0, max: 6 })).map(([fd, id]) => ({ op: 'ioctl', fd, cmd: 'IOMMU_DESTROY', arg: { id } })),
  fc.tuple(fc.integer({ min: 3, max: 7 }), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 2 }))
    .map(([fd, option_id, op, object_id, val64]) => ({ op: 'ioctl', fd, cmd: 'IOMMU_OPTION', arg: { option_id, op, object_id, val64 } })),
  fc.tuple(fc.integer({ min: 3, max: 7 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }))
    .map(([fd, op, ioas_id]) => ({ op: 'ioctl', fd, cmd: 'IOMMU_VFIO_IOAS', arg: { op, ioas_id } })),
  fc.tuple(fc.integer({ min: 3, max: 7 }), fc.integer({ min: 0, max: 3 })).map(([fd, ioas_id]) => ({ op: 'ioctl', fd, cmd: 'IOMMU_IOAS_IOVA_RANGES', arg: { ioas_id, num_iovas: 1 } })),
  fc.tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 1, max: 4 })).map(([p, n]) => ({ op: 'mmap', addr: `0x${(0x7f0000000000 + p * 4096).toString(16)}`, length: n * 4096, prot: 3, flags: ['MAP_SHARED', 'MAP_ANONYMOUS', 'MAP_FIXED'] })),
  fc.tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 1, max: 4 })).map(([p, n]) => ({ op: 'munmap', addr: `0x${(0x7f0000000000 + p * 4096).toString(16)}`, length: n * 4096 })),
  fc.constant({ op: 'memfd_create', name: 'buf' }),
  fc.tuple(fc.integer({ min: 3, max: 7 }), fc.integer({ min: 0, max: 65536 })).map(([fd, length]) => ({ op: 'ftruncate', fd, length })),
);

function replay(lines: object[]) {
  const entries: LogEntry[] = [];
  const r = new Replayer((e) => entries.push(e));
  r.feedLine(JSON.stringify({ iotrail: 1, iommufd_test: true }), 1);
  lines.forEach((l, i) => r.feedLine(JSON.stringify(l), i + 2));
  return { r, entries };
}

describe('the event log', () => {
  it('rebuilds exactly the live state when written to JSONL and folded back through evolve', () => {
    console.log(`fast-check seed ${SEED} (set FC_SEED to change)`);
    fc.assert(
      fc.property(fc.array(line, { maxLength: 60 }), (lines) => {
        const { r, entries } = replay(lines);
        expect(r.errors).toEqual([]);
        expect(r.internal).toEqual([]);
        const text = entries.map(encodeEntry).join('\n');
        const rebuilt = initialState();
        text.split('\n').filter((l) => l !== '').forEach((l) => {
          const d = decodeEntry(l);
          if (!d.ok) throw new Error(`${d.problem.path}: ${d.problem.message}`);
          evolve(rebuilt, d.value.ev);
        });
        expect(viewState(rebuilt)).toEqual(viewState(r.st));
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it('numbers its entries densely from 0 and stamps each with the trace line that caused it', () => {
    const { entries } = replay([{ op: 'open', path: '/dev/iommu' }, { op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_ALLOC', arg: {} }]);
    expect(entries.map((e) => e.n)).toEqual(entries.map((_, i) => i));
    expect(entries.filter((e) => e.ev.type === 'ObjectAllocated').map((e) => e.line)).toEqual([3]);
  });

  it('keeps bigints exact through the JSON round trip', () => {
    const e: LogEntry = { n: 0, line: 2, tid: 1, ev: { type: 'VmaMapped', start: (1n << 64n) - 4096n, length: 4096n, prot: 3, flags: 0x21, memfd: undefined, offset: 0n } };
    const d = decodeEntry(encodeEntry(e));
    expect(d.ok && d.value).toEqual({ ...e, ev: { type: 'VmaMapped', start: (1n << 64n) - 4096n, length: 4096n, prot: 3, flags: 0x21, offset: 0n } });
  });

  it('rejects a log line with an unknown event type or a malformed u64, with the path', () => {
    const a = decodeEntry('{"n":0,"line":1,"tid":1,"type":"Nope"}');
    expect(a.ok ? '' : a.problem.path).toBe('type');
    const b = decodeEntry('{"n":0,"line":1,"tid":1,"type":"VmaUnmapped","start":12,"length":"0x1000"}');
    expect(b.ok ? '' : b.problem.path).toBe('start');
  });

  it('snapshots by deep copy: events applied after a clone do not show in it', () => {
    const { r } = replay([{ op: 'open', path: '/dev/iommu' }, { op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_ALLOC', arg: {} }]);
    const snap = cloneState(r.st);
    const before = viewState(snap);
    r.feedLine(JSON.stringify({ op: 'ioctl', fd: 3, cmd: 'IOMMU_DESTROY', arg: { id: 1 } }), 4);
    expect(viewState(snap)).toEqual(before);
    expect(viewState(r.st)).not.toEqual(before);
  });
});
