import { describe, expect, it } from 'vitest';
import { decodeEvent, formatTraceError, problemOf, TraceHeaderC, traceEventC } from '../../src/events/trace.js';
import { decodeHeader } from '../../src/events/header.js';
import { isRight, isLeft } from 'fp-ts/lib/Either.js';

const err = (raw: unknown, line = 12) => {
  const d = decodeEvent(raw, line);
  if (d.ok) throw new Error('expected a trace error');
  return formatTraceError(problemOf(d.problem, line));
};

describe('trace values', () => {
  it('decode u64 from numbers, decimal strings and hex strings to the same bigint', () => {
    for (const length of [4096, '4096', '0x1000']) {
      const d = decodeEvent({ op: 'munmap', addr: 0, length }, 1);
      expect(d.ok && d.value.op === 'munmap' && d.value.length).toBe(4096n);
    }
    const d = decodeEvent({ op: 'munmap', addr: '18446744073709551615', length: '0xffffffffffffffff' }, 1);
    expect(d.ok && d.value.op === 'munmap' && [d.value.addr, d.value.length]).toEqual([(1n << 64n) - 1n, (1n << 64n) - 1n]);
  });

  it('report a bad u64 with its line and JSON path', () => {
    expect(err({ op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_MAP', arg: { length: '12x' } })).toBe('line 12: arg.length: expected a u64, got "12x"');
  });

  it('reject a u64 that overflows 64 bits, and a JSON number past 2^53 that JSON.parse already rounded', () => {
    expect(err({ op: 'munmap', addr: '0x10000000000000000', length: 1 })).toMatch(/addr: .*overflows 64 bits/);
    expect(err({ op: 'munmap', addr: 2 ** 60, length: 1 })).toMatch(/must be strings/);
  });

  it('reject an unknown op, an unknown field, an unknown flag name and an unknown errno', () => {
    expect(err({ op: 'ioctrl' })).toBe('line 12: op: unknown op "ioctrl"');
    expect(err({ op: 'close', fd: 3, flags: 1 })).toMatch(/^line 12: flags: unknown field "flags" of op "close"/);
    expect(err({ op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_MAP', arg: { flags: ['IOMMU_IOAS_MAP_READ'] } }))
      .toBe('line 12: arg.flags[0]: unknown flag name "IOMMU_IOAS_MAP_READ"');
    expect(err({ op: 'close', fd: 3, errno: 'ENOPE' })).toMatch(/^line 12: errno: expected an errno name/);
    expect(err({ op: 'ioctl', fd: 3, cmd: 'IOMMU_DESTROY', arg: { idd: 1 } })).toMatch(/arg.idd: unknown field "idd" of struct iommu_destroy/);
  });

  it('decode flags given as one name, an array of names or a number to the same mask', () => {
    const masks = [['IOMMU_IOAS_MAP_READABLE', 'IOMMU_IOAS_MAP_WRITEABLE'], 6, '0x6'].map((flags) => {
      const d = decodeEvent({ op: 'ioctl', fd: 3, cmd: 'IOMMU_IOAS_MAP', arg: { flags } }, 1);
      return d.ok && d.value.op === 'ioctl' && d.value.arg.k === 'struct' ? d.value.arg.s.fields.flags : undefined;
    });
    expect(masks).toEqual([6n, 6n, 6n]);
  });

  it('keep variables for later resolution and decode nested IOMMU_TEST_CMD members and inline arrays', () => {
    const d = decodeEvent({
      op: 'ioctl', fd: '$fd', cmd: 'IOMMU_IOAS_ALLOW_IOVAS',
      arg: { ioas_id: '$ioas', num_iovas: 1, allowed_iovas: [{ start: 4096, last: 8191 }] },
    }, 1);
    expect(d.ok).toBe(true);
    if (d.ok && d.value.op === 'ioctl' && d.value.arg.k === 'struct') {
      expect(d.value.fd).toEqual({ $: '$fd' });
      expect(d.value.arg.s.hasVars).toBe(true);
      expect((d.value.arg.s.fields.allowed_iovas as unknown as { fields: object }[])[0]!.fields).toEqual({ start: 4096n, last: 8191n });
    }
    expect(err({ op: 'ioctl', fd: 3, cmd: 'IOMMU_TEST_CMD', arg: { op: 'IOMMU_TEST_OP_MD_CHECK_REFS', check_refs: { refs: -1 } } }))
      .toMatch(/arg.check_refs.refs: expected a u32/);
  });

  it('reject a tail longer than the bytes past the struct that size leaves', () => {
    expect(err({ op: 'ioctl', fd: 3, cmd: 'IOMMU_DESTROY', arg: { size: 9, tail: 'ffff' } })).toMatch(/arg.tail: tail has 2 bytes/);
  });

  it('are exposed as io-ts codecs with located failures', () => {
    expect(isRight(traceEventC(3).decode({ op: 'close', fd: 3 }))).toBe(true);
    const bad = traceEventC(3).decode({ op: 'close', fd: 'x' });
    expect(isLeft(bad)).toBe(true);
    if (isLeft(bad)) expect(bad.left[0]!.message).toMatch(/expected an s32/);
    expect(isRight(TraceHeaderC.decode({ iotrail: 1 }))).toBe(true);
  });
});

describe('trace header', () => {
  it('fills the documented defaults', () => {
    const h = decodeHeader({ iotrail: 1 });
    expect(h.ok && h.value).toMatchObject({ page_size: 4096, iommufd_test: false, memory: 'explicit', vfio_container: 'iommufd',
      limits: { memlock: 'unlimited', cap_sys_resource: true, cap_ipc_lock: false } });
  });

  it('decodes a device with its IOMMU description', () => {
    const h = decodeHeader({ iotrail: 1, devices: [{ path: '/dev/vfio/devices/vfio0', name: '0000:01:00.0', group: 7,
      iommu: { pgsize_bitmap: '0x40201000', aperture: { start: 0, last: '0x7fffffffff' }, reserved: [{ start: '0xfee00000', last: '0xfeefffff', type: 'msi' }] },
      bars: [{ index: 0, size: '0x1000000' }] }] });
    expect(h.ok && h.value.devices[0]!.iommu.aperture.last).toBe(0x7fffffffffn);
  });

  it('rejects a wrong version, an unknown field and a bad page size with their paths', () => {
    for (const [raw, path] of [[{ iotrail: 2 }, 'iotrail'], [{ iotrail: 1, pagesize: 1 }, 'pagesize'], [{ iotrail: 1, page_size: 1000 }, 'page_size'],
      [{ iotrail: 1, devices: [{ path: 1 }] }, 'devices[0].path']] as const) {
      const h = decodeHeader(raw);
      expect(h.ok ? 'ok' : h.problem.path).toBe(path);
    }
  });
});
