/**
 * `iotrail record`: the LD_PRELOAD recorder (native/recorder.c) driven through recordMain, against
 * native/test/fake_vmm.c. This machine has no /dev/iommu, so fake_vmm's "iommufd" and "VFIO device"
 * are plain files named with --path, and the kernel answers ENOTTY. The same program linked with
 * its fake-kernel half (-DFAKE_KERNEL) gets iommufd-like answers, which exercises output fields,
 * EMSGSIZE and the fds that ioctls return.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot, recordMain } from '../../src/cli/record.js';
import { decodeHeader } from '../../src/events/header.js';
import { decodeEvent } from '../../src/events/trace.js';

const root = packageRoot();
let dir = '';
let lib = '';
let vmm = '';
let vmmFk = '';

function cc(args: string[]): void {
  const r = spawnSync('cc', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`these tests need a C compiler and \`cc\` could not be run: ${r.error.message}`);
  if (r.status !== 0 || r.stderr.trim() !== '') {
    throw new Error(`cc ${args.join(' ')} failed or warned (the C code must build warning-free):\n${r.stderr}`);
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'iotrail-record-'));
  const warn = ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror'];
  const fake = join(root, 'native', 'test', 'fake_vmm.c');
  lib = join(dir, 'libiotrail_record.so');
  vmm = join(dir, 'fake_vmm');
  vmmFk = join(dir, 'fake_vmm_fk');
  cc([...warn, '-shared', '-fPIC', '-o', lib, join(root, 'native', 'recorder.c'), '-ldl', '-lpthread']);
  cc([...warn, '-o', vmm, fake, '-lpthread']);
  cc([...warn, '-shared', '-fPIC', '-DFAKE_KERNEL', '-o', join(dir, 'libfakekernel.so'), fake, '-ldl']);
  cc([...warn, '-o', vmmFk, fake, `-L${dir}`, '-lfakekernel', `-Wl,-rpath,${dir}`, '-lpthread']);
});

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

type Json = Record<string, unknown>;
interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly facts: Readonly<Record<string, number>>;
  readonly lines: readonly string[];
  readonly header: Json;
  readonly events: readonly Json[];
  readonly messages: string;
  readonly iommu: string;
  readonly dev: string;
  readonly group: string;
}

/** Empties the stand-in device files: fake_vmm's pwrite leaves bytes that a later pread would see. */
function fresh(...files: string[]): void {
  for (const f of files) writeFileSync(f, '');
}

function fakeEnv(iommu: string, dev: string, group: string): NodeJS.ProcessEnv {
  return { FAKE_KERNEL_IOMMU: iommu, FAKE_KERNEL_DEVICE: dev, FAKE_KERNEL_GROUP: group };
}

/** Runs a fake_vmm build under `iotrail record`, through a shell that execs it with its output in files. */
async function recordVmm(program: string, name: string): Promise<Run> {
  const iommu = join(dir, `${name}-iommu`);
  const dev = join(dir, `${name}-vfio0`);
  // A legacy group, matched by a --path prefix and classified by its name (…/vfio/12).
  const groups = join(dir, `${name}-groups`);
  const group = join(groups, 'vfio', '12');
  mkdirSync(dirname(group), { recursive: true });
  fresh(iommu, dev, group);
  const out = join(dir, `${name}.jsonl`);
  const so = join(dir, `${name}.stdout`);
  const se = join(dir, `${name}.stderr`);
  const exports = Object.entries(fakeEnv(iommu, dev, group)).map(([k, v]) => `export ${k}='${v}'; `).join('');
  const script = `${exports}exec "$0" "$@" >'${so}' 2>'${se}'`;
  let messages = '';
  const code = await recordMain(
    ['--out', out, '--path', iommu, `--path=${dev}=vfio-device`, '--path', `${groups}/`, '--', '/bin/sh', '-c', script, program, iommu, dev, group],
    { library: lib, stderr: { write: (s: string) => (messages += s) } },
  );
  const facts: Record<string, number> = {};
  for (const m of readFileSync(se, 'utf8').matchAll(/^fact (\w+)=(\S+)$/gm)) facts[m[1] as string] = Number(m[2]);
  const lines = readFileSync(out, 'utf8').split('\n');
  expect(lines.pop()).toBe('');
  const [header, ...events] = lines.map((l) => JSON.parse(l) as Json);
  return { code, stdout: readFileSync(so, 'utf8'), facts, lines, header: header as Json, events, messages, iommu, dev, group };
}

/** fake_vmm's calls on its main thread, in order, as the trace must show them (tid aside). */
function expectedEvents(r: Run, fake: boolean): Json[] {
  const f = r.facts as Record<string, number>;
  const fd = f.iommufd;
  const ioas = fake ? 1 : 7;
  const ioctl = (cmd: string, arg: unknown, result: Json, extra: Json = {}): Json => ({
    op: 'ioctl',
    fd,
    cmd,
    ...(arg === undefined ? {} : { arg }),
    ...result,
    ...extra,
  });
  const ok = (out?: Json): Json => (out === undefined ? { ret: 0 } : { ret: 0, out });
  const enotty = { errno: 'ENOTTY' };
  const res = (out?: Json): Json => (fake ? ok(out) : enotty);
  const fault = fake
    ? [
        { op: 'read', fd: f.fault_fd, count: 40, ret: 0, out: { data: '' } },
        { op: 'write', fd: f.fault_fd, data: '0100000000000000', ret: 8 },
        { op: 'close', fd: f.fault_fd, ret: 0 },
      ]
    : [];
  const pathNote = (kind: string): Json => ({ note: `matched IOTRAIL_RECORD_PATHS; recorded as ${kind}` });
  return [
    { op: 'memfd_create', name: 'guest-ram', flags: 1, ret: f.memfd },
    { op: 'ftruncate', fd: f.memfd, length: 65536, ret: 0 },
    { op: 'mmap', length: 65536, prot: 3, flags: 1, fd: f.memfd, offset: 0, ret: f.ram },
    { op: 'open', path: r.iommu, flags: 0o2000002, ret: fd, ...pathNote('iommufd') },
    ioctl('IOMMU_IOAS_ALLOC', { size: 12, flags: 0 }, res({ out_ioas_id: 1 })),
    ioctl(
      'IOMMU_IOAS_ALLOW_IOVAS',
      {
        size: 24,
        ioas_id: ioas,
        num_iovas: 2,
        __reserved: 0,
        allowed_iovas: [
          { start: 0x1000, last: 0xfffff },
          { start: 0x1000000, last: '0xffffffffffffffff' },
        ],
      },
      res(),
    ),
    ioctl(
      'IOMMU_IOAS_IOVA_RANGES',
      { size: 32, ioas_id: ioas, num_iovas: 0, __reserved: 0, allowed_iovas: 0 },
      fake ? { errno: 'EMSGSIZE', out: { num_iovas: 2 } } : enotty,
    ),
    ioctl(
      'IOMMU_IOAS_IOVA_RANGES',
      {
        size: 32,
        ioas_id: ioas,
        num_iovas: 2,
        __reserved: 0,
        allowed_iovas: [
          { start: 0, last: 0 },
          { start: 0, last: 0 },
        ],
      },
      res({
        num_iovas: 2,
        allowed_iovas: [
          { start: 0, last: 0xfedfffff },
          { start: 0xfef00000, last: '0xffffffffffffffff' },
        ],
        out_iova_alignment: 4096,
      }),
    ),
    ioctl(
      'IOMMU_IOAS_MAP',
      { size: 40, flags: 7, ioas_id: ioas, __reserved: 0, user_va: f.ram, length: 65536, iova: 0x1000000 },
      res({ iova: 0x1000000 }),
    ),
    ioctl(
      'IOMMU_IOAS_MAP',
      { size: 40, flags: 6, ioas_id: ioas, __reserved: 0, user_va: f.anon, length: 8192, iova: 0 },
      res({ iova: 0x200000 }),
    ),
    ioctl('VFIO_IOMMU_MAP_DMA', { argsz: 32, flags: 3, vaddr: f.ram, iova: 0x2000000, size: 4096 }, res()),
    ioctl('VFIO_CHECK_EXTENSION', 3, fake ? { ret: 1 } : enotty),
    ioctl('0x3bfe', {}, enotty, { note: `unknown ioctl 0x3bfe on this fd; argument 0x${(f.ram as number).toString(16)} not decoded` }),
    ioctl(
      'IOMMU_TEST_CMD',
      { size: 72, op: 'IOMMU_TEST_OP_ADD_RESERVED', id: ioas, __reserved: 0, add_reserved: { start: 0x40000000, length: 4096 } },
      res(),
    ),
    ioctl('IOMMU_IOAS_ALLOC', null, fake ? { errno: 'EFAULT' } : enotty),
    ioctl(
      'IOMMU_GET_HW_INFO',
      { size: 40, flags: 0, dev_id: 1, data_len: 16, data_uptr: expect.any(Number), in_data_type: 0 },
      res({
        data_len: 8,
        data_uptr: '00000000efbeadde',
        out_data_type: 0xfeedbeef,
        out_max_pasid_log2: 0,
        out_capabilities: 1,
      }),
    ),
    ioctl('IOMMU_FAULT_QUEUE_ALLOC', { size: 16, flags: 0 }, res({ out_fault_id: 2, out_fault_fd: f.fault_fd })),
    ...fault,
    { op: 'madvise', addr: f.ram, length: 4096, advice: 4, ret: 0 },
    ioctl('IOMMU_IOAS_UNMAP', { size: 24, ioas_id: ioas, iova: 0x1000000, length: 65536 }, res({ length: 65536 })),
    { op: 'open', path: r.dev, flags: 0o2000002, ret: f.devfd, ...pathNote('vfio-device') },
    {
      op: 'ioctl',
      fd: f.devfd,
      cmd: 'VFIO_DEVICE_BIND_IOMMUFD',
      arg: { argsz: 24, flags: 0, iommufd: fd, token_uuid_ptr: 0 },
      ...res({ out_devid: 3 }),
    },
    { op: 'pread', fd: f.devfd, offset: 0, count: 4, ret: 0, out: { data: '' } },
    { op: 'pwrite', fd: f.devfd, offset: 4, data: '0604', ret: 2 },
    { op: 'close', fd: f.devfd, ret: 0 },
    { op: 'open', path: r.group, flags: 0o2000002, ret: f.groupfd, ...pathNote('vfio-group') },
    { op: 'ioctl', fd: f.groupfd, cmd: 'VFIO_GROUP_GET_STATUS', arg: { argsz: 8 }, ...res({ flags: 1 }) },
    { op: 'ioctl', fd: f.groupfd, cmd: 'VFIO_GROUP_SET_CONTAINER', arg: fd, ...res() },
    { op: 'ioctl', fd: f.groupfd, cmd: 'VFIO_GROUP_GET_DEVICE_FD', arg: '0000:01:00.0', ...(fake ? { ret: f.gdevfd } : enotty) },
    // The fd VFIO_GROUP_GET_DEVICE_FD returned is followed as a device: 0x3b6c is decoded as a device ioctl.
    ...(fake
      ? [
          {
            op: 'ioctl',
            fd: f.gdevfd,
            cmd: 'VFIO_DEVICE_GET_REGION_INFO',
            arg: { argsz: 32, index: 7 },
            ret: 0,
            // iotrail's replay treats this command as opaque, so what it wrote is kept for people only.
            note: `out (iotrail does not compare it): {"argsz":32,"flags":3,"cap_offset":0,"size":256,"offset":${7 * 2 ** 40}}`,
          },
          { op: 'close', fd: f.gdevfd, ret: 0 },
        ]
      : []),
    { op: 'close', fd: f.groupfd, ret: 0 },
    ioctl('IOMMU_DESTROY', { size: 8, id: ioas }, res()),
    { op: 'munmap', addr: f.ram, length: 65536, ret: 0 },
    // The anonymous buffer matters to the IOMMU only once IOAS_MAP accepted it.
    ...(fake ? [{ op: 'munmap', addr: f.anon, length: 8192, ret: 0 }] : []),
    { op: 'close', fd, ret: 0 },
    { op: 'close', fd: f.memfd, ret: 0 },
  ];
}

function mainThread(r: Run): Json[] {
  const tid = r.events[0]?.tid;
  return r.events.filter((e) => e.tid === tid).map(({ tid: _tid, ...rest }) => rest);
}

describe('iotrail record', () => {
  let enotty: Run;
  let faked: Run;
  beforeAll(async () => {
    enotty = await recordVmm(vmm, 'enotty');
    faked = await recordVmm(vmmFk, 'fake');
  });

  it('records every call the program makes on a file that is not an iommufd, with the kernel’s real ENOTTY', () => {
    expect(enotty.facts).toEqual({
      memfd: expect.any(Number),
      ram: expect.any(Number),
      anon: expect.any(Number),
      iommufd: expect.any(Number),
      devfd: expect.any(Number),
      groupfd: expect.any(Number),
    });
    expect(mainThread(enotty)).toEqual(expectedEvents(enotty, false));
  });

  it('records output fields, EMSGSIZE counts and calls on fds that ioctls return when the ioctls succeed', () => {
    expect(faked.facts.fault_fd).toEqual(expect.any(Number));
    expect(faked.facts.gdevfd).toEqual(expect.any(Number));
    expect(mainThread(faked)).toEqual(expectedEvents(faked, true));
  });

  it('leaves the program’s stdout and exit code exactly as they are without the recorder', () => {
    for (const [run, program] of [
      [enotty, vmm],
      [faked, vmmFk],
    ] as const) {
      fresh(run.iommu, run.dev);
      const plain = spawnSync(program, [run.iommu, run.dev, run.group], {
        encoding: 'utf8',
        env: { ...process.env, ...fakeEnv(run.iommu, run.dev, run.group) },
      });
      expect(run.code).toBe(42);
      expect(plain.status).toBe(42);
      expect(run.stdout).toBe(plain.stdout);
    }
    expect(faked.stdout).toContain('IOMMU_IOAS_IOVA_RANGES ret=-1 errno=90\n');
  });

  it('writes one JSON object per line with the header on line 1 and renames the trace into place', () => {
    for (const run of [enotty, faked]) {
      for (const line of run.lines) expect(() => JSON.parse(line)).not.toThrow();
      expect(run.header).toEqual({
        iotrail: 1,
        page_size: Number(spawnSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).stdout),
        memory: 'implicit',
        limits: { memlock: expect.anything(), cap_sys_resource: expect.any(Boolean), cap_ipc_lock: expect.any(Boolean) },
        source: expect.stringMatching(/^iotrail record: \/bin\/sh -c '.*' \S+fake_vmm(_fk)? \S+-iommu \S+-vfio0 \S+\/vfio\/12$/),
      });
      expect(run.events.every((e) => !('iotrail' in e) && typeof e.op === 'string' && typeof e.tid === 'number')).toBe(true);
      expect(run.messages).toBe(`iotrail record: wrote ${run.events.length} events to ${join(dir, run === enotty ? 'enotty.jsonl' : 'fake.jsonl')}\n`);
    }
    expect(readdirSync(dir).filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('writes only lines that iotrail’s own trace decoder accepts', () => {
    for (const run of [enotty, faked]) {
      const [header, ...events] = run.lines.map((l) => JSON.parse(l) as unknown);
      expect(decodeHeader(header).ok).toBe(true);
      const rejected = events.map((e, i) => decodeEvent(e, i + 2)).filter((d) => !d.ok);
      expect(rejected).toEqual([]);
    }
  });

  it('records each thread’s calls as whole lines under that thread’s own id', () => {
    for (const run of [enotty, faked]) {
      const main = run.events[0]?.tid;
      const others = run.events.filter((e) => e.tid !== main);
      expect(new Set(others.map((e) => e.tid)).size).toBe(4);
      const ids = others.map((e) => {
        expect(e).toMatchObject({ op: 'ioctl', fd: run.facts.iommufd, cmd: 'IOMMU_DESTROY', arg: { size: 8 } });
        return (e.arg as Json).id as number;
      });
      const want = [0, 1, 2, 3].flatMap((t) => Array.from({ length: 25 }, (_, i) => 1000 + t * 100 + i));
      expect(ids.sort((a, b) => a - b)).toEqual(want);
    }
  });
});

describe('iotrail record without the IOMMU', () => {
  async function quiet(argv: string[], library: string | undefined = lib): Promise<{ code: number; messages: string }> {
    let messages = '';
    const stderr = { write: (s: string) => (messages += s) };
    const code = await recordMain(argv, library === undefined ? { stderr } : { library, stderr });
    return { code, messages };
  }

  it('rejects a missing command, an unknown option and a missing directory with exit code 2', async () => {
    expect(await quiet([])).toEqual({ code: 2, messages: expect.stringContaining('no command given') });
    expect(await quiet(['--frobnicate', '--', 'true'])).toEqual({ code: 2, messages: expect.stringContaining('unknown option "--frobnicate"') });
    expect(await quiet(['--out'])).toEqual({ code: 2, messages: expect.stringContaining('--out needs a value') });
    const missing = join(dir, 'no-such-dir', 't.jsonl');
    expect(await quiet(['--out', missing, '--', 'true'])).toEqual({ code: 2, messages: expect.stringContaining('does not exist') });
    expect(existsSync(missing)).toBe(false);
  });

  it('writes a header-only trace and forwards the exit code when the command never touches the IOMMU', async () => {
    const out = join(dir, 'none.jsonl');
    const r = await quiet(['-o', out, '--', 'sh', '-c', 'exit 3']);
    expect(r.code).toBe(3);
    expect(r.messages).toContain('no IOMMU calls were seen');
    const lines = readFileSync(out, 'utf8').split('\n');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ iotrail: 1, memory: 'implicit', source: "iotrail record: sh -c 'exit 3'" });
  });

  it('reports a command that cannot be found with exit code 127 and leaves no trace behind', async () => {
    const out = join(dir, 'notfound.jsonl');
    const r = await quiet(['--out', out, '--', join(dir, 'no-such-program')]);
    expect(r).toEqual({ code: 127, messages: expect.stringContaining('command not found') });
    expect(existsSync(out)).toBe(false);
  });

  it('drops a last line that was cut short instead of leaving an unreadable trace', async () => {
    // Stands in for the library hitting a full disk: the command writes the partial trace itself
    // (its parent, $PPID, is the process running recordMain).
    const out = join(dir, 'cut.jsonl');
    const partialPrefix = join(dir, '.cut.jsonl.partial-');
    const script = `printf '{"iotrail":1}\\n{"op":"close","fd":3,"ret":0}\\n{"op":"clo' > '${partialPrefix}'"$PPID"`;
    const r = await quiet(['--out', out, '--', 'sh', '-c', script]);
    expect(r.code).toBe(0);
    expect(r.messages).toContain('cut short');
    expect(readFileSync(out, 'utf8')).toBe('{"iotrail":1}\n{"op":"close","fd":3,"ret":0}\n');
  });

  it('returns 128 plus the signal number when the command is killed', async () => {
    const r = await quiet(['--out', join(dir, 'killed.jsonl'), '--', 'sh', '-c', 'kill -TERM $$']);
    expect(r.code).toBe(128 + 15);
    expect(r.messages).toContain('was killed by SIGTERM');
  });

  it('says once on stderr that it cannot write its trace, and the program runs on unchanged', () => {
    const iommu = join(dir, 'unwritable-iommu');
    const dev = join(dir, 'unwritable-vfio0');
    fresh(iommu, dev);
    const plain = spawnSync(vmm, [iommu, dev], { encoding: 'utf8' });
    fresh(iommu, dev);
    const r = spawnSync(vmm, [iommu, dev], {
      encoding: 'utf8',
      env: {
        ...process.env,
        LD_PRELOAD: lib,
        IOTRAIL_RECORD_OUT: join(dir, 'no-such-dir', 'trace.jsonl'),
        IOTRAIL_RECORD_PATHS: `${iommu}:${dev}=vfio-device`,
      },
    });
    expect(r.status).toBe(42);
    expect(r.stdout).toBe(plain.stdout);
    const notes = r.stderr.split('\n').filter((l) => l.startsWith('iotrail record:'));
    expect(notes).toEqual([expect.stringContaining('cannot create trace file')]);
  });

  it('finds the package’s own recorder library, building it when it is missing or stale', async () => {
    const out = join(dir, 'own-library.jsonl');
    const r = await quiet(['--out', out, '--', 'true'], undefined);
    expect(r.code).toBe(0);
    expect(existsSync(join(root, 'native', 'build', 'libiotrail_record.so'))).toBe(true);
    expect(existsSync(out)).toBe(true);
  });
});
