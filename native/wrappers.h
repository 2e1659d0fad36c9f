/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The interposed libc entry points (included once, at the end of recorder.c).
 *
 * Each one calls the real function first, keeps its result and errno, and only then
 * looks at whether the call concerns the IOMMU; the recorder's work happens with in_rec
 * set and errno is restored last, so the caller sees exactly what libc returned.
 */
#ifndef IOTRAIL_WRAPPERS_H
#define IOTRAIL_WRAPPERS_H

int memfd_create(const char *name, unsigned int flags);
DECL_REAL(open); DECL_REAL(openat); DECL_REAL(close); DECL_REAL(ioctl);
DECL_REAL(mmap); DECL_REAL(munmap); DECL_REAL(madvise); DECL_REAL(memfd_create);
DECL_REAL(ftruncate); DECL_REAL(read); DECL_REAL(write); DECL_REAL(pread); DECL_REAL(pwrite);

static int needs_mode(int flags) { return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE; }

static void rec_open(int dirfd, const char *path, int flags, long ret)
{
	int err = errno, extra, kind;
	char abs[PATH_MAX], note[128] = "";
	const char *p = path;
	/* Any other outcome means the kernel could read a NUL-terminated path, so we can too;
	 * these two mean it could not, and neither could it have matched a device. */
	if (!path || (ret < 0 && (err == EFAULT || err == ENAMETOOLONG)) || !active())
		return;
	in_rec = 1;
	/* Relative opens are matched (and recorded) by their absolute path. */
	if (path[0] != '/') {
		char link[64];
		long n = -1;
		if (dirfd == AT_FDCWD) {
			n = getcwd(abs, sizeof(abs)) ? (long)strlen(abs) : -1;
		} else {
			snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
			n = readlink(link, abs, sizeof(abs) - 1);
		}
		if (n > 0 && (size_t)n + strlen(path) + 2 <= sizeof(abs)) {
			abs[n] = 0;
			if (abs[n - 1] != '/')
				strcat(abs, "/");
			strcat(abs, path);
			p = abs;
		}
	}
	kind = path_kind(p, &extra);
	if (kind) {
		struct jbuf j = { 0 };
		if (ret >= 0)
			track_fd(ret, kind);
		ev_begin(&j, "open");
		jb_key(&j, "path"); jb_str(&j, p);
		jb_key(&j, "flags"); jb_i64(&j, flags);
		ev_result(&j, ret, err);
		if (extra)
			snprintf(note, sizeof(note), "matched IOTRAIL_RECORD_PATHS; recorded as %s", kind_names[kind]);
		ev_end(&j, note);
	}
	in_rec = 0;
	errno = err;
}

#define OPEN_MODE(flags, last) \
	mode_t mode = 0; \
	if (needs_mode(flags)) { va_list ap; va_start(ap, last); mode = va_arg(ap, int); va_end(ap); }

int open(const char *path, int flags, ...)
{
	OPEN_MODE(flags, flags);
	int ret = REAL(open)(path, flags, mode);
	rec_open(AT_FDCWD, path, flags, ret);
	return ret;
}

int openat(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags, flags);
	int ret = REAL(openat)(dirfd, path, flags, mode);
	rec_open(dirfd, path, flags, ret);
	return ret;
}

#ifdef __GLIBC__
/* glibc exports large-file and _FORTIFY_SOURCE entry points that programs call directly. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
DECL_REAL(open64); DECL_REAL(openat64); DECL_REAL(__open_2); DECL_REAL(__open64_2);
DECL_REAL(__openat_2); DECL_REAL(__openat64_2);

int open64(const char *path, int flags, ...)
{
	OPEN_MODE(flags, flags);
	int ret = REAL(open64)(path, flags, mode);
	rec_open(AT_FDCWD, path, flags, ret);
	return ret;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	OPEN_MODE(flags, flags);
	int ret = REAL(openat64)(dirfd, path, flags, mode);
	rec_open(dirfd, path, flags, ret);
	return ret;
}

int __open_2(const char *path, int flags)
{
	int ret = REAL(__open_2)(path, flags);
	rec_open(AT_FDCWD, path, flags, ret);
	return ret;
}

int __open64_2(const char *path, int flags)
{
	int ret = REAL(__open64_2)(path, flags);
	rec_open(AT_FDCWD, path, flags, ret);
	return ret;
}

int __openat_2(int dirfd, const char *path, int flags)
{
	int ret = REAL(__openat_2)(dirfd, path, flags);
	rec_open(dirfd, path, flags, ret);
	return ret;
}

int __openat64_2(int dirfd, const char *path, int flags)
{
	int ret = REAL(__openat64_2)(dirfd, path, flags);
	rec_open(dirfd, path, flags, ret);
	return ret;
}
#endif

int close(int fd)
{
	if (!fd_kind(fd) || !active())
		return REAL(close)(fd);
	/* Forget the fd first: once closed, another thread's open may get the same number. */
	track_fd(fd, K_NONE);
	int ret = REAL(close)(fd), err = errno;
	struct jbuf j = { 0 };
	in_rec = 1;
	ev_begin(&j, "close");
	jb_key(&j, "fd"); jb_i64(&j, fd);
	ev_result(&j, ret, err);
	ev_end(&j, NULL);
	in_rec = 0;
	errno = err;
	return ret;
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	int kind = fd_kind(fd);
	if (!kind || !active())
		return REAL(ioctl)(fd, req, arg);
	struct jbuf j = { 0 };
	struct ioc r;
	in_rec = 1;
	ev_begin(&j, "ioctl");
	jb_key(&j, "fd"); jb_i64(&j, fd);
	/* The argument is decoded before the call: the kernel overwrites in-out fields. */
	ioc_before(&j, &r, kind, (uint32_t)req, (uint64_t)(uintptr_t)arg);
	in_rec = 0;
	int ret = REAL(ioctl)(fd, req, arg), err = errno;
	in_rec = 1;
	ioc_after(&j, &r, ret, err);
	if (ret == 0 && kind == K_IOMMU && r.have >= 32 && (r.cmd == 0x3b85 || r.cmd == 0x3b71)) {
		uint64_t va, len;
		memcpy(&va, r.pre + (r.cmd == 0x3b85 ? 16 : 8), 8);
		memcpy(&len, r.pre + 24, 8);
		range_add(va, len); /* DMA-mapped memory: its munmap/madvise matter to the IOMMU */
	}
	ev_end(&j, r.note);
	in_rec = 0;
	errno = err;
	return ret;
}

static void rec_mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off, void *ret)
{
	int err = errno, anon = flags & MAP_ANONYMOUS;
	if (!active())
		return;
	in_rec = 1;
	if ((!anon && fd_kind(fd)) || g.all_mmaps || ((flags & MAP_FIXED) && range_hit((uintptr_t)addr, len))) {
		struct jbuf j = { 0 };
		ev_begin(&j, "mmap");
		if (addr) {
			jb_key(&j, "addr"); jb_u64(&j, (uintptr_t)addr);
		}
		jb_key(&j, "length"); jb_u64(&j, len);
		jb_key(&j, "prot"); jb_i64(&j, prot);
		jb_key(&j, "flags"); jb_i64(&j, flags);
		if (!anon) {
			jb_key(&j, "fd"); jb_i64(&j, fd);
			jb_key(&j, "offset"); jb_i64(&j, off);
		}
		if (ret == MAP_FAILED) {
			jb_key(&j, "errno"); jb_errno(&j, err);
		} else {
			jb_key(&j, "ret"); jb_u64(&j, (uintptr_t)ret);
			range_add((uintptr_t)ret, len);
		}
		ev_end(&j, NULL);
	}
	in_rec = 0;
	errno = err;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *ret = REAL(mmap)(addr, len, prot, flags, fd, off);
	rec_mmap(addr, len, prot, flags, fd, off, ret);
	return ret;
}

#ifdef __GLIBC__
DECL_REAL(mmap64);
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	void *ret = REAL(mmap64)(addr, len, prot, flags, fd, off);
	rec_mmap(addr, len, prot, flags, fd, off, ret);
	return ret;
}
#endif

/* munmap and madvise: addr, length and one more number (advice), or -1 for none. */
static void rec_range_op(const char *op, void *addr, size_t len, int advice, int ret)
{
	int err = errno;
	if (!active())
		return;
	in_rec = 1;
	if (g.all_mmaps || range_hit((uintptr_t)addr, len)) {
		struct jbuf j = { 0 };
		ev_begin(&j, op);
		jb_key(&j, "addr"); jb_u64(&j, (uintptr_t)addr);
		jb_key(&j, "length"); jb_u64(&j, len);
		if (advice >= 0) {
			jb_key(&j, "advice"); jb_i64(&j, advice);
		}
		ev_result(&j, ret, err);
		ev_end(&j, NULL);
		if (advice < 0 && ret == 0)
			range_remove((uintptr_t)addr, len);
	}
	in_rec = 0;
	errno = err;
}

int munmap(void *addr, size_t len)
{
	int ret = REAL(munmap)(addr, len);
	rec_range_op("munmap", addr, len, -1, ret);
	return ret;
}

int madvise(void *addr, size_t len, int advice)
{
	int ret = REAL(madvise)(addr, len, advice);
	rec_range_op("madvise", addr, len, advice, ret);
	return ret;
}

int memfd_create(const char *name, unsigned int flags)
{
	/* libc older than 2.27 has no wrapper; the program would then call syscall() itself. */
	int ret = REAL(memfd_create) ? REAL(memfd_create)(name, flags) : (int)syscall(SYS_memfd_create, name, flags);
	int err = errno;
	if (!active())
		return ret;
	struct jbuf j = { 0 };
	in_rec = 1;
	if (ret >= 0)
		track_fd(ret, K_MEMFD);
	char nm[256];
	size_t n = umem_read(nm, (uintptr_t)name, sizeof(nm));
	ev_begin(&j, "memfd_create");
	jb_key(&j, "name"); jb_strn(&j, nm, strnlen(nm, n));
	jb_key(&j, "flags"); jb_u64(&j, flags);
	ev_result(&j, ret, err);
	ev_end(&j, n ? NULL : "name not readable");
	in_rec = 0;
	errno = err;
	return ret;
}

#include "wrappers_io.h"

#endif
