// Integer, errno-text and uapi-name helpers for the importers.
//
// Everything numeric goes through bigint: QEMU prints u64 IOVAs, lengths and pointers that do not fit in a
// JS number, and the trace format (trace-format.md "Values") wants them as strings above 2^53-1.

import { errnoName } from '../events/errno.js';
import type { NameTable } from '../events/flags.js';
import { jsonInt, U64_MAX } from '../events/values.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };
export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const fail = <T = never>(error: string): Result<T> => ({ ok: false, error });

const U32_MAX = (1n << 32n) - 1n;

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

/** For values QEMU prints in hex (IOVAs, lengths, addresses): keep them hex so they read like the log. */
export function jsonHex(v: bigint): number | string {
  return v === 0n ? 0 : v < 0n ? jsonInt(v) : `0x${v.toString(16)}`;
}

/**
 * Flags as the array of uapi names, or the number when a bit has no name (the format rejects unknown names).
 * The name tables are the model's own (src/events/flags.ts), so an import never uses a name replay rejects.
 */
export function flagsJson(v: bigint, table: NameTable): Json {
  if (v === 0n) return 0;
  const names: string[] = [];
  let rest = v;
  for (const [name, bit] of Object.entries(table)) {
    const b = BigInt(bit);
    if (b !== 0n && (v & b) === b && (rest & b) !== 0n) {
      names.push(name);
      rest &= ~b;
    }
  }
  return rest === 0n ? names : jsonInt(v);
}

export function enumJson(v: bigint, table: NameTable): Json {
  for (const [name, value] of Object.entries(table)) if (BigInt(value) === v) return name;
  return jsonInt(v);
}

// glibc's strerror() text (what QEMU's %m and strerror() print), plus musl's wording where it differs: QEMU
// reports most failures only as text. Numbers and names are the model's (src/events/errno.ts).
const STRERROR: readonly (readonly [name: string, ...texts: string[]])[] = [
  ['EPERM', 'Operation not permitted'], ['ENOENT', 'No such file or directory'],
  ['ESRCH', 'No such process'], ['EINTR', 'Interrupted system call'],
  ['EIO', 'Input/output error', 'I/O error'], ['ENXIO', 'No such device or address'],
  ['E2BIG', 'Argument list too long'], ['ENOEXEC', 'Exec format error'],
  ['EBADF', 'Bad file descriptor'], ['ECHILD', 'No child processes', 'No child process'],
  ['EAGAIN', 'Resource temporarily unavailable'], ['ENOMEM', 'Cannot allocate memory', 'Out of memory'],
  ['EACCES', 'Permission denied'], ['EFAULT', 'Bad address'], ['ENOTBLK', 'Block device required'],
  ['EBUSY', 'Device or resource busy', 'Resource busy'], ['EEXIST', 'File exists'],
  ['EXDEV', 'Invalid cross-device link', 'Cross-device link'], ['ENODEV', 'No such device'],
  ['ENOTDIR', 'Not a directory'], ['EISDIR', 'Is a directory'], ['EINVAL', 'Invalid argument'],
  ['ENFILE', 'Too many open files in system'], ['EMFILE', 'Too many open files'],
  ['ENOTTY', 'Inappropriate ioctl for device', 'Not a tty'], ['ETXTBSY', 'Text file busy'],
  ['EFBIG', 'File too large'], ['ENOSPC', 'No space left on device'], ['ESPIPE', 'Illegal seek', 'Invalid seek'],
  ['EROFS', 'Read-only file system'], ['EMLINK', 'Too many links'], ['EPIPE', 'Broken pipe'],
  ['EDOM', 'Numerical argument out of domain', 'Domain error'],
  ['ERANGE', 'Numerical result out of range', 'Result not representable'],
  ['EDEADLK', 'Resource deadlock avoided', 'Resource deadlock would occur'],
  ['ENAMETOOLONG', 'File name too long', 'Filename too long'], ['ENOLCK', 'No locks available'],
  ['ENOSYS', 'Function not implemented'], ['ENOTEMPTY', 'Directory not empty'],
  ['ELOOP', 'Too many levels of symbolic links', 'Symbolic link loop'],
  ['ENOMSG', 'No message of desired type'], ['EIDRM', 'Identifier removed'],
  ['ENODATA', 'No data available'], ['ETIME', 'Timer expired'], ['EPROTO', 'Protocol error'],
  ['EBADMSG', 'Bad message'], ['EOVERFLOW', 'Value too large for defined data type', 'Value too large for data type'],
  ['EBADFD', 'File descriptor in bad state'], ['EILSEQ', 'Invalid or incomplete multibyte or wide character'],
  ['EMSGSIZE', 'Message too long', 'Message too large'],
  ['EOPNOTSUPP', 'Operation not supported', 'Not supported'], ['EADDRINUSE', 'Address already in use', 'Address in use'],
  ['EADDRNOTAVAIL', 'Cannot assign requested address', 'Address not available'],
  ['ETIMEDOUT', 'Connection timed out', 'Operation timed out'], ['EALREADY', 'Operation already in progress'],
  ['EINPROGRESS', 'Operation now in progress', 'Operation in progress'], ['ESTALE', 'Stale file handle'],
  ['EREMOTEIO', 'Remote I/O error'], ['EDQUOT', 'Disk quota exceeded', 'Quota exceeded'],
  ['ECANCELED', 'Operation canceled', 'Operation cancelled'],
];

const ERRNO_BY_TEXT = new Map<string, string>(STRERROR.flatMap(([name, ...texts]) => texts.map((t) => [t, name] as const)));

/** strerror() text back to the errno name; glibc's "Unknown error N" carries the number itself. */
export function errnoFromText(text: string): string | undefined {
  const t = text.trim();
  const unknown = /^Unknown error (-?\d+)$/.exec(t);
  if (unknown?.[1] !== undefined) return errnoName(Math.abs(Number(unknown[1])));
  return ERRNO_BY_TEXT.get(t);
}
