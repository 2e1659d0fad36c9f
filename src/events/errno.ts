/**
 * errno names and numbers, Linux asm-generic (x86-64, arm64). EDEADLOCK is EDEADLK there (35); the trace
 * format names errors symbolically, so both spellings are accepted and compare equal.
 */
const TABLE = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, ETXTBSY: 26, EFBIG: 27, ENOSPC: 28,
  ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33, ERANGE: 34, EDEADLK: 35, EDEADLOCK: 35,
  ENAMETOOLONG: 36, ENOLCK: 37, ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40, ENOMSG: 42, EBADE: 52, ENODATA: 61,
  ETIME: 62, EOVERFLOW: 75, EBADFD: 77, EILSEQ: 84, EMSGSIZE: 90, EOPNOTSUPP: 95, EADDRINUSE: 98,
  EADDRNOTAVAIL: 99, ENOBUFS: 105, ETIMEDOUT: 110, EALREADY: 114, ECANCELED: 125,
} as const;

export type Errno = keyof typeof TABLE;
export const isErrno = (s: unknown): s is Errno => typeof s === 'string' && Object.hasOwn(TABLE, s);
export const errnoNumber = (e: Errno): number => TABLE[e];
export const sameErrno = (a: Errno, b: Errno): boolean => TABLE[a] === TABLE[b];
const BY_NUMBER = new Map<number, Errno>();
for (const [k, v] of Object.entries(TABLE)) if (!BY_NUMBER.has(v)) BY_NUMBER.set(v, k as Errno);
export const errnoName = (n: number): Errno | undefined => BY_NUMBER.get(n);
