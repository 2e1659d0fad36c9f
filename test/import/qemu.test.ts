import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EVENTS } from '../../src/import/qemu-events.js';
import { formatsCompile } from '../../src/import/qemu-parse.js';
import { importQemu, serializeTrace } from '../../src/import/qemu.js';
import type { ImportOptions, ImportResult } from '../../src/import/qemu.js';
import type { JsonObject } from '../../src/import/values.js';
import { parseDeviceSpec, userHeader } from '../../src/import/devices.js';

const example = (name: string): string => readFileSync(new URL(`../../examples/qemu/${name}`, import.meta.url), 'utf8');
const run = (text: string, opts: ImportOptions = {}): ImportResult => importQemu(text.split('\n'), opts);
const withoutNotes = (r: ImportResult): JsonObject[] => r.events.map(({ note: _note, ...rest }) => rest);
const RW = ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_WRITEABLE', 'IOMMU_IOAS_MAP_READABLE'];
const RO = ['IOMMU_IOAS_MAP_FIXED_IOVA', 'IOMMU_IOAS_MAP_READABLE'];
const OPEN = ['O_RDWR', 'O_CLOEXEC'];

function declared(...specs: string[]): JsonObject {
  const devices = specs.map((s) => {
    const d = parseDeviceSpec(s);
    if (!d.ok) throw new Error(d.error);
    return d.value;
  });
  const h = userHeader(undefined, devices);
  if (!h.ok) throw new Error(h.error);
  return h.value;
}

/** Every non-blank line is either behind an event (its note names it) or in `unused`, never both. */
function expectAccounted(text: string, r: ImportResult): void {
  const lines = text.split('\n');
  const nonBlank = lines.filter((l) => l.trim() !== '').length;
  expect(r.stats.used + r.unused.length).toBe(nonBlank);
  const unusedLines = new Set(r.unused.map((u) => u.line));
  for (const ev of r.events) {
    const m = /line (\d+): /.exec(String(ev.note));
    expect(m).not.toBeNull();
    expect(unusedLines.has(Number(m?.[1]))).toBe(false);
  }
  for (const u of r.unused) {
    expect(u.reason.length).toBeGreaterThan(0);
    expect(u.text).toBe(lines[u.line - 1]);
  }
}

describe('real QEMU captures (real-clients.md §7)', () => {
  it('imports T1, a vfio-ap mdev realize that fails, into the full iommufd call sequence with synthesized open and close of /dev/iommu', () => {
    const text = example('t1-vfio-ap-mdev-realize-fails.log');
    const r = run(text);
    const dev = '8eb8351a-e656-4187-b773-fea4e926310d';
    expect(withoutNotes(r)).toEqual([
      { op: 'open', path: '/dev/vfio/devices/vfio4', flags: OPEN, ret: 28 },
      { op: 'open', path: '/dev/iommu', flags: OPEN, ret: 27 },
      { op: 'ioctl', fd: 28, cmd: 'VFIO_DEVICE_BIND_IOMMUFD', arg: { flags: 0, iommufd: 27 }, ret: 0, out: { out_devid: 1 } },
      { op: 'ioctl', fd: 27, cmd: 'IOMMU_IOAS_ALLOC', arg: { flags: 0 }, ret: 0, out: { out_ioas_id: 2 } },
      { op: 'ioctl', fd: 28, cmd: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', arg: { flags: 0, pt_id: 2 }, ret: 0 },
      { op: 'ioctl', fd: 27, cmd: 'IOMMU_IOAS_MAP', arg: { flags: RW, ioas_id: 2, user_va: '0x3fd9ff00000', length: '0x200000000', iova: 0 }, ret: 0 },
      { op: 'ioctl', fd: 28, cmd: 'VFIO_DEVICE_GET_INFO', arg: {}, ret: 0 },
      { op: 'ioctl', fd: 28, cmd: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', arg: { flags: 0 }, ret: 0 },
      { op: 'ioctl', fd: 27, cmd: 'IOMMU_IOAS_UNMAP', arg: { ioas_id: 2, iova: 0, length: '0x200000000' }, ret: 0 },
      { op: 'ioctl', fd: 27, cmd: 'IOMMU_DESTROY', arg: { id: 2 }, ret: 0 },
      { op: 'close', fd: 27 },
    ]);
    expect(r.events[1]?.note).toMatch(/^synthesized \(iommufd_backend_connect: .*\); at line 2: iommufd_backend_connect fd=27 owned=1 users=1$/);
    expect(r.events[10]?.note).toMatch(/^synthesized .*line 12: iommufd_backend_disconnect fd=-1 users=0$/);
    expect(r.events[6]?.note).toContain('QEMU got flags=33 num_regions=0 num_irqs=1');
    expect(r.events[2]?.note).toBe(`line 3: iommufd_cdev_connect_and_bind  [iommufd=27] Successfully bound device ${dev} (fd=28): output devid=1`);
    expect(r.unused).toEqual([{
      line: 5, kind: 'not-an-ioctl', reason: 'restates the IOMMU_IOAS_ALLOC that iommufd_backend_alloc_ioas reports',
      text: 'iommufd_cdev_alloc_ioas  [iommufd=27] new IOMMUFD container with ioasid=2',
    }]);
    expect(r.header).toMatchObject({ iotrail: 1, iommufd_test: false, memory: 'implicit', devices: [] });
    expect(String(r.header.note)).toContain('not declared (use --device): /dev/vfio/devices/vfio4');
    expect(r.stats).toMatchObject({ backend: 'iommufd', events: 11, synthesized: 2, notAnIoctl: 1, unparseable: 0, unconvertible: 0 });
    expectAccounted(text, r);
  });

  it('imports T2 RAM maps with readonly=1 dropping IOMMU_IOAS_MAP_WRITEABLE, and reports the device line until the device is declared', () => {
    const text = example('t2-mtty-mdev-ram-maps.log');
    const r = run(text);
    expect(withoutNotes(r).slice(0, 4)).toEqual([
      { op: 'open', path: '/dev/iommu', flags: OPEN, ret: 15 },
      { op: 'ioctl', fd: 15, cmd: 'IOMMU_IOAS_MAP', arg: { flags: RW, ioas_id: 2, user_va: '0x7fb80f600000', length: '0xc0000', iova: 0 }, ret: 0 },
      { op: 'ioctl', fd: 15, cmd: 'IOMMU_IOAS_MAP', arg: { flags: RO, ioas_id: 2, user_va: '0x7fb80d400000', length: '0x20000', iova: '0xc0000' }, ret: 0 },
      { op: 'ioctl', fd: 15, cmd: 'IOMMU_IOAS_MAP', arg: { flags: RW, ioas_id: 2, user_va: '0x7fb80f700000', length: '0xff00000', iova: '0x100000' }, ret: 0 },
    ]);
    expect(r.events[0]?.note).toMatch(/^synthesized \(QEMU does not trace opening \/dev\/iommu; fd 15 first appears here\); at line 1: /);
    expect(r.unused).toHaveLength(1);
    expect(r.unused[0]).toMatchObject({ line: 4, kind: 'unconvertible' });
    expect(r.unused[0]?.reason).toContain('--device path=...,name=83b8f4f2-509f-382f-3c1e-e6bfe0fa1001');

    const name = '83b8f4f2-509f-382f-3c1e-e6bfe0fa1001';
    const d = run(text, { header: declared(`path=/dev/vfio/devices/vfio1,name=${name}`) });
    expect(d.unused).toEqual([]);
    expect(withoutNotes(d).slice(4)).toEqual([
      { op: 'open', path: '/dev/vfio/devices/vfio1', flags: OPEN, ret: 26 },
      { op: 'ioctl', fd: 26, cmd: 'VFIO_DEVICE_GET_INFO', arg: {}, ret: 0 },
    ]);
    expect(d.events[4]?.note).toMatch(/^synthesized \(device 83b8f4f2-.* path from its declaration\)/);
    expectAccounted(text, d);
  });

  it('imports T3, a legacy type1 log, into MAP_DMA/UNMAP_DMA on a synthesized $container and reports what the legacy trace hides', () => {
    const text = example('t3-legacy-type1-igd.log');
    const r = run(text);
    const rw = ['VFIO_DMA_MAP_FLAG_READ', 'VFIO_DMA_MAP_FLAG_WRITE'];
    expect(withoutNotes(r)).toEqual([
      { op: 'open', path: '/dev/vfio/vfio', flags: OPEN, ret: '$container' },
      { op: 'ioctl', fd: '$container', cmd: 'VFIO_IOMMU_MAP_DMA', arg: { flags: rw, vaddr: '0x7f5b41e00000', iova: 0, size: '0xc0000' } },
      { op: 'ioctl', fd: '$container', cmd: 'VFIO_IOMMU_MAP_DMA', arg: { flags: rw, vaddr: '0x7f5b41f00000', iova: '0x100000', size: '0xbff00000' } },
      { op: 'ioctl', fd: '$container', cmd: 'VFIO_IOMMU_MAP_DMA', arg: { flags: rw, vaddr: '0x7f5c01e00000', iova: '0x100000000', size: '0x102000000' } },
      { op: 'ioctl', fd: '$container', cmd: 'VFIO_IOMMU_UNMAP_DMA', arg: { flags: 0, iova: '0x100000', size: '0xbff00000' } },
      { op: 'ioctl', fd: '$container', cmd: 'VFIO_IOMMU_MAP_DMA', arg: { flags: rw, vaddr: '0x7f5b41e00000', iova: 0, size: '0xd0000' } },
    ]);
    expect(r.events[1]?.note).toContain('READ|WRITE assumed');
    expect(r.header).toMatchObject({ vfio_container: 'type1', memory: 'implicit' });
    expect(r.unused.map((u) => [u.line, u.kind])).toEqual([[3, 'not-an-ioctl'], [5, 'unconvertible'], [6, 'unconvertible'], [7, 'unconvertible']]);
    expect(r.stats.backend).toBe('legacy');
    expectAccounted(text, r);

    const forced = run(text, { backend: 'iommufd' });
    expect(forced.events).toEqual([]);
    expect(forced.unused.filter((u) => u.kind === 'not-an-ioctl')).toHaveLength(6);
  });

  it('imports T4 with the errno that only the following QEMU messages carry, and a --device header with the 39-bit aperture', () => {
    const text = example('t4-iova-beyond-39bit-aperture.log');
    const header = declared('path=/dev/vfio/devices/vfio0,name=0000:01:00.0,aw=39,pgsize=0x40201000,reserved=0xfee00000-0xfeefffff:msi');
    const r = run(text, { header });
    // The capture starts after QEMU's setup, so the declared device's bind/alloc/attach are recreated before it;
    // IOAS 2 of the capture is the variable the recreated IOMMU_IOAS_ALLOC binds.
    expect(withoutNotes(r)).toEqual([
      { op: 'open', path: '/dev/iommu', flags: OPEN, ret: 10 },
      { op: 'open', path: '/dev/vfio/devices/vfio0', flags: OPEN, ret: '$qemu_devfd' },
      { op: 'ioctl', fd: '$qemu_devfd', cmd: 'VFIO_DEVICE_BIND_IOMMUFD', arg: { argsz: 16, flags: 0, iommufd: 10 }, ret: 0 },
      { op: 'ioctl', fd: 10, cmd: 'IOMMU_IOAS_ALLOC', arg: {}, ret: 0, out: { out_ioas_id: '$qemu_ioas_2' } },
      { op: 'ioctl', fd: '$qemu_devfd', cmd: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', arg: { argsz: 12, flags: 0, pt_id: '$qemu_ioas_2' }, ret: 0 },
      {
        op: 'ioctl', fd: 10, cmd: 'IOMMU_IOAS_MAP',
        arg: { flags: RW, ioas_id: '$qemu_ioas_2', user_va: '0x7fce2c28b000', length: '0x3000', iova: '0x380000001000' }, errno: 'EINVAL',
      },
    ]);
    for (const e of r.events.slice(1, 5)) expect(e.note).toContain('synthesized');
    expect(r.events[5]?.note).toContain('errno from line 2: qemu-system-x86_64: IOMMU_IOAS_MAP failed: Invalid argument');
    expect(r.events[5]?.note).toContain('errno from line 3: ');
    expect(r.header.devices).toEqual([{
      path: '/dev/vfio/devices/vfio0', name: '0000:01:00.0',
      iommu: { pgsize_bitmap: '0x40201000', aperture: { start: 0, last: '0x7fffffffff' }, reserved: [{ start: '0xfee00000', last: '0xfeefffff', type: 'msi' }] },
    }]);
    expect(r.unused).toEqual([]);
    expectAccounted(text, r);
  });

  it('keeps ret -1 with a note when no QEMU message tells the errno of a failed map', () => {
    const r = run(example('t4-iova-beyond-39bit-aperture.log').split('\n')[0] ?? '');
    expect(r.events[1]).toMatchObject({ cmd: 'IOMMU_IOAS_MAP', ret: -1 });
    expect(r.events[1]?.errno).toBeUndefined();
    expect(r.events[1]?.note).toContain('not the errno');
  });

  it('imports T5 MAP_FILE calls with their fd and start, and lists the dma-buf and listener lines as unused', () => {
    const text = example('t5-bar-dmabuf-map-file.log');
    const r = run(text);
    expect(withoutNotes(r)).toEqual([
      { op: 'open', path: '/dev/iommu', flags: OPEN, ret: 303 },
      { op: 'ioctl', fd: 303, cmd: 'IOMMU_IOAS_MAP_FILE', arg: { flags: RW, ioas_id: 2, fd: 306, start: 0, length: '0xb90000', iova: '0x30000000000' }, ret: 0 },
      { op: 'ioctl', fd: 303, cmd: 'IOMMU_IOAS_MAP_FILE', arg: { flags: RW, ioas_id: 2, fd: 306, start: 12128256, length: '0x346f000', iova: '0x30000b91000' }, ret: 0 },
      { op: 'ioctl', fd: 303, cmd: 'IOMMU_IOAS_MAP_FILE', arg: { flags: RW, ioas_id: 2, fd: 307, start: 0, length: '0x4000000000', iova: '0x2c000000000' }, ret: 0 },
    ]);
    expect(r.unused.map((u) => [u.line, u.kind])).toEqual([[1, 'unconvertible'], [3, 'not-an-ioctl']]);
    expectAccounted(text, r);
  });
});

describe('QEMU event details', () => {
  const one = (line: string, opts: ImportOptions = {}): JsonObject | undefined => run(line, opts).events.at(-1);

  it('binds printf arguments by position, so alloc_viommu\'s mislabelled "type=" value is read as dev_id', () => {
    expect(one('iommufd_backend_alloc_viommu  iommufd=27 type=5 dev_id=1 hwpt_id=3 data_len=0 data_ptr=0x0 viommu_id=4 (0)')).toMatchObject({
      cmd: 'IOMMU_VIOMMU_ALLOC', arg: { flags: 0, type: 'IOMMU_VIOMMU_TYPE_ARM_SMMUV3', dev_id: 5, hwpt_id: 3, data_uptr: 0, data_len: 0 }, ret: 0, out: { out_viommu_id: 4 },
    });
  });

  it('reads the errno that set_dirty, get_dirty_bitmap and invalidate_cache print instead of the ioctl return', () => {
    expect(one('iommufd_backend_set_dirty  iommufd=27 hwpt=3 enable=1 (22)')).toMatchObject({
      cmd: 'IOMMU_HWPT_SET_DIRTY_TRACKING', arg: { flags: ['IOMMU_HWPT_DIRTY_TRACKING_ENABLE'], hwpt_id: 3 }, errno: 'EINVAL',
    });
    expect(one('iommufd_backend_invalidate_cache  iommufd=27 id=4 data_type=1 entry_len=16 entry_num=2 done_num=1 data_ptr=0x7f0000001000 (14)')).toMatchObject({
      cmd: 'IOMMU_HWPT_INVALIDATE', errno: 'EFAULT', out: { entry_num: 1 },
      arg: { hwpt_id: 4, data_uptr: '0x7f0000001000', data_type: 'IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3', entry_len: 16, entry_num: 2 },
    });
  });

  it('accepts the current and the older get_dirty_bitmap formats', () => {
    const arg = { hwpt_id: 3, iova: '0x100000', length: '0x80000000', page_size: '0x1000' };
    expect(one('iommufd_backend_get_dirty_bitmap  iommufd=27 hwpt=3 iova=0x100000 size=0x80000000 flags=0x1 page_size=0x1000 (0)'))
      .toMatchObject({ cmd: 'IOMMU_HWPT_GET_DIRTY_BITMAP', arg: { ...arg, flags: ['IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR'] }, ret: 0 });
    expect(one('iommufd_backend_get_dirty_bitmap  iommufd=27 hwpt=3 iova=0x100000 size=0x80000000 page_size=0x1000 (0)'))
      .toMatchObject({ arg: { ...arg, flags: 0 }, ret: 0 });
  });

  it('imports HWPT allocation, unmap-all, the ENOENT QEMU hides and a hot reset with their uapi names', () => {
    expect(one('iommufd_backend_alloc_hwpt  iommufd=27 dev_id=1 pt_id=2 flags=0x2 hwpt_type=0 len=0 data_ptr=0x0 out_hwpt=3 (0)')).toMatchObject({
      arg: { flags: ['IOMMU_HWPT_ALLOC_DIRTY_TRACKING'], dev_id: 1, pt_id: 2, data_type: 'IOMMU_HWPT_DATA_NONE', data_len: 0, data_uptr: 0 }, ret: 0, out: { out_hwpt_id: 3 },
    });
    expect(one('iommufd_backend_unmap_dma  iommufd=27 ioas=2 iova=0x0 size=0xffffffffffffffff (0)')).toMatchObject({ arg: { iova: 0, length: '0xffffffffffffffff' } });
    expect(one('iommufd_backend_unmap_dma_non_exist  Unmap nonexistent mapping: iommufd=27 ioas=2 iova=0x1000 size=0x1000 (-1)')).toMatchObject({ cmd: 'IOMMU_IOAS_UNMAP', errno: 'ENOENT' });
    const reset = run([
      'iommufd_cdev_getfd  /dev/vfio/devices/vfio0 (fd=28)',
      'iommufd_cdev_connect_and_bind  [iommufd=27] Successfully bound device 0000:01:00.0 (fd=28): output devid=1',
      'vfio_pci_hot_reset_result 0000:01:00.0 hot reset: Device or resource busy',
      'vfio_pci_reset_flr 0000:01:00.0 FLR/VFIO_DEVICE_RESET',
    ].join('\n')).events;
    expect(reset.slice(-2).map(({ note: _n, ...e }) => e)).toEqual([
      { op: 'ioctl', fd: 28, cmd: 'VFIO_DEVICE_PCI_HOT_RESET', arg: { flags: 0, count: 0 }, errno: 'EBUSY' },
      { op: 'ioctl', fd: 28, cmd: 'VFIO_DEVICE_RESET', ret: 0 },
    ]);
  });

  it('synthesizes the opens of fds libvirt passed in, and finds a declared device by its name', () => {
    const r = run([
      'iommu_backend_set_fd pre-opened /dev/iommu fd=30',
      'iommufd_backend_connect fd=30 owned=0 users=1',
      'iommufd_cdev_connect_and_bind  [iommufd=30] Successfully bound device 0000:01:00.0 (fd=31): output devid=1',
      'vfio_pci_reset_pm 0000:02:00.0 PCI PM Reset',
      'iommufd_cdev_getfd  /dev/vfio/devices/vfio7 (fd=33)',
      'vfio_pci_reset_pm 0000:02:00.0 PCI PM Reset',
    ].join('\n'), { header: declared('path=/dev/vfio/devices/vfio0,name=0000:01:00.0', 'path=/dev/vfio/devices/vfio7,name=0000:02:00.0') });
    expect(withoutNotes(r)).toEqual([
      { op: 'open', path: '/dev/iommu', flags: OPEN, ret: 30 },
      { op: 'open', path: '/dev/vfio/devices/vfio0', flags: OPEN, ret: 31 },
      { op: 'ioctl', fd: 31, cmd: 'VFIO_DEVICE_BIND_IOMMUFD', arg: { flags: 0, iommufd: 30 }, ret: 0, out: { out_devid: 1 } },
      { op: 'open', path: '/dev/vfio/devices/vfio7', flags: OPEN, ret: 33 },
      { op: 'ioctl', fd: 33, cmd: 'VFIO_DEVICE_RESET', ret: 0 },
    ]);
    expect(r.events[0]?.note).toMatch(/^synthesized \(fd 30 was opened outside QEMU/);
    expect(r.unused.map((u) => [u.line, u.kind])).toEqual([[2, 'not-an-ioctl'], [4, 'unconvertible']]);
  });

  it('reads a failed attach to an existing container out of QEMU\'s error text', () => {
    const r = run([
      'iommufd_cdev_getfd  /dev/vfio/devices/vfio1 (fd=30)',
      'iommufd_cdev_fail_attach_existing_container  [iommufd=27] error attach 0000:02:00.0 (30) to id=3: Invalid argument',
    ].join('\n'));
    expect(r.events.at(-1)).toMatchObject({ fd: 30, cmd: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', arg: { flags: 0, pt_id: 3 }, errno: 'EINVAL' });
  });

  it('takes the thread id and time from the log backend prefix and reads simpletrace.py output', () => {
    const logged = one('4242@1700000000.123456:iommufd_backend_free_id  iommufd=27 id=2 (0)');
    expect(logged).toMatchObject({ cmd: 'IOMMU_DESTROY', arg: { id: 2 }, ret: 0, tid: 4242 });
    expect(BigInt(String(logged?.ts))).toBe(1700000000123456000n);
    const simple = one('iommufd_backend_map_dma 12.345 pid=4242 iommufd=0x1b ioas=0x2 iova=0x1000 size=0x2000 vaddr=0x7f0000000000 readonly=0x1 ret=0xffffffffffffffff');
    expect(simple).toMatchObject({ fd: 27, arg: { flags: RO, ioas_id: 2, user_va: '0x7f0000000000', length: '0x2000', iova: '0x1000' }, ret: -1 });
  });

  it('wraps values QEMU prints signed: ioas ids above 2^31 and map_file starts above 2^63', () => {
    expect(one('iommufd_backend_map_file_dma  iommufd=3 ioas=-2 iova=0x0 size=0x1000 fd=9 start=-4096 readonly=0 (0)')).toMatchObject({
      arg: { ioas_id: 4294967294, start: '0xfffffffffffff000' },
    });
  });

  it('reports values that do not fit their C type precisely instead of importing them', () => {
    const r = run('iommufd_backend_map_dma  iommufd=27 ioas=2 iova=0x1ffffffffffffffff size=0x1000 addr=0x1000 readonly=0 (0)');
    expect(r.events).toEqual([]);
    expect(r.unused[0]).toMatchObject({ kind: 'unparseable', reason: 'iommufd_backend_map_dma: iova=1ffffffffffffffff: does not fit (uint64_t iova)' });
    const fd = run('iommufd_backend_free_id  iommufd=2147483648 id=2 (0)');
    expect(fd.unused[0]?.reason).toBe('iommufd_backend_free_id: iommufd=2147483648: does not fit (int iommufd)');
  });

  it('refuses an fd that the trace already knows as something else', () => {
    const r = run(['iommufd_cdev_getfd  /dev/vfio/devices/vfio0 (fd=27)', 'iommufd_backend_free_id  iommufd=27 id=2 (0)'].join('\n'));
    expect(r.unused[0]).toMatchObject({ line: 2, kind: 'unconvertible', reason: 'fd 27 is the VFIO device /dev/vfio/devices/vfio0 in this trace, not /dev/iommu' });
  });

  it('gives a legacy MAP_DMA the errno of the vfio_dma_map error that follows it (T7), and drops a section QEMU declined to map', () => {
    const r = run([
      'vfio_listener_region_add_ram region_add [ram] 0xc0000 - 0xc0fff [0x7f66406c0000]',
      'qemu-system-x86_64: vfio_dma_map(0x557b8fd281b0, 0xc0000, 0x1000, 0x7f66406c0000) = -22 (Invalid argument)',
      'vfio_listener_region_add_ram region_add [ram] 0xfa800000 - 0xfa800fff [0x7788e9d2c000]',
      'vfio_listener_region_add_no_dma_map Region "0000:01:00.0 BAR 2" 0xfa800000 size=0x1000 is not aligned to 0x10000 and cannot be mapped for DMA',
    ].join('\n'));
    expect(withoutNotes(r).slice(1)).toEqual([
      { op: 'ioctl', fd: '$container', cmd: 'VFIO_IOMMU_MAP_DMA', arg: { flags: ['VFIO_DMA_MAP_FLAG_READ', 'VFIO_DMA_MAP_FLAG_WRITE'], vaddr: '0x7f66406c0000', iova: '0xc0000', size: '0x1000' }, errno: 'EINVAL' },
    ]);
    expect(r.unused.map((u) => [u.line, u.kind, u.reason])).toEqual([
      [3, 'not-an-ioctl', 'QEMU did not map this section (line 4)'],
      [4, 'not-an-ioctl', 'QEMU leaves this unaligned section unmapped'],
    ]);
  });

  it('sorts what it cannot use into not an ioctl, unparseable and unconvertible', () => {
    const r = run([
      'vfio_msix_enable  (0000:01:00.0)',
      'vfio_brand_new_event foo=1',
      'hello world',
      'iommufd_backend_map_dma  iommufd=27 ioas=2 iova=zz size=0x1000 addr=0x1000 readonly=0 (0)',
      'vfio_migration_set_device_state  (0000:01:00.0) state RUNNING',
      'qemu-system-x86_64: warning: something unrelated',
    ].join('\n'));
    expect(r.events).toEqual([]);
    expect(r.unused.map((u) => [u.kind, u.reason])).toEqual([
      ['not-an-ioctl', 'informational VFIO trace event'],
      ['unparseable', 'unknown trace event vfio_brand_new_event (not one the importer knows)'],
      ['unparseable', 'not a QEMU trace-event line or QEMU message'],
      ['unparseable', "iommufd_backend_map_dma: arguments do not match the event's format"],
      ['unconvertible', 'VFIO_DEVICE_FEATURE(MIG_DEVICE_STATE): device migration state is outside the IOMMU model'],
      ['not-an-ioctl', 'QEMU message that does not explain a failed call right before it'],
    ]);
  });

  it('handles very long lines in linear time', () => {
    const long = 'x'.repeat(200_000);
    const lines = [
      `iommufd_backend_map_dma  iommufd=27 ${long}`, `vfio_${'a'.repeat(200_000)}(`, `qemu${long}: ${long}`,
      `vfio_container_dma_map(${'1,'.repeat(100_000)}`, `a_${'b_'.repeat(100_000)}`, `IOMMU_IOAS_MAP failed: ${long}`,
    ];
    const start = performance.now();
    const r = run(lines.join('\n'));
    expect(performance.now() - start).toBeLessThan(2000);
    expect(r.unused).toHaveLength(lines.length);
  });

  it('compiles every known event format with one conversion per argument it names', () => {
    for (const [name, def] of Object.entries(EVENTS)) expect(formatsCompile(def), name).toBe(true);
  });

  it('serializes byte for byte the same on every run, header first, one JSON object per line', () => {
    const text = example('t1-vfio-ap-mdev-realize-fails.log');
    const a = serializeTrace(run(text));
    expect(serializeTrace(run(text))).toBe(a);
    const lines = a.trimEnd().split('\n');
    expect(lines).toHaveLength(12);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ iotrail: 1 });
    expect(serializeTrace({ header: { iotrail: 1 }, events: [{ v: 2n ** 60n } as unknown as JsonObject] })).toBe('{"iotrail":1}\n{"v":"0x1000000000000000"}\n');
  });
});

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const hex = (v: bigint): string => v.toString(16);
const asJsonValue = (v: unknown): bigint => BigInt(v as number | string);
const int32 = (v: number): number => (v >= 2 ** 31 ? v - 2 ** 32 : v);

describe('generated lines', () => {
  it('round-trips every number of random map and unmap lines through the trace', () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), u64, u64, u64, fc.boolean(),
      fc.constantFrom(0, -1, -22, -14), fc.boolean(),
      (fd, ioas, iova, size, addr, readonly, ret, prefix) => {
        const p = prefix ? '77@1700000000.000001:' : '';
        const va = addr === 0n ? '(nil)' : `0x${hex(addr)}`;
        const text = [
          `${p}iommufd_backend_map_dma  iommufd=${fd} ioas=${int32(ioas)} iova=0x${hex(iova)} size=0x${hex(size)} addr=${va} readonly=${readonly ? 1 : 0} (${ret})`,
          `${p}iommufd_backend_unmap_dma  iommufd=${fd} ioas=${int32(ioas)} iova=0x${hex(iova)} size=0x${hex(size)} (${ret})`,
        ].join('\n');
        const r = run(text);
        const parsed = serializeTrace(r).trimEnd().split('\n').map((l) => JSON.parse(l) as JsonObject);
        const [, open, map, unmap] = parsed;
        expect(open).toMatchObject({ op: 'open', path: '/dev/iommu', ret: fd });
        const m = map?.arg as JsonObject;
        expect([asJsonValue(m.iova), asJsonValue(m.length), asJsonValue(m.user_va), asJsonValue(m.ioas_id)]).toEqual([iova, size, addr, BigInt(ioas)]);
        expect(m.flags).toEqual(readonly ? RO : RW);
        const u = unmap?.arg as JsonObject;
        expect([asJsonValue(u.iova), asJsonValue(u.length)]).toEqual([iova, size]);
        const outcome = ret === 0 ? { ret: 0 } : ret === -1 ? { ret: -1 } : { errno: ret === -22 ? 'EINVAL' : 'EFAULT' };
        expect(map).toMatchObject(outcome);
        expect(unmap).toMatchObject(outcome);
        expect(r.unused).toEqual([]);
      }), { numRuns: 300 });
  });

  it('lands random garbage lines in unused with a reason and never throws', () => {
    fc.assert(fc.property(fc.array(fc.string({ unit: 'binary', maxLength: 120 }).map((s) => s.replace(/[\r\n]/g, ' ')), { maxLength: 20 }), (lines) => {
      const text = lines.join('\n');
      const r = run(text);
      expectAccounted(text, r);
    }), { numRuns: 300 });
  });

  it('accounts for every line of damaged real lines: imported, or unused with a reason', () => {
    const real = ['t1-vfio-ap-mdev-realize-fails.log', 't3-legacy-type1-igd.log', 't4-iova-beyond-39bit-aperture.log', 't5-bar-dmabuf-map-file.log']
      .flatMap((f) => example(f).split('\n')).filter((l) => l !== '');
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom(...real), fc.nat(200), fc.nat(8), fc.string({ maxLength: 6 })), { maxLength: 12 }), (edits) => {
      const text = edits.map(([line, at, cut, ins]) => line.slice(0, at % (line.length + 1)) + ins + line.slice((at % (line.length + 1)) + cut)).join('\n');
      const r = run(text);
      expectAccounted(text, r);
      for (const u of r.unused) expect(['not-an-ioctl', 'unparseable', 'unconvertible']).toContain(u.kind);
    }), { numRuns: 300 });
  });
});
