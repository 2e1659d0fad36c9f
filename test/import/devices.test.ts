import { describe, expect, it } from 'vitest';
import { parseDeviceSpec, parseHeaderText, userHeader } from '../../src/import/devices.js';
import { importQemu } from '../../src/import/qemu.js';

const device = (spec: string) => {
  const d = parseDeviceSpec(spec);
  if (!d.ok) throw new Error(d.error);
  return d.value;
};
const error = (spec: string): string => {
  const d = parseDeviceSpec(spec);
  return d.ok ? 'parsed' : d.error;
};

describe('--device', () => {
  it('turns the documented example into a trace-format device entry with the IOMMU fields in the format\'s order', () => {
    expect(device('reserved=0xfee00000-0xfeefffff:msi,pgsize=0x40201000,aperture=0-0x7fffffffff,name=0000:01:00.0,path=/dev/vfio/devices/vfio0')).toEqual({
      path: '/dev/vfio/devices/vfio0', name: '0000:01:00.0',
      iommu: { pgsize_bitmap: '0x40201000', aperture: { start: 0, last: '0x7fffffffff' }, reserved: [{ start: '0xfee00000', last: '0xfeefffff', type: 'msi' }] },
    });
  });

  it('takes aw=39 as the aperture of a 39-bit IOMMU and reads group, dirty tracking, PASIDs, MSI isolation and BARs', () => {
    const d = device('path=/dev/vfio/devices/vfio0,aw=39,group=15,dirty=on,pasids=65536,msi_isolated=off,bar=0:0x1000000,bar=2:16384,reserved=0x0-0xfff');
    expect(d).toEqual({
      path: '/dev/vfio/devices/vfio0', group: 15,
      iommu: { aperture: { start: 0, last: '0x7fffffffff' }, reserved: [{ start: 0, last: '0xfff', type: 'reserved' }], dirty_tracking: true, max_pasids: 65536, msi_isolated: false },
      bars: [{ index: 0, size: '0x1000000' }, { index: 2, size: '0x4000' }],
    });
    expect(device('path=/x,aw=64').iommu).toEqual({ aperture: { start: 0, last: '0xffffffffffffffff' } });
  });

  it('explains precisely what is wrong with a bad specification', () => {
    expect(error('name=0000:01:00.0')).toBe('--device "name=0000:01:00.0": path= is required (e.g. path=/dev/vfio/devices/vfio0)');
    expect(error('path=/x,color=red')).toContain('unknown key "color" (known: path, name, group');
    expect(error('path=/x,aperture=0x2000-0x1000')).toContain('aperture: start 0x2000 is above last 0x1000 (LAST is inclusive)');
    expect(error('path=/x,aperture=0-0x10000000000000000')).toContain('aperture: 0x10000000000000000 does not fit in 64 bits');
    expect(error('path=/x,aperture=0-1,aw=39')).toContain('give aperture= or aw=, not both');
    expect(error('path=/x,path=/y')).toContain('path given twice');
    expect(error('path=/x,reserved=1-2:weird')).toContain('reserved: type "weird" is not one of msi, sw_msi, direct, direct_relaxable, reserved');
    expect(error('path=/x,bar=0:1,bar=0:2')).toContain('bar 0 given twice');
    expect(error('path=/x,bar=6:1')).toContain('bar index: 6 is above 5');
    expect(error('path=relative')).toContain('is not an absolute path');
    expect(error('path=/x,aw=65')).toContain('aw: 65 is above 64');
    expect(error('path=/x,pgsize=0')).toContain('at least one bit');
    expect(error('path=/x,dirty=maybe')).toContain('dirty: "maybe" is not on or off');
    expect(error('path=/x,group')).toContain('"group" is not KEY=VALUE');
    expect(error('')).toContain('empty');
  });
});

describe('--header', () => {
  it('accepts a JSON object and rejects anything else with the reason', () => {
    expect(parseHeaderText('{"limits": {"memlock": 65536}}', 'h.json')).toEqual({ ok: true, value: { limits: { memlock: 65536 } } });
    expect(parseHeaderText('[1]', 'h.json')).toEqual({ ok: false, error: '--header h.json: expected a JSON object, got an array' });
    expect(parseHeaderText('{"iotrail": 2}', 'h.json')).toEqual({ ok: false, error: '--header h.json: "iotrail" must be 1 (format version 1)' });
    expect(parseHeaderText('{"devices": [{}]}', 'h.json')).toEqual({ ok: false, error: '--header h.json: devices[0] must be an object with a string "path"' });
    const bad = parseHeaderText('{', 'h.json');
    expect(bad.ok ? '' : bad.error).toMatch(/^--header h\.json: not JSON \(/);
  });

  it('appends --device entries to the header file\'s devices and refuses two entries for one path', () => {
    const file = { memory: 'explicit', devices: [{ path: '/dev/vfio/devices/vfio0' }] };
    expect(userHeader(file, [device('path=/dev/vfio/devices/vfio1')])).toEqual({
      ok: true, value: { memory: 'explicit', devices: [{ path: '/dev/vfio/devices/vfio0' }, { path: '/dev/vfio/devices/vfio1', iommu: {} }] },
    });
    expect(userHeader(file, [device('path=/dev/vfio/devices/vfio0')])).toEqual({
      ok: false, error: 'device /dev/vfio/devices/vfio0 is declared twice (--header and/or --device)',
    });
  });

  it('lays the user header over the generated one, keeping the generated key order', () => {
    const user = userHeader({ limits: { memlock: 'unlimited' }, memory: 'explicit' }, [device('path=/dev/vfio/devices/vfio0')]);
    if (!user.ok) throw new Error(user.error);
    const { header } = importQemu([], { header: user.value, source: 'x.log' });
    expect(Object.keys(header)).toEqual(['iotrail', 'page_size', 'iommufd_test', 'memory', 'devices', 'source', 'note', 'limits']);
    expect(header).toMatchObject({ memory: 'explicit', devices: [{ path: '/dev/vfio/devices/vfio0' }], source: 'QEMU trace events: x.log' });
  });
});
