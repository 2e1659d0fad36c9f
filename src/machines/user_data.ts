/**
 * Driver data passed by pointer (include/linux/iommu.h `__iommu_copy_struct_from_user`): the checks the core makes
 * before copying a driver's struct in, and reading its u32 fields whether the trace gives the data as bytes or as
 * named fields.
 */
import type { Errno } from '../events/errno.js';
import type { Arg } from './ioctl.js';

export interface UserData { readonly u32: (off: number, name: string) => number }

/**
 * The data behind pointer field `field` of `len` bytes, for a driver struct whose fields up to `minLen` bytes are
 * required: a shorter `len` is EINVAL and a NULL pointer EFAULT (copy_struct_from_user of NULL).
 */
export function userData(a: Arg, field: string, len: number, minLen: number, fn: string): UserData | { errno: Errno; why: string } | { unmodelled: string } {
  if (len < minLen) return { errno: 'EINVAL', why: `${fn}: data_len ${len} < ${minLen}, the end of the required fields` };
  const v = a.v[field];
  if (v === undefined || v === 0n) return { errno: 'EFAULT', why: `${fn}: copy_struct_from_user from a NULL ${field}` };
  if (v instanceof Uint8Array) {
    return { u32: (off) => (off + 4 <= Math.min(len, v.length) ? new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(off, true) : 0) };
  }
  if (typeof v === 'object' && 'inline' in v) {
    const inline = v.inline;
    return { u32: (_off, name) => Number((inline[name] ?? 0n) & 0xffff_ffffn) };
  }
  return { unmodelled: `${field} given as a raw pointer` };
}
