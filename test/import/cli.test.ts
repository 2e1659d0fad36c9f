import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { importMain } from '../../src/cli/import.js';
import { importQemu, serializeTrace } from '../../src/import/qemu.js';

const T1 = new URL('../../examples/qemu/t1-vfio-ap-mdev-realize-fails.log', import.meta.url).pathname;
const T4 = new URL('../../examples/qemu/t4-iova-beyond-39bit-aperture.log', import.meta.url).pathname;

let dir: string;
let stdout: string;
let stderr: string;
const io = { stdout: (t: string) => void (stdout += t), stderr: (t: string) => void (stderr += t) };
const cli = (...argv: string[]): Promise<number> => importMain(argv, io);

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'iotrail-import-'));
  stdout = '';
  stderr = '';
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('iotrail import qemu', () => {
  it('writes the trace to --out through a temp file renamed into place, leaving nothing else behind', async () => {
    const out = join(dir, 't1.jsonl');
    await writeFile(out, 'old contents\n');
    expect(await cli('qemu', T1, '--out', out)).toBe(0);
    // readline yields no empty line after the final newline.
    const lines = (await readFile(T1, 'utf8')).replace(/\n$/, '').split('\n');
    const expected = serializeTrace(importQemu(lines, { source: 't1-vfio-ap-mdev-realize-fails.log' }));
    expect(await readFile(out, 'utf8')).toBe(expected);
    expect(await readdir(dir)).toEqual(['t1.jsonl']);
    expect(stdout).toBe('');
    expect(stderr).toContain('11 events (2 synthesized) from 12 lines written to');
    expect(stderr).toContain('1 line not imported: 1 not an ioctl, 0 unparseable, 0 unconvertible');
    expect(stderr).toContain('  line 5: not an ioctl: restates the IOMMU_IOAS_ALLOC');
  });

  it('leaves an existing output untouched and exits 2 when the log cannot be read', async () => {
    const out = join(dir, 'keep.jsonl');
    await writeFile(out, 'keep me\n');
    expect(await cli('qemu', join(dir, 'missing.log'), '--out', out)).toBe(2);
    expect(await readFile(out, 'utf8')).toBe('keep me\n');
    expect(await readdir(dir)).toEqual(['keep.jsonl']);
    expect(stderr).toMatch(/^iotrail import: cannot read .*missing\.log: ENOENT/);
  });

  it('exits 2 without leaving a temp file when the output cannot be written', async () => {
    await mkdir(join(dir, 'taken'));
    expect(await cli('qemu', T1, '--out', join(dir, 'taken'))).toBe(2);
    expect((await readdir(dir)).sort()).toEqual(['taken']);
    expect(await cli('qemu', T1, '--out', join(dir, 'no', 'such', 'dir.jsonl'))).toBe(2);
    expect((await readdir(dir)).sort()).toEqual(['taken']);
    expect(stderr).toContain('cannot write');
  });

  it('writes to stdout without --out and puts the declared devices in the header', async () => {
    expect(await cli('qemu', T4, '--device', 'path=/dev/vfio/devices/vfio0,name=0000:01:00.0,aw=39,reserved=0xfee00000-0xfeefffff:msi')).toBe(0);
    const [header, open, ...rest] = stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const map = rest.at(-1);
    expect(header?.devices).toEqual([{
      path: '/dev/vfio/devices/vfio0', name: '0000:01:00.0',
      iommu: { aperture: { start: 0, last: '0x7fffffffff' }, reserved: [{ start: '0xfee00000', last: '0xfeefffff', type: 'msi' }] },
    }]);
    expect(open).toMatchObject({ op: 'open', path: '/dev/iommu', ret: 10 });
    expect(map).toMatchObject({ cmd: 'IOMMU_IOAS_MAP', errno: 'EINVAL' });
    expect(stderr).toContain('written to stdout');
  });

  it('merges --header and prints a machine-readable report with --json', async () => {
    const header = join(dir, 'header.json');
    await writeFile(header, '{"limits": {"memlock": 1048576, "cap_sys_resource": false}}');
    const out = join(dir, 't1.jsonl');
    expect(await cli('qemu', T1, '--header', header, '--out', out, '--json')).toBe(0);
    const first = JSON.parse((await readFile(out, 'utf8')).split('\n')[0] ?? '') as Record<string, unknown>;
    expect(first.limits).toEqual({ memlock: 1048576, cap_sys_resource: false });
    expect(JSON.parse(stdout)).toEqual({
      format: 'qemu', input: T1, output: out, backend: 'iommufd', lines: 12, blank: 0, used: 11, events: 11, synthesized: 2,
      not_imported: { total: 1, not_an_ioctl: 1, unparseable: 0, unconvertible: 0 },
      unused: [{ line: 5, kind: 'not-an-ioctl', reason: 'restates the IOMMU_IOAS_ALLOC that iommufd_backend_alloc_ioas reports', text: 'iommufd_cdev_alloc_ioas  [iommufd=27] new IOMMUFD container with ioasid=2' }],
    });
    expect(stderr).toBe('');
  });

  it('exits 2 with the usage on a bad command line', async () => {
    expect(await cli()).toBe(2);
    expect(await cli('strace', T1)).toBe(2);
    expect(stderr).toContain('unknown log format "strace" (known: qemu)');
    expect(await cli('qemu')).toBe(2);
    expect(await cli('qemu', T1, '--bogus')).toBe(2);
    expect(await cli('qemu', T1, '--device', 'name=x')).toBe(2);
    expect(stderr).toContain('path= is required');
    expect(await cli('qemu', T1, '--backend', 'type1')).toBe(2);
    expect(await cli('qemu', T1, '--header', join(dir, 'none.json'))).toBe(2);
    expect(stderr).toContain('usage: iotrail import qemu LOG');
    expect(stdout).toBe('');
    expect(await cli('--help')).toBe(0);
    expect(stdout).toContain('usage: iotrail import qemu LOG');
  });
});
