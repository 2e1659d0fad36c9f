/**
 * Driver data passed by pointer (include/linux/iommu.h `__iommu_copy_struct_from_user`): the checks the core makes
 * before copying a driver's struct in, and reading its u32 fields whether the trace gives the data as bytes or as
 * named fields.
 */
import type { Errno } from '../events/errno.js';
import type { Arg } from './ioctl.js';

export interface UserData { readonly u32: (off: number, name: string) => number }

/**
 * The data behind pointer field `field` of `len` bytes from byte `at`, for a driver struct of `size` bytes whose
 * fields up to `minLen` are required: a `len` below `minLen` or above `size` is EINVAL, a NULL pointer or bytes the
 * trace does not hold EFAULT (copy_struct_from_user).
 */
export function userData(a: Arg, field: string, len: number, minLen: number, size: number, fn: string, at = 0): UserData | { errno: Errno; why: string } | { unmodelled: string } {
  if (len < minLen || len > size) return { errno: 'EINVAL', why: `${fn}: length ${len} outside [${minLen}, ${size}] (the required fields, the kernel's struct)` };
  const v = a.v[field];
  if (v === undefined || v === 0n) return { errno: 'EFAULT', why: `${fn}: copy_struct_from_user from a NULL ${field}` };
  if (v instanceof Uint8Array) {
    if (at + len > v.length) return { errno: 'EFAULT', why: `${fn}: ${field} holds ${v.length} byte(s), [${at}, +${len}) is read` };
    const view = new DataView(v.buffer, v.byteOffset, v.byteLength);
    return { u32: (off) => (off + 4 <= len ? view.getUint32(at + off, true) : 0) };
  }
  if (at !== 0) return { unmodelled: `${field} given as named fields for an array` };
  if (typeof v === 'object' && 'inline' in v) {
    const inline = v.inline;
    return { u32: (_off, name) => Number((inline[name] ?? 0n) & 0xffff_ffffn) };
  }
  return { unmodelled: `${field} given as a raw pointer` };
}
