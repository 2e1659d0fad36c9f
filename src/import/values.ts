// Integer, errno and uapi-name helpers shared by the importers.
//
// Everything numeric goes through bigint: QEMU prints u64 IOVAs, lengths and pointers that do not fit in a
// JS number, and the trace format (trace-format.md "Values") wants them as strings above 2^53-1.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };
export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T = never>(error: string): Result<T> => ({ ok: false, error });

export const U32_MAX = (1n << 32n) - 1n;
export const U64_MAX = (1n << 64n) - 1n;
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** Decimal (optionally negative) or 0x-hex integer text, or glibc's "(nil)" for a NULL %p. */
export function parseIntText(text: string): bigint | undefined {
  if (text === '(nil)') return 0n;
  if (/^-?[0-9]+$/.test(text)) return BigInt(text);
  if (/^0[xX][0-9a-fA-F]+$/.test(text)) return BigInt(text);
  return undefined;
}

/**
 * The C types QEMU's trace-events declare. They matter because QEMU prints some unsigned values with %d/%ld
 * (so large ones come out negative) and simpletrace stores every integer as a sign-extended u64.
 */
export type CType = 'int' | 'u32' | 'u64' | 'ulong' | 'ptr' | 'bool' | 'str';

const C_NAMES: Record<Exclude<CType, 'str'>, string> = {
  int: 'int', u32: 'uint32_t', u64: 'uint64_t', ulong: 'unsigned long', ptr: 'void *', bool: 'bool',
};

/**
 * Check a printed integer against the C type of its trace argument. `sext` is set for simpletrace output,
 * which stores every integer argument as a u64, so a negative int arrives as 0xffff....
 */
export function fitC(key: string, text: string, raw: bigint, type: Exclude<CType, 'str'>, sext: boolean): Result<bigint> {
  let v = raw;
  const bad = (what: string): Result<bigint> => fail(`${key}=${text}: ${what} (${C_NAMES[type]} ${key})`);
  switch (type) {
    case 'int':
      if (sext && v > (1n << 63n) - 1n && v <= U64_MAX) v -= 1n << 64n;
      return v < -(1n << 31n) || v > (1n << 31n) - 1n ? bad('does not fit') : ok(v);
    case 'u32':
      // QEMU prints several uint32_t ids with %d: ids >= 2^31 appear negative.
      if (v < 0n && v >= -(1n << 31n)) v += 1n << 32n;
      return v < 0n || v > U32_MAX ? bad('does not fit') : ok(v);
    case 'ulong':
      // unsigned long printed with %ld (map_file_dma's start): values >= 2^63 appear negative.
      if (v < 0n && v >= -(1n << 63n)) v += 1n << 64n;
      return v < 0n || v > U64_MAX ? bad('does not fit') : ok(v);
    case 'u64':
    case 'ptr':
      return v < 0n || v > U64_MAX ? bad('does not fit') : ok(v);
    case 'bool':
      return v === 0n || v === 1n ? ok(v) : bad('is not 0 or 1');
  }
}

/** A trace-format integer: a JSON number when it is exact, else a hex string. */
export function jsonInt(v: bigint): number | string {
  if (v >= -SAFE_MAX && v <= SAFE_MAX) return Number(v);
  return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
}

/** For values QEMU prints in hex (IOVAs, lengths, addresses): keep them hex so they read like the log. */
export function jsonHex(v: bigint): number | string {
  return v === 0n ? 0 : v < 0n ? jsonInt(v) : `0x${v.toString(16)}`;
}

export type NameTable = readonly (readonly [name: string, value: bigint])[];

/** Flags as the array of uapi names, or the number when a bit has no name (the format rejects unknown names). */
export function flagsJson(v: bigint, table: NameTable): Json {
  if (v === 0n) return 0;
  const names: string[] = [];
  let rest = v;
  for (const [name, bit] of table) {
    if ((v & bit) !== 0n) {
      names.push(name);
      rest &= ~bit;
    }
  }
  return rest === 0n ? names : jsonInt(v);
}

export function enumJson(v: bigint, table: NameTable): Json {
  for (const [name, value] of table) if (value === v) return name;
  return jsonInt(v);
}

// include/uapi/linux/iommufd.h and vfio.h, only the names the QEMU importer emits.
export const IOAS_MAP_FLAGS: NameTable = [
  ['IOMMU_IOAS_MAP_FIXED_IOVA', 1n], ['IOMMU_IOAS_MAP_WRITEABLE', 2n], ['IOMMU_IOAS_MAP_READABLE', 4n],
];
export const HWPT_ALLOC_FLAGS: NameTable = [
  ['IOMMU_HWPT_ALLOC_NEST_PARENT', 1n], ['IOMMU_HWPT_ALLOC_DIRTY_TRACKING', 2n],
  ['IOMMU_HWPT_FAULT_ID_VALID', 4n], ['IOMMU_HWPT_ALLOC_PASID', 8n],
];
export const HWPT_DATA_TYPES: NameTable = [
  ['IOMMU_HWPT_DATA_NONE', 0n], ['IOMMU_HWPT_DATA_VTD_S1', 1n], ['IOMMU_HWPT_DATA_ARM_SMMUV3', 2n],
];
export const HWPT_INVALIDATE_DATA_TYPES: NameTable = [
  ['IOMMU_HWPT_INVALIDATE_DATA_VTD_S1', 0n], ['IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3', 1n],
];
export const DIRTY_TRACKING_FLAGS: NameTable = [['IOMMU_HWPT_DIRTY_TRACKING_ENABLE', 1n]];
export const GET_DIRTY_BITMAP_FLAGS: NameTable = [['IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR', 1n]];
export const VIOMMU_TYPES: NameTable = [
  ['IOMMU_VIOMMU_TYPE_DEFAULT', 0n], ['IOMMU_VIOMMU_TYPE_ARM_SMMUV3', 1n], ['IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV', 2n],
];
export const VEVENTQ_TYPES: NameTable = [
  ['IOMMU_VEVENTQ_TYPE_DEFAULT', 0n], ['IOMMU_VEVENTQ_TYPE_ARM_SMMUV3', 1n], ['IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV', 2n],
];
export const HW_QUEUE_TYPES: NameTable = [
  ['IOMMU_HW_QUEUE_TYPE_DEFAULT', 0n], ['IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV', 1n],
];
export const VFIO_DMA_MAP_FLAGS: NameTable = [['VFIO_DMA_MAP_FLAG_READ', 1n], ['VFIO_DMA_MAP_FLAG_WRITE', 2n]];
export const VFIO_ATTACH_FLAGS: NameTable = [['VFIO_DEVICE_ATTACH_PASID', 1n]];
export const VFIO_DETACH_FLAGS: NameTable = [['VFIO_DEVICE_DETACH_PASID', 1n]];

// Linux asm-generic errno numbers with glibc's strerror() text (what QEMU's %m and strerror() print), plus
// musl's wording where it differs, since QEMU reports failures only as text in most messages.
const ERRNOS: readonly (readonly [name: string, num: number, ...texts: string[]])[] = [
  ['EPERM', 1, 'Operation not permitted'], ['ENOENT', 2, 'No such file or directory'],
  ['ESRCH', 3, 'No such process'], ['EINTR', 4, 'Interrupted system call'],
  ['EIO', 5, 'Input/output error', 'I/O error'], ['ENXIO', 6, 'No such device or address'],
  ['E2BIG', 7, 'Argument list too long'], ['ENOEXEC', 8, 'Exec format error'],
  ['EBADF', 9, 'Bad file descriptor'], ['ECHILD', 10, 'No child processes', 'No child process'],
  ['EAGAIN', 11, 'Resource temporarily unavailable'], ['ENOMEM', 12, 'Cannot allocate memory', 'Out of memory'],
  ['EACCES', 13, 'Permission denied'], ['EFAULT', 14, 'Bad address'], ['ENOTBLK', 15, 'Block device required'],
  ['EBUSY', 16, 'Device or resource busy', 'Resource busy'], ['EEXIST', 17, 'File exists'],
  ['EXDEV', 18, 'Invalid cross-device link', 'Cross-device link'], ['ENODEV', 19, 'No such device'],
  ['ENOTDIR', 20, 'Not a directory'], ['EISDIR', 21, 'Is a directory'], ['EINVAL', 22, 'Invalid argument'],
  ['ENFILE', 23, 'Too many open files in system'], ['EMFILE', 24, 'Too many open files'],
  ['ENOTTY', 25, 'Inappropriate ioctl for device', 'Not a tty'], ['ETXTBSY', 26, 'Text file busy'],
  ['EFBIG', 27, 'File too large'], ['ENOSPC', 28, 'No space left on device'], ['ESPIPE', 29, 'Illegal seek', 'Invalid seek'],
  ['EROFS', 30, 'Read-only file system'], ['EMLINK', 31, 'Too many links'], ['EPIPE', 32, 'Broken pipe'],
  ['EDOM', 33, 'Numerical argument out of domain', 'Domain error'],
  ['ERANGE', 34, 'Numerical result out of range', 'Result not representable'],
  ['EDEADLK', 35, 'Resource deadlock avoided', 'Resource deadlock would occur'],
  ['ENAMETOOLONG', 36, 'File name too long', 'Filename too long'], ['ENOLCK', 37, 'No locks available'],
  ['ENOSYS', 38, 'Function not implemented'], ['ENOTEMPTY', 39, 'Directory not empty'],
  ['ELOOP', 40, 'Too many levels of symbolic links', 'Symbolic link loop'],
  ['ENOMSG', 42, 'No message of desired type'], ['EIDRM', 43, 'Identifier removed'],
  ['ENODATA', 61, 'No data available'], ['ETIME', 62, 'Timer expired'], ['EPROTO', 71, 'Protocol error'],
  ['EBADMSG', 74, 'Bad message'], ['EOVERFLOW', 75, 'Value too large for defined data type', 'Value too large for data type'],
  ['EBADFD', 77, 'File descriptor in bad state'], ['EILSEQ', 84, 'Invalid or incomplete multibyte or wide character'],
  ['EMSGSIZE', 90, 'Message too long', 'Message too large'],
  ['EOPNOTSUPP', 95, 'Operation not supported', 'Not supported'], ['EADDRINUSE', 98, 'Address already in use', 'Address in use'],
  ['EADDRNOTAVAIL', 99, 'Cannot assign requested address', 'Address not available'],
  ['ETIMEDOUT', 110, 'Connection timed out', 'Operation timed out'], ['EALREADY', 114, 'Operation already in progress'],
  ['EINPROGRESS', 115, 'Operation now in progress', 'Operation in progress'], ['ESTALE', 116, 'Stale file handle'],
  ['EREMOTEIO', 121, 'Remote I/O error'], ['EDQUOT', 122, 'Disk quota exceeded', 'Quota exceeded'],
  ['ECANCELED', 125, 'Operation canceled', 'Operation cancelled'],
];

const ERRNO_BY_NUM = new Map<number, string>(ERRNOS.map(([name, num]) => [num, name]));
const ERRNO_BY_TEXT = new Map<string, string>(ERRNOS.flatMap(([name, , ...texts]) => texts.map((t) => [t, name] as const)));

export function errnoName(num: number): string | undefined {
  return ERRNO_BY_NUM.get(num);
}

/** strerror() text back to the errno name; glibc's "Unknown error N" carries the number itself. */
export function errnoFromText(text: string): string | undefined {
  const t = text.trim();
  const unknown = /^Unknown error (-?\d+)$/.exec(t);
  if (unknown?.[1] !== undefined) return errnoName(Math.abs(Number(unknown[1])));
  return ERRNO_BY_TEXT.get(t);
}
