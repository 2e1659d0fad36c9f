/**
 * Line 1 of a trace (trace-format.md "Header"): the platform the trace was taken on: page size, whether the
 * kernel has the selftest mock driver, how user memory is known, RLIMIT_MEMLOCK and capabilities, and the VFIO
 * devices with their IOMMU (page sizes, aperture, reserved regions).
 */
import { FLAG_SETS } from './flags.js';
import { bad, decodeUnsigned, ok, show, type Decoded } from './values.js';
import { decodeNames } from './struct_codec.js';

export interface HeaderVma {
  readonly start: bigint; readonly length: bigint; readonly prot: bigint; readonly flags: bigint;
  readonly fd: bigint | undefined; readonly offset: bigint;
}
export interface HeaderRange { readonly start: bigint; readonly last: bigint }
export interface HeaderDevice {
  readonly path: string;
  readonly name: string;
  readonly group: number | undefined;
  readonly iommu: {
    readonly pgsize_bitmap: bigint;
    readonly aperture: HeaderRange;
    readonly reserved: readonly (HeaderRange & { readonly type: string })[];
    readonly dirty_tracking: boolean;
    readonly max_pasids: number;
    readonly msi_isolated: boolean;
  };
  readonly bars: readonly { readonly index: number; readonly size: bigint }[];
  /**
   * A mediated device (`vfio_register_emulated_iommu_dev`): its group is an emulated IOMMU group (no IOMMU, `iommu`
   * is ignored), and its driver reaches guest memory through the external pin API; `dmaUnmap` says whether the
   * driver has the `dma_unmap` callback that pinning requires (docs/trace-format-type1.md).
   */
  readonly mdev?: { readonly dmaUnmap: boolean };
}
export interface TraceHeader {
  readonly iotrail: 1;
  readonly page_size: number;
  readonly iommufd_test: boolean;
  readonly memory: 'explicit' | 'implicit';
  readonly vmas: readonly HeaderVma[];
  readonly limits: {
    readonly memlock: bigint | 'unlimited'; readonly cap_sys_resource: boolean; readonly cap_ipc_lock: boolean;
    /** vfio_iommu_type1's `dma_entry_limit` module parameter when not its default 65535 (docs/trace-format-type1.md). */
    readonly dma_entry_limit?: number;
  };
  readonly vfio_container: 'iommufd' | 'type1';
  readonly devices: readonly HeaderDevice[];
  readonly kernel: string | undefined;
  readonly source: string | undefined;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks that `o` has only `allowed` keys; returns the first problem. */
function onlyKeys(o: Obj, allowed: readonly string[], path: string): Decoded<true> {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) return bad(path === '' ? k : `${path}.${k}`, `unknown field ${show(k)}`);
  return ok(true);
}
const boolAt = (o: Obj, k: string, dflt: boolean, path: string): Decoded<boolean> =>
  o[k] === undefined ? ok(dflt) : typeof o[k] === 'boolean' ? ok(o[k] as boolean) : bad(`${path}${k}`, `expected true or false, got ${show(o[k])}`);
const u64At = (o: Obj, k: string, dflt: bigint | undefined, path: string): Decoded<bigint> =>
  o[k] === undefined ? (dflt === undefined ? bad(`${path}${k}`, `missing required field ${show(k)}`) : ok(dflt)) : decodeUnsigned(o[k], 64, `${path}${k}`);

function decodeRange(v: unknown, path: string): Decoded<HeaderRange> {
  if (!isObj(v)) return bad(path, `expected {"start","last"}, got ${show(v)}`);
  const k = onlyKeys(v, ['start', 'last', 'type'], path);
  if (!k.ok) return k;
  const s = u64At(v, 'start', undefined, `${path}.`);
  if (!s.ok) return s;
  const l = u64At(v, 'last', undefined, `${path}.`);
  if (!l.ok) return l;
  if (l.value < s.value) return bad(`${path}.last`, `last ${l.value} is below start ${s.value}`);
  return ok({ start: s.value, last: l.value });
}

function decodeDevice(v: unknown, path: string): Decoded<HeaderDevice> {
  if (!isObj(v)) return bad(path, `expected a device object, got ${show(v)}`);
  const k = onlyKeys(v, ['path', 'name', 'group', 'iommu', 'bars', 'mdev', 'note'], path);
  if (!k.ok) return k;
  if (typeof v.path !== 'string') return bad(`${path}.path`, `expected a device path, got ${show(v.path)}`);
  const name = v.name === undefined ? v.path : v.name;
  if (typeof name !== 'string') return bad(`${path}.name`, `expected a string, got ${show(v.name)}`);
  let group: number | undefined;
  if (v.group !== undefined) {
    const g = decodeUnsigned(v.group, 32, `${path}.group`);
    if (!g.ok) return g;
    group = Number(g.value);
  }
  const im = v.iommu === undefined ? {} : v.iommu;
  const ip = `${path}.iommu`;
  if (!isObj(im)) return bad(ip, `expected an object, got ${show(im)}`);
  const ik = onlyKeys(im, ['pgsize_bitmap', 'aperture', 'reserved', 'dirty_tracking', 'max_pasids', 'msi_isolated'], ip);
  if (!ik.ok) return ik;
  const pg = u64At(im, 'pgsize_bitmap', 0x1000n, `${ip}.`);
  if (!pg.ok) return pg;
  const ap = im.aperture === undefined ? ok({ start: 0n, last: (1n << 64n) - 1n }) : decodeRange(im.aperture, `${ip}.aperture`);
  if (!ap.ok) return ap;
  const reserved: (HeaderRange & { type: string })[] = [];
  const rs = im.reserved === undefined ? [] : im.reserved;
  if (!Array.isArray(rs)) return bad(`${ip}.reserved`, `expected an array, got ${show(rs)}`);
  for (let i = 0; i < rs.length; i++) {
    const r = decodeRange(rs[i], `${ip}.reserved[${i}]`);
    if (!r.ok) return r;
    const type = (rs[i] as Obj).type ?? 'reserved';
    if (typeof type !== 'string') return bad(`${ip}.reserved[${i}].type`, `expected a string, got ${show(type)}`);
    reserved.push({ ...r.value, type });
  }
  const dt = boolAt(im, 'dirty_tracking', false, `${ip}.`);
  if (!dt.ok) return dt;
  const mi = boolAt(im, 'msi_isolated', true, `${ip}.`);
  if (!mi.ok) return mi;
  const mp = u64At(im, 'max_pasids', 0n, `${ip}.`);
  if (!mp.ok) return mp;
  const bars: { index: number; size: bigint }[] = [];
  const bs = v.bars === undefined ? [] : v.bars;
  if (!Array.isArray(bs)) return bad(`${path}.bars`, `expected an array, got ${show(bs)}`);
  for (let i = 0; i < bs.length; i++) {
    const b: unknown = bs[i];
    const bp = `${path}.bars[${i}]`;
    if (!isObj(b)) return bad(bp, `expected {"index","size"}, got ${show(b)}`);
    const bk = onlyKeys(b, ['index', 'size'], bp);
    if (!bk.ok) return bk;
    const idx = u64At(b, 'index', undefined, `${bp}.`);
    if (!idx.ok) return idx;
    const sz = u64At(b, 'size', undefined, `${bp}.`);
    if (!sz.ok) return sz;
    bars.push({ index: Number(idx.value), size: sz.value });
  }
  const md = decodeMdev(v.mdev, `${path}.mdev`);
  if (!md.ok) return md;
  return ok({
    path: v.path, name, group,
    iommu: { pgsize_bitmap: pg.value, aperture: ap.value, reserved, dirty_tracking: dt.value, max_pasids: Number(mp.value), msi_isolated: mi.value },
    bars, ...(md.value === undefined ? {} : { mdev: md.value }),
  });
}

/** `"mdev": true` (a driver with `dma_unmap`, as every pinning mdev driver has) or `{"dma_unmap": bool}`. */
function decodeMdev(v: unknown, path: string): Decoded<{ dmaUnmap: boolean } | undefined> {
  if (v === undefined || v === false) return ok(undefined);
  if (v === true) return ok({ dmaUnmap: true });
  if (!isObj(v)) return bad(path, `expected true or {"dma_unmap": bool}, got ${show(v)}`);
  const k = onlyKeys(v, ['dma_unmap'], path);
  if (!k.ok) return k;
  const du = boolAt(v, 'dma_unmap', true, `${path}.`);
  return du.ok ? ok({ dmaUnmap: du.value }) : du;
}

function decodeVma(v: unknown, path: string): Decoded<HeaderVma> {
  if (!isObj(v)) return bad(path, `expected a VMA object, got ${show(v)}`);
  const k = onlyKeys(v, ['start', 'length', 'prot', 'flags', 'fd', 'offset', 'note'], path);
  if (!k.ok) return k;
  const s = u64At(v, 'start', undefined, `${path}.`);
  if (!s.ok) return s;
  const l = u64At(v, 'length', undefined, `${path}.`);
  if (!l.ok) return l;
  const p = v.prot === undefined ? ok(3n) : decodeNames(v.prot, FLAG_SETS.prot, 'u64', `${path}.prot`, true);
  if (!p.ok) return p;
  const f = v.flags === undefined ? ok(0x22n) : decodeNames(v.flags, FLAG_SETS.mmap, 'u64', `${path}.flags`, true);
  if (!f.ok) return f;
  const fd = v.fd === undefined ? ok(undefined) : decodeUnsigned(v.fd, 32, `${path}.fd`);
  if (!fd.ok) return fd;
  const off = u64At(v, 'offset', 0n, `${path}.`);
  if (!off.ok) return off;
  return ok({ start: s.value, length: l.value, prot: p.value, flags: f.value, fd: fd.value, offset: off.value });
}

const HEADER_KEYS = ['iotrail', 'page_size', 'iommufd_test', 'memory', 'vmas', 'limits', 'vfio_container', 'devices', 'kernel', 'source', 'note'];

export function decodeHeader(raw: unknown): Decoded<TraceHeader> {
  if (!isObj(raw)) return bad('', `expected the header object, got ${show(raw)}`);
  if (raw.iotrail === undefined) return bad('iotrail', 'line 1 must be the header: missing "iotrail"');
  if (raw.iotrail !== 1) return bad('iotrail', `unsupported trace format version ${show(raw.iotrail)} (this iotrail reads version 1)`);
  const k = onlyKeys(raw, HEADER_KEYS, '');
  if (!k.ok) return k;
  const ps = u64At(raw, 'page_size', 4096n, '');
  if (!ps.ok) return ps;
  if (ps.value < 4096n || (ps.value & (ps.value - 1n)) !== 0n || ps.value > 1n << 21n)
    return bad('page_size', `expected a power of two from 4096 to 2097152, got ${show(raw.page_size)}`);
  const it = boolAt(raw, 'iommufd_test', false, '');
  if (!it.ok) return it;
  const memory = raw.memory ?? 'explicit';
  if (memory !== 'explicit' && memory !== 'implicit') return bad('memory', `expected "explicit" or "implicit", got ${show(memory)}`);
  const vc = raw.vfio_container ?? 'iommufd';
  if (vc !== 'iommufd' && vc !== 'type1') return bad('vfio_container', `expected "iommufd" or "type1", got ${show(vc)}`);
  const lim = raw.limits ?? {};
  if (!isObj(lim)) return bad('limits', `expected an object, got ${show(lim)}`);
  const lk = onlyKeys(lim, ['memlock', 'cap_sys_resource', 'cap_ipc_lock', 'dma_entry_limit'], 'limits');
  if (!lk.ok) return lk;
  let memlock: bigint | 'unlimited' = 'unlimited';
  if (lim.memlock !== undefined && lim.memlock !== 'unlimited') {
    const m = decodeUnsigned(lim.memlock, 64, 'limits.memlock');
    if (!m.ok) return m;
    memlock = m.value;
  }
  const csr = boolAt(lim, 'cap_sys_resource', true, 'limits.');
  if (!csr.ok) return csr;
  const cil = boolAt(lim, 'cap_ipc_lock', false, 'limits.');
  if (!cil.ok) return cil;
  let del: { dma_entry_limit: number } | undefined;
  if (lim.dma_entry_limit !== undefined) {
    const d = decodeUnsigned(lim.dma_entry_limit, 32, 'limits.dma_entry_limit');
    if (!d.ok) return d;
    del = { dma_entry_limit: Number(d.value) };
  }
  const vmas: HeaderVma[] = [];
  const vs = raw.vmas ?? [];
  if (!Array.isArray(vs)) return bad('vmas', `expected an array, got ${show(vs)}`);
  for (let i = 0; i < vs.length; i++) {
    const d = decodeVma(vs[i], `vmas[${i}]`);
    if (!d.ok) return d;
    vmas.push(d.value);
  }
  const devices: HeaderDevice[] = [];
  const ds = raw.devices ?? [];
  if (!Array.isArray(ds)) return bad('devices', `expected an array, got ${show(ds)}`);
  for (let i = 0; i < ds.length; i++) {
    const d = decodeDevice(ds[i], `devices[${i}]`);
    if (!d.ok) return d;
    devices.push(d.value);
  }
  for (const key of ['kernel', 'source'] as const)
    if (raw[key] !== undefined && typeof raw[key] !== 'string') return bad(key, `expected a string, got ${show(raw[key])}`);
  return ok({
    iotrail: 1, page_size: Number(ps.value), iommufd_test: it.value, memory, vmas,
    limits: { memlock, cap_sys_resource: csr.value, cap_ipc_lock: cil.value, ...del }, vfio_container: vc, devices,
    kernel: raw.kernel as string | undefined, source: raw.source as string | undefined,
  });
}
