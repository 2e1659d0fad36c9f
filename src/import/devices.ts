// `--device` and `--header`: how an importer learns what QEMU's trace cannot show, i.e. the platform's VFIO
// devices and their IOMMU (aperture, page sizes, reserved ranges). Replay needs them to explain results such
// as T4's EINVAL, an IOVA beyond a 39-bit aperture. The entry shape is trace-format.md "Header", devices.
//
//   --device path=/dev/vfio/devices/vfio0,name=0000:01:00.0,aw=39,pgsize=0x40201000,reserved=0xfee00000-0xfeefffff:msi
//
// Keys (comma separated, each KEY=VALUE; numbers decimal or 0x-hex):
//   path=P            device node (required), e.g. /dev/vfio/devices/vfio0
//   name=N            the device name QEMU prints (PCI address or mdev UUID)
//   group=G           IOMMU group number
//   aperture=S-L      IOMMU aperture, first and last IOVA inclusive;  aw=BITS is shorthand for 0-(2^BITS-1)
//   pgsize=BITMAP     IOMMU page-size bitmap (pgsize_bitmap)
//   reserved=S-L[:T]  reserved IOVA range, repeatable; T is msi, sw_msi, direct, direct_relaxable or reserved
//   dirty=on|off      IOMMU dirty tracking;   pasids=N  max PASIDs;   msi_isolated=on|off
//   bar=I:SIZE        a PCI BAR (index 0-5) and its size, repeatable

import { jsonInt, U64_MAX } from '../events/values.js';
import { fail, jsonHex, ok, parseIntText } from './values.js';
import type { Json, JsonObject, Result } from './values.js';

const RESERVED_TYPES = ['msi', 'sw_msi', 'direct', 'direct_relaxable', 'reserved'] as const;
const SINGLE_KEYS = ['path', 'name', 'group', 'aperture', 'aw', 'pgsize', 'dirty', 'pasids', 'msi_isolated'] as const;
const REPEATED_KEYS = ['reserved', 'bar'] as const;
const ALL_KEYS: readonly string[] = [...SINGLE_KEYS, ...REPEATED_KEYS];

function u64(key: string, text: string): Result<bigint> {
  const v = parseIntText(text);
  if (v === undefined || text.startsWith('-') || text === '(nil)') return fail(`${key}: "${text}" is not a non-negative integer`);
  if (v > U64_MAX) return fail(`${key}: ${text} does not fit in 64 bits`);
  return ok(v);
}

function range(key: string, text: string): Result<{ start: bigint; last: bigint }> {
  const parts = text.split('-');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
    return fail(`${key}: "${text}" is not START-LAST`);
  }
  const start = u64(key, parts[0] ?? '');
  if (!start.ok) return start;
  const last = u64(key, parts[1] ?? '');
  if (!last.ok) return last;
  if (start.value > last.value) return fail(`${key}: start ${parts[0]} is above last ${parts[1]} (LAST is inclusive)`);
  return ok({ start: start.value, last: last.value });
}

function onOff(key: string, text: string): Result<boolean> {
  if (['on', 'true', '1', 'yes'].includes(text)) return ok(true);
  if (['off', 'false', '0', 'no'].includes(text)) return ok(false);
  return fail(`${key}: "${text}" is not on or off`);
}

function bounded(key: string, text: string, max: bigint): Result<number> {
  const v = u64(key, text);
  if (!v.ok) return v;
  if (v.value > max) return fail(`${key}: ${text} is above ${max}`);
  return ok(Number(v.value));
}

const rangeJson = (r: { start: bigint; last: bigint }): JsonObject => ({ start: jsonHex(r.start), last: jsonHex(r.last) });

/** Parse one `--device` value into a header device entry. */
export function parseDeviceSpec(spec: string): Result<JsonObject> {
  const where = (msg: string): Result<JsonObject> => fail(`--device "${spec}": ${msg}`);
  if (spec.trim() === '') return where('empty; expected KEY=VALUE,... with at least path=');
  const single = new Map<string, string>();
  const repeated: [key: string, value: string][] = [];
  for (const item of spec.split(',')) {
    const eq = item.indexOf('=');
    if (eq <= 0) return where(`"${item}" is not KEY=VALUE`);
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (!ALL_KEYS.includes(key)) return where(`unknown key "${key}" (known: ${ALL_KEYS.join(', ')})`);
    if (value === '') return where(`${key}: empty value`);
    if ((REPEATED_KEYS as readonly string[]).includes(key)) repeated.push([key, value]);
    else if (single.has(key)) return where(`${key} given twice`);
    else single.set(key, value);
  }
  const path = single.get('path');
  if (path === undefined) return where('path= is required (e.g. path=/dev/vfio/devices/vfio0)');
  if (!path.startsWith('/')) return where(`path: "${path}" is not an absolute path`);
  if (single.has('aperture') && single.has('aw')) return where('give aperture= or aw=, not both');

  const entry: JsonObject = { path };
  const name = single.get('name');
  if (name !== undefined) entry.name = name;
  const iommu: JsonObject = {};
  for (const [key, text] of single) {
    const r = deviceKey(key, text, entry, iommu);
    if (!r.ok) return where(r.error);
  }
  const reserved: Json[] = [];
  const bars: Json[] = [];
  for (const [key, text] of repeated) {
    if (key === 'reserved') {
      const [span = '', type = 'reserved', ...extra] = text.split(':');
      if (extra.length > 0) return where(`reserved: "${text}" is not START-LAST[:TYPE]`);
      const r = range('reserved', span);
      if (!r.ok) return where(r.error);
      const t = type.replace(/-/g, '_');
      if (!(RESERVED_TYPES as readonly string[]).includes(t)) {
        return where(`reserved: type "${type}" is not one of ${RESERVED_TYPES.join(', ')}`);
      }
      reserved.push({ ...rangeJson(r.value), type: t });
    } else {
      const [index = '', size = '', ...extra] = text.split(':');
      if (extra.length > 0 || size === '') return where(`bar: "${text}" is not INDEX:SIZE`);
      const i = bounded('bar index', index, 5n);
      if (!i.ok) return where(i.error);
      const s = u64('bar size', size);
      if (!s.ok) return where(s.error);
      if (bars.some((b) => (b as JsonObject).index === i.value)) return where(`bar ${i.value} given twice`);
      bars.push({ index: i.value, size: jsonHex(s.value) });
    }
  }
  if (reserved.length > 0) iommu.reserved = reserved;
  entry.iommu = iommu;
  if (bars.length > 0) entry.bars = bars;
  return ok(orderEntry(entry));
}

function deviceKey(key: string, text: string, entry: JsonObject, iommu: JsonObject): Result<true> {
  switch (key) {
    case 'group': {
      const g = bounded('group', text, (1n << 31n) - 1n);
      if (!g.ok) return g;
      entry.group = g.value;
      return ok(true);
    }
    case 'aperture': {
      const r = range('aperture', text);
      if (!r.ok) return r;
      iommu.aperture = rangeJson(r.value);
      return ok(true);
    }
    case 'aw': {
      const bits = bounded('aw', text, 64n);
      if (!bits.ok) return bits;
      if (bits.value === 0) return fail('aw: 0 bits leaves no aperture');
      iommu.aperture = rangeJson({ start: 0n, last: (1n << BigInt(bits.value)) - 1n });
      return ok(true);
    }
    case 'pgsize': {
      const v = u64('pgsize', text);
      if (!v.ok) return v;
      if (v.value === 0n) return fail('pgsize: the page-size bitmap must have at least one bit');
      iommu.pgsize_bitmap = jsonHex(v.value);
      return ok(true);
    }
    case 'dirty':
    case 'msi_isolated': {
      const b = onOff(key, text);
      if (!b.ok) return b;
      iommu[key === 'dirty' ? 'dirty_tracking' : 'msi_isolated'] = b.value;
      return ok(true);
    }
    case 'pasids': {
      const n = bounded('pasids', text, 0xffff_ffffn);
      if (!n.ok) return n;
      iommu.max_pasids = jsonInt(BigInt(n.value));
      return ok(true);
    }
    default:
      return ok(true); // path and name are taken before the loop
  }
}

// The trace-format example's key order, whatever order the user typed the keys in, so output is stable.
const ENTRY_ORDER = ['path', 'name', 'group', 'iommu', 'bars'];
const IOMMU_ORDER = ['pgsize_bitmap', 'aperture', 'reserved', 'dirty_tracking', 'max_pasids', 'msi_isolated'];

function ordered(obj: JsonObject, order: readonly string[]): JsonObject {
  const out: JsonObject = {};
  for (const k of order) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}

function orderEntry(entry: JsonObject): JsonObject {
  const out = ordered(entry, ENTRY_ORDER);
  out.iommu = ordered(entry.iommu as JsonObject, IOMMU_ORDER);
  return out;
}

/** `--header FILE` contents: one JSON object, merged over the generated header. */
export function parseHeaderText(text: string, file: string): Result<JsonObject> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return fail(`--header ${file}: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(`--header ${file}: expected a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}`);
  }
  const obj = value as JsonObject;
  if (obj.iotrail !== undefined && obj.iotrail !== 1) return fail(`--header ${file}: "iotrail" must be 1 (format version 1)`);
  if (obj.devices !== undefined) {
    if (!Array.isArray(obj.devices)) return fail(`--header ${file}: "devices" must be an array`);
    for (const [i, d] of obj.devices.entries()) {
      if (typeof d !== 'object' || d === null || Array.isArray(d) || typeof d.path !== 'string') {
        return fail(`--header ${file}: devices[${i}] must be an object with a string "path"`);
      }
    }
  }
  return ok(obj);
}

/**
 * What the user says about the header: the `--header` object with the `--device` entries appended to its
 * devices. The importer lays it over the header it generates, so these values win. Two entries for one path
 * would make replay ambiguous.
 */
export function userHeader(file: JsonObject | undefined, devices: readonly JsonObject[]): Result<JsonObject> {
  const fromFile = (file?.devices as JsonObject[] | undefined) ?? [];
  const all = [...fromFile, ...devices];
  const seen = new Set<string>();
  for (const d of all) {
    const path = String(d.path);
    if (seen.has(path)) return fail(`device ${path} is declared twice (--header and/or --device)`);
    seen.add(path);
  }
  const out: JsonObject = { ...(file ?? {}) };
  if (all.length > 0) out.devices = all;
  return ok(out);
}
